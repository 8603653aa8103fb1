#!/usr/bin/env bash
# weft's benchmarks against the Python baselines, in one command, from a fresh clone.
#
#   scripts/bench.sh                 full run: encode / maxsim R=3 times; ANN, e2e, storage once
#                                    (a 100k x 384 HNSW build takes 1.5-2.5 min per library on 2 cores)
#   scripts/bench.sh --quick         R=1, 20k-vector datasets, fewer images, a 2 min text budget
#   scripts/bench.sh --repeat 5      R=5 for encode / maxsim
#   scripts/bench.sh --storage-repeat 3  R for the storage table (default 1: sizes are deterministic)
#   scripts/bench.sh --ann-repeat 3  R for the ANN comparison (default 1)
#   scripts/bench.sh --e2e-repeat 3  R for the e2e figure (default 1)
#   scripts/bench.sh --real-budget-s 240   time budget for embedding the real dataset (default 360)
#   scripts/bench.sh --threads 4     intra-op threads for encoding / index builds, both sides (default 2)
#   scripts/bench.sh --only encode,import,ann,maxsim,e2e,storage,scale   run a subset (default: all;
#                                    `import` needs .weft/fixtures-venv, made by models/fixtures.sh)
#   scripts/bench.sh --scale-items 1000000   items of the `scale` collection (default 1,000,000, --quick
#                                    100,000): a 1M build takes ~9 min and ~23 GB of disk under .weft/bench/,
#                                    then 5 opens + first query with the collection evicted from the page
#                                    cache; the collection is removed at the end
#   scripts/bench.sh --no-build      skip setup-ort / models/build.sh / cargo (use what is there)
#   scripts/bench.sh --no-report     do not regenerate BENCHMARKS.md
#
# Steps: (a) scripts/setup-ort.sh + models/build.sh, (b) cargo build --release --locked
# --examples, (c) .weft/bench-venv with bench/requirements.txt (stamp = sha256 of the file),
# (d) bench/data.py -> .weft/bench/ (idempotent), (e) the benchmarks, weft and baseline
# alternating within each repetition (the order flips every repetition), (f) bench/report.py
# -> BENCHMARKS.md. The `scale` step evicts the collection's files from the page cache before each
# cold open: `echo 1 > /proc/sys/vm/drop_caches` where that is writable, else GNU dd's
# `iflag=nocache count=0` on every file (the line records which). Every JSON line (weft's `target/release/examples/bench` and the Python
# baselines) is appended to .weft/bench/results.jsonl with the run id, repetition and the
# exact command; a step that fails is recorded as {"error": ...} and the run continues.
# Compare ratios from ONE run: this machine is shared and absolute times drift.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

REPEAT=3
ANN_REPEAT=1
E2E_REPEAT=1
STORAGE_REPEAT=1
REAL_BUDGET=""
QUICK=0
THREADS=2
ONLY="encode,import,ann,maxsim,e2e,storage,scale"
SCALE_ITEMS=""
BUILD=1
REPORT=1
ARGS="$*"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1; REPEAT=1 ;;
    --repeat) REPEAT="$2"; shift ;;
    --ann-repeat) ANN_REPEAT="$2"; shift ;;
    --e2e-repeat) E2E_REPEAT="$2"; shift ;;
    --storage-repeat) STORAGE_REPEAT="$2"; shift ;;
    --real-budget-s) REAL_BUDGET="$2"; shift ;;
    --threads) THREADS="$2"; shift ;;
    --only) ONLY="$2"; shift ;;
    --scale-items) SCALE_ITEMS="$2"; shift ;;
    --no-build) BUILD=0 ;;
    --no-report) REPORT=0 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "scripts/bench.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
