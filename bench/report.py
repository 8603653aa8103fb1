"""Render .weft/bench/results.jsonl (written by scripts/bench.sh) as BENCHMARKS.md.

    python bench/report.py .weft/bench/results.jsonl [--run RUN_ID] [--out BENCHMARKS.md]

Uses one run (default: the newest run id in the file), so every ratio compares figures
measured in the same run. With R > 1 repetitions a figure is the median over repetitions
with the min-max spread in parentheses. A benchmark without weft lines (or with an error
line) renders as "not measured" with the reason. The hand-written block between
`<!-- manual -->` and `<!-- /manual -->` in an existing --out file is kept verbatim.
Only the standard library is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

MANUAL_RE = re.compile(r"<!-- manual -->.*?<!-- /manual -->", re.S)
MANUAL_EMPTY = ("<!-- manual -->\n## Retrieval quality\n\n"
                "(hand-written: kept verbatim by bench/report.py)\n<!-- /manual -->")
NM = "not measured"


def load(path: Path) -> list[dict]:
    out = []
    for i, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        raw = raw.strip()
        if not raw:
            continue
        try:
            out.append(json.loads(raw))
        except ValueError:
            print(f"report: {path}:{i}: not JSON, skipped", file=sys.stderr)
    return out


# ---------------------------------------------------------------------------- numbers


def fmt(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "–"
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    if ax == 0:
        return "0"
    return f"{x:.{digits}g}"


def vals(xs) -> list[float]:
    return [float(x) for x in xs if isinstance(x, (int, float)) and not isinstance(x, bool)]


def agg(xs) -> float | None:
    v = vals(xs)
    return statistics.median(v) if v else None


def fmt_recall(x: float | None) -> str:
    return "–" if x is None else f"{x:.4f}"


def spread(xs, digits: int = 3, f=None) -> str:
    """median (min–max) over repetitions; just the value when there is one."""
    f = f or (lambda x: fmt(x, digits))
    v = vals(xs)
    if not v:
        return NM
    m = statistics.median(v)
    if len(v) == 1 or min(v) == max(v):
        return f(m)
    return f"{f(m)} ({f(min(v))}–{f(max(v))})"


def num(x) -> str:
    return f"{x:,}" if isinstance(x, int) else "?"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def get(d: dict, path: str):
    for k in path.split("."):
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


# ---------------------------------------------------------------------------- machine


def live_machine() -> dict:
    def sh(c):
        try:
            return subprocess.run(c, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
        except Exception:  # noqa: BLE001
            return ""
    model = ""
    for line in sh("LC_ALL=C lscpu").splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    mem = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1])
    except OSError:
        pass
    return {"cpu": model or platform.processor(), "cores": os.cpu_count(), "ram_gib": round(mem / 2**20, 1),
            "kernel": platform.release(), "note": "read when the report was written (no machine line in the run)"}


# ---------------------------------------------------------------------------- sections


def nreps(lines: list[dict]) -> str:
    n = len({d.get("rep") for d in lines})
    return f"R = {n}" if n else "R = 0"


class Run:
    def __init__(self, lines: list[dict]):
        self.lines = lines
        self.by = defaultdict(list)  # (name, impl) -> ok lines
        self.errors = defaultdict(list)  # (name, impl) -> reasons
        for d in lines:
            key = (d.get("name"), d.get("impl"))
            if d.get("error") or d.get("skipped"):
                self.errors[key].append(d.get("error") or f"skipped: {d.get('skipped')}")
            else:
                self.by[key].append(d)

    def ok(self, name, impl, **match) -> list[dict]:
        return [d for d in self.by.get((name, impl), []) if all(d.get(k) == v for k, v in match.items())]

    def why(self, name, impl) -> str:
        e = self.errors.get((name, impl))
        if not e and name == "ann" and impl in ("faiss", "hnswlib"):
            e = self.errors.get((name, "python"))  # ann_python.py itself failed
        if e:
            uniq = list(dict.fromkeys(str(x) for x in e))
            return f"{NM} ({'; '.join(uniq)[:200]})"
        return NM

    def cell(self, name, impl, lines, field, digits=3) -> str:
        v = [get(d, field) for d in lines]
        return spread(v, digits) if vals(v) else self.why(name, impl)


def bundle_arg(d: dict) -> str | None:
    """The folder name after `--bundle` in the line's command, if any."""
    args = str(d.get("cmd", "")).split()
    if "--bundle" in args and args.index("--bundle") + 1 < len(args):
        return Path(args[args.index("--bundle") + 1]).name
    return None


def e2e(r: Run, impl: str, int8: bool = False) -> list[dict]:
    """e2e lines of one side: the fp32 starter-vl run, or the int8-text-tower run."""
    return [d for d in r.ok("e2e", impl) if (bundle_arg(d) or "").endswith("-int8") == int8]


def starter(lines: list[dict]) -> list[dict]:
    return [d for d in lines if d.get("bundle") in (None, "starter-vl")]


