//! Studies across hosts, on a two-node Slurm of this machine's own (`scripts/local-slurm.sh
//! cluster 2`: each node a network namespace with its own address and host name, the file system
//! shared as a cluster's NFS is): a study's tasks on both nodes with the local backend's table; a
//! node lost mid-run, its task requeued onto the other node and ending bit-identical; one run on
//! two hosts over Gloo with `reslab launch --nproc 2`'s weights; a run directory's lock across
//! hosts. Where namespaces or Slurm cannot be had the tests say why and stop (fail under CI=true).

#[macro_use]
mod common;
use common::harness;
use common::*;
use reslab::run::{attempts, checkpoint};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// One test at a time: they share the two nodes, and some take one down.
static CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn script() -> std::path::PathBuf {
    project_root().join("scripts/local-slurm.sh")
}

/// What the tests need: Slurm's and iproute2's tools...
fn cluster_tools() -> harness::Need {
    harness::tools(&["slurmctld", "sbatch", "ip", "nsenter"], "scripts/local-slurm.sh install, which ./run test runs,")
}

/// ...and root, for the nodes' network namespaces.
fn root() -> harness::Need {
    harness::root("a cluster of network namespaces")
}

/// Brings up the two-node cluster (or finds it up): its SLURM_CONF.
fn cluster() -> String {
    let started = Command::new("bash").arg(script()).args(["cluster", "2"]).output().unwrap();
    assert!(started.status.success(), "the two-node cluster did not start: {}", stderr(&started));
    let conf = stdout(&started).lines().find_map(|l| l.strip_prefix("SLURM_CONF=").map(str::to_string));
    conf.expect("local-slurm.sh prints SLURM_CONF")
}

fn node(action: &str, node: usize) {
    let done = Command::new("bash").arg(script()).args([action, &node.to_string()]).output().unwrap();
    assert!(done.status.success(), "local-slurm.sh {action} {node}: {}", stderr(&done));
}

/// Puts a node taken down back into service when the test ends, also when it fails.
struct Revive(usize);

impl Drop for Revive {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(script()).args(["heal", &self.0.to_string()]).status();
        let _ = Command::new("bash").arg(script()).args(["revive", &self.0.to_string()]).status();
    }
}

fn with_conf(program: &str, args: &[&str], conf: &str, env: &[(&str, &str)]) -> Output {
    with_slurm_conf(program, args, conf, env)
}

fn complete(run: &Path) -> bool {
    std::fs::read_to_string(run.join("summary.toml")).is_ok_and(|s| s.contains("status = \"complete\""))
}

/// Job completions (jobcomp/filetxt, `sacct -c`) of the tests' studies: id, nodes, state.
fn completions(conf: &str) -> Vec<String> {
    let out = with_conf("sacct", &["-c", "-n", "-P", "-o", "JobID,JobName,NodeList,State"], conf, &[]);
    stdout(&out).lines().filter(|l| l.contains("|reslab-cluster-test|")).map(str::to_string).collect()
}

/// An experiment file in `dir`: `models` on the embedded sample, `seeds` seeds, `iters` iterations.
fn study_file(dir: &Path, models: &[&str], seeds: usize, iters: usize) -> String {
    let path = dir.join("study.toml");
    std::fs::write(&path, small_study("cluster-test", models, seeds, iters)).unwrap();
    path.display().to_string()
}

/// `reproduce` of `study` through the cluster's Slurm into `out`: one task a run, or (`two_hosts`)
/// each run on two ranks, one a node.
fn on_slurm<'a>(study: &'a str, out: &'a str, two_hosts: bool) -> Vec<&'a str> {
    let mut args = vec![
        "reproduce",
        study,
        "--precision",
        "fp32",
        "--kernels",
        "exact",
        "--backend",
        "slurm",
        "--cpus-per-task",
        "1",
    ];
    if two_hosts {
        args.extend(["--tasks-per-run", "2", "--sbatch=--ntasks-per-node=1"]);
    }
    args.extend(["--out", out]);
    args
}