for v in "$REPEAT" "$ANN_REPEAT" "$E2E_REPEAT" "$STORAGE_REPEAT"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "--repeat / --ann-repeat / --e2e-repeat / --storage-repeat need a positive integer" >&2; exit 2; }
done
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || { echo "--threads needs a positive integer" >&2; exit 2; }
[[ -z "$SCALE_ITEMS" || "$SCALE_ITEMS" =~ ^[1-9][0-9]*$ ]] || { echo "--scale-items needs a positive integer" >&2; exit 2; }
want() { [[ ",$ONLY," == *",$1,"* ]]; }
# weft's index builds use the rayon pool: the same thread count as the baselines
export RAYON_NUM_THREADS="$THREADS"

BENCH_DIR=.weft/bench
VENV=.weft/bench-venv
PY="$VENV/bin/python"
BUNDLE=.weft/models/starter-vl
BUNDLE_INT8=.weft/models/starter-vl-int8   # starter-vl with an int8 text tower (models/derive_int8.py)
WEFT_BENCH=target/release/examples/bench
RESULTS="$BENCH_DIR/results.jsonl"
RUN_ID="$(date -u +%Y%m%dT%H%M%SZ)"
START=$(date +%s)
mkdir -p "$BENCH_DIR"
LOG="$BENCH_DIR/run-$RUN_ID.log"

if [[ $QUICK == 1 ]]; then
  N=20000; REAL_BUDGET=${REAL_BUDGET:-120}; IMAGES=56; E2E_ITEMS=20000; E2E_QUERIES=50
  STORAGE_ITEMS=5000; MAXSIM_RUNS=10; EFS=16,64,256; SCALE_ITEMS=${SCALE_ITEMS:-100000}
else
  N=100000; REAL_BUDGET=${REAL_BUDGET:-360}; IMAGES=200; E2E_ITEMS=100000; E2E_QUERIES=200
  STORAGE_ITEMS=20000; MAXSIM_RUNS=25; EFS=16,32,64,128,256; SCALE_ITEMS=${SCALE_ITEMS:-1000000}
fi
K=$(( N / 1000 ))k

step() { printf '\n== [%4ds] %s\n' "$(( $(date +%s) - START ))" "$*" | tee -a "$LOG"; }

# ---------------------------------------------------------------------------- (a) + (b)
if [[ $BUILD == 1 ]]; then
  step "ONNX Runtime (scripts/setup-ort.sh)"
  scripts/setup-ort.sh 2>&1 | tee -a "$LOG"
  step "model bundles (models/build.sh --vl-only; from an empty .weft/ this is the slow part)"
  models/build.sh --vl-only 2>&1 | grep -v '^\(templates\|license\|description\) = ' | tee -a "$LOG"
  step "cargo build --release --locked --features server --bins --examples"
  cargo build --release --locked --features server --bins --examples 2>&1 | tee -a "$LOG"
fi
if [[ -z "${WEFT_ORT_LIB:-}" && -e .weft/onnxruntime/cpu/lib/libonnxruntime.so ]]; then
  export WEFT_ORT_LIB="$root/.weft/onnxruntime/cpu/lib/libonnxruntime.so"
fi

# ---------------------------------------------------------------------------- (c)
step "Python baselines venv ($VENV)"
HNSWLIB="hnswlib==0.8.0"
want_hash="$( (cat bench/requirements.txt; echo "$HNSWLIB native") | sha256sum | cut -d' ' -f1)"
stamp="$VENV/.requirements.sha256"
if [[ ! -x "$PY" || "$(cat "$stamp" 2>/dev/null)" != "$want_hash" ]]; then
  "${PYTHON:-python3}" -m venv "$VENV"
  "$PY" -m pip install --disable-pip-version-check -q -r bench/requirements.txt
  # A fair hnswlib: upstream's sdist compiled here for this CPU (-march=native is
  # setup.py's default unless HNSWLIB_NO_NATIVE is set), not a generic wheel.
  "$PY" -m pip uninstall -y -q chroma-hnswlib 2>/dev/null || true
  env -u HNSWLIB_NO_NATIVE "$PY" -m pip install --disable-pip-version-check -q \
    --no-build-isolation --no-binary hnswlib --no-cache-dir "$HNSWLIB"
  echo "$want_hash" > "$stamp.tmp" && mv "$stamp.tmp" "$stamp"
