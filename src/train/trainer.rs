//! The training loop and the run directory it fills:
//! `config.toml` (everything needed to re-run), `metrics.csv` (a row per evaluation),
//! `model.safetensors` (final weights) and, written last, `summary.toml`. A run directory
//! without a `summary.toml` saying `status = "complete"` is not a finished result.

use super::distributed::{shard, DataParallel, World};
use super::evaluate::{count_errors, error_rate};
use super::runtime::{self, autocast, set_threads};
use super::schedule::learning_rate;
use super::sgd::Sgd;
use super::step_dump::StepDump;
use crate::data::batches::{rng, BatchOrder, Stream};
use crate::data::Dataset;
use crate::model::{weights, Model, ModelSpec, WeightLayer};
use crate::run::checkpoint::{self, LoopState};
use crate::run::config::{Precision, RunConfig};
use crate::run::events::EventWriter;
use crate::run::grad_norms::{GradNormRow, GradNormWriter};
use crate::run::lock::RunLock;
use crate::run::metrics::{self, MetricsRow, MetricsWriter};
use crate::run::{RunState, RunStatus, RunSummary, CONFIG_FILE, SUMMARY_FILE, WEIGHTS_FILE};
use crate::util::fs::write_file;
use crate::util::interrupt;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;
use std::time::{Duration, Instant};
use tch::{Kind, Tensor};

/// Environment variable that makes training print a line per metrics row instead of drawing a
/// progress bar (the experiment runner sets it for the child processes whose output it forwards).
pub const PROGRESS_LINES_ENV: &str = "RESLAB_PROGRESS_LINES";

/// What a run records besides its results; never part of its configuration, never changes them.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    /// Write the first this many steps' batches and weights to `steps/` (see [`super::step_dump`]).
    pub dump_steps: usize,
}

/// Trains `config` into `out`, resuming from the directory's checkpoint when it has one.
///
/// A directory that already holds this exact run, complete, is returned as it is; a complete run
/// or a checkpoint of another configuration is refused; a directory with neither is started over.
pub fn train(config: &RunConfig, out: &Path, label: &str) -> Result<RunSummary> {
    train_recording(config, out, label, &Recording::default())
}

/// [`train`], also recording what `recording` asks for.
pub fn train_recording(config: &RunConfig, out: &Path, label: &str, recording: &Recording) -> Result<RunSummary> {
    check_request(config, recording)?;
    if config.world_size != 1 {
        bail!(
            "this run is for {} processes (world_size = {}); start it with reslab launch --nproc {} -- train ... \
             (or srun), which runs train --distributed",
            config.world_size,
            config.world_size,
            config.world_size
        );
    }
    let Prepared { lock: _lock, complete } = prepare_directory(config, out, label)?;
    if let Some(summary) = complete {
        return Ok(summary);
    }
    train_recording_failure(out, train_locked(config, out, label, recording, None))
}

/// One rank of a data parallel run of `config` (whose `world_size` is the world's): joins the
/// other ranks, then trains as [`train_recording`] does, rank 0 alone reading and writing `out`.
/// Every collective waits at most `timeout`. Rank 0 returns the summary; the others `None`.
pub fn train_distributed(
    config: &RunConfig,
    out: &Path,
    label: &str,
    recording: &Recording,
    world: &World,
    timeout: Duration,
) -> Result<Option<RunSummary>> {
    check_request(config, recording)?;
    if recording.dump_steps > 0 {
        bail!("--dump-steps records one process's steps; it cannot be used with --distributed");
    }
    if config.world_size != world.size {
        bail!("the configuration is for {} processes but the world has {}", config.world_size, world.size);
    }
    set_threads(world.threads(config.threads));
    let mut parallel = DataParallel::join(world, world.device(), timeout)?;
    // Rank 0 tells the others whether to train: "train", "complete" or the error that stopped it.
    if !parallel.is_leader() {
        let word = String::from_utf8_lossy(&parallel.broadcast_bytes(&[])?).into_owned();
        return match word.split_once('\n') {
            Some(("error", message)) => bail!("rank 0 stopped before training: {message}"),
            _ if word == "complete" => Ok(None),
            _ => train_locked(config, out, label, recording, Some(&mut parallel)).map(|_| None),
        };
    }
    let prepared = prepare_directory(config, out, label);
    let word = match &prepared {
        Err(e) => format!("error\n{e:#}"),
        Ok(Prepared { complete: Some(_), .. }) => "complete".into(),
        Ok(_) => "train".into(),
    };
    parallel.broadcast_bytes(word.as_bytes())?;
    let Prepared { lock: _lock, complete } = prepared?;
    if let Some(summary) = complete {
        return Ok(Some(summary));
    }
    train_recording_failure(out, train_locked(config, out, label, recording, Some(&mut parallel))).map(Some)
}

