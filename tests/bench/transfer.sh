#!/usr/bin/env bash
# Transfer benchmark (issue 9): ACC / AUC / sensitivity / specificity with 95 % intervals per
# configuration (crop, pooling, backbone, input size, threshold rule) on the shared datasets,
# next to a scikit-learn logistic regression on the same embeddings, plus embedding time per
# image and the photo check (`headtune imagenet` top-1 on the ImageNet samples).
#
# Usage: bash tests/bench/transfer.sh [--datasets DIR] [--draws N] [--configs quick|all|a,b,…]
#   DIR defaults to ../shared/datasets (brain_tumor_mri/, blood_cells_wbc/, imagenet_samples/).
# Builds the CLI (release) unless HEADTUNE=path/to/headtune is set. Takes ~1 min per
# configuration and draw on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATASETS=../shared/datasets
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --datasets) DATASETS="$2"; shift ;;
    *) ARGS+=("$1") ;;
  esac
  shift
done
python3 -c "import numpy, sklearn, scipy" 2>/dev/null || python3 -m pip install -q numpy scikit-learn scipy
if [ -z "${HEADTUNE:-}" ]; then
  cargo build --release --bin headtune
  HEADTUNE=target/release/headtune
fi
if [ -d "$DATASETS/imagenet_samples" ]; then
  echo "== photos: headtune imagenet top-1 on $DATASETS/imagenet_samples (folder NNN_name = class index) =="
  for b in lite0 lite1 lite2; do
    "$HEADTUNE" imagenet --backbone "$b" --json --top 1 "$DATASETS/imagenet_samples" | python3 -c '
import json, sys, os
labels = json.load(open("models/imagenet_labels.json"))
ok = n = 0
for line in sys.stdin:
    r = json.loads(line)
    if "top" not in r:
        continue
    want = int(os.path.basename(os.path.dirname(r["file"])).split("_")[0])
    ok += r["top"][0]["label"] == labels[want]
    n += 1
print(f"'"$b"': top-1 {ok}/{n} = {100 * ok / max(n, 1):.1f} %")'
  done
fi
echo "== transfer: held-out splits, headtune vs logistic regression =="
python3 tests/bench/transfer.py --headtune "$HEADTUNE" --datasets "$DATASETS" ${ARGS[@]+"${ARGS[@]}"}