def sec_encode(r: Run) -> list[str]:
    out = ["## 1. Encoding throughput (images/s, higher is better)", ""]
    w, p = starter(r.ok("encode", "weft")), starter(r.ok("encode", "python"))
    n = (w or p or [{}])[0].get("images")
    thr = (w or p or [{}])[0].get("threads")
    out.append(f"{nreps(w + p)}. {n or '?'} images (the photos of `.weft/data/photos` repeated), starter-vl image model, "
               f"{thr or '?'} intra-op threads on both sides. Full pipeline = decode + EXIF orientation + "
               "resize/crop/normalise + ONNX inference; inference only = ONNX Runtime on pre-decoded batches.")
    out.append("")
    out += ["| figure | weft | Python (PIL + onnxruntime) | weft ÷ Python |", "|---|---|---|---|"]
    for label, f in [("full pipeline, images/s", "images_per_s"),
                     ("inference only, images/s", "inference_only_images_per_s")]:
        out.append(f"| {label} | {r.cell('encode', 'weft', w, f)} | {r.cell('encode', 'python', p, f)} | "
                   f"{ratio(agg(get(d, f) for d in w), agg(get(d, f) for d in p))} |")
    return out + [""]


def sec_encode_import(r: Run) -> list[str]:
    out = ["### Imported model: CLIP ViT-B/32, fp32 and int8", ""]
    rows = []
    for b, label in [("vit-b32-random", "fp32"), ("vit-b32-random-int8", "int8 (`--quantize int8`)")]:
        w = [d for d in r.ok("encode", "weft") if d.get("bundle") == b]
        p = [d for d in r.ok("encode", "python") if d.get("bundle") == b]
        if w or p:
            rows.append((label, w, p))
    if not rows:
        return out + ["Not run: it needs `.weft/fixtures-venv` (models/fixtures.sh) to export the model.", ""]
    n = (rows[0][1] or rows[0][2] or [{}])[0].get("images")
    out.append(f"{nreps(rows[0][1] + rows[0][2])}. A full-size ViT-B/32 (transformers' CLIPConfig defaults, 151M "
               "parameters, random weights: speed does not depend on the values) exported with `optimum-cli export onnx "
               "--task zero-shot-image-classification` and imported with `weft models import` (image tower cut out, patch-token "
               f"output added). {n or '?'} images, same threads; the Python side is PIL + onnxruntime on the same ONNX file, "
               "fetching the pooled output only.")
    out.append("")
    out += ["| weights | figure | weft | Python (PIL + onnxruntime) | weft ÷ Python |", "|---|---|---|---|---|"]
    for label, w, p in rows:
        for fl, f in [("full pipeline, images/s", "images_per_s"), ("inference only, images/s", "inference_only_images_per_s")]:
            out.append(f"| {label} | {fl} | {r.cell('encode', 'weft', w, f)} | {r.cell('encode', 'python', p, f)} | "
                       f"{ratio(agg(get(d, f) for d in w), agg(get(d, f) for d in p))} |")
    if len(rows) == 2:
        f = "images_per_s"
        out.append("")
        out.append(f"int8 ÷ fp32 in weft, full pipeline: {ratio(agg(get(d, f) for d in rows[1][1]), agg(get(d, f) for d in rows[0][1]))}.")
    return out + [""]


def ann_impls(r: Run) -> list[str]:
    # weft-f32-walk: the same weft index walked over f32 vectors instead of i8 codes
    extra = ["weft-f32-walk"] if r.by.get(("ann", "weft-f32-walk")) else []
    return ["weft", *extra, "faiss", "hnswlib"]


def sec_ann(r: Run) -> list[str]:
    out = ["## 2. Approximate nearest neighbours (HNSW, inner product)", ""]
    datasets = sorted({d.get("dataset") for (name, _), ls in r.by.items() if name == "ann" for d in ls} - {None})
    if not datasets:
        reasons = "; ".join(f"{impl}: {r.why('ann', impl)}" for impl in ann_impls(r))
        return out + [f"{NM}. {reasons}", ""]
    for ds in datasets:
        lines = {impl: r.ok("ann", impl, dataset=ds) for impl in ann_impls(r)}
        first: dict = {}  # dataset description: first non-empty value over the libraries' lines
        for impl in ("faiss", "hnswlib", "weft"):
            for d in lines[impl]:
                for k, v in d.items():
                    if first.get(k) is None and v is not None:
                        first[k] = v
        out.append(f"### {ds}: {first.get('n', '?'):,} x {first.get('dim', '?')} base vectors, "
                   f"{first.get('queries', '?')} queries, recall@{first.get('k', 10)} vs exact top-{first.get('k', 10)}")
        if first.get("source"):
            src = f"Data: {first['source']}"
            if first.get("capped_by_budget"):
                src += (f" ({num(first.get('n'))} base rows: what the embedding time budget allowed, "
                        f"of {num(first.get('requested_n'))} requested)")
            out += ["", src + "."]
        out.append("")
        out.append(f"{nreps([d for v in lines.values() for d in v])}. M = {first.get('m', 16)}, ef_construction = {first.get('ef_construction', 200)}; build on "
                   f"{first.get('threads_build', '?')} threads; queries served one at a time on one thread "
                   "(Python call overhead included for the baselines).")
        out.append("")
        out += ["| library | build s | build: baseline ÷ weft |", "|---|---|---|"]
        wb = agg(get(d, "build_s") for d in lines["weft"])
        for impl in ann_impls(r):
            b = [get(d, "build_s") for d in lines[impl]]
            rr = "–" if impl.startswith("weft") else ratio(agg(b), wb)
            out.append(f"| {impl} | {spread(b) if vals(b) else r.why('ann', impl)} | {rr} |")
        out.append("")
        efs = sorted({res.get("ef") for ls in lines.values() for d in ls for res in d.get("results", [])} - {None})
        out += ["| ef | library | recall@10 | QPS | p50 ms | p99 ms | QPS weft ÷ this |", "|---|---|---|---|---|---|---|"]

        def at(impl, ef, f):
            return [res.get(f) for d in lines[impl] for res in d.get("results", []) if res.get("ef") == ef]
        for ef in efs:
            wq = agg(at("weft", ef, "qps"))
            for impl in ann_impls(r):
                if not lines[impl]:
                    out.append(f"| {ef} | {impl} | {r.why('ann', impl)} | | | | |")
                    continue
                rr = "–" if impl == "weft" else ratio(wq, agg(at(impl, ef, "qps")))
                out.append(f"| {ef} | {impl} | {spread(at(impl, ef, 'recall'), f=fmt_recall)} | {spread(at(impl, ef, 'qps'))} | "
                           f"{spread(at(impl, ef, 'p50_ms'))} | {spread(at(impl, ef, 'p99_ms'))} | {rr} |")
        # operating points: fastest ef reaching a recall target (medians over repetitions)
        out += ["", "Fastest setting reaching a recall target (median over repetitions):", "",
                "| recall target | " + " | ".join(ann_impls(r)) + " |", "|---|" + "---|" * len(ann_impls(r))]
        for target in (0.90, 0.95, 0.99):
            cells = []
            for impl in ann_impls(r):
                best = None
                for ef in efs:
                    rec, q = agg(at(impl, ef, "recall")), agg(at(impl, ef, "qps"))
                    if rec is not None and q is not None and rec >= target and (best is None or q > best[1]):
                        best = (ef, q)
                cells.append(f"{fmt(best[1])} QPS (ef {best[0]})" if best else ("not reached" if lines[impl] else NM))
            out.append(f"| ≥ {target:.2f} | " + " | ".join(cells) + " |")
        out.append("")
        vers = [f"{impl} {lines[impl][0].get('version')}" for impl in ("faiss", "hnswlib")
                if lines[impl] and lines[impl][0].get("version")]
        if vers:
            out += [f"Versions: {', '.join(vers)}.", ""]
    return out


