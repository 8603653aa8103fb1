#!/usr/bin/env bash
# Rebuild the import fixtures (tests/fixtures/import) with the real exporters:
# creates .weft/fixtures-venv from models/requirements-fixtures.txt (about 6 GB:
# torch, transformers, optimum, open_clip, timm), then runs models/fixtures.py.
# Needs models/build.sh to have run (photos and ImageNet class names).
# Not part of CI or the README commands: the fixtures are committed.
#
#   models/fixtures.sh                 rebuild every fixture and golden
#   models/fixtures.sh --only siglip   rebuild one family (hf-clip, open-clip, siglip)
#   models/fixtures.sh --vit-b32 DIR   export the full-size ViT-B/32 used by scripts/bench.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV=.weft/fixtures-venv
want="$(sha256sum models/requirements-fixtures.txt | cut -d' ' -f1)"
stamp="$VENV/.requirements.sha256"
if [[ ! -x "$VENV/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "fixtures: creating $VENV (about 6 GB, a few minutes)"
  "${PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r models/requirements-fixtures.txt
  echo "$want" > "$stamp.tmp" && mv "$stamp.tmp" "$stamp"
fi
"$VENV/bin/python" models/fixtures.py "$@"
# torch.onnx records stack traces with this machine's paths: drop them.
"$VENV/bin/python" models/strip_fixture_paths.py tests/fixtures/import