/// The run `run_name` of the Slurm study in `out` trained again by `reslab launch --nproc 2` into
/// `launched`: two ranks on this host, never interrupted.
fn launched_as_two_ranks(out: &Path, run_name: &str, launched: &Path) {
    let config = out.join(format!(".slurm/configs/{run_name}.toml"));
    let (config, launched) = (config.display().to_string(), launched.display().to_string());
    let output = reslab(&["launch", "--nproc", "2", "--", "train", "--config", &config, "--out", &launched]);
    assert!(output.status.success(), "{}", stderr(&output));
}

fn a_study_runs_on_both_nodes_and_matches_the_local_backend() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let conf = cluster();
    let dir = tempfile::tempdir().unwrap();
    let study = study_file(dir.path(), &["plain-8", "resnet-8"], 2, 60);
    let (on_slurm, here) = (dir.path().join("slurm"), dir.path().join("local"));
    let (on_slurm_arg, here_arg) = (on_slurm.display().to_string(), here.display().to_string());
    let common = ["--precision", "fp32", "--kernels", "exact"];
    let mut args = vec!["reproduce", &study, "--backend", "slurm", "--cpus-per-task", "1", "--out", &on_slurm_arg];
    args.extend(common);
    let started = Instant::now();
    let submitted = with_conf("reslab", &args, &conf, &[]);
    assert!(submitted.status.success(), "{}", stderr(&submitted));
    let submission = reslab::experiment::slurm::Submission::load(&on_slurm).expect(".slurm/jobs.toml");
    assert_eq!(submission.runs.len(), 4);

    let mut local = vec!["reproduce", &study, "--jobs", "2", "--threads", "1", "--out", &here_arg];
    local.extend(common);
    let output = reslab(&local);
    assert!(output.status.success(), "{}", stderr(&output));

    let table = on_slurm.join("table.csv");
    let took = wait_for("the aggregation job's table", Duration::from_secs(300), || {
        table.is_file() && squeue_empty(&submission.aggregate_job, &conf)
    });
    eprintln!(
        "a 4-run study through the 2-node Slurm: {:.1} s ({:.1} s after the local backend's)",
        started.elapsed().as_secs_f64(),
        took.as_secs_f64()
    );
    let hosts: Vec<String> =
        submission.runs.iter().flat_map(|run| attempts::read(&on_slurm.join(run)).unwrap()).map(|a| a.host).collect();
    assert!(hosts.iter().any(|h| h == "node1") && hosts.iter().any(|h| h == "node2"), "ran on {hosts:?}");
    // Slurm's own record of where each task ran (slurmctld keeps ended jobs for MinJobAge).
    let shown = stdout(&with_conf("scontrol", &["-o", "show", "job", &submission.array_job], &conf, &[]));
    let task_nodes: Vec<&str> =
        shown.lines().filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("NodeList="))).collect();
    assert!(task_nodes.contains(&"node1") && task_nodes.contains(&"node2"), "the tasks' node lists: {task_nodes:?}");
    eprintln!("sacct -c:\n{}", completions(&conf).join("\n"));
    assert_eq!(std::fs::read_to_string(&table).unwrap(), std::fs::read_to_string(here.join("table.csv")).unwrap());
}

