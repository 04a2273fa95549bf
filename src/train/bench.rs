//! `reslab bench`: images per second of one model on this machine, in one of three modes, and
//! optionally of the PyTorch reference (`../shared/bench/torch_reference.py`) right beside it.
//!
//! - `step`: the training step alone (forward, cross-entropy, backward, SGD) on one fixed random
//!   batch: what the framework costs, with no data (the reference's `step` mode).
//! - `train`: the real training loop of `reslab train` (batch selection, augmentation, step, the
//!   batch's metrics), timed by the loop's own per-step clock (evaluation and checkpoints, done
//!   every few hundred steps, not counted); the reference's `pipeline` mode is its counterpart.
//! - `eval`: evaluation forward passes (no gradients, evaluation mode, BN folded) on a fixed
//!   random batch, as `error_rate` runs them.
//!
//! Rounds alternate reslab and the reference, so both see the same machine state; the median of
//! the rounds is reported.

use super::evaluate::EVAL_BATCH;
use super::peak::Peak;
use super::probe::{eval_img_per_s, step_img_per_s, Bench, Mode};
use super::request::RunRequest;
use super::runtime;
use super::trainer::train;
use crate::data::{Cifar10, DataConfig, DataSource, EvalSet};
use crate::model::Precision;
use crate::model::{Kind as NetKind, Model, Shortcut};
use crate::run::config::TrainOptions;
use crate::run::metrics;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the PyTorch reference is and how to run it.
#[derive(Debug, Clone)]
pub struct Reference {
    /// The reference script, `torch_reference.py`.
    pub script: PathBuf,
    /// The Python that runs it (with PyTorch installed).
    pub python: PathBuf,
    /// The precision the reference runs at.
    pub precision: Precision,
}

impl Reference {
    /// The reference script next to the project (`../shared/bench/torch_reference.py`) and the
    /// project's Python (`.venv/bin/python`), unless given; an error where the reference has no
    /// counterpart of `bench`.
    pub fn locate(
        bench: &Bench,
        script: Option<PathBuf>,
        python: Option<PathBuf>,
        precision: Precision,
    ) -> Result<Reference> {
        reference_mode(bench)?;
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let script = script.unwrap_or_else(|| root.join("../shared/bench/torch_reference.py"));
        if !script.is_file() {
            bail!("the PyTorch reference {} does not exist; give its path with --reference-script", script.display());
        }
        let venv = root.join(".venv/bin/python");
        let python = python.unwrap_or_else(|| if venv.is_file() { venv } else { PathBuf::from("python3") });
        Ok(Reference { script, python, precision })
    }
}

/// Floating-point operations per image: a multiply-add is two; training does the forward pass
/// and a backward pass of about twice its work.
pub fn flop_per_image(macs: u64, mode: Mode) -> f64 {
    let passes = match mode {
        Mode::Step | Mode::Train => 3.0,
        Mode::Eval => 1.0,
    };
    2.0 * macs as f64 * passes
}

/// Images per second of `bench`, measured once.
pub fn measure(bench: &Bench) -> Result<f64> {
    match bench.mode {
        Mode::Step => step_img_per_s(bench),
        Mode::Eval => eval_img_per_s(bench),
        Mode::Train => train_img_per_s(bench),
    }
}

/// `reslab train` itself for `warmup + iters` iterations, with a metrics row every `warmup`
/// iterations: the images per second of the rows after the first (each row's throughput covers
/// its own steps; the evaluation that ends a row is not timed).
pub fn train_img_per_s(bench: &Bench) -> Result<f64> {
    let dir = tempfile::tempdir().context("creating a temporary run directory")?;
    let options = TrainOptions {
        iters: bench.warmup + bench.iters,
        eval_every: Some(bench.warmup.max(1)),
        batch_size: bench.batch as usize,
        threads: bench.threads,
        channels_last: bench.channels_last,
        precision: bench.precision.into(),
        kernels: bench.kernels.into(),
        checkpoint_every: bench.warmup + bench.iters,
        // One learning rate throughout: no step inside the timed rows.
        lr_steps: Some(Vec::new()),
        ..TrainOptions::default()
    };
    let mut data = DataConfig::new(bench.data.clone());
    data.augment = bench.augment;
    // The untimed evaluations that end the rows, on the smaller held-out tenth.
    data.eval_set = EvalSet::Holdout;
    let run = RunRequest::new(bench.spec.clone(), data, options).in_dir(dir.path()).resolve()?;
    train(&run, "bench")?;
    let rows = metrics::read(dir.path())?;
    if rows.len() < 2 {
        bail!("the benchmark run wrote {} metrics rows; expected at least 2", rows.len());
    }
    // Total images over total step time of the timed rows.
    let (mut images, mut seconds) = (0.0, 0.0);
    for pair in rows.windows(2) {
        let row_images = ((pair[1].iter - pair[0].iter) as i64 * bench.batch) as f64;
        images += row_images;
        seconds += row_images / pair[1].img_per_s;
    }
    Ok(images / seconds)
}

