"""Dynamic int8 quantization of an ONNX model (weights int8, activations
quantized at run time), as `weft models import --quantize int8` needs it.

    python models/quantize.py IN.onnx OUT.onnx

weft runs this file with the Python that has onnxruntime (1.31) installed:
`--python`, else WEFT_PYTHON, else .weft/venv/bin/python (models/build.sh
makes it), else python3. Only MatMul weights are quantized: the projection
and transformer layers that dominate a CLIP tower's time; convolutions stay
fp32 (ConvInteger is slower than fp32 Conv on many CPUs).

Two steps make that work on real exports:
- Constants are folded first (ONNX Runtime's basic graph optimisations,
  standard ONNX ops only): a weight stored as Cast(low precision) x scale or
  behind a Transpose is not an initializer, and quantize_dynamic skips a
  MatMul whose B input is not one. On weft's starter-vl text tower nothing
  was quantized without folding (cosine to fp32 1.0000, same speed).
- Weights are quantized per output channel: on that tower per-tensor scales
  gave a cosine to fp32 of min 0.947 / mean 0.968 over six texts, per-channel
  min 0.993 / mean 0.995, at 1.96x the fp32 speed (2 threads).
Models over 1 GiB (with their external data) are quantized without
folding (ONNX Runtime would have to write their folded weights to a second
file). The `onnx` package refuses external data files with more than one
hard link (weft's import links the export's files into the bundle), so a
model with external data is first copied, links broken, into a temporary
folder beside OUT, and folded there (the folded model still refers to the
data file next to it).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: quantize.py IN.onnx OUT.onnx")
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as e:
        sys.exit(f"quantize.py: onnxruntime's quantization tools are missing ({e}); "
                 f"install them with `{sys.executable} -m pip install onnxruntime==1.31.1 onnx`")
    import onnx
    from onnx.external_data_helper import uses_external_data

    # Weights in external data files of models over 1 GiB stay external in the output.
    graph = onnx.load(str(src), load_external_data=False).graph
    data_files = sorted({
        kv.value
        for t in graph.initializer
        if uses_external_data(t)
        for kv in t.external_data
        if kv.key == "location"
    })
    total = src.stat().st_size + sum((src.parent / f).stat().st_size for f in data_files)
    large = total > (1 << 30)
    copies = Path(tempfile.mkdtemp(prefix=".quantize-", dir=dst.parent)) if data_files else None
    folded = (copies or dst.parent) / (dst.name + ".folded.onnx")
    model_input = src
    try:
        if copies is not None:
            for f in [src.name, *data_files]:
                (copies / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src.parent / f, copies / f)
            model_input = copies / src.name
        if not large:
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            so.optimized_model_filepath = str(folded)
            ort.InferenceSession(str(model_input), so, providers=["CPUExecutionProvider"])
            model_input = folded
        quantize_dynamic(
            model_input=str(model_input),
            model_output=str(dst),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            use_external_data_format=large,
        )
    finally:
        folded.unlink(missing_ok=True)
        if copies is not None:
            shutil.rmtree(copies, ignore_errors=True)
    print(f"quantize.py: {src.name} -> {dst.name} ({'not folded' if large else 'constants folded'}, per-channel)")


if __name__ == "__main__":
    main()
