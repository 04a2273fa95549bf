//! Runs an experiment's runs that are not complete on this machine, one at a time in this process
//! or `jobs` at a time as child processes (`reslab train --config ... --out DIR`, the command a
//! cluster task runs too), then aggregates the run directories into the report.
//!
//! The run directory is the only contract: a run is complete when its `summary.toml` says so,
//! partial runs resume from their checkpoints, and aggregation reads nothing else.

use super::aggregate::{aggregate, StudyReport};
use super::cost::longest_first;
use super::overrides::Overrides;
use super::plan::{left_alone, pending, plan, PlannedRun};
use super::preset::Preset;
use super::reuse;
use super::spec::Experiment;
use super::study_dir::StudyDir;
use super::tracking;
use crate::train::train;
use crate::train::trainer::PROGRESS_LINES_ENV as LINES_ENV;
use crate::util::fs::write_file;
use crate::util::interrupt;
use crate::util::supervisor::{Output, Stream, Supervisor};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
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
        super::layout::threads_per_job(self.jobs, requested)
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
    ended(report, failures, out)
}

/// The report of a study whose runs ended, or an error naming the runs that failed (its report
/// in `out` shows the others).
pub fn ended(report: StudyReport, failures: Vec<String>, out: &Path) -> Result<StudyReport> {
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
    reuse::link_reused_runs(experiment, preset, overrides, out)?;
    let pending_count = pending(plan(experiment, preset, overrides, out)?)?.len();
    // Fewer runs left than jobs: fewer jobs, each with more threads.
    let jobs = Parallelism { jobs: parallelism.jobs.min(pending_count).max(1) };
    let overrides = Overrides { threads: jobs.threads_per_job(overrides.threads), ..overrides.clone() };
    let runs = plan(experiment, preset, &overrides, out)?;
    StudyDir::new(out).record_study(experiment, preset, &overrides)?;
    if let Some(note) = &experiment.preset(preset)?.note {
        crate::eprint_line!("note: {note}");
    }
    for line in left_alone(experiment, preset, &overrides)? {
        crate::eprint_line!("note: {line}");
    }
    let pending = pending(runs.clone())?;
    if pending.len() < runs.len() {
        crate::eprint_line!(
            "{} of {} runs are complete already; running the other {}",
            runs.len() - pending.len(),
            runs.len(),
            pending.len()
        );
    }
    interrupt::install()?;
    // Mirrored from their directories by a thread of its own; dropped on an error, it still
    // sends what it can.
    let live = tracking::follow(experiment, preset, &runs, out)?;
    let failures =
        if jobs.jobs <= 1 { run_here(&pending)? } else { run_as_children(&longest_first(pending)?, out, jobs.jobs)? };
    let report = aggregate(experiment, preset, &runs, out)?;
    if let Some(live) = live {
        tracking::publish_after(live, experiment, preset, &runs, out, &report);
    }
    Ok((report, failures))
}

/// Aggregates the study's run directories in `out` as they are, training nothing: the report,
/// and whether a tracking server (if the study has one) took what it lacked of them and the report.
pub fn aggregate_only(
    experiment: &Experiment,
    preset: Preset,
    overrides: &Overrides,
    out: &Path,
) -> Result<(StudyReport, Result<()>)> {
    let runs = plan(experiment, preset, overrides, out)?;
    let study = StudyDir::new(out);
    if let (Err(no_study), false) = (study.recorded_study(), runs.iter().any(|r| r.dir().path.exists())) {
        return Err(no_study);
    }
    let report = aggregate(experiment, preset, &runs, out)?;
    let sent = tracking::send(experiment, preset, &runs, out, &report);
    Ok((report, sent))
}

/// One run after another in this process; the names of the runs that failed.
fn run_here(runs: &[PlannedRun]) -> Result<Vec<String>> {
    let mut failures = Vec::new();
    for run in runs {
        let dir = run.dir_name();
        let trained = run.run.decided_here().and_then(|started| {
            if let Some(note) = started.precision_note().filter(|_| run.run.pending().precision) {
                println!("{dir}: precision: {note}");
            }
            if let Some(note) = started.kernels_note().filter(|_| run.run.pending().kernels) {
                println!("{dir}: kernels: {note}");
            }
            train(&started, &dir)
        });
        if let Err(e) = trained {
            // Ctrl-C stops the experiment, not just this run; re-running it resumes.
            if interrupt::requested() {
                return Err(e.context(format!("{dir} (run again to continue the experiment)")));
            }
            crate::eprint_line!("error: {dir}: {e:#}");
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
    let configs = StudyDir::new(out).configs();
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
    let mut gpu_of: Vec<(String, usize)> = Vec::new();
    let mut jobs_running = Supervisor::default();
    let mut failures = Vec::new();
    loop {
        while !jobs_running.interrupted() && jobs_running.running_count() < jobs {
            let Some(run) = queue.next() else { break };
            let dir = run.dir_name();
            let config = configs.join(format!("{dir}.toml"));
            write_file(&config, run.run.handed_on_toml().as_bytes())?;
            let mut command = Command::new(&exe);
            command.args(["train", "--config"]).arg(&config).arg("--out").arg(&run.dir().path).env(LINES_ENV, "1");
            if let Some(gpu) = (0..gpus).find(|g| !gpu_of.iter().any(|(_, used)| used == g)) {
                command.env("CUDA_VISIBLE_DEVICES", gpu.to_string());
                gpu_of.push((dir.clone(), gpu));
            }
            let (progress, prefix) = (progress.clone(), dir.clone());
            let forward = move |line: &str, _: Stream| {
                let line = if line.starts_with(&prefix) { line.to_string() } else { format!("{prefix}: {line}") };
                // A hidden bar (output not a terminal: a log file, CI) prints nothing itself.
                if progress.is_hidden() {
                    println!("{line}");
                } else {
                    progress.println(line);
                }
            };
            jobs_running.spawn(&dir, command, Output::Lines(Arc::new(forward)))?;
        }
        progress.set_message(jobs_running.running().collect::<Vec<_>>().join(", "));
        if jobs_running.running_count() == 0 {
            break;
        }
        for ended in jobs_running.poll()? {
            gpu_of.retain(|(dir, _)| *dir != ended.name);
            progress.inc(1);
            if !ended.status.success() && !jobs_running.interrupted() {
                failures.push(ended.name);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    progress.finish_and_clear();
    let _ = std::fs::remove_dir_all(&configs);
    if jobs_running.interrupted() {
        bail!(
            "interrupted: every running job wrote a checkpoint; run the same command again to continue the experiment"
        );
    }
    Ok(failures)
}