HOT_DOCS = 16  # scripts/bench.sh's in-cache MaxSim runs


def maxsim_weft(r: Run, dt: str, hot: bool = False) -> list[dict]:
    """weft's MaxSim lines of one dtype: the 1000-doc runs, or the in-cache runs (16 docs)."""
    return [d for d in r.ok("maxsim", "weft", dtype=dt) if (d.get("docs") == HOT_DOCS) == hot]


def sec_maxsim(r: Run) -> list[str]:
    out = ["## 3. Late-interaction re-ranking (MaxSim, one thread)", ""]
    p = r.ok("maxsim", "numpy", dtype="f32")
    first = (maxsim_weft(r, "f32") or p or [{}])[0]
    out.append(f"{nreps(p + r.by.get(('maxsim', 'weft'), []))}. A {first.get('nq', 32)}-token query against {first.get('docs', 1000)} documents x "
               f"{first.get('nd', 64)} tokens x {first.get('dim', 128)} dims: score = sum over query tokens of the "
               "max dot product over the document's tokens, for every document. Time per full scoring pass; "
               "GFLOP/s counts the 2·docs·nd·nq·dim multiply-adds.")
    out.append("")
    peaks = r.ok("peak", "fma-loop")
    f32_peak = agg(d.get("f32_gflops") for d in peaks)
    i8_peak = agg(d.get("i8_gops") for d in peaks if d.get("i8_gops"))
    bf16_peak = agg(d.get("bf16_gflops") for d in peaks if d.get("bf16_gflops"))
    bf16_cpu = peaks[0].get("bf16") if peaks else None  # None: a run from before the bf16 peak
    bf16_rows = bool(maxsim_weft(r, "bf16") or maxsim_weft(r, "bf16", hot=True))
    if peaks:
        bits = peaks[0].get("vector_bits")
        out += [f"Per-core limit, measured in this run by `bench/fma_peak.c` (independent FMA chains on {bits}-bit "
                f"vectors, one core, best of 5): f32 {fmt(f32_peak)} GFLOP/s"
                + (f", i8 VNNI {fmt(i8_peak)} GOP/s." if i8_peak else "; no VNNI on this CPU (the i8 kernel "
                   "uses `vpmaddubsw`/`vpmaddwd`, so its row has no i8 limit).")
                + (f" bf16 `vdpbf16ps` {fmt(bf16_peak)} GFLOP/s (two multiply-adds per f32 lane)." if bf16_peak
                   else " No AVX-512 BF16 on this CPU: bf16 tokens run the f32 kernel, against the f32 limit."
                   if bf16_cpu is False and bf16_rows else ""), ""]
    else:
        out += [f"Per-core limit: {r.why('peak', 'fma-loop')}", ""]
    out += ["| implementation | dtype | kernel | ms (median) | GFLOP/s | of the core's limit | speed-up vs numpy f32 |",
            "|---|---|---|---|---|---|---|"]
    base = agg(get(d, "ms_median") for d in p)

    def of_peak(ls, dt):
        limit = {"i8": i8_peak, "bf16": bf16_peak or (f32_peak if bf16_cpu is False else None)}.get(dt, f32_peak)
        g = agg(d.get("gflops") for d in ls)
        return f"{100 * g / limit:.0f}%" if g and limit else "–"

    def ms_cell(ls, name, impl):
        v = [d.get("ms_median") for d in ls]
        if not vals(v):
            return r.why(name, impl)
        if len(vals(v)) == 1:  # one repetition: show the spread of its runs
            d = ls[0]
            if d.get("ms_min") is not None and d.get("ms_max") is not None:
                return f"{fmt(d['ms_median'])} (runs {fmt(d['ms_min'])}–{fmt(d['ms_max'])})"
        return spread(v)

    hot = []
    for dt in ("f32", "f16", "bf16", "i8"):
        h = maxsim_weft(r, dt, hot=True)
        if h:
            hot.append(f"{dt} {spread([1000 / HOT_DOCS * d['ms_median'] for d in h if d.get('ms_median')])} ms per "
                       f"1,000 docs, {spread([d.get('gflops') for d in h])} {'GOP/s' if dt == 'i8' else 'GFLOP/s'} "
                       f"({of_peak(h, dt)})")
        w = maxsim_weft(r, dt)
        kern = w[0].get("kernel", "") if w else ""
        out.append(f"| weft | {dt} | {kern} | {ms_cell(w, 'maxsim', 'weft')} | "
                   f"{spread([d.get('gflops') for d in w]) if w else '–'} | {of_peak(w, dt)} | "
                   f"{ratio(base, agg(d.get('ms_median') for d in w))} |")
    kern = p[0].get("kernel", "") if p else ""
    out.append(f"| numpy (matmul + max + sum) | f32 | {kern} | {ms_cell(p, 'maxsim', 'numpy')} | "
               f"{spread([d.get('gflops') for d in p]) if p else '–'} | {of_peak(p, 'f32')} | {'1.00×' if p else '–'} |")
    out.append("")
    if hot:
        out += [f"The same kernels with the tokens in cache ({HOT_DOCS} documents, 1 MB at f32, scored 1,000 times; "
                "what a kernel does when it never waits for memory): " + "; ".join(hot) + ".", ""]
    if p and p[0].get("blas"):
        d = p[0]
        out += [f"numpy {d.get('numpy', '')} used {d.get('blas')} {d.get('blas_version', '')} "
                f"(kernel `{d.get('blas_kernel')}`, {d.get('blas_threads')} thread)"
                + (f", OPENBLAS_CORETYPE={d['openblas_coretype']}" if d.get("openblas_coretype") else "") + ".", ""]
    return out


