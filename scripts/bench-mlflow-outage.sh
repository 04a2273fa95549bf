#!/usr/bin/env bash
# What an MLflow outage does to a run's speed: the same `reslab train` without a tracker, with a
# server that answers, with a port that refuses, and with a server that hangs (SIGSTOP), each
# REPEATS times in turn; prints training throughput (summary.toml's mean_img_per_s) and the
# command's wall time (which includes the final wait for a server that is down, at most
# RESLAB_MLFLOW_FLUSH_S + 0.5 s). Needs `./run test` once (MLflow in the venv).
#   scripts/bench-mlflow-outage.sh [REPEATS] [-- extra train options]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repeats="${1:-2}"
shift || true
[ "${1:-}" = "--" ] && shift
reslab="$root/target/release/reslab"
mlflow="$root/.venv/bin/mlflow"
[ -x "$mlflow" ] && [ -f "$root/.venv/mlflow-empty.db" ] || { echo "error: MLflow is not in $root/.venv: run ./run test --no-run first" >&2; exit 1; }
[ -x "$reslab" ] || { echo "error: $reslab is missing: cargo build --release first" >&2; exit 1; }
work="$(mktemp -d -t reslab-outage.XXXXXX)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill -CONT -- "-$server_pid" 2>/dev/null || true; kill -KILL -- "-$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cp "$root/.venv/mlflow-empty.db" "$work/mlflow.db"
port="$(free_port)"
MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-true}" setsid "$mlflow" server --host 127.0.0.1 --port "$port" --workers 1 \
  --backend-store-uri "sqlite:///$work/mlflow.db" --artifacts-destination "$work/artifacts" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.5; done
curl -sf "http://127.0.0.1:$port/health" >/dev/null || { echo "error: the MLflow server did not start (see $work/server.log)" >&2; exit 1; }
refused="http://127.0.0.1:$(free_port)"

train() { # name, then options
  local name="$1"; shift
  local out="$work/$name"
  local start end
  start=$(date +%s.%N)
  "$reslab" train --model resnet-8 --data embedded --iters 200 --eval-every 50 --batch-size 128 \
    --threads 2 --precision fp32 --out "$out" "$@" >/dev/null 2>"$out.err" || { cat "$out.err" >&2; exit 1; }
  end=$(date +%s.%N)
  local speed
  speed=$(sed -n 's/^mean_img_per_s = //p' "$out/summary.toml")
  printf '%-8s %10.1f img/s %8.1f s\n' "${name%%-*}" "$speed" "$(awk "BEGIN{print $end - $start}")"
}

echo "condition  training speed  wall time"
for i in $(seq "$repeats"); do
  train "none-$i" "$@"
  train "live-$i" --mlflow "http://127.0.0.1:$port" "$@"
  train "refused-$i" --mlflow "$refused" "$@"
  kill -STOP -- "-$server_pid"
  train "hung-$i" --mlflow "http://127.0.0.1:$port" "$@"
  kill -CONT -- "-$server_pid"
done