fn check_request(config: &RunConfig, recording: &Recording) -> Result<()> {
    config.validate()?;
    if recording.dump_steps > config.schedule.iters {
        bail!(
            "--dump-steps {} asks for more steps than the run's {} iterations; expected at most {}",
            recording.dump_steps,
            config.schedule.iters,
            config.schedule.iters
        );
    }
    Ok(())
}

/// The run directory, locked, and the run it already holds complete, if it does.
struct Prepared {
    lock: RunLock,
    complete: Option<RunSummary>,
}

fn prepare_directory(config: &RunConfig, out: &Path, label: &str) -> Result<Prepared> {
    std::fs::create_dir_all(out).with_context(|| format!("creating run directory {}", out.display()))?;
    let lock = RunLock::acquire(out)?;
    let complete = existing_complete_run(config, out)?;
    match &complete {
        Some(_) => eprintln!("{label}: {} already holds this run, complete; not training again", out.display()),
        None => RunState::clear_failure(out),
    }
    Ok(Prepared { lock, complete })
}

/// `result`, with a failure recorded in `out` (an interrupt is a pause, not a failure; a
/// divergence says so in summary.toml).
fn train_recording_failure(out: &Path, result: Result<RunSummary>) -> Result<RunSummary> {
    if let Err(e) = &result {
        if !interrupt::requested() && RunSummary::load(out).is_err() {
            let _ = RunState::record_failure(out, e);
        }
    }
    result
}

/// What only the process that writes the run directory (the only one, or rank 0) keeps open.
struct Outputs {
    metrics: MetricsWriter,
    events: EventWriter,
    grad_log: Option<(GradNormWriter, Vec<WeightLayer>)>,
    step_dump: Option<StepDump>,
}

