#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs (ONNX
# Runtime from PyPI, the Python venv for the model builders, the starter
# bundles), runs the gates (rustfmt, clippy, rustdoc) and every test.
# Idempotent: a second run reuses .weft/ and only re-runs the checks.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '\n== %s\n' "$*"; }

step "ONNX Runtime (scripts/setup-ort.sh)"
scripts/setup-ort.sh

step "starter model bundles (models/build.sh)"
models/build.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked

export WEFT_REQUIRE_STARTER=1
step "cargo test"
if [[ -z "$(command -v nvidia-smi || true)" ]]; then
  echo "note: no NVIDIA GPU here; CUDA tests check the error path and print SKIPPED for the GPU path"
fi
cargo test --all-targets --locked
cargo test --doc --locked
