//! What a user asks to train, and the one place that turns it into a run: its final
//! configuration (precision resolved on this machine, validated) with its run directory.
//!
//! Every way of starting a run comes through [`RunRequest::resolve`]: `reslab train` with
//! options, `--config` or `--resume`, the experiment planner (each planned run), the local and
//! Slurm runners (through the planner) and `reproduce paper`. A [`Run`] can only be made here,
//! so a configuration the trainer receives has always been resolved and validated once, and is
//! never changed after.

use super::auto_precision::training_precision;
use crate::data::DataConfig;
use crate::model::ModelSpec;
use crate::model::Precision;
use crate::run::config::{DeviceChoice, PrecisionChoice, TrainOptions};
use crate::run::identity::Leeway;
use crate::run::settings::{self, Setting};
use crate::run::{RunConfig, RunDir, RunState};
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
    /// `--device`: where the run computes; `None`: a configuration file's own (a runner's handed-on
    /// file carries the study's), `auto` for a resumed run (the device it ran on is history).
    pub device: Option<DeviceChoice>,
    /// When `auto` precision is decided.
    pub auto_precision: AutoPrecision,
    /// `--set KEY=VALUE`s (and a grid point's), applied in order to a new run or a configuration
    /// file's; a resumed run keeps its own.
    pub settings: Vec<Setting>,
}

/// When `--precision auto` is decided: where the run is trained, because that is the machine
/// whose speed decides it (a Slurm node, a local job with its share of the cores).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoPrecision {
    /// Now, in this process (`reslab train`): from the cache, or by a probe.
    #[default]
    Decide,
    /// In the process that trains the run (the planner: the runners hand the run on with
    /// `precision = "auto"`, [`Run::handed_on_toml`]); fp32 until then.
    AtRunStart,
}

/// A resolved run: its final configuration and its directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    config: RunConfig,
    dir: RunDir,
    precision_note: Option<String>,
    /// `auto` precision, left to the process that trains the run.
    precision_pending: bool,
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

    /// Whether the precision is still to be decided where the run starts
    /// ([`AutoPrecision::AtRunStart`]).
    pub fn precision_pending(&self) -> bool {
        self.precision_pending
    }

    /// What `dir` holds, judged against this run: while the precision is pending (`auto`), a
    /// run of either precision is this run, as `auto` keeps a run's own.
    pub fn state_in(&self, dir: &RunDir) -> RunState {
        RunState::read_as(&dir.path, &self.config, self.leeway())
    }

    /// What may differ in a directory's run that is this one: the precision while it is pending
    /// (`auto` keeps a run's own).
    pub fn leeway(&self) -> Leeway {
        if self.precision_pending {
            Leeway::PRECISION
        } else {
            Leeway::NONE
        }
    }

    /// What the run's own directory holds, judged against this run ([`Self::state_in`]).
    pub fn state(&self) -> RunState {
        self.state_in(&self.dir)
    }

    /// This run with a pending `auto` precision decided in this process, which trains it (the
    /// local runner's one-at-a-time path); itself otherwise.
    pub fn decided_here(&self) -> Result<Run> {
        if !self.precision_pending {
            return Ok(self.clone());
        }
        let (precision, why) = precision_for(PrecisionChoice::Auto, &self.config)?;
        let config = RunConfig { precision, ..self.config.clone() };
        config.validate()?;
        Ok(Run { config, dir: self.dir.clone(), precision_note: Some(why), precision_pending: false })
    }

    /// The configuration file a runner hands to the process that trains the run
    /// (`reslab train --config`): `precision = "auto"` while it is pending.
    pub fn handed_on_toml(&self) -> String {
        let choice = if self.precision_pending { PrecisionChoice::Auto } else { self.config.precision.into() };
        self.config.to_planned_toml(choice)
    }
}

impl RunRequest {
    /// A new run of `model` on `data` with `options`, in `out` (or the default directory).
    pub fn new(model: ModelSpec, data: DataConfig, options: TrainOptions) -> RunRequest {
        RunRequest::from_source(RunSource::New { model, data, options })
    }

    /// The request from `source`, with nothing else changed.
    pub fn from_source(source: RunSource) -> RunRequest {
        RunRequest {
            source,
            out: None,
            log_grads: None,
            world_size: None,
            device: None,
            auto_precision: AutoPrecision::Decide,
            settings: Vec::new(),
        }
    }

    /// The run in `out`.
    pub fn in_dir(self, out: impl Into<PathBuf>) -> RunRequest {
        RunRequest { out: Some(out.into()), ..self }
    }