/// The training itself, with the directory's lock held by the process that writes it (`parallel`:
/// this process's part of a data parallel run).
fn train_locked(
    config: &RunConfig,
    out: &Path,
    label: &str,
    recording: &Recording,
    mut parallel: Option<&mut DataParallel>,
) -> Result<RunSummary> {
    interrupt::install()?;
    let leader = parallel.as_ref().is_none_or(|p| p.is_leader());
    let device = match &parallel {
        Some(p) => p.world().device(),
        None => {
            set_threads(config.threads);
            runtime::device()
        }
    };
    let data = Dataset::open(&config.data, device)?;
    let batch_size = config.optim.batch_size;
    let mut order = BatchOrder::new(data.num_train(), batch_size, config.seed)?;
    tch::manual_seed(config.seed as i64);
    let mut model = Model::new(&model_for_data(&config.model, &data)?, device)?;
    if config.channels_last {
        model.use_channels_last();
    }
    let mut sgd = Sgd::new(&model.vs, config.optim.momentum, config.optim.weight_decay)?;

    let mut state = LoopState::default();
    let saved = if leader { checkpoint::latest(out, config)? } else { None };
    if let Some(saved) = &saved {
        saved.restore_model(&model.vs)?;
        sgd.load_buffers(&saved.momentum).with_context(|| format!("checkpoint {}", saved.path.display()))?;
        state = saved.state.clone();
        eprintln!("{label}: resuming from {} at iteration {}", saved.path.display(), state.iteration);
    }
    if let Some(parallel) = parallel.as_deref_mut() {
        parallel.broadcast_state(&model.vs, &mut sgd)?;
        state = parallel.broadcast_loop_state(&state)?;
    }
    // The rows kept so far (rank 0's; the other ranks only count the ones they add).
    let (mut outputs, mut rows) = match leader {
        true => {
            let (outputs, rows) = open_outputs(config, out, &model, recording, &state, saved.is_some())?;
            (Some(outputs), rows)
        }
        false => (None, Vec::new()),
    };
    let progress = if leader { progress_bar(label, config.schedule.iters) } else { ProgressBar::hidden() };
    progress.set_position(state.iteration as u64);
    let started = Instant::now() - std::time::Duration::from_secs_f64(state.elapsed_s);
    let iters = config.schedule.iters;
    let checkpoint = |state: &LoopState, sgd: &Sgd| {
        let momentum = sgd.buffers().map(|(n, t)| (n.to_string(), t.shallow_clone())).collect();
        checkpoint::save(out, config, &model.vs, momentum, state)
    };
    let first_iteration = state.iteration;

    while state.iteration < iters {
        let iter = state.iteration;
        let lr = learning_rate(&config.optim, &config.schedule, iter, state.warmup_ended_at);
        let step_started = Instant::now();
        let mut augment_rng = rng(config.seed, Stream::Augment, iter as u64);
        let shard = parallel.as_ref().map_or(0..batch_size, |p| p.shard(batch_size));
        let (images, labels) =
            data.train_shard(order.batch(iter), shard, config.data.augment, &mut augment_rng, device);
        let (logits, loss) = forward_backward(&model, &mut sgd, &images, &labels, config.precision)?;
        if let Some(parallel) = parallel.as_deref_mut() {
            parallel.average_gradients(&mut sgd)?;
        }
        let step = step_outcome(&loss, &logits, &labels, parallel.as_deref_mut())?;
        if !step.loss.is_finite() {
            progress.abandon();
            let message = format!(
                "training diverged at iteration {}: the loss is {}; {} keeps the {} rows before it \
                 (try a lower --lr, or --warmup)",
                iter + 1,
                step.loss,
                out.join(metrics::FILE_NAME).display(),
                rows.len()
            );
            if leader {
                summarize(&model, &rows, iter, started, RunStatus::Diverged, Some(message.clone())).save(out)?;
            }
            bail!(message);
        }
        if let Some(Outputs { grad_log: Some((writer, layers)), .. }) = &mut outputs {
            if iter == 0 || (iter + 1) % config.log_grads == 0 {
                writer.write(&grad_norms(layers, iter + 1))?;
            }
        }
        sgd.step(lr)?;
        if let Some(Outputs { step_dump: Some(dump), .. }) = &mut outputs {
            dump.record(&images, &labels, lr, step.loss, &model.vs)?;
        }
        state.record_batch(step.loss, step.wrong, batch_size as i64, step_started.elapsed().as_secs_f64());
        state.update_warmup(&config.schedule);
        state.iteration = iter + 1;
        state.elapsed_s = started.elapsed().as_secs_f64();
        progress.inc(1);
        progress.set_message(format!("loss {:.3}  train err {:.1}%", step.loss, state.row_error()));

        let done = state.iteration;
        if done % config.schedule.eval_every == 0 || done == iters {
            let row = MetricsRow {
                iter: done,
                epoch: order.epoch(done),
                lr,
                train_loss: state.row_loss(),
                train_err: state.row_error(),
                test_err: test_error(&model, &data, config, parallel.as_deref_mut())?,
                img_per_s: state.row_images_per_second(),
                wall_s: started.elapsed().as_secs_f64(),
            };
            if let Some(outputs) = &mut outputs {
                outputs.metrics.write(&row)?;
                outputs.events.write(&row)?;
                if progress.is_hidden() {
                    println!(
                        "{label}  iter {done}/{iters}  loss {:.4}  train err {:.2}%  test err {:.2}%  {:.0} img/s",
                        row.train_loss, row.train_err, row.test_err, row.img_per_s
                    );
                }
            }
            rows.push(row);
            state.start_row();
        }
        // Ranks stop together, at the step where any of them was asked to (they agreed on it in
        // `step_outcome`); one process stops when it is asked.
        if step.stop || (parallel.is_none() && interrupt::requested()) {
            progress.abandon();
            if leader {
                checkpoint(&state, &sgd)?;
            }
            bail!(
                "interrupted at iteration {done} of {iters}: checkpoint written to {}; run the same command \
                 (or reslab train --resume {}) to continue",
                out.join(checkpoint::FILE).display(),
                out.display()
            );
        }
        if leader && (done % config.checkpoint_interval() == 0 || done == iters) {
            checkpoint(&state, &sgd)?;
        }
    }
    progress.finish();
    let mut summary = summarize(&model, &rows, iters, started, RunStatus::Complete, None);
    if let Some(parallel) = parallel {
        let steps = (iters - first_iteration).max(1) as f64;
        summary.all_reduce_ms_per_step = Some(parallel.take_reduce_time().as_secs_f64() * 1000.0 / steps);
    }
    if leader {
        weights::save(&model.vs, iters as i64, &out.join(WEIGHTS_FILE))?;
        summary.save(out)?;
    }
    Ok(summary)
}

