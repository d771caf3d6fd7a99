#!/usr/bin/env bash
# Every test of the project, from a fresh machine: installs what it needs, then runs
#   1. native Rust tests (backbone vs reference tensors, decoding, training, metrics, files, CLI)
#   2. the browser tests: the npm package (wasm engine in a Worker) on the CPU and WebGPU backends
#   3. the packed package in consumer apps (Vite, webpack, esbuild, import map, another origin)
#      and its types under tsc --strict (tests/consumers)
#   4. the hostile-input corpus through the CLI and the wasm engine (tests/hostile)
#   5. the end-to-end tests of the page (Playwright + Debian Chromium)
# Each artifact is built once: `cargo test` builds the test binaries and the CLI they share with
# the browser tests; the first browser suite builds www/pkg (fast flavour) if it is stale, the
# second finds it current. `npm ci` runs only where node_modules is missing or its lock changed.
# Usage: bash tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/setup.sh

step "setup: python converter deps (numpy, safetensors)"
python3 -c "import numpy, safetensors" 2>/dev/null || python3 -m pip install -q numpy safetensors

step "setup: test data (Debian dataset-fashion-mnist)"
ensure_fashion_mnist

step "native: build the tests and the CLI (cargo test --no-run)"
cargo test --workspace --no-run
step "native: cargo test"
cargo test --workspace -- --test-threads=2

step "browser: the wasm package in headless Chromium (builds it if stale)"
bash tests/browser/run.sh

step "consumers: the packed package in Vite, webpack, esbuild, import-map and cross-origin apps"
bash tests/consumers/run.sh

step "hostile inputs: ~820 bad, odd and mutated files, natively and through the wasm engine"
bash tests/hostile/run.sh

step "end to end: the page in headless Chromium"
bash tests/e2e/run.sh
