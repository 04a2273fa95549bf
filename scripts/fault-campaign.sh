#!/usr/bin/env bash
# A longer fault campaign than the test suite's: the chaos test of a local study with many kills,
# several times with fresh seeds, then the two-node cluster's fault tests (node loss, partition,
# the lock across hosts) several times. Prints each round's figures (what was done, when, how long
# until it went on, the bit-identity check) and a summary; exits non-zero if any round failed.
#
#   scripts/fault-campaign.sh [ROUNDS] [KILLS]      default 3 rounds, 30 kills per chaos round
#
# Needs what `./run test` sets up (the .venv's libtorch, Slurm, root for the namespaces and tmpfs).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds="${1:-3}"
kills="${2:-30}"
. "$root/scripts/setup.sh" >/dev/null
cd "$root"
export RESLAB_CACHE_DIR="${RESLAB_CACHE_DIR:-$(mktemp -d -t reslab-campaign-cache.XXXXXX)}"
export RESLAB_PROBE_SLACK_CORES="${RESLAB_PROBE_SLACK_CORES:-64}"
log="$(mktemp -t reslab-fault-campaign.XXXXXX.log)"
failed=0
for round in $(seq 1 "$rounds"); do
  echo "== round $round of $rounds: a local study, $kills kills" | tee -a "$log"
  if ! RESLAB_CHAOS_KILLS="$kills" cargo test --release --test faults -- --nocapture killed_again 2>&1 \
    | grep -E "^(chaos|kills|test |thread )" | tee -a "$log"; then
    failed=$((failed + 1))
  fi
  echo "== round $round of $rounds: the two-node cluster's faults" | tee -a "$log"
  if ! cargo test --release --test cluster -- --nocapture lost_node partition lock_held 2>&1 \
    | grep -E "^(node|partition|test |thread )" | tee -a "$log"; then
    failed=$((failed + 1))
  fi
done
passed="$(grep -c ' \.\.\. ok$' "$log" || true)"
failures="$(grep -c ' \.\.\. FAILED$' "$log" || true)"
echo "fault campaign: $rounds rounds, $passed tests passed, $failures failed; the log is $log"
[ "$failures" = 0 ] && [ "$failed" = 0 ]
