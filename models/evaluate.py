"""Retrieval quality of a bundle on captioned photos (onnxruntime + numpy).

    python models/evaluate.py --bundle .weft/models/starter-vl --photos .weft/data/photos [--sweep-k 1,3,10]

Reads photos/captions.tsv (file<TAB>caption; caption i belongs to photo i) and prints
Recall@1 and Recall@5 for text->image and image->text under two scorings:

* global: cosine of the `embeds` vectors;
* FILIP late interaction over the `tokens` outputs:
    text->image score(t, i) = mean over the text's real tokens (attention mask 1,
        [CLS]/[SEP] included) of the max cosine to any of the image's patch tokens;
    image->text score(i, t) = mean over the image's patches of the max cosine to
        any real token of the text.

--sweep-k re-evaluates an image.onnx built by build_starter.py for other ConSE top-K
values: it exposes the graph's `global_logits` / `cell_logits` tensors and the
`conse_class_embeds` initializer and recomputes the ConSE mix in numpy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import l2norm, load_manifest, load_tokenizer, preprocess_image, tokenize  # noqa: E402


def session(model) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.log_severity_level = 3
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def recall(scores: np.ndarray, k: int) -> float:
    """scores[q, c]; the correct candidate of query q is c = q."""
    ranks = (scores > np.diag(scores)[:, None]).sum(1)  # strictly better candidates
    return float((ranks < k).mean())


def filip(q_tok: np.ndarray, q_mask: np.ndarray, c_tok: np.ndarray, c_mask: np.ndarray) -> np.ndarray:
    """score[q, c] = mean over real query tokens of the max cosine to real candidate tokens."""
    sim = np.einsum("qtd,cpd->qctp", q_tok, c_tok)
    sim = np.where(c_mask[None, :, None, :] > 0, sim, -np.inf)
    best = sim.max(-1)  # [Q, C, T]
    qm = q_mask[:, None, :].astype(np.float32)
    return (np.where(qm > 0, best, 0.0) * qm).sum(-1) / qm.sum(-1)


def table(rows: dict[str, np.ndarray], n: int) -> str:
    ks = [1, 5] if n > 5 else [1]
    head = "| scoring | " + " | ".join(f"t2i R@{k} | i2t R@{k}" for k in ks) + " |"
    sep = "|---" * (1 + 2 * len(ks)) + "|"
    lines = [head, sep]
    for name, (s_t2i, s_i2t) in rows.items():
        cells = []
        for k in ks:
            cells += [f"{recall(s_t2i, k):.2f}", f"{recall(s_i2t, k):.2f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True, type=Path)
    ap.add_argument("--photos", required=True, type=Path)
    ap.add_argument("--sweep-k", default="", help="comma-separated ConSE top-K values to re-evaluate")
    a = ap.parse_args()

    m = load_manifest(a.bundle)
    pairs = [ln.rstrip("\n").split("\t") for ln in (a.photos / "captions.tsv").read_text().splitlines() if ln]
    files, caps = [p[0] for p in pairs], [p[1] for p in pairs]
    n = len(pairs)

    tc = m["text"]
    feeds = tokenize(load_tokenizer(a.bundle / tc["tokenizer"]), caps, tc["max_length"])
    tsess = session(str(a.bundle / tc["model"]))
    feeds = {i["name"]: feeds[i["name"]] for i in tc["inputs"]}
    t_emb, t_tok = tsess.run([tc["embeds_output"], tc["tokens_output"]], feeds)
    t_mask = feeds["attention_mask"]

    ic = m["image"]
    x = np.stack([preprocess_image(a.photos / f, ic) for f in files])
    imodel = onnx.load(str(a.bundle / ic["model"]))
    i_emb, i_tok = session(imodel.SerializeToString()).run([ic["embeds_output"], ic["tokens_output"]], {"pixel_values": x})
    p_mask = np.ones(i_tok.shape[:2], np.int64)

    def scores(i_emb, i_tok):
        g = t_emb @ i_emb.T
        return {
            "global cosine": (g, g.T),
            "FILIP late interaction": (filip(t_tok, t_mask, i_tok, p_mask), filip(i_tok, p_mask, t_tok, t_mask)),
        }

    print(f"{a.bundle.name}: {n} captioned photos")
    print(table(scores(i_emb, i_tok), n))

    if a.sweep_k:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from build_starter import conse_numpy

        C = next(onnx.numpy_helper.to_array(t) for t in imodel.graph.initializer if t.name == "conse_class_embeds")
        for name in ("global_logits", "cell_logits"):
            imodel.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        gl, cl = session(imodel.SerializeToString()).run(["global_logits", "cell_logits"], {"pixel_values": x})
        print("\nConSE top-K sweep (R@1 t2i / i2t; global | FILIP):")
        for k in [int(v) for v in a.sweep_k.split(",")]:
            s = scores(conse_numpy(gl, C, k), conse_numpy(cl, C, k))
            g, f = s["global cosine"], s["FILIP late interaction"]
            print(
                f"  K={k:4d}  global {recall(g[0], 1):.2f} / {recall(g[1], 1):.2f}"
                f"   FILIP {recall(f[0], 1):.2f} / {recall(f[1], 1):.2f}"
                f"   (R@5 global {recall(g[0], 5):.2f} / {recall(g[1], 5):.2f})"
            )


if __name__ == "__main__":
    main()
