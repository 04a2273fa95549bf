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

pub fn run(
    experiment: &Experiment,
    preset: Preset,
    overrides: &Overrides,
    parallelism: Parallelism,
    out: &Path,
) -> Result<StudyReport> {
    let overrides = Overrides { threads: parallelism.threads_per_job(overrides.threads), ..overrides.clone() };
    let runs = plan(experiment, preset, &overrides)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating output directory {}", out.display()))?;
    let header =
        format!("# reslab {}: this experiment was run with --preset {}.\n", env!("CARGO_PKG_VERSION"), preset.name());
    let text = toml::to_string(experiment).expect("an experiment always serialises");
    write_file(&out.join("experiment.toml"), (header + &text).as_bytes())?;
    if let Some(note) = &experiment.preset(preset)?.note {
        eprintln!("note: {note}");
    }

    let pending: Vec<&PlannedRun> =
        runs.iter().filter(|run| !RunState::read(&out.join(run.dir_name())).is_complete()).collect();
    if pending.len() < runs.len() {
        eprintln!(
            "{} of {} runs are complete already; running the other {}",
            runs.len() - pending.len(),
            runs.len(),
            pending.len()
        );
    }
    interrupt::install()?;
    let failures = if parallelism.jobs <= 1 {
        run_here(&pending, out)?
    } else {
        run_as_children(&pending, out, parallelism.jobs)?
    };
    let report = aggregate(experiment, &runs, out)?;
    if !failures.is_empty() {
        bail!(
            "{} of {} runs failed ({}); the report in {} shows the others",
            failures.len(),
            runs.len(),
            failures.join(", "),
            out.display()
        );
    }
    Ok(report)
}

/// One run after another in this process; the names of the runs that failed.
fn run_here(runs: &[&PlannedRun], out: &Path) -> Result<Vec<String>> {
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
fn run_as_children(runs: &[&PlannedRun], out: &Path, jobs: usize) -> Result<Vec<String>> {
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
    let mut running: Vec<(String, Child, Vec<std::thread::JoinHandle<()>>)> = Vec::new();
    let mut failures = Vec::new();
    let mut interrupted = false;
    loop {
        while !interrupted && running.len() < jobs {
            let Some(run) = queue.next() else { break };
            let dir = run.dir_name();
            let config = configs.join(format!("{dir}.toml"));
            write_file(&config, run.config.to_toml().as_bytes())?;
            let mut child = Command::new(&exe)
                .args(["train", "--config"])
                .arg(&config)
                .arg("--out")
                .arg(out.join(&dir))
                .env(LINES_ENV, "1")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .spawn()
                .with_context(|| format!("starting {}", exe.display()))?;
            let forward = |stream: Box<dyn std::io::Read + Send>, progress: ProgressBar, dir: String| {
                std::thread::spawn(move || {
                    for line in BufReader::new(stream).lines().map_while(Result::ok) {
                        let line = if line.starts_with(&dir) { line } else { format!("{dir}: {line}") };
                        progress.println(line);
                    }
                })
            };
            let readers = vec![
                forward(Box::new(child.stdout.take().expect("piped")), progress.clone(), dir.clone()),
                forward(Box::new(child.stderr.take().expect("piped")), progress.clone(), dir.clone()),
            ];
            running.push((dir, child, readers));
        }
        progress.set_message(running.iter().map(|(d, _, _)| d.as_str()).collect::<Vec<_>>().join(", "));
        if running.is_empty() {
            break;
        }
        if interrupt::requested() && !interrupted {
            interrupted = true;
            for (_, child, _) in &running {
                // SAFETY: signalling a child process we spawned and have not reaped.
                unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            }
        }
        let mut still_running = Vec::new();
        for (dir, mut child, readers) in running {
            match child.try_wait()? {
                None => still_running.push((dir, child, readers)),
                Some(status) => {
                    for reader in readers {
                        let _ = reader.join();
                    }
                    progress.inc(1);
                    if !status.success() && !interrupted {
                        failures.push(dir);
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

/// The output folder of `experiment` at `preset` when none is given.
pub fn default_out(experiment: &Experiment, preset: Preset) -> PathBuf {
    PathBuf::from(format!("results/{}-{}", experiment.name, preset.name()))
}
