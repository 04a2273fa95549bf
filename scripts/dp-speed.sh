#!/usr/bin/env bash
# The data parallel speed figures of docs/results.md: training images/s of one process (2 threads, and
# 1 thread) against `reslab launch --nproc 2` (two Gloo ranks of 1 thread each) on this machine,
# and the all-reduce time per step, for resnet-20 and resnet-56 at batch 128, fp32.
#   scripts/dp-speed.sh [ITERS]     (default 200; each run also evaluates once at the end)
# Needs the full CIFAR-10: $RESLAB_SHARED_DATA/cifar-10-binary.tar.gz (default ../shared/data).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/scripts/setup.sh"
iters="${1:-200}"
data="${RESLAB_SHARED_DATA:-$root/../shared/data}/cifar-10-binary.tar.gz"
reslab="$root/target/release/reslab"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
common=(--data "$data" --iters "$iters" --eval-every "$iters" --precision fp32)
report() {
  local dir="$1" label="$2"
  local ips ar
  ips=$(grep '^mean_img_per_s' "$dir/summary.toml" | cut -d' ' -f3)
  ar=$(grep '^all_reduce_ms_per_step' "$dir/summary.toml" | cut -d' ' -f3 || true)
  printf '%-10s %-28s %8.0f img/s  %s\n' "$model" "$label" "$ips" "${ar:+all-reduce ${ar} ms/step}"
}
for model in resnet-20 resnet-56; do
  "$reslab" train --model "$model" "${common[@]}" --threads 2 --out "$out/$model-t2" > /dev/null
  report "$out/$model-t2" "1 process, 2 threads"
  "$reslab" train --model "$model" "${common[@]}" --threads 1 --out "$out/$model-t1" > /dev/null
  report "$out/$model-t1" "1 process, 1 thread"
  "$reslab" launch --nproc 2 -- train --model "$model" "${common[@]}" --out "$out/$model-dp2" > /dev/null
  report "$out/$model-dp2" "2 Gloo ranks, 1 thread each"
done