fn a_lost_node_s_task_resumes_on_the_other_and_ends_bit_identical() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let conf = cluster();
    let dir = tempfile::tempdir().unwrap();
    let study = study_file(dir.path(), &["plain-8"], 1, 100);
    let out = dir.path().join("slurm");
    let out_arg = out.display().to_string();
    let args = on_slurm(&study, &out_arg, false);
    // The lost node's lock cannot be checked from the other node: stale after 5 s here (the
    // node is marked down after 10 s or more, and the requeued task waits out its credential's
    // 10 s, so it finds the lock stale).
    // Held after its second checkpoint (iteration 20), so the node is lost mid-run.
    let holds = Holds::new(dir.path(), 20);
    let (key, value) = holds.env();
    let env = [("RESLAB_LOCK_STALE_S", "5"), (key, value.as_str())];
    let submitted = with_conf("reslab", &args, &conf, &env);
    assert!(submitted.status.success(), "{}", stderr(&submitted));
    let submission = reslab::experiment::slurm::Submission::load(&out).unwrap();
    let run_name = submission.runs[0].clone();
    let run = out.join(&run_name);
    holds.wait_held(&run_name, None);
    assert_eq!(checkpoint::iteration(&run), Some(20), "held after its checkpoint at 20");
    let first = attempts::read(&run).unwrap();
    let lost: usize = first[0].host.strip_prefix("node").unwrap().parse().unwrap();
    let _revive = Revive(lost);
    let killed_at = Instant::now();
    node("kill-node", lost);
    // The task requeued on the other node goes on past the hold.
    holds.release(&run_name);
    let resumed_from = checkpoint::iteration(&run).unwrap();
    eprintln!("node{lost} killed with the run's newest checkpoint at iteration {resumed_from}");
    let down = wait_for("Slurm to mark the node down", Duration::from_secs(60), || {
        let state = with_conf("sinfo", &["-h", "-n", &format!("node{lost}"), "-o", "%T"], &conf, &[]);
        stdout(&state).contains("down")
    });
    assert!(!complete(&run), "nothing partial looks complete");
    let other = wait_for("the task running again", Duration::from_secs(120), || {
        attempts::read(&run).is_ok_and(|a| a.len() >= 2)
    });
    wait_for("the run to complete", Duration::from_secs(180), || complete(&run));
    let attempts = attempts::read(&run).unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_ne!(attempts[1].host, attempts[0].host, "resumed on the other node");
    assert_eq!(attempts[1].start_iteration, resumed_from, "resumed from the newest checkpoint");
    eprintln!(
        "node loss: node{lost} down after {:.1} s, the task running on {} after {:.1} s more, from iteration {resumed_from}; \
         complete {:.1} s after the kill",
        down.as_secs_f64(),
        attempts[1].host,
        other.as_secs_f64(),
        killed_at.elapsed().as_secs_f64()
    );
    // The same configuration and thread count, never interrupted.
    let reference = dir.path().join("reference");
    let config = out.join(format!(".slurm/configs/{run_name}.toml"));
    let output =
        reslab(&["train", "--config", &config.display().to_string(), "--out", &reference.display().to_string()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let weights = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert!(weights(&reference) == weights(&run), "the resumed run's weights differ from the uninterrupted run's");
    let logs = slurm_logs(&out);
    assert!(logs.contains("taking over the stale lock") && logs.contains("resuming from"), "{logs}");
    assert!(logs.contains("(restart 1)"), "Slurm requeued the task: {logs}");
}

fn one_run_on_two_hosts_trains_as_two_launched_ranks() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let conf = cluster();
    let dir = tempfile::tempdir().unwrap();
    let study = study_file(dir.path(), &["plain-8"], 1, 40);
    let (out, launched) = (dir.path().join("slurm"), dir.path().join("launched"));
    let out_arg = out.display().to_string();
    let args = on_slurm(&study, &out_arg, true);
    let submitted = with_conf("reslab", &args, &conf, &[]);
    assert!(submitted.status.success(), "{}", stderr(&submitted));
    let submission = reslab::experiment::slurm::Submission::load(&out).unwrap();
    let run_name = submission.runs[0].clone();
    let run = out.join(&run_name);
    let took = wait_for("the run on two hosts", Duration::from_secs(240), || complete(&run));
    eprintln!("one run on two hosts: {:.1} s", took.as_secs_f64());
    wait_for("its job to end", Duration::from_secs(60), || squeue_empty(&submission.array_job, &conf));
    let logs = slurm_logs(&out);
    let sacct = completions(&conf);
    assert!(sacct.iter().any(|l| l.contains("|node[1-2]|COMPLETED")), "one job on both nodes: {sacct:?}\n{logs}");
    launched_as_two_ranks(&out, &run_name, &launched);
    let weights = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert!(weights(&run) == weights(&launched), "srun's ranks on two hosts and launch's ranks train the same run");
}

