#!/usr/bin/env bash
# Runs weft's libFuzzer targets (fuzz/, cargo-fuzz on the nightly toolchain),
# each for a given time, and prints cases run and crashes found per target.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default: 60 s, every target
#
# Targets: smiles, filter, wal, bundle_toml, image (libFuzzer), and http:
# mutated request bodies against a running daemon (tests/http_fuzz.rs, on
# stable, for SECONDS; it prints the answers by status). Seeds come from the
# repository (tests/data, tests/bundles, tests/golden); corpora and crash
# artifacts stay under .weft/fuzz/. cargo-fuzz is installed into
# .weft/cargo/ on first use (from the crates.io registry). Not part of the
# test suite: tests/fuzz_bounded.rs runs the same parsers, bounded, there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

secs="${1:-60}"
[[ "$secs" =~ ^[1-9][0-9]*$ ]] || { echo "scripts/fuzz.sh: SECONDS must be a positive integer" >&2; exit 2; }
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(smiles filter wal bundle_toml image http)

export PATH="$root/.weft/cargo/bin:$PATH"
needs_nightly=0
for t in "${targets[@]}"; do [[ "$t" == http ]] || needs_nightly=1; done
if [[ $needs_nightly -eq 1 ]] && ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz into .weft/cargo"
  cargo install cargo-fuzz --locked --root .weft/cargo
fi
[[ $needs_nightly -eq 0 ]] || rustup toolchain list | grep -q '^nightly' || { echo "scripts/fuzz.sh: needs the nightly toolchain (rustup toolchain install nightly)" >&2; exit 2; }

work=.weft/fuzz
mkdir -p "$work"
seed() { # seed TARGET FILE...
  local dir="$work/corpus/$1"; shift
  mkdir -p "$dir"
  for f in "$@"; do [[ -f "$f" ]] && cp -f "$f" "$dir/" || true; done
}
mkdir -p "$work/corpus/smiles" "$work/corpus/filter"
printf 'CCO' > "$work/corpus/smiles/ethanol"
printf 'c1ccccc1C(=O)O' > "$work/corpus/smiles/benzoic"
printf 'C[C@@H](N)C(=O)O' > "$work/corpus/smiles/alanine"
printf 'C%%10CC%%10.[NH4+]' > "$work/corpus/smiles/percent"
printf '{"kind": "photo", "year": {"gte": 2020}, "tag": {"in": ["cat", "dog"]}}' > "$work/corpus/filter/basic"
seed wal tests/golden/collection-v2/wal-*.log
seed bundle_toml tests/bundles/tiny-vl/bundle.toml tests/bundles/tiny-mol/bundle.toml tests/golden/bundle-v2.toml
seed image tests/data/*.png tests/data/*.jpg

printf '%-12s %12s %8s %s\n' target cases crashes log
status=0
for t in "${targets[@]}"; do
  log="$work/$t.log"
  if [[ "$t" == http ]]; then
    mkdir -p "$work"
    set +e
    WEFT_FUZZ_SECS="$secs" cargo test --locked --features server --test http_fuzz -- --nocapture >"$log" 2>&1
    rc=$?
    set -e
    cases=$(grep -Eo '^[0-9]+ mutated request bodies' "$log" | grep -Eo '^[0-9]+' | tail -1)
    crashes=$([[ $rc -eq 0 ]] && echo 0 || echo 1)
    printf '%-12s %12s %8s %s\n' "$t" "${cases:-?}" "$crashes" "$log"
    [[ $rc -eq 0 ]] || status=1
    continue
  fi
  mkdir -p "$work/artifacts/$t"
  set +e
  (cd fuzz && cargo +nightly fuzz run "$t" "../$work/corpus/$t" -- \
     -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="../$work/artifacts/$t/" ) >"$log" 2>&1
  rc=$?
  set -e
  cases=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)
  crashes=$(find "$work/artifacts/$t" -type f | wc -l)
  printf '%-12s %12s %8s %s\n' "$t" "${cases:-?}" "$crashes" "$log"
  if [[ $rc -ne 0 || $crashes -ne 0 ]]; then status=1; fi
done
exit $status
