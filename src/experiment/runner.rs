//! Runs an experiment's runs that are not complete on this machine, one at a time in this process
//! or `jobs` at a time as child processes (`reslab train --config ... --out DIR`, the command a
//! cluster task runs too), then aggregates the run directories into the report.
//!
//! The run directory is the only contract: a run is complete when its `summary.toml` says so,
//! partial runs resume from their checkpoints, and aggregation reads nothing else.

use super::aggregate::{aggregate, StudyReport};
use super::plan::{plan, Overrides, PlannedRun};
use super::spec::Experiment;
use crate::run::config::Preset;
use crate::run::RunState;
use crate::train::train;
use crate::train::trainer::PROGRESS_LINES_ENV as LINES_ENV;
use crate::util::fs::write_file;
use crate::util::interrupt;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How to run the runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parallelism {
    /// Runs at a time; above 1 each is a child process.
    pub jobs: usize,
}

impl Parallelism {
    /// libtorch threads per run when `jobs` share this machine's cores, unless the user chose.
    pub fn threads_per_job(&self, requested: usize) -> usize {
        if requested > 0 || self.jobs <= 1 {
            return requested;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores / self.jobs).max(1)
    }
}

/// Runs what is not complete and aggregates; an error if any run failed (after the report of
/// the others is written).
pub fn run(
    experiment: &Experiment,
    preset: Preset,
    overrides: &Overrides,
    parallelism: Parallelism,
    out: &Path,
) -> Result<StudyReport> {
    let (report, failures) = run_study(experiment, preset, overrides, parallelism, out)?;
    if !failures.is_empty() {
        bail!(
            "{} of {} runs failed ({}); the report in {} shows the others",
            failures.len(),
            report.groups.iter().map(|g| g.runs.len()).sum::<usize>() + report.incomplete.len(),
            failures.join(", "),
            out.display()
        );
    }
    Ok(report)
}

/// Runs what is not complete and aggregates: the report, and the runs that failed. An error only
/// when the study cannot go on (bad plan, Ctrl-C, unwritable folder).
pub fn run_study(
    experiment: &Experiment,
    preset: Preset,
    overrides: &Overrides,
    parallelism: Parallelism,
    out: &Path,
) -> Result<(StudyReport, Vec<String>)> {
    let runs = plan(experiment, preset, overrides, out)?;
    record_experiment(experiment, preset, out)?;
    if let Some(note) = &experiment.preset(preset)?.note {
        eprintln!("note: {note}");
    }

    let mut pending: Vec<PlannedRun> =
        runs.iter().filter(|run| !RunState::read(&out.join(run.dir_name())).is_complete()).cloned().collect();
    // Fewer runs left than jobs: fewer jobs, each with more threads.
    let jobs = Parallelism { jobs: parallelism.jobs.min(pending.len()).max(1) };
    for run in &mut pending {
        run.config.threads = jobs.threads_per_job(overrides.threads);
    }
    if pending.len() < runs.len() {
        eprintln!(
            "{} of {} runs are complete already; running the other {}",
            runs.len() - pending.len(),
            runs.len(),
            pending.len()
        );
    }
    interrupt::install()?;
    let failures = if jobs.jobs <= 1 { run_here(&pending, out)? } else { run_as_children(&pending, out, jobs.jobs)? };
    let report = aggregate(experiment, preset, &runs, out)?;
    Ok((report, failures))
}

/// Creates the study's folder and writes the experiment as run into it (`experiment.toml`).
pub fn record_experiment(experiment: &Experiment, preset: Preset, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating output directory {}", out.display()))?;
    let header =
        format!("# reslab {}: this experiment was run with --preset {}.\n", env!("CARGO_PKG_VERSION"), preset.name());
    let text = toml::to_string(experiment).expect("an experiment always serialises");
    write_file(&out.join("experiment.toml"), (header + &text).as_bytes())
}

/// Aggregates the study's run directories in `out` as they are, training nothing.
pub fn aggregate_only(
    experiment: &Experiment,
    preset: Preset,
    overrides: &Overrides,
    out: &Path,
) -> Result<StudyReport> {
    let runs = plan(experiment, preset, overrides, out)?;
    aggregate(experiment, preset, &runs, out)
}

/// One run after another in this process; the names of the runs that failed.
fn run_here(runs: &[PlannedRun], out: &Path) -> Result<Vec<String>> {
    let mut failures = Vec::new();
    for run in runs {
        let dir = run.dir_name();
        if let Err(e) = train(&run.config, &out.join(&dir), &dir) {
            // Ctrl-C stops the experiment, not just this run; re-running it resumes.
            if interrupt::requested() {
                return Err(e.context(format!("{dir} (run again to continue the experiment)")));
            }
            eprintln!("error: {dir}: {e:#}");
            failures.push(dir);
        }
    }
    Ok(failures)
}

