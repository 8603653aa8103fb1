"""Export an open_clip model (OpenCLIP, LAION, MobileCLIP, ...) to the folder
layout `weft models import` reads as "open_clip":

    visual.onnx                  torch.onnx.export of model.visual (pooled image embedding)
    textual.onnx                 torch.onnx.export of model.encode_text (pooled text embedding)
    open_clip_config.json        {"model_cfg": ..., "preprocess_cfg": ...}, as open_clip's hub files
    bpe_simple_vocab_16e6.txt.gz the tokenizer's BPE vocabulary (copied from open_clip)
    open_clip_model.safetensors  logit_scale (and logit_bias) from the checkpoint

Usage (needs torch and open-clip-torch; weft itself needs neither):

    python models/export_open_clip.py --model ViT-B-32 --pretrained laion2b_s34b_b79k --out exports/vit-b-32
    python models/export_open_clip.py --model MobileCLIP-S1 --pretrained path/to/open_clip_model.safetensors --out exports/mobileclip-s1

then `weft models import exports/vit-b-32 --name vit-b-32`.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch


class _Text(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, text):
        return self.model.encode_text(text)


def export_open_clip(model, model_cfg: dict, out: Path, bpe_path: Path | None = None) -> None:
    """Writes the layout above for an open_clip `model` (in eval mode)."""
    import open_clip
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    size = model_cfg["vision_cfg"].get("image_size", 224)
    size = (size, size) if isinstance(size, int) else tuple(size)
    ctx = model_cfg["text_cfg"].get("context_length", 77)
    image = torch.randn(2, 3, *size)
    text = torch.randint(1, 100, (2, ctx), dtype=torch.int64)
    torch.onnx.export(model.visual, (image,), str(out / "visual.onnx"), input_names=["image"],
                      output_names=["image_embeds"], dynamic_axes={"image": {0: "batch"}})
    torch.onnx.export(_Text(model), (text,), str(out / "textual.onnx"), input_names=["text"],
                      output_names=["text_embeds"], dynamic_axes={"text": {0: "batch"}})
    cfg = {"model_cfg": model_cfg, "preprocess_cfg": open_clip.get_model_preprocess_cfg(model)}
    (out / "open_clip_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    shutil.copy(bpe_path or open_clip.tokenizer.default_bpe(), out / "bpe_simple_vocab_16e6.txt.gz")
    scalars = {"logit_scale": model.logit_scale.detach().reshape(()).contiguous()}
    if getattr(model, "logit_bias", None) is not None:
        scalars["logit_bias"] = model.logit_bias.detach().reshape(()).contiguous()
    save_file(scalars, str(out / "open_clip_model.safetensors"), metadata={"format": "pt"})


def main() -> None:
    import open_clip

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="open_clip model name, e.g. ViT-B-32, MobileCLIP-S1")
    ap.add_argument("--pretrained", required=True, help="open_clip pretrained tag or a local checkpoint file")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    model, _, _ = open_clip.create_model_and_transforms(args.model, pretrained=args.pretrained)
    model.eval()
    if "MobileCLIP" in args.model:
        from timm.utils.model import reparameterize_model

        model = reparameterize_model(model)
    export_open_clip(model, open_clip.get_model_config(args.model), args.out)
    print(f"wrote {args.out}: visual.onnx, textual.onnx, open_clip_config.json, tokenizer vocabulary, logit scale")


if __name__ == "__main__":
    main()
