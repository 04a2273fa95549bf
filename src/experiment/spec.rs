//! The experiment file format (see `experiments/*.toml`).

mod claim;
mod grid;
mod validate;

pub use claim::{ClaimTime, Expectation, Prediction};
pub use grid::grid_axes;

use super::preset::Preset;
use super::slurm::settings::SlurmSettings;
use crate::analysis::landscape::{Dims, LandscapeSettings};
use crate::data::{DataSource, EvalSet};
use crate::model::{BlockVariant, ModelOptions, Shortcut, Spelling};
use crate::run::config::one_line;
use crate::run::settings::{self, Axis, Setting};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The name `reproduce` and `plan` take for every study of the paper at once (`reslab reproduce paper`).
pub const PAPER: &str = "paper";

/// The experiments shipped with reslab, compiled in so `reslab reproduce fig1` works anywhere.
pub const BUILTIN: [(&str, &str); 11] = [
    ("fig1", include_str!("../../experiments/fig1.toml")),
    ("abc", include_str!("../../experiments/abc.toml")),
    ("abc-imagenet", include_str!("../../experiments/abc-imagenet.toml")),
    ("fig6", include_str!("../../experiments/fig6.toml")),
    ("table6", include_str!("../../experiments/table6.toml")),
    ("fig7", include_str!("../../experiments/fig7.toml")),
    ("shortcuts", include_str!("../../experiments/shortcuts.toml")),
    ("blocks", include_str!("../../experiments/blocks.toml")),
    ("width-vs-paths", include_str!("../../experiments/width-vs-paths.toml")),
    ("degradation-lr", include_str!("../../experiments/degradation-lr.toml")),
    ("landscape", include_str!("../../experiments/landscape.toml")),
];

/// An experiment file: the networks to train, presets of schedule and data, the claims to check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Names the outputs: `<name>.png`, `<name>.svg`.
    pub name: String,
    /// Shown as the chart's and the report's heading.
    pub title: String,
    /// A paragraph on what the experiment reproduces, shown in the report.
    #[serde(default)]
    pub description: String,
    /// The networks to train (`[[runs]]`), each with every seed.
    pub runs: Vec<RunEntry>,
    /// Schedule and data by preset name (`[presets.quick]`, `[presets.paper]`).
    pub presets: BTreeMap<String, PresetSpec>,
    /// The preset `reproduce` runs when none is given; default the shortest.
    #[serde(default)]
    pub default_preset: Option<String>,
    /// What the paper's result predicts; checked and reported after the runs.
    #[serde(default)]
    pub expect: Vec<Expectation>,
    /// Base name of the results table (`<table>.csv`, `<table>.md`); default `summary`.
    #[serde(default)]
    pub table: Option<String>,
    /// Where the runs' `paper_err` numbers come from, shown in the table.
    #[serde(default)]
    pub paper_source: Option<String>,
    /// One chart per depth (`<name>-<depth>.png`) instead of one chart of every run.
    #[serde(default)]
    pub chart_per_depth: bool,
    /// The seeds every run is trained with: a list (`[0, 1, 2]`) or a count (`5`: seeds 0-4).
    /// Default: one run per network, seed 0.
    #[serde(default)]
    pub seeds: Option<Seeds>,
    /// Other methods' published results, shown in the table for context (Table 6).
    #[serde(default)]
    pub context: Vec<ContextEntry>,
    /// The figure's panels, side by side, each with its runs (Figure 6: plain, residual, very
    /// deep); without any, one chart of every run (or one per depth).
    #[serde(default)]
    pub panels: Vec<Panel>,
    /// How `--backend slurm` asks for resources; command-line flags override each field.
    #[serde(default)]
    pub slurm: SlurmSettings,
    /// What is measured inside the networks after the runs (Figure 7, gradient norms, shattering).
    #[serde(default, skip_serializing_if = "AnalysisSettings::is_empty")]
    pub analysis: AnalysisSettings,
    /// The error charts' error axis (`[chart]`); `aggregate --y-range/--y-scale` override it.
    #[serde(default, skip_serializing_if = "ChartSettings::is_default")]
    pub chart: ChartSettings,
    /// Keys of the runs' configuration crossed with the runs and seeds (`[grid]`: `lr = [0.1,
    /// 0.05]`, `weight_decay = [1e-4, 0]`), each with two or more values; `reslab keys` lists them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub grid: BTreeMap<String, toml::Value>,
    /// Studies whose complete runs this one reuses where they have the same configuration (`reuse
    /// = ["fig6"]`): the runs of `fig6` at the same preset in the folder beside this study's
    /// (`results/fig6-cpu` beside `results/landscape-cpu`) are linked instead of trained again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reuse: Vec<String>,
    /// Where the runs are mirrored as they train (`[tracking]`); `--mlflow URI` overrides it.
    #[serde(default, skip_serializing_if = "TrackingSettings::is_empty")]
    pub tracking: TrackingSettings,
}

