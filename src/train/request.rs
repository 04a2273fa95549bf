//! What a user asks to train, and the one place that turns it into a run: its final
//! configuration (precision and kernels resolved on this machine, validated) with its run
//! directory.
//!
//! Every way of starting a run comes through [`RunRequest::resolve`]: `reslab train` with
//! options, `--config` or `--resume`, the experiment planner (each planned run), the local and
//! Slurm runners (through the planner) and `reproduce paper`. A [`Run`] can only be made here,
//! so a configuration the trainer receives has always been resolved and validated once, and is
//! never changed after.

use super::auto_precision::{training_choice, Choice};
use crate::data::DataConfig;
use crate::model::ModelSpec;
use crate::model::{Kernels, Precision};
use crate::run::config::{DeviceChoice, KernelsChoice, PrecisionChoice, TrainOptions, Undecided};
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
    /// When `auto` precision and kernels are decided.
    pub auto_precision: AutoPrecision,
    /// `--set KEY=VALUE`s (and a grid point's), applied in order to a new run or a configuration
    /// file's; a resumed run keeps its own.
    pub settings: Vec<Setting>,
}

/// When `--precision auto` and `--kernels auto` are decided: where the run is trained, because
/// that is the machine whose speed decides them (a Slurm node, a local job with its share of the
/// cores).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoPrecision {
    /// Now, in this process (`reslab train`): from the cache, or by a probe.
    #[default]
    Decide,
    /// In the process that trains the run (the planner: the runners hand the run on with
    /// `precision = "auto"` and `kernels = "auto"`, [`Run::handed_on_toml`]); fp32 and exact
    /// until then.
    AtRunStart,
}

/// A resolved run: its final configuration and its directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    config: RunConfig,
    dir: RunDir,
    precision_note: Option<String>,
    kernels_note: Option<String>,
    /// `auto` choices left to the process that trains the run.
    pending: Undecided,
}

/// What a new run or a configuration file asks for its precision and kernels.
#[derive(Debug, Clone, Copy)]
struct Asked {
    precision: PrecisionChoice,
    kernels: KernelsChoice,
}

impl Asked {
    fn auto(self) -> Undecided {
        Undecided { precision: self.precision == PrecisionChoice::Auto, kernels: self.kernels == KernelsChoice::Auto }
    }
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

    /// For a new run: which kernels were chosen and why, for the user.
    pub fn kernels_note(&self) -> Option<&str> {
        self.kernels_note.as_deref()
    }

    /// Whether the precision is still to be decided where the run starts
    /// ([`AutoPrecision::AtRunStart`]).
    pub fn precision_pending(&self) -> bool {
        self.pending.precision
    }

    /// What is still to be decided where the run starts: its precision, its kernels.
    pub fn pending(&self) -> Undecided {
        self.pending
    }

    /// What `dir` holds, judged against this run: while the precision or kernels are pending
    /// (`auto`), a run of either is this run, as `auto` keeps a run's own.
    pub fn state_in(&self, dir: &RunDir) -> RunState {
        RunState::read_as(&dir.path, &self.config, self.leeway())
    }

    /// What may differ in a directory's run that is this one: the precision and kernels while
    /// they are pending (`auto` keeps a run's own).
    pub fn leeway(&self) -> Leeway {
        Leeway::of_auto(self.pending)
    }

    /// What the run's own directory holds, judged against this run ([`Self::state_in`]).
    pub fn state(&self) -> RunState {
        self.state_in(&self.dir)
    }

    /// This run with pending `auto` choices decided in this process, which trains it (the
    /// local runner's one-at-a-time path); itself otherwise.
    pub fn decided_here(&self) -> Result<Run> {
        if !self.pending.any() {
            return Ok(self.clone());
        }
        let asked = Asked {
            precision: if self.pending.precision { PrecisionChoice::Auto } else { self.config.precision.into() },
            kernels: if self.pending.kernels { KernelsChoice::Auto } else { self.config.kernels.into() },
        };
        let choice = choice_for(asked, &self.config)?;
        let config = RunConfig { precision: choice.precision, kernels: choice.kernels, ..self.config.clone() };
        config.validate()?;
        let (precision_note, kernels_note) = (Some(choice.precision_note), Some(choice.kernels_note));
        Ok(Run { config, dir: self.dir.clone(), precision_note, kernels_note, pending: Undecided::NONE })
    }

