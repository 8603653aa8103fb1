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

step "cargo clippy --all-targets -D warnings (all features, then the default library alone)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
cargo clippy --lib --locked -- -D warnings
cargo clippy --features cli --bins --locked -- -D warnings

step "the default library links no CLI or daemon dependency"
heavy="$(cargo tree -e normal --prefix none --format '{p}' --locked | awk '{print $1}' | sort -u | grep -E '^(tokio|axum|hyper|clap|anyhow)$' || true)"
if [[ -n "$heavy" ]]; then
  echo "the default features pull in: $heavy" >&2
  exit 1
fi

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features --locked

export WEFT_REQUIRE_STARTER=1
step "cargo test"
if [[ -z "$(command -v nvidia-smi || true)" ]]; then
  echo "note: no NVIDIA GPU here; CUDA tests check the error path and print SKIPPED for the GPU path"
fi
cargo test --all-targets --all-features --locked
cargo test --doc --all-features --locked

step "motif parity: models/chem_motifs.py (the motifs training groups) against weft::chem::motifs"
cargo build --example dump_motifs --all-features --locked
parity="$(mktemp -d)"
.weft/venv/bin/python models/check_motif_parity.py --self-test
.weft/venv/bin/python models/check_motif_parity.py --write-smiles 1000 "$parity/smiles.txt" --with-test-smiles --with-mutants 500
target/debug/examples/dump_motifs "$parity/smiles.txt" > "$parity/rust.jsonl"
.weft/venv/bin/python models/check_motif_parity.py --smiles "$parity/smiles.txt" --rust-json "$parity/rust.jsonl"
rm -rf "$parity"

step "bindings: C ABI (header, threads, example, valgrind) and the Python wheel (pytest)"
scripts/bindings.sh
