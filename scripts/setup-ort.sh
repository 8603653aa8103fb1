#!/usr/bin/env bash
# Installs the ONNX Runtime shared library that weft loads at run time.
#
#   scripts/setup-ort.sh          CPU build   -> .weft/onnxruntime/cpu/lib/
#   scripts/setup-ort.sh --gpu    CUDA build  -> .weft/onnxruntime/gpu/lib/ (+ CUDA 13 / cuDNN 9 libs)
#
# Everything comes from PyPI wheels (the only place a 1.31 build ships here);
# the wheels are unpacked with Python's zipfile, no virtualenv is needed.
# Idempotent: a finished install leaves a stamp and is skipped next time.
set -euo pipefail

ORT_VERSION=1.31.1
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
variant=cpu
package=onnxruntime
if [[ "${1:-}" == "--gpu" ]]; then
  variant=gpu
  package=onnxruntime-gpu
elif [[ -n "${1:-}" ]]; then
  echo "usage: $0 [--gpu]" >&2
  exit 2
fi

dest="$root/.weft/onnxruntime/$variant"
stamp="$dest/.installed"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$package==$ORT_VERSION" ]]; then
  echo "onnxruntime ($variant) $ORT_VERSION already installed in $dest/lib"
  exit 0
fi

command -v python3 >/dev/null || { echo "python3 (with pip) is needed to fetch the onnxruntime wheel" >&2; exit 1; }

wheels="$root/.weft/wheels"
mkdir -p "$wheels"
spec="$package==$ORT_VERSION"
if [[ "$variant" == gpu ]]; then
  # The extras pull the CUDA 13 runtime, cuBLAS, cuRAND, cuFFT, NVRTC and cuDNN 9 wheels.
  spec="$package[cuda,cudnn]==$ORT_VERSION"
  echo "downloading $spec and its CUDA wheels (about 1.5 GB) ..."
  python3 -m pip download -q --only-binary=:all: -d "$wheels/gpu" "$spec"
else
  echo "downloading $spec ..."
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$wheels" "$spec"
fi

staging="$dest.partial"
rm -rf "$staging"
mkdir -p "$staging/lib"
python3 - "$wheels" "$staging" "$variant" "$ORT_VERSION" <<'PY'
import glob, os, sys, zipfile
wheels, staging, variant, version = sys.argv[1:]
lib = os.path.join(staging, "lib")
pattern = "onnxruntime_gpu-%s-*.whl" if variant == "gpu" else "onnxruntime-%s-*.whl"
search_dir = os.path.join(wheels, "gpu") if variant == "gpu" else wheels
found = sorted(glob.glob(os.path.join(search_dir, pattern % version)))
if not found:
    sys.exit(f"no onnxruntime wheel for {version} in {search_dir}")
def extract(whl, member_filter, out):
    n = 0
    with zipfile.ZipFile(whl) as z:
        for info in z.infolist():
            name = info.filename
            base = os.path.basename(name)
            if not member_filter(name, base):
                continue
            target = os.path.join(out, base)
            with z.open(info) as src, open(target + ".tmp", "wb") as dst:
                dst.write(src.read())
            os.chmod(target + ".tmp", 0o755)
            os.replace(target + ".tmp", target)
            n += 1
    return n
# The runtime itself (and, for the GPU build, its provider libraries).
n = extract(found[0], lambda name, base: name.startswith("onnxruntime/capi/") and base.startswith("lib") and ".so" in base, lib)
if n == 0:
    sys.exit(f"{found[0]} holds no onnxruntime/capi/*.so*")
if variant == "gpu":
    cuda = os.path.join(staging, "cuda")
    os.makedirs(cuda, exist_ok=True)
    for whl in sorted(glob.glob(os.path.join(search_dir, "nvidia_*.whl"))):
        extract(whl, lambda name, base: name.startswith("nvidia/") and "/lib/" in name and ".so" in base, cuda)
# An unversioned name, as dlopen users expect.
versioned = os.path.join(lib, f"libonnxruntime.so.{version}")
if not os.path.exists(versioned):
    sys.exit(f"the wheel has no libonnxruntime.so.{version}")
os.symlink(os.path.basename(versioned), os.path.join(lib, "libonnxruntime.so"))
PY
echo "$package==$ORT_VERSION" > "$staging/.installed"
rm -rf "$dest"
mv "$staging" "$dest"
echo "onnxruntime ($variant) $ORT_VERSION installed in $dest/lib"
