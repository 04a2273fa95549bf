//! Runs that survive: killed at arbitrary moments (SIGKILL) and resumed, a run ends with the same
//! weights (bit-identical on CPU, same thread count) and the same metrics rows (wall-clock columns
//! aside) as the same run never interrupted, with exact kernels and with fused ones.

mod common;
use common::*;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The test run's length (RUN's --iters).
const ITERS: usize = 36;

const RUN: [&str; 20] = [
    "train",
    "--model",
    "plain-8",
    "--iters",
    "36",
    "--eval-every",
    "5",
    "--checkpoint-every",
    "3",
    "--batch-size",
    "32",
    "--threads",
    "2",
    "--precision",
    "fp32",
    "--kernels",
    "exact",
    "--seed",
    "3",
    "--data",
];

fn args(out: &Path) -> Vec<String> {
    args_with(out, "exact")
}

/// RUN with `kernels` (exact or fused).
fn args_with(out: &Path, kernels: &str) -> Vec<String> {
    let mut args: Vec<String> =
        RUN.iter().map(|s| if *s == "exact" { kernels.to_string() } else { s.to_string() }).collect();
    args.extend(["embedded".into(), "--out".into(), out.display().to_string()]);
    args
}

/// The run started in the background, held at `holds` (so it cannot finish before the test
/// stops it).
fn spawn_held(out: &Path, holds: &Holds) -> Child {
    spawn_held_with(out, holds, "exact")
}

fn spawn_held_with(out: &Path, holds: &Holds, kernels: &str) -> Child {
    let (key, value) = holds.env();
    Command::new(env!("CARGO_BIN_EXE_reslab"))
        .args(args_with(out, kernels))
        .env(key, value)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn run_to_end(out: &Path, kernels: &str) {
    let output = Command::new(env!("CARGO_BIN_EXE_reslab")).args(args_with(out, kernels)).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
}

/// metrics.csv without the wall-clock columns (img_per_s, wall_s).
fn rows(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| l.split(',').take(6).collect::<Vec<_>>().join(","))
        .collect()
}

fn assert_same_run(reference: &Path, resumed: &Path, what: &str) {
    let weights = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert!(weights(reference) == weights(resumed), "{what}: final weights differ from the uninterrupted run");
    assert_eq!(rows(reference), rows(resumed), "{what}: metrics rows differ");
    assert!(!resumed.join(".lock").exists(), "{what}: lock left behind");
}

/// The uninterrupted run (exact kernels) and how long it took, made once for every test of this file.
fn reference() -> &'static (std::path::PathBuf, Duration) {
    static REFERENCE: std::sync::OnceLock<(std::path::PathBuf, Duration)> = std::sync::OnceLock::new();
    REFERENCE.get_or_init(|| uninterrupted("exact"))
}

/// The uninterrupted run with fused kernels.
fn fused_reference() -> &'static (std::path::PathBuf, Duration) {
    static REFERENCE: std::sync::OnceLock<(std::path::PathBuf, Duration)> = std::sync::OnceLock::new();
    REFERENCE.get_or_init(|| uninterrupted("fused"))
}

fn uninterrupted(kernels: &str) -> (std::path::PathBuf, Duration) {
    {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("resume-reference-{kernels}"));
        let _ = std::fs::remove_dir_all(&out);
        let started = Instant::now();
        run_to_end(&out, kernels);
        let took = started.elapsed();
        let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
        assert!(config.contains(&format!("kernels = \"{kernels}\"")), "{config}");
        eprintln!("uninterrupted run ({kernels} kernels): {:.1} s", took.as_secs_f64());
        (out, took)
    }
}

