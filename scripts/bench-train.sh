#!/usr/bin/env bash
# Throughput of `reslab train` (the whole loop: batch selection, augmentation, step; evaluation
# excluded) for plain-20 and plain-56 on the full CIFAR-10, next to the PyTorch reference's training
# step (../shared/bench/torch_reference.py step) run right after on the same machine.
#   scripts/bench-train.sh [ITERS]        (default 60; the img/s of the second half is reported)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/scripts/setup.sh"
iters="${1:-60}"
data="${RESLAB_SHARED_DATA:-$root/../shared/data}/cifar-10-binary.tar.gz"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for depth in 20 56; do
  "$root/target/release/reslab" train --model "plain-$depth" --data "$data" --iters "$iters" \
    --eval-every $((iters / 2)) --out "$out/plain-$depth" > /dev/null
  ours=$(tail -1 "$out/plain-$depth/metrics.csv" | cut -d, -f7)
  theirs=$("$root/.venv/bin/python" "$root/../shared/bench/torch_reference.py" step --depth "$depth" --plain \
    --iters 30 | sed -n 's/^img_per_s=//p')
  ratio=$(python3 -c "print(f'{$ours / $theirs:.2f}')")
  echo "plain-$depth: reslab train $ours img/s, torch_reference.py step $theirs img/s, ratio $ratio"
done