def e2e_data_line(w: list[dict], p: list[dict]) -> str:
    """Whether both sides saw the same items: their checksums of the generated pooled vectors."""
    cw, cp = agg(d.get("checksum") for d in w), agg(d.get("checksum") for d in p)
    if cw is None or cp is None:
        return "Data checksum: not reported by both sides."
    same = abs(cw - cp) <= 1e-6 * max(1.0, abs(cw))
    return (f"Both sides ingest the same generated items (checksum weft {cw:.6f}, baseline {cp:.6f}: "
            + ("equal to float rounding, within 1e-6 relative" if same
               else "DIFFERENT, the ratios below compare different data") + ").")


def sec_e2e(r: Run) -> list[str]:
    out = ["## 4. End to end: text->image query over a collection", ""]
    w, p = e2e(r, "weft"), e2e(r, "python")
    if not w and not p:
        return out + [f"weft: {r.why('e2e', 'weft')}; baseline: {r.why('e2e', 'python')}.", ""]
    d = (w or p)[0]
    stack = (p[0].get("stack") if p else None) or "faiss IndexHNSWFlat + numpy + onnxruntime"
    out.append(f"{nreps(w + p)}. {num(d.get('items'))} items ({d.get('dim', 384)}-d pooled vector + {d.get('tokens', 49)} "
               f"token vectors each, tokens stored as {d.get('dtype', 'f16')}), {d.get('queries', '?')} text queries served "
               f"one at a time after reopening the collection: text encoding (starter-vl text model), HNSW top "
               f"{d.get('rerank', 100)} at ef {d.get('ef', 128)}, re-ranked by FILIP late interaction (mean over query "
               "tokens of the max cosine to an item token), top 10; the search on one thread, the text model on "
               f"{d.get('threads', '?')} on both sides. Baseline: the same pipeline written with "
               f"{stack} (`bench/e2e_python.py`: tokens in an f16 `.npy` memory map, gathered and converted to f32 "
               "per query, one matmul + max + mean).")
    out += ["", e2e_data_line(w, p), "",
            "| figure | weft | Python baseline | baseline ÷ weft |", "|---|---|---|---|"]
    for label, f in [("query p50 ms, excluding text encoding", "excl_encode.p50_ms"),
                     ("query p99 ms, excluding text encoding", "excl_encode.p99_ms"),
                     ("query p50 ms, including text encoding", "incl_encode.p50_ms"),
                     ("query p99 ms, including text encoding", "incl_encode.p99_ms")]:
        out.append(f"| {label} | {r.cell('e2e', 'weft', w, f)} | {r.cell('e2e', 'python', p, f)} | "
                   f"{ratio(agg(get(x, f) for x in p), agg(get(x, f) for x in w))} |")
    w8, p8 = e2e(r, "weft", True), e2e(r, "python", True)
    for label, f in [("query p50 ms, including text encoding, int8 text tower", "incl_encode.p50_ms"),
                     ("query p99 ms, including text encoding, int8 text tower", "incl_encode.p99_ms")]:
        out.append(f"| {label} | {r.cell('e2e', 'weft', w8, f)} | {r.cell('e2e', 'python', p8, f)} | "
                   f"{ratio(agg(get(x, f) for x in p8), agg(get(x, f) for x in w8))} |")
    out += ["", "baseline ÷ weft above 1 means weft is faster. The int8 rows are a second run of the same pipeline "
            "with `starter-vl-int8` (built by models/build.sh with models/derive_int8.py: starter-vl with the text "
            "tower's MatMul weights int8 per output channel, the same image tower; its text embeddings' cosine to fp32 "
            "on held-out texts is written in its bundle.toml, and models/derive_int8.py refuses below 0.98), the same ONNX file on both sides.", ""]
    return out


