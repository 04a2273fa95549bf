//! The experiment file format (see `experiments/*.toml`).

use crate::data::{DataSource, EvalSet};
use crate::model::Shortcut;
use crate::run::config::{one_line, Preset};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The experiments shipped with reslab, compiled in so `reslab reproduce fig1` works anywhere.
pub const BUILTIN: [(&str, &str); 3] = [
    ("fig1", include_str!("../../experiments/fig1.toml")),
    ("abc", include_str!("../../experiments/abc.toml")),
    ("abc-imagenet", include_str!("../../experiments/abc-imagenet.toml")),
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Names the outputs: `<name>.png`, `<name>.svg`.
    pub name: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub runs: Vec<RunEntry>,
    pub presets: BTreeMap<String, PresetSpec>,
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
}

/// One network to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunEntry {
    /// `plain-N` or `resnet-N`.
    pub model: String,
    #[serde(default)]
    pub shortcut: Option<Shortcut>,
    /// The paper's error for this network, shown beside ours in the table.
    #[serde(default)]
    pub paper_err: Option<f64>,
}

/// A schedule length and the data it runs on. The learning-rate steps default to the paper's
/// shape (1/2 and 3/4 of `iters`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetSpec {
    /// `embedded` or a path; without it, `--data` must be given.
    #[serde(default)]
    pub data: Option<DataSource>,
    pub iters: usize,
    pub eval_every: usize,
    #[serde(default)]
    pub lr_steps: Option<Vec<usize>>,
    #[serde(default)]
    pub batch_size: Option<usize>,
    #[serde(default)]
    pub eval_set: Option<EvalSet>,
    /// Only the runs at these depths (e.g. a quick preset of a two-depth study).
    #[serde(default)]
    pub depths: Option<Vec<i64>>,
    /// Image folders: the network's input size.
    #[serde(default)]
    pub input_size: Option<u32>,
}

/// A prediction of the paper about the runs' training errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Expectation {
    /// `higher_train_error` ends with a higher training error than `than`, at the end and on
    /// average over the run (the degradation problem, Figure 1; plain vs residual, Table 3).
    Higher { higher_train_error: String, than: String },
    /// These runs' final training errors lie within `within` points of each other (A/B/C).
    Similar { similar_train_error: Vec<String>, within: f64 },
}

impl Expectation {
    pub fn runs(&self) -> Vec<&String> {
        match self {
            Expectation::Higher { higher_train_error, than } => vec![higher_train_error, than],
            Expectation::Similar { similar_train_error, .. } => similar_train_error.iter().collect(),
        }
    }
}

impl Experiment {
    /// A built-in experiment by name, or an experiment file by path.
    pub fn load(name_or_path: &str) -> Result<Experiment> {
        if let Some((_, text)) = BUILTIN.iter().find(|(name, _)| *name == name_or_path) {
            return Self::parse(text, &format!("built-in experiment '{name_or_path}'"));
        }
        let path = Path::new(name_or_path);
        if !path.is_file() {
            let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
            bail!(
                "unknown experiment '{}': expected a built-in name ({}) or the path of an experiment file",
                name_or_path.escape_debug(),
                names.join(", ")
            );
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading experiment file {}", path.display()))?;
        Self::parse(&text, &format!("experiment file {}", path.display()))
    }

    pub fn parse(text: &str, origin: &str) -> Result<Experiment> {
        let experiment: Experiment =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: {}", one_line(&e.to_string())))?;
        experiment.validate().with_context(|| origin.to_string())?;
        Ok(experiment)
    }

    fn validate(&self) -> Result<()> {
        if self.runs.is_empty() {
            bail!("no [[runs]]; expected at least one model to train");
        }
        for run in &self.runs {
            run.spec()?;
        }
        let run_names: Vec<String> = self.runs.iter().map(RunEntry::run_name).collect();
        for expectation in &self.expect {
            for name in expectation.runs() {
                if !run_names.contains(name) {
                    let runs: Vec<String> = run_names.iter().map(|n| n.escape_debug().to_string()).collect();
                    bail!(
                        "[[expect]] names '{}', which is not one of the runs ({})",
                        name.escape_debug(),
                        runs.join(", ")
                    );
                }
            }
        }
        for (name, preset) in &self.presets {
            if preset.iters == 0 || preset.eval_every == 0 {
                bail!("preset '{}': iters and eval_every must be positive", name.escape_debug());
            }
        }
        Ok(())
    }

    /// The shortest preset the experiment has.
    pub fn default_preset(&self) -> Result<Preset> {
        [Preset::Demo, Preset::Quick, Preset::Paper]
            .into_iter()
            .find(|p| self.presets.contains_key(p.name()))
            .with_context(|| format!("experiment '{}' has no demo, quick or paper preset", self.name))
    }

    pub fn preset(&self, preset: Preset) -> Result<&PresetSpec> {
        self.presets.get(preset.name()).with_context(|| {
            let known: Vec<&String> = self.presets.keys().collect();
            format!("experiment '{}' has no preset '{}' (it has {known:?})", self.name, preset.name())
        })
    }
}

impl RunEntry {
    pub fn spec(&self) -> Result<crate::model::ModelSpec> {
        let spec: crate::model::ModelSpec = self.model.parse()?;
        Ok(match self.shortcut {
            Some(shortcut) => spec.with_shortcut(shortcut),
            None => spec,
        })
    }

    /// The run's directory name: the model, with the shortcut option when one is given.
    pub fn run_name(&self) -> String {
        match self.shortcut {
            Some(shortcut) => format!("{}-{shortcut}", self.model),
            None => self.model.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_experiments_parse() {
        for (name, _) in BUILTIN {
            let experiment = Experiment::load(name).unwrap();
            assert_eq!(experiment.name, name);
            for preset in [Preset::Quick, Preset::Paper] {
                experiment.preset(preset).unwrap();
            }
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
}
