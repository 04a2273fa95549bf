#!/usr/bin/env bash
# The speed table of docs/results.md: reslab against the PyTorch reference (../shared/bench/torch_reference.py)
# for resnet-20 and resnet-56 at batch 128, each measurement alternating with the reference's.
#   scripts/bench.sh [ROUNDS]     (default 3; the median of the rounds is reported)
# Needs the full CIFAR-10 for the training loops: $RESLAB_SHARED_DATA/cifar-10-binary.tar.gz
# (default ../shared/data beside the project).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/scripts/setup.sh"
rounds="${1:-3}"
data="${RESLAB_SHARED_DATA:-$root/../shared/data}/cifar-10-binary.tar.gz"
reslab="$root/target/release/reslab"
bench() { echo "== reslab bench $*"; "$reslab" bench --rounds "$rounds" --peak-gflops 333 "$@" | grep -v '^bench  iter'; echo; }
for model in resnet-20 resnet-56; do
  # Timed iterations per round: about 15 s of training each.
  if [ "$model" = resnet-20 ]; then train=(--iters 60 --warmup 20); step=(--iters 30); else train=(--iters 30 --warmup 10); step=(--iters 12); fi
  bench --model "$model" --mode step --precision fp32 "${step[@]}" --reference
  bench --model "$model" --mode train --precision fp32 --data "$data" "${train[@]}" --reference
  bench --model "$model" --mode train --precision bf16 --data "$data" "${train[@]}" --reference --reference-precision fp32
  bench --model "$model" --mode train --precision fp32 --data "$data" "${train[@]}" --no-augment
  bench --model "$model" --mode step --precision bf16 "${step[@]}" --reference
  bench --model "$model" --mode eval --precision fp32 "${step[@]}"
  bench --model "$model" --mode eval --precision bf16 "${step[@]}"
done
