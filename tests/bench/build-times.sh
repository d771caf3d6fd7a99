#!/usr/bin/env bash
# Build-time benchmark (not a test): what a new user and CI wait for, stage by stage, from a
# fresh clone with the tools out of reach, printed as a table (wall time and CPU user+sys).
#
#   serve    `bash www/build.sh --serve` in a fresh clone until the page answers, then the same
#            after a one-line change in crate/src (the inner loop of the page)
#   ci       `bash .ci/run` in another fresh clone, then the native inner loop: a one-line change
#            in crate/src → `cargo test --no-run`, and → `bash www/build.sh` (fast flavour)
#
# "Fresh": a clone of HEAD (commit first: uncommitted changes are not measured) with no target/,
# .cache/, www/pkg or node_modules, and its own empty CARGO_HOME (so the crates are downloaded and
# wasm-bindgen-cli is installed again) and npm cache. Nothing of yours is moved or deleted: the
# clones and homes live under one temporary folder, removed at the end (--keep keeps it), so the
# script is safe to run twice and while others build. What stays installed system-wide and is
# therefore not timed: the Rust toolchain with its wasm32 target, Chromium, Debian's
# Fashion-MNIST, Python's numpy/safetensors.
#
# Usage: bash tests/bench/build-times.sh [serve|ci|all] [--keep] [--port N]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

WHAT=all KEEP=0 PORT=8765
while [ $# -gt 0 ]; do
  case "$1" in
    serve|ci|all) WHAT=$1 ;;
    --keep) KEEP=1 ;;
    --port) PORT="$2"; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "build-times.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