/// The `[tracking]` table: an MLflow tracking server the study's runs appear in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackingSettings {
    /// The server's address, `http://HOST:PORT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlflow: Option<String>,
    /// The MLflow experiment the runs go to; default the study's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
}

impl TrackingSettings {
    fn is_empty(&self) -> bool {
        *self == TrackingSettings::default()
    }

    /// These settings with the command line's server (`--mlflow`) on top.
    pub fn overridden_by(self, mlflow: Option<&str>) -> TrackingSettings {
        TrackingSettings { mlflow: mlflow.map(String::from).or(self.mlflow), ..self }
    }
}

/// The `[chart]` table: how the study's error charts draw their error axis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChartSettings {
    /// A fixed range in percent, `[low, high]`; default the paper's 0-20% where every run reached
    /// the paper's schedule (64k iterations), else both ends fitted to the runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y_range: Option<ErrorRange>,
    /// `linear` (the default) or `log`.
    #[serde(default, skip_serializing_if = "YScale::is_linear")]
    pub y_scale: YScale,
}

impl ChartSettings {
    fn is_default(&self) -> bool {
        *self == ChartSettings::default()
    }

    /// These settings with the command line's on top (`None`: the file's), checked.
    pub fn overridden_by(self, y_range: Option<ErrorRange>, y_scale: Option<YScale>) -> Result<ChartSettings> {
        let chart = ChartSettings { y_range: y_range.or(self.y_range), y_scale: y_scale.unwrap_or(self.y_scale) };
        chart.check().context("the chart's error axis ([chart] with --y-range and --y-scale)")?;
        Ok(chart)
    }

    /// A range inside 0-100%, and above 0 on a log axis.
    pub fn check(&self) -> Result<()> {
        let Some(range) = self.y_range else {
            return Ok(());
        };
        let ErrorRange { low, high } = range;
        if !(0.0 <= low && low < high && high <= 100.0) {
            bail!("y range {range}; expected low:high with 0 <= low < high <= 100 (errors in percent)");
        }
        if self.y_scale == YScale::Log && low <= 0.0 {
            bail!("y range {range} on a log axis; expected a low end above 0 (a log axis has no 0), e.g. 1:100");
        }
        Ok(())
    }
}

/// A fixed error axis in percent: `[5, 60]` in a file, `5:60` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "[f64; 2]", into = "[f64; 2]")]
pub struct ErrorRange {
    /// The bottom of the axis.
    pub low: f64,
    /// The top of the axis.
    pub high: f64,
}

impl From<[f64; 2]> for ErrorRange {
    fn from([low, high]: [f64; 2]) -> ErrorRange {
        ErrorRange { low, high }
    }
}

impl From<ErrorRange> for [f64; 2] {
    fn from(range: ErrorRange) -> [f64; 2] {
        [range.low, range.high]
    }
}

impl std::fmt::Display for ErrorRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.low, self.high)
    }
}

impl std::str::FromStr for ErrorRange {
    type Err = String;

    /// `LOW:HIGH` (or `LOW,HIGH`), in percent.
    fn from_str(text: &str) -> std::result::Result<ErrorRange, String> {
        let expected = || format!("'{}'; expected LOW:HIGH in percent, e.g. 5:60", text.escape_debug());
        let (low, high) = text.split_once([':', ',']).ok_or_else(expected)?;
        let number = |s: &str| s.trim().parse::<f64>().ok().filter(|v| v.is_finite());
        match (number(low), number(high)) {
            (Some(low), Some(high)) => Ok(ErrorRange { low, high }),
            _ => Err(expected()),
        }
    }
}

