//! The training loop and the run directory it fills:
//! `config.toml` (everything needed to re-run), `metrics.csv` (a row per evaluation),
//! `model.safetensors` (final weights) and, written last, `summary.toml`. A run directory
//! without a `summary.toml` saying `status = "complete"` is not a finished result.

use super::distributed::{DataParallel, World};
use super::evaluate::model_for_data;
use super::hold::Hold;
use super::peers::Peers;
use super::request::Run;
use super::runtime::{self, set_threads};
use super::schedule::{learning_rate, update_warmup};
use super::sgd::Sgd;
use super::step::forward_backward;
use super::step_dump::StepDump;
use crate::data::batches::{rng, BatchOrder, Stream};
use crate::data::Dataset;
use crate::model::weights::{self, Expected, WeightsMetadata};
use crate::model::{Model, WeightLayer};
use crate::run::attempts;
use crate::run::checkpoint::{self, LoopState};
use crate::run::config::RunConfig;
use crate::run::events::EventWriter;
use crate::run::grad_norms::{GradNormRow, GradNormWriter};
use crate::run::lock::RunLock;
use crate::run::metrics::{self, MetricsRow, MetricsWriter};
use crate::run::{RunDir, RunState, RunStatus, RunSummary};
use crate::util::interrupt;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
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

/// Trains `run` into its directory, resuming from the directory's checkpoint when it has one.
///
/// A directory that already holds this exact run, complete, is returned as it is; a complete run
/// or a checkpoint of another configuration is refused; a directory with neither is started over.
pub fn train(run: &Run, label: &str) -> Result<RunSummary> {
    train_recording(run, label, &Recording::default())
}

/// [`train`], also recording what `recording` asks for.
pub fn train_recording(run: &Run, label: &str, recording: &Recording) -> Result<RunSummary> {
    let (config, out) = (run.config(), run.dir());
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
    let device = config.device.resolve()?;
    let config = &config.ran_on(device);
    let Prepared { lock: _lock, complete } = prepare_directory(config, out, label)?;
    if let Some(summary) = complete {
        return Ok(summary);
    }
    train_recording_failure(out, train_locked(config, out, label, recording, Peers::Alone))
}

