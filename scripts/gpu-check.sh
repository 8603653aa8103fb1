#!/usr/bin/env bash
# CUDA, checked for real, on a machine with an NVIDIA GPU (one command, bounded):
#  1. scripts/setup-ort.sh --gpu: the CUDA build of ONNX Runtime (+ CUDA / cuDNN
#     libraries from their PyPI wheels) into .weft/onnxruntime/gpu/;
#  2. `weft doctor --json --device cuda` must report a CUDA probe that ran on
#     CUDAExecutionProvider (not a fallback);
#  3. the encode and e2e benchmarks with --device cuda (and cpu beside them,
#     same run), each JSON line saying which provider ran, into
#     .weft/bench/gpu-results.jsonl.
# Needs the starter bundles (models/build.sh --vl-only) and a release build;
# it makes them when missing. Exits non-zero when CUDA did not really run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
step() { printf '\n== %s\n' "$*"; }
out=.weft/bench/gpu-results.jsonl
mkdir -p .weft/bench

command -v nvidia-smi >/dev/null || { echo "gpu-check: no nvidia-smi: no NVIDIA GPU here" >&2; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

step "ONNX Runtime, CUDA build (scripts/setup-ort.sh --gpu) and the starter bundle"
scripts/setup-ort.sh --gpu
[[ -d .weft/models/starter-vl ]] || models/build.sh --vl-only
gpu_lib="$(ls .weft/onnxruntime/gpu/lib/libonnxruntime.so* | head -1)"

step "release build (weft, examples/bench)"
cargo build --release --locked --features cli --bin weft --example bench

step "weft doctor --device cuda: the CUDA probe must run on CUDAExecutionProvider"
target/release/weft --ort-lib "$gpu_lib" doctor --json --device cuda | tee .weft/bench/gpu-doctor.json
python3 - .weft/bench/gpu-doctor.json <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
rt = d.get("runtime") or {}
rt = rt.get("Ok", rt)
probe = rt.get("cuda_probe")
probe = probe.get("Ok") if isinstance(probe, dict) and "Ok" in probe else probe
if not (isinstance(probe, str) and "CUDA" in probe):
    sys.exit(f"gpu-check: CUDA did not run: cuda_probe = {rt.get('cuda_probe')!r}")
print("gpu-check: CUDA probe ran on", probe)
PY

images=.weft/bench/images-gpu
if [[ ! -d $images ]]; then
  mkdir -p "$images.tmp"
  i=0
  for rep in $(seq 1 15); do
    for f in .weft/data/photos/*.{jpg,png}; do
      [[ -e $f ]] || continue
      cp "$f" "$images.tmp/$(printf '%04d' $i)_$(basename "$f")"; i=$((i + 1))
    done
  done
  mv "$images.tmp" "$images"
fi

run() { echo "   $*"; WEFT_ORT_LIB="$gpu_lib" timeout 900 target/release/examples/bench "$@" | tee -a "$out"; }
for dev in cuda cpu; do
  step "encode --device $dev"
  run encode --bundle .weft/models/starter-vl --images "$images" --threads 4 --repeat 3 --device "$dev"
  step "e2e --device $dev"
  run e2e --items 20000 --dim 384 --tokens 49 --rerank 100 --queries 200 \
    --bundle .weft/models/starter-vl --threads 4 --device "$dev"
done
python3 - "$out" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
cuda = [l for l in lines if l.get("device", "").startswith("cuda")]
bad = [l for l in cuda if not all("CUDA" in p for p in l.get("providers", {}).values())]
if not cuda or bad:
    sys.exit(f"gpu-check: a --device cuda benchmark did not run on CUDA: {bad or 'none ran'}")
print("gpu-check: CUDA ran for", ", ".join(l["name"] for l in cuda))
PY
step "done: $out"