/// How the error axis maps errors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum YScale {
    /// Equal steps for equal differences.
    #[default]
    Linear,
    /// Equal steps for equal ratios: small errors near the end of a long schedule stay apart.
    Log,
}

impl YScale {
    fn is_linear(&self) -> bool {
        *self == YScale::Linear
    }
}

/// The `[analysis]` table: analyses aggregation runs on the study's complete runs, shown in its
/// report beside the error curves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisSettings {
    /// He et al. (2015), Fig. 7: the std of every 3x3 layer's response on the test set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub responses: bool,
    /// Record every layer's gradient norm at this many points of each run (`train --log-grads`
    /// every iters/N iterations, and at the first); 0: none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub grad_norms: usize,
    /// Balduzzi et al. (2017): shattered gradients of the toy nets, of fresh plain and residual
    /// CIFAR nets at the study's depths, and of its trained runs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shattering: bool,
    /// Li et al. (2018): the loss landscape around every complete run's final weights and the path
    /// from its initial weights (`[analysis.landscape]`, each field optional; a preset's
    /// `landscape` table overrides them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landscape: Option<LandscapeSpec>,
}

/// `[analysis.landscape]` (and a preset's `landscape`): what `analyze landscape` takes, each field
/// optional (default: the command's defaults).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LandscapeSpec {
    /// Points per axis, odd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<usize>,
    /// The grid covers [-span, span].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<f64>,
    /// Training images the loss is measured on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<usize>,
    /// 1 (a line) or 2 (a plane).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dims: Option<u8>,
    /// The directions' seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Points on the path from initialisation (0: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_points: Option<usize>,
}

impl LandscapeSpec {
    /// These fields over `base`'s (a preset's over the experiment's).
    pub fn over(&self, base: &LandscapeSpec) -> LandscapeSpec {
        LandscapeSpec {
            grid: self.grid.or(base.grid),
            span: self.span.or(base.span),
            images: self.images.or(base.images),
            dims: self.dims.or(base.dims),
            seed: self.seed.or(base.seed),
            path_points: self.path_points.or(base.path_points),
        }
    }

    /// The analysis's settings, checked: the command's defaults where a field is absent.
    pub fn settings(&self) -> Result<LandscapeSettings> {
        let default = LandscapeSettings::default();
        let settings = LandscapeSettings {
            grid: self.grid.unwrap_or(default.grid),
            span: self.span.unwrap_or(default.span),
            images: self.images.unwrap_or(default.images),
            dims: match self.dims {
                Some(n) => Dims::from_count(n).map_err(|_| anyhow::anyhow!("dims = {n}; expected 1 or 2"))?,
                None => default.dims,
            },
            seed: self.seed.unwrap_or(default.seed),
            path_points: self.path_points.unwrap_or(default.path_points),
            ..default
        };
        settings.check()?;
        Ok(settings)
    }
}

impl AnalysisSettings {
    fn is_empty(&self) -> bool {
        *self == AnalysisSettings::default()
    }

    /// `train --log-grads` for a run of `iters` iterations: `grad_norms` points over it.
    pub fn log_grads_every(&self, iters: usize) -> usize {
        match self.grad_norms {
            0 => 0,
            points => (iters / points).max(1),
        }
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One panel of the experiment's figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Panel {
    /// The panel's heading (`plain`, `ResNet`).
    pub title: String,
    /// Run names (as in `[[expect]]`).
    pub runs: Vec<String>,
    /// Which curves: `both` (training dashed, test solid; the default), `train` or `test`
    /// (Figure 1's two panels).
    #[serde(default, skip_serializing_if = "Curves::is_both")]
    pub show: Curves,
    /// In a study with a grid: one such panel per value of this grid key (default the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// Which error curves a panel draws.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Curves {
    /// Training error dashed and test error solid.
    #[default]
    Both,
    /// Training error only.
    Train,
    /// Test error only.
    Test,
}

impl Curves {
    fn is_both(&self) -> bool {
        *self == Curves::Both
    }
}

/// Seeds as a list or a count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Seeds {
    /// Seeds 0 to n-1.
    Count(u64),
    /// These seeds, in order.
    List(Vec<u64>),
}

impl Seeds {
    fn describe(&self) -> String {
        match self {
            Seeds::Count(n) => n.to_string(),
            Seeds::List(seeds) => format!("{seeds:?}"),
        }
    }

