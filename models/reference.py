"""Python reference encoder: golden outputs for the Rust parity tests.

    python models/reference.py --bundle DIR --out FILE.json \
        [--images a.png b.jpg ...] [--texts "a cat" ...] [--smiles "CCO" ...] [--pixels]

Preprocessing (models/common.py, the reference the engine must match):
* images: PIL decode, ImageOps.exif_transpose, alpha composited onto white, RGB;
  resize per the manifest's [image] section with PIL's filter (antialiased),
  centre crop (offset floor((new - size) / 2)), * scale, (x - mean) / std, NCHW.
  Resize: the shortest side becomes resize_shortest, the other side
  floor(long * resize_shortest / short + 1/2) (integer arithmetic); "squash" resizes
  straight to size.
* text / SMILES: the bundle's tokenizer.json with special tokens, truncated to
  max_length by the tokenizer's own truncation (LongestFirst, stride 0, direction
  right: special tokens kept), padded with id 0 / mask 0 / type 0 to the batch's longest.
Each modality runs as one batch through onnxruntime (CPU).

Output JSON: {"bundle", "version", "items": [...]}, one item per input: all images
first, then texts, then SMILES, each in command-line order. Item keys:
  modality ("image" | "text" | "molecule"), input (path as given / the string),
  token_ids and type_ids (text, molecule), embeds [D], tokens [n_real][D] (for text
  and molecule only the tokens whose attention mask is 1; for images all patches,
  row-major), pixel_values [3][H][W] (images, only with --pixels).
Floats are written with 8 significant digits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_manifest, load_tokenizer, preprocess_image, tokenize, verify_bundle, write_json  # noqa: E402


def _floats(a: np.ndarray):
    """Nested lists of floats rounded to 8 significant digits (float32 has ~7.2)."""
    if a.ndim == 0:
        return float(f"{float(a):.8g}")
    return [_floats(x) for x in a]


def _session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def encode_sequences(bundle: Path, sec: dict, modality: str, strings: list[str]) -> list[dict]:
    feeds = tokenize(load_tokenizer(bundle / sec["tokenizer"]), strings, sec["max_length"])
    wanted = {i["name"] for i in sec["inputs"]}
    outs = [sec["embeds_output"]] + ([sec["tokens_output"]] if "tokens_output" in sec else [])
    res = _session(bundle / sec["model"]).run(outs, {k: v for k, v in feeds.items() if k in wanted})
    items = []
    for i, s in enumerate(strings):
        n = int(feeds["attention_mask"][i].sum())
        item = {
            "modality": modality,
            "input": s,
            "token_ids": feeds["input_ids"][i, :n].tolist(),
            "type_ids": feeds["token_type_ids"][i, :n].tolist(),
            "embeds": _floats(res[0][i]),
        }
        if len(res) > 1:
            item["tokens"] = _floats(res[1][i, :n])
        items.append(item)
    return items


def encode_images(bundle: Path, sec: dict, paths: list[str], pixels: bool) -> list[dict]:
    x = np.stack([preprocess_image(p, sec) for p in paths])
    outs = [sec["embeds_output"]] + ([sec["tokens_output"]] if "tokens_output" in sec else [])
    res = _session(bundle / sec["model"]).run(outs, {sec["inputs"][0]["name"]: x})
    items = []
    for i, p in enumerate(paths):
        item = {"modality": "image", "input": p, "embeds": _floats(res[0][i])}
        if len(res) > 1:
            item["tokens"] = _floats(res[1][i])
        if pixels:
            item["pixel_values"] = _floats(x[i])
        items.append(item)
    return items


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--images", nargs="*", default=[])
    ap.add_argument("--texts", nargs="*", default=[])
    ap.add_argument("--smiles", nargs="*", default=[])
    ap.add_argument("--pixels", action="store_true", help="also write the preprocessed pixel_values")
    a = ap.parse_args()

    problems = verify_bundle(a.bundle)
    if problems:
        sys.exit("reference: bundle is not intact: " + "; ".join(problems))
    m = load_manifest(a.bundle)
    items = []
    for modality, inputs in (("image", a.images), ("text", a.texts), ("molecule", a.smiles)):
        if not inputs:
            continue
        if modality not in m:
            sys.exit(f"reference: bundle {a.bundle} has no [{modality}] section")
        if modality == "image":
            items += encode_images(a.bundle, m["image"], inputs, a.pixels)
        else:
            items += encode_sequences(a.bundle, m[modality], modality, inputs)
    write_json(a.out, {"bundle": m["name"], "version": m["version"], "items": items})
    print(f"reference: {len(items)} items -> {a.out}")


if __name__ == "__main__":
    main()