/// Opens the run directory's outputs for writing: from scratch, or continued at the checkpoint's
/// iteration when `resuming`; with the metrics rows kept.
fn open_outputs(
    config: &RunConfig,
    out: &Path,
    model: &Model,
    recording: &Recording,
    state: &LoopState,
    resuming: bool,
) -> Result<(Outputs, Vec<MetricsRow>)> {
    let metrics = if resuming {
        MetricsWriter::resume(out, state.iteration)?
    } else {
        for stale in [SUMMARY_FILE, WEIGHTS_FILE] {
            let _ = std::fs::remove_file(out.join(stale));
        }
        MetricsWriter::create(out)?
    };
    let command = match config.world_size {
        1 => "reslab train".to_string(),
        n => format!("reslab launch --nproc {n} -- train"),
    };
    let header = format!(
        "# reslab {} run of {}. Re-run (or resume) it with: {command} --config {CONFIG_FILE} --out DIR\n",
        env!("CARGO_PKG_VERSION"),
        config.model,
    );
    write_file(&out.join(CONFIG_FILE), (header + &config.to_toml()).as_bytes())?;
    let grad_log = match config.log_grads {
        0 => None,
        _ => Some((GradNormWriter::resume(out, state.iteration)?, model.weight_layers())),
    };
    let rows = metrics::read_if_any(out)?;
    let events = EventWriter::create(out, &rows)?;
    let step_dump = match recording.dump_steps {
        0 => None,
        steps => Some(StepDump::start(out, steps, &model.vs, state.iteration)?),
    };
    Ok((Outputs { metrics, events, grad_log, step_dump }, rows))
}

/// The test error (%): one process evaluates the whole set; data parallel ranks each their
/// share, and sum the errors.
fn test_error(model: &Model, data: &Dataset, config: &RunConfig, parallel: Option<&mut DataParallel>) -> Result<f64> {
    let (crops, precision) = (config.data.test_crops, config.precision);
    let Some(parallel) = parallel else {
        return error_rate(model, data, crops, precision);
    };
    let n = data.num_eval();
    let world = parallel.world();
    let wrong = count_errors(model, data, shard(n, world.rank, world.size), crops, precision)?;
    let total = parallel.sum(&Tensor::from_slice(&[wrong as f64]))?;
    Ok(100.0 * total.double_value(&[0]) / n as f64)
}

/// The summary of a complete run already in `out` with exactly this configuration.
fn existing_complete_run(config: &RunConfig, out: &Path) -> Result<Option<RunSummary>> {
    let Ok(summary) = RunSummary::load(out) else {
        return Ok(None);
    };
    if summary.status != RunStatus::Complete {
        return Ok(None);
    }
    match RunConfig::load(&out.join(CONFIG_FILE)) {
        Ok(existing) if existing.same_run(config) => Ok(Some(summary)),
        _ => bail!(
            "run directory {} already holds a complete run with another configuration; \
             choose another --out or remove it",
            out.display()
        ),
    }
}

/// The model for `data`: its classifier sized to the data's classes unless the config fixes it.
pub fn model_for_data(spec: &ModelSpec, data: &Dataset) -> Result<ModelSpec> {
    let classes = data.num_classes();
    match spec.num_classes {
        Some(n) if n != classes => bail!("the model has {n} outputs but the data has {classes} classes"),
        _ => Ok(ModelSpec { num_classes: Some(classes), ..spec.clone() }),
    }
}

