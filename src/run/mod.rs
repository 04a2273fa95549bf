//! The run directory: the one contract between planning, training, aggregation and the commands
//! that look at runs (`eval --run`, `export --run`, `plan`, `status`). This module owns its layout
//! and every file in it; nothing else names them.
//!
//! | file | what | module |
//! | --- | --- | --- |
//! | `config.toml` | the run's full configuration; `reslab train --config` re-runs it | [`config`] |
//! | `metrics.csv` | a row per evaluation | [`metrics`] |
//! | `checkpoint.safetensors`, `checkpoint.prev.safetensors` | the newest and previous checkpoint | [`checkpoint`] |
//! | `model.safetensors` | final weights (PyTorch names) | [`crate::model::weights`] writes it here |
//! | `init.safetensors` | the initial weights, before the first step (the path from initialisation) | the same |
//! | `grad_norms.csv` | `--log-grads K`: gradient and weight norms of every layer every K iterations | [`grad_norms`] |
//! | `attempts.csv` | a row per start or resumption: host, PID, threads, start iteration | [`attempts`] |
//! | `events.out.tfevents.reslab` | the same rows' scalars for TensorBoard | [`events`] |
//! | `summary.toml` | written last: complete or diverged, final and mean errors; seed, precision, threads, versions, machine, start and end | [`summary`], [`provenance`] |
//! | `error.txt` | the last error of a run that failed (not of one interrupted); removed when it starts again | here |
//! | `mlflow.toml` | `--mlflow URI`: which MLflow run mirrors this one on each server, and the last row it has | [`crate::tracking::mlflow`] |
//! | `.lock` | host and PID of the process writing the directory, kept fresh | [`lock`] |
//! | `steps/` | `train --dump-steps`: initial weights, batches, weights after K steps | `crate::train::step_dump` |

pub mod attempts;
pub mod checkpoint;
pub mod config;
pub mod device;
pub mod digests;
pub mod events;
pub mod grad_norms;
pub mod identity;
pub mod lock;
pub mod metrics;
pub mod provenance;
pub mod settings;
pub mod state;
pub mod summary;

pub use config::RunConfig;
pub use state::RunState;
pub use summary::{RunStatus, RunSummary};

use crate::model::weights::{self, Expected, WeightsMetadata};
use crate::model::Model;
use crate::model::{Kernels, Precision};
use anyhow::{bail, Context, Result};
use config::Undecided;
use identity::Leeway;
use lock::RunLock;
use std::path::PathBuf;

/// The run's configuration, written when it starts.
pub const CONFIG_FILE: &str = "config.toml";
/// The final weights, written when it completes.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The initial weights, written when a run starts from scratch (runs of reslab before 0.x
/// lack it: their initialisation is rebuilt from the seed, see [`RunDir::load_initial_model`]).
pub const INIT_WEIGHTS_FILE: &str = "init.safetensors";
/// What the run ended with, written last ([`RunSummary`]).
pub const SUMMARY_FILE: &str = "summary.toml";
/// Where `train --dump-steps` writes its per-step tensors.
pub const STEPS_DIR: &str = "steps";
/// The error a failed run stopped with, one line.
pub const ERROR_FILE: &str = "error.txt";

/// The paths of one run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    /// The directory.
    pub path: PathBuf,
}

impl RunDir {
    /// The run directory at `path` (nothing is created).
    pub fn new(path: impl Into<PathBuf>) -> RunDir {
        RunDir { path: path.into() }
    }

    /// The path of its `config.toml`.
    pub fn config(&self) -> PathBuf {
        self.path.join(CONFIG_FILE)
    }

    /// The path of its `metrics.csv`.
    pub fn metrics(&self) -> PathBuf {
        self.path.join(metrics::FILE_NAME)
    }

    /// The path of its final weights, `model.safetensors`.
    pub fn weights(&self) -> PathBuf {
        self.path.join(WEIGHTS_FILE)
    }

    /// The path of its initial weights, `init.safetensors`.
    pub fn init_weights(&self) -> PathBuf {
        self.path.join(INIT_WEIGHTS_FILE)
    }

    /// Creates the directory and takes its lock: the one process writing it.
    pub fn lock(&self) -> Result<RunLock> {
        std::fs::create_dir_all(&self.path)
            .with_context(|| format!("creating run directory {}", self.path.display()))?;
        RunLock::acquire(&self.path)
    }

    /// Writes `config` as the directory's `config.toml`, with a header saying how to run it again.
    pub fn write_config(&self, config: &RunConfig) -> Result<()> {
        let command = match config.world_size {
            1 => "reslab train".to_string(),
            n => format!("reslab launch --nproc {n} -- train"),
        };
        let header = format!(
            "# reslab {} run of {}. Re-run (or resume) it with: {command} --config {CONFIG_FILE} --out DIR\n",
            env!("CARGO_PKG_VERSION"),
            config.model,
        );
        crate::util::fs::write_file(&self.config(), (header + &config.to_toml()).as_bytes())
    }

