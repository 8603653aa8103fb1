#!/usr/bin/env bash
# The C and Python bindings, end to end (run by scripts/test.sh after
# `cargo test`, which builds target/debug/weft):
#  1. include/weft.h is current (cbindgen), and the C ABI's Rust tests pass
#     (several threads on one engine and collection);
#  2. examples/c builds against include/weft.h with -Werror, runs on the
#     starter bundle, and gives the CLI's top-5 ids for "a photo of a cat";
#  3. the same example runs under valgrind (tiny test bundle: memcheck runs
#     ONNX Runtime about 50x slower) with no leak and no invalid access;
#  4. `pip install ./python` builds the wheel (maturin) into a fresh venv, and
#     the pytest suite passes (it compares its top-5 with the CLI too).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
step() { printf '\n== %s\n' "$*"; }
work="$(mktemp -d "${TMPDIR:-/tmp}/weft-bindings.XXXXXX")"
trap 'rm -rf "$work"' EXIT
query="a photo of a cat"
weft_bin="$root/target/debug/weft"
[[ -x "$weft_bin" ]] || cargo build --all-features --locked --bin weft

step "C ABI: header current, thread tests (cargo test -p weft-capi)"
cargo test -p weft-capi --locked
cargo build -p weft-capi --locked

step "C example: build with -Werror against include/weft.h"
cc -std=c11 -Wall -Wextra -Werror -Iinclude examples/c/weft_example.c \
  -Ltarget/debug -lweft_capi -Wl,-rpath,"$root/target/debug" -o "$work/weft_example"

step "C example on the sample photos: top-5 equals the CLI's"
"$work/weft_example" .weft "$work/c-photos" .weft/data/photos "$query" | tee "$work/c.out"
grep '^hit ' "$work/c.out" | awk '{print $3}' > "$work/c.ids"
"$weft_bin" --collections-dir "$work/cli" index .weft/data/photos -c photos >/dev/null
"$weft_bin" --collections-dir "$work/cli" search "$query" -c photos -k 5 --json \
  | python3 -c 'import json,sys; print("\n".join(h["id"] for h in json.load(sys.stdin)))' > "$work/cli.ids"
if ! diff -u "$work/cli.ids" "$work/c.ids"; then
  echo "the C example's top-5 differs from the CLI's" >&2
  exit 1
fi
[[ "$(wc -l < "$work/c.ids")" == 5 ]] || { echo "the C example printed no 5 hits" >&2; exit 1; }

step "C example under valgrind (no leaks, no invalid reads)"
if ! command -v valgrind >/dev/null; then
  apt-get install -y valgrind >/dev/null
fi
mkdir -p "$work/vg-photos"
cp .weft/data/photos/chelsea.png .weft/data/photos/coffee.png "$work/vg-photos/"
timeout 600 valgrind -q --suppressions=examples/c/valgrind.supp --leak-check=full \
  --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
  --error-exitcode=99 "$work/weft_example" .weft "$work/vg.weft" "$work/vg-photos" "$query" \
  tests/bundles/tiny-vl > "$work/vg.out"
grep -q '^providers: ' "$work/vg.out" || { cat "$work/vg.out"; exit 1; }
echo "valgrind: clean"

step "Python: build the wheel (maturin), install it in a fresh venv, pytest"
venv="$work/venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "pytest>=7"
# The README's command. MATURIN_PEP517_ARGS picks the dev profile here
# (shares target/debug with `cargo test`; a user's install builds release).
MATURIN_PEP517_ARGS="--profile dev --strip" \
  "$venv/bin/pip" install -q --disable-pip-version-check ./python
# Run from outside the source folder, so `import weft` is the installed wheel.
(cd "$work" && WEFT_CLI="$weft_bin" WEFT_PROJECT="$root/.weft" \
  "$venv/bin/python" -m pytest -q -p no:cacheprovider "$root/python/tests")
