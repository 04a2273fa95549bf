//! From an experiment and a preset to one run configuration per run.

use super::overrides::{network_seeds, Overrides};
use super::preset::Preset;
use super::spec::{Experiment, RunEntry};
use super::study_dir::StudyDir;
use crate::data::DataConfig;
use crate::model::ModelSpec;
use crate::run::config::{RunConfig, TrainOptions};
use crate::run::settings::{Axis, Setting};
use crate::run::{RunDir, RunState};
use crate::train::request::AutoPrecision;
use crate::train::{Run, RunRequest};
use anyhow::{bail, Result};
use std::path::Path;

/// One run of a plan: a network at one seed, ready to train.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRun {
    /// The network's run name, canonical and without seed (`resnet-20`, `resnet-20-B`): what
    /// expectations and tables name, and what seeds are aggregated over.
    pub name: String,
    /// The seed it is trained with.
    pub seed: u64,
    /// Its configuration and its directory in the study's folder.
    pub run: Run,
}

impl PlannedRun {
    /// Directory name inside the experiment's output folder: the name and the seed.
    pub fn dir_name(&self) -> String {
        StudyDir::run_name(&self.name, self.seed)
    }

    /// The run's configuration.
    pub fn config(&self) -> &RunConfig {
        self.run.config()
    }

    /// The run's directory in the study's folder.
    pub fn dir(&self) -> &RunDir {
        self.run.dir()
    }
}

/// The runs of a plan still to train. A run directory holding a run of another configuration
/// (another `--set`, `--iters` or preset into the same folder) or one modified after it completed
/// is an error naming it and what differs, before anything trains: it is neither this run nor to
/// be overwritten.
pub fn pending(runs: Vec<PlannedRun>) -> Result<Vec<PlannedRun>> {
    let mut pending = Vec::new();
    for run in runs {
        match run.run.state() {
            RunState::Complete(_) => {}
            state if state.needs_attention() => bail!(state.refusal(&run.dir().path)),
            _ => pending.push(run),
        }
    }
    Ok(pending)
}

/// The runs of `experiment` at `preset` with `overrides`, to be made in `out`. A run already in
/// `out` keeps its precision under `auto` (made in fp32, or before the setting existed, it
/// resumes in fp32 where `auto` now means bf16).
pub fn plan(experiment: &Experiment, preset: Preset, overrides: &Overrides, out: &Path) -> Result<Vec<PlannedRun>> {
    let spec = experiment.preset(preset)?;
    let Some(source) = overrides.data.clone().or_else(|| spec.data.clone()) else {
        bail!(
            "preset '{}' of experiment '{}' needs the full CIFAR-10: give --data PATH \
             (cifar-10-batches-bin/, its parent, or cifar-10-binary.tar.gz)",
            preset.name(),
            experiment.name
        );
    };
    let iters = overrides.iters.unwrap_or(spec.iters);
    let options = TrainOptions {
        iters,
        eval_every: Some(overrides.eval_every.unwrap_or(spec.eval_every)),
        // A preset's own steps fit its length; with another length the paper's shape scales.
        lr_steps: spec.lr_steps.clone().filter(|_| overrides.iters.is_none()),
        batch_size: spec.batch_size.unwrap_or(TrainOptions::default().batch_size),
        threads: overrides.threads,
        precision: overrides.precision,
        kernels: overrides.kernels,
        log_grads: experiment.analysis.log_grads_every(iters),
        world_size: overrides.world_size.unwrap_or(1),
        ..TrainOptions::default()
    };
    let mut data = DataConfig::new(source);
    if let Some(eval_set) = spec.eval_set {
        data.eval_set = eval_set;
    }
    if let Some(input_size) = spec.input_size {
        data.input_size = input_size;
    }
    let depths = overrides.depths.as_ref().or(spec.depths.as_ref());
    let single: Vec<Setting> = overrides.settings.iter().filter_map(Axis::single).collect();
    let mut runs = Vec::new();
    for (run, model) in selected_runs(experiment, preset, overrides)? {
        let name = run.run_name()?;
        // The run's own settings (its grid point), then the command line's single values that fit
        // its network (`left_alone` says which do not).
        let mut settings = run.settings()?;
        settings.extend(single.iter().filter(|s| s.fits(&model)).cloned());
        for seed in network_seeds(experiment, preset, overrides, &name)? {
            let options = TrainOptions { seed, warmup: run.warmup, ..options.clone() };
            let request =
                RunRequest::new(model.clone(), data.clone(), options).in_dir(StudyDir::new(out).run(&name, seed).path);
            // `auto` is decided where each run is trained, not here.
            let request = RunRequest {
                auto_precision: AutoPrecision::AtRunStart,
                settings: settings.clone(),
                device: Some(overrides.device),
                ..request
            };
            let resolved = request.resolve().map_err(|e| match overrides.world_size {
                Some(tasks) if tasks > 1 => e.context(format!("{} on {tasks} tasks", StudyDir::run_name(&name, seed))),
                _ => e,
            })?;
            runs.push(PlannedRun { name: name.clone(), seed, run: resolved });
        }
    }
    if runs.is_empty() {
        bail!("no run of experiment '{}' is at depths {:?}", experiment.name, depths.unwrap_or(&Vec::new()));
    }
    Ok(runs)
}

