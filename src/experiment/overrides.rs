//! What the command line adds to an experiment's preset (`--iters`, `--seeds`, `--set`, ...), and
//! the seeds a plan takes from it.

use super::preset::Preset;
use super::sequential::{DEFAULT_MAX_SEEDS, FIRST_SEEDS};
use super::spec::{Experiment, Seeds};
use crate::data::DataSource;
use crate::run::config::{DeviceChoice, PrecisionChoice};
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

/// `--seeds auto`: a study that trains its networks a round of seeds at a time until each claim
/// is settled ([`super::sequential`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnDemand {
    /// `--max-seeds`: the most seeds a network gets (default [`DEFAULT_MAX_SEEDS`]; a study
    /// records it). The intervals are widened for the looks this cap allows, so a study keeps it
    /// from its first round to its last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seeds: Option<usize>,
    /// `--budget`: no round starts that would end past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
}

impl OnDemand {
    /// `--seeds auto` with `max_seeds` (default [`DEFAULT_MAX_SEEDS`]) and `budget`: one line
    /// where the cap is below the first round's seeds.
    pub fn new(max_seeds: Option<usize>, budget: Option<Budget>) -> Result<OnDemand> {
        if let Some(max_seeds) = max_seeds.filter(|&n| n < FIRST_SEEDS) {
            anyhow::bail!(
                "--max-seeds {max_seeds}: seeds on demand start with {FIRST_SEEDS} seeds per network; expected \
                 {FIRST_SEEDS} or more"
            );
        }
        Ok(OnDemand { max_seeds, budget })
    }

    /// The most seeds a network gets.
    pub fn cap(&self) -> usize {
        self.max_seeds.unwrap_or(DEFAULT_MAX_SEEDS)
    }

    /// As a study records it: with its cap spelled out.
    pub fn recorded(&self) -> OnDemand {
        OnDemand { max_seeds: Some(self.cap()), ..self.clone() }
    }

    /// The command-line arguments that ask for it.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec!["--seeds".to_string(), "auto".into(), "--max-seeds".into(), self.cap().to_string()];
        if let Some(budget) = self.budget {
            args.extend(["--budget".to_string(), budget.to_string()]);
        }
        args
    }
}

/// A study's time budget (`--budget 2h`, `90m`, `1h30m`, `45s`, `1d`), recorded as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Budget {
    /// In seconds.
    pub seconds: u64,
}

impl std::str::FromStr for Budget {
    type Err = String;

    fn from_str(text: &str) -> Result<Budget, String> {
        let bad = || format!("budget '{text}': expected a duration such as 2h, 90m, 1h30m, 45s or 1d");
        let (mut seconds, mut number) = (0u64, String::new());
        for c in text.trim().chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let unit = match c {
                'd' => 86_400,
                'h' => 3_600,
                'm' => 60,
                's' => 1,
                _ => return Err(bad()),
            };
            let n: u64 = number.parse().map_err(|_| bad())?;
            seconds = n.checked_mul(unit).and_then(|s| seconds.checked_add(s)).ok_or_else(bad)?;
            number.clear();
        }
        if !number.is_empty() || seconds == 0 {
            return Err(bad());
        }
        Ok(Budget { seconds })
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (mut left, mut text) = (self.seconds, String::new());
        for (unit, name) in [(86_400, 'd'), (3_600, 'h'), (60, 'm'), (1, 's')] {
            if left >= unit {
                text += &format!("{}{name}", left / unit);
                left %= unit;
            }
        }
        f.write_str(&text)
    }
}

impl TryFrom<String> for Budget {
    type Error = String;

    fn try_from(text: String) -> Result<Budget, String> {
        text.parse()
    }
}

impl From<Budget> for String {
    fn from(budget: Budget) -> String {
        budget.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_read_as_written_and_refuse_the_rest() {
        for (text, seconds, shown) in [("2h", 7_200, "2h"), ("90m", 5_400, "1h30m"), ("1d2h3m4s", 93_784, "1d2h3m4s")] {
            let budget: Budget = text.parse().unwrap();
            assert_eq!((budget.seconds, budget.to_string().as_str()), (seconds, shown));
        }
        for bad in ["", "2", "h", "2x", "0m", "-1h", "99999999999999999999d"] {
            let err = bad.parse::<Budget>().unwrap_err();
            assert!(err.contains("expected a duration"), "{bad}: {err}");
        }
        assert!(OnDemand::new(Some(2), None).unwrap_err().to_string().contains("expected 3 or more"));
        assert_eq!(OnDemand::new(None, None).unwrap().cap(), DEFAULT_MAX_SEEDS);
    }
}