WORK=$(mktemp -d /tmp/headtune-build-times.XXXXXX)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
  if [ "$KEEP" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
TIMES="$WORK/times.tsv"
: > "$TIMES"

# A fresh clone of HEAD with its own CARGO_HOME: the rustup proxies (cargo, rustc, rustup) linked
# in, nothing else (no wasm-bindgen, no registry cache).
fresh_clone() {
  local dir="$WORK/$1"
  git clone --quiet --no-hardlinks "$ROOT" "$dir/repo"
  mkdir -p "$dir/cargo-home/bin" "$dir/npm-cache"
  local tool
  for tool in cargo rustc rustup rustdoc; do
    ln -s "$(command -v "$tool" || echo "$HOME/.cargo/bin/$tool")" "$dir/cargo-home/bin/$tool"
  done
}

# Run a command in a clone's environment: its CARGO_HOME and npm cache, no ~/.cargo/bin on PATH.
in_clone() {
  local dir="$WORK/$1"; shift
  (
    cd "$dir/repo"
    export CARGO_HOME="$dir/cargo-home" npm_config_cache="$dir/npm-cache"
    export PATH="$CARGO_HOME/bin:$(echo "$PATH" | tr ':' '\n' | grep -v '/\.cargo/bin$' | paste -sd:)"
    export HEADTUNE_TIMES="$TIMES" CARGO_TERM_COLOR=never
    "$@"
  )
}

# Record one whole measured command: wall and CPU (user+sys of it and its children).
measure() {
  local label=$1; shift
  local t0 out
  t0=$(date +%s.%N)
  # Bash's `time` keyword, not /usr/bin/time: the command is often a shell function (in_clone).
  local TIMEFORMAT='%U %S'
  out=$( { time "$@" > "$WORK/last.log" 2>&1; } 2>&1 | tail -1 ) || {
    echo "build-times.sh: '$label' failed; its output:" >&2; tail -40 "$WORK/last.log" >&2; exit 1; }
  printf 'TOTAL\t%s\t%s\t%s\t%s\n' "$label" "$t0" "$(date +%s.%N)" "$out" >> "$TIMES"
}

# `www/build.sh --serve` until the page answers; the server is then stopped.
serve_until_up() {
  local clone=$1 label=$2 t0 cpu
  t0=$(date +%s.%N)
  in_clone "$clone" bash www/build.sh --serve --port "$PORT" > "$WORK/$clone.serve.log" 2>&1 &
  SERVER_PID=$!
  until curl -sf -o /dev/null "http://127.0.0.1:$PORT/"; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "build-times.sh: www/build.sh --serve stopped; its output:" >&2
      tail -40 "$WORK/$clone.serve.log" >&2; exit 1
    fi
    sleep 1
  done
  # CPU of the whole process tree so far: the build's children were reaped by build.sh, whose
  # process became the server (exec), so its cumulative children time is in /proc. That process
  # is a child of the in_clone subshell ($SERVER_PID), so it is found by its command line.
  local spid
  spid=$(pgrep -f "serve.py --port $PORT" | head -1)
  cpu=$(awk '{printf "%.2f %.2f", $16/100, $17/100}' "/proc/$spid/stat" 2>/dev/null || echo "0 0")
  printf 'TOTAL\t%s\t%s\t%s\t%s\n' "$label" "$t0" "$(date +%s.%N)" "$cpu" >> "$TIMES"
  # Stop the server itself (killing the subshell alone left it answering the next measurement).
  pkill -f "serve.py --port $PORT" || true
  kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
  while curl -sf -o /dev/null "http://127.0.0.1:$PORT/"; do sleep 0.2; done
}

# One line of real code in the data path (a no-op at run time that the compiler must see).
one_line_change() {
  local file="$WORK/$1/repo/crate/src/lib.rs"
  # Replaced in place after the first time (a second definition would not compile).
  sed -i '/BUILD_TIMES_PROBE/d' "$file"
  echo "#[doc(hidden)] pub const BUILD_TIMES_PROBE: u32 = $(date +%N);" >> "$file"
}

if [ "$WHAT" = serve ] || [ "$WHAT" = all ]; then
  echo "== serve: fresh clone → page served (log: $WORK/serve.serve.log) =="
  fresh_clone serve
  serve_until_up serve "build.sh --serve, cold: page served"
  one_line_change serve
  echo "== serve: one-line change in crate/src → page served =="
  serve_until_up serve "build.sh --serve after a one-line change: page served"
fi

if [ "$WHAT" = ci ] || [ "$WHAT" = all ]; then
  echo "== ci: fresh clone → bash .ci/run (log: $WORK/last.log) =="
  fresh_clone ci
  measure ".ci/run, cold" in_clone ci env CI=true bash .ci/run
  echo "== ci: native inner loop =="
  one_line_change ci
  measure "one-line change → cargo test --no-run" in_clone ci cargo test --workspace --no-run
  one_line_change ci
  measure "one-line change → www/build.sh (fast)" in_clone ci bash www/build.sh
fi

# The table: whole commands (TOTAL rows), then the stages the scripts marked (step lines:
# script, stage, start time, CPU of the script's finished children so far).
python3 - "$TIMES" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
def fmt(s):
    return f"{s / 60:5.1f} min" if s >= 60 else f"{s:5.0f} s  "
print("\n| stage | wall | CPU user+sys |\n|---|---:|---:|")
marks = {}
for r in rows:
    if r[0] == "TOTAL":
        label, t0, t1, cpu = r[1:5]
        u, s = (float(x) for x in cpu.split()[:2])
        # The stages that scripts marked inside this command.
        inner = [m for m in rows if m[0] != "TOTAL" and float(t0) <= float(m[2]) <= float(t1)]
        by_script = {}
        for m in inner:
            by_script.setdefault(m[0], []).append(m)
        for script, ms in by_script.items():
            for a, b in zip(ms, ms[1:]):
                if a[1] == "end":
                    continue
                wall = float(b[2]) - float(a[2])
                c = sum(map(float, b[3].split())) - sum(map(float, a[3].split()))
                print(f"| &nbsp;&nbsp;{script}: {a[1]} | {fmt(wall)} | {fmt(c)} |")
        print(f"| **{label}** | **{fmt(float(t1) - float(t0))}** | **{fmt(u + s)}** |")
EOF
