//! The Slurm backend end to end on a real single-node Slurm (scripts/local-slurm.sh: Debian's
//! slurmctld, slurmd, slurm-client and munge, which `./run test` installs): a small study as an
//! array job, one task signalled mid-run so it checkpoints and requeues itself, the aggregation job
//! after the array, `reslab status` during and after, and the same table as the local backend's.
//! One run on several tasks (`--tasks-per-run 2`, srun ranks) is tested across two hosts in
//! tests/cluster.rs.

#[macro_use]
mod common;
use common::harness;
use common::*;
use reslab::experiment::slurm::Submission;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// One test at a time on the one-node cluster (its two CPUs): each waits for its own jobs.
static CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What the tests need: Slurm's packages, which `scripts/local-slurm.sh install` (run by
/// `./run test`) installs where it can (root or sudo, a Debian mirror).
fn slurm() -> harness::Need {
    harness::tools(&["slurmctld", "sbatch"], "scripts/local-slurm.sh install, which ./run test runs,")
}

/// Starts the local Slurm (or finds it running): its SLURM_CONF.
fn local_slurm() -> String {
    let script = project_root().join("scripts/local-slurm.sh");
    let started = Command::new("bash").arg(&script).arg("start").output().unwrap();
    assert!(started.status.success(), "local Slurm did not start: {}", stderr(&started));
    let conf = stdout(&started).lines().find_map(|l| l.strip_prefix("SLURM_CONF=").map(str::to_string));
    conf.expect("local-slurm.sh prints SLURM_CONF")
}

fn with_conf(program: &str, args: &[&str], conf: &str) -> Output {
    with_slurm_conf(program, args, conf, &[])
}

fn a_study_runs_through_slurm_with_a_requeue_and_matches_the_local_backend() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let conf = local_slurm();
    let dir = tempfile::tempdir().unwrap();
    let (on_slurm, here) = (dir.path().join("slurm"), dir.path().join("local"));
    let file = dir.path().join("study.toml");
    // resnet-8 on the embedded sample: the task must still be mid-run when it is signalled.
    std::fs::write(&file, small_study("slurm-test", &["resnet-8"], 2, 200)).unwrap();
    let file = file.display().to_string();
    let study = [file.as_str(), "--precision", "fp32", "--kernels", "exact"];
    let with = |extra: &[&str], out: &Path| -> Vec<String> {
        let mut args: Vec<String> = study.iter().map(|s| s.to_string()).collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(["--out".to_string(), out.display().to_string()]);
        args
    };
    let started = Instant::now();
    let mut submit = vec!["reproduce".to_string()];
    submit.extend(with(&["--backend", "slurm", "--cpus-per-task", "1"], &on_slurm));
    let submit: Vec<&str> = submit.iter().map(String::as_str).collect();
    // Each task held after its first metrics row (iteration 10): task 0 is mid-run when signalled.
    let holds = Holds::new(dir.path(), 10);
    let (key, value) = holds.env();
    let output = with_slurm_conf("reslab", &submit, &conf, &[(key, &value)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("submitted 2 runs as array job"), "{}", stdout(&output));
    let submission = Submission::load(&on_slurm).expect(".slurm/jobs.toml");
    assert_eq!(submission.runs, ["resnet-8-seed0", "resnet-8-seed1"]);
    let mut status = vec!["status".to_string()];
    status.extend(with(&[], &on_slurm));
    let status: Vec<&str> = status.iter().map(String::as_str).collect();

    // Task 0 mid-run (held after its first metrics row): signal it as its time limit would, then
    // let both tasks go on (task 0 once it is requeued).
    holds.wait_held("resnet-8-seed0", None);
    let task0 = format!("{}_0", submission.array_job);
    let signalled = with_conf("scancel", &["--batch", "--signal=USR1", &task0], &conf);
    assert!(signalled.status.success(), "{}", stderr(&signalled));
    for run in ["resnet-8-seed0", "resnet-8-seed1"] {
        holds.release(run);
    }
    let during = with_conf("reslab", &status, &conf);
    assert!(during.status.success(), "{}", stderr(&during));
    eprintln!("reslab status during the study:\n{}", stdout(&during));
    assert!(stdout(&during).contains("resnet-8-seed0"), "{}", stdout(&during));

    // The aggregation job runs once the array has ended.
    let table = on_slurm.join("table.csv");
    wait_for("the aggregation job's table", Duration::from_secs(600), || {
        table.is_file() && squeue_empty(&submission.aggregate_job, &conf)
    });
    eprintln!("through Slurm in {:.1} s", started.elapsed().as_secs_f64());
    let after = with_conf("reslab", &status, &conf);
    eprintln!("reslab status after the study:\n{}", stdout(&after));
    assert!(stdout(&after).contains("2 runs: 2 done, 0 running, 0 pending, 0 failed"), "{}", stdout(&after));

    // The task stopped with a checkpoint, was requeued, and resumed from it.
    let logs = slurm_logs(&on_slurm);
    assert!(logs.contains("resnet-8-seed0: stopping for a requeue"), "{logs}");
    assert!(logs.contains("resuming from"), "{logs}");
    // Job completions (jobcomp/filetxt, read by sacct -c) name a task by its own job id: task 0's
    // first allocation ended with the task back in the queue, its second completed.
    let shown = stdout(&with_conf("scontrol", &["show", "job", &task0], &conf));
    let id = shown.split_whitespace().find_map(|w| w.strip_prefix("JobId=")).expect("scontrol shows the task");
    let sacct = with_conf("sacct", &["-c", "-n", "-P", "-j", id, "-o", "JobID,State,Start,End"], &conf);
    let sacct = stdout(&sacct);
    eprintln!("sacct -c -j {id} (task {task0}):\n{sacct}");
    let states: Vec<&str> = sacct.lines().filter_map(|l| l.split('|').nth(1)).collect();
    assert_eq!(states, ["PENDING", "COMPLETED"], "requeued once, then complete");

    // The local backend makes the same table from the same study (one thread per run in both).
    let mut local = vec!["reproduce".to_string()];
    local.extend(with(&["--jobs", "2", "--threads", "1"], &here));
    let local: Vec<&str> = local.iter().map(String::as_str).collect();
    let output = reslab(&local);
    assert!(output.status.success(), "{}", stderr(&output));
    let expected = std::fs::read_to_string(here.join("table.csv")).unwrap();
    assert_eq!(std::fs::read_to_string(&table).unwrap(), expected);
    assert!(on_slurm.join("report.html").is_file());
}

fn main() -> std::process::ExitCode {
    harness::run(vec![trial!(a_study_runs_through_slurm_with_a_requeue_and_matches_the_local_backend, slurm())])
}
