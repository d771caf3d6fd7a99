#!/usr/bin/env bash
# Build the browser package (www/pkg) from the settings in wasm-pack.toml:
#   cargo build (wasm32) → wasm-bindgen --target web → wasm-opt → weights copied as an asset.
# Installs what is missing: the wasm32 target, the wasm-bindgen CLI matching Cargo.lock, and a
# wasm-opt that works (never Debian's binaryen 108, which silently corrupts the module).
#
# Usage: bash www/build.sh [--dev] [--serve] [--port N]
#   --dev     skip wasm-opt (faster inner loop; the profile stays the same so nothing recompiles)
#   --serve   then serve www/ on http://127.0.0.1:PORT/ (default 8000)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DEV=0 SERVE=0 PORT=8000
while [ $# -gt 0 ]; do
  case "$1" in
    --dev) DEV=1 ;;
    --serve) SERVE=1 ;;
    --port) PORT="$2"; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown option $1 (use --dev, --serve, --port N)" >&2; exit 2 ;;
  esac
  shift
done

# --- settings -------------------------------------------------------------------------------
# Read once with Python's tomllib and exported as shell variables.
eval "$(DEV=$DEV python3 - <<'EOF'
import os, shlex, tomllib
with open("wasm-pack.toml", "rb") as f:
    t = tomllib.load(f)
b = t["build"]
dev = os.environ["DEV"] == "1"
opt = t.get("wasm-opt", {})
enabled = opt.get("enabled", True) and not (dev and b.get("dev", {}).get("wasm-opt", True) is False)
with open("Cargo.lock") as f:
    lock = f.read()
# The [[package]] entry of wasm-bindgen gives the exact CLI version to use.
ver = ""
for block in lock.split("[[package]]"):
    if '\nname = "wasm-bindgen"\n' in block:
        ver = block.split('version = "')[1].split('"')[0]
out = {
    "CRATE": b.get("crate", "crate"),
    "TARGET": b.get("target", "web"),
    "PROFILE": b.get("profile", "release"),
    "FEATURES": ",".join(b.get("features", [])),
    "OUT_DIR": b.get("out-dir", "www/pkg"),
    "OUT_NAME": b.get("out-name", "headtune"),
    "RUSTFLAGS_WASM": " ".join(b.get("rustflags", [])),
    "WASM_OPT_ON": "1" if enabled else "0",
    "WASM_OPT_FLAGS": " ".join(opt.get("flags", ["-O"])),
    # One file or a list of files (no spaces in their paths).
    "WEIGHTS": " ".join(w if isinstance(w := t.get("assets", {}).get("weights", []), list) else [w]),
    "BINDGEN_VERSION": ver,
}
for k, v in out.items():
    print(f"{k}={shlex.quote(v)}")
EOF
)"
[ -n "$BINDGEN_VERSION" ] || { echo "build.sh: wasm-bindgen not found in Cargo.lock" >&2; exit 1; }
# Our own target dir, so this never waits on (or invalidates) the native build's lock.
TARGET_DIR="$ROOT/target/wasm"
TOOLS="$ROOT/.cache/tools"
export PATH="$HOME/.cargo/bin:$PATH"

step() { echo "== $* =="; }

# --- tools ----------------------------------------------------------------------------------
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  step "installing the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$BINDGEN_VERSION" ]; then
  step "installing wasm-bindgen-cli $BINDGEN_VERSION (matches Cargo.lock; ~4 min once)"
  # No --locked: the CLI's own lock file pins a crate version the registry no longer serves.
  cargo install wasm-bindgen-cli --version "=$BINDGEN_VERSION"
fi

