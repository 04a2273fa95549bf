//! The experiment file format (see `experiments/*.toml`).

use crate::data::{DataSource, EvalSet};
use crate::model::Shortcut;
use crate::run::config::{one_line, Preset};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The experiments shipped with reslab, compiled in so `reslab reproduce fig1` works anywhere.
pub const BUILTIN: [(&str, &str); 5] = [
    ("fig1", include_str!("../../experiments/fig1.toml")),
    ("abc", include_str!("../../experiments/abc.toml")),
    ("abc-imagenet", include_str!("../../experiments/abc-imagenet.toml")),
    ("fig6", include_str!("../../experiments/fig6.toml")),
    ("table6", include_str!("../../experiments/table6.toml")),
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
}

/// One panel of the experiment's figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Panel {
    pub title: String,
    /// Run names (as in `[[expect]]`).
    pub runs: Vec<String>,
}

/// Seeds as a list or a count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Seeds {
    Count(u64),
    List(Vec<u64>),
}

impl Seeds {
    fn describe(&self) -> String {
        match self {
            Seeds::Count(n) => n.to_string(),
            Seeds::List(seeds) => format!("{seeds:?}"),
        }
    }

    pub fn list(&self) -> Vec<u64> {
        match self {
            Seeds::Count(n) => (0..*n).collect(),
            Seeds::List(seeds) => seeds.clone(),
        }
    }
}

/// A published result of another method, for context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextEntry {
    pub method: String,
    /// Test error (%) as published.
    pub err: f64,
    /// E.g. the paper's "(mean±std)" where it gives one.
    #[serde(default)]
    pub note: Option<String>,
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
    /// More of the paper's number, e.g. Table 6's "6.43 (6.61±0.16)" (best (mean±std) of 5 runs).
    #[serde(default)]
    pub paper_note: Option<String>,
    /// The paper's warm-up for very deep nets (Section 4.2, 110 layers): lr 0.01 until the
    /// training error is below 80%, then the schedule's.
    #[serde(default)]
    pub warmup: bool,
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
    /// Said when the preset runs, e.g. which runs it leaves out and why.
    #[serde(default)]
    pub note: Option<String>,
    /// The seeds of this preset, instead of the experiment's.
    #[serde(default)]
    pub seeds: Option<Seeds>,
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
        let mut run_names: Vec<String> = Vec::new();
        for run in &self.runs {
            let name = run.run_name()?;
            if run_names.contains(&name) {
                bail!("[[runs]] has '{name}' twice (model names are canonical: resnet-20 and cifar-resnet-20 are one run)");
            }
            run_names.push(name);
        }
        let preset_seeds = self.presets.values().filter_map(|p| p.seeds.as_ref());
        for seeds in self.seeds.iter().chain(preset_seeds) {
            if seeds.list().is_empty() {
                bail!("seeds = {}; expected a positive count or a non-empty list of seeds", seeds.describe());
            }
        }
        let panel_runs = self.panels.iter().flat_map(|p| p.runs.iter());
        for name in panel_runs {
            if !run_names.contains(name) {
                bail!(
                    "[[panels]] names '{}', which is not one of the runs ({})",
                    name.escape_debug(),
                    run_names.join(", ")
                );
            }
        }
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
        let selectable: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
        for (name, preset) in &self.presets {
            if !selectable.contains(&name.as_str()) {
                bail!(
                    "[presets.{}] is a preset no command can select; expected one of {}",
                    name.escape_debug(),
                    selectable.join(", ")
                );
            }
            if preset.iters == 0 || preset.eval_every == 0 {
                bail!("preset '{}': iters and eval_every must be positive", name.escape_debug());
            }
        }
        if self.presets.is_empty() {
            bail!("no [presets.*]; expected at least one of {}", selectable.join(", "));
        }
        Ok(())
    }

    /// The shortest preset the experiment has.
    pub fn default_preset(&self) -> Result<Preset> {
        Preset::ALL
            .into_iter()
            .find(|p| self.presets.contains_key(p.name()))
            .with_context(|| format!("experiment '{}' has no preset", self.name))
    }

    /// The entry of the run named `name` (canonical, without seed).
    pub fn entry(&self, name: &str) -> Option<&RunEntry> {
        self.runs.iter().find(|e| e.run_name().is_ok_and(|n| n == name))
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

    /// The run's name, from its settings and canonical: the model's canonical name
    /// (`resnet-20` however the file spells it), then the shortcut option where it is not the
    /// family's default (`resnet-20-B`). Seeds are added by the planner.
    pub fn run_name(&self) -> Result<String> {
        let spec = self.spec()?;
        let default = crate::model::ModelSpec::new(spec.family, spec.kind, spec.depth)?.shortcut;
        Ok(match spec.kind {
            crate::model::Kind::Residual if spec.shortcut != default => format!("{}-{}", spec.name(), spec.shortcut),
            _ => spec.name(),
        })
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
            assert_eq!(experiment.default_preset().unwrap(), experiment.default_preset().unwrap());
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
        assert!(err.contains("[presets.fast]") && err.contains("smoke, demo, quick, paper"), "{err}");
        let err = format!(
            "{:#}",
            Experiment::parse(&fig1.replace("than = \"plain-20\"", "than = \"plain-21\""), "f").unwrap_err()
        );
        assert!(err.contains("'plain-21'") && err.contains("plain-20, plain-56"), "{err}");
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
