#!/usr/bin/env bash
# Build the browser package (www/pkg) from the settings in wasm-pack.toml:
#   cargo build (wasm32) → wasm-bindgen --target web → wasm-opt → weights copied as an asset.
# Installs what is missing: the wasm32 target, the wasm-bindgen CLI matching Cargo.lock, and a
# wasm-opt that works (never Debian's binaryen 108, which silently corrupts the module).
#
# Two flavours, both described in wasm-pack.toml ([profile.*]):
#   fast     (default) no LTO, many codegen units, no wasm-opt: for serving locally and the tests
#   release  fat LTO, one codegen unit, wasm-opt: the package `npm pack` ships
#
# Usage: bash www/build.sh [--release | --fast] [--if-stale] [--serve] [--port N]
#   --release   build the publish flavour
#   --fast      build the fast flavour (the default; `--dev` is an old name for it)
#   --if-stale  do nothing when www/pkg already holds a package built from the current sources
#               and settings (of either flavour, unless one is named); what the test scripts call
#   --serve     then serve www/ on http://127.0.0.1:PORT/ (default 8000)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

FLAVOUR="" IF_STALE=0 SERVE=0 PORT=8000
while [ $# -gt 0 ]; do
  case "$1" in
    --release) FLAVOUR=release ;;
    --fast) FLAVOUR=fast ;;
    --dev) echo "build.sh: --dev is now --fast (the default flavour): no LTO, no wasm-opt" >&2; FLAVOUR=fast ;;
    --if-stale) IF_STALE=1 ;;
    --serve) SERVE=1 ;;
    --port) PORT="$2"; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown option $1 (use --release, --fast, --if-stale, --serve, --port N)" >&2; exit 2 ;;
  esac
  shift
done

# --- settings -------------------------------------------------------------------------------
# Read once with Python's tomllib and exported as shell variables. The stamp written next to the
# package (www/pkg/.build.json) records the flavour and cargo's list of every source file the
# wasm was compiled from, so `--if-stale` can tell whether the package is current.
TARGET_DIR="$ROOT/target/wasm"
WANT=$FLAVOUR
eval "$(FLAVOUR=$FLAVOUR TARGET_DIR=$TARGET_DIR python3 - <<'EOF'
import json, os, shlex, sys, tomllib
with open("wasm-pack.toml", "rb") as f:
    t = tomllib.load(f)
b = t["build"]
flavour = os.environ["FLAVOUR"] or b.get("default-profile", "fast")
profiles = t.get("profile", {})
if flavour not in profiles:
    sys.exit(f"build.sh: wasm-pack.toml has no [profile.{flavour}]")
p = profiles[flavour]
cargo_profile = p["cargo-profile"]
opt = p.get("wasm-opt", False)
with open("Cargo.lock") as f:
    lock = f.read()
# The [[package]] entry of wasm-bindgen gives the exact CLI version to use.
ver = ""
for block in lock.split("[[package]]"):
    if '\nname = "wasm-bindgen"\n' in block:
        ver = block.split('version = "')[1].split('"')[0]
out = {
    "FLAVOUR": flavour,
    "CRATE": b.get("crate", "crate"),
    "TARGET": b.get("target", "web"),
    "PROFILE": cargo_profile,
    "PROFILE_DIR": "debug" if cargo_profile == "dev" else cargo_profile,
    "FEATURES": ",".join(b.get("features", [])),
    "OUT_DIR": b.get("out-dir", "www/pkg"),
    "OUT_NAME": b.get("out-name", "headtune"),
    "RUSTFLAGS_WASM": " ".join(b.get("rustflags", [])),
    "WASM_OPT_ON": "1" if opt else "0",
    "WASM_OPT_FLAGS": " ".join((opt or []) + t.get("wasm-opt", {}).get("features", [])),
    # One file or a list of files (no spaces in their paths).
    "WEIGHTS": " ".join(w if isinstance(w := t.get("assets", {}).get("weights", []), list) else [w]),
    "BINDGEN_VERSION": ver,
    # One line per variant: name, out-name, crate rustflags, extra wasm-opt features (tab-separated).
    "VARIANTS": "\n".join(
        "\t".join([name, v["out-name"], " ".join(v.get("crate-rustflags", [])), " ".join(v.get("wasm-opt-features", []))])
        for name, v in t.get("variants", {}).items()
    ),
}
for k, v in out.items():
    print(f"{k}={shlex.quote(v)}")
