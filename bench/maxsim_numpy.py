"""numpy baseline for ColBERT-style late interaction (MaxSim) on one thread.

    .weft/bench-venv/bin/python bench/maxsim_numpy.py [--docs 1000] [--nd 64] [--nq 32] [--dim 128] [--runs 25]

score(doc) = sum over the nq query tokens of max over the doc's nd tokens of <q_i, d_j>,
for every doc, f32, token vectors L2-normalised (seeded random). The numpy a user would
write for speed: one GEMM of all doc tokens against the query ([docs*nd, dim] @ [dim, nq]),
then max over the doc axis and sum over the query axis. `--method einsum` uses
np.einsum("qd,ntd->ntq") instead (usually slower). Timing covers the whole score
computation for all docs (no top-k selection); `--warmup` runs are not counted.

BLAS / OpenMP are pinned to one thread through the environment BEFORE numpy is imported.
The BLAS kernel that ran is recorded with threadpoolctl (openblas `architecture`, e.g.
SkylakeX / Haswell), else a numpy.show_config() summary; OPENBLAS_CORETYPE is recorded
if set (this script never sets it). One JSON line:

  {"name":"maxsim","impl":"numpy","dtype":"f32","ms_median":..,"ms_min":..,"ms_max":..,"gflops":..,...}

gflops = 2*docs*nd*nq*dim / median seconds (the multiply-adds of the similarity matrix).
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
           "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def blas_info() -> dict:
    info: dict = {}
    try:
        from threadpoolctl import threadpool_info

        for p in threadpool_info():
            if p.get("user_api") == "blas":
                info = {"blas": p.get("internal_api"), "blas_version": p.get("version"),
                        "blas_kernel": p.get("architecture"), "blas_threads": p.get("num_threads"),
                        "blas_lib": os.path.basename(p.get("filepath", ""))}
                break
    except ImportError:
        pass
    if not info:
        try:
            cfg = np.show_config(mode="dicts")
            bl = cfg.get("Build Dependencies", {}).get("blas", {})
            simd = cfg.get("SIMD Extensions", {})
            info = {"blas": bl.get("name"), "blas_version": bl.get("version"),
                    "blas_kernel": "unknown (threadpoolctl missing)",
                    "numpy_simd_found": simd.get("found")}
        except Exception as e:  # noqa: BLE001
            info = {"blas": f"unknown ({e})"}
    if os.environ.get("OPENBLAS_CORETYPE"):
        info["openblas_coretype"] = os.environ["OPENBLAS_CORETYPE"]
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--nd", type=int, default=64)
    ap.add_argument("--nq", type=int, default=32)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--runs", type=int, default=25)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--method", choices=["matmul", "einsum"], default="matmul")
    ap.add_argument("--seed", type=int, default=20261128)
    a = ap.parse_args()

    rng = np.random.default_rng(a.seed)

    def unit(shape):
        x = rng.standard_normal(shape, dtype=np.float32)
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    docs = np.ascontiguousarray(unit((a.docs, a.nd, a.dim)))
    q = np.ascontiguousarray(unit((a.nq, a.dim)))
    flat = docs.reshape(-1, a.dim)
    qt = np.ascontiguousarray(q.T)

    if a.method == "matmul":
        def score():
            sim = flat @ qt  # [docs*nd, nq]
            return sim.reshape(a.docs, a.nd, a.nq).max(axis=1).sum(axis=1)
    else:
        def score():
            return np.einsum("qd,ntd->ntq", q, docs, optimize=True).max(axis=1).sum(axis=1)

    # correctness against a float64 reference on a few docs
    ref = np.array([(docs[i].astype(np.float64) @ q.T.astype(np.float64)).max(axis=0).sum() for i in range(5)])
    got = score()
    assert got.shape == (a.docs,) and np.allclose(got[:5], ref, atol=1e-4), "maxsim mismatch"

    for _ in range(a.warmup):
        score()
    times = []
    for _ in range(a.runs):
        t = time.perf_counter()
        score()
        times.append(time.perf_counter() - t)
    t = np.array(times) * 1e3
    med = float(np.median(t))
    flops = 2.0 * a.docs * a.nd * a.nq * a.dim
    line = {"name": "maxsim", "impl": "numpy", "dtype": "f32", "method": a.method,
            "docs": a.docs, "nd": a.nd, "nq": a.nq, "dim": a.dim, "runs": a.runs,
            "ms_median": round(med, 4), "ms_min": round(float(t.min()), 4), "ms_max": round(float(t.max()), 4),
            "gflops": round(flops / (med * 1e-3) / 1e9, 2), "threads": 1, "numpy": np.__version__,
            **blas_info()}
    line["kernel"] = f"{line.get('blas')} {line.get('blas_kernel')}"
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
