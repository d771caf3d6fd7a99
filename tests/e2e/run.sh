#!/usr/bin/env bash
# End-to-end tests of the headtune page: headless Debian Chromium drives www/index.html (served
# by www/serve.py on 127.0.0.1) through playwright-core.
# Installs what is missing (Chromium, the Fashion-MNIST package for the fixture images,
# playwright-core), builds www/pkg only if it is missing, writes the fixtures into
# tests/e2e/.fixtures, then runs the tests. Screenshots go to tests/output/.
# Usage: bash tests/e2e/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export DEBIAN_FRONTEND=noninteractive

APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" = 0 ]; then apt-get update -qq; APT_UPDATED=1; fi
  apt-get install -y -qq "$@" >/dev/null
}
if [ ! -x /usr/bin/chromium ]; then
  echo "== installing Debian Chromium =="
  apt_install chromium
fi
if [ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  echo "== installing Fashion-MNIST (dataset-fashion-mnist) =="
  apt_install dataset-fashion-mnist
fi

echo "== npm ci (playwright-core) =="
(cd tests/e2e && npm ci --no-audit --no-fund --silent)

if [ ! -f www/pkg/headtune_bg.wasm ] || [ ! -f www/pkg/efficientnet_lite0.safetensors ]; then
  echo "== building the package (www/build.sh --dev) =="
  bash www/build.sh --dev
fi

echo "== fixture images =="
python3 tests/e2e/make-fixtures.py tests/e2e/.fixtures 24
mkdir -p tests/output

echo "== page tests =="
node --test --test-concurrency=1 --test-reporter=spec tests/e2e/page.test.mjs
