//! `reslab train --dump-steps K`: what another implementation needs to replay the first K
//! training steps and compare, step for step (tests/equality.rs does it with PyTorch):
//!
//! - `steps/initial.safetensors`: the weights and BN statistics before the first step (PyTorch names,
//!   with the run's weights metadata, as `final.safetensors`);
//! - `steps/batches.safetensors`: the K augmented, normalised batches as the net saw them
//!   (`images` K x N x C x H x W, `labels` K x N), the learning rate of each step (`lr`) and the
//!   loss reslab computed (`loss`, float64);
//! - `steps/final.safetensors`: the weights and BN statistics after step K.
//!
//! It only records: a run with it trains exactly as without it.

use crate::model::weights::{self, WeightsMetadata};
use crate::util::fs::write_atomically;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use tch::{nn, Kind, Tensor};

/// The weights and BN statistics before the first step, under `steps/`.
pub const INITIAL: &str = "initial.safetensors";
/// The batches, learning rates and losses of the recorded steps, under `steps/`.
pub const BATCHES: &str = "batches.safetensors";
/// The weights and BN statistics after the last recorded step, under `steps/`.
pub const FINAL: &str = "final.safetensors";

/// Collects the first K steps of a run (`train --dump-steps K`) and writes them to `steps/`.
pub struct StepDump {
    dir: PathBuf,
    metadata: WeightsMetadata,
    steps: usize,
    images: Vec<Tensor>,
    labels: Vec<Tensor>,
    lrs: Vec<f64>,
    losses: Vec<f64>,
}

impl StepDump {
    /// Starts a dump of the first `steps` steps of a run in `run_dir`; writes the initial weights.
    pub fn start(
        run_dir: &Path,
        steps: usize,
        vs: &nn::VarStore,
        metadata: &WeightsMetadata,
        start_iteration: usize,
    ) -> Result<StepDump> {
        if start_iteration > 0 {
            bail!(
                "--dump-steps records a run from its first step, but {} resumes at iteration {start_iteration}; \
                 use a new --out",
                run_dir.display()
            );
        }
        let dir = run_dir.join(crate::run::STEPS_DIR);
        std::fs::create_dir_all(&dir)?;
        weights::save(vs, 0, metadata, &dir.join(INITIAL))?;
        let metadata = metadata.clone();
        Ok(StepDump { dir, metadata, steps, images: vec![], labels: vec![], lrs: vec![], losses: vec![] })
    }

    /// Records one step's batch, learning rate and loss; after the last one, writes the batches
    /// and the weights as they are then.
    pub fn record(&mut self, images: &Tensor, labels: &Tensor, lr: f64, loss: f64, vs: &nn::VarStore) -> Result<()> {
        if self.images.len() >= self.steps {
            return Ok(());
        }
        let cpu = |t: &Tensor| t.detach().to_device(tch::Device::Cpu).contiguous();
        self.images.push(cpu(images));
        self.labels.push(cpu(labels));
        self.lrs.push(lr);
        self.losses.push(loss);
        if self.images.len() < self.steps {
            return Ok(());
        }
        let tensors = [
            ("images".to_string(), Tensor::stack(&self.images, 0)),
            ("labels".to_string(), Tensor::stack(&self.labels, 0)),
            ("lr".to_string(), Tensor::from_slice(&self.lrs).to_kind(Kind::Double)),
            ("loss".to_string(), Tensor::from_slice(&self.losses).to_kind(Kind::Double)),
        ];
        let path = self.dir.join(BATCHES);
        write_atomically(&path, |tmp| Tensor::write_safetensors(&tensors, tmp).map_err(|e| anyhow::anyhow!("{e}")))?;
        weights::save(vs, self.steps as i64, &self.metadata, &self.dir.join(FINAL))
    }
}
