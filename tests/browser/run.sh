#!/usr/bin/env bash
# Browser tests of the headtune package: headless Debian Chromium (WebGPU = SwiftShader) drives
# tests/browser/harness.html, a page importing www/lib, through playwright-core.
# Installs what is missing (Chromium, playwright-core), builds the package if www/pkg is absent
# (a quick --dev rebuild if the Rust sources are newer than it)
# and the native CLI if target/debug/headtune is absent (the tests compare against both).
# Usage: bash tests/browser/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export DEBIAN_FRONTEND=noninteractive

if [ ! -x /usr/bin/chromium ]; then
  echo "== installing Debian Chromium =="
  apt-get update -qq
  apt-get install -y -qq chromium chromium-driver >/dev/null
fi

if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "== npm ci (playwright-core) =="
  (cd tests/browser && npm ci --no-audit --no-fund)
fi

if [ ! -f www/pkg/headtune_bg.wasm ]; then
  echo "== building the package (www/build.sh) =="
  bash www/build.sh
elif [ -n "$(find crate/src crate/Cargo.toml Cargo.lock wasm-pack.toml -newer www/pkg/headtune_bg.wasm 2>/dev/null | head -1)" ]; then
  # Sources changed since the last build: a quick rebuild without wasm-opt (tests need the
  # current code, not the optimised binary; `bash www/build.sh` makes the release package).
  echo "== sources changed since www/pkg was built: rebuilding (www/build.sh --dev) =="
  bash www/build.sh --dev
fi

if [ ! -x target/debug/headtune ]; then
  echo "== building the native CLI =="
  cargo build -p headtune --bin headtune
fi


echo "== browser tests =="
# One file at a time: every test shares one Chromium and the machine has few cores.
node --test --test-concurrency=1 --test-reporter=spec tests/browser/*.test.mjs
