"""Shared helpers for the model build scripts: atomic writes, hashing, the bundle
manifest (bundle.toml), and the reference preprocessing (PIL + tokenizers).

The preprocessing here IS the reference the Rust engine must match, so it is kept
small and explicit. Everything is float32 numpy.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

BUNDLE_FORMAT_VERSION = 1
ONNX_OPSET = 17
ONNX_IR_VERSION = 10

# ---------------------------------------------------------------------------
# files


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = None) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def save_onnx(model, path: str | os.PathLike) -> str:
    """Check an ONNX model, pin IR version, write it atomically; return its sha256."""
    import onnx

    model.ir_version = min(model.ir_version, ONNX_IR_VERSION) if model.ir_version else ONNX_IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    atomic_write_bytes(path, model.SerializeToString())
    return sha256_file(path)


# ---------------------------------------------------------------------------
# bundle.toml (a tiny TOML writer: the manifest only uses strings, numbers,
# booleans, arrays of those, arrays of inline tables, and one level of tables)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError("non-finite float in manifest")
        return repr(v)  # shortest round-trip repr, always has '.' or 'e'
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON string escapes are valid TOML basic strings
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v)} to TOML")


def dumps_manifest(manifest: dict) -> str:
    """Top-level scalars first, then one [section] per dict value."""
    lines = []
    for k, v in manifest.items():
        if not isinstance(v, dict):
            lines.append(f"{k} = {_toml_value(v)}")
    for k, v in manifest.items():
        if isinstance(v, dict):
            lines.append("")
            lines.append(f"[{k}]")
            for kk, vv in v.items():
                lines.append(f"{kk} = {_toml_value(vv)}")
    text = "\n".join(lines) + "\n"
    assert tomllib.loads(text) == json.loads(json.dumps(manifest)), "TOML writer round-trip failed"
    return text


def write_manifest(bundle_dir: str | os.PathLike, manifest: dict) -> None:
    atomic_write_text(Path(bundle_dir) / "bundle.toml", dumps_manifest(manifest))


def load_manifest(bundle_dir: str | os.PathLike) -> dict:
    with open(Path(bundle_dir) / "bundle.toml", "rb") as f:
        return tomllib.load(f)


def verify_bundle(bundle_dir: str | os.PathLike) -> list[str]:
    """Return a list of problems (missing files, sha256 mismatches); empty if the bundle is intact."""
    bundle_dir = Path(bundle_dir)
    problems = []
    if not (bundle_dir / "bundle.toml").is_file():
        return [f"{bundle_dir}/bundle.toml missing"]
    m = load_manifest(bundle_dir)
    for section in ("text", "image", "molecule"):
        sec = m.get(section)
        if not sec:
            continue
        for key in ("model", "tokenizer"):
            if key not in sec:
                continue
            p = bundle_dir / sec[key]
            if not p.is_file():
                problems.append(f"{p} missing")
            elif sha256_file(p) != sec[f"{key}_sha256"]:
                problems.append(f"{p}: sha256 differs from manifest")
    return problems


# ---------------------------------------------------------------------------
# math


def l2norm(x: np.ndarray, axis: int = -1, eps: float = 1e-12) -> np.ndarray:
    n = np.sqrt(np.sum(x.astype(np.float32) ** 2, axis=axis, keepdims=True))
    return (x / np.maximum(n, eps)).astype(np.float32)


# ---------------------------------------------------------------------------
# reference preprocessing: images

_PIL_FILTERS = {"nearest": "NEAREST", "bilinear": "BILINEAR", "bicubic": "BICUBIC", "lanczos3": "LANCZOS"}


def load_rgb(path: str | os.PathLike):
    """Decode an image the way the engine must: EXIF orientation applied, alpha
    composited onto white, any mode converted to 8-bit RGB."""
    from PIL import Image, ImageOps

    im = Image.open(path)
    im = ImageOps.exif_transpose(im)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    if im.mode == "I;16" or im.mode == "I":
        raise ValueError(f"{path}: 16/32-bit images are not supported by the reference")
    return im.convert("RGB")


def preprocess_image(path: str | os.PathLike, image_cfg: dict) -> np.ndarray:
    """[3, H, W] float32 per the [image] section of a manifest."""
    from PIL import Image

    im = load_rgb(path)
    out_h, out_w = image_cfg["size"]
    filt = getattr(Image.Resampling, _PIL_FILTERS[image_cfg.get("interpolation", "bilinear")])
    mode = image_cfg.get("resize", "shortest_side_crop")
    if mode == "squash":
        im = im.resize((out_w, out_h), filt)
    elif mode == "shortest_side_crop":
        w, h = im.size
        s = image_cfg["resize_shortest"]
        # Scale so that the shortest side becomes s; the other side is rounded half
        # up in exact integer arithmetic: floor(long * s / short + 1/2).
        if w <= h:
            nw, nh = s, max(1, (2 * h * s + w) // (2 * w))
        else:
            nw, nh = max(1, (2 * w * s + h) // (2 * h)), s
        if (nw, nh) != (w, h):
            im = im.resize((nw, nh), filt)
        if nw < out_w or nh < out_h:
            raise ValueError("resize_shortest must be >= both output sides")
        # centre crop; the offset rounds down (integer pixel grid)
        left = (nw - out_w) // 2
        top = (nh - out_h) // 2
        im = im.crop((left, top, left + out_w, top + out_h))
    else:
        raise ValueError(f"unknown resize mode {mode!r}")
    x = np.asarray(im, dtype=np.float32)  # [H, W, 3], 0..255
    if image_cfg.get("channel_order", "rgb") == "bgr":
        x = x[:, :, ::-1]
    x = x * np.float32(image_cfg["scale"])
    mean = np.asarray(image_cfg["mean"], dtype=np.float32)
    std = np.asarray(image_cfg["std"], dtype=np.float32)
    x = (x - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)


# ---------------------------------------------------------------------------
# reference preprocessing: text / SMILES


def load_tokenizer(path: str | os.PathLike):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(path))


def tokenize(tokenizer, texts: list[str], max_length: int) -> dict[str, np.ndarray]:
    """Encode with special tokens, truncate to max_length using the tokenizer's own
    truncation (strategy longest_first, stride 0, direction right: the special
    tokens are kept), then pad with id 0 / mask 0 / type 0 to the longest in the
    batch. Returns int64 input_ids, attention_mask, token_type_ids."""
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    encs = tokenizer.encode_batch(texts, add_special_tokens=True)
    T = max(len(e.ids) for e in encs)
    B = len(encs)
    input_ids = np.zeros((B, T), np.int64)
    mask = np.zeros((B, T), np.int64)
    types = np.zeros((B, T), np.int64)
    for i, e in enumerate(encs):
        n = len(e.ids)
        input_ids[i, :n] = e.ids
        mask[i, :n] = 1
        types[i, :n] = e.type_ids
    return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": types}
