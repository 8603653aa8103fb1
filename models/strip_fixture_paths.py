"""Removes the exporting machine's paths from ONNX fixtures.

torch.onnx's exporter records a Python stack trace per node
(`metadata_props`, e.g. `pkg.torch.onnx.stack_trace`) and sometimes a
`doc_string`; both name files on the machine that exported. Weights,
graph and external data references are left as they are (external data
is not loaded or rewritten).

    python models/strip_fixture_paths.py [DIR]   default: tests/fixtures/import
"""
from __future__ import annotations

import sys
from pathlib import Path

import onnx


def strip(path: Path) -> int:
    model = onnx.load(str(path), load_external_data=False)
    removed = 0

    def clean(graph: onnx.GraphProto) -> None:
        nonlocal removed
        for node in graph.node:
            if node.metadata_props or node.doc_string:
                removed += 1
            del node.metadata_props[:]
            node.doc_string = ""
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    clean(attr.g)
                for g in attr.graphs:
                    clean(g)
        graph.doc_string = ""

    clean(model.graph)
    for f in model.functions:
        for node in f.node:
            del node.metadata_props[:]
            node.doc_string = ""
    had_doc = bool(model.doc_string)
    model.doc_string = ""
    if removed or had_doc:
        onnx.save(model, str(path))
    return removed


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/import")
    for path in sorted(root.rglob("*.onnx")):
        n = strip(path)
        print(f"strip: {path}: {n} nodes cleaned")


if __name__ == "__main__":
    main()
