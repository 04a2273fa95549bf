//! The runs of a study as read back from their directories: each network's complete runs over
//! seeds, with their statistics and curves. Reads only run directories, so it works for runs made
//! anywhere (this machine, child processes, a cluster).

use super::plan::PlannedRun;
use super::spec::Experiment;
use super::stats;
use crate::model::Precision;
use crate::report::table::{GroupRow, MeanStd};
use crate::run::metrics::{self, MetricsRow};
use crate::run::{RunConfig, RunDir, RunState, RunSummary};
use crate::util::stats::{mean, mean_sd};
use anyhow::{bail, Result};

/// One complete run (one seed) as read back from its directory.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The run directory's name (`resnet-20-seed0`).
    pub dir: String,
    /// The seed it was trained with.
    pub seed: u64,
    /// The precision it was trained in (its `config.toml`'s: a pending `auto` of the plan is
    /// decided where the run starts).
    pub precision: Precision,
    /// Its `summary.toml`.
    pub summary: RunSummary,
    /// Its `metrics.csv`, in order.
    pub rows: Vec<MetricsRow>,
    /// The std of each 3x3 layer's response, where the experiment analyses them.
    pub responses: Option<Vec<f64>>,
    /// Its loss landscape's summary numbers, where the experiment analyses them.
    pub landscape: Option<LandscapeNumbers>,
}

/// A run's loss landscape in two numbers (see [`crate::analysis::landscape`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LandscapeNumbers {
    /// Mean log10(loss / centre loss) within half the span: larger rises faster.
    pub sharpness: f64,
    /// Share of the points near the centre where the surface is locally convex.
    pub convex_share: f64,
}

/// A network's complete runs over seeds.
#[derive(Debug, Clone)]
pub struct GroupResult {
    /// The run name, without seed (`resnet-20`, `resnet-20-B`).
    pub name: String,
    /// The network's name as `reslab models` gives it ([`crate::model::ModelSpec::name`]:
    /// `resnet-20`, `plain-20`), its shortcut option in `variant`.
    pub model: String,
    /// Depth in weighted layers.
    pub depth: i64,
    /// "plain" or the shortcut option.
    pub variant: String,
    /// The paper's error (%) for this network, from the experiment file.
    pub paper_err: Option<f64>,
    /// More of the paper's number (e.g. "(mean±std)"), from the experiment file.
    pub paper_note: Option<String>,
    /// The complete runs, one per seed.
    pub runs: Vec<RunResult>,
    /// The settings of its `[[runs]]` entry (a grid point's), key and value, in key order.
    pub point: Vec<(String, String)>,
}

impl GroupResult {
    /// Each 3x3 layer's response std, averaged over the seeds; `None` where not analysed.
    pub fn responses(&self) -> Option<Vec<f64>> {
        let per_seed: Vec<&Vec<f64>> = self.runs.iter().map(|r| r.responses.as_ref()).collect::<Option<_>>()?;
        let layers = per_seed.first()?.len();
        Some((0..layers).map(|i| per_seed.iter().map(|v| v[i]).sum::<f64>() / per_seed.len() as f64).collect())
    }

    /// Mean, sample standard deviation and count over the seeds of `value`.
    pub fn stat(&self, value: impl Fn(&RunSummary) -> f64) -> MeanStd {
        MeanStd::of(&self.runs.iter().map(|r| value(&r.summary)).collect::<Vec<_>>())
    }

    /// `value` at each metrics row (rows at the same iteration in every seed), with its mean over
    /// the seeds and a band around it: see [`Band`].
    pub fn curve(&self, value: fn(&MetricsRow) -> f64) -> Vec<CurvePoint> {
        let Some(first) = self.runs.first() else { return Vec::new() };
        let band = Band::for_seeds(self.runs.len());
        first
            .rows
            .iter()
            .filter_map(|row| {
                let values: Vec<f64> = self
                    .runs
                    .iter()
                    .map(|r| r.rows.iter().find(|other| other.iter == row.iter).map(value))
                    .collect::<Option<_>>()?;
                let mean = mean(&values);
                let (low, high) = match band {
                    Band::None => (mean, mean),
                    Band::Range => (
                        values.iter().cloned().fold(f64::INFINITY, f64::min),
                        values.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                    ),
                    Band::Interval95 => {
                        let (_, sd) = mean_sd(&values);
                        let half =
                            stats::t_quantile(0.975, (values.len() - 1) as f64) * sd / (values.len() as f64).sqrt();
                        (mean - half, mean + half)
                    }
                };
                Some(CurvePoint { iter: row.iter as f64, mean, low, high })
            })
            .collect()
    }

