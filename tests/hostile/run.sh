#!/usr/bin/env bash
# The hostile-input corpus, natively and through the browser engine:
#   1. tests/hostile/make_corpus.py writes ~820 seeded bad, odd and mutated images, model files and
#      project files (Pillow; nothing is committed) into target/hostile/corpus
#   2. tests/hostile/run.py runs each through `headtune check` in its own process: no crash, no
#      hang, peak memory measured and bounded, the expected outcome and a plain message
#   3. tests/hostile/wasm.mjs runs each through the wasm package under Node (embed, loadModel,
#      loadProject and what the page does next): no trap, no hang, bounded memory, and the same
#      outcome as natively
# Prints both counts tables (README's Testing section shows them). Needs target/debug/headtune
# and www/pkg; builds them when missing or stale (tests/setup.sh).
# Usage: bash tests/hostile/run.sh [--native-only]
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"

python3 -c "import PIL" 2>/dev/null || python3 -m pip install -q pillow

OUT=target/hostile/corpus
rm -rf "$OUT"
echo "== hostile corpus: generating =="
python3 tests/hostile/make_corpus.py "$OUT"

source tests/setup.sh
ensure_cli
echo "== hostile corpus: native CLI =="
python3 tests/hostile/run.py --bin target/debug/headtune --corpus "$OUT"

if [ "${1:-}" = "--native-only" ]; then
  exit 0
fi
ensure_package
echo "== hostile corpus: browser engine (wasm in Node) =="
node tests/hostile/wasm.mjs --corpus "$OUT"
