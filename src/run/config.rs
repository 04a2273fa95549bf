//! One typed configuration per component, nested into the run configuration that is saved as
//! `config.toml` in every run directory. Defaults are the paper's CIFAR-10 protocol.

pub use super::device::DeviceChoice;
use crate::data::DataConfig;
#[cfg(test)]
use crate::data::DataSource;
use crate::model::ModelSpec;
use crate::model::{Kernels, Precision};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The paper's CIFAR-10 schedule: 64k iterations.
pub const PAPER_ITERS: usize = 64_000;

/// Metrics rows over a run where the options do not say how often to evaluate (one every
/// 1,000 iterations of the paper's schedule).
pub const METRICS_ROWS: usize = 64;

/// SGD with momentum; weight decay is applied to every parameter, as in the paper's Caffe setup
/// and the PyTorch reproductions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Base learning rate (default 0.1).
    pub lr: f64,
    /// Momentum (default 0.9).
    pub momentum: f64,
    /// L2 weight decay (default 0.0001).
    pub weight_decay: f64,
    /// Images per batch, over every process (default 128).
    pub batch_size: usize,
}

/// Counted in iterations (mini-batches), as in the paper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Training iterations (64k in the paper).
    pub iters: usize,
    /// Iterations after which the learning rate is multiplied by `lr_decay`.
    pub lr_steps: Vec<usize>,
    /// The factor at each step of `lr_steps` (default 0.1).
    #[serde(default = "default_lr_decay")]
    pub lr_decay: f64,
    /// Evaluate on the evaluation set and write a metrics row every this many iterations.
    pub eval_every: usize,
    /// The paper's warm-up for very deep nets (110 layers): a small rate until training starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<Warmup>,
}

/// "We use 0.01 to warm up the training until the training error is below 80% (about 400
/// iterations), and then go back to 0.1" (Section 4.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Warmup {
    /// The warm-up learning rate (default 0.01).
    pub lr: f64,
    /// Percent; checked over every 20 batches.
    pub until_train_err: f64,
}

impl Default for Warmup {
    fn default() -> Self {
        Warmup { lr: 0.01, until_train_err: 80.0 }
    }
}

/// What a run is, saved as `config.toml`: model, data, optimiser, schedule and what else changes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The network.
    pub model: ModelSpec,
    /// The data and how it is prepared.
    pub data: DataConfig,
    /// SGD's settings; default the paper's.
    #[serde(default)]
    pub optim: OptimConfig,
    /// The schedule: length, learning-rate steps, evaluation interval.
    pub schedule: ScheduleConfig,
    /// Seeds torch's generator (initialisation) and the data order and augmentation streams.
    #[serde(default)]
    pub seed: u64,
    /// CPU threads for libtorch; 0 means one per core. Results are bit-identical only for the
    /// same thread count.
    #[serde(default)]
    pub threads: usize,
    /// Keep weights and activations channels-last (faster with oneDNN on CPUs).
    #[serde(default = "crate::util::yes")]
    pub channels_last: bool,
    /// The forward pass's arithmetic (runs made before this setting existed were fp32).
    #[serde(default)]
    pub precision: Precision,
    /// The kernels of the training step's BN, ReLU and additions (runs made before this setting
    /// existed were exact; an exact run's identity digest is what it was before the setting).
    #[serde(default)]
    pub kernels: Kernels,
    /// Write a checkpoint every this many iterations (and at the end); 0: at every metrics row.
    #[serde(default)]
    pub checkpoint_every: usize,
    /// Record every layer's gradient and weight norm every this many iterations to
    /// `grad_norms.csv`; 0: never. A recording: it changes nothing in the training.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub log_grads: usize,
    /// Processes training the run together (data parallel, `train --distributed`), each on its
    /// shard of every batch (`optim.batch_size` is the global batch). Part of what the run is:
    /// BN statistics are per process, so another world size is another run.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub world_size: usize,
    /// The device the run computes on: in a run directory the one it ran on (`cpu`, `cuda:0`: its
    /// latest start's; `attempts.csv` has every start's); `auto` in a planned configuration, and
    /// in runs made before the setting. How a run is executed, like `threads`: never part of what
    /// it is.
    #[serde(default, skip_serializing_if = "DeviceChoice::is_auto")]
    pub device: DeviceChoice,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