    /// The seeds as `--seeds` takes them: `3` (0, 1, 2) or `3,4,5`.
    pub fn arg_text(&self) -> String {
        match self {
            Seeds::Count(n) => n.to_string(),
            Seeds::List(seeds) => seeds.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(","),
        }
    }

    /// The seeds, in order.
    pub fn list(&self) -> Vec<u64> {
        match self {
            Seeds::Count(n) => (0..*n).collect(),
            Seeds::List(seeds) => seeds.clone(),
        }
    }
}

impl std::str::FromStr for Seeds {
    type Err = String;

    /// `N` (seeds 0 to N-1), `A-B` (A to B) or a list `A,B,C` (e.g. new seeds for a study that has
    /// 0-2: `3-5`).
    fn from_str(text: &str) -> Result<Seeds, String> {
        let expected = "expected a count (3: seeds 0, 1, 2), a range (3-5) or a list (3,4,5)";
        if text.trim_start().starts_with('-') {
            return Err(format!("'{text}' is a negative number; {expected}"));
        }
        let number = |t: &str| t.trim().parse::<u64>().map_err(|_| format!("'{text}' is not a seed set; {expected}"));
        let seeds = if let Some((from, to)) = text.split_once('-') {
            let (from, to) = (number(from)?, number(to)?);
            if from > to {
                return Err(format!("'{text}' is an empty range; {expected}"));
            }
            Seeds::List((from..=to).collect())
        } else if text.contains(',') {
            let list = text.split(',').map(number).collect::<Result<Vec<u64>, String>>()?;
            let mut sorted = list.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() != list.len() {
                return Err(format!("'{text}' names a seed twice; {expected}"));
            }
            Seeds::List(list)
        } else {
            match number(text)? {
                0 => return Err(format!("'{text}' is no seeds; {expected}")),
                n => Seeds::Count(n),
            }
        };
        Ok(seeds)
    }
}

/// A published result of another method, for context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextEntry {
    /// The method's name as published.
    pub method: String,
    /// Test error (%) as published.
    pub err: f64,
    /// E.g. the paper's "(mean±std)" where it gives one.
    #[serde(default)]
    pub note: Option<String>,
}

/// One network to train.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunEntry {
    /// `plain-N`, `resnet-N` or `resnext-N-CxDd` (with a block variant: `resnet-110-pre`).
    pub model: String,
    /// The shortcut option (`A`, `B`, `C`, ...); default the family's.
    #[serde(default)]
    pub shortcut: Option<Shortcut>,
    /// Where BN and ReLU sit in each block (CIFAR nets); default post.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<BlockVariant>,
    /// Highway shortcuts: the gates' initial bias; default -2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_bias: Option<f64>,
    /// The paper's error for this network, shown beside ours in the table.
    #[serde(default)]
    pub paper_err: Option<f64>,
    /// More of the paper's number, e.g. Table 6's "6.43 (6.61±0.16)" (best (mean±std) of 5 runs).
    #[serde(default)]
    pub paper_note: Option<String>,
    /// The paper's warm-up for very deep nets (Section 4.2, 110 layers): lr 0.01 until the
    /// training error is below 80%, then the schedule's.
    #[serde(default)]
    pub warmup: bool,
    /// Keys of this run's configuration (`set = { lr = 0.05 }`), part of its name (a grid
    /// point's runs have theirs here).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, toml::Value>,
}

/// A schedule length and the data it runs on. The learning-rate steps default to the paper's
/// shape (1/2 and 3/4 of `iters`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetSpec {
    /// `embedded` or a path; without it, `--data` must be given.
    #[serde(default)]
    pub data: Option<DataSource>,
    /// Training iterations.
    pub iters: usize,
    /// Iterations between evaluations (the rows of `metrics.csv`).
    pub eval_every: usize,
    /// Iterations at which the learning rate is divided by 10; default 1/2 and 3/4 of `iters`.
    #[serde(default)]
    pub lr_steps: Option<Vec<usize>>,
    /// Images per batch; default 128.
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// What `test_err` is measured on; default the test set.
    #[serde(default)]
    pub eval_set: Option<EvalSet>,
    /// Only the runs at these depths (e.g. a quick preset of a two-depth study).
    #[serde(default)]
    pub depths: Option<Vec<i64>>,
    /// Image folders: the network's input size.
    #[serde(default)]
    pub input_size: Option<u32>,
    /// Said when the preset runs, e.g. which runs it leaves out and why.
    #[serde(default)]
    pub note: Option<String>,
    /// The seeds of this preset, instead of the experiment's.
    #[serde(default)]
    pub seeds: Option<Seeds>,
    /// Seeds on demand where the command line gives no seeds (`seeds_on_demand = { max_seeds = 5 }`).
    #[serde(default)]
    pub seeds_on_demand: Option<crate::experiment::on_demand::OnDemand>,
    /// `[analysis.landscape]` fields this preset sets otherwise (a smaller grid for a quick look).
    #[serde(default)]
    pub landscape: Option<LandscapeSpec>,
}

