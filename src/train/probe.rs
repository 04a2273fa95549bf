//! The speed probes: images per second of a training step or of evaluation passes on one fixed
//! random batch, with no data. `reslab bench` reports them; `auto` precision, `--jobs` and the
//! estimates of `reslab plan` decide from them.

use super::evaluate::EVAL_BATCH;
use super::runtime::{autocast, set_threads};
use super::sgd::Sgd;
use super::step::forward_backward;
use crate::data::DataSource;
use crate::model::{Kernels, Precision};
use crate::model::{Model, ModelSpec};
use anyhow::Result;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// What `reslab bench` times (see the module).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// The training step alone on one fixed random batch.
    Step,
    /// The real training loop of `reslab train`, data and augmentation included.
    Train,
    /// Evaluation forward passes (no gradients, BN folded) on a fixed random batch.
    Eval,
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct Bench {
    /// The network to time.
    pub spec: ModelSpec,
    /// Step, train or eval.
    pub mode: Mode,
    /// The forward pass's arithmetic.
    pub precision: Precision,
    /// The training step's kernels of BN, ReLU and the additions.
    pub kernels: Kernels,
    /// Keep weights and activations channels-last.
    pub channels_last: bool,
    /// libtorch threads; 0: one per core.
    pub threads: usize,
    /// Where it computes.
    pub device: Device,
    /// Images per batch.
    pub batch: i64,
    /// Timed iterations (batches), after `warmup` untimed ones.
    pub iters: usize,
    /// Untimed iterations before the timed ones.
    pub warmup: usize,
    /// `train` mode: the data, and whether to augment it.
    pub data: DataSource,
    /// `train` mode: augment the batches as training does.
    pub augment: bool,
}

/// Untimed steps before the timed ones (oneDNN and cuDNN pick their kernels on the first).
pub const PROBE_WARMUP: usize = 2;
/// Timed steps of a probe.
pub const PROBE_STEPS: usize = 3;

impl Bench {
    /// The training-step probe that `auto`, `--jobs` and the estimates time: [`PROBE_WARMUP`]
    /// untimed then [`PROBE_STEPS`] timed steps of `spec` on one random batch of `batch` images.
    pub fn step_probe(
        spec: ModelSpec,
        precision: Precision,
        kernels: Kernels,
        channels_last: bool,
        threads: usize,
        device: Device,
        batch: usize,
    ) -> Bench {
        Bench {
            spec,
            mode: Mode::Step,
            precision,
            kernels,
            channels_last,
            threads,
            device,
            batch: batch as i64,
            iters: PROBE_STEPS,
            warmup: PROBE_WARMUP,
            data: DataSource::Embedded,
            augment: false,
        }
    }
}

/// A fresh model of `bench` on the run device, in its layout, with its kernels.
fn fresh_model(bench: &Bench) -> Result<Model> {
    set_threads(bench.threads);
    tch::manual_seed(0);
    let mut model = Model::new(&bench.spec, bench.device)?;
    if bench.channels_last {
        model.use_channels_last();
    }
    model.use_kernels(bench.kernels);
    Ok(model)
}

/// Images per second of `per_batch` run `warmup + iters` times, timing the last `iters`.
fn timed(bench: &Bench, batch: i64, mut per_batch: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut start = Instant::now();
    for i in 0..bench.warmup + bench.iters {
        if i == bench.warmup {
            start = Instant::now();
        }
        per_batch()?;
    }
    Ok((bench.iters as i64 * batch) as f64 / start.elapsed().as_secs_f64())
}

/// `n` random images of the model family's size (32 pixels for CIFAR nets, 224 for ImageNet nets,
/// the sizes their MACs are counted at).
fn random_images(bench: &Bench, n: i64, device: tch::Device) -> Tensor {
    let size = match bench.spec.family {
        crate::model::Family::Cifar => crate::model::cifar::IMAGE_SIZE,
        crate::model::Family::Imagenet => crate::model::imagenet::IMAGE_SIZE,
    };
    Tensor::randn([n, 3, size, size], (Kind::Float, device))
}

/// The training step on one fixed random batch (also the speed probes of `auto`, `--jobs` and `reslab plan`).
pub fn step_img_per_s(bench: &Bench) -> Result<f64> {
    let model = fresh_model(bench)?;
    let device = model.vs.device();
    let mut sgd = Sgd::new(&model.vs, 0.9, 1e-4)?;
    let x = random_images(bench, bench.batch, device);
    let y = Tensor::randint(bench.spec.classes(), [bench.batch], (Kind::Int64, device));
    timed(bench, bench.batch, || {
        let (_, loss) = forward_backward(&model, &mut sgd, &x, &y, bench.precision)?;
        sgd.step(0.1)?;
        let _ = loss.double_value(&[]);
        Ok(())
    })
}

/// The training step of [`step_img_per_s`], its warm-up untimed, then its `iters` steps under
/// libtorch's profiler, written to `trace` (a Chrome trace): their wall time in seconds.
pub fn profiled_steps(bench: &Bench, trace: &std::path::Path) -> Result<f64> {
    let model = fresh_model(bench)?;
    let device = model.vs.device();
    let mut sgd = Sgd::new(&model.vs, 0.9, 1e-4)?;
    let x = random_images(bench, bench.batch, device);
    let y = Tensor::randint(bench.spec.classes(), [bench.batch], (Kind::Int64, device));
    let mut step = || -> Result<()> {
        let (_, loss) = forward_backward(&model, &mut sgd, &x, &y, bench.precision)?;
        sgd.step(0.1)?;
        let _ = loss.double_value(&[]);
        Ok(())
    };
    for _ in 0..bench.warmup {
        step()?;
    }
    let profile = crate::native::Profile::start(trace)?;
    let start = Instant::now();
    for _ in 0..bench.iters {
        step()?;
    }
    let wall_s = start.elapsed().as_secs_f64();
    drop(profile);
    Ok(wall_s)
}

/// Evaluation forward passes on one fixed random batch of the evaluation batch size.
pub fn eval_img_per_s(bench: &Bench) -> Result<f64> {
    let model = fresh_model(bench)?;
    let device = model.vs.device();
    let batch = EVAL_BATCH as i64;
    let x = random_images(bench, batch, device);
    let folded = model.fold_batch_norm(bench.precision == Precision::Fp32);
    tch::no_grad(|| {
        timed(bench, batch, || {
            let _autocast = autocast(bench.precision, device)?;
            let _ = folded.forward(&x).argmax(-1, false).sum(Kind::Int64).int64_value(&[]);
            Ok(())
        })
    })
}