EOF
)"
[ -n "$BINDGEN_VERSION" ] || { echo "build.sh: wasm-bindgen not found in Cargo.lock" >&2; exit 1; }
TOOLS="$ROOT/.cache/tools"
STAMP="$OUT_DIR/.build.json"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

# A stage: printed, and timed for tests/bench/build-times.sh when it asks (HEADTUNE_TIMES).
step() { echo "== $* =="; [ -z "${HEADTUNE_TIMES:-}" ] || record_step "$*"; }
[ -z "${HEADTUNE_TIMES:-}" ] || source "$ROOT/tests/bench/steps.sh"

# Is the package in $OUT_DIR current? Yes when its stamp exists (of the flavour asked for, if one
# was named on the command line) and nothing it was built from —
# cargo's dep-info of the wasm (every Rust source, ours and the dependencies'), the manifests,
# the lock file, wasm-pack.toml, this script, the weights — is newer than the stamp.
package_is_current() {
  STAMP="$STAMP" ROOT="$ROOT" WANT="$WANT" python3 - <<'EOF'
import json, os, sys
root, stamp = os.environ["ROOT"], os.environ["STAMP"]
try:
    info = json.load(open(stamp))
    built = os.stat(stamp).st_mtime
    deps = open(os.path.join(root, info["depfile"])).read()
except (OSError, ValueError, KeyError):
    sys.exit(1)
# Make syntax: "target: dep dep …", spaces in names escaped with a backslash.
files = deps.split(":", 1)[1].replace("\\\n", " ").replace("\\ ", "\0").split()
files = [f.replace("\0", " ") for f in files]
files += ["Cargo.lock", "Cargo.toml", "crate/Cargo.toml", "wasm-pack.toml", "www/build.sh"]
files += info.get("outputs", []) + info.get("weights", "").split()
want = os.environ["WANT"]
if want and info.get("flavour") != want:
    sys.exit(1)
for f in files:
    try:
        if os.stat(os.path.join(root, f)).st_mtime > built:
            sys.exit(1)
    except OSError:
        sys.exit(1)
print(info.get("flavour", "?"))
EOF
}

if [ "$IF_STALE" = 1 ] && current=$(package_is_current); then
  step "$OUT_DIR is current ($current flavour): not rebuilt"