/// The forward pass in `precision`, the cross-entropy in fp32 (on the logits cast up, as
/// PyTorch's mixed-precision recipe has it), and the backward pass into zeroed gradients: the
/// logits and the loss.
pub fn forward_backward(
    model: &Model,
    sgd: &mut Sgd,
    images: &Tensor,
    labels: &Tensor,
    precision: Precision,
) -> Result<(Tensor, Tensor)> {
    let logits = {
        let _autocast = autocast(precision, model.vs.device())?;
        model.forward_t(images, true)
    };
    let loss = logits.to_kind(Kind::Float).cross_entropy_for_logits(labels);
    sgd.zero_grad();
    loss.backward();
    Ok((logits, loss))
}

/// Every layer's gradient and weight norm now (between the backward pass and the step), read
/// from the device at once.
fn grad_norms(layers: &[WeightLayer], iter: usize) -> Vec<GradNormRow> {
    let norms: Vec<Tensor> = layers
        .iter()
        .flat_map(|layer| {
            let grad = layer.weight.grad();
            let device = layer.weight.device();
            let grad_norm =
                if grad.defined() { grad.norm() } else { Tensor::full([], f64::NAN, (Kind::Float, device)) };
            [grad_norm.to_kind(Kind::Double), layer.weight.detach().norm().to_kind(Kind::Double)]
        })
        .collect();
    let values = Vec::<f64>::try_from(&Tensor::stack(&norms, 0)).expect("a vector of norms");
    layers
        .iter()
        .zip(values.chunks(2))
        .map(|(layer, norms)| GradNormRow {
            iter,
            layer: layer.name.clone(),
            depth: layer.depth,
            grad_norm: norms[0],
            weight_norm: norms[1],
        })
        .collect()
}

/// What a step ended with, over the whole batch.
struct StepOutcome {
    loss: f64,
    wrong: i64,
    /// Data parallel runs: whether any rank was asked to stop (all then stop after this step).
    stop: bool,
}

/// The batch's loss and how many of its images were misclassified, read from the device together:
/// the one host synchronisation of a step (the loss is needed at once, to stop a diverged run).
/// Data parallel ranks sum theirs (and their stop requests) in the same exchange, so every rank
/// sees the global batch's figures and takes the same decisions.
fn step_outcome(
    loss: &Tensor,
    logits: &Tensor,
    labels: &Tensor,
    parallel: Option<&mut DataParallel>,
) -> Result<StepOutcome> {
    let wrong = logits.argmax(-1, false).ne_tensor(labels).sum(Kind::Float);
    let stop = Tensor::from(if interrupt::requested() { 1.0f32 } else { 0.0 }).to_device(loss.device());
    let mut all = Tensor::stack(&[loss.detach().to_kind(Kind::Float), wrong, stop], 0).to_kind(Kind::Double);
    let mut processes = 1.0;
    if let Some(parallel) = parallel {
        all = parallel.sum(&all)?;
        processes = parallel.world().size as f64;
    }
    let values = Vec::<f64>::try_from(&all).expect("three numbers");
    Ok(StepOutcome { loss: values[0] / processes, wrong: values[1] as i64, stop: values[2] > 0.0 })
}

fn summarize(
    model: &Model,
    rows: &[MetricsRow],
    iters_done: usize,
    started: Instant,
    status: RunStatus,
    message: Option<String>,
) -> RunSummary {
    let mean = |f: fn(&MetricsRow) -> f64| {
        if rows.is_empty() {
            f64::NAN
        } else {
            rows.iter().map(f).sum::<f64>() / rows.len() as f64
        }
    };
    let last = rows.last();
    RunSummary {
        status,
        model: model.spec.to_string(),
        params: model.num_params(),
        macs: model.macs(),
        iters_done,
        final_train_err: last.map_or(f64::NAN, |r| r.train_err),
        final_test_err: last.map_or(f64::NAN, |r| r.test_err),
        mean_train_err: mean(|r| r.train_err),
        mean_test_err: mean(|r| r.test_err),
        mean_img_per_s: mean(|r| r.img_per_s),
        wall_s: started.elapsed().as_secs_f64(),
        all_reduce_ms_per_step: None,
        message,
    }
}

fn progress_bar(label: &str, iters: usize) -> ProgressBar {
    if std::env::var_os(PROGRESS_LINES_ENV).is_some() {
        return ProgressBar::hidden();
    }
    let progress = ProgressBar::new(iters as u64);
    progress.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} it  {msg}  {per_sec} eta {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    progress.set_prefix(label.to_string());
    progress
}
