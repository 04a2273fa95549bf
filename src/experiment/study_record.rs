//! `experiment.toml`: a study's record, written where it starts. `[study]` says how it was asked
//! for (its preset, seeds and every override of the command line), machine-readably; `[experiment]`
//! is the experiment as it ran (its grid spelled out). `reslab status|plan|aggregate FOLDER` plan
//! the study again from it, and the report's words about the study come from it, not from the
//! command that aggregates.

use super::on_demand::OnDemand;
use super::overrides::{self, Overrides};
use super::preset::Preset;
use super::spec::{Experiment, Seeds};
use crate::run::config::{DeviceChoice, KernelsChoice, PrecisionChoice};
use crate::run::settings::Axis;
use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How a study was asked for: `[study]` in its `experiment.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyRecord {
    /// The reslab that started it.
    pub reslab_version: String,
    /// The preset it runs at.
    pub preset: Preset,
    /// The seeds of its runs (none with seeds on demand: each network's are in its round record).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<u64>,
    /// `--seeds auto`: seeds on demand, judged with sequential intervals whatever a later
    /// command is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_demand: Option<OnDemand>,
    /// `--data`, where the command line gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// `--iters`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iters: Option<usize>,
    /// `--eval-every`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_every: Option<usize>,
    /// `--depths`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depths: Option<Vec<i64>>,
    /// `--precision` (`auto`, `fp32`, `bf16`).
    pub precision: String,
    /// `--kernels` (`auto`, `exact`, `fused`); studies recorded before the option were `auto`.
    #[serde(default = "auto", skip_serializing_if = "is_auto")]
    pub kernels: String,
    /// Processes per run (a Slurm task's ranks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub world_size: Option<usize>,
    /// `--set KEY=VALUE` (or `KEY=V1,V2`: a grid, spelled out into the experiment's runs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<String>,
}

/// The file: the record, and the experiment as it ran.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StudyFile {
    study: StudyRecord,
    experiment: Experiment,
}

impl StudyRecord {
    /// The record of `experiment` at `preset` with `overrides`.
    pub fn new(experiment: &Experiment, preset: Preset, overrides: &Overrides) -> Result<StudyRecord> {
        Ok(StudyRecord {
            reslab_version: env!("CARGO_PKG_VERSION").into(),
            preset,
            seeds: overrides::seeds(experiment, preset, overrides)?,
            on_demand: overrides.on_demand.as_ref().map(OnDemand::recorded),
            data: overrides.data.as_ref().map(ToString::to_string),
            iters: overrides.iters,
            eval_every: overrides.eval_every,
            depths: overrides.depths.clone(),
            precision: value_name(overrides.precision),
            kernels: overrides.kernels.to_possible_value().expect("no skipped values").get_name().to_string(),
            world_size: overrides.world_size,
            set: overrides.settings.iter().map(Axis::arg_text).collect(),
        })
    }

    /// The overrides it records, with `threads` (how it is executed, not what it is). Grid axes
    /// are left out: the recorded experiment has them spelled out into its runs already. Seeds on
    /// demand start at the first round's: the caller adds the round record's.
    pub fn overrides(&self, threads: usize) -> Result<Overrides> {
        let mut settings = Vec::new();
        for text in &self.set {
            let axis = Axis::parse(text)?;
            if axis.single().is_some() {
                settings.push(axis);
            }
        }
        Ok(Overrides {
            data: self.data.as_deref().map(str::parse).transpose()?,
            iters: self.iters,
            eval_every: self.eval_every,
            seed: None,
            seeds: self.on_demand.is_none().then(|| Seeds::List(self.seeds.clone())),
            on_demand: self.on_demand.clone(),
            round_seeds: Default::default(),
            threads,
            precision: PrecisionChoice::from_str(&self.precision, false)
                .map_err(|_| anyhow::anyhow!("precision = {:?}: expected auto, fp32 or bf16", self.precision))?,
            kernels: KernelsChoice::from_str(&self.kernels, false)
                .map_err(|_| anyhow::anyhow!("kernels = {:?}: expected auto, exact or fused", self.kernels))?,
            depths: self.depths.clone(),
            world_size: self.world_size,
            // How the runs are executed is the command's, never the study's.
            device: DeviceChoice::Auto,
            settings,
        })
    }

    /// The command that runs this study again (into `out`): what the report says made it.
    pub fn command_line(&self, experiment: &str, out: &Path) -> String {
        let mut words = vec![
            "reslab reproduce".to_string(),
            experiment.to_string(),
            format!("--preset {}", self.preset.name()),
            format!("--out {}", out.display()),
        ];
        let mut push = |flag: &str, value: Option<String>| words.extend(value.map(|v| format!("{flag} {v}")));
        push("--data", self.data.clone());
        push("--iters", self.iters.map(|n| n.to_string()));
        push("--eval-every", self.eval_every.map(|n| n.to_string()));
        let seeds = match &self.on_demand {
            // `auto --max-seeds N ...`
            Some(on_demand) => on_demand.to_args()[1..].join(" "),
            None => self.seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(","),
        };
        push("--seeds", Some(seeds));
        push("--depths", self.depths.as_ref().map(|d| d.iter().map(i64::to_string).collect::<Vec<_>>().join(",")));
        push("--precision", Some(self.precision.clone()).filter(|p| p != "auto"));
        push("--kernels", Some(self.kernels.clone()).filter(|k| k != "auto"));
        for set in &self.set {
            push("--set", Some(set.clone()));
        }
        words.join(" ")
    }
}

fn auto() -> String {
    "auto".into()
}

fn is_auto(value: &str) -> bool {
    value == "auto"
}

fn value_name(precision: PrecisionChoice) -> String {
    precision.to_possible_value().expect("no skipped values").get_name().to_string()
}

/// Writes `path`: the record and the experiment as it runs.
pub fn write(path: &Path, record: &StudyRecord, experiment: &Experiment) -> Result<()> {
    let file = StudyFile { study: record.clone(), experiment: experiment.clone() };
    let header = format!(
        "# The study in this folder, written by reslab {} when it started: `reslab status|plan|aggregate FOLDER` \
         read it.\n",
        env!("CARGO_PKG_VERSION")
    );
    let text = toml::to_string(&file).context("writing the study's record")?;
    crate::util::fs::write_file(path, (header + &text).as_bytes())
}

/// Reads the record and the experiment of the study folder `folder` (its `experiment.toml` at
/// `path`): one line where there is no study there.
pub fn read(folder: &Path, path: &Path) -> Result<(StudyRecord, Experiment)> {
    let no_study = |why: &str| {
        anyhow::anyhow!(
            "folder {} holds no study ({why}); expected a folder written by reslab reproduce, or an experiment's name with \
             --preset and --out",
            folder.display()
        )
    };
    if !folder.is_dir() {
        return Err(no_study("it does not exist"));
    }
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(no_study("it has no experiment.toml")),
        Err(e) => bail!("reading {}: {e}", path.display()),
    };
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), crate::run::config::one_line(&e.to_string())))?;
    if !table.contains_key("study") {
        bail!(
            "{} was written by an older reslab and does not record the study's preset and overrides; expected a \
             [study] table: give the experiment, --preset and --out instead",
            path.display()
        );
    }
    let file: StudyFile = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), crate::run::config::one_line(&e.to_string())))?;
    let experiment = Experiment::parse(&toml::to_string(&file.experiment)?, &format!("{}", path.display()))?;
    Ok((file.study, experiment))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::DataSource;
    use crate::experiment::plan;

    #[test]
    fn a_study_record_round_trips_and_plans_the_same_runs() {
        let dir = tempfile::tempdir().unwrap();
        let experiment = Experiment::load("fig1").unwrap();
        let overrides = Overrides {
            data: Some(DataSource::Embedded),
            iters: Some(40),
            seeds: Some(Seeds::Count(2)),
            settings: vec![Axis::parse("lr=0.05").unwrap()],
            precision: PrecisionChoice::Fp32,
            kernels: KernelsChoice::Fused,
            ..Overrides::default()
        };
        let record = StudyRecord::new(&experiment, Preset::Smoke, &overrides).unwrap();
        let path = dir.path().join("experiment.toml");
        write(&path, &record, &experiment).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        for line in [
            "preset = \"smoke\"",
            "seeds = [0, 1]",
            "iters = 40",
            "precision = \"fp32\"",
            "kernels = \"fused\"",
            "set = [\"lr=0.05\"]",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
        let (back, again) = read(dir.path(), &path).unwrap();
        assert_eq!((&back, &again), (&record, &experiment));
        let planned = |o: &Overrides| -> Vec<crate::run::RunConfig> {
            plan::plan(&experiment, Preset::Smoke, o, dir.path()).unwrap().iter().map(|r| r.config().clone()).collect()
        };
        assert_eq!(planned(&back.overrides(0).unwrap()), planned(&overrides));
        let command = back.command_line("fig1", Path::new("out"));
        assert!(command.contains("--preset smoke --out out --data embedded --iters 40 --seeds 0,1"), "{command}");
    }

    #[test]
    fn a_folder_without_a_study_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("experiment.toml");
        let err = read(dir.path(), &path).unwrap_err().to_string();
        assert!(err.contains("holds no study (it has no experiment.toml)"), "{err}");
        let missing = dir.path().join("typo");
        let err = read(&missing, &missing.join("experiment.toml")).unwrap_err().to_string();
        assert!(err.contains("holds no study (it does not exist)"), "{err}");
        std::fs::write(&path, "name = \"fig1\"\n").unwrap();
        let err = read(dir.path(), &path).unwrap_err().to_string();
        assert!(err.contains("older reslab"), "{err}");
    }
}
