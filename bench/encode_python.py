"""Python reference image-encoding pipeline (what a user would write), for the throughput
comparison with `bench encode`.

    .weft/bench-venv/bin/python bench/encode_python.py --bundle DIR --images DIR --threads N \
        [--repeat R] [--batch 32] [--outputs embeds,tokens]

Pipeline per batch of --batch images (files in sorted order): PIL decode -> exif_transpose ->
alpha onto white -> RGB -> resize / centre crop / normalise per the bundle's [image] section
(models/common.py `preprocess_image`, the reference the engine matches), stacked into
[B, 3, H, W], then one onnxruntime run (CPU, intra_op_num_threads = N, inter_op 1). Decoding
runs on the calling thread, in series with inference, as plain user code does.

  images_per_s                  = images / seconds, seconds = median over --repeat passes of
                                  the whole pipeline (decode + preprocess + inference)
  inference_only_images_per_s   = the same on pre-decoded batches (ORT run time only)

Session creation and one warm-up run are excluded. One JSON line on stdout:
  {"name":"encode","impl":"python","images":n,"seconds":s,"images_per_s":x,"inference_only_images_per_s":y,...}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models"))
from common import load_manifest, preprocess_image  # noqa: E402

EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--outputs", default="embeds,tokens",
                    help="model outputs to fetch (default both: the engine stores pooled + token vectors)")
    a = ap.parse_args()

    import onnxruntime as ort

    cfg = load_manifest(a.bundle)["image"]
    paths = sorted(p for p in a.images.iterdir() if p.suffix.lower() in EXTS and p.is_file())
    if not paths:
        raise SystemExit(f"encode_python: no images in {a.images}")
    out_names = []
    for o in a.outputs.split(","):
        key = {"embeds": "embeds_output", "tokens": "tokens_output"}[o.strip()]
        if cfg.get(key):
            out_names.append(cfg[key])
    in_name = cfg["inputs"][0]["name"]

    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    t = time.perf_counter()
    sess = ort.InferenceSession(str(a.bundle / cfg["model"]), so, providers=["CPUExecutionProvider"])
    session_s = time.perf_counter() - t

    batches = [paths[i:i + a.batch] for i in range(0, len(paths), a.batch)]

    def decode(batch):
        return np.stack([preprocess_image(p, cfg) for p in batch])

    # warm-up: one full batch (allocations, kernel selection)
    pre0 = decode(batches[0])
    sess.run(out_names, {in_name: pre0})

    full = []
    for _ in range(a.repeat):
        t = time.perf_counter()
        n = 0
        for b in batches:
            outs = sess.run(out_names, {in_name: decode(b)})
            n += outs[0].shape[0]
        full.append(time.perf_counter() - t)
        assert n == len(paths)

    t = time.perf_counter()
    pre = [decode(b) for b in batches]
    decode_s = time.perf_counter() - t
    infer = []
    for _ in range(a.repeat):
        t = time.perf_counter()
        for x in pre:
            sess.run(out_names, {in_name: x})
        infer.append(time.perf_counter() - t)

    sec = float(np.median(full))
    inf = float(np.median(infer))
    n = len(paths)
    line = {"name": "encode", "impl": "python", "images": n, "seconds": round(sec, 3),
            "images_per_s": round(n / sec, 2), "inference_only_images_per_s": round(n / inf, 2),
            "repeat": a.repeat, "runs_s": [round(x, 3) for x in full], "inference_runs_s": [round(x, 3) for x in infer],
            "decode_preprocess_s": round(decode_s, 3), "session_s": round(session_s, 3), "threads": a.threads,
            "batch": a.batch, "outputs": out_names, "onnxruntime": ort.__version__,
            "bundle": a.bundle.name}
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    main()