#[test]
fn runs_killed_at_random_moments_resume_to_the_same_weights_and_rows() {
    let dir = tempfile::tempdir().unwrap();
    let trials: usize = std::env::var("RESLAB_KILL_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let seed: u64 = std::env::var("RESLAB_KILL_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
    });
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    // Every attempt is held before its last iteration: it cannot finish before its kill, however
    // fast the machine; the final attempt, not held, runs to the end.
    let holds = Holds::new(dir.path(), ITERS - 1);
    // Kills that left a checkpoint to resume from (the others start the run over).
    let mut kills_after_a_checkpoint = 0;
    assert!(trials > 0, "RESLAB_KILL_TRIALS must be at least 1");
    for trial in 0..trials {
        // Odd trials with the fused kernels, deterministic at a fixed thread count as well.
        let kernels = if trial % 2 == 1 { "fused" } else { "exact" };
        let (reference, took) = if trial % 2 == 1 { fused_reference() } else { reference() };
        let (reference, took) = (reference.as_path(), *took);
        let name = format!("trial-{trial}");
        let out = dir.path().join(&name);
        let mut points = Vec::new();
        // One to three kills, at random moments of each attempt (start-up, training, evaluation,
        // checkpoint writing alike) as a share of the uninterrupted run's time. The first trial's
        // last kill comes once its attempt is held, after a checkpoint: resuming is always tested.
        let kills = rng.gen_range(1..=3);
        for kill in 0..kills {
            let mut child = Children(vec![spawn_held_with(&out, &holds, kernels)]);
            let delay = took.mul_f64(rng.gen_range(1.0 / 18.0..0.9));
            if trial == 0 && kill == kills - 1 {
                holds.wait_held(&name, None);
            } else {
                std::thread::sleep(delay);
            }
            assert_running(&mut child[0], &format!("trial {trial}'s attempt {}", kill + 1));
            child[0].kill().unwrap(); // SIGKILL
            child[0].wait().unwrap();
            points.push(delay.as_millis());
            if out.join("checkpoint.safetensors").is_file() {
                kills_after_a_checkpoint += 1;
            }
        }
        run_to_end(&out, kernels);
        eprintln!("trial {trial} ({kernels}, seed {seed}): killed after {points:?} ms, resumed: identical");
        assert_same_run(reference, &out, &format!("trial {trial} (RESLAB_KILL_SEED={seed}), kills at {points:?} ms"));
    }
    assert!(
        kills_after_a_checkpoint > 0,
        "no kill of {trials} trials (seed {seed}) came after a checkpoint: resuming was not tested"
    );
    eprintln!(
        "{trials} trials, {kills_after_a_checkpoint} kills after a checkpoint, all identical to the uninterrupted run"
    );
}

#[test]
fn sigterm_writes_a_checkpoint_and_exits_cleanly_and_a_corrupt_checkpoint_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let reference = reference().0.as_path();
    let out = dir.path().join("terminated");
    // Held after its first metrics row (iteration 5; a checkpoint at 3), then asked to stop.
    let holds = Holds::new(dir.path(), 5);
    let mut child = Children(vec![spawn_held(&out, &holds)]);
    holds.wait_held("terminated", None);
    assert_running(&mut child[0], "the run");
    // SAFETY: signalling a child process we spawned and have not reaped.
    unsafe { libc::kill(child[0].id() as i32, libc::SIGTERM) };
    let output = child.0.remove(0).wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(out.join("checkpoint.safetensors").is_file());
    assert!(!out.join(".lock").exists());
    assert!(!out.join("summary.toml").exists(), "an interrupted run must not look complete");

    // A kill during a checkpoint write leaves at most a temporary file, never a torn checkpoint
    // under the real name; such a leftover is ignored.
    std::fs::write(out.join(".tmp-99999-checkpoint.safetensors"), b"half a checkpoint").unwrap();

    // The first row (iteration 5) came after the checkpoint at iteration 3, and the interrupt wrote
    // another: there is a previous checkpoint to fall back to.
    assert!(out.join("checkpoint.prev.safetensors").is_file());

    // Flip a byte in the newest checkpoint's data: resuming warns and uses the previous one.
    let path = out.join("checkpoint.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&path, bytes).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_reslab")).args(args(&out)).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("is corrupt") && err.contains("previous checkpoint"), "{err}");
    assert_same_run(reference, &out, "SIGTERM, then resume");
}

