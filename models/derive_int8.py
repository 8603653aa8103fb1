"""Derive `starter-vl-int8` from `starter-vl`: the same bundle with the text
tower's MatMul weights quantized to int8 per output channel
(models/quantize.py, the quantizer `weft models import --quantize int8`
runs), and the cosine of its text embeddings to the fp32 tower measured on
held-out texts and written into the manifest's description.

    python models/derive_int8.py --src .weft/models/starter-vl --out .weft/models/starter-vl-int8

The image tower and the tokenizer are the source's files (hard links where
the file system allows, copies otherwise), so image embeddings are the
source bundle's bit for bit. A collection binds the sha256 of its bundle's
manifest, so a collection made with one of the two bundles does not open
with the other: pick one when the collection is created.

The text query path is where int8 pays: on 2 cores the starter text tower
took ~2.6 ms per query in fp32 and ~1.3 ms in int8 (BENCHMARKS.md, end to
end section).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_manifest, load_tokenizer, sha256_file, tokenize, write_manifest  # noqa: E402

# Not the texts any test or benchmark queries with: captions of other scenes,
# single words, a long sentence, non-ASCII.
CHECK_TEXTS = [
    "a dog running on a beach at sunset",
    "two people riding bicycles in the rain",
    "a bowl of ramen with chopsticks",
    "snow-covered mountains above a lake",
    "an old red tractor in a field",
    "keyboard",
    "a close-up of a butterfly wing with blue scales and a pattern of small dots near its edge",
    "ein Hund im Schnee",
]


def text_embeds(model: Path, tokenizer, cfg: dict) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    out = []
    for t in CHECK_TEXTS:
        feed = {k: v for k, v in tokenize(tokenizer, [t], cfg.get("max_length", 256)).items() if k in names}
        e = sess.run([cfg["embeds_output"]], feed)[0][0].astype(np.float64)
        out.append(e / max(np.linalg.norm(e), 1e-12))
    return np.stack(out)


def link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    src, out = args.src, args.out
    m = load_manifest(src)
    text = m["text"]

    tmp = Path(tempfile.mkdtemp(prefix=".derive-int8-", dir=out.parent))
    try:
        for f in {text["tokenizer"], m["image"]["model"]}:
            link_or_copy(src / f, tmp / f)
        quantized = tmp / "text.int8.onnx"
        subprocess.run(
            [sys.executable, str(Path(__file__).resolve().parent / "quantize.py"),
             str(src / text["model"]), str(quantized)],
            check=True,
        )
        tok = load_tokenizer(src / text["tokenizer"])
        cos = np.sum(text_embeds(src / text["model"], tok, text) * text_embeds(quantized, tok, text), axis=1)
        if cos.min() < 0.98:
            sys.exit(f"derive_int8.py: int8 text tower too far from fp32: cosine min {cos.min():.4f}")

        m["name"] = f"{m['name']}-int8"
        m["description"] = (
            f"{m['description']}. Text tower: MatMul weights int8 per output channel (models/quantize.py); "
            f"text embedding cosine to the fp32 tower over {len(CHECK_TEXTS)} held-out texts: "
            f"mean {cos.mean():.4f}, min {cos.min():.4f}"
        )
        text["model"] = quantized.name
        text["model_sha256"] = sha256_file(quantized)
        write_manifest(tmp, m)
        tmp.chmod(0o755)  # mkdtemp made it owner-only
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"derive_int8.py: {out}: text cosine to fp32 mean {cos.mean():.4f} min {cos.min():.4f}")


if __name__ == "__main__":
    main()