/// The learning rate's division at each step of the paper's schedule (by 10).
const LR_DECAY: f64 = 0.1;

fn default_lr_decay() -> f64 {
    LR_DECAY
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig { lr: 0.1, momentum: 0.9, weight_decay: 1e-4, batch_size: 128 }
    }
}

impl ScheduleConfig {
    /// The paper's schedule shape at any length: divide the learning rate by 10 at 1/2 and 3/4
    /// of the run (32k and 48k of 64k iterations).
    pub fn paper_shape(iters: usize, eval_every: usize) -> ScheduleConfig {
        ScheduleConfig { iters, lr_steps: vec![iters / 2, iters * 3 / 4], lr_decay: LR_DECAY, eval_every, warmup: None }
    }
}

/// Checks learning-rate steps a user gave (as iterations) against the run's length: a step the
/// run never reaches (or one at its start) would leave the schedule other than it reads.
pub fn check_lr_steps(steps: &[usize], iters: usize) -> Result<()> {
    let Some(step) = steps.iter().find(|step| !(1..iters).contains(*step)) else {
        return Ok(());
    };
    let room = match iters {
        0 | 1 => "none (a run this short has no room for one)".to_string(),
        _ => format!("iterations from 1 to {}", iters - 1),
    };
    bail!(
        "step {step} is outside the run's {iters} iterations; expected {room}, or --set lr_steps=[] for a constant \
         learning rate"
    )
}

/// What `--precision` may say: a precision, or `auto` (bf16 where the hardware makes it faster,
/// else fp32; decided by [`crate::train::request::RunRequest`], which alone resolves it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PrecisionChoice {
    /// bf16 where the hardware makes it faster, else fp32.
    #[default]
    Auto,
    /// Always fp32.
    Fp32,
    /// Always bf16.
    Bf16,
}

impl From<Precision> for PrecisionChoice {
    fn from(precision: Precision) -> Self {
        match precision {
            Precision::Fp32 => PrecisionChoice::Fp32,
            Precision::Bf16 => PrecisionChoice::Bf16,
        }
    }
}

/// What `--kernels` may say: exact (libtorch's ops, PyTorch's step bit for bit), fused, or `auto`
/// (fused where a probe measured it faster for this net here; decided with `auto` precision by
/// [`crate::train::request::RunRequest`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum KernelsChoice {
    /// Fused where the probe measured it faster, else exact.
    #[default]
    Auto,
    /// libtorch's ops, one after another: bit-identical to PyTorch's step.
    Exact,
    /// BN + ReLU and BN + addition + ReLU fused (CPU, channels-last).
    Fused,
}

impl From<Kernels> for KernelsChoice {
    fn from(kernels: Kernels) -> Self {
        match kernels {
            Kernels::Exact => KernelsChoice::Exact,
            Kernels::Fused => KernelsChoice::Fused,
        }
    }
}

/// The options that define one run besides its model and data, as `reslab train` and the
/// experiment planner choose them; everything else takes its component's default.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    /// Training iterations (default 64,000).
    pub iters: usize,
    /// Base learning rate (default 0.1).
    pub lr: f64,
    /// Iterations at which the learning rate is divided by 10; `None`: the paper's shape (1/2, 3/4).
    pub lr_steps: Option<Vec<usize>>,
    /// Global batch size (default 128).
    pub batch_size: usize,
    /// Iterations between metrics rows; `None`: 64 rows over the run.
    pub eval_every: Option<usize>,
    /// The run's seed (default 0).
    pub seed: u64,
    /// CPU threads for libtorch; 0 means one per core.
    pub threads: usize,
    /// Keep weights and activations channels-last (default on).
    pub channels_last: bool,
    /// `auto` is resolved on this machine when the run is requested.
    pub precision: PrecisionChoice,
    /// The training step's kernels; `auto` is resolved with the precision.
    pub kernels: KernelsChoice,
    /// The paper's warm-up for very deep nets (lr 0.01 until the training error is below 80%).
    pub warmup: bool,
    /// Iterations between checkpoints; 0: at every metrics row.
    pub checkpoint_every: usize,
    /// Iterations between gradient-norm recordings; 0: never.
    pub log_grads: usize,
    /// Data parallel processes (1: one process).
    pub world_size: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        let optim = OptimConfig::default();
        TrainOptions {
            iters: PAPER_ITERS,
            lr: optim.lr,
            lr_steps: None,
            batch_size: optim.batch_size,
            eval_every: None,
            seed: 0,
            threads: 0,
            channels_last: true,
            precision: PrecisionChoice::Auto,
            kernels: KernelsChoice::Auto,
            warmup: false,
            checkpoint_every: 0,
            log_grads: 0,
            world_size: 1,
        }
    }
}