fn a_lock_held_on_one_node_is_refused_on_the_other_until_it_goes_stale() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let conf = cluster();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let exe = env!("CARGO_BIN_EXE_reslab");
    let train = format!(
        "exec {exe} train --model plain-8 --iters 5000 --eval-every 20 --batch-size 32 --threads 1 --precision fp32 \
         --data embedded --out {}",
        run.display()
    );
    let env = [("RESLAB_LOCK_STALE_S", "4")];
    let sbatch = |node: &str, log: &str| -> String {
        let log = dir.path().join(log).display().to_string();
        let args = ["--parsable", "-w", node, "-c", "1", "-o", &log, "--wrap", &train];
        let output = with_conf("sbatch", &args, &conf, &env);
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output).trim().to_string()
    };
    // Both nodes in service (an earlier test may have just brought one back).
    wait_for("both nodes idle", Duration::from_secs(90), || {
        let state = with_conf("sinfo", &["-h", "-N", "-o", "%T"], &conf, &[]);
        stdout(&state).lines().filter(|l| l.trim() == "idle").count() == 2
    });
    let holder = sbatch("node1", "node1.log");
    let lock = run.join(".lock");
    wait_for("node1's task to lock the run", Duration::from_secs(60), || {
        std::fs::read_to_string(&lock).is_ok_and(|t| t.starts_with("node1 "))
    });
    let pid: i32 = std::fs::read_to_string(&lock).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();

    let refused = sbatch("node2", "refused.log");
    wait_for("node2's task to end", Duration::from_secs(60), || squeue_empty(&refused, &conf));
    let log = std::fs::read_to_string(dir.path().join("refused.log")).unwrap();
    let error = log.lines().find(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("no error line: {log}"));
    assert!(
        error.contains(&format!("in use by process {pid} on host node1")) && error.contains("only after 4 s"),
        "{error}"
    );

    // node1's task stops refreshing (stopped, as a hung host would be): stale after 4 s.
    // SAFETY: signalling the test's own training process (a PID of this machine).
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let stopped = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let taker = sbatch("node2", "taker.log");
    wait_for("node2's task to take the run over", Duration::from_secs(120), || {
        std::fs::read_to_string(&lock).is_ok_and(|t| t.starts_with("node2 "))
            && attempts::read(&run).is_ok_and(|a| a.len() == 2)
    });
    let took_over = stopped.elapsed();
    let log = std::fs::read_to_string(dir.path().join("taker.log")).unwrap();
    // SAFETY: as above; the stopped process is killed, as its host's loss would end it.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    for job in [&holder, &taker] {
        let _ = with_conf("scancel", &[job], &conf, &[]);
    }
    let warning = log.lines().find(|l| l.contains("taking over the stale lock")).unwrap_or_else(|| panic!("{log}"));
    assert!(warning.contains(&format!("process {pid} on host node1 has not refreshed it for")), "{warning}");
    eprintln!(
        "lock: node2 took the run over {:.1} s after node1's task stopped",
        (stopped.elapsed() - took_over).as_secs_f64()
    );
    let attempts = attempts::read(&run).unwrap();
    assert_eq!(attempts.iter().map(|a| a.host.as_str()).collect::<Vec<_>>(), ["node1", "node2"], "{attempts:?}");
    wait_for("both jobs to end", Duration::from_secs(60), || {
        squeue_empty(&holder, &conf) && squeue_empty(&taker, &conf)
    });
}

/// The processes on this machine training into `run` (on any node: PIDs are the machine's).
fn trainers_of(run: &Path) -> Vec<u32> {
    let needle = run.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // The trainers themselves, not the batch script or srun that started them.
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
            if exe.file_name().is_none_or(|n| n != "reslab") {
                return false;
            }
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            text.contains(" train ") && text.contains(&needle)
        })
        .collect()
}

