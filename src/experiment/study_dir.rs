//! A study's folder, the one place that names what is in it:
//!
//! | path | what |
//! | --- | --- |
//! | `<run>-seed<N>/` | a run directory per planned run (see [`crate::run`]) |
//! | `rounds.toml` | `--seeds auto`: the rounds, each network's seeds in each, the claims that stopped taking seeds ([`super::rounds`]) |
//! | `experiment.toml` | the study's record (preset, seeds, every override) and the experiment as it runs ([`super::study_record`]) |
//! | `.configs/` | the configurations handed to the local runner's child processes, while they run |
//! | `.slurm/` | `--backend slurm`: the batch scripts, each task's configuration, logs, job ids (and with seeds on demand, `settings.toml`: the settings of its rounds) |
//! | `mlflow.toml` | `--mlflow URI`: the study's parent run on each MLflow server |
//! | `report.html` | the study's report |
//! | `summary.csv`, `summary.md` | a row per run |
//! | `<table>.csv`, `<table>.md` | a row per network (the experiment's `table` name, default `table`) |
//! | `claims.csv` | a row per claim and comparison |
//! | `<chart>.png`, `<chart>.svg` | the error curves (`<experiment>`, or `<experiment>-<depth>` per depth) |
//! | `<experiment>-claims.png`, `.svg` | the claims' forest plot |
//! | `<experiment>-responses.*`, `<experiment>-grad-norms.*` | the `[analysis]` of layer responses and gradient norms |
//! | `shattering/`, `landscape/` | the shattering and loss-landscape analyses (a landscape's surfaces are reused by the next aggregation) |
//! | `.aggregated` | the files the last aggregation wrote (what the next one replaces) |
//! | `.aggregating/` | the aggregation's outputs while it writes them |

use super::overrides::Overrides;
use super::preset::Preset;
use super::spec::Experiment;
use super::study_record::{self, StudyRecord};
use crate::run::RunDir;
use anyhow::{Context, Result};
use std::path::PathBuf;

/// The paths of one study's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudyDir {
    /// The folder.
    pub path: PathBuf,
}

impl StudyDir {
    /// The study folder at `path` (nothing is created).
    pub fn new(path: impl Into<PathBuf>) -> StudyDir {
        StudyDir { path: path.into() }
    }

    /// The name of the run directory of run `name` with `seed`.
    pub fn run_name(name: &str, seed: u64) -> String {
        format!("{name}-seed{seed}")
    }

    /// The run directory of run `name` with `seed`.
    pub fn run(&self, name: &str, seed: u64) -> RunDir {
        RunDir::new(self.path.join(Self::run_name(name, seed)))
    }

    /// The configurations handed to the local runner's child processes.
    pub fn configs(&self) -> PathBuf {
        self.path.join(".configs")
    }

    /// What `--backend slurm` keeps: scripts, task configurations, logs and job ids.
    pub fn slurm(&self) -> PathBuf {
        self.path.join(".slurm")
    }

    /// Seeds on demand on Slurm: the settings its rounds are submitted with.
    pub fn slurm_settings(&self) -> PathBuf {
        self.slurm().join("settings.toml")
    }

    /// Which MLflow run is the study's parent on each server (the runs' own are in theirs).
    pub fn mlflow_state(&self) -> PathBuf {
        self.path.join(crate::tracking::mlflow::STATE_FILE)
    }

    /// Where the experiment as run is recorded (`experiment.toml`).
    pub fn experiment_file(&self) -> PathBuf {
        self.path.join("experiment.toml")
    }

    /// The round record of a study with seeds on demand (`rounds.toml`).
    pub fn rounds(&self) -> PathBuf {
        self.path.join("rounds.toml")
    }

    /// Where an aggregation writes its outputs before they are put in place.
    pub fn aggregation_stage(&self) -> PathBuf {
        self.path.join(".aggregating")
    }

    /// The list of files the last aggregation wrote, relative to the folder.
    pub fn aggregated_manifest(&self) -> PathBuf {
        self.path.join(".aggregated")
    }

    // The aggregation's outputs, named for a folder that is the study's or the stage it writes
    // them in first (`StudyDir::new(stage)`).

    /// The study's report.
    pub fn report(&self) -> PathBuf {
        self.path.join("report.html")
    }

    /// The per-run table, as CSV and Markdown.
    pub fn summary_tables(&self) -> [PathBuf; 2] {
        [self.path.join("summary.csv"), self.path.join("summary.md")]
    }

    /// The per-network table named `stem`, as CSV and Markdown.
    pub fn study_tables(&self, stem: &str) -> [PathBuf; 2] {
        [self.path.join(format!("{stem}.csv")), self.path.join(format!("{stem}.md"))]
    }

    /// The claims' rows.
    pub fn claims_csv(&self) -> PathBuf {
        self.path.join("claims.csv")
    }

    /// A chart named `stem`, as PNG and SVG.
    pub fn chart(&self, stem: &str) -> [PathBuf; 2] {
        [self.path.join(format!("{stem}.png")), self.path.join(format!("{stem}.svg"))]
    }

    /// The forest plot of `experiment`'s claims, as PNG and SVG.
    pub fn claims_chart(&self, experiment: &str) -> [PathBuf; 2] {
        self.chart(&format!("{experiment}-claims"))
    }

    /// The common start of the files of an `[analysis]` of `experiment` (`fig6-responses`): each
    /// analysis adds its suffixes.
    pub fn analysis_stem(experiment: &str, analysis: &str) -> String {
        format!("{experiment}-{analysis}")
    }

    /// The shattering analysis' folder.
    pub fn shattering(&self) -> PathBuf {
        self.path.join("shattering")
    }

    /// The loss landscapes' folder.
    pub fn landscape(&self) -> PathBuf {
        self.path.join("landscape")
    }

    /// Creates the folder and records the study in it (`experiment.toml`).
    pub fn record_study(&self, experiment: &Experiment, preset: Preset, overrides: &Overrides) -> Result<()> {
        std::fs::create_dir_all(&self.path)
            .with_context(|| format!("creating output directory {}", self.path.display()))?;
        study_record::write(&self.experiment_file(), &StudyRecord::new(experiment, preset, overrides)?, experiment)
    }

    /// The study recorded in the folder: one line where it holds none.
    pub fn recorded_study(&self) -> Result<(StudyRecord, Experiment)> {
        study_record::read(&self.path, &self.experiment_file())
    }
}
