#!/usr/bin/env bash
# Every test of the project, from a fresh machine: installs what it needs, then runs
#   1. native Rust tests (backbone vs reference tensors, decoding, training, metrics, files, CLI)
#   2. the browser tests: the npm package (wasm engine in a Worker) on the CPU and WebGPU backends
#   3. the hostile-input corpus through the CLI and the wasm engine (tests/hostile)
#   4. the end-to-end tests of the page (Playwright + Debian Chromium)
# Usage: bash tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== setup: python converter deps (numpy, safetensors) =="
python3 -c "import numpy, safetensors" 2>/dev/null || python3 -m pip install -q numpy safetensors

echo "== setup: test data (Debian dataset-fashion-mnist) =="
if [ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist
fi

echo "== native: cargo test =="
cargo test --workspace -- --test-threads=2

echo "== browser: the wasm package in headless Chromium (builds it from scratch if needed) =="
bash tests/browser/run.sh

echo "== hostile inputs: ~820 bad, odd and mutated files, natively and through the wasm engine =="
bash tests/hostile/run.sh

echo "== end to end: the page in headless Chromium =="
bash tests/e2e/run.sh
