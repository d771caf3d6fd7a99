#!/usr/bin/env bash
# End-to-end tests of the headtune page: headless Debian Chromium drives www/index.html (served
# by www/serve.py on 127.0.0.1) through playwright-core.
# Installs what is missing (Chromium, the Fashion-MNIST package for the fixture images,
# playwright-core), builds www/pkg if it is missing or older than the sources (the fast flavour,
# as tests/browser/run.sh), writes the fixtures into tests/e2e/.fixtures, then runs the tests.
# Screenshots go to tests/output/.
# Usage: bash tests/e2e/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/setup.sh

ensure_chromium
ensure_fashion_mnist
ensure_npm_ci tests/e2e
ensure_package
ensure_cli

step "fixture images"
python3 tests/e2e/make-fixtures.py tests/e2e/.fixtures 24
mkdir -p tests/output

step "page tests"
node --test --test-concurrency=1 --test-reporter=spec tests/e2e/page.test.mjs