/// One rank of a data parallel run (whose `world_size` is the world's): joins the other ranks,
/// then trains as [`train_recording`] does, rank 0 alone reading and writing the run directory.
/// Every collective waits at most `timeout`. Rank 0 returns the summary; the others `None`.
pub fn train_distributed(
    run: &Run,
    label: &str,
    recording: &Recording,
    world: &World,
    timeout: Duration,
) -> Result<Option<RunSummary>> {
    let (config, out) = (run.config(), run.dir());
    check_request(config, recording)?;
    if recording.dump_steps > 0 {
        bail!("--dump-steps records one process's steps; it cannot be used with --distributed");
    }
    if config.world_size != world.size {
        bail!("the configuration is for {} processes but the world has {}", config.world_size, world.size);
    }
    set_threads(world.threads(config.threads));
    let device = config.device.resolve_for_rank(world.local_rank)?;
    let config = &config.ran_on(device);
    let mut parallel = DataParallel::join(world, device, timeout)?;
    // Rank 0 tells the others whether to train: "train", "complete" or the error that stopped it.
    if !parallel.is_leader() {
        let word = String::from_utf8_lossy(&parallel.broadcast_bytes(&[])?).into_owned();
        return match word.split_once('\n') {
            Some(("error", message)) => bail!("rank 0 stopped before training: {message}"),
            _ if word == "complete" => Ok(None),
            _ => train_locked(config, out, label, recording, Peers::Ranks(&mut parallel)).map(|_| None),
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
    train_recording_failure(out, train_locked(config, out, label, recording, Peers::Ranks(&mut parallel))).map(Some)
}

fn check_request(config: &RunConfig, recording: &Recording) -> Result<()> {
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

fn prepare_directory(config: &RunConfig, out: &RunDir, label: &str) -> Result<Prepared> {
    let lock = out.lock()?;
    let complete = out.complete_run(config)?;
    match &complete {
        Some(_) => {
            crate::eprint_line!("{label}: {} already holds this run, complete; not training again", out.path.display())
        }
        None => {
            // Another network's checkpoint is refused now, before the directory records anything;
            // an unreadable one is left to `checkpoint::latest`, which falls back to the previous.
            for file in checkpoint::files(&out.path) {
                if let Ok(Some(metadata)) = weights::read_metadata(&file) {
                    metadata.ensure_network(&file, &config.model, Expected::Training)?;
                }
            }
            RunState::clear_failure(&out.path)
        }
    }
    Ok(Prepared { lock, complete })
}

/// `result`, with a failure recorded in `out` (an interrupt is a pause, not a failure; a
/// divergence says so in summary.toml).
fn train_recording_failure(out: &RunDir, result: Result<RunSummary>) -> Result<RunSummary> {
    if let Err(e) = &result {
        if !interrupt::requested() && RunSummary::load(&out.path).is_err() {
            let _ = RunState::record_failure(&out.path, e);
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

/// The training itself, with the directory's lock held by the process that writes it: set up
/// (or resumed), then a step at a time, a metrics row at every evaluation, until it ends,
/// diverges or is asked to stop.
fn train_locked(
    config: &RunConfig,
    dir: &RunDir,
    label: &str,
    recording: &Recording,
    peers: Peers,
) -> Result<RunSummary> {
    let mut training = Training::set_up(config, dir, label, recording, peers)?;
    // (Tests only: a pause point where they stop the run from outside.)
    let mut hold = Hold::from_env(&dir.path, training.peers.rank())?;
    while training.state.iteration < config.schedule.iters {
        if let Some(hold) = &mut hold {
            hold.wait_if_due(training.state.iteration, interrupt::requested)?;
        }
        let step = training.step()?;
        training.metrics_row_if_due(step.lr)?;
        if training.peers.stop(step.stop) {
            return Err(training.stop());
        }
        training.checkpoint_if_due()?;
    }
    if let Some(hold) = &mut hold {
        hold.wait_if_due(training.state.iteration, interrupt::requested)?;
        if interrupt::requested() {
            return Err(training.stop());
        }
    }
    training.finish()
}

/// A run being trained: everything the loop carries from one step to the next.
struct Training<'a> {
    config: &'a RunConfig,
    dir: &'a RunDir,
    label: &'a str,
    peers: Peers<'a>,
    data: Dataset,
    order: BatchOrder,
    model: Model,
    /// What every weights file of the run says of itself.
    weights_metadata: WeightsMetadata,
    sgd: Sgd,
    state: LoopState,
    /// The leader's open outputs; `None` on the other ranks.
    outputs: Option<Outputs>,
    /// The metrics rows so far (rank 0's; the other ranks only count the ones they add).
    rows: Vec<MetricsRow>,
    progress: ProgressBar,
    started: Instant,
    first_iteration: usize,
}

/// What one step did.
struct Step {
    /// The learning rate it used.
    lr: f64,
    /// Whether any process was asked to stop (data parallel runs agree on it in the step).
    stop: bool,
}

impl<'a> Training<'a> {
    /// The data, the model and the optimiser for `config`, from the directory's checkpoint when
    /// it has one (read by the leader, shared with the other ranks), and the outputs opened.
    fn set_up(
        config: &'a RunConfig,
        dir: &'a RunDir,
        label: &'a str,
        recording: &Recording,
        mut peers: Peers<'a>,
    ) -> Result<Training<'a>> {
        interrupt::install()?;
        if let Peers::Alone = peers {
            set_threads(config.threads);
        }
        // The device this process resolved for the run (`ran_on`): the same again.
        let device = config.device.resolve()?;
        let data = Dataset::open(&config.data, device)?;
        let order = BatchOrder::new(data.num_train(), config.optim.batch_size, config.seed)?;
        tch::manual_seed(config.seed as i64);
        let mut model = Model::new(&model_for_data(&config.model, &data)?, device)?;
        let weights_metadata = config.weights_metadata(&model.spec);
        if config.channels_last {
            model.use_channels_last();
        }
        model.use_kernels(config.kernels);
        let mut sgd = Sgd::new(&model.vs, config.optim.momentum, config.optim.weight_decay)?;
        let leader = peers.is_leader();
        let saved = if leader { checkpoint::latest(&dir.path, config)? } else { None };
        let mut state = LoopState::default();
        if let Some(saved) = &saved {
            saved.restore_model(&model.vs)?;
            sgd.load_buffers(&saved.momentum).with_context(|| format!("checkpoint {}", saved.path.display()))?;
            state = saved.state.clone();
            crate::eprint_line!("{label}: resuming from {} at iteration {}", saved.path.display(), state.iteration);
        }
        let state = peers.share_start(&model.vs, &mut sgd, state)?;
        let (outputs, rows) = match leader {
            true => {
                let resuming = saved.is_some();
                let (outputs, rows) =
                    open_outputs(config, dir, &model, &weights_metadata, recording, &state, resuming)?;
                (Some(outputs), rows)
            }
            false => (None, Vec::new()),
        };
        if leader && saved.is_none() {
            // The start of the path from initialisation (`analyze landscape`), as every rank holds it.
            weights::save(&model.vs, 0, &weights_metadata, &dir.init_weights())?;
        }
        let progress = if leader { progress_bar(label, config.schedule.iters) } else { ProgressBar::hidden() };
        progress.set_position(state.iteration as u64);
        let started = Instant::now() - Duration::from_secs_f64(state.elapsed_s);
        let first_iteration = state.iteration;
        Ok(Training {
            config,
            dir,
            label,
            peers,
            data,
            order,
            model,
            weights_metadata,
            sgd,
            state,
            outputs,
            rows,
            progress,
            started,
            first_iteration,
        })
    }

    /// One iteration: this process's share of the batch forward and backward, the gradients
    /// averaged, the outcome agreed, the recordings, and the SGD step. A diverged loss ends the
    /// run with a summary saying so.
    fn step(&mut self) -> Result<Step> {
        let config = self.config;
        let iter = self.state.iteration;
        let lr = learning_rate(&config.optim, &config.schedule, iter, self.state.warmup_ended_at);
        let step_started = Instant::now();
        let mut augment_rng = rng(config.seed, Stream::Augment, iter as u64);
        let batch_size = config.optim.batch_size;
        let shard = self.peers.shard(batch_size);
        let device = self.model.vs.device();
        let (images, labels) =
            self.data.train_shard(self.order.batch(iter), shard, config.data.augment, &mut augment_rng, device);
        let (logits, loss) = forward_backward(&self.model, &mut self.sgd, &images, &labels, config.precision)?;
        self.peers.average_gradients(&mut self.sgd)?;
        let outcome = step_outcome(&loss, &logits, &labels, &mut self.peers)?;
        if !outcome.loss.is_finite() {
            return Err(self.diverged(iter, outcome.loss));
        }
        if let Some(Outputs { grad_log: Some((writer, layers)), .. }) = &mut self.outputs {
            if iter == 0 || (iter + 1).is_multiple_of(config.log_grads) {
                writer.write(&grad_norms(layers, iter + 1))?;
            }
        }
        self.sgd.step(lr)?;
        if let Some(Outputs { step_dump: Some(dump), .. }) = &mut self.outputs {
            dump.record(&images, &labels, lr, outcome.loss, &self.model.vs)?;
        }
        let state = &mut self.state;
        state.record_batch(outcome.loss, outcome.wrong, batch_size as i64, step_started.elapsed().as_secs_f64());
        update_warmup(state, &config.schedule);
        state.iteration = iter + 1;
        state.elapsed_s = self.started.elapsed().as_secs_f64();
        self.progress.inc(1);
        self.progress.set_message(format!("loss {:.3}  train err {:.1}%", outcome.loss, state.row_error()));
        Ok(Step { lr, stop: outcome.stop })
    }

    /// The error that ends a diverged run, after its summary says so (the rows before it kept).
    fn diverged(&mut self, iter: usize, loss: f64) -> anyhow::Error {
        self.progress.abandon();
        let message = format!(
            "training diverged at iteration {}: the loss is {loss}; {} keeps the {} rows before it \
             (try a lower --lr, or --warmup)",
            iter + 1,
            self.dir.path.join(metrics::FILE_NAME).display(),
            self.rows.len()
        );
        if self.peers.is_leader() {
            let mut summary = summarize(
                (self.config, self.dir),
                &self.model,
                &self.rows,
                iter,
                self.started,
                RunStatus::Diverged,
                Some(message.clone()),
            );
            if let Err(e) = summary.save(&self.dir.path) {
                return e;
            }
        }
        anyhow::anyhow!(message)
    }

    /// At every `eval_every` iterations and at the end: the test error, and a metrics row.
    fn metrics_row_if_due(&mut self, lr: f64) -> Result<()> {
        let (done, iters) = (self.state.iteration, self.config.schedule.iters);
        if done % self.config.schedule.eval_every != 0 && done != iters {
            return Ok(());
        }
        let test_err =
            self.peers.test_error(&self.model, &self.data, self.config.data.test_crops, self.config.precision)?;
        let row = MetricsRow {
            iter: done,
            epoch: self.order.epoch(done),
            lr,
            train_loss: self.state.row_loss(),
            train_err: self.state.row_error(),
            test_err,
            img_per_s: self.state.row_images_per_second(),
            wall_s: self.started.elapsed().as_secs_f64(),
        };
        if let Some(outputs) = &mut self.outputs {
            outputs.metrics.write(&row)?;
            outputs.events.write(&row)?;
            if self.progress.is_hidden() {
                println!(
                    "{}  iter {done}/{iters}  loss {:.4}  train err {:.2}%  test err {:.2}%  {:.0} img/s",
                    self.label, row.train_loss, row.train_err, row.test_err, row.img_per_s
                );
            }
        }
        self.rows.push(row);
        self.state.start_row();
        Ok(())
    }

    /// The leader's checkpoint: weights, momentum and loop state.
    fn checkpoint(&self) -> Result<()> {
        if !self.peers.is_leader() {
            return Ok(());
        }
        let momentum = self.sgd.buffers().map(|(n, t)| (n.to_string(), t.shallow_clone())).collect();
        checkpoint::save(&self.dir.path, self.config, &self.model.vs, momentum, &self.state, &self.weights_metadata)
    }

    fn checkpoint_if_due(&self) -> Result<()> {
        let done = self.state.iteration;
        if done.is_multiple_of(self.config.checkpoint_interval()) || done == self.config.schedule.iters {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Stopped when asked: a checkpoint to continue from, and the error that says how.
    fn stop(&self) -> anyhow::Error {
        self.progress.abandon();
        if let Err(e) = self.checkpoint() {
            return e;
        }
        anyhow::anyhow!(
            "interrupted at iteration {} of {}: checkpoint written to {}; run the same command \
             (or reslab train --resume {}) to continue",
            self.state.iteration,
            self.config.schedule.iters,
            self.dir.path.join(checkpoint::FILE).display(),
            self.dir.path.display()
        )
    }

    /// The end: the final weights and, written last, the summary.
    fn finish(mut self) -> Result<RunSummary> {
        self.progress.finish();
        let iters = self.config.schedule.iters;
        let mut summary =
            summarize((self.config, self.dir), &self.model, &self.rows, iters, self.started, RunStatus::Complete, None);
        if let Some(reduce) = self.peers.take_reduce_time() {
            let steps = (iters - self.first_iteration).max(1) as f64;
            summary.all_reduce_ms_per_step = Some(reduce.as_secs_f64() * 1000.0 / steps);
        }
        if self.peers.is_leader() {
            weights::save(&self.model.vs, iters as i64, &self.weights_metadata, &self.dir.weights())?;
            summary.save(&self.dir.path)?;
        }
        Ok(summary)
    }
}

/// Opens the run directory's outputs for writing: from scratch, or continued at the checkpoint's
/// iteration when `resuming`; with the metrics rows kept.
fn open_outputs(
    config: &RunConfig,
    run_dir: &RunDir,
    model: &Model,
    weights_metadata: &WeightsMetadata,
    recording: &Recording,
    state: &LoopState,
    resuming: bool,
) -> Result<(Outputs, Vec<MetricsRow>)> {
    let out = run_dir.path.as_path();
    let metrics = if resuming {
        MetricsWriter::resume(out, state.iteration)?
    } else {
        run_dir.clear_results();
        MetricsWriter::create(out)?
    };
    run_dir.write_config(config)?;
    let (_, moved) = attempts::record(out, config.world_size, config.threads, config.device, state.iteration)?;
    if let Some(before) = moved {
        crate::eprint_line!(
            "note: {} resumes on {} at iteration {}; its previous start ran on {before} (the device never makes \
             another run; attempts.csv lists each start's)",
            out.display(),
            config.device,
            state.iteration
        );
    }
    let grad_log = match config.log_grads {
        0 => None,
        _ => Some((GradNormWriter::resume(out, state.iteration)?, model.weight_layers())),
    };
    let rows = metrics::read_if_any(out)?;
    let events = EventWriter::create(out, &rows)?;
    let step_dump = match recording.dump_steps {
        0 => None,
        steps => Some(StepDump::start(out, steps, &model.vs, weights_metadata, state.iteration)?),
    };
    Ok((Outputs { metrics, events, grad_log, step_dump }, rows))
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
fn step_outcome(loss: &Tensor, logits: &Tensor, labels: &Tensor, peers: &mut Peers) -> Result<StepOutcome> {
    let wrong = logits.argmax(-1, false).ne_tensor(labels).sum(Kind::Float);
    let stop = Tensor::from(if interrupt::requested() { 1.0f32 } else { 0.0 }).to_device(loss.device());
    let all = Tensor::stack(&[loss.detach().to_kind(Kind::Float), wrong, stop], 0).to_kind(Kind::Double);
    let all = peers.sum(all)?;
    let values = Vec::<f64>::try_from(&all).expect("three numbers");
    Ok(StepOutcome { loss: values[0] / peers.count() as f64, wrong: values[1] as i64, stop: values[2] > 0.0 })
}

fn summarize(
    (config, dir): (&RunConfig, &RunDir),
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
    let wall_s = started.elapsed().as_secs_f64();
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
        wall_s,
        provenance: Some(runtime::provenance(config, &dir.path, model.vs.device(), wall_s)),
        all_reduce_ms_per_step: None,
        message,
        digests: None,
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
