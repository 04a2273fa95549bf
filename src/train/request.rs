//! What a user asks to train, and the one place that turns it into a run: its final
//! configuration (precision resolved on this machine, validated) with its run directory.
//!
//! Every way of starting a run comes through [`RunRequest::resolve`]: `reslab train` with
//! options, `--config` or `--resume`, the experiment planner (each planned run), the local and
//! Slurm runners (through the planner) and `reproduce paper`. A [`Run`] can only be made here,
//! so a configuration the trainer receives has always been resolved and validated once, and is
//! never changed after.

use super::runtime;
use crate::data::DataConfig;
use crate::model::ModelSpec;
use crate::run::config::{OptimConfig, Precision, PrecisionChoice, ScheduleConfig, TrainOptions, Warmup};
use crate::run::{RunConfig, RunDir};
use anyhow::Result;
use std::path::PathBuf;

/// Where a run's configuration comes from.
#[derive(Debug, Clone)]
pub enum RunSource {
    /// A new run of `model` on `data` with `options`.
    New {
        /// The network.
        model: ModelSpec,
        /// The data and its preparation.
        data: DataConfig,
        /// Schedule, optimiser and run settings.
        options: TrainOptions,
    },
    /// The configuration of an earlier run (its `config.toml`), run again.
    ConfigFile(PathBuf),
    /// The run in this directory, continued from its last checkpoint.
    Resume(PathBuf),
}

/// A run as asked for, before it is resolved.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Where the configuration comes from.
    pub source: RunSource,
    /// The run directory; default `results/train-<model>` (a resumed run stays in its own).
    pub out: Option<PathBuf>,
    /// Record gradient norms every this many iterations (a recording, not part of the run).
    pub log_grads: Option<usize>,
    /// The data parallel world the run is trained by (`train --distributed`), whatever the
    /// source says.
    pub world_size: Option<usize>,
}

/// A resolved run: its final configuration and its directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    config: RunConfig,
    dir: RunDir,
    precision_note: Option<String>,
}

impl Run {
    /// The run's final configuration.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// The run's directory.
    pub fn dir(&self) -> &RunDir {
        &self.dir
    }

    /// For a new run: which precision was chosen and why, for the user.
    pub fn precision_note(&self) -> Option<&str> {
        self.precision_note.as_deref()
    }
}

impl RunRequest {
    /// A new run of `model` on `data` with `options`, in `out` (or the default directory).
    pub fn new(model: ModelSpec, data: DataConfig, options: TrainOptions) -> RunRequest {
        RunRequest { source: RunSource::New { model, data, options }, out: None, log_grads: None, world_size: None }
    }

    /// The request from `source`, with nothing else changed.
    pub fn from_source(source: RunSource) -> RunRequest {
        RunRequest { source, out: None, log_grads: None, world_size: None }
    }

    /// The run in `out`.
    pub fn in_dir(self, out: impl Into<PathBuf>) -> RunRequest {
        RunRequest { out: Some(out.into()), ..self }
    }

    /// The final configuration and directory: the source read or built, `auto` precision decided
    /// (a run already in the directory keeps its own), the recording and world applied, and the
    /// whole validated.
    pub fn resolve(self) -> Result<Run> {
        let (mut config, out, choice) = match self.source {
            RunSource::Resume(dir) => (RunConfig::load(&RunDir::new(&dir).config())?, Some(dir), None),
            RunSource::ConfigFile(path) => (RunConfig::load(&path)?, self.out, None),
            RunSource::New { model, data, options } => {
                let (precision, why) = options.precision.resolve(runtime::device());
                (config_of(model, data, &options, precision), self.out, Some((options.precision, why)))
            }
        };
        let dir = RunDir::new(out.unwrap_or_else(|| PathBuf::from(format!("results/train-{}", config.model.name()))));
        if let Some(every) = self.log_grads {
            anyhow::ensure!(every > 0, "--log-grads 0: expected a positive number of iterations between records");
            config.log_grads = every;
        }
        if let Some(size) = self.world_size {
            config.world_size = size;
        }
        let precision_note = choice.map(|(choice, mut why)| {
            if choice == PrecisionChoice::Auto {
                if let Some(kept) = dir.precision_of_same_run(&config) {
                    if kept != config.precision {
                        why = format!("{kept} (auto: kept from the run already in {})", dir.path.display());
                    }
                    config.precision = kept;
                }
            }
            why
        });
        config.validate()?;
        Ok(Run { config, dir, precision_note })
    }
}