/// An error where one of the command line's `--set` values fits no run of the `experiments` it
/// names together (one study, or `paper`'s) at `preset`: a shortcut option for plain nets only.
pub fn check_some_run_fits(experiments: &[Experiment], preset: Preset, overrides: &Overrides) -> Result<()> {
    let mut selected = Vec::new();
    for experiment in experiments {
        selected.extend(selected_runs(experiment, preset, overrides)?);
    }
    for setting in overrides.settings.iter().filter_map(Axis::single) {
        if selected.is_empty() || selected.iter().any(|(_, model)| setting.fits(model)) {
            continue;
        }
        let why = setting.key.partial_option().map_or("", |option| option.lacking());
        let names: Vec<String> = selected.iter().map(|(run, _)| run.run_name()).collect::<Result<_>>()?;
        let studies: Vec<String> = experiments.iter().map(|e| format!("'{}'", e.name)).collect();
        bail!(
            "--set {setting}: no run of experiment {} has it ({why}: {}); expected a key that applies to at least \
             one run",
            studies.join(", "),
            names.join(", ")
        );
    }
    Ok(())
}

/// The runs of `experiment` at `preset` the depths select (the command line's, else the
/// preset's), with their networks.
fn selected_runs<'a>(
    experiment: &'a Experiment,
    preset: Preset,
    overrides: &Overrides,
) -> Result<Vec<(&'a RunEntry, ModelSpec)>> {
    let depths = overrides.depths.as_ref().or(experiment.preset(preset)?.depths.as_ref());
    let mut selected = Vec::new();
    for run in &experiment.runs {
        let model = run.spec()?;
        if depths.is_none_or(|d| d.contains(&model.depth)) {
            selected.push((run, model));
        }
    }
    Ok(selected)
}

/// A line for each of the command line's `--set` values that some runs lack (a shortcut option
/// for a plain net): the runs it leaves alone, which train without it.
pub fn left_alone(experiment: &Experiment, preset: Preset, overrides: &Overrides) -> Result<Vec<String>> {
    let selected = selected_runs(experiment, preset, overrides)?;
    let mut lines = Vec::new();
    for setting in overrides.settings.iter().filter_map(Axis::single) {
        let mut alone = Vec::new();
        for (run, model) in &selected {
            if !setting.fits(model) {
                alone.push(run.run_name()?);
            }
        }
        if let (false, Some(option)) = (alone.is_empty(), setting.key.partial_option()) {
            lines.push(format!(
                "--set {setting} applies to {} of {} runs; it leaves {} alone ({})",
                selected.len() - alone.len(),
                selected.len(),
                alone.join(", "),
                option.lacking()
            ));
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::DataSource;
    use crate::experiment::spec::Seeds;

    #[test]
    fn fig1_demo_plans_two_plain_runs_on_the_embedded_sample() {
        let experiment = Experiment::load("fig1").unwrap();
        let runs = plan(&experiment, Preset::Demo, &Overrides::default(), Path::new("no-such-dir")).unwrap();
        let names: Vec<String> = runs.iter().map(|r| r.dir_name()).collect();
        assert_eq!(names, ["plain-20-seed0", "plain-56-seed0"]);
        assert_eq!(runs[0].config().data.source, DataSource::Embedded);
        let s = &runs[1].config().schedule;
        assert_eq!(s.lr_steps, vec![s.iters / 2, s.iters * 3 / 4]);
    }

    #[test]
    fn the_paper_preset_needs_data_and_keeps_the_papers_schedule() {
        let experiment = Experiment::load("fig1").unwrap();
        let err =
            plan(&experiment, Preset::Paper, &Overrides::default(), Path::new("no-such-dir")).unwrap_err().to_string();
        assert!(err.contains("--data"), "{err}");
        let overrides = Overrides { data: Some(DataSource::Path("x".into())), ..Default::default() };
        let runs = plan(&experiment, Preset::Paper, &overrides, Path::new("no-such-dir")).unwrap();
        assert_eq!(runs[0].config().schedule.iters, 64_000);
        assert_eq!(runs[0].config().schedule.lr_steps, vec![32_000, 48_000]);
        assert_eq!(runs[0].config().optim, crate::run::config::OptimConfig::default());
    }

    #[test]
    fn seeds_multiply_the_runs_and_the_warm_up_comes_from_the_file() {
        let experiment = Experiment::load("fig6").unwrap();
        let runs = plan(&experiment, Preset::Smoke, &Overrides::default(), Path::new("no-such-dir")).unwrap();
        // smoke: 9 networks (resnet-1202 left out) x the file's 2 seeds.
        assert_eq!(runs.len(), 18);
        let dirs: Vec<String> = runs.iter().map(|r| r.dir_name()).collect();
        assert_eq!(dirs[..2], ["plain-20-seed0".to_string(), "plain-20-seed1".to_string()]);
        assert!(!dirs.iter().any(|d| d.contains("1202")));
        let r110 = runs.iter().find(|r| r.name == "resnet-110").unwrap();
        assert!(r110.config().schedule.warmup.is_some());
        assert!(runs.iter().find(|r| r.name == "resnet-56").unwrap().config().schedule.warmup.is_none());
        assert_eq!(runs[1].config().seed, 1);
        let overrides = Overrides { seeds: Some(Seeds::Count(3)), ..Default::default() };
        assert_eq!(plan(&experiment, Preset::Smoke, &overrides, Path::new("no-such-dir")).unwrap().len(), 27);
        let overrides = Overrides { seed: Some(7), ..Default::default() };
        let runs = plan(&experiment, Preset::Smoke, &overrides, Path::new("no-such-dir")).unwrap();
        assert!(runs.len() == 9 && runs.iter().all(|r| r.seed == 7 && r.config().seed == 7));
    }
}
