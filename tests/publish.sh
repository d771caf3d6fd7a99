#!/usr/bin/env bash
# The publish flavour's check (not part of `bash tests/run.sh`: its fat-LTO build alone takes
# longer than the whole fast test run on a 2-core machine). Builds the package `npm pack` ships —
# `bash www/build.sh --release`: fat LTO, one codegen unit, wasm-opt — unless www/pkg already
# holds a current one, then runs the whole browser suite against it: it loads, embeds
# tests/fixtures/chelsea.png within 1e-3 of the native CLI on the CPU and WebGPU backends, trains
# and predicts, round-trips models with the CLI, and packs.
# Run it before publishing and after changing wasm-pack.toml, the wasm-release profile or the
# wasm-opt in use. Afterwards www/pkg holds the publish build; the fast tests accept it as it
# is while it is current.
# Usage: bash tests/publish.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/setup.sh

step "publish build (www/build.sh --release, skipped if www/pkg holds a current one)"
bash www/build.sh --release --if-stale
flavour=$(python3 -c 'import json; print(json.load(open("www/pkg/.build.json"))["flavour"])')
[ "$flavour" = release ] || { echo "publish.sh: www/pkg holds the $flavour flavour, not release" >&2; exit 1; }

step "browser tests against the publish build"
bash tests/browser/run.sh