def sec_storage(r: Run) -> list[str]:
    out = ["## 5. Memory and disk", ""]
    w, p = e2e(r, "weft"), e2e(r, "python")
    if w or p:
        d = (w or p)[0]
        out.append(f"Ingesting the {num(d.get('items'))} items of section 4 ({nreps(w + p)}), same data, tokens as "
                   f"{d.get('dtype', 'f16')} on both sides, index builds on {d.get('threads_build', d.get('threads', '?'))} "
                   "threads; weft commits every 2,000 items (write-ahead log + fsync; a checkpoint writes the embeddings "
                   "and metadata again into a segment and hard-links the log as its token file, so token blocks are "
                   "written once), the baseline adds to faiss in chunks of 2,000 and appends the tokens to an "
                   "`.npy` file once, without fsync. Ingest time excludes generating the items. Peak RSS is taken after "
                   "ingest, before the text model loads. Open = weft `Collection::open` / faiss `read_index` + "
                   "`np.load(mmap_mode='r')` + the id list, page cache warm.")
        out += ["", "| figure | weft | Python baseline | baseline ÷ weft |", "|---|---|---|---|"]
        for label, f in [("peak RSS while ingesting, MB", "peak_rss_ingest_mb"),
                         ("bytes per item on disk", "bytes_per_item"),
                         ("open ms", "open_ms"),
                         ("ingest s", "ingest_s")]:
            out.append(f"| {label} | {r.cell('e2e', 'weft', w, f)} | {r.cell('e2e', 'python', p, f)} | "
                       f"{ratio(agg(get(x, f) for x in p), agg(get(x, f) for x in w))} |")
        out += ["", "baseline ÷ weft above 1 means weft uses less / is faster.", ""]
    s = r.ok("storage", "weft")
    if not s:
        return out + [f"Per-dtype sizes: {r.why('storage', 'weft')}.", ""]
    d = s[0]
    # the baseline's bytes per item for a layout: its faiss index + ids per item (measured in the
    # e2e run) + the raw token matrix at that dtype (an .npy is a 128-byte header + the raw array)
    fb = p[0].get("files_bytes") if p else None
    per_item_fixed = None
    if fb and p[0].get("items"):
        per_item_fixed = (fb.get("index.faiss", 0) + fb.get("ids.json", 0)) / p[0]["items"]
    dim, ntok = d.get("dim", 384), d.get("tokens", 50)

    def baseline(dtype: str) -> float | None:
        width = {"f32": 4, "f16": 2}.get(dtype)
        if per_item_fixed is None or width is None:
            return None
        return per_item_fixed + ntok * dim * width

    out.append(f"Bytes per item per token dtype and pooling factor ({nreps(s)}, {num(d.get('items'))} items, {dim}-d "
               f"pooled + {ntok} token vectors each; open = time to open the collection, mapped segments). "
               "Baseline = the section-4 layout (faiss index + ids, measured there, per item) plus a raw "
               f"{ntok} x {dim} token array at that dtype; numpy has no int8-with-scale layout, so i8 is compared with "
               "the f16 baseline, and the baseline does not pool, so pooled rows are compared with all tokens.")
    out += ["", "| token dtype | pooling | weft bytes per item | weft open ms | baseline bytes per item | baseline ÷ weft |",
            "|---|---|---|---|---|---|"]
    rows = defaultdict(lambda: {"bytes_per_item": [], "open_ms": []})
    order = []
    for x in s:
        for row in x.get("rows", []):
            key = (str(row.get("dtype")), str(row.get("pool")))
            if key not in rows:
                order.append(key)
            rows[key]["bytes_per_item"].append(row.get("bytes_per_item"))
            rows[key]["open_ms"].append(row.get("open_ms"))
    for key in order:
        base_dtype = "f16" if key[0] == "i8" else key[0]
        b = baseline(base_dtype)
        label = "–" if b is None else f"{fmt(b)} ({base_dtype})"
        out.append(f"| {key[0]} | {key[1]} | {spread(rows[key]['bytes_per_item'])} | {spread(rows[key]['open_ms'])} | "
                   f"{label} | {ratio(b, agg(rows[key]['bytes_per_item']))} |")
    return out + [""]


# ---------------------------------------------------------------------------- goals

# What limits a figure that misses its goal, as measured outside this run (profiles need perf and
# long runs); each says when and how. A figure that meets its goal shows no line.
LIMITS = {
    "ingest": "each token block is written once since 7da67b1 (the log becomes the segment's .tlog) and the index "
              "links a batch while the log is written and fsynced; what remains per 2,000 items (2026-12-02): "
              "HNSW linking ~180 ms on 2 threads, the log's write + fsync ~70 ms beside it, item preparation; "
              "two runs by hand: 18.0 and 19.1 s",
    "rss": "what the writer holds (2026-12-02, after 7da67b1, 374 MB): the index's f32 vectors and i8 codes "
           "(~190 MB at 100k x 384), one staged batch of 2,000 items (~75 MB of f16 tokens), the process",
    "scale": "Profiled on 2026-12-02 (fc278ce, perf major-faults): a cold open reads and checks the 145 MB graph "
             "and the 55 segments' index files, and the first query's walk waits hop by hop for the first touch of "
             "the 16 KiB chunks of the nodes it reaches",
}