impl RunConfig {
    /// The configuration of a new run of `model` on `data` with `options`, in `precision`: the
    /// paper's protocol where the options say nothing.
    pub fn of_options(model: ModelSpec, data: DataConfig, options: &TrainOptions, precision: Precision) -> RunConfig {
        let kernels = match options.kernels {
            KernelsChoice::Fused => Kernels::Fused,
            KernelsChoice::Exact | KernelsChoice::Auto => Kernels::Exact,
        };
        let iters = options.iters;
        let eval_every = options.eval_every.unwrap_or(iters.div_ceil(METRICS_ROWS)).min(iters.max(1));
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
            kernels,
            checkpoint_every: options.checkpoint_every,
            log_grads: options.log_grads,
            world_size: options.world_size,
            device: DeviceChoice::Auto,
        }
    }
}

impl RunConfig {
    /// Iterations between checkpoints.
    pub fn checkpoint_interval(&self) -> usize {
        if self.checkpoint_every == 0 {
            self.schedule.eval_every
        } else {
            self.checkpoint_every
        }
    }

    /// Checks what the types cannot: a clear error naming the field and what was expected.
    pub fn validate(&self) -> Result<()> {
        let s = &self.schedule;
        if s.iters == 0 {
            bail!("schedule.iters is 0; expected a positive number of iterations");
        }
        if s.eval_every == 0 {
            bail!("schedule.eval_every is 0; expected a positive number of iterations");
        }
        if let Some(step) = s.lr_steps.windows(2).find(|w| w[0] > w[1]) {
            bail!("schedule.lr_steps {:?} are not in increasing order (at {step:?})", s.lr_steps);
        }
        let o = &self.optim;
        if !(o.lr.is_finite() && o.lr > 0.0) {
            bail!("optim.lr is {}; expected a positive number", o.lr);
        }
        if !(0.0..1.0).contains(&o.momentum) {
            bail!("optim.momentum is {}; expected a value in [0, 1)", o.momentum);
        }
        if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
            bail!("optim.weight_decay is {}; expected a non-negative number", o.weight_decay);
        }
        if o.batch_size == 0 {
            bail!("optim.batch_size is 0; expected at least 1");
        }
        if self.kernels == Kernels::Fused && !self.channels_last {
            bail!(
                "kernels = \"fused\" with channels_last = false: the fused kernels are channels-last; expected \
                 kernels = \"exact\" or channels_last = true"
            );
        }
        if self.kernels == Kernels::Fused && matches!(self.device, DeviceChoice::Cuda(_)) {
            bail!(
                "kernels = \"fused\" on {}: the fused kernels are the CPU's; expected kernels = \"exact\"",
                self.device
            );
        }
        if self.world_size == 0 {
            bail!("world_size is 0; expected at least 1 process");
        }
        if !o.batch_size.is_multiple_of(self.world_size) {
            bail!(
                "the batch size {} does not divide among {} processes; expected a multiple of {} \
                 (the batch size is the global batch, shared equally)",
                o.batch_size,
                self.world_size,
                self.world_size
            );
        }
        crate::model::ModelSpec::new(self.model.family, self.model.kind, self.model.depth)?;
        self.model.validate()?;
        Ok(())
    }

    /// The configuration as TOML, as in `config.toml`.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a run config always serialises")
    }

    /// Parses and validates a configuration; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<RunConfig> {
        let config: RunConfig =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}: {}", origin.display(), one_line(&e.to_string())))?;
        config.validate().with_context(|| format!("{}", origin.display()))?;
        Ok(config)
    }

    /// Reads, parses and validates the `config.toml` at `path`.
    pub fn load(path: &Path) -> Result<RunConfig> {
        let (config, undecided) = Self::load_planned(path)?;
        if undecided.precision {
            anyhow::bail!("{}: precision = \"auto\" is not decided yet; expected fp32 or bf16", path.display());
        }
        if undecided.kernels {
            anyhow::bail!("{}: kernels = \"auto\" is not decided yet; expected exact or fused", path.display());
        }
        Ok(config)
    }

    /// A run as a runner hands it to the process that trains it: this configuration, with
    /// `precision = "auto"` and `kernels = "auto"` where `undecided` says they are to be decided
    /// where the run starts (a Slurm node, a local job with its share of the cores), not where it
    /// was planned.
    pub fn to_planned_toml(&self, undecided: Undecided) -> String {
        let text = self.to_toml();
        if !undecided.any() {
            return text;
        }
        let mut table: toml::Table = toml::from_str(&text).expect("a run config reads back");
        for (key, auto) in [("precision", undecided.precision), ("kernels", undecided.kernels)] {
            if auto {
                table.insert(key.into(), toml::Value::String("auto".into()));
            }
        }
        toml::to_string(&table).expect("a table serialises")
    }

    /// A configuration file that may say `precision = "auto"` or `kernels = "auto"`
    /// ([`Self::to_planned_toml`]): the configuration (fp32 and exact until decided) and what it
    /// leaves undecided.
    pub fn load_planned(path: &Path) -> Result<(RunConfig, Undecided)> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading run config {}", path.display()))?;
        let mut table: toml::Table =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), one_line(&e.to_string())))?;
        let mut auto = |key: &str, placeholder: &str| {
            let auto = table.get(key).and_then(toml::Value::as_str) == Some("auto");
            if auto {
                table.insert(key.into(), toml::Value::String(placeholder.into()));
            }
            auto
        };
        let undecided = Undecided { precision: auto("precision", "fp32"), kernels: auto("kernels", "exact") };
        let text = toml::to_string(&table).expect("a table serialises");
        Ok((Self::from_toml(&text, path)?, undecided))
    }
}