#[test]
fn a_different_configuration_a_truncated_checkpoint_and_a_second_process_are_refused() {
    let dir = tempfile::tempdir().unwrap();

    // A second process on a run directory while a first one, far from done, holds it.
    let busy = dir.path().join("busy");
    let mut long_run = args(&busy);
    let iters = long_run.iter().position(|a| a == "--iters").unwrap();
    long_run[iters + 1] = "100000".into();
    let mut first = Children(vec![Command::new(env!("CARGO_BIN_EXE_reslab"))
        .args(&long_run)
        .stderr(Stdio::null())
        .spawn()
        .unwrap()]);
    wait_for("the first process to lock the run", REACH_HOLD, || busy.join(".lock").exists());
    let second = Command::new(env!("CARGO_BIN_EXE_reslab")).args(&long_run).output().unwrap();
    assert_running(&mut first[0], "the first process (100000 iterations)");
    first[0].kill().unwrap();
    first[0].wait().unwrap();
    assert_clean_error(&second, &["is in use by process", ".lock"]);

    // Killed once it has written its first checkpoint (iteration 3), where it is held.
    let out = dir.path().join("run");
    let holds = Holds::new(dir.path(), 3);
    let mut child = Children(vec![spawn_held(&out, &holds)]);
    holds.wait_held("run", None);
    assert_running(&mut child[0], "the run");
    child[0].kill().unwrap();
    child[0].wait().unwrap();
    assert!(out.join("checkpoint.safetensors").exists(), "the held run wrote its checkpoint at iteration 3");
    // The killed process's lock is stale; its take-over is tested on its own below.
    let _ = std::fs::remove_file(out.join(".lock"));

    // Other options than the checkpoint's: refused, naming the difference.
    let mut other: Vec<String> = args(&out);
    let seed = other.iter().position(|a| a == "--seed").unwrap();
    other[seed + 1] = "4".into();
    let output = Command::new(env!("CARGO_BIN_EXE_reslab")).args(&other).output().unwrap();
    assert_clean_error(&output, &["another configuration", "seed is 3 there, expected 4"]);

    // Every checkpoint truncated: refused, saying how to start over.
    let mut truncated = 0;
    for name in ["checkpoint.safetensors", "checkpoint.prev.safetensors"] {
        let path = out.join(name);
        if let Ok(bytes) = std::fs::read(&path) {
            std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
            truncated += 1;
        }
    }
    assert!(truncated >= 1, "the run wrote a checkpoint before it was killed");
    let output = Command::new(env!("CARGO_BIN_EXE_reslab")).args(args(&out)).output().unwrap();
    assert_clean_error(&output, &["truncated or corrupt", "no good checkpoint is left"]);
}

#[test]
fn a_stale_lock_of_a_dead_process_is_taken_over_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join(".lock"), "4194999").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_reslab")).args(args(&out)).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains("taking over the stale lock") && err.contains("process 4194999 is no longer running"),
        "{err}"
    );
    assert!(!out.join(".lock").exists(), "the run released its lock");

    // A process killed after its run was complete leaves its lock; the next look at the complete
    // run (which trains nothing) clears it.
    std::fs::write(out.join(".lock"), "4194999").unwrap();
    let again = Command::new(env!("CARGO_BIN_EXE_reslab")).args(args(&out)).output().unwrap();
    assert!(again.status.success() && stderr(&again).contains("already holds this run"), "{}", stderr(&again));
    assert!(!out.join(".lock").exists(), "the dead owner's lock of a complete run is left behind");
}

/// `reslab reproduce fig1 --jobs JOBS` sent SIGINT once plain-20 has written two metrics rows:
/// its output folder (inside `dir`), and its stderr, after checking it exited with 1.
fn interrupt_fig1(dir: &Path, jobs: &str) -> (std::path::PathBuf, String) {
    let out = dir.join("fig1");
    // Each run held after its second metrics row (iteration 10): with one job plain-20 is held,
    // with two both are, and the interrupt finds them mid-run.
    let holds = Holds::new(dir, 10);
    let (key, value) = holds.env();
    let child = Command::new(env!("CARGO_BIN_EXE_reslab"))
        .args([
            "reproduce",
            "fig1",
            "--seeds",
            "1",
            "--jobs",
            jobs,
            "--iters",
            "200",
            "--eval-every",
            "5",
            // (Forced: no probe of `auto` before the runs.)
            "--precision",
            "fp32",
            "--kernels",
            "exact",
            "--out",
            out.to_str().unwrap(),
        ])
        .env(key, value)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Children(vec![child]);
    let running: &[&str] = if jobs == "1" { &["plain-20-seed0"] } else { &["plain-20-seed0", "plain-56-seed0"] };
    for run in running {
        holds.wait_held(run, None);
    }
    assert_running(&mut child[0], "reproduce fig1");
    // SAFETY: signalling a child process we spawned and have not reaped.
    unsafe { libc::kill(child[0].id() as i32, libc::SIGINT) };
    let output = child.0.remove(0).wait_with_output().unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    (out, err)
}

#[test]
fn ctrl_c_stops_a_whole_experiment_not_just_its_current_run() {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = interrupt_fig1(dir.path(), "1");
    assert!(err.contains("interrupted at iteration") && err.contains("run again to continue"), "{err}");
    assert!(!out.join("plain-56-seed0").exists(), "the next run must not start after Ctrl-C");
    assert!(out.join("plain-20-seed0/checkpoint.safetensors").is_file());
}

#[test]
fn ctrl_c_with_two_jobs_stops_every_child_with_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = interrupt_fig1(dir.path(), "2");
    assert!(err.contains("interrupted: every running job wrote a checkpoint"), "{err}");
    for run in ["plain-20-seed0", "plain-56-seed0"] {
        assert!(out.join(run).join("checkpoint.safetensors").is_file(), "{run}: {err}");
        assert!(!out.join(run).join("summary.toml").exists(), "{run} must not look complete");
    }
}