def scale_lines(r: Run) -> tuple[dict | None, list[dict]]:
    """The `scale` build line and its cold open-only tries (scripts/bench.sh runs both)."""
    built = [d for d in r.ok("scale", "weft") if not d.get("open_only")]
    cold = [d for d in r.ok("scale", "weft") if d.get("open_only")]
    return (built[0] if built else None), cold


def scale_split(cold: list[dict]) -> str:
    """Where the cold tries' time went: the open, then the first query."""
    o = vals(c.get("first_open_ms") for c in cold)
    q = vals(c["first_open_and_query_ms"] - c["first_open_ms"] for c in cold
             if isinstance(c.get("first_open_and_query_ms"), (int, float)) and isinstance(c.get("first_open_ms"), (int, float)))
    w = vals(x for c in cold for x in (c.get("open_ms") or []))
    if not (o and q):
        return ""
    return (f"in this run the open took {spread(o)} ms (warm {spread(w)} ms) and the first query after it "
            f"{spread(q)} ms. ")


def sec_scale(r: Run) -> list[str]:
    out = ["## 6. One large collection", ""]
    b, cold = scale_lines(r)
    if b is None and not cold:
        return out + [r.why("scale", "weft"), ""]
    d = b or cold[0]
    how = sorted({str(c.get("evicted")) for c in cold if c.get("evicted")})
    out += [f"`bench scale`: {num(d.get('items'))} synthetic items (embeddings around 1000 random centres, "
            f"{d.get('tokens')} {d.get('dtype')} token rows each from a pool of 4096), {d.get('dim')}-d, commits of "
            "10,000, default settings (M 16, ef_construction 200, ef 128), built once by the bench process on the "
            "rayon pool. Then, 5 times, a fresh process opens it and answers one query with the collection's files "
            "evicted from the page cache (" + (", ".join(how) if how else "–") + "): `first_open*` are that "
            "process's first open and first query. Warm figures come from the same processes after that.", "",
            "| figure | value |", "|---|---|"]
    if b is not None:
        out += [f"| build, s (items/s) | {fmt(b.get('build_s'))} ({fmt(b.get('items_per_s'))}) |",
                f"| disk, GB (bytes per item, segments) | {fmt((b.get('disk_bytes') or 0) / 1e9)} "
                f"({fmt(b.get('bytes_per_item'))}, {b.get('segments')}) |",
                f"| peak RSS while building, MB | {fmt(b.get('build_peak_rss_mb'))} |"]
    else:
        out.append(f"| build | {r.why('scale', 'weft')} |")
    if cold:
        tries = lambda f: ", ".join(fmt(c.get(f)) for c in cold)  # noqa: E731
        out += [f"| open, page cache evicted, ms ({len(cold)} tries) | {tries('first_open_ms')} |",
                f"| open + first query, page cache evicted, ms | {tries('first_open_and_query_ms')} |",
                "| open, warm, ms | " + spread([x for c in cold for x in (c.get("open_ms") or [])]) + " |",
                "| ANN query p50 / p99 after the opens, ms | " + spread([c.get("query_p50_ms") for c in cold])
                + " / " + spread([c.get("query_p99_ms") for c in cold]) + " |",
                "| recall@10 vs an exact scan (100 queries) | " + fmt_recall(agg(c.get("recall_at_10") for c in cold))
                + " |"]
    else:
        out.append(f"| cold open + first query | {NM} ({'; '.join(r.errors.get(('scale', 'weft'), [])) or 'no try ran'}) |")
    return out + [""]


