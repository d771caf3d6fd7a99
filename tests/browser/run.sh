#!/usr/bin/env bash
# Browser tests of the headtune package: headless Debian Chromium (WebGPU = SwiftShader) drives
# tests/browser/harness.html, a page importing www/lib, through playwright-core.
# Installs what is missing (Chromium, playwright-core), builds www/pkg if it is missing or older
# than the sources (the fast flavour; a current package of either flavour is kept, so
# `bash www/build.sh --release` followed by this tests the publish build) and the native CLI
# target/debug/headtune if it is stale (the tests compare against both).
# Usage: bash tests/browser/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/setup.sh

ensure_chromium
ensure_npm_ci tests/browser
ensure_package
ensure_cli

step "browser tests"
# One file at a time: every test shares one Chromium and the machine has few cores.
node --test --test-concurrency=1 --test-reporter=spec tests/browser/*.test.mjs
