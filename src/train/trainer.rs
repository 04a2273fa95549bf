//! The training loop and the run directory it fills:
//! `config.toml` (everything needed to re-run), `metrics.csv` (a row per evaluation),
//! `model.safetensors` (final weights) and, written last, `summary.toml`. A run directory
//! without a `summary.toml` saying `status = "complete"` is not a finished result.

use super::config::RunConfig;
use super::metrics::{MetricsRow, MetricsWriter};
use super::schedule::learning_rate;
use super::sgd::Sgd;
use crate::data::batches::{rng, BatchOrder, Stream};
use crate::data::dataset::count_wrong;
use crate::data::Dataset;
use crate::model::{weights, Model, ModelSpec};
use crate::util::fs::write_file;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;
use tch::Device;

pub const CONFIG_FILE: &str = "config.toml";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const SUMMARY_FILE: &str = "summary.toml";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Complete,
    Diverged,
}

/// What a run ended with, saved as `summary.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub status: RunStatus,
    pub model: String,
    pub params: i64,
    pub macs: u64,
    pub iters_done: usize,
    pub final_train_err: f64,
    pub final_test_err: f64,
    /// Mean over the run's rows: the "on average over the run" of the degradation check.
    pub mean_train_err: f64,
    pub mean_test_err: f64,
    pub mean_img_per_s: f64,
    pub wall_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl RunSummary {
    pub fn load(dir: &Path) -> Result<RunSummary> {
        let path = dir.join(SUMMARY_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), super::config::one_line(&e.to_string())))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let text = toml::to_string(self).expect("a summary always serialises");
        write_file(&dir.join(SUMMARY_FILE), text.as_bytes())
    }
}

/// Trains `config` into `out`. A directory that already holds this exact run, complete, is
/// returned as it is; one that holds a complete run of another configuration is refused;
/// anything else there (an unfinished run) is started over.
pub fn train(config: &RunConfig, out: &Path, label: &str) -> Result<RunSummary> {
    config.validate()?;
    if let Some(summary) = existing_complete_run(config, out)? {
        eprintln!("{label}: {} already holds this run, complete; not training again", out.display());
        return Ok(summary);
    }
    set_threads(config.threads);
    let device = Device::cuda_if_available();
    let data = Dataset::open(&config.data, device)?;
    let mut order = BatchOrder::new(data.num_train(), config.optim.batch_size, config.seed)?;
    tch::manual_seed(config.seed as i64);
    let mut model = Model::new(&model_for_data(&config.model, &data)?, device)?;
    if config.channels_last {
        model.use_channels_last();
    }

    std::fs::create_dir_all(out).with_context(|| format!("creating run directory {}", out.display()))?;
    for stale in [SUMMARY_FILE, WEIGHTS_FILE] {
        let _ = std::fs::remove_file(out.join(stale));
    }
    let header = format!(
        "# reslab {} run of {}. Re-run it with: reslab train --config {CONFIG_FILE} --out DIR\n",
        env!("CARGO_PKG_VERSION"),
        config.model
    );
    write_file(&out.join(CONFIG_FILE), (header + &config.to_toml()).as_bytes())?;
    let mut metrics = MetricsWriter::create(out)?;
    let progress = progress_bar(label, config.schedule.iters);

    let mut sgd = Sgd::new(&model.vs, config.optim.momentum, config.optim.weight_decay);
    let mut window = Window::default();
    let mut rows: Vec<MetricsRow> = Vec::new();
    let started = Instant::now();
    for iter in 0..config.schedule.iters {
        let lr = learning_rate(&config.optim, &config.schedule, iter);
        let step_started = Instant::now();
        let mut augment_rng = rng(config.seed, Stream::Augment, iter as u64);
        let (images, labels) = data.train_batch(order.batch(iter), config.data.augment, &mut augment_rng, device);
        let logits = model.forward_t(&images, true);
        let loss = logits.cross_entropy_for_logits(&labels);
        sgd.zero_grad();
        loss.backward();
        let loss_value = loss.double_value(&[]);
        if !loss_value.is_finite() {
            progress.abandon();
            let message = format!(
                "training diverged at iteration {}: the loss is {loss_value}; {} keeps the {} rows before it \
                 (try a lower --lr)",
                iter + 1,
                out.join(super::metrics::FILE_NAME).display(),
                rows.len()
            );
            summarize(&model, &rows, iter, started, RunStatus::Diverged, Some(message.clone())).save(out)?;
            bail!(message);
        }
        sgd.step(lr);
        let wrong = count_wrong(&logits, &labels);
        window.add(loss_value, wrong, labels.size()[0], step_started.elapsed().as_secs_f64());
        progress.inc(1);
        progress.set_message(format!("loss {loss_value:.3}  train err {:.1}%", window.error()));

        let done = iter + 1;
        if done % config.schedule.eval_every == 0 || done == config.schedule.iters {
            let row = MetricsRow {
                iter: done,
                epoch: order.epoch(done),
                lr,
                train_loss: window.loss(),
                train_err: window.error(),
                test_err: data.evaluate(&model, config.data.test_crops),
                img_per_s: window.images_per_second(),
                wall_s: started.elapsed().as_secs_f64(),
            };
            metrics.write(&row)?;
            if progress.is_hidden() {
                println!(
                    "{label}  iter {done}/{}  loss {:.4}  train err {:.2}%  test err {:.2}%  {:.0} img/s",
                    config.schedule.iters, row.train_loss, row.train_err, row.test_err, row.img_per_s
                );
            }
            rows.push(row);
            window = Window::default();
        }
    }
    progress.finish();
    weights::save(&model.vs, config.schedule.iters as i64, &out.join(WEIGHTS_FILE))?;
    let summary = summarize(&model, &rows, config.schedule.iters, started, RunStatus::Complete, None);
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
        Ok(existing) if existing == *config => Ok(Some(summary)),
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

/// libtorch's intra-op threads: `threads`, or one per core when 0.
pub fn set_threads(threads: usize) {
    let threads = if threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { threads };
    tch::set_num_threads(threads as i32);
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
    let progress = ProgressBar::new(iters as u64);
    progress.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} it  {msg}  {per_sec} eta {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    progress.set_prefix(label.to_string());
    progress
}

/// Running training statistics since the last metrics row.
#[derive(Default)]
struct Window {
    loss_sum: f64,
    batches: usize,
    wrong: i64,
    seen: i64,
    seconds: f64,
}

impl Window {
    fn add(&mut self, loss: f64, wrong: i64, seen: i64, seconds: f64) {
        self.loss_sum += loss;
        self.batches += 1;
        self.wrong += wrong;
        self.seen += seen;
        self.seconds += seconds;
    }

    fn loss(&self) -> f64 {
        self.loss_sum / self.batches.max(1) as f64
    }

    fn error(&self) -> f64 {
        100.0 * self.wrong as f64 / self.seen.max(1) as f64
    }

    fn images_per_second(&self) -> f64 {
        self.seen as f64 / self.seconds.max(1e-9)
    }
}
