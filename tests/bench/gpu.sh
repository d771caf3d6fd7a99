#!/bin/bash
# Benchmark (not a test): the backbone on a native GPU through wgpu (the same burn model and
# cubecl kernels the browser's WebGPU backend runs) against the CPU kernels, images/s at batch
# 1, 16 and 64. Made to be run once on a machine with a GPU, where nothing can be downloaded:
#
#   bash tests/bench/gpu.sh --build      # here: builds target/release/headtune with --features wgpu
#                                        # and checks it on the Vulkan adapter at hand (lavapipe
#                                        # on a machine without a GPU: apt-get install mesa-vulkan-drivers)
#   bash tests/bench/gpu.sh              # there: runs the binary built here (carried along), prints
#                                        # the adapter and the table; no compiler needed
#
# Options after the first: passed to `headtune bench` (e.g. --rounds 3 --min-time 1).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=target/release/headtune
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

if [ "${1:-}" = "--build" ]; then
  shift
  export PATH=$HOME/.cargo/bin:$PATH
  cargo build --release --features wgpu --bin headtune
fi
if ! [ -x "$BIN" ]; then
  echo "gpu.sh: $BIN is missing; run 'bash tests/bench/gpu.sh --build' first (on a machine with a compiler)" >&2
  exit 2
fi
# A binary built without the feature says so itself ("… in a build with `--features wgpu`").

# Which adapter wgpu will use (Vulkan first); vulkaninfo is optional.
if command -v vulkaninfo > /dev/null; then
  vulkaninfo --summary 2> /dev/null | grep -E "deviceName|driverName" || true
fi
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
fi
echo "host: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

# The GPU is first used by the warm-up inside `bench` (shader compilation for each batch size
# happens there, not in the timed rounds). Rounds interleave cpu and wgpu. One run per batch
# size, so an adapter whose buffers cannot hold a batch (lavapipe: batch 64 needs a 308 MB
# buffer) fails that row only.
status=0
for batch in ${GPU_BATCHES:-1 16 64}; do
  echo "== batch $batch"
  "$BIN" bench --backend cpu,wgpu --batches "$batch" --embed-only "$@" 2>&1 | grep -v "^  skipped \`" || status=1
done
echo "host load after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