    /// The final configuration and directory: the source read or built, `auto` precision decided
    /// (a run already in the directory keeps its own), the recording and world applied, and the
    /// whole validated.
    pub fn resolve(self) -> Result<Run> {
        let resuming = matches!(self.source, RunSource::Resume(_));
        let (config, out, choice) = match self.source {
            RunSource::Resume(dir) => {
                if let Some(setting) = self.settings.first() {
                    anyhow::bail!(
                        "--set {setting} with --resume: a resumed run keeps its configuration; expected a new run \
                         (--config {}/config.toml --set ... --out NEW_DIR)",
                        dir.display()
                    );
                }
                (RunConfig::load(&RunDir::new(&dir).config())?, Some(dir), None)
            }
            RunSource::ConfigFile(path) => {
                let (config, choice) = RunConfig::load_planned(&path)?;
                (config, self.out, (choice == PrecisionChoice::Auto).then_some(choice))
            }
            RunSource::New { model, data, options } => {
                (RunConfig::of_options(model, data, &options, Precision::Fp32), self.out, Some(options.precision))
            }
        };
        // The run trains in this process: bad data is one line now, before a probe or a directory.
        if self.auto_precision == AutoPrecision::Decide {
            config.data.ensure_present()?;
        }
        for setting in &self.settings {
            setting.check_fits(&config.model)?;
        }
        let mut config = settings::apply(&config, &self.settings)?;
        let dir = RunDir::new(out.unwrap_or_else(|| PathBuf::from(format!("results/train-{}", config.model.name()))));
        if let Some(every) = self.log_grads {
            anyhow::ensure!(every > 0, "--log-grads 0: expected a positive number of iterations between records");
            config.log_grads = every;
        }
        if let Some(size) = self.world_size {
            config.world_size = size;
        }
        config.device = match self.device {
            Some(device) => device,
            None if resuming => DeviceChoice::Auto,
            None => config.device,
        };
        if self.auto_precision == AutoPrecision::Decide {
            // A device that is not here: one line now, before a probe or a directory.
            config.device.resolve()?;
        }
        let mut precision_pending = false;
        let precision_note = match choice {
            None => None,
            Some(choice) => {
                let kept = (choice == PrecisionChoice::Auto).then(|| dir.precision_of_same_run(&config)).flatten();
                let (precision, why) = match kept {
                    Some(kept) => (kept, format!("{kept} (auto: kept from the run already in {})", dir.path.display())),
                    None if choice == PrecisionChoice::Auto && self.auto_precision == AutoPrecision::AtRunStart => {
                        precision_pending = true;
                        (Precision::Fp32, "auto: decided where the run starts".into())
                    }
                    // Every rank of a data-parallel run must train in the same precision, and a
                    // probe on each could disagree.
                    None if choice == PrecisionChoice::Auto && config.world_size > 1 => (
                        Precision::Fp32,
                        "fp32 (auto: a data-parallel run's ranks must agree; --precision bf16 forces bf16)".into(),
                    ),
                    None => precision_for(choice, &config)?,
                };
                config.precision = precision;
                Some(why)
            }
        };
        config.validate()?;
        Ok(Run { config, dir, precision_note, precision_pending })
    }
}

/// The precision `choice` gives a run of `config` (its net, batch, threads and layout), and why.
fn precision_for(choice: PrecisionChoice, config: &RunConfig) -> Result<(Precision, String)> {
    let device = config.device.resolve()?;
    training_precision(choice, &config.model, config.optim.batch_size, config.threads, config.channels_last, device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::DataSource;
    use crate::run::config::OptimConfig;

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
        // (Left to the run's start, so the test measures nothing.)
        let other = RunRequest { auto_precision: AutoPrecision::AtRunStart, ..other.in_dir(dir.path()) };
        let other = other.resolve().unwrap();
        assert_eq!(other.config().precision, Precision::Fp32, "another run does not take it");
        assert!(other.precision_pending());
        assert!(other.handed_on_toml().contains("precision = \"auto\""), "{}", other.handed_on_toml());
        assert!(!same.precision_pending());
        assert!(same.handed_on_toml().contains("precision = \"bf16\""));
    }

    #[test]
    fn a_handed_on_auto_is_decided_where_the_run_starts_and_a_plain_config_refuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let planned = RunRequest { auto_precision: AutoPrecision::AtRunStart, ..request(PrecisionChoice::Auto) };
        let planned = planned.resolve().unwrap();
        let file = dir.path().join("planned.toml");
        std::fs::write(&file, planned.handed_on_toml()).unwrap();
        let (config, choice) = RunConfig::load_planned(&file).unwrap();
        assert_eq!((config.precision, choice), (Precision::Fp32, PrecisionChoice::Auto));
        let err = RunConfig::load(&file).unwrap_err().to_string();
        assert!(err.contains("not decided yet"), "{err}");
        // A data-parallel run's ranks agree without measuring.
        let ranks = RunRequest { world_size: Some(2), ..RunRequest::from_source(RunSource::ConfigFile(file)) };
        let ranks = ranks.resolve().unwrap();
        assert_eq!(ranks.config().precision, Precision::Fp32);
        assert!(ranks.precision_note().unwrap().contains("ranks must agree"));
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
