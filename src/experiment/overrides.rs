//! What the command line adds to an experiment's preset (`--iters`, `--seeds`, `--set`, ...), and
//! the seeds a plan takes from it.

use super::on_demand::{OnDemand, FIRST_SEEDS};
use super::preset::Preset;
use super::spec::{Experiment, Seeds};
use crate::data::DataSource;
use crate::run::config::{DeviceChoice, KernelsChoice, PrecisionChoice};
use crate::run::settings::Axis;
use anyhow::Result;
use clap::ValueEnum;
use std::collections::BTreeMap;

/// What the command line adds to an experiment's preset.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--data`: the data instead of the preset's.
    pub data: Option<DataSource>,
    /// `--iters`: the schedule's length instead of the preset's (the lr steps follow it).
    pub iters: Option<usize>,
    /// `--eval-every`: iterations between evaluations instead of the preset's.
    pub eval_every: Option<usize>,
    /// One seed instead of the experiment's seeds.
    pub seed: Option<u64>,
    /// These seeds (`--seeds 3`: 0..3; `--seeds 3-5`) instead of the experiment's.
    pub seeds: Option<Seeds>,
    /// `--seeds auto`: seeds on demand, a round at a time.
    pub on_demand: Option<OnDemand>,
    /// Seeds on demand: each network's seeds at the study's current round (seeds 0 to n-1), from
    /// its round record; a network it does not name has the first round's.
    pub round_seeds: BTreeMap<String, usize>,
    /// CPU threads per run for libtorch; 0 means one per core.
    pub threads: usize,
    /// The precision of the runs (`auto` is decided where each run starts training).
    pub precision: PrecisionChoice,
    /// The kernels of the runs' training steps (`auto` is decided with the precision).
    pub kernels: KernelsChoice,
    /// Only the runs at these depths.
    pub depths: Option<Vec<i64>>,
    /// Processes training each run together (data parallel: a Slurm task's ranks); default 1.
    pub world_size: Option<usize>,
    /// `--device`: where the runs compute (how they are executed, never part of what they are).
    pub device: DeviceChoice,
    /// `--set`: keys of every run's configuration; an axis of several values is a grid axis,
    /// spelled out into runs by [`Experiment::with_grid`], one value applies to every run.
    pub settings: Vec<Axis>,
}

impl Overrides {
    /// The command-line arguments that give these overrides (for a cluster job that plans the
    /// same runs again).
    pub fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut push = |flag: &str, value: String| args.extend([flag.to_string(), value]);
        if let Some(data) = &self.data {
            push("--data", data.to_string());
        }
        if let Some(iters) = self.iters {
            push("--iters", iters.to_string());
        }
        if let Some(every) = self.eval_every {
            push("--eval-every", every.to_string());
        }
        if let Some(seed) = self.seed {
            push("--seed", seed.to_string());
        }
        if let Some(seeds) = &self.seeds {
            push("--seeds", seeds.arg_text());
        }
        if let Some(on_demand) = &self.on_demand {
            let words = on_demand.to_args();
            for pair in words.chunks(2) {
                push(&pair[0], pair[1].clone());
            }
        }
        if let Some(depths) = &self.depths {
            push("--depths", depths.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(","));
        }
        for axis in &self.settings {
            push("--set", axis.arg_text());
        }
        if self.precision != PrecisionChoice::Auto {
            let name = self.precision.to_possible_value().expect("no skipped values").get_name().to_string();
            push("--precision", name);
        }
        if self.kernels != KernelsChoice::Auto {
            let name = self.kernels.to_possible_value().expect("no skipped values").get_name().to_string();
            push("--kernels", name);
        }
        args
    }
}

/// The seeds of the network `name` in a plan: with seeds on demand those of its round, else
/// [`seeds`].
pub fn network_seeds(experiment: &Experiment, preset: Preset, overrides: &Overrides, name: &str) -> Result<Vec<u64>> {
    if overrides.on_demand.is_some() {
        let n = overrides.round_seeds.get(name).copied().unwrap_or(FIRST_SEEDS);
        return Ok((0..n as u64).collect());
    }
    seeds(experiment, preset, overrides)
}

/// The seeds of a plan of fixed seeds: the command line's, the preset's, the experiment's, or
/// seed 0 (none with seeds on demand: each network has its own).
pub fn seeds(experiment: &Experiment, preset: Preset, overrides: &Overrides) -> Result<Vec<u64>> {
    if overrides.on_demand.is_some() {
        return Ok(Vec::new());
    }
    if let Some(seeds) = &overrides.seeds {
        return Ok(seeds.list());
    }
    if let Some(seed) = overrides.seed {
        return Ok(vec![seed]);
    }
    let spec = experiment.preset(preset)?;
    Ok(spec.seeds.as_ref().or(experiment.seeds.as_ref()).map_or(vec![0], |s| s.list()))
}