# A wasm-opt we trust: $WASM_OPT, else one on PATH that is binaryen ≥ 116, else npm's binaryen
# (runs under Node; installed into .cache/tools on first use).
find_wasm_opt() {
  local cand v
  for cand in "${WASM_OPT:-}" "$(command -v wasm-opt || true)" "$TOOLS/node_modules/.bin/wasm-opt"; do
    [ -n "$cand" ] && [ -x "$cand" ] || continue
    v=$("$cand" --version 2>/dev/null | grep -o 'version [0-9]*' | awk '{print $2}')
    if [ -n "$v" ] && [ "$v" -ge 116 ]; then echo "$cand"; return 0; fi
  done
  return 1
}
if [ "$WASM_OPT_ON" = 1 ]; then
  if ! WASM_OPT_BIN=$(find_wasm_opt); then
    step "installing wasm-opt (npm binaryen) into .cache/tools"
    mkdir -p "$TOOLS"
    npm install --prefix "$TOOLS" --no-audit --no-fund --silent binaryen@132 >/dev/null
    WASM_OPT_BIN=$(find_wasm_opt) || { echo "build.sh: no usable wasm-opt (need binaryen ≥ 116)" >&2; exit 1; }
  fi
fi

# --- build ----------------------------------------------------------------------------------
step "cargo build --target wasm32-unknown-unknown --profile $PROFILE"
start=$(date +%s)
# Scoped to the wasm target so host build scripts are not rebuilt with wasm flags.
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="$RUSTFLAGS_WASM" \
  cargo build --manifest-path "$CRATE/Cargo.toml" --lib --target wasm32-unknown-unknown \
  --profile "$PROFILE" --target-dir "$TARGET_DIR" ${FEATURES:+--features "$FEATURES"}
echo "   cargo: $(( $(date +%s) - start )) s"

case "$PROFILE" in dev) PROFILE_DIR=debug ;; *) PROFILE_DIR=$PROFILE ;; esac
RAW="$TARGET_DIR/wasm32-unknown-unknown/$PROFILE_DIR/headtune.wasm"

step "wasm-bindgen --target $TARGET"
mkdir -p "$OUT_DIR"
rm -f "$OUT_DIR/${OUT_NAME}_bg.wasm" "$OUT_DIR/${OUT_NAME}.js" "$OUT_DIR/${OUT_NAME}.d.ts" "$OUT_DIR/${OUT_NAME}_bg.wasm.d.ts"
wasm-bindgen --target "$TARGET" --out-dir "$OUT_DIR" --out-name "$OUT_NAME" "$RAW"
WASM="$OUT_DIR/${OUT_NAME}_bg.wasm"

if [ "$WASM_OPT_ON" = 1 ]; then
  step "wasm-opt $WASM_OPT_FLAGS ($("$WASM_OPT_BIN" --version))"
  start=$(date +%s)
  # shellcheck disable=SC2086 # the flags are a word list on purpose
  "$WASM_OPT_BIN" $WASM_OPT_FLAGS "$WASM" -o "$WASM.opt"
  mv "$WASM.opt" "$WASM"
  echo "   wasm-opt: $(( $(date +%s) - start )) s"
else
  echo "== wasm-opt skipped (--dev or disabled in wasm-pack.toml) =="
fi

COPIED=()
for w in $WEIGHTS; do
  cp "$w" "$OUT_DIR/$(basename "$w")"
  chmod 644 "$OUT_DIR/$(basename "$w")"
  COPIED+=("$OUT_DIR/$(basename "$w")")
done
# Not an npm package of its own: the package is www/ (see www/package.json).
rm -f "$OUT_DIR/package.json" "$OUT_DIR/.gitignore"

step "sizes"
for f in "$WASM" "$OUT_DIR/${OUT_NAME}.js" "${COPIED[@]}"; do
  raw=$(stat -c %s "$f")
  gz=$(gzip -9 -c "$f" | wc -c)
  printf '   %-40s %10s bytes raw  %10s bytes gzip\n' "${f#"$ROOT"/}" "$raw" "$gz"
done

if [ "$SERVE" = 1 ]; then
  step "serving www/ on http://127.0.0.1:$PORT/ (Ctrl-C to stop)"
  exec python3 "$ROOT/www/serve.py" --port "$PORT"
fi