else
  # --- tools --------------------------------------------------------------------------------
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    step "installing the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi

  BINDGEN_PID=""
  if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$BINDGEN_VERSION" ]; then
    step "installing wasm-bindgen-cli $BINDGEN_VERSION in the background (matches Cargo.lock; ~4 min once)"
    # Alongside the wasm build below, which leaves a core idle for much of its critical path
    # (long chains of dependent crates): on a fresh 2-core machine this saves most of the
    # install's minutes. Its output goes to a log, shown if it fails.
    # No --locked: the CLI's own lock file pins a crate version the registry no longer serves.
    # --force: cargo's record of installed packages can outlive the binary (a cleaned PATH
    # directory); this runs only when the right version is missing anyway.
    mkdir -p "$TOOLS"
    BINDGEN_LOG="$TOOLS/wasm-bindgen-install.log"
    cargo install --force wasm-bindgen-cli --version "=$BINDGEN_VERSION" > "$BINDGEN_LOG" 2>&1 &
    BINDGEN_PID=$!
  fi

  # A wasm-opt we trust: $WASM_OPT, else one on PATH that is binaryen ≥ 116, else binaryen 116's
  # shared library from PyPI (icpp-binaryen) driven by www/wasm_opt.py — native and threaded —
  # else npm's binaryen (runs under Node, several times slower). Installed into .cache/tools on
  # first use.
  find_wasm_opt() {
    local cand v
    for cand in "${WASM_OPT:-}" "$(command -v wasm-opt || true)" "$TOOLS/wasm-opt-libbinaryen" "$TOOLS/node_modules/.bin/wasm-opt"; do
      [ -n "$cand" ] && [ -x "$cand" ] || continue
      v=$("$cand" --version 2>/dev/null | grep -o 'version [0-9]*' | awk '{print $2}')
      if [ -n "$v" ] && [ "$v" -ge 116 ]; then echo "$cand"; return 0; fi
    done
    return 1
  }
  if [ "$WASM_OPT_ON" = 1 ] && ! WASM_OPT_BIN=$(find_wasm_opt); then
    step "installing wasm-opt (PyPI icpp-binaryen: libbinaryen 116) into .cache/tools"
    mkdir -p "$TOOLS"
    if python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$TOOLS/py" \
        icpp-binaryen==116.0.1; then
      printf '#!/bin/sh\nexec python3 "%s" --lib "%s" "$@"\n' "$ROOT/www/wasm_opt.py" \
        "$TOOLS/py/icpp_binaryen/lib/libbinaryen.so" > "$TOOLS/wasm-opt-libbinaryen"
      chmod +x "$TOOLS/wasm-opt-libbinaryen"
    fi
    if ! WASM_OPT_BIN=$(find_wasm_opt); then
      step "installing wasm-opt (npm binaryen) into .cache/tools"
      npm install --prefix "$TOOLS" --no-audit --no-fund --silent binaryen@132 >/dev/null
      WASM_OPT_BIN=$(find_wasm_opt) || { echo "build.sh: no usable wasm-opt (need binaryen ≥ 116)" >&2; exit 1; }
    fi
  fi

  # --- build --------------------------------------------------------------------------------
  step "$FLAVOUR flavour: cargo rustc --crate-type cdylib --target wasm32-unknown-unknown --profile $PROFILE"
  start=$(date +%s)
  # Our own target dir, so this never waits on (or invalidates) the native build's lock; scoped
  # to the wasm target so host build scripts are not rebuilt with wasm flags.
  # The crate is an rlib for native builds; the wasm module is its cdylib, asked for here.
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="$RUSTFLAGS_WASM" \
    cargo rustc --manifest-path "$CRATE/Cargo.toml" --lib --crate-type cdylib \
    --target wasm32-unknown-unknown --profile "$PROFILE" --target-dir "$TARGET_DIR" \
    ${FEATURES:+--features "$FEATURES"}
  echo "   cargo: $(( $(date +%s) - start )) s"
  RAW="$TARGET_DIR/wasm32-unknown-unknown/$PROFILE_DIR/headtune.wasm"

  if [ -n "$BINDGEN_PID" ]; then
    step "waiting for the wasm-bindgen-cli install"
    if ! wait "$BINDGEN_PID"; then
      tail -30 "$BINDGEN_LOG" >&2
      echo "build.sh: cargo install wasm-bindgen-cli $BINDGEN_VERSION failed (log: $BINDGEN_LOG)" >&2
      exit 1
    fi
  fi

  step "wasm-bindgen --target $TARGET"
  mkdir -p "$OUT_DIR"
  rm -f "$STAMP" "$OUT_DIR"/*_bg.wasm "$OUT_DIR/${OUT_NAME}.js" "$OUT_DIR/${OUT_NAME}.d.ts" "$OUT_DIR/${OUT_NAME}_bg.wasm.d.ts"
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
    echo "== wasm-opt: off in the $FLAVOUR flavour (wasm-pack.toml) =="
  fi

  # The variants (wasm-pack.toml [variants.*]): our crate compiled again with its flags, bound by
  # the same wasm-bindgen into a scratch folder; only the .wasm is kept, as <out-name>_bg.wasm.
  VARIANT_WASMS=()
  while IFS=$'\t' read -r vname vout vflags vopt; do
    [ -n "$vname" ] || continue
    step "$vname variant: cargo rustc … -- $vflags"
    start=$(date +%s)
    # shellcheck disable=SC2086 # the flags are a word list on purpose
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="$RUSTFLAGS_WASM" \
      cargo rustc --manifest-path "$CRATE/Cargo.toml" --lib --crate-type cdylib \
      --target wasm32-unknown-unknown --profile "$PROFILE" --target-dir "$TARGET_DIR" \
      ${FEATURES:+--features "$FEATURES"} -- $vflags
    echo "   cargo: $(( $(date +%s) - start )) s"
    scratch=$(mktemp -d)
    wasm-bindgen --target "$TARGET" --out-dir "$scratch" --out-name "$OUT_NAME" "$RAW"
    # Comments aside: wasm-bindgen's comments quote closure shim indices, which differ between
    # fat-LTO builds; the code must be the same.
    if ! cmp -s <(grep -v '^[[:space:]]*//' "$scratch/${OUT_NAME}.js") <(grep -v '^[[:space:]]*//' "$OUT_DIR/${OUT_NAME}.js"); then
      echo "build.sh: the $vname variant's JS glue differs from the plain build's (one ${OUT_NAME}.js must serve both)" >&2
      exit 1
    fi
    VWASM="$OUT_DIR/${vout}_bg.wasm"
    mv "$scratch/${OUT_NAME}_bg.wasm" "$VWASM"
    rm -rf "$scratch"
    if [ "$WASM_OPT_ON" = 1 ]; then
      # shellcheck disable=SC2086
      "$WASM_OPT_BIN" $WASM_OPT_FLAGS $vopt "$VWASM" -o "$VWASM.opt"
      mv "$VWASM.opt" "$VWASM"
    fi
    VARIANT_WASMS+=("$VWASM")
  done <<< "$VARIANTS"

  COPIED=()
  for w in $WEIGHTS; do
    cp "$w" "$OUT_DIR/$(basename "$w")"
    chmod 644 "$OUT_DIR/$(basename "$w")"
    COPIED+=("$OUT_DIR/$(basename "$w")")
  done
  # Not an npm package of its own: the package is www/ (see www/package.json).
  rm -f "$OUT_DIR/package.json" "$OUT_DIR/.gitignore"

  # Written last: a build that failed half-way leaves no stamp, so the package counts as stale.
  FLAVOUR="$FLAVOUR" DEPFILE="${RAW%.wasm}.d" WEIGHTS="$WEIGHTS" OUT_DIR="$OUT_DIR" ROOT="$ROOT" python3 - > "$STAMP" <<'EOF'
import json, os
e = os.environ
outs = sorted(os.path.join(e["OUT_DIR"], f) for f in os.listdir(e["OUT_DIR"]) if not f.startswith("."))
print(json.dumps({
    "flavour": e["FLAVOUR"],
    "depfile": os.path.relpath(e["DEPFILE"], e["ROOT"]),
    "weights": e["WEIGHTS"],
    "outputs": outs,
}, indent=1))
EOF

  step "sizes"
  for f in "$WASM" "${VARIANT_WASMS[@]}" "$OUT_DIR/${OUT_NAME}.js" "${COPIED[@]}"; do
    raw=$(stat -c %s "$f")
    gz=$(gzip -9 -c "$f" | wc -c)
    printf '   %-40s %10s bytes raw  %10s bytes gzip\n' "${f#"$ROOT"/}" "$raw" "$gz"
  done
fi

if [ "$SERVE" = 1 ]; then
  step "serving www/ on http://127.0.0.1:$PORT/ (Ctrl-C to stop)"
  exec python3 "$ROOT/www/serve.py" --port "$PORT"
fi
