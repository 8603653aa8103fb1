"""End-to-end baseline for `bench e2e`: the pipeline a Python user would assemble from
faiss + numpy + onnxruntime for text->image search with late-interaction re-ranking.

    .weft/bench-venv/bin/python bench/e2e_python.py --bundle DIR [--items 100000] [--dim 384] \
        [--tokens 49] [--rerank 100] [--queries 200] [--k 10] [--m 16] [--ef-construction 200] \
        [--ef 128] [--threads 2] [--dir DIR]

Data: the item stream of `bench e2e` (its splitmix64 `Rng(5)`: 500 unit centres, then per
item `--tokens` unit token vectors = centre + 0.08 * uniform noise, pooled vector = sum of the
tokens), regenerated here with vectorised numpy from the same counter: the same random values
bit for bit, the same vectors up to float rounding (numpy sums the squares for a norm in
another order). Both sides print `checksum` (sum over items of the pooled vector's first
component) to show it.

Ingest (timed without the data generation): pooled vectors, L2-normalised, added to a faiss
IndexHNSWFlat (inner product, M, efConstruction, --threads OpenMP threads) in chunks of 2,000
(weft commits every 2,000 too);
token matrices appended as float16 to an .npy file with plain writes, chunk by chunk (weft's
default token dtype is f16 too; plain writes, as weft's, keep page cache out of the RSS
figure); ids to a JSON file; faiss.write_index. peak_rss_ingest_mb = ru_maxrss after ingest
(before the text model is loaded).
open_ms = faiss.read_index + np.load(mmap_mode="r") + the id list, page cache warm.

Query (served one at a time, after the reopen, BLAS and faiss on one thread as weft's search;
the text model on --threads, as weft's): tokenize (bundle tokenizer.json, truncation at
the bundle's max_length) + one onnxruntime run of the text model ("embeds", "tokens") ->
faiss search top --rerank at efSearch --ef -> gather the candidates' f16 token matrices ->
FILIP query->item score (mean over real query tokens of the max cosine to any item token,
one matmul + max + mean) -> top --k. p50/p99 over --queries, excluding and including the text
encoding. One JSON line on stdout: {"name":"e2e","impl":"python",...}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models"))
from common import load_manifest, load_tokenizer, tokenize  # noqa: E402

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)


def stream(seed: int, start: int, n: int) -> np.ndarray:
    """Values start+1 ..= start+n of `bench`'s Rng(seed).f(): splitmix64 of seed + k * golden,
    top 24 bits -> [-1, 1) in f32 (the same integer and float operations as the Rust code)."""
    with np.errstate(over="ignore"):
        k = np.arange(start + 1, start + n + 1, dtype=np.uint64)
        z = np.uint64(seed) + k * GOLDEN
        z = (z ^ (z >> np.uint64(30))) * M1
        z = (z ^ (z >> np.uint64(27))) * M2
        z = (z ^ (z >> np.uint64(31))) >> np.uint64(40)
    return z.astype(np.float32) / np.float32(1 << 23) - np.float32(1.0)


def unit_rows(v: np.ndarray) -> np.ndarray:
    n = np.maximum(np.sqrt(np.sum(v * v, axis=-1, keepdims=True, dtype=np.float32)), np.float32(1e-12))
    return v / n


class Items:
    """`bench e2e`'s synthetic items: centres first, then items in order."""

    def __init__(self, seed: int, dim: int, tokens: int, n_centres: int = 500):
        self.seed, self.dim, self.tokens = seed, dim, tokens
        self.centres = unit_rows(stream(seed, 0, n_centres * dim).reshape(n_centres, dim))
        self.base = n_centres * dim

    def chunk(self, first: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        d, t = self.dim, self.tokens
        noise = stream(self.seed, self.base + first * t * d, count * t * d).reshape(count, t, d)
        c = self.centres[np.arange(first, first + count) % len(self.centres)]
        toks = unit_rows(c[:, None, :] + np.float32(0.08) * noise)
        return toks.sum(axis=1, dtype=np.float32), toks


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def dir_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.iterdir() if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--tokens", type=int, default=49)
    ap.add_argument("--rerank", type=int, default=100)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--ef", type=int, default=128, help="efSearch (weft's default ef_search is 128)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dir", type=Path, default=None, help="where the index is written (default: a temp dir)")
    a = ap.parse_args()
    if min(a.items, a.dim, a.tokens, a.rerank, a.queries, a.k) <= 0:
        raise SystemExit("e2e_python: --items/--dim/--tokens/--rerank/--queries/--k must be positive")

    import faiss

    faiss.omp_set_num_threads(a.threads)
    man = load_manifest(a.bundle)
    text = man["text"]
    if int(text["dim"]) != a.dim:
        raise SystemExit(f"e2e_python: --dim {a.dim} differs from the bundle's {text['dim']}")

    if a.dir is not None and a.dir.exists() and any(a.dir.iterdir()):
        raise SystemExit(f"e2e_python: --dir {a.dir} is not empty; give a new or empty folder")
    out = a.dir or Path(tempfile.mkdtemp(prefix="weft-bench-e2e-py-"))
    out.mkdir(parents=True, exist_ok=True)
    try:
        # ---------------------------------------------------------------- ingest
        gen = Items(5, a.dim, a.tokens)
        index = faiss.IndexHNSWFlat(a.dim, a.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = a.ef_construction
        toks_path, index_path, ids_path = out / "tokens.npy", out / "index.faiss", out / "ids.json"
        store = open(toks_path, "wb")
        np.lib.format.write_array_header_1_0(store, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)),
                                                     "fortran_order": False,
                                                     "shape": (a.items, a.tokens, a.dim)})
        checksum, gen_s, t0 = 0.0, 0.0, time.perf_counter()
        step = 2000
        for first in range(0, a.items, step):
            count = min(step, a.items - first)
            pooled = np.empty((count, a.dim), np.float32)
            for s in range(0, count, 200):  # small generation chunks: their temporaries stay small
                g0 = time.perf_counter()
                p, toks = gen.chunk(first + s, min(200, count - s))
                gen_s += time.perf_counter() - g0
                pooled[s:s + len(p)] = p
                toks.astype(np.float16).tofile(store)
            checksum += float(pooled[:, 0].astype(np.float64).sum())
            index.add(np.ascontiguousarray(unit_rows(pooled)))
        store.close()
        faiss.write_index(index, str(index_path))
        ids_path.write_text(json.dumps([f"i{i}" for i in range(a.items)]))
        ingest_s = time.perf_counter() - t0 - gen_s
        del index
        peak_ingest = peak_rss_mb()
        disk = dir_bytes(out)
        files = {f.name: f.stat().st_size for f in (toks_path, index_path, ids_path)}

        # ---------------------------------------------------------------- open
        t0 = time.perf_counter()
        index = faiss.read_index(str(index_path))
        tokens = np.load(toks_path, mmap_mode="r")
        ids = json.loads(ids_path.read_text())
        open_ms = (time.perf_counter() - t0) * 1000.0
        index.hnsw.efSearch = max(a.ef, a.rerank)
        assert len(ids) == index.ntotal == a.items

        # ---------------------------------------------------------------- queries
        import onnxruntime as ort  # loaded after ingest, as weft loads its runtime

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = a.threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(a.bundle / text["model"]), opts, providers=["CPUExecutionProvider"])
        tok = load_tokenizer(a.bundle / text["tokenizer"])
        in_names = {i.name for i in sess.get_inputs()}
        outs = [text["embeds_output"], text["tokens_output"]]
        faiss.omp_set_num_threads(1)  # one query at a time, as the weft side serves them
        from threadpoolctl import threadpool_limits

        threadpool_limits(1, user_api="blas")  # the re-rank matmul on one thread, as weft's

        def encode(q: str) -> tuple[np.ndarray, np.ndarray]:
            enc = tokenize(tok, [q], int(text["max_length"]))
            emb, qt = sess.run(outs, {k: v for k, v in enc.items() if k in in_names})
            real = enc["attention_mask"][0].astype(bool)
            return unit_rows(emb[:1].astype(np.float32)), unit_rows(qt[0][real].astype(np.float32))

        def search(emb: np.ndarray, qt: np.ndarray) -> list[str]:
            _, cand = index.search(emb, a.rerank)
            order = np.sort(cand[0][cand[0] >= 0])  # ascending: a forward gather from the mapping
            docs = np.asarray(tokens[order], dtype=np.float32)
            sims = docs.reshape(-1, a.dim) @ qt.T  # [n*t, q]
            score = sims.reshape(len(order), a.tokens, -1).max(axis=1).mean(axis=1)
            top = np.argsort(-score, kind="stable")[:a.k]
            return [ids[int(order[i])] for i in top]

        texts = [f"a photo of object number {i} on a table" for i in range(a.queries)]
        for q in texts[:5]:  # warm-up: session, allocator, first pages
            search(*encode(q))
        excl, incl = [], []
        pc = time.perf_counter
        for q in texts:
            t0 = pc()
            e, qt = encode(q)
            t1 = pc()
            hits = search(e, qt)
            t2 = pc()
            if len(hits) != a.k:
                raise SystemExit(f"e2e_python: search returned {len(hits)} hits")
            excl.append((t2 - t1) * 1000.0)
            incl.append((t2 - t0) * 1000.0)

        def pct(xs: list[float], q: float) -> float:
            s = sorted(xs)  # the rank rule of bench.rs `percentile` (halves round up)
            return s[math.floor((len(s) - 1) * q + 0.5)]

        print(json.dumps({
            "name": "e2e", "impl": "python", "items": a.items, "dim": a.dim, "tokens": a.tokens,
            "rerank": a.rerank, "queries": a.queries, "dtype": "f16", "scorer": "filip",
            "stack": f"faiss {faiss.__version__} IndexHNSWFlat + numpy {np.__version__} f16 memmap + "
                     f"onnxruntime {ort.__version__}",
            "ef": max(a.ef, a.rerank), "threads": a.threads, "checksum": checksum,
            "excl_encode": {"p50_ms": pct(excl, 0.5), "p99_ms": pct(excl, 0.99)},
            "incl_encode": {"p50_ms": pct(incl, 0.5), "p99_ms": pct(incl, 0.99)},
            "ingest_s": ingest_s, "generate_s": gen_s, "disk_bytes": disk,
            "files_bytes": files,
            "bytes_per_item": disk / a.items, "open_ms": open_ms,
            "peak_rss_ingest_mb": peak_ingest, "peak_rss_mb": peak_rss_mb(),
        }))
    finally:
        if a.dir is None:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
