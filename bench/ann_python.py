"""ANN baselines: faiss IndexHNSWFlat (inner product) and hnswlib (space 'ip').

    .weft/bench-venv/bin/python bench/ann_python.py --data F --queries F --truth F --dim D \
        [--k 10] [--m 16] [--ef-construction 200] [--ef 16,32,64,128,256] [--threads 2] \
        [--libs faiss,hnswlib] [--dataset NAME]

Per library: build the index with --threads threads (build_s = wall time of adding all
vectors), then per ef serve the queries ONE AT A TIME on one thread (as an embedded engine
serves a request; the Python call overhead per query is included, as a Python user pays it):
recall@k against the first k columns of the exact ground truth, queries/s (1 / mean latency),
p50/p99 latency in ms. One JSON line per library on stdout:

  {"name":"ann","impl":"faiss"|"hnswlib","dataset":...,"build_s":...,
   "results":[{"ef":..,"recall":..,"qps":..,"p50_ms":..,"p99_ms":..}], ...}

A library that cannot be imported prints {"name":"ann","impl":...,"skipped":"reason"}.
M has the same meaning in both libraries (2*M links on layer 0); faiss' efSearch and hnswlib's
ef are the candidate list size; hnswlib needs ef >= k (raised to k, reported as given).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def load(path: Path, dtype, cols: int) -> np.ndarray:
    x = np.fromfile(path, dtype=dtype)
    if x.size % cols:
        raise SystemExit(f"ann_python: {path} has {x.size} values, not a multiple of {cols}")
    return x.reshape(-1, cols)


def recall_at(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    hits = 0
    for f, t in zip(found, truth):
        hits += len(set(f[:k].tolist()) & set(t[:k].tolist()))
    return hits / (k * len(truth))


def serve(search_one, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Run each query alone; return ids [nq, k] and latencies in seconds."""
    for i in range(min(20, len(queries))):  # warm-up (caches, lazy allocations)
        search_one(queries[i:i + 1], k)
    ids = np.full((len(queries), k), -1, np.int64)
    lat = np.empty(len(queries))
    pc = time.perf_counter
    for i in range(len(queries)):
        q = queries[i:i + 1]
        t = pc()
        r = search_one(q, k)
        lat[i] = pc() - t
        ids[i, :len(r)] = r
    return ids, lat


def summarise(ef: int, ids, lat, truth, k) -> dict:
    return {"ef": ef, "recall": round(recall_at(ids, truth, k), 4), "qps": round(1.0 / lat.mean(), 1),
            "p50_ms": round(float(np.percentile(lat, 50)) * 1e3, 4),
            "p99_ms": round(float(np.percentile(lat, 99)) * 1e3, 4)}


def run_faiss(a, data, queries, truth) -> dict:
    import faiss

    faiss.omp_set_num_threads(a.threads)
    index = faiss.IndexHNSWFlat(a.dim, a.m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = a.ef_construction
    t = time.perf_counter()
    index.add(data)
    build_s = time.perf_counter() - t
    faiss.omp_set_num_threads(1)
    results = []
    for ef in a.ef:
        index.hnsw.efSearch = ef
        ids, lat = serve(lambda q, k: index.search(q, k)[1][0], queries, a.k)
        results.append(summarise(ef, ids, lat, truth, a.k))
    return {"build_s": round(build_s, 3), "results": results, "version": faiss.__version__,
            "simd": faiss.get_compile_options().strip()}


def run_hnswlib(a, data, queries, truth) -> dict:
    import hnswlib

    index = hnswlib.Index(space="ip", dim=a.dim)
    index.init_index(max_elements=len(data), M=a.m, ef_construction=a.ef_construction, random_seed=100)
    index.set_num_threads(a.threads)
    t = time.perf_counter()
    index.add_items(data, np.arange(len(data)))
    build_s = time.perf_counter() - t
    index.set_num_threads(1)
    results = []
    for ef in a.ef:
        index.set_ef(max(ef, a.k))
        ids, lat = serve(lambda q, k: index.knn_query(q, k=k, num_threads=1)[0][0], queries, a.k)
        results.append(summarise(ef, ids, lat, truth, a.k))
    try:
        from importlib.metadata import PackageNotFoundError, version

        try:
            ver = "chroma-hnswlib " + version("chroma-hnswlib") + " (generic wheel)"
        except PackageNotFoundError:
            ver = "hnswlib " + version("hnswlib") + " (sdist built here, -march=native)"
    except Exception:  # noqa: BLE001
        ver = "unknown"
    return {"build_s": round(build_s, 3), "results": results, "version": ver}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--queries", type=Path, required=True)
    ap.add_argument("--truth", type=Path, required=True)
    ap.add_argument("--dim", type=int, required=True)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--ef", type=lambda s: [int(x) for x in s.split(",") if x], default=[16, 32, 64, 128, 256])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--libs", default="faiss,hnswlib")
    ap.add_argument("--dataset", help="name in the JSON (default: the data file's stem)")
    ap.add_argument("--max-queries", type=int, default=0, help="use only the first N queries (0 = all)")
    a = ap.parse_args()

    data = np.ascontiguousarray(load(a.data, "<f4", a.dim), dtype=np.float32)
    queries = np.ascontiguousarray(load(a.queries, "<f4", a.dim), dtype=np.float32)
    truth = np.fromfile(a.truth, dtype="<i4")
    truth = truth.reshape(len(queries), -1)
    if a.max_queries:
        queries, truth = queries[:a.max_queries], truth[:a.max_queries]
    if truth.shape[1] < a.k:
        raise SystemExit(f"ann_python: ground truth has {truth.shape[1]} columns < k={a.k}")
    dataset = a.dataset or a.data.stem
    common = {"name": "ann", "dataset": dataset, "n": len(data), "dim": a.dim, "queries": len(queries), "k": a.k,
              "m": a.m, "ef_construction": a.ef_construction, "threads_build": a.threads, "threads_search": 1}
    side = a.data.with_suffix(".json")  # bench/data.py's sidecar: where the vectors come from
    if side.is_file():
        meta = json.loads(side.read_text())
        common.update({k: meta[k] for k in ("source", "seed", "requested_n", "capped_by_budget") if k in meta})
    for lib in [x.strip() for x in a.libs.split(",") if x.strip()]:
        fn = {"faiss": run_faiss, "hnswlib": run_hnswlib}.get(lib)
        if fn is None:
            raise SystemExit(f"ann_python: unknown library {lib!r}")
        line = {"name": "ann", "impl": lib, **common}
        try:
            line.update(fn(a, data, queries, truth))
        except ImportError as e:
            line["skipped"] = f"cannot import {lib}: {e}"
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    main()
