//! Faults a study survives with nothing lost: a local study (`--jobs 2`) killed again and again
//! (SIGKILL to the runner, to single jobs, to both) ends as an uninterrupted one, no iteration
//! trained twice; a run whose disk fills during a checkpoint says so, keeps its previous
//! checkpoint, and ends bit-identical once there is space.

#[macro_use]
mod common;
use common::harness;
use common::*;
use rand::{Rng, SeedableRng};
use reslab::run::{attempts, checkpoint};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Iterations per run for every 10 kills asked for (each kill then finds about as much progress).
const ITERS_PER_10_KILLS: usize = 60;
const RUNS: [&str; 4] = ["plain-8-seed0", "plain-8-seed1", "resnet-8-seed0", "resnet-8-seed1"];

/// `reproduce` of `study` into `out`, its output appended to `log`, its runs held at `holds`.
fn study_command(study: &Path, out: &Path, log: &Path, holds: Option<&Holds>) -> Command {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_reslab"));
    if let Some(holds) = holds {
        let (key, value) = holds.env();
        command.env(key, value);
    }
    // Fused kernels: deterministic at a fixed thread count, so they survive kills as exact ones do
    // (the disk test below and tests/resume.rs run exact ones too).
    command
        .arg("reproduce")
        .arg(study)
        .args(["--jobs", "2", "--threads", "1", "--precision", "fp32", "--kernels", "fused", "--out"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    command
}

/// A process's parent and state (`R`, `S`, `Z`, ...) from /proc, `None` once it is gone.
fn stat(pid: u32) -> Option<(u32, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`: the name may hold spaces and parentheses.
    let after = &text[text.rfind(')')? + 2..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((fields.next()?.parse().ok()?, state))
}

fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(_, state)| state != 'Z' && state != 'X')
}

/// The training jobs a runner has started: its children, each with the run directory it writes.
fn jobs_of(runner: u32) -> Vec<(u32, String)> {
    let mut jobs = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if stat(pid).map(|(parent, _)| parent) != Some(runner) || !alive(pid) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if let Some(out) = args.iter().position(|a| a == "--out").and_then(|i| args.get(i + 1)) {
            let run = Path::new(out).file_name().unwrap().to_string_lossy().into_owned();
            jobs.push((pid, run));
        }
    }
    jobs
}

fn wait_gone(pids: &[u32], what: &str) {
    wait_for(&format!("{what} ({pids:?}) to end"), Duration::from_secs(60), || !pids.iter().any(|&p| alive(p)));
}

fn sigkill(pid: u32) {
    // SAFETY: signalling a process of this test (a runner it spawned, or that runner's job).
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kill {
    /// SIGKILL to the runner: its jobs get SIGTERM from the kernel and checkpoint.
    Runner,
    /// SIGKILL to one training job: the runner goes on with the others.
    OneJob,
    /// SIGKILL to the runner and every job at once: a machine's power cut, as far as a run sees.
    Both,
}

/// What each run must resume from: for a run whose `n` attempts had all ended, the iteration of
/// its newest checkpoint then (0: none), which attempt `n + 1` has to start at.
#[derive(Default)]
struct Expected(BTreeMap<String, BTreeMap<usize, usize>>);

impl Expected {
    fn note(&mut self, out: &Path, run: &str) {
        let dir = out.join(run);
        let ended = attempts::read(&dir).unwrap().len();
        let from = checkpoint::iteration(&dir).unwrap_or(0);
        let previous = self.0.entry(run.to_string()).or_default().insert(ended, from);
        assert!(
            previous.is_none_or(|p| p == from),
            "{run}: a checkpoint at {from} (was {previous:?}) with no attempt recorded for it"
        );
    }
}

/// Nothing incomplete looks complete: a run whose summary says complete has all its rows and
/// its final weights.
fn assert_nothing_partial_looks_complete(out: &Path, iters: usize, when: &str) {
    for run in RUNS {
        let dir = out.join(run);
        let summary = std::fs::read_to_string(dir.join("summary.toml")).unwrap_or_default();
        if summary.contains("status = \"complete\"") {
            assert_eq!(metrics_iterations(&dir).last(), Some(&iters), "{when}: {run} complete without its rows");
            assert!(dir.join("model.safetensors").is_file(), "{when}: {run} complete without its weights");
        }
    }
}

fn metrics_iterations(dir: &Path) -> Vec<usize> {
    std::fs::read_to_string(dir.join("metrics.csv"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect()
}

/// summary.csv without its wall-clock columns (img_per_s, wall_s).
fn summary_without_clock(out: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let clock: Vec<usize> = ["img_per_s", "wall_s"]
        .iter()
        .map(|name| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no {name} column")))
        .collect();
    text.lines()
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            let kept: Vec<&str> =
                cells.iter().enumerate().filter(|(i, _)| !clock.contains(i)).map(|(_, c)| *c).collect();
            kept.join(",")
        })
        .collect()
}

fn a_local_study_killed_again_and_again_ends_as_the_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("chaos.toml");
    // At least this many kills (scripts/fault-campaign.sh asks for more), over a study as long.
    let wanted: usize = std::env::var("RESLAB_CHAOS_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(10).max(1);
    let iters = ITERS_PER_10_KILLS * wanted.div_ceil(10);
    std::fs::write(&study, small_study("chaos", &["plain-8", "resnet-8"], 2, iters)).unwrap();
    let (reference, out, log) = (dir.path().join("reference"), dir.path().join("chaos"), dir.path().join("chaos.log"));
    let started = Instant::now();
    let done = study_command(&study, &reference, &dir.path().join("reference.log"), None).status().unwrap();
    assert!(
        done.success(),
        "the uninterrupted study failed: {}",
        std::fs::read_to_string(dir.path().join("reference.log")).unwrap()
    );
    let took = started.elapsed();

    let seed: u64 = std::env::var("RESLAB_CHAOS_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
    });
    eprintln!("chaos seed {seed} (RESLAB_CHAOS_SEED={seed} repeats the choices; the moments depend on the machine)");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    // Until the last start, every run is held before its last iteration: the study cannot
    // complete before the kills it is owed, however fast the machine.
    let holds = Holds::new(dir.path(), iters - 1);
    let mut kills: Vec<(usize, Kill, u128)> = Vec::new();
    let mut expected = Expected::default();
    let mut starts = 0;
    let chaos_started = Instant::now();
    loop {
        starts += 1;
        assert!(
            starts <= 4 * wanted + 20,
            "seed {seed}: the study did not complete in {starts} starts; see {}",
            log.display()
        );
        let last = kills.len() >= wanted;
        let mut runner = Children(vec![study_command(&study, &out, &log, (!last).then_some(&holds)).spawn().unwrap()]);
        let runner_pid = runner[0].id();
        if last {
            let status = runner[0].wait().unwrap();
            assert_nothing_partial_looks_complete(&out, iters, "after a run to the end");
            if status.success() {
                break;
            }
            // A run failed without a kill of this test: the log says why, and the next start
            // must still resume it.
            continue;
        }
        // One to three kills in this start; the last may end it.
        let attempt_started = Instant::now();
        let in_this_start = rng.gen_range(1..=3);
        for kill in 0..in_this_start {
            // A share of a 10-kill study's uninterrupted time, whatever the study's length.
            let ten_kill_study = took.div_f64(wanted.div_ceil(10) as f64);
            let delay = ten_kill_study.mul_f64(rng.gen_range(0.02..0.15));
            // The first start's last kill, of the runner, comes once a run is held (after its
            // checkpoints): resuming from a checkpoint is always tested, whatever the machine's speed.
            let sure_to_resume = starts == 1 && kill == in_this_start - 1;
            if sure_to_resume {
                wait_for("a run of the study to be held", REACH_HOLD, || RUNS.iter().any(|r| holds.is_held(r, None)));
            } else {
                std::thread::sleep(delay);
            }
            if let Some(status) = runner[0].try_wait().unwrap() {
                // (A held study cannot complete; a failed one is started again, and the log says why.)
                assert!(!status.success(), "seed {seed}: the study completed while its runs were held");
                break;
            }
            let jobs = jobs_of(runner_pid);
            let kind = match rng.gen_range(0..3) {
                _ if sure_to_resume => Kill::Runner,
                1 if !jobs.is_empty() => Kill::OneJob,
                2 => Kill::Both,
                _ => Kill::Runner,
            };
            let at = attempt_started.elapsed().as_millis();
            match kind {
                Kill::OneJob => {
                    let (pid, run) = &jobs[rng.gen_range(0..jobs.len())];
                    sigkill(*pid);
                    wait_gone(&[*pid], "a killed job");
                    expected.note(&out, run);
                }
                Kill::Runner | Kill::Both => {
                    if kind == Kill::Both {
                        jobs.iter().for_each(|(pid, _)| sigkill(*pid));
                    }
                    sigkill(runner_pid);
                    runner[0].wait().unwrap();
                    let pids: Vec<u32> = jobs.iter().map(|(pid, _)| *pid).collect();
                    // The kernel's SIGTERM (PR_SET_PDEATHSIG) stops each job with a checkpoint.
                    wait_gone(&pids, "the jobs of a killed runner");
                    assert!(jobs_of(runner_pid).is_empty());
                    RUNS.iter().for_each(|run| expected.note(&out, run));
                }
            }
            kills.push((starts, kind, at));
            assert_nothing_partial_looks_complete(&out, iters, &format!("after kill {} ({kind:?})", kills.len()));
            if kind != Kill::OneJob {
                break;
            }
        }
        if let Some(status) = runner[0].try_wait().unwrap() {
            assert!(!status.success(), "seed {seed}: the study completed while its runs were held");
        } else {
            // The start's last kill was of a job: stop the runner too, so the next start begins
            // from a known state.
            let jobs = jobs_of(runner_pid);
            sigkill(runner_pid);
            runner[0].wait().unwrap();
            wait_gone(&jobs.iter().map(|(p, _)| *p).collect::<Vec<_>>(), "the jobs of a killed runner");
            RUNS.iter().for_each(|run| expected.note(&out, run));
            kills.push((starts, Kill::Runner, attempt_started.elapsed().as_millis()));
        }
    }
    let chaos_took = chaos_started.elapsed();

    let mut resumed = 0;
    for run in RUNS {
        let dir = out.join(run);
        let attempts = attempts::read(&dir).unwrap();
        assert!(!attempts.is_empty(), "{run}: no attempt recorded");
        assert_eq!(attempts[0].start_iteration, 0, "{run}: the first attempt starts at 0");
        for (k, attempt) in attempts.iter().enumerate().skip(1) {
            let from = expected.0.get(run).and_then(|e| e.get(&k)).copied();
            assert_eq!(
                Some(attempt.start_iteration),
                from,
                "seed {seed}: {run}'s attempt {} started at {}, but the checkpoint its last attempt left was {from:?}",
                k + 1,
                attempt.start_iteration
            );
            resumed += usize::from(attempt.start_iteration > 0);
        }
        let iterations = metrics_iterations(&dir);
        assert_eq!(iterations, (1..=iters / 10).map(|i| i * 10).collect::<Vec<_>>(), "{run}: each row once");
        let weights = |d: &Path| std::fs::read(d.join(run).join("model.safetensors")).unwrap();
        assert!(weights(&reference) == weights(&out), "seed {seed}: {run}'s final weights differ");
        assert!(!dir.join(".lock").exists(), "{run}: lock left behind");
    }
    assert_eq!(summary_without_clock(&out), summary_without_clock(&reference), "seed {seed}: summary.csv");
    for table in ["table.csv", "table.md", "claims.csv"] {
        let read = |d: &Path| std::fs::read_to_string(d.join(table)).unwrap();
        assert_eq!(read(&out), read(&reference), "seed {seed}: {table}");
    }
    assert!(kills.len() >= wanted, "seed {seed}: {} kills", kills.len());
    assert!(resumed > 0, "seed {seed}: no attempt resumed from a checkpoint: resuming was not tested");
    let count = |k: Kill| kills.iter().filter(|(_, kind, _)| *kind == k).count();
    eprintln!(
        "chaos seed {seed}: {} kills ({} of the runner, {} of a job, {} of both) over {starts} starts, \
         {resumed} resumptions from a checkpoint; {:.1} s (uninterrupted {:.1} s); identical to the uninterrupted study",
        kills.len(),
        count(Kill::Runner),
        count(Kill::OneJob),
        count(Kill::Both),
        chaos_took.as_secs_f64(),
        took.as_secs_f64()
    );
    eprintln!("kills (start, kind, ms into the start): {kills:?}");
}

const RUN: [&str; 22] = [
    "train",
    "--model",
    "plain-8",
    "--iters",
    "24",
    "--eval-every",
    "4",
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
    "embedded",
    "--out",
];

fn train(out: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_reslab")).args(RUN).arg(out).output().unwrap()
}

/// A small tmpfs mounted on a temporary folder, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// A tmpfs of `size` on `at` (the test declares it needs root).
    fn mount(at: &Path, size: &str) -> Tmpfs {
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .unwrap();
        assert!(mounted.status.success(), "mounting a tmpfs: {}", stderr(&mounted));
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn a_disk_that_fills_during_a_checkpoint_keeps_the_last_one_and_the_run_ends_identical() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference");
    let done = train(&reference);
    assert!(done.status.success(), "{}", stderr(&done));
    let checkpoint_size = std::fs::metadata(reference.join("checkpoint.safetensors")).unwrap().len();

    let disk = dir.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let _tmpfs = Tmpfs::mount(&disk, "8m");
    // Room for the initial weights, the first two checkpoints (the newest and the previous) and the
    // small files, not for a third written beside them: the disk fills during the third checkpoint's write.
    let init_size = std::fs::metadata(reference.join("init.safetensors")).unwrap().len();
    let (free, _) = reslab::util::fs::free_and_total_bytes(&disk).unwrap();
    let room = init_size + 2 * checkpoint_size + checkpoint_size / 2;
    std::fs::write(disk.join("filler"), vec![0u8; (free - room) as usize]).unwrap();
    let out = disk.join("run");
    let started = Instant::now();
    let full = train(&out);
    let failed_after = started.elapsed();
    let err = stderr(&full);
    assert!(!full.status.success(), "the run should fail on the full disk: {err}");
    let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
    assert!(last.starts_with("error: ") && !err.contains("panicked"), "{err}");
    for needed in [
        format!("writing {}", out.join("checkpoint.safetensors").display()),
        format!("the file system of {} has ", out.display()),
        "No space left on device".to_string(),
    ] {
        assert!(last.contains(&needed), "the error should say {needed:?}: {last}");
    }
    assert_eq!(checkpoint::iteration(&out), Some(6), "the previous checkpoint (iteration 6) is intact and readable");
    let leftovers: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "half-written files left: {leftovers:?}");
    assert!(!out.join("summary.toml").exists() && !out.join("model.safetensors").exists(), "nothing looks complete");

    std::fs::remove_file(disk.join("filler")).unwrap();
    let resumed = train(&out);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(stderr(&resumed).contains("at iteration 6"), "resumed from the kept checkpoint: {}", stderr(&resumed));
    let weights = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert!(weights(&reference) == weights(&out), "the resumed run's weights differ from the uninterrupted run's");
    let rows = |d: &Path| -> Vec<String> {
        let text = std::fs::read_to_string(d.join("metrics.csv")).unwrap();
        text.lines().map(|l| l.split(',').take(6).collect::<Vec<_>>().join(",")).collect()
    };
    assert_eq!(rows(&reference), rows(&out), "metrics rows (wall-clock columns aside)");
    eprintln!("full disk: failed after {:.1} s with: {last}", failed_after.as_secs_f64());
}

fn main() -> std::process::ExitCode {
    harness::run(vec![
        trial!(a_local_study_killed_again_and_again_ends_as_the_uninterrupted_one),
        trial!(
            a_disk_that_fills_during_a_checkpoint_keeps_the_last_one_and_the_run_ends_identical,
            harness::root("mounting a small tmpfs")
        ),
    ])
}
