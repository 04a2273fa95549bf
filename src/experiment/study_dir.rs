//! A study's folder, the one place that names what is in it:
//!
//! | path | what |
//! | --- | --- |
//! | `<run>-seed<N>/` | a run directory per planned run (see [`crate::run`]) |
//! | `experiment.toml` | the experiment as it was run, with the preset it was run at |
//! | `.configs/` | the configurations handed to the local runner's child processes, while they run |
//! | `.slurm/` | `--backend slurm`: the batch scripts, each task's configuration, logs, job ids |
//! | `mlflow.toml` | `--mlflow URI`: the study's parent run on each MLflow server |
//! | tables, charts, `report.html` | written by the aggregation (see [`super::aggregate`]) |

use super::preset::Preset;
use super::spec::Experiment;
use crate::run::RunDir;
use crate::util::fs::write_file;
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

    /// Which MLflow run is the study's parent on each server (the runs' own are in theirs).
    pub fn mlflow_state(&self) -> PathBuf {
        self.path.join(crate::run::mlflow::STATE_FILE)
    }

    /// Where the experiment as run is recorded (`experiment.toml`).
    pub fn experiment_file(&self) -> PathBuf {
        self.path.join("experiment.toml")
    }

    /// Creates the folder and writes the experiment as run into it.
    pub fn record_experiment(&self, experiment: &Experiment, preset: Preset) -> Result<()> {
        std::fs::create_dir_all(&self.path)
            .with_context(|| format!("creating output directory {}", self.path.display()))?;
        let header = format!(
            "# reslab {}: this experiment was run with --preset {}.\n",
            env!("CARGO_PKG_VERSION"),
            preset.name()
        );
        let text = toml::to_string(experiment).expect("an experiment always serialises");
        write_file(&self.experiment_file(), (header + &text).as_bytes())
    }
}