/// `jobs` runs at a time, each a `reslab train` child process in its own process group (so a
/// Ctrl-C reaches only this process, which passes one interrupt on to every child and waits for
/// their checkpoints). Their output is forwarded above an overall progress bar.
fn run_as_children(runs: &[PlannedRun], out: &Path, jobs: usize) -> Result<Vec<String>> {
    let exe = std::env::current_exe().context("finding the reslab executable")?;
    let configs = out.join(".configs");
    std::fs::create_dir_all(&configs)?;
    let progress = ProgressBar::new(runs.len() as u64);
    progress.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} runs  {msg}  elapsed {elapsed}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    progress.set_prefix(format!("{jobs} jobs"));
    let mut queue = runs.iter();
    // One run per GPU where there are GPUs: each child sees only its own as cuda:0.
    let gpus = tch::Cuda::device_count().max(0) as usize;
    let mut running: Vec<Job> = Vec::new();
    let mut failures = Vec::new();
    let mut interrupted = false;
    loop {
        while !interrupted && running.len() < jobs {
            let Some(run) = queue.next() else { break };
            let dir = run.dir_name();
            let config = configs.join(format!("{dir}.toml"));
            write_file(&config, run.config.to_toml().as_bytes())?;
            let gpu = (0..gpus).find(|g| !running.iter().any(|job| job.gpu == Some(*g)));
            let mut command = Command::new(&exe);
            command.args(["train", "--config"]).arg(&config).arg("--out").arg(out.join(&dir)).env(LINES_ENV, "1");
            if let Some(gpu) = gpu {
                command.env("CUDA_VISIBLE_DEVICES", gpu.to_string());
            }
            let mut child = command
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .spawn()
                .with_context(|| format!("starting {}", exe.display()))?;
            let forward = |stream: Box<dyn std::io::Read + Send>, progress: ProgressBar, dir: String| {
                std::thread::spawn(move || {
                    for line in BufReader::new(stream).lines().map_while(Result::ok) {
                        let line = if line.starts_with(&dir) { line } else { format!("{dir}: {line}") };
                        // A hidden bar (output not a terminal: a log file, CI) prints nothing itself.
                        if progress.is_hidden() {
                            println!("{line}");
                        } else {
                            progress.println(line);
                        }
                    }
                })
            };
            let readers = vec![
                forward(Box::new(child.stdout.take().expect("piped")), progress.clone(), dir.clone()),
                forward(Box::new(child.stderr.take().expect("piped")), progress.clone(), dir.clone()),
            ];
            running.push(Job { dir, child, readers, gpu });
        }
        progress.set_message(running.iter().map(|job| job.dir.as_str()).collect::<Vec<_>>().join(", "));
        if running.is_empty() {
            break;
        }
        if interrupt::requested() && !interrupted {
            interrupted = true;
            for job in &running {
                // SAFETY: signalling a child process we spawned and have not reaped.
                unsafe { libc::kill(job.child.id() as i32, libc::SIGINT) };
            }
        }
        let mut still_running = Vec::new();
        for mut job in running {
            match job.child.try_wait()? {
                None => still_running.push(job),
                Some(status) => {
                    for reader in job.readers {
                        let _ = reader.join();
                    }
                    progress.inc(1);
                    if !status.success() && !interrupted {
                        failures.push(job.dir);
                    }
                }
            }
        }
        running = still_running;
        std::thread::sleep(Duration::from_millis(100));
    }
    progress.finish_and_clear();
    let _ = std::fs::remove_dir_all(&configs);
    if interrupted {
        bail!(
            "interrupted: every running job wrote a checkpoint; run the same command again to continue the experiment"
        );
    }
    Ok(failures)
}

/// A run in a child process.
struct Job {
    dir: String,
    child: Child,
    /// The threads forwarding its stdout and stderr.
    readers: Vec<std::thread::JoinHandle<()>>,
    gpu: Option<usize>,
}

/// The output folder of the study `name` at `preset` when none is given.
pub fn default_out(name: &str, preset: Preset) -> PathBuf {
    PathBuf::from(format!("results/{name}-{}", preset.name()))
}

/// Runs at a time when the user does not say: one per GPU where there are GPUs; on a CPU one per
/// core, each with one thread, which beat one run on every core on this project's 2-core machine
/// for every network size measured (README, "Running studies in parallel").
pub fn default_jobs() -> usize {
    match tch::Cuda::device_count() {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        gpus => gpus as usize,
    }
}