    pub(super) fn table_row(&self) -> GroupRow {
        let first = &self.runs[0].summary;
        GroupRow {
            run: self.name.clone(),
            model: self.model.clone(),
            variant: self.variant.clone(),
            params: first.params,
            final_train_err: self.stat(|s| s.final_train_err),
            final_test_err: self.stat(|s| s.final_test_err),
            mean_train_err: self.stat(|s| s.mean_train_err),
            paper_err: self.paper_err,
            paper_note: self.paper_note.clone(),
            point: self.point.clone(),
        }
    }
}

/// What the band around a mean curve shows, by the number of seeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    /// One seed: no band.
    None,
    /// Two seeds: their range (min to max); an interval from two values would be mostly width.
    Range,
    /// Three or more seeds: the 95% confidence interval of the mean (Student's t).
    Interval95,
}

impl Band {
    /// The band drawn for `seeds` seeds.
    pub fn for_seeds(seeds: usize) -> Band {
        match seeds {
            0 | 1 => Band::None,
            2 => Band::Range,
            _ => Band::Interval95,
        }
    }

    /// What the band is, in words for a legend or caption; `None` without a band.
    pub fn label(self, seeds: usize) -> Option<String> {
        match self {
            Band::None => None,
            Band::Range => Some(format!("band: min-max over {seeds} seeds")),
            Band::Interval95 => Some(format!("band: 95% CI of the mean over {seeds} seeds")),
        }
    }
}

/// One point of a mean curve over seeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    /// The iteration.
    pub iter: f64,
    /// The mean over the seeds.
    pub mean: f64,
    /// The band's lower edge (see [`Band`]).
    pub low: f64,
    /// The band's upper edge.
    pub high: f64,
}

/// A planned run without a complete result: its directory's name and state.
pub type Incomplete = (String, RunState);

/// The planned runs' complete results grouped by network (in the plan's order), and the
/// planned runs whose directory holds no complete run, with their state.
pub fn read_groups(experiment: &Experiment, runs: &[PlannedRun]) -> Result<(Vec<GroupResult>, Vec<Incomplete>)> {
    let mut groups: Vec<GroupResult> = Vec::new();
    let mut incomplete = Vec::new();
    for run in runs {
        let dir = run.dir().path.clone();
        let summary = match run.run.state() {
            RunState::Complete(summary) => *summary,
            foreign @ RunState::Foreign { .. } => bail!(foreign.refusal(&dir)),
            other => {
                incomplete.push((run.dir_name(), other));
                continue;
            }
        };
        let result = RunResult {
            dir: run.dir_name(),
            seed: run.seed,
            precision: RunConfig::load(&RunDir::new(&dir).config())?.precision,
            summary,
            rows: metrics::read(&dir)?,
            responses: None,
            landscape: None,
        };
        match groups.iter_mut().find(|g| g.name == run.name) {
            Some(group) => group.runs.push(result),
            None => {
                let model = &run.config().model;
                let entry = experiment.entry(&run.name);
                groups.push(GroupResult {
                    name: run.name.clone(),
                    model: model.name(),
                    depth: model.depth,
                    variant: model.variant(),
                    paper_err: entry.and_then(|e| e.paper_err),
                    paper_note: entry.and_then(|e| e.paper_note.clone()),
                    runs: vec![result],
                    point: match entry {
                        Some(entry) => {
                            entry.settings()?.iter().map(|s| (s.key.name.to_string(), s.value.to_string())).collect()
                        }
                        None => Vec::new(),
                    },
                })
            }
        }
    }
    Ok((groups, incomplete))
}
