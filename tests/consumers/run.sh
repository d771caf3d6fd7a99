#!/usr/bin/env bash
# Consumer-app tests of the headtune package: `npm pack` of www/ installed into a fresh app, built
# with Vite 8 (build, dev server), Vite 7 (dev server), webpack 5 and esbuild, loaded through an
# import map and from another origin, each training and predicting in headless Debian Chromium;
# plus the compile-time type test (tsc --strict over tests/consumers/types).
# Installs what is missing (Chromium, the bundlers from this folder's package-lock.json) and
# builds www/pkg if it is stale, like tests/browser/run.sh.
# Usage: bash tests/consumers/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/setup.sh

ensure_chromium
ensure_npm_ci tests/consumers
ensure_package

step "consumer apps"
node --test --test-concurrency=1 --test-reporter=spec tests/consumers/consumers.test.mjs