impl Experiment {
    /// A built-in experiment by name, or an experiment file by path.
    pub fn load(name_or_path: &str) -> Result<Experiment> {
        if let Some((_, text)) = BUILTIN.iter().find(|(name, _)| *name == name_or_path) {
            return Self::parse(text, &format!("built-in experiment '{name_or_path}'"));
        }
        let path = Path::new(name_or_path);
        let mut names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
        names.push(PAPER);
        let names = names.join(", ");
        let looks_like_a_path = name_or_path.contains(std::path::MAIN_SEPARATOR) || name_or_path.ends_with(".toml");
        if looks_like_a_path && !path.exists() {
            bail!(
                "experiment file {} does not exist; expected the path of an experiment file (TOML) or a built-in \
                 name ({names})",
                path.display()
            );
        }
        if path.is_dir() {
            bail!("experiment file {} is a folder; expected a TOML file or a built-in name ({names})", path.display());
        }
        if !path.is_file() {
            bail!(
                "unknown experiment '{}': expected a built-in name ({names}) or the path of an experiment file",
                name_or_path.escape_debug()
            );
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading experiment file {}", path.display()))?;
        Self::parse(&text, &format!("experiment file {}", path.display()))
    }

    /// Parses and validates an experiment file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Experiment> {
        let experiment: Experiment =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: {}", one_line(&e.to_string())))?;
        experiment.validate().with_context(|| origin.to_string())?;
        Ok(experiment)
    }

    /// The file's `default_preset`, else the shortest preset the experiment has.
    pub fn default_preset(&self) -> Result<Preset> {
        let wanted = |p: &Preset| match &self.default_preset {
            Some(name) => p.name() == name,
            None => self.presets.contains_key(p.name()),
        };
        Preset::ALL.into_iter().find(wanted).with_context(|| format!("experiment '{}' has no preset", self.name))
    }

    /// The entry of the run named `name` (canonical, without seed).
    pub fn entry(&self, name: &str) -> Option<&RunEntry> {
        self.runs.iter().find(|e| e.run_name().is_ok_and(|n| n == name))
    }

    /// The schedule and data of `preset`; an error naming the presets it has.
    pub fn preset(&self, preset: Preset) -> Result<&PresetSpec> {
        self.presets.get(preset.name()).with_context(|| {
            let known: Vec<&String> = self.presets.keys().collect();
            format!("experiment '{}' has no preset '{}' (it has {known:?})", self.name, preset.name())
        })
    }
}

impl RunEntry {
    /// The model the entry names, with its shortcut, block and gate options applied.
    pub fn spec(&self) -> Result<crate::model::ModelSpec> {
        let spec: crate::model::ModelSpec = self.model.parse()?;
        let options = ModelOptions {
            shortcut: self.shortcut,
            block: self.block,
            gate_bias: self.gate_bias,
            ..ModelOptions::default()
        };
        options.apply(spec, Spelling::FileKeys).with_context(|| format!("model '{}'", self.model))
    }

    /// The run's name, from its settings and canonical: the model's canonical name
    /// (`resnet-20` however the file spells it), then the shortcut option where it is not the
    /// family's default (`resnet-20-B`). Seeds are added by the planner.
    pub fn run_name(&self) -> Result<String> {
        let spec = self.spec()?;
        let default = match spec.groups {
            Some(groups) => crate::model::ModelSpec::resnext(spec.family, spec.depth, groups)?.shortcut,
            None => crate::model::ModelSpec::new(spec.family, spec.kind, spec.depth)?.shortcut,
        };
        let mut name = match spec.kind {
            crate::model::Kind::Residual if spec.shortcut != default => format!("{}-{}", spec.name(), spec.shortcut),
            _ => spec.name(),
        };
        if let Some(bias) = spec.gate_bias {
            name = format!("{name}-gate{bias}");
        }
        for setting in self.settings()? {
            name = format!("{name}-{}{}", setting.key.name, setting.value);
        }
        Ok(name)
    }