/// The reference's mode for `bench` (`step` or `pipeline`) and whether its net is residual; an
/// error where the reference has no counterpart.
fn reference_mode(bench: &Bench) -> Result<(&'static str, bool)> {
    let residual = match (bench.spec.family, bench.spec.kind, bench.spec.shortcut) {
        (crate::model::Family::Cifar, NetKind::Plain, _) => false,
        (crate::model::Family::Cifar, NetKind::Residual, Shortcut::A) => true,
        _ => bail!("the PyTorch reference has only the CIFAR nets with option-A shortcuts; {} is not one", bench.spec),
    };
    let mode = match bench.mode {
        Mode::Step => "step",
        Mode::Train => "pipeline",
        Mode::Eval => bail!("the PyTorch reference has no evaluation mode; compare --mode eval with --mode train"),
    };
    if bench.mode == Mode::Train && !bench.augment {
        bail!("the PyTorch reference's pipeline always augments; --no-augment cannot be compared with it");
    }
    Ok((mode, residual))
}

/// The reference's images per second for `bench` (its `step` or `pipeline` mode).
pub fn reference_img_per_s(bench: &Bench, reference: &Reference, data_dir: Option<&Path>) -> Result<f64> {
    let (mode, residual) = reference_mode(bench)?;
    let threads = runtime::thread_count(bench.threads);
    let mut command = Command::new(&reference.python);
    command.arg(&reference.script).arg(mode);
    command.args(["--depth", &bench.spec.depth.to_string(), "--iters", &bench.iters.to_string()]);
    command.args(["--warmup", &bench.warmup.to_string(), "--batch-size", &bench.batch.to_string()]);
    command.args(["--threads", &threads.to_string(), "--precision", &reference.precision.to_string()]);
    if !residual {
        command.arg("--plain");
    }
    if bench.channels_last {
        command.arg("--channels-last");
    }
    if let Some(dir) = data_dir {
        command.args(["--data", &dir.display().to_string(), "--workers", "2"]);
    }
    let output = command
        .output()
        .with_context(|| format!("running the PyTorch reference with {}", reference.python.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if let Some(value) = stdout.lines().find_map(|l| l.strip_prefix("img_per_s=")) {
        return value.trim().parse().with_context(|| format!("the reference printed img_per_s={value}"));
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output");
    bail!("the PyTorch reference {} printed no img_per_s line: {last}", reference.script.display())
}

/// CIFAR-10's training batches of `source` written as the binary files the reference reads
/// (`data_batch_1..5.bin`), into `dir`.
pub fn write_reference_data(source: &DataSource, dir: &Path) -> Result<()> {
    let data = Cifar10::load(source)?;
    let n = data.train.len();
    for (i, name) in crate::data::cifar::TRAIN_FILES.iter().enumerate() {
        let part: Vec<usize> = (i * n / 5..(i + 1) * n / 5).collect();
        let path = dir.join(name);
        std::fs::write(&path, data.train.select(&part).to_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Runs `bench` (and the reference beside it) for `rounds` alternating rounds and prints each
/// measurement, the medians, GFLOP/s and their share of the machine's peak (`peak_gflops` where
/// given, else [`super::peak::peak`]), the ratio, and last `img_per_s=<median>`; with `profile`,
/// then the step's profile ([`profile`]) into that file.
pub fn run(
    bench: &Bench,
    reference: Option<&Reference>,
    rounds: usize,
    peak_gflops: Option<f64>,
    profile: Option<&Path>,
) -> Result<()> {
    if profile.is_some() && bench.mode != Mode::Step {
        bail!("--profile with --mode {:?}; expected --mode step (the training step alone)", bench.mode);
    }
    if rounds == 0 {
        bail!("--rounds 0; expected at least 1");
    }
    if bench.iters == 0 {
        bail!("--iters 0; expected at least 1 timed iteration");
    }
    if reference.is_some() {
        reference_mode(bench)?;
    }
    if bench.mode == Mode::Train && bench.warmup == 0 {
        bail!("--warmup 0 with --mode train; expected at least 1 (the loop's first metrics row is the warm-up)");
    }
    let reference_data = match (reference, bench.mode) {
        (Some(_), Mode::Train) => {
            let dir = tempfile::tempdir().context("creating a folder for the reference's data")?;
            write_reference_data(&bench.data, dir.path())?;
            Some(dir)
        }
        _ => None,
    };
    let peak = match peak_gflops {
        Some(gflops) => Peak { gflops, from: "given with --peak-gflops".into() },
        None => super::peak::peak(bench.precision, bench.threads, bench.device)?,
    };
    let macs = Model::new(&bench.spec, tch::Device::Cpu)?.macs();
    let layout = if bench.channels_last { "channels-last" } else { "contiguous" };
    println!(
        "{} {:?} {} {layout} threads={} batch={} iters={} (after {} warm-up) data={}",
        bench.spec,
        bench.mode,
        bench.precision,
        if bench.threads == 0 { "cores".to_string() } else { bench.threads.to_string() },
        if bench.mode == Mode::Eval { EVAL_BATCH as i64 } else { bench.batch },
        bench.iters,
        bench.warmup,
        bench.data
    );
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let speed = measure(bench)?;
        ours.push(speed);
        let mut line = format!("round {round}: reslab {speed:.1} img/s");
        if let Some(reference) = reference {
            let speed = reference_img_per_s(bench, reference, reference_data.as_ref().map(|d| d.path()))?;
            theirs.push(speed);
            line += &format!(", reference {speed:.1} img/s");
        }
        println!("{line}");
    }
    let ours = median(&ours);
    let gflops = ours * flop_per_image(macs, bench.mode) / 1e9;
    let share = 100.0 * gflops / peak.gflops;
    println!(
        "reslab: {ours:.1} img/s (median of {rounds}), {gflops:.1} GFLOP/s = {share:.0}% of this machine's peak \
         ({:.0} GFLOP/s: {})",
        peak.gflops, peak.from
    );
    if let Some(reference) = reference {
        let theirs = median(&theirs);
        let mode = if bench.mode == Mode::Train { "pipeline" } else { "step" };
        println!("reference ({mode}, {}): {theirs:.1} img/s (median of {rounds})", reference.precision);
        println!("ratio={:.2}", ours / theirs);
    }
    if bench.mode == Mode::Eval {
        let train = step_img_per_s(&Bench { mode: Mode::Step, ..bench.clone() })?;
        println!("training step of the same model: {train:.1} img/s; eval/train={:.2}", ours / train);
    }
    if let Some(trace) = profile {
        self::profile(bench, trace)?;
    }
    println!("img_per_s={ours:.1}");
    Ok(())
}

/// Profiles `bench`'s training step (`--mode step`): its `iters` steps under libtorch's profiler,
/// the trace written to `trace`, and prints the time per step of each group of ops
/// ([`super::profile`]) with its share.
pub fn profile(bench: &Bench, trace: &Path) -> Result<()> {
    let wall_s = super::probe::profiled_steps(bench, trace)?;
    let split = super::profile::split_per_step(trace, bench.iters)?;
    let profiled: f64 = split.iter().map(|(_, ms)| ms).sum();
    println!(
        "profile of {} steps ({:.1} ms a step, {:.1} ms of it in ops; trace: {}):",
        bench.iters,
        1000.0 * wall_s / bench.iters as f64,
        profiled,
        trace.display()
    );
    for (group, ms) in &split {
        println!("  {group:<40} {ms:>8.2} ms  {:>5.1}%", 100.0 * ms / profiled);
    }
    Ok(())
}

/// The median of `values` (not empty).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_flops() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(flop_per_image(10, Mode::Train), 60.0);
        assert_eq!(flop_per_image(10, Mode::Eval), 20.0);
    }
}
