#!/bin/bash
#SBATCH --job-name=reslab-{experiment}
#SBATCH --chdir={workdir}
#SBATCH --array=0-{last_task}
#SBATCH --output={log}
#SBATCH --open-mode=append
#SBATCH --signal=B:USR1@{grace_s}
#SBATCH --requeue{directives}

# Made by reslab {version} for `reslab reproduce {experiment} --preset {preset} --backend slurm`:
# one array task per run that was not complete at submission.
set -u
runs=({runs})
run="${runs[$SLURM_ARRAY_TASK_ID]}"
out={out}
echo "reslab: task $SLURM_ARRAY_TASK_ID of job $SLURM_ARRAY_JOB_ID on $(hostname): $run (restart ${SLURM_RESTART_COUNT:-0})"

# Near the time limit (or when asked with scancel --batch --signal=USR1): stop the run, which
# writes a checkpoint, then requeue this task; it resumes from the checkpoint when it runs again.
requeue() {
  echo "reslab: $run: stopping for a requeue"
  kill -TERM "$pid" 2>/dev/null
  wait "$pid"
  scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
  exit 0
}
trap requeue USR1

# A task requeued after its node was lost may start while that node's lock on the run is still
# fresh: RESLAB_LOCK_WAIT=1 waits for it to go stale (RESLAB_LOCK_STALE_S, default 600 s).
RESLAB_LOCK_WAIT=1 RESLAB_PROGRESS_LINES=1 {launcher}{exe} train{distributed} --config {configs}/"$run.toml" --out "$out/$run" &
pid=$!
wait "$pid"