/// Which of a run's `auto` choices are still to be decided where it trains (a planned run's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Undecided {
    /// `precision = "auto"`.
    pub precision: bool,
    /// `kernels = "auto"`.
    pub kernels: bool,
}

impl Undecided {
    /// Both decided.
    pub const NONE: Undecided = Undecided { precision: false, kernels: false };

    /// Whether anything is left to decide.
    pub fn any(self) -> bool {
        self.precision || self.kernels
    }
}

/// toml's errors span several lines (with a source excerpt); users get one.
pub fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
impl RunConfig {
    /// A small valid configuration for unit tests.
    pub fn example() -> RunConfig {
        RunConfig {
            model: "plain-20".parse().unwrap(),
            data: DataConfig::new(DataSource::Embedded),
            optim: OptimConfig::default(),
            schedule: ScheduleConfig::paper_shape(64_000, 1000),
            seed: 3,
            threads: 2,
            channels_last: true,
            precision: Precision::Fp32,
            kernels: Kernels::Exact,
            checkpoint_every: 0,
            log_grads: 0,
            world_size: 1,
            device: DeviceChoice::Auto,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RunConfig {
        RunConfig::example()
    }

    #[test]
    fn the_paper_schedule_steps_at_32k_and_48k() {
        assert_eq!(config().schedule.lr_steps, vec![32_000, 48_000]);
    }

    #[test]
    fn a_config_round_trips_through_toml() {
        let c = config();
        let back = RunConfig::from_toml(&c.to_toml(), Path::new("config.toml")).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused_with_the_file_named() {
        let text = config().to_toml().replace("seed = 3", "seed = 3\nsed = 4");
        let err = RunConfig::from_toml(&text, Path::new("x.toml")).unwrap_err().to_string();
        assert!(err.contains("x.toml") && err.contains("sed"), "{err}");
        let text = config().to_toml().replace("lr = 0.1", "lr = -1.0");
        let err = format!("{:#}", RunConfig::from_toml(&text, Path::new("x.toml")).unwrap_err());
        assert!(err.contains("optim.lr"), "{err}");
    }
}
