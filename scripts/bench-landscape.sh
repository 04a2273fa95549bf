#!/usr/bin/env bash
# The time per point of `reslab analyze landscape` on one complete run, with the points spread
# over 1 worker on all threads and over one worker per thread (the default), each REPEATS times:
# prints seconds per point (landscape-summary.csv) and checks that both layouts give the same
# surface to the digits the CSV keeps (rounding may differ with the thread count in the last bits).
#   scripts/bench-landscape.sh RUN_DIR [REPEATS] [-- extra analyze options, e.g. --grid 5 --images 500]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
run="${1:?usage: scripts/bench-landscape.sh RUN_DIR [REPEATS] [-- options]}"
shift
repeats="${1:-2}"
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
reslab="$root/target/release/reslab"
[ -x "$reslab" ] || { echo "error: $reslab is missing: cargo build --release first" >&2; exit 1; }
[ -f "$run/model.safetensors" ] || { echo "error: $run holds no complete run (no model.safetensors)" >&2; exit 1; }
threads="$(nproc)"
work="$(mktemp -d -t reslab-landscape.XXXXXX)"
trap 'rm -rf "$work"' EXIT
for i in $(seq "$repeats"); do
  for workers in 1 "$threads"; do
    out="$work/w$workers-$i"
    "$reslab" analyze landscape "$run" --grid 7 --images 500 --path-points 0 --threads "$threads" --workers "$workers" \
      "$@" --out "$out" >/dev/null 2>&1
    per_point="$(tail -n 1 "$out/landscape-summary.csv" | awk -F, '{print $12}')"
    echo "workers $workers x $((threads / workers)) threads, round $i: $per_point s per point"
  done
done
if cmp -s <(cut -d, -f1-4 "$work/w1-1/landscape.csv") <(cut -d, -f1-4 "$work/w$threads-1/landscape.csv"); then
  echo "the two layouts gave the same surface (6 digits)"
else
  echo "the two layouts' surfaces differ beyond 6 digits" >&2
fi
