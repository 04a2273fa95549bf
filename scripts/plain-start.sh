#!/usr/bin/env bash
# The plain-56 start study: does reslab sit at chance more often than PyTorch in the first
# iterations of a deep plain net at lr 0.1? Trains plain-56 (no lr step) for ITERS iterations over
# SEEDS seeds in reslab and in PyTorch (scripts/torch_start.py, the same protocol) on the full
# CIFAR-10 archive, and prints the running training loss and error over each 100 iterations.
#
# usage: scripts/plain-start.sh [SEEDS (default 4)] [ITERS (default 300)] [MODEL (default plain-56)]
# env:   RESLAB_DATA (default ../shared/data/cifar-10-binary.tar.gz), OUT (default results/plain-start)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seeds="${1:-4}"
iters="${2:-300}"
model="${3:-plain-56}"
data="${RESLAB_DATA:-$root/../shared/data/cifar-10-binary.tar.gz}"
out="${OUT:-$root/results/plain-start}"
reslab="$root/target/release/reslab"
python="$root/.venv/bin/python"
depth="${model##*-}"
kind_flag=""; [ "${model%%-*}" = resnet ] && kind_flag="--residual"
mkdir -p "$out"
csv="$out/start.csv"
echo "implementation,model,seed,iter,train_loss,train_err" > "$csv"
for seed in $(seq 0 $((seeds - 1))); do
  run="$out/reslab-$model-seed$seed"
  "$reslab" train --model "$model" --data "$data" --iters "$iters" --eval-every 100 \
    --set 'lr_steps=[]' --seed "$seed" --threads 2 --out "$run" >/dev/null
  # metrics.csv: iter,epoch,lr,train_loss,train_err,...
  tail -n +2 "$run/metrics.csv" | awk -F, -v m="$model" -v s="$seed" '{printf "reslab,%s,%s,%s,%.4f,%.2f\n", m, s, $1, $4, $5}' >> "$csv"
  "$python" "$root/scripts/torch_start.py" --data "$data" --depth "$depth" $kind_flag --iters "$iters" \
    --seed "$seed" --threads 2 >> "$csv"
  echo "seed $seed done" >&2
done
echo "training error (%) over iterations 1-100, 101-200, 201-300 (running, augmented batches):"
awk -F, 'NR > 1 { key = $1 " seed " $3; err[key] = err[key] sprintf("  %6.2f", $6); loss[key] = $5 }
         END { for (k in err) printf "%-16s %s   (last loss %s)\n", k, err[k], loss[k] }' "$csv" | sort
echo "wrote $csv"