def sec_goals(r: Run) -> list[str]:
    """The performance goals side by side: figure, weft, baseline, goal, met (or what limits it)."""
    out = ["## Goals", "",
           "The performance issue's goals, from the figures below (this run). \"no\" carries what limits the "
           "figure.", "",
           "| figure | weft | baseline | goal | met |", "|---|---|---|---|---|"]

    def row(fig, wv, bv, goal, met, limit=""):
        verdict = "–" if met is None else ("yes" if met else "no" + (f": {limit}" if limit else ""))
        out.append(f"| {fig} | {wv} | {bv} | {goal} | {verdict} |")

    peaks = r.ok("peak", "fma-loop")
    for dt, goal in (("f32", 6.0), ("f16", 6.0), ("bf16", None), ("i8", 1.6)):
        w = maxsim_weft(r, dt)
        ms = agg(d.get("ms_median") for d in w)
        base = agg(d.get("ms_median") for d in r.ok("maxsim", "numpy", dtype="f32"))
        g = agg(d.get("gflops") for d in w)
        limit = agg(d.get({"i8": "i8_gops", "bf16": "bf16_gflops"}.get(dt, "f32_gflops")) for d in peaks)
        if dt == "bf16" and not limit and peaks and peaks[0].get("bf16") is False:
            limit = agg(d.get("f32_gflops") for d in peaks)  # no BF16: the f32 kernel ran
        lim = (f"{100 * g / limit:.0f}% of the core's measured limit" if g and limit else "")
        h = maxsim_weft(r, dt, hot=True)
        hms = agg(1000 / HOT_DOCS * d["ms_median"] for d in h if d.get("ms_median"))
        hg = agg(d.get("gflops") for d in h)
        if ms and hms and hg and limit:
            lim += (f"; with the tokens in cache the same kernel takes {fmt(hms)} ms per 1,000 docs "
                    f"({100 * hg / limit:.0f}% of the limit), so ~{fmt(max(ms - hms, 0))} ms is the wait for the "
                    f"{fmt(w[0]['docs'] * w[0]['nd'] * w[0]['dim'] * {'f32': 4, 'f16': 2, 'bf16': 2, 'i8': 1}[dt] / 2**20)} MiB "
                    "of tokens from memory and the rest "
                    + ("the kernel itself, which converts each 8-row tile of halves to f32 for the f32 FMA kernel "
                       "(the bf16 row stores the same 2 bytes per value)" if dt == "f16" else "the kernel itself"))
            lim += {
                "f32": ("; one core streams those bytes in ~1.3 ms (23-25 GB/s, a C loop of 512-bit loads, by hand "
                        "on 2026-12-03), so the wait is latency the prefetch does not hide, not bandwidth"),
                "i8": ("; by hand on 2026-12-03 a C model of the tile loop alone (`vpdpbusd` fed by 2 query loads and "
                       "8 broadcasts per 16 products, no epilogue, in cache) ran at ~80% of the VNNI limit, and the "
                       "row sums that the u8 query's correction needs cost ~0.08 ms per 1,000 docs"),
            }.get(dt, "")
        if goal is None:  # bf16: no goal of its own, shown beside f16 (same size)
            row(f"MaxSim 32 × 1000 × 64 × 128, {dt} (query rounded to bf16 too), 1 core, ms", fmt(ms) if ms else NM,
                f"numpy f32 {fmt(base)}" if base else "–", "– (no goal; f16's is ≤ 6.0 at the same size)", None)
            continue
        row(f"MaxSim 32 × 1000 × 64 × 128, {dt}, 1 core, ms", fmt(ms) if ms else NM,
            f"numpy f32 {fmt(base)}" if base else "–", f"≤ {goal}", None if ms is None else ms <= goal, lim)

    for ds, target in (("clustered", 0.95), ("real", 0.99)):
        best = {}
        for impl in ("weft", "faiss", "hnswlib"):
            for d in r.by.get(("ann", impl), []):
                if not str(d.get("dataset", "")).startswith(ds):
                    continue
                for res in d.get("results", []):
                    if (res.get("recall") or 0) >= target and (res.get("qps") or 0) > best.get(impl, (0, 0))[0]:
                        best[impl] = (res["qps"], res.get("ef"))
        wv, fv, hv = best.get("weft"), best.get("faiss"), best.get("hnswlib")
        cell = lambda v: f"{fmt(v[0])} (ef {v[1]})" if v else "not reached"  # noqa: E731
        row(f"HNSW QPS at recall@10 ≥ {target}, {ds}", cell(wv), f"faiss {cell(fv)}, hnswlib {cell(hv)}",
            "≥ faiss", None if not (wv or fv) else bool(wv and (not fv or wv[0] >= fv[0])))

    w, p = e2e(r, "weft"), e2e(r, "python")
    wi, pi = agg(get(d, "ingest_s") for d in w), agg(get(d, "ingest_s") for d in p)
    row(f"ingest {num((w or p or [{}])[0].get('items'))} items with 49 f16 tokens, s", fmt(wi) if wi else NM,
        fmt(pi) if pi else NM, "≤ baseline", None if not (wi and pi) else wi <= pi, LIMITS["ingest"])
    wr, pr = agg(get(d, "peak_rss_ingest_mb") for d in w), agg(get(d, "peak_rss_ingest_mb") for d in p)
    row("peak RSS while ingesting, MB", fmt(wr) if wr else NM, fmt(pr) if pr else NM, "≤ 1.2 × baseline",
        None if not (wr and pr) else wr <= 1.2 * pr, LIMITS["rss"])

    ew, ep = starter(r.ok("encode", "weft")), starter(r.ok("encode", "python"))
    fw, fp = agg(d.get("images_per_s") for d in ew), agg(d.get("images_per_s") for d in ep)
    iw = agg(d.get("inference_only_images_per_s") for d in ew)
    lim = ""
    if fw and iw and fp:
        thr = (ew[0].get("threads") or 2)
        # CPU per image: inference alone keeps `thr` cores busy at iw images/s; the full pipeline at fw
        spent, infer, need = 1e3 * thr / fw, 1e3 * thr / iw, 1e3 * thr / (2 * fp)
        lim = (f"on {thr} cores decode + preprocess and inference share the cores: inference alone costs "
               f"{infer:.1f} ms of CPU per image ({fmt(iw)} images/s), the full pipeline {spent:.1f} ms, so decode + "
               f"preprocess cost at most ~{spent - infer:.1f} ms (less if the cores idle); 2× the baseline ({fmt(2 * fp)} images/s) leaves them "
               f"{max(need - infer, 0):.1f} ms")
    row("image encode, full pipeline, images/s", fmt(fw) if fw else NM, fmt(fp) if fp else NM,
        "≥ 2 × baseline", None if not (fw and fp) else fw >= 2 * fp, lim)

    for label, ls, bs in (("fp32 text tower", w, p), ("int8 text tower", e2e(r, "weft", True), e2e(r, "python", True))):
        q, b = agg(get(d, "incl_encode.p50_ms") for d in ls), agg(get(d, "incl_encode.p50_ms") for d in bs)
        x = agg(get(d, "excl_encode.p50_ms") for d in ls)
        lim = f"the text model takes ~{q - x:.2f} ms of it (p50 with minus p50 without)" if q and x else ""
        row(f"text→image query p50 incl. text encoding, {label}, ms", fmt(q) if q else NM, fmt(b) if b else NM,
            "≤ 3.5", None if q is None else q <= 3.5, lim)

    b, cold = scale_lines(r)
    v = vals(c.get("first_open_and_query_ms") for c in cold)
    n = (b or (cold or [{}])[0]).get("items")
    above = sum(x > 500 for x in v)
    cell = (f"{fmt(statistics.median(v))} median ({fmt(min(v))}–{fmt(max(v))}, {len(v)} tries)" if v
            else r.why("scale", "weft"))
    # the goal is for 1M items: a smaller run (--quick, --scale-items) is shown, not judged
    row(f"{num(n)}-item collection: open + first query, page cache evicted, ms", cell, "–", "≤ 500 at 1,000,000",
        None if not v or n != 1_000_000 else above == 0,
        f"{above} of {len(v)} tries above 0.5 s; " + scale_split(cold) + LIMITS["scale"])
    return out + [""]