    /// Its `set` table as settings, in the order of [`settings::KEYS`] (how names list them).
    pub fn settings(&self) -> Result<Vec<Setting>> {
        let mut settings = Vec::new();
        for (key, value) in &self.set {
            let axis = Axis::from_toml(key, value).with_context(|| format!("[[runs]] '{}': set", self.model))?;
            let Some(setting) = axis.single() else {
                bail!("[[runs]] '{}': set.{key} has several values; expected one (a [grid] varies a key)", self.model);
            };
            settings.push(setting);
        }
        settings.sort_by_key(|s| settings::KEYS.iter().position(|k| std::ptr::eq(k, s.key)));
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_parse_as_a_count_a_range_or_a_list() {
        assert_eq!("3".parse::<Seeds>().unwrap().list(), [0, 1, 2]);
        assert_eq!("3-5".parse::<Seeds>().unwrap().list(), [3, 4, 5]);
        assert_eq!("7,2, 9".parse::<Seeds>().unwrap().list(), [7, 2, 9]);
        assert_eq!("3-5".parse::<Seeds>().unwrap().arg_text(), "3,4,5");
        for bad in ["0", "5-3", "1,1", "x", "", "3-"] {
            let err = bad.parse::<Seeds>().unwrap_err();
            assert!(
                err.contains("expected a count (3: seeds 0, 1, 2), a range (3-5) or a list (3,4,5)"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn the_builtin_experiments_parse() {
        for (name, _) in BUILTIN {
            let experiment = Experiment::load(name).unwrap();
            assert_eq!(experiment.name, name);
            for preset in [Preset::Quick, Preset::Paper] {
                experiment.preset(preset).unwrap();
            }
            experiment.default_preset().unwrap();
        }
    }

    /// The `[slurm]` table of docs/experiments.md's example file, up to the next table.
    fn documented_slurm_table() -> String {
        let docs = include_str!("../../docs/experiments.md");
        let start = docs.find("\n[slurm]").expect("docs/experiments.md shows a [slurm] table");
        let table = &docs[start + 1..];
        table[..table.find("\n\n").unwrap_or(table.len())].to_string()
    }

    #[test]
    fn the_documented_slurm_table_parses_and_is_recorded_as_read() {
        let fig1 = include_str!("../../experiments/fig1.toml");
        assert!(!fig1.contains("[slurm]"));
        let text = format!("{fig1}\n{}\n", documented_slurm_table());
        let experiment = Experiment::parse(&text, "f.toml").unwrap();
        let slurm = &experiment.slurm;
        assert_eq!(slurm.account.as_ref().map(ToString::to_string).as_deref(), Some("proj42"));
        assert_eq!(slurm.qos.as_ref().map(ToString::to_string).as_deref(), Some("normal"));
        assert_eq!(slurm.mem.map(|m| m.to_string()).as_deref(), Some("16G"));
        assert_eq!(slurm.aggregate_cpus, Some(1));
        assert_eq!(slurm.task_sbatch.len(), 1);
        // experiment.toml records the table; read again, it is the same.
        let recorded = toml::to_string(&experiment).unwrap();
        assert_eq!(Experiment::parse(&recorded, "experiment.toml").unwrap().slurm, *slurm);
    }

    #[test]
    fn a_slurm_value_sbatch_would_refuse_is_one_line_naming_the_key() {
        let fig1 = include_str!("../../experiments/fig1.toml");
        for (line, key, expected) in [
            ("account = \"\"", "account", "empty; expected a Slurm name"),
            ("qos = \"two words\"", "qos", "expected a Slurm name"),
            ("time = \"4h\"", "time", "expected a time limit as sbatch takes it"),
            ("aggregate_mem = \"16GB\"", "aggregate_mem", "expected memory as sbatch takes it"),
            ("sbatch = [\"account=proj42\"]", "sbatch", "expected an option as sbatch takes it"),
            ("aggregate_cpus = 0", "", "aggregate_cpus = 0; expected at least 1"),
        ] {
            let text = format!("{fig1}\n[slurm]\n{line}\n");
            let err = format!("{:#}", Experiment::parse(&text, "f.toml").unwrap_err());
            assert!(err.contains(expected) && err.contains(key) && !err.contains('\n'), "{line}: {err}");
        }
    }

    #[test]
    fn bad_files_name_the_origin_and_the_problem() {
        let err = Experiment::parse("name = 1", "experiment file x.toml").unwrap_err().to_string();
        assert!(err.starts_with("experiment file x.toml:"), "{err}");
        let text = include_str!("../../experiments/fig1.toml").replace("plain-56", "plain-57");
        let err = format!("{:#}", Experiment::parse(&text, "f.toml").unwrap_err());
        assert!(err.contains("plain-57") && err.contains("6n+2"), "{err}");
        let err = format!("{:#}", Experiment::load("fig9").unwrap_err());
        assert!(err.contains("unknown experiment 'fig9'"), "{err}");
    }

    #[test]
    fn presets_no_command_selects_and_expectations_of_no_run_are_refused_at_load() {
        let fig1 = include_str!("../../experiments/fig1.toml");
        let err =
            format!("{:#}", Experiment::parse(&fig1.replace("[presets.quick]", "[presets.fast]"), "f").unwrap_err());
        assert!(err.contains("[presets.fast]") && err.contains("smoke, demo, cpu, quick, paper"), "{err}");
        let err = format!(
            "{:#}",
            Experiment::parse(&fig1.replace("than = \"plain-20\"", "than = \"plain-21\""), "f").unwrap_err()
        );
        assert!(err.contains("'plain-21'") && err.contains("plain-20, plain-56"), "{err}");
    }

    #[test]
    fn default_presets_and_expectations_are_checked_at_load() {
        assert_eq!(Experiment::load("fig1").unwrap().default_preset().unwrap(), Preset::Demo);
        assert_eq!(Experiment::load("fig6").unwrap().default_preset().unwrap(), Preset::Smoke);
        let fig1 = include_str!("../../experiments/fig1.toml");
        let err = format!(
            "{:#}",
            Experiment::parse(&fig1.replace("default_preset = \"demo\"", "default_preset = \"long\""), "f")
                .unwrap_err()
        );
        assert!(err.contains("default_preset = 'long'") && err.contains("demo, paper, quick, smoke"), "{err}");
        let both = fig1.replace("than = \"plain-20\"", "than = \"plain-20\"\nwithin = 2.0");
        let err = format!("{:#}", Experiment::parse(&both, "f").unwrap_err());
        assert!(err.contains("an [[expect]] must be one of"), "{err}");
        let fig6 = Experiment::load("fig6").unwrap();
        let test_claim = fig6.expect.iter().find(|e| matches!(e.prediction, Prediction::HigherTestError { .. }));
        assert_eq!(test_claim.expect("fig6 checks 1202 against 110").source.as_deref(), Some("Table 6, Sec. 4.2"));
        // What `reproduce` writes as experiment.toml reads back the same.
        let again = Experiment::parse(&toml::to_string(&fig6).unwrap(), "written").unwrap();
        assert_eq!(again, fig6);
    }

    #[test]
    fn the_chart_axis_is_fixed_or_log_in_the_file_and_on_the_command_line() {
        let fig1 = include_str!("../../experiments/fig1.toml");
        let with = |chart: &str| Experiment::parse(&format!("{fig1}\n[chart]\n{chart}\n"), "f");
        let chart = with("y_range = [5, 60]\ny_scale = \"log\"").unwrap().chart;
        assert_eq!(chart, ChartSettings { y_range: Some(ErrorRange { low: 5.0, high: 60.0 }), y_scale: YScale::Log });
        let again = Experiment::parse(&toml::to_string(&with("y_range = [5, 60]").unwrap()).unwrap(), "w").unwrap();
        assert_eq!(again.chart.y_range, Some(ErrorRange { low: 5.0, high: 60.0 }), "written and read back");
        for (bad, expected) in [
            ("y_range = [60, 5]", "expected low:high with 0 <= low < high <= 100"),
            ("y_range = [0, 120]", "expected low:high with 0 <= low < high <= 100"),
            ("y_range = [0, 50]\ny_scale = \"log\"", "a log axis has no 0"),
            ("y_scale = \"square\"", "unknown variant `square`"),
            ("range = [0, 5]", "unknown field `range`"),
        ] {
            let err = format!("{:#}", with(bad).unwrap_err());
            assert!(err.contains(expected), "{bad}: {err}");
        }
        assert_eq!("5:60".parse::<ErrorRange>().unwrap(), ErrorRange { low: 5.0, high: 60.0 });
        assert_eq!("0.5,20".parse::<ErrorRange>().unwrap(), ErrorRange { low: 0.5, high: 20.0 });
        let err = "5-60".parse::<ErrorRange>().unwrap_err();
        assert_eq!(err, "'5-60'; expected LOW:HIGH in percent, e.g. 5:60");
        // The command line over the file: each flag replaces its field, then the pair is checked.
        let file = ChartSettings { y_range: Some(ErrorRange { low: 0.0, high: 50.0 }), y_scale: YScale::Linear };
        assert_eq!(file.overridden_by(None, None).unwrap(), file);
        let log = file.overridden_by(Some(ErrorRange { low: 1.0, high: 100.0 }), Some(YScale::Log)).unwrap();
        assert_eq!(log, ChartSettings { y_range: Some(ErrorRange { low: 1.0, high: 100.0 }), y_scale: YScale::Log });
        let err = format!("{:#}", file.overridden_by(None, Some(YScale::Log)).unwrap_err());
        assert!(err.contains("--y-scale") && err.contains("a log axis has no 0"), "{err}");
    }

    #[test]
    fn fig7_analyses_and_response_claims_are_checked_at_load() {
        let fig7 = Experiment::load("fig7").unwrap();
        assert!(fig7.analysis.responses && fig7.analysis.shattering);
        assert_eq!(fig7.analysis.log_grads_every(60), 7);
        assert_eq!(fig7.analysis.log_grads_every(4), 1);
        assert!(fig7.expect.iter().all(|e| matches!(e.prediction, Prediction::SmallerResponses { .. })));
        let again = Experiment::parse(&toml::to_string(&fig7).unwrap(), "written").unwrap();
        assert_eq!(again, fig7);
        let text = include_str!("../../experiments/fig7.toml").replace("responses = true", "responses = false");
        let err = format!("{:#}", Experiment::parse(&text, "f").unwrap_err());
        assert!(err.contains("smaller_responses needs responses = true"), "{err}");
        // Experiments without the table write none back.
        assert!(!toml::to_string(&Experiment::load("fig1").unwrap()).unwrap().contains("[analysis]"));
    }

    #[test]
    fn run_names_are_canonical_and_seeds_a_list_or_a_count() {
        let text = |runs: &str, seeds: &str| {
            format!("name = \"x\"\ntitle = \"x\"\n{seeds}\n{runs}\n[presets.quick]\niters = 10\neval_every = 5\n")
        };
        let one = "[[runs]]\nmodel = \"cifar-resnet-20\"\nshortcut = \"A\"\n[[runs]]\nmodel = \"resnet-20\"\nshortcut = \"B\"\n";
        let experiment = Experiment::parse(&text(one, "seeds = 3"), "x").unwrap();
        let names: Vec<String> = experiment.runs.iter().map(|r| r.run_name().unwrap()).collect();
        assert_eq!(names, ["resnet-20", "resnet-20-B"]);
        assert_eq!(experiment.seeds.unwrap().list(), vec![0, 1, 2]);
        let experiment = Experiment::parse(&text(one, "seeds = [4, 7]"), "x").unwrap();
        assert_eq!(experiment.seeds.unwrap().list(), vec![4, 7]);
        let twice = "[[runs]]\nmodel = \"cifar-resnet-20\"\n[[runs]]\nmodel = \"resnet-20\"\nshortcut = \"A\"\n";
        let err = format!("{:#}", Experiment::parse(&text(twice, ""), "x").unwrap_err());
        assert!(err.contains("'resnet-20' twice"), "{err}");
        let err = format!("{:#}", Experiment::parse(&text(one, "seeds = 0"), "x").unwrap_err());
        assert!(err.contains("seeds = 0"), "{err}");
    }
}