fn a_partition_ends_both_ranks_within_their_timeout_and_the_run_resumes() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let conf = cluster();
    let dir = tempfile::tempdir().unwrap();
    let study = study_file(dir.path(), &["plain-8"], 1, 150);
    let (out, launched) = (dir.path().join("slurm"), dir.path().join("launched"));
    let out_arg = out.display().to_string();
    let args = on_slurm(&study, &out_arg, true);
    // The ranks give up on each other after 5 s, before Slurm gives up on the node (10 s).
    // Both ranks held after the run's second checkpoint (iteration 20): the cut comes mid-run.
    let holds = Holds::new(dir.path(), 20);
    let (key, value) = holds.env();
    let env = [("RESLAB_DIST_TIMEOUT_S", "5"), (key, value.as_str())];
    let submitted = with_conf("reslab", &args, &conf, &env);
    assert!(submitted.status.success(), "{}", stderr(&submitted));
    let submission = reslab::experiment::slurm::Submission::load(&out).unwrap();
    let run_name = submission.runs[0].clone();
    let run = out.join(&run_name);
    for rank in 0..2 {
        holds.wait_held(&run_name, Some(rank));
    }
    let ranks = trainers_of(&run);
    assert_eq!(ranks.len(), 2, "two ranks: {ranks:?}");
    // Rank 0 runs where the batch script does (node1); node2 holds rank 1.
    let _heal = Revive(2);
    let cut_at = Instant::now();
    node("cut", 2);
    holds.release(&run_name);
    let ended = wait_for("both ranks to end", Duration::from_secs(30), || ranks.iter().all(|&p| !process_alive(p)));
    let logs = || slurm_logs(&out);
    wait_for("rank 0's error line", Duration::from_secs(30), || logs().lines().any(|l| l.starts_with("error: ")));
    let log = logs();
    let error = log.lines().find(|l| l.starts_with("error: ")).unwrap().to_string();
    eprintln!("partition: both ranks ended {:.1} s after the cut; rank 0: {error}", ended.as_secs_f64());
    assert!(ended < Duration::from_secs(5 + 10), "ended within the 5 s timeout (and a checkpoint's slack)");
    assert!(!log.contains("panicked"), "{log}");
    assert!(!complete(&run), "nothing partial looks complete");
    let resumed_from = checkpoint::iteration(&run).unwrap();

    node("heal", 2);
    // The failed job ends once node2 answers (its step there is cleaned up), or once Slurm has
    // marked node2 down; then node2 returns to service (ReturnToService=2, or the resume an
    // operator would give it).
    wait_for("the failed job to end", Duration::from_secs(120), || squeue_empty(&submission.array_job, &conf));
    let healed = wait_for("node2 back in service", Duration::from_secs(90), || {
        let state = stdout(&with_conf("sinfo", &["-h", "-n", "node2", "-o", "%T"], &conf, &[]));
        if state.contains("down") || state.contains("drain") {
            let _ = with_conf("scontrol", &["update", "nodename=node2", "state=resume"], &conf, &[]);
        }
        matches!(state.trim(), "idle" | "mixed" | "allocated")
    });
    let resubmitted = with_conf("reslab", &args, &conf, &env); // (released: the hold lets it pass)
    assert!(resubmitted.status.success(), "{}", stderr(&resubmitted));
    let took = wait_for("the resumed run", Duration::from_secs(180), || complete(&run));
    eprintln!(
        "partition: node2 in service {:.1} s after its job ended; resumed from iteration {resumed_from}, complete {:.1} s later; \
         {:.1} s from the cut",
        healed.as_secs_f64(),
        took.as_secs_f64(),
        cut_at.elapsed().as_secs_f64()
    );
    let attempts = attempts::read(&run).unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[1].start_iteration, resumed_from);
    launched_as_two_ranks(&out, &run_name, &launched);
    let weights = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert!(weights(&run) == weights(&launched), "the resumed run's weights differ from an uninterrupted one's");
}

fn main() -> std::process::ExitCode {
    harness::run(vec![
        trial!(a_study_runs_on_both_nodes_and_matches_the_local_backend, cluster_tools(), root()),
        trial!(a_lost_node_s_task_resumes_on_the_other_and_ends_bit_identical, cluster_tools(), root()),
        trial!(one_run_on_two_hosts_trains_as_two_launched_ranks, cluster_tools(), root()),
        trial!(a_lock_held_on_one_node_is_refused_on_the_other_until_it_goes_stale, cluster_tools(), root()),
        trial!(a_partition_ends_both_ranks_within_their_timeout_and_the_run_resumes, cluster_tools(), root()),
    ])
}
