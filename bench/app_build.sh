#!/usr/bin/env bash
# Release build time of a one-file app that depends on weft, from an empty
# target folder: with the default features (what an app gets) and with
# `server` (what every app compiled before the features existed: tokio,
# axum, clap, anyhow). Prints one JSON line per build.
# Usage: bench/app_build.sh [JOBS]   (default: all cores)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jobs="${1:-$(nproc)}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for variant in default server; do
  app="$work/app-$variant"
  mkdir -p "$app/src"
  features=""
  [[ $variant == server ]] && features=', features = ["server"]'
  cat >"$app/Cargo.toml" <<TOML
[package]
name = "weft-app"
version = "0.1.0"
edition = "2021"

[dependencies]
weft = { path = "$root"$features }
TOML
  cat >"$app/src/main.rs" <<'RS'
fn main() -> weft::Result<()> {
    let engine = weft::Engine::builder().project_dir(".weft").build()?;
    let photos = engine.open_or_create("photos.weft", "starter-vl")?;
    photos.index(&["photos"], |_| {})?;
    for hit in photos.search("a photo of a cat", &weft::SearchOptions::default())? {
        println!("{:.3} {}", hit.score, hit.id);
    }
    Ok(())
}
RS
  cp "$root/Cargo.lock" "$app/Cargo.lock"
  start=$(date +%s.%N)
  (cd "$app" && CARGO_TARGET_DIR="$app/target" cargo build --release --offline -j "$jobs" >"$app/build.log" 2>&1) || {
    cat "$app/build.log" >&2
    exit 1
  }
  end=$(date +%s.%N)
  crates=$(grep -c "Compiling" "$app/build.log" || true)
  printf '{"bench": "app_build", "features": "%s", "jobs": %s, "seconds": %.1f, "crates_compiled": %s}\n' \
    "$variant" "$jobs" "$(echo "$end - $start" | bc)" "$crates"
done
