//! The training loop and the run directory it fills:
//! `config.toml` (everything needed to re-run), `metrics.csv` (a row per evaluation),
//! `model.safetensors` (final weights) and, written last, `summary.toml`. A run directory
//! without a `summary.toml` saying `status = "complete"` is not a finished result.

use super::evaluate::error_rate;
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
use std::time::Instant;
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
    config.validate()?;
    if recording.dump_steps > config.schedule.iters {
        bail!(
            "--dump-steps {} asks for more steps than the run's {} iterations; expected at most {}",
            recording.dump_steps,
            config.schedule.iters,
            config.schedule.iters
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating run directory {}", out.display()))?;
    let _lock = RunLock::acquire(out)?;
    if let Some(summary) = existing_complete_run(config, out)? {
        eprintln!("{label}: {} already holds this run, complete; not training again", out.display());
        return Ok(summary);
    }
    RunState::clear_failure(out);
    let result = train_locked(config, out, label, recording);
    if let Err(e) = &result {
        // An interrupt is a pause, not a failure; a divergence says so in summary.toml.
        if !interrupt::requested() && RunSummary::load(out).is_err() {
            let _ = RunState::record_failure(out, e);
        }
    }
    result
}

/// The training itself, with the directory's lock held.
fn train_locked(config: &RunConfig, out: &Path, label: &str, recording: &Recording) -> Result<RunSummary> {
    interrupt::install()?;
    set_threads(config.threads);
    let device = runtime::device();
    let data = Dataset::open(&config.data, device)?;
    let mut order = BatchOrder::new(data.num_train(), config.optim.batch_size, config.seed)?;
    tch::manual_seed(config.seed as i64);
    let mut model = Model::new(&model_for_data(&config.model, &data)?, device)?;
    if config.channels_last {
        model.use_channels_last();
    }
    let mut sgd = Sgd::new(&model.vs, config.optim.momentum, config.optim.weight_decay)?;

    let mut state = LoopState::default();
    let mut metrics = match checkpoint::latest(out, config)? {
        Some(saved) => {
            saved.restore_model(&model.vs)?;
            sgd.load_buffers(&saved.momentum).with_context(|| format!("checkpoint {}", saved.path.display()))?;
            state = saved.state;
            eprintln!("{label}: resuming from {} at iteration {}", saved.path.display(), state.iteration);
            MetricsWriter::resume(out, state.iteration)?
        }
        None => {
            for stale in [SUMMARY_FILE, WEIGHTS_FILE] {
                let _ = std::fs::remove_file(out.join(stale));
            }
            MetricsWriter::create(out)?
        }
    };
    let header = format!(
        "# reslab {} run of {}. Re-run (or resume) it with: reslab train --config {CONFIG_FILE} --out DIR\n",
        env!("CARGO_PKG_VERSION"),
        config.model
    );
    write_file(&out.join(CONFIG_FILE), (header + &config.to_toml()).as_bytes())?;
    let mut grad_log = match config.log_grads {
        0 => None,
        _ => Some((GradNormWriter::resume(out, state.iteration)?, model.weight_layers())),
    };
    let mut rows = metrics::read_if_any(out)?;
    let mut events = EventWriter::create(out, &rows)?;
    let mut step_dump = match recording.dump_steps {
        0 => None,
        steps => Some(StepDump::start(out, steps, &model.vs, state.iteration)?),
    };
    let progress = progress_bar(label, config.schedule.iters);
    progress.set_position(state.iteration as u64);
    let started = Instant::now() - std::time::Duration::from_secs_f64(state.elapsed_s);
    let iters = config.schedule.iters;
    let checkpoint = |state: &LoopState, sgd: &Sgd| {
        let momentum = sgd.buffers().map(|(n, t)| (n.to_string(), t.shallow_clone())).collect();
        checkpoint::save(out, config, &model.vs, momentum, state)
    };

    while state.iteration < iters {
        let iter = state.iteration;
        let lr = learning_rate(&config.optim, &config.schedule, iter, state.warmup_ended_at);
        let step_started = Instant::now();
        let mut augment_rng = rng(config.seed, Stream::Augment, iter as u64);
        let (images, labels) = data.train_batch(order.batch(iter), config.data.augment, &mut augment_rng, device);
        let (logits, loss) = forward_backward(&model, &mut sgd, &images, &labels, config.precision)?;
        let (loss_value, wrong) = loss_and_errors(&loss, &logits, &labels);
        if !loss_value.is_finite() {
            progress.abandon();
            let message = format!(
                "training diverged at iteration {}: the loss is {loss_value}; {} keeps the {} rows before it \
                 (try a lower --lr, or --warmup)",
                iter + 1,
                out.join(metrics::FILE_NAME).display(),
                rows.len()
            );
            summarize(&model, &rows, iter, started, RunStatus::Diverged, Some(message.clone())).save(out)?;
            bail!(message);
        }
        if let Some((writer, layers)) = &mut grad_log {
            if iter == 0 || (iter + 1) % config.log_grads == 0 {
                writer.write(&grad_norms(layers, iter + 1))?;
            }
        }
        sgd.step(lr)?;
        if let Some(dump) = &mut step_dump {
            dump.record(&images, &labels, lr, loss_value, &model.vs)?;
        }
        state.record_batch(loss_value, wrong, labels.size()[0], step_started.elapsed().as_secs_f64());
        state.update_warmup(&config.schedule);
        state.iteration = iter + 1;
        state.elapsed_s = started.elapsed().as_secs_f64();
        progress.inc(1);
        progress.set_message(format!("loss {loss_value:.3}  train err {:.1}%", state.row_error()));

        let done = state.iteration;
        if done % config.schedule.eval_every == 0 || done == iters {
            let row = MetricsRow {
                iter: done,
                epoch: order.epoch(done),
                lr,
                train_loss: state.row_loss(),
                train_err: state.row_error(),
                test_err: error_rate(&model, &data, config.data.test_crops, config.precision)?,
                img_per_s: state.row_images_per_second(),
                wall_s: started.elapsed().as_secs_f64(),
            };
            metrics.write(&row)?;
            events.write(&row)?;
            if progress.is_hidden() {
                println!(
                    "{label}  iter {done}/{iters}  loss {:.4}  train err {:.2}%  test err {:.2}%  {:.0} img/s",
                    row.train_loss, row.train_err, row.test_err, row.img_per_s
                );
            }
            rows.push(row);
            state.start_row();
        }
        if interrupt::requested() {
            progress.abandon();
            checkpoint(&state, &sgd)?;
            bail!(
                "interrupted at iteration {done} of {iters}: checkpoint written to {}; run the same command \
                 (or reslab train --resume {}) to continue",
                out.join(checkpoint::FILE).display(),
                out.display()
            );
        }
        if done % config.checkpoint_interval() == 0 || done == iters {
            checkpoint(&state, &sgd)?;
        }
    }
    progress.finish();
    weights::save(&model.vs, iters as i64, &out.join(WEIGHTS_FILE))?;
    let summary = summarize(&model, &rows, iters, started, RunStatus::Complete, None);
    summary.save(out)?;
    Ok(summary)
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

/// The batch's loss and how many of its images were misclassified, read from the device together:
/// the one host synchronisation of a step (the loss is needed at once, to stop a diverged run).
fn loss_and_errors(loss: &Tensor, logits: &Tensor, labels: &Tensor) -> (f64, i64) {
    let wrong = logits.argmax(-1, false).ne_tensor(labels).sum(Kind::Float);
    let both = Tensor::stack(&[loss.detach(), wrong], 0).to_kind(Kind::Double);
    let values = Vec::<f64>::try_from(&both).expect("two numbers");
    (values[0], values[1] as i64)
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