fi
echo "hnswlib: $("$PY" -c 'import hnswlib, importlib.metadata as m; print("hnswlib", m.version("hnswlib"), "built here from the sdist with -O3 -march=native:", hnswlib.__file__)')" | tee -a "$LOG"
echo "venv ok: $("$PY" -c 'import numpy, onnxruntime, faiss; print("numpy", numpy.__version__, "onnxruntime", onnxruntime.__version__, "faiss", faiss.__version__)')" | tee -a "$LOG"

# ---------------------------------------------------------------------------- (d)
if want ann; then
  step "datasets (bench/data.py)"
  DATA_ARGS=(--out "$BENCH_DIR" --clustered-n "$N" --real-n "$N" --real-budget-s "$REAL_BUDGET" --threads "$THREADS")
  "$PY" bench/data.py "${DATA_ARGS[@]}" 2>&1 | tee -a "$LOG"
fi

# photos repeated to $IMAGES files (hard links, copies where links fail)
IMG_DIR="$BENCH_DIR/images-$IMAGES"
if want encode && [[ ! -f "$IMG_DIR/.complete" ]]; then
  rm -rf "$IMG_DIR.tmp" && mkdir -p "$IMG_DIR.tmp"
  mapfile -t photos < <(find .weft/data/photos -maxdepth 1 -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) | sort)
  [[ ${#photos[@]} -gt 0 ]] || { echo "no photos in .weft/data/photos (models/build.sh puts them there)" >&2; exit 1; }
  for ((i = 0; i < IMAGES; i++)); do
    src="${photos[$(( i % ${#photos[@]} ))]}"
    dst="$IMG_DIR.tmp/$(printf '%04d' "$i")_$(basename "$src")"
    ln "$src" "$dst" 2>/dev/null || cp "$src" "$dst"
  done
  touch "$IMG_DIR.tmp/.complete"
  rm -rf "$IMG_DIR" && mv "$IMG_DIR.tmp" "$IMG_DIR"
  echo "images: $IMG_DIR ($IMAGES files, the photos of .weft/data/photos repeated)" | tee -a "$LOG"
fi

# ---------------------------------------------------------------------------- (e)
# Benchmarks must not stop the run: record failures and carry on.
set +e
# record BENCH IMPL REP CMD...: runs CMD, appends its JSON stdout lines (tagged) to $RESULTS;
# a failure or a run without any JSON line becomes {"name":BENCH,"impl":IMPL,"error":...}.
record() {
  local bench="$1" impl="$2" rep="$3"; shift 3
  local out err rc
  out="$(mktemp)"; err="$(mktemp)"
  printf '   %s %s rep %s: %s\n' "$bench" "$impl" "$rep" "$*" | tee -a "$LOG"
  local t0; t0=$(date +%s.%N)
  "$@" >"$out" 2>"$err"; rc=$?
  local t1; t1=$(date +%s.%N)
  cat "$err" >> "$LOG"
  "$PY" - "$out" "$err" "$rc" "$RUN_ID" "$rep" "$bench" "$impl" "$t0" "$t1" "$*" "${RECORD_EXTRA:-}" >> "$RESULTS" <<'PYEOF'
import json, sys, time
out, err, rc, run, rep, bench, impl, t0, t1, cmd, extra = sys.argv[1:]
lines = []
for raw in open(out, encoding="utf-8", errors="replace"):
    raw = raw.strip()
    if raw.startswith("{"):
        try:
            lines.append(json.loads(raw))
        except ValueError:
            pass
tail = open(err, encoding="utf-8", errors="replace").read().strip().splitlines()[-5:]
if not lines or rc != "0":
    msg = f"exit status {rc}" if rc != "0" else "no JSON line on stdout"
    lines.append({"name": bench, "impl": impl, "error": msg, "stderr_tail": tail})
for d in lines:
    d.setdefault("name", bench)
    d.setdefault("impl", impl)
    d.update(json.loads(extra) if extra else {})
    d.update({"run_id": run, "rep": int(rep), "cmd": cmd, "wall_s": round(float(t1) - float(t0), 2),
              "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(t1)))})
    print(json.dumps(d))
    status = d.get("error") or d.get("skipped") or "ok"
    print(f"   -> {d['name']} {d['impl']}: {status} ({d['wall_s']} s)", file=sys.stderr)
PYEOF
  rm -f "$out" "$err"
}

# machine + run description (report.py reads it)
"$PY" - "$RUN_ID" "$ARGS" "$REPEAT" "$QUICK" "$THREADS" "$ANN_REPEAT" "$E2E_REPEAT" "$STORAGE_REPEAT" >> "$RESULTS" <<'PYEOF'
import json, os, platform, subprocess, sys, time
run, args, rep, quick, threads, ann_rep, e2e_rep, storage_rep = sys.argv[1:]
def sh(c):
    try:
        return subprocess.run(c, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return ""
lscpu = {}
for line in sh("LC_ALL=C lscpu").splitlines():
    if ":" in line:
        k, v = line.split(":", 1)
        lscpu[k.strip()] = v.strip()
mem_kb = 0
for line in open("/proc/meminfo"):
    if line.startswith("MemTotal:"):
        mem_kb = int(line.split()[1])
flags = lscpu.get("Flags", "").split()
print(json.dumps({"name": "machine", "impl": "-", "run_id": run, "rep": 0,
    "cpu": lscpu.get("Model name", platform.processor()), "cores": os.cpu_count(),
    "threads_per_core": lscpu.get("Thread(s) per core"), "ram_gib": round(mem_kb / 2**20, 1),
    "kernel": platform.release(), "os": sh(". /etc/os-release && echo $PRETTY_NAME"),
    "simd": [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "neon") if f in flags],
    "git": sh("git rev-parse --short HEAD") + (" (dirty)" if sh("git status --porcelain --untracked-files=no") else ""),
    "rustc": sh("rustc --version"), "python": platform.python_version(),
    "command": "scripts/bench.sh " + args, "repeat": int(rep), "ann_repeat": int(ann_rep), "e2e_repeat": int(e2e_rep), "storage_repeat": int(storage_rep), "quick": quick == "1", "threads": int(threads),
    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
PYEOF

weft_missing=""
[[ -x "$WEFT_BENCH" ]] || weft_missing="$WEFT_BENCH not built"
# weft CMD... : run weft's bench example, or record why it could not run
weft() {
  local bench="$1" rep="$2"; shift 2
  if [[ -n "$weft_missing" ]]; then
    printf '{"name":"%s","impl":"weft","error":"%s","run_id":"%s","rep":%s}\n' "$bench" "$weft_missing" "$RUN_ID" "$rep" >> "$RESULTS"
    echo "   $bench weft rep $rep: skipped ($weft_missing)" | tee -a "$LOG"
    return
  fi
  record "$bench" weft "$rep" "$WEFT_BENCH" "$@"
}

MAX_REP=$REPEAT
(( ANN_REPEAT > MAX_REP )) && MAX_REP=$ANN_REPEAT
(( E2E_REPEAT > MAX_REP )) && MAX_REP=$E2E_REPEAT
(( STORAGE_REPEAT > MAX_REP )) && MAX_REP=$STORAGE_REPEAT
for ((rep = 1; rep <= MAX_REP; rep++)); do
  flip=$(( rep % 2 ))   # odd repetitions: weft first; even: baseline first

  if want encode && (( rep <= REPEAT )); then
    step "encode (rep $rep/$REPEAT)"
    w() { weft encode "$rep" encode --bundle "$BUNDLE" --images "$IMG_DIR" --threads "$THREADS" --repeat 1; }
    p() { record encode python "$rep" "$PY" bench/encode_python.py --bundle "$BUNDLE" --images "$IMG_DIR" --threads "$THREADS" --repeat 1; }
    if [[ $flip == 1 ]]; then w; p; else p; w; fi
  fi

  if want import && (( rep <= REPEAT )); then
    for b in "${VIT_BUNDLES[@]}"; do
      step "encode $(basename "$b") (rep $rep/$REPEAT)"
      w() { weft encode "$rep" encode --bundle "$b" --images "$IMG_DIR" --threads "$THREADS" --repeat 1; }
      p() { record encode python "$rep" "$PY" bench/encode_python.py --bundle "$b" --images "$IMG_DIR" --threads "$THREADS" --repeat 1 --outputs embeds; }
      if [[ $flip == 1 ]]; then w; p; else p; w; fi
    done
  fi

  if want maxsim && (( rep <= REPEAT )); then
    step "maxsim (rep $rep/$REPEAT)"
    MS=(--docs 1000 --nd 64 --nq 32 --dim 128 --runs "$MAXSIM_RUNS")
    # the per-core limit, measured in the same repetition: a tiny FMA (and VNNI, bf16) loop on one core
    cc -O3 -march=native -o "$BENCH_DIR/fma_peak" bench/fma_peak.c \
      && record peak fma-loop "$rep" taskset -c 0 "$BENCH_DIR/fma_peak"
    # and the same kernels with the tokens in cache (16 docs, 1 MB at f32, scored 1000 times):
    # what the kernel does without waiting for memory (report.py's limit lines)
    w() { for dt in f32 f16 bf16 i8; do
            weft maxsim "$rep" maxsim "${MS[@]}" --dtype "$dt"
            weft maxsim "$rep" maxsim --docs 16 --nd 64 --nq 32 --dim 128 --runs 1000 --dtype "$dt"
          done; }
    p() { record maxsim numpy "$rep" "$PY" bench/maxsim_numpy.py "${MS[@]}"; }
    if [[ $flip == 1 ]]; then w; p; else p; w; fi
  fi

  if want ann && (( rep <= ANN_REPEAT )); then
    for ds in "clustered-$K" "real-$K"; do
      [[ -f "$BENCH_DIR/$ds.json" ]] || { echo "   $ds: not prepared" | tee -a "$LOG"; continue; }
      step "ann $ds (rep $rep/$ANN_REPEAT)"
      A=(--data "$BENCH_DIR/$ds.f32" --queries "$BENCH_DIR/$ds-queries.f32" --truth "$BENCH_DIR/$ds-truth.i32"
         --dim 384 --k 10 --m 16 --ef-construction 200 --ef "$EFS")
      # i8: the engine's walk over i8 codes; f32: the same index walked over f32 vectors
      w() { weft ann "$rep" ann "${A[@]}" --walk i8,f32; }
      p() { record ann python "$rep" "$PY" bench/ann_python.py "${A[@]}" --threads "$THREADS"; }
      if [[ $flip == 1 ]]; then w; p; else p; w; fi
    done
  fi

  # e2e also gives section 5 its baseline: peak RSS while ingesting, bytes per item, open time
  if want e2e && (( rep <= E2E_REPEAT )); then
    step "e2e (rep $rep/$E2E_REPEAT)"
    E=(--items "$E2E_ITEMS" --dim 384 --tokens 49 --rerank 100 --queries "$E2E_QUERIES" --bundle "$BUNDLE")
    w() { weft e2e "$rep" e2e "${E[@]}" --threads "$THREADS"; }
    p() { record e2e python "$rep" "$PY" bench/e2e_python.py "${E[@]}" --threads "$THREADS"; }
    if [[ $flip == 1 ]]; then w; p; else p; w; fi
    # the same with the int8 text tower, on both sides (report.py tells the runs apart by --bundle)
    step "e2e, int8 text tower (rep $rep/$E2E_REPEAT)"
    E=(--items "$E2E_ITEMS" --dim 384 --tokens 49 --rerank 100 --queries "$E2E_QUERIES" --bundle "$BUNDLE_INT8")
    if [[ ! -f "$BUNDLE_INT8/bundle.toml" ]]; then
      for impl in weft python; do
        printf '{"name":"e2e","impl":"%s","error":"%s missing: run models/build.sh","cmd":"--bundle %s","run_id":"%s","rep":%s}\n' \
          "$impl" "$BUNDLE_INT8" "$BUNDLE_INT8" "$RUN_ID" "$rep" >> "$RESULTS"
      done
    elif [[ $flip == 1 ]]; then w; p; else p; w; fi
  fi
  # weft only (bytes per item are deterministic; the baseline's layout is computed by report.py
  # from the e2e baseline's file sizes)
  if want storage && (( rep <= STORAGE_REPEAT )); then
    step "storage (rep $rep/$STORAGE_REPEAT)"
    weft storage "$rep" storage --items "$STORAGE_ITEMS" --dim 384 --tokens 50
  fi
done

# One collection of $SCALE_ITEMS items, built once; then the first open + query of a process with
# the collection's files evicted from the page cache, 5 tries (the goal: <= 0.5 s at 1M items).
SCALE_DIR="$BENCH_DIR/scale/run-$RUN_ID"
# evict DIR: drops DIR's pages from the page cache; prints how
evict() {
  sync
  if { echo 1 > /proc/sys/vm/drop_caches; } 2>/dev/null; then
    echo "drop_caches"
  else
    find "$1" -type f -exec dd if={} iflag=nocache count=0 status=none \; && echo "dd iflag=nocache"
  fi
}
if want scale; then
  step "scale: build $SCALE_ITEMS items (bench scale; ~9 min and ~23 GB at 1M)"
  need_kb=$(( SCALE_ITEMS * 24 * 3 / 2 ))   # ~23 KB per item on disk, 1.5x headroom
  mkdir -p "$BENCH_DIR/scale"
  avail_kb=$(df -Pk "$BENCH_DIR/scale" | awk 'NR == 2 { print $4 }')
  S=(--items "$SCALE_ITEMS" --dim 384 --tokens 50 --dtype i8 --dir "$SCALE_DIR" --keep 1)
  if (( avail_kb < need_kb )); then
    msg="$(( avail_kb / 1024 / 1024 )) GB free under $BENCH_DIR, the build needs ~$(( need_kb / 1024 / 1024 )) GB"
    printf '{"name":"scale","impl":"weft","error":"%s","run_id":"%s","rep":1}\n' "$msg" "$RUN_ID" >> "$RESULTS"
    echo "   scale: skipped ($msg)" | tee -a "$LOG"
  else
    weft scale 1 scale "${S[@]}"
    if ! tail -n 1 "$RESULTS" | grep -q '"error"'; then   # a failed build is recorded, not opened
      for try in 1 2 3 4 5; do
        step "scale: cold open + first query (try $try/5)"
        how="$(evict "$SCALE_DIR")"
        RECORD_EXTRA="{\"evicted\": \"$how\"}" weft scale "$try" scale "${S[@]}" --open-only 1
      done
    fi
  fi
  rm -rf "$SCALE_DIR"
fi
set -e

# ---------------------------------------------------------------------------- (f)
if [[ $REPORT == 1 ]]; then
  step "report (bench/report.py -> BENCHMARKS.md)"
  "$PY" bench/report.py "$RESULTS" --run "$RUN_ID" --out BENCHMARKS.md 2>&1 | tee -a "$LOG"
fi
step "done: run $RUN_ID, results in $RESULTS, log in $LOG"