/// The configuration of a new run of `model` on `data` with `options`, in `precision`: the
/// paper's protocol where the options say nothing.
fn config_of(model: ModelSpec, data: DataConfig, options: &TrainOptions, precision: Precision) -> RunConfig {
    let iters = options.iters;
    let eval_every = options.eval_every.unwrap_or(iters.div_ceil(64)).min(iters.max(1));
    let mut schedule = ScheduleConfig::paper_shape(iters, eval_every);
    if let Some(steps) = &options.lr_steps {
        schedule.lr_steps = steps.clone();
    }
    if options.warmup {
        schedule.warmup = Some(Warmup::default());
    }
    RunConfig {
        model,
        data,
        optim: OptimConfig { lr: options.lr, batch_size: options.batch_size, ..OptimConfig::default() },
        schedule,
        seed: options.seed,
        threads: options.threads,
        channels_last: options.channels_last,
        precision,
        checkpoint_every: options.checkpoint_every,
        log_grads: options.log_grads,
        world_size: options.world_size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::DataSource;

    fn request(precision: PrecisionChoice) -> RunRequest {
        let options = TrainOptions { iters: 100, seed: 3, precision, ..TrainOptions::default() };
        RunRequest::new("plain-20".parse().unwrap(), DataConfig::new(DataSource::Embedded), options)
    }

    #[test]
    fn a_new_run_gets_the_papers_protocol_and_the_default_directory() {
        let run = request(PrecisionChoice::Fp32).resolve().unwrap();
        assert_eq!(run.dir().path, PathBuf::from("results/train-plain-20"));
        assert_eq!(run.config().schedule.lr_steps, vec![50, 75]);
        assert_eq!(run.config().schedule.eval_every, 2);
        assert_eq!(run.config().optim, OptimConfig { batch_size: 128, ..OptimConfig::default() });
        assert_eq!(run.precision_note(), Some("fp32, as asked"));
    }

    #[test]
    fn auto_keeps_the_precision_of_the_same_run_already_in_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let existing = request(PrecisionChoice::Bf16).in_dir(dir.path()).resolve().unwrap();
        RunDir::new(dir.path()).write_config(existing.config()).unwrap();
        let same = request(PrecisionChoice::Auto).in_dir(dir.path()).resolve().unwrap();
        assert_eq!(same.config().precision, Precision::Bf16, "the run in the directory keeps its precision");
        let mut other = request(PrecisionChoice::Auto);
        if let RunSource::New { options, .. } = &mut other.source {
            options.seed = 4;
        }
        let other = other.in_dir(dir.path()).resolve().unwrap();
        let here = PrecisionChoice::Auto.resolve(runtime::device()).0;
        assert_eq!(other.config().precision, here, "another run does not take it");
    }

    #[test]
    fn a_resumed_run_keeps_its_configuration_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        let first = request(PrecisionChoice::Fp32).in_dir(dir.path()).resolve().unwrap();
        RunDir::new(dir.path()).write_config(first.config()).unwrap();
        let resumed = RunRequest::from_source(RunSource::Resume(dir.path().into())).resolve().unwrap();
        assert_eq!(resumed.config(), first.config());
        assert_eq!(resumed.dir().path, dir.path());
        assert_eq!(resumed.precision_note(), None);
    }

    #[test]
    fn the_world_and_the_recording_apply_to_any_source_and_are_validated() {
        let run = RunRequest { world_size: Some(2), log_grads: Some(5), ..request(PrecisionChoice::Fp32) };
        let run = run.resolve().unwrap();
        assert_eq!((run.config().world_size, run.config().log_grads), (2, 5));
        let uneven = RunRequest { world_size: Some(3), ..request(PrecisionChoice::Fp32) };
        let err = format!("{:#}", uneven.resolve().unwrap_err());
        assert!(err.contains("does not divide among 3 processes"), "{err}");
        let never = RunRequest { log_grads: Some(0), ..request(PrecisionChoice::Fp32) };
        assert!(never.resolve().unwrap_err().to_string().contains("--log-grads 0"));
    }
}
