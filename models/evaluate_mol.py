"""Text<->molecule retrieval quality of a bundle on a held-out split (onnxruntime + numpy).

    python models/evaluate_mol.py --bundle .weft/models/starter-mol --test .weft/data/molecules/test.tsv \
        [--sample .weft/data/molecules/sample.csv] [--query "a benzoic acid with a hydroxy group" ...]

test.tsv has columns smiles, name, inchikey; row i's name belongs to row i's molecule.
Candidates are all test molecules (text->molecule) or all test names (molecule->text).
Metrics: Hits@1, Hits@10, MRR (ties count against the query), for

* global: cosine of the `embeds` vectors;
* FILIP late interaction over the `tokens` outputs: score(q, c) = mean over the query's
  real tokens (attention mask 1, [CLS]/[SEP] included, as the engine does) of the max
  cosine to any real token of the candidate;
* random: the expected values of a uniformly random ranking (Hits@k = k/N, MRR = H_N/N).

--sample (smiles,name CSV) adds the same table on that set, and --query prints the
top-5 molecules of the sample set for free-text queries (global cosine).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_mol import random_metrics, rank_metrics  # noqa: E402
from build_starter import session  # noqa: E402
from common import load_manifest, load_tokenizer, tokenize  # noqa: E402


def encode(bundle: Path, sec: dict, strings: list[str], batch: int = 64):
    """(embeds [N, D], list of per-item real-token matrices [n_i, D]) in input order."""
    tok = load_tokenizer(bundle / sec["tokenizer"])
    sess = session(str(bundle / sec["model"]))
    wanted = [i["name"] for i in sec["inputs"]]
    order = sorted(range(len(strings)), key=lambda i: len(strings[i]))
    emb = np.zeros((len(strings), sec["dim"]), np.float32)
    toks: list = [None] * len(strings)
    for s in range(0, len(order), batch):
        idx = order[s : s + batch]
        feeds = tokenize(tok, [strings[i] for i in idx], sec["max_length"])
        e, t = sess.run([sec["embeds_output"], sec["tokens_output"]], {k: feeds[k] for k in wanted})
        for j, i in enumerate(idx):
            emb[i] = e[j]
            toks[i] = t[j, : int(feeds["attention_mask"][j].sum())]
    return emb, toks


def pad(toks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    T = max(len(t) for t in toks)
    out = np.zeros((len(toks), T, toks[0].shape[1]), np.float32)
    mask = np.zeros((len(toks), T), bool)
    for i, t in enumerate(toks):
        out[i, : len(t)] = t
        mask[i, : len(t)] = True
    return out, mask


def filip_both(a_toks: list, b_toks: list) -> tuple[np.ndarray, np.ndarray]:
    """(s_ab [Na, Nb], s_ba [Nb, Na]): s_ab[i, j] = mean over a_i's tokens of the max cosine to b_j's
    tokens; s_ba the same with the roles swapped. Both from one token-similarity tensor."""
    A, am = pad(a_toks)
    Bt, bm = pad(b_toks)
    Na, Ta, D = A.shape
    Nb, Tb, _ = Bt.shape
    Bflat = Bt.reshape(Nb * Tb, D).T
    chunk = max(1, int(5e7 // (Ta * Nb * Tb)))  # ~200 MB per similarity block
    s_ab = np.zeros((Na, Nb), np.float32)
    s_ba_num = np.zeros((Nb, Na), np.float32)
    for s in range(0, Na, chunk):
        a, m = A[s : s + chunk], am[s : s + chunk]
        sim = (a.reshape(-1, D) @ Bflat).reshape(len(a), Ta, Nb, Tb)
        # a -> b: max over b's real tokens, mean over a's real tokens
        best_b = np.where(bm[None, None], sim, -np.inf).max(-1)  # [n, Ta, Nb]
        s_ab[s : s + chunk] = (np.where(m[:, :, None], best_b, 0).sum(1) / m.sum(1)[:, None])
        # b -> a: max over a's real tokens, summed over b's real tokens (divided below)
        best_a = np.where(m[:, :, None, None], sim, -np.inf).max(1)  # [n, Nb, Tb]
        s_ba_num[:, s : s + chunk] = np.where(bm[None], best_a, 0).sum(-1).T
    return s_ab, s_ba_num / bm.sum(1)[:, None]


def evaluate(bundle: Path, m: dict, smiles: list[str], names: list[str]) -> dict:
    t0 = time.time()
    t_emb, t_tok = encode(bundle, m["text"], names, 128)
    m_emb, m_tok = encode(bundle, m["molecule"], smiles, 64)
    g = t_emb @ m_emb.T
    f_tm, f_mt = filip_both(t_tok, m_tok)
    n = len(smiles)
    rows = {
        "global cosine": (rank_metrics(g), rank_metrics(g.T)),
        "FILIP (token-level)": (rank_metrics(f_tm), rank_metrics(f_mt)),
        "random (expected)": (random_metrics(n), random_metrics(n)),
    }
    print(f"  ({n} pairs encoded and scored in {time.time() - t0:.0f} s)", file=sys.stderr)
    return rows


def table(rows: dict) -> str:
    lines = ["| scoring | t2m Hits@1 | t2m Hits@10 | t2m MRR | m2t Hits@1 | m2t Hits@10 | m2t MRR |",
             "|---|---|---|---|---|---|---|"]
    for name, (a, b) in rows.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{x[k]:.3f}" for x in (a, b) for k in ("hits1", "hits10", "mrr")) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True, type=Path)
    ap.add_argument("--test", required=True, type=Path)
    ap.add_argument("--sample", type=Path, default=None)
    ap.add_argument("--query", nargs="*", default=[])
    a = ap.parse_args()
    m = load_manifest(a.bundle)

    with open(a.test, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    print(f"{a.bundle.name}: held-out test split, N = {len(rows)} (names as queries, all test molecules as "
          f"candidates)")
    print(table(evaluate(a.bundle, m, [r["smiles"] for r in rows], [r["name"] for r in rows])))

    if a.sample:
        with open(a.sample, encoding="utf-8", newline="") as f:
            srows = list(csv.DictReader(f))
        print(f"\n{a.sample.name}: N = {len(srows)} well-known molecules (held out of training)")
        print(table(evaluate(a.bundle, m, [r["smiles"] for r in srows], [r["name"] for r in srows])))
        if a.query:
            s_emb, _ = encode(a.bundle, m["molecule"], [r["smiles"] for r in srows])
            q_emb, _ = encode(a.bundle, m["text"], a.query)
            for q, e in zip(a.query, q_emb):
                sc = s_emb @ e
                top = np.argsort(-sc, kind="stable")[:5]
                print(f"\nquery {q!r}: " + "; ".join(
                    f"{srows[i]['name']} {srows[i]['smiles']} ({sc[i]:.3f})" for i in top))


if __name__ == "__main__":
    main()