    /// Removes the results of an earlier attempt that a run started from scratch replaces
    /// (its summary and weights), so that nothing stale looks complete. Its MLflow mirror stays:
    /// the attempt recorded after this makes the next sync a new MLflow run (and the old one killed).
    pub fn clear_results(&self) {
        for stale in [SUMMARY_FILE, WEIGHTS_FILE, INIT_WEIGHTS_FILE] {
            let _ = std::fs::remove_file(self.path.join(stale));
        }
    }

    /// The summary of a complete run already here with exactly this configuration; an error
    /// if the directory holds a run of another configuration it would lose (complete, or with a
    /// checkpoint), or one modified after it completed.
    pub fn complete_run(&self, config: &RunConfig) -> Result<Option<RunSummary>> {
        match RunState::read_as(&self.path, config, Leeway::NONE) {
            RunState::Complete(summary) => {
                lock::clear_stale(&self.path);
                Ok(Some(*summary))
            }
            // A checkpoint of another configuration explains itself when the trainer reads it.
            RunState::Foreign { recorded, .. }
                if !matches!(*recorded, RunState::Complete(_) | RunState::Diverged(_)) =>
            {
                Ok(None)
            }
            state if state.needs_attention() => bail!(state.refusal(&self.path)),
            _ => Ok(None),
        }
    }

    /// The precision and kernels of the run already here, if it is this run but for what `auto`
    /// leaves free: what `--precision auto` and `--kernels auto` keep, so that a run made in fp32
    /// with exact kernels (or before the settings existed) resumes so where `auto` now means bf16
    /// or fused.
    pub fn choices_of_same_run(&self, config: &RunConfig, auto: Undecided) -> Option<(Precision, Kernels)> {
        let existing = RunConfig::load(&self.config()).ok()?;
        let same = existing.difference(config, Leeway::of_auto(auto)).is_none();
        same.then_some((existing.precision, existing.kernels))
    }

    /// Checks that the run here is not one modified after it completed, before its files are read.
    pub fn ensure_unmodified(&self) -> Result<()> {
        match RunState::read(&self.path) {
            state @ RunState::Modified { .. } => bail!(state.refusal(&self.path)),
            _ => Ok(()),
        }
    }

    /// The run's final model: its configuration's network with its saved weights (on the CPU).
    pub fn load_model(&self) -> Result<Model> {
        self.ensure_unmodified()?;
        let config = RunConfig::load(&self.config())?;
        let mut spec = config.model.clone();
        if spec.num_classes.is_none() {
            spec.num_classes = Some(weights::classes_in(&self.weights())?);
        }
        let mut model = Model::new(&spec, tch::Device::Cpu)?;
        weights::load(&mut model, &self.weights(), Expected::Run(&self.config()))?;
        Ok(model)
    }

    /// Refuses the run's weights files (final and initial) that name another network than its
    /// configuration, from their headers alone: for commands that read several runs, before the
    /// first is computed or anything written.
    pub fn check_weights(&self) -> Result<()> {
        let config = RunConfig::load(&self.config())?;
        for file in [self.weights(), self.init_weights()].iter().filter(|f| f.is_file()) {
            weights::check(file, &config.model, Expected::Run(&self.config()))?;
        }
        Ok(())
    }

    /// The run's final model ([`RunDir::load_model`]) and its weights' metadata: the file's own,
    /// or, for a run of a reslab before metadata, its configuration's (`export --run`).
    pub fn load_model_with_metadata(&self) -> Result<(Model, WeightsMetadata)> {
        let model = self.load_model()?;
        let metadata = match weights::read_metadata(&self.weights())? {
            Some(metadata) => metadata,
            None => RunConfig::load(&self.config())?.weights_metadata(&model.spec),
        };
        Ok((model, metadata))
    }

    /// The run's initial model (on the CPU) and where it came from: its saved `init.safetensors`,
    /// or, for runs without one, rebuilt from its seed as the trainer builds it (the same weights
    /// bit for bit for a run that started on the CPU; a GPU's generator draws other numbers).
    /// `spec` is the run's network as [`RunDir::load_model`] built it.
    pub fn load_initial_model(&self, spec: &crate::model::ModelSpec) -> Result<(Model, InitialWeights)> {
        if self.init_weights().is_file() {
            let mut model = Model::new(spec, tch::Device::Cpu)?;
            weights::load(&mut model, &self.init_weights(), Expected::Run(&self.config()))?;
            return Ok((model, InitialWeights::Saved));
        }
        let seed = RunConfig::load(&self.config())?.seed;
        Ok((crate::model::fresh(spec, seed)?, InitialWeights::Rebuilt { seed }))
    }
}

/// Where a run's initial weights came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialWeights {
    /// Its `init.safetensors`.
    Saved,
    /// Rebuilt from its seed (the run has no `init.safetensors`).
    Rebuilt {
        /// The run's seed.
        seed: u64,
    },
}

impl std::fmt::Display for InitialWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InitialWeights::Saved => write!(f, "saved ({INIT_WEIGHTS_FILE})"),
            InitialWeights::Rebuilt { seed } => write!(f, "rebuilt from seed {seed}"),
        }
    }
}