# ---------------------------------------------------------------------------- document


def render(run_id: str, lines: list[dict], manual: str) -> str:
    r = Run(lines)
    mach = next((d for d in lines if d.get("name") == "machine"), None) or live_machine()
    reps = sorted({d.get("rep") for d in lines if isinstance(d.get("rep"), int) and d.get("rep") > 0})
    out = ["# Benchmarks", "",
           "<!-- generated by bench/report.py from .weft/bench/results.jsonl; edit only the manual block -->", "",
           f"Run `{run_id}`" + (f", {mach.get('time')}" if mach.get("time") else "")
           + (f": R = {mach.get('repeat')} repetitions for encoding and MaxSim, {mach.get('ann_repeat', 1)} "
              f"for ANN, {mach.get('e2e_repeat', 1)} for end to end, {mach.get('storage_repeat', 1)} for storage sizes" if mach.get("repeat") else
              f": {len(reps) or 1} repetition(s)")
           + (" (--quick: smaller sizes)" if mach.get("quick") else "")
           + ". With more than one repetition a figure is the median over repetitions, min–max in parentheses; "
           "weft and the baseline ran alternately in the same run (order flipped every repetition), and every "
           "ratio compares figures of this run only.", "",
           "## Machine", "",
           f"- CPU: {mach.get('cpu', '?')}; {mach.get('cores', '?')} logical cores"
           + (f", SIMD: {', '.join(mach['simd'])}" if mach.get("simd") else ""),
           f"- RAM: {mach.get('ram_gib', '?')} GiB; kernel {mach.get('kernel', '?')}"
           + (f"; {mach['os']}" if mach.get("os") else ""),
           ]
    for k, label in [("git", "weft commit"), ("rustc", "rustc"), ("python", "Python")]:
        if mach.get(k):
            out.append(f"- {label}: {mach[k]}")
    if mach.get("note"):
        out.append(f"- ({mach['note']})")
    out += ["", "## Commands", "", "```sh", mach.get("command", "scripts/bench.sh").strip(), "```", "",
            "which ran (first repetition; paths relative to the repository root):", "", "```sh"]
    seen = set()
    for d in lines:
        c = d.get("cmd")
        if c and d.get("rep") in (1, None) and c not in seen:
            seen.add(c)
            out.append(c)
    out += ["```", ""]
    for sec in (sec_goals, sec_encode, sec_encode_import, sec_ann, sec_maxsim, sec_e2e, sec_storage, sec_scale):
        try:
            out += sec(r)
        except Exception as e:  # noqa: BLE001 - a malformed line must not lose the whole report
            out += [f"(section failed to render: {type(e).__name__}: {e})", ""]
    out += [manual, "",
            "## Notes on noise", "",
            "- The figures come from one shared machine: other jobs share the cores and the memory bus, so "
            "absolute times move between runs by tens of percent. Compare the ratios measured in one run, "
            "never absolute numbers across runs or machines.",
            "- p99 latencies of sub-millisecond queries are dominated by scheduler preemption on a loaded machine "
            "(a time slice is milliseconds): treat p99 as an upper bound, p50 and QPS as the comparable figures.",
            "- The Python baselines pay interpreter overhead per call (one query, one batch at a time), as a "
            "Python user does; the inference-only encoding figure and the faiss/hnswlib build times exclude it.",
            "- Index builds are multi-threaded and non-deterministic (insertion order across threads), so "
            "recall moves by a few thousandths between repetitions.", ""]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path)
    ap.add_argument("--run", help="run id (default: the newest in the file)")
    ap.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    a = ap.parse_args()
    lines = load(a.results) if a.results.is_file() else []
    runs = [d.get("run_id") for d in lines if d.get("run_id")]
    run_id = a.run or (max(runs) if runs else None)
    if run_id is None:
        print(f"report: no runs in {a.results}; writing a report with nothing measured", file=sys.stderr)
        run_id = "none"
    lines = [d for d in lines if d.get("run_id") == run_id]
    manual = MANUAL_EMPTY
    if a.out.is_file():
        m = MANUAL_RE.search(a.out.read_text(encoding="utf-8"))
        if m:
            manual = m.group(0)
    text = render(run_id, lines, manual)
    tmp = a.out.with_name(f".{a.out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, a.out)
    print(f"report: wrote {a.out} from run {run_id} ({len(lines)} lines)")


if __name__ == "__main__":
    main()
