//! From an experiment and a preset to one run configuration per run.

use super::spec::Experiment;
use crate::data::DataSource;
use crate::run::config::{DataConfig, Preset, RunConfig, TrainOptions};
use anyhow::{bail, Result};

/// What the command line adds to an experiment's preset.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub data: Option<DataSource>,
    pub iters: Option<usize>,
    pub eval_every: Option<usize>,
    pub seed: u64,
    pub threads: usize,
    /// Only the runs at these depths.
    pub depths: Option<Vec<i64>>,
}

#[derive(Debug, Clone)]
pub struct PlannedRun {
    /// Directory name inside the experiment's output folder.
    pub name: String,
    pub config: RunConfig,
}

pub fn plan(experiment: &Experiment, preset: Preset, overrides: &Overrides) -> Result<Vec<PlannedRun>> {
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
        seed: overrides.seed,
        threads: overrides.threads,
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
    let mut runs = Vec::new();
    for run in &experiment.runs {
        let model = run.spec()?;
        if depths.is_some_and(|d| !d.contains(&model.depth)) {
            continue;
        }
        let config = RunConfig::from_options(model, data.clone(), &options);
        config.validate()?;
        runs.push(PlannedRun { name: run.run_name(), config });
    }
    if runs.is_empty() {
        bail!("no run of experiment '{}' is at depths {:?}", experiment.name, depths.unwrap_or(&Vec::new()));
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fig1_demo_plans_two_plain_runs_on_the_embedded_sample() {
        let experiment = Experiment::load("fig1").unwrap();
        let runs = plan(&experiment, Preset::Demo, &Overrides::default()).unwrap();
        let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["plain-20", "plain-56"]);
        assert_eq!(runs[0].config.data.source, DataSource::Embedded);
        let s = &runs[1].config.schedule;
        assert_eq!(s.lr_steps, vec![s.iters / 2, s.iters * 3 / 4]);
    }

    #[test]
    fn the_paper_preset_needs_data_and_keeps_the_papers_schedule() {
        let experiment = Experiment::load("fig1").unwrap();
        let err = plan(&experiment, Preset::Paper, &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("--data"), "{err}");
        let overrides = Overrides { data: Some(DataSource::Path("x".into())), ..Default::default() };
        let runs = plan(&experiment, Preset::Paper, &overrides).unwrap();
        assert_eq!(runs[0].config.schedule.iters, 64_000);
        assert_eq!(runs[0].config.schedule.lr_steps, vec![32_000, 48_000]);
        assert_eq!(runs[0].config.optim, crate::run::config::OptimConfig::default());
    }
}