    /// The configuration file a runner hands to the process that trains the run
    /// (`reslab train --config`): `precision = "auto"` and `kernels = "auto"` while pending.
    pub fn handed_on_toml(&self) -> String {
        self.config.to_planned_toml(self.pending)
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

    /// The final configuration and directory: the source read or built, `auto` precision and
    /// kernels decided (a run already in the directory keeps its own), the recording and world
    /// applied, and the whole validated.
    pub fn resolve(self) -> Result<Run> {
        let resuming = matches!(self.source, RunSource::Resume(_));
        let (config, out, asked) = match self.source {
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
                let (config, undecided) = RunConfig::load_planned(&path)?;
                let asked = Asked {
                    precision: if undecided.precision { PrecisionChoice::Auto } else { config.precision.into() },
                    kernels: if undecided.kernels { KernelsChoice::Auto } else { config.kernels.into() },
                };
                (config, self.out, undecided.any().then_some(asked))
            }
            RunSource::New { model, data, options } => {
                let asked = Asked { precision: options.precision, kernels: options.kernels };
                (RunConfig::of_options(model, data, &options, Precision::Fp32), self.out, Some(asked))
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
        let mut pending = Undecided::NONE;
        let (precision_note, kernels_note) = match asked {
            None => (None, None),
            Some(asked) => {
                let auto = asked.auto();
                // What is forced first: the run already in the directory is compared on it.
                if let PrecisionChoice::Fp32 | PrecisionChoice::Bf16 = asked.precision {
                    config.precision =
                        if asked.precision == PrecisionChoice::Bf16 { Precision::Bf16 } else { Precision::Fp32 };
                }
                if let KernelsChoice::Exact | KernelsChoice::Fused = asked.kernels {
                    config.kernels =
                        if asked.kernels == KernelsChoice::Fused { Kernels::Fused } else { Kernels::Exact };
                }
                let kept = auto.any().then(|| dir.choices_of_same_run(&config, auto)).flatten();
                let choice = match kept {
                    Some((precision, kernels)) => {
                        let kept = format!("auto: kept from the run already in {}", dir.path.display());
                        Choice {
                            precision,
                            kernels,
                            precision_note: note(auto.precision, precision, &kept),
                            kernels_note: note(auto.kernels, kernels, &kept),
                        }
                    }
                    None if auto.any() && self.auto_precision == AutoPrecision::AtRunStart => {
                        pending = auto;
                        let later = "auto: decided where the run starts";
                        Choice {
                            precision: config.precision,
                            kernels: config.kernels,
                            precision_note: if auto.precision {
                                later.into()
                            } else {
                                note(false, config.precision, "")
                            },
                            kernels_note: if auto.kernels { later.into() } else { note(false, config.kernels, "") },
                        }
                    }
                    // Every rank of a data-parallel run must train alike, and a probe on each
                    // could disagree.
                    None if auto.any() && config.world_size > 1 => Choice {
                        precision: config.precision,
                        kernels: config.kernels,
                        precision_note: note(
                            auto.precision,
                            config.precision,
                            "auto: a data-parallel run's ranks must agree; --precision bf16 forces bf16",
                        ),
                        kernels_note: note(
                            auto.kernels,
                            config.kernels,
                            "auto: a data-parallel run's ranks must agree; --kernels fused forces fused",
                        ),
                    },
                    None => choice_for(asked, &config)?,
                };
                config.precision = choice.precision;
                config.kernels = choice.kernels;
                (Some(choice.precision_note), Some(choice.kernels_note))
            }
        };
        config.validate()?;
        if config.kernels == Kernels::Fused && self.auto_precision == AutoPrecision::Decide {
            anyhow::ensure!(
                !config.device.resolve()?.is_cuda(),
                "--kernels fused on a GPU: the fused kernels are the CPU's; expected --kernels exact or auto"
            );
        }
        Ok(Run { config, dir, precision_note, kernels_note, pending })
    }
}

/// A choice's note: `value (why)` for an `auto` one, `value, as asked` for a forced one.
fn note(auto: bool, value: impl std::fmt::Display, why: &str) -> String {
    if auto {
        format!("{value} ({why})")
    } else {
        format!("{value}, as asked")
    }
}

/// The precision and kernels `asked` gives a run of `config` (its net, batch, threads, layout
/// and device), and why.
fn choice_for(asked: Asked, config: &RunConfig) -> Result<Choice> {
    let device = config.device.resolve()?;
    let (batch, threads) = (config.optim.batch_size, config.threads);
    training_choice(asked.precision, asked.kernels, &config.model, batch, threads, config.channels_last, device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::DataSource;
    use crate::run::config::OptimConfig;

    fn request(precision: PrecisionChoice) -> RunRequest {
        // Exact kernels: a unit test measures nothing (`kernels` below asks for `auto`).
        let options =
            TrainOptions { iters: 100, seed: 3, precision, kernels: KernelsChoice::Exact, ..TrainOptions::default() };
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
        let (config, undecided) = RunConfig::load_planned(&file).unwrap();
        assert_eq!((config.precision, undecided), (Precision::Fp32, Undecided { precision: true, kernels: false }));
        let err = RunConfig::load(&file).unwrap_err().to_string();
        assert!(err.contains("not decided yet"), "{err}");
        // A data-parallel run's ranks agree without measuring.
        let ranks = RunRequest { world_size: Some(2), ..RunRequest::from_source(RunSource::ConfigFile(file)) };
        let ranks = ranks.resolve().unwrap();
        assert_eq!(ranks.config().precision, Precision::Fp32);
        assert!(ranks.precision_note().unwrap().contains("ranks must agree"));
    }

    /// `request` with `--kernels`.
    fn with_kernels(precision: PrecisionChoice, kernels: KernelsChoice) -> RunRequest {
        let mut request = request(precision);
        if let RunSource::New { options, .. } = &mut request.source {
            options.kernels = kernels;
        }
        request
    }

    #[test]
    fn auto_kernels_keep_the_kernels_of_the_same_run_and_are_handed_on_undecided() {
        let dir = tempfile::tempdir().unwrap();
        let fused = with_kernels(PrecisionChoice::Fp32, KernelsChoice::Fused).in_dir(dir.path()).resolve().unwrap();
        assert_eq!((fused.config().kernels, fused.kernels_note()), (Kernels::Fused, Some("fused, as asked")));
        assert!(fused.config().to_toml().contains("kernels = \"fused\""));
        RunDir::new(dir.path()).write_config(fused.config()).unwrap();
        // Resumed with auto: the run keeps its kernels (no probe).
        let same = with_kernels(PrecisionChoice::Fp32, KernelsChoice::Auto).in_dir(dir.path()).resolve().unwrap();
        assert_eq!(same.config().kernels, Kernels::Fused);
        assert!(
            same.kernels_note().unwrap().contains("auto: kept from the run already in"),
            "{:?}",
            same.kernels_note()
        );
        // Forced exact into the fused run's directory: another run.
        let exact = with_kernels(PrecisionChoice::Fp32, KernelsChoice::Exact).in_dir(dir.path()).resolve().unwrap();
        assert_eq!(exact.config().difference(fused.config(), Leeway::NONE).unwrap().key, "kernels");
        // Planned: decided where the run starts, written as auto.
        let planned = RunRequest {
            auto_precision: AutoPrecision::AtRunStart,
            ..with_kernels(PrecisionChoice::Fp32, KernelsChoice::Auto)
        };
        let planned = planned.resolve().unwrap();
        assert_eq!(planned.pending(), Undecided { precision: false, kernels: true });
        let text = planned.handed_on_toml();
        assert!(text.contains("kernels = \"auto\"") && text.contains("precision = \"fp32\""), "{text}");
        let file = dir.path().join("planned.toml");
        std::fs::write(&file, text).unwrap();
        let err = RunConfig::load(&file).unwrap_err().to_string();
        assert!(err.contains("kernels = \"auto\" is not decided yet"), "{err}");
        // Fused kernels need channels-last.
        let mut first_layout = with_kernels(PrecisionChoice::Fp32, KernelsChoice::Fused);
        if let RunSource::New { options, .. } = &mut first_layout.source {
            options.channels_last = false;
        }
        let err = format!("{:#}", first_layout.resolve().unwrap_err());
        assert!(err.contains("the fused kernels are channels-last"), "{err}");
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
