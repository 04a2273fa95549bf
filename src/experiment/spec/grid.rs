//! Grid expansion: a `[grid]` (and the command line's `--set k=v1,v2`) spelled out into runs,
//! claims and panels at every point. Separate from the file format because it rewrites an
//! experiment rather than describing one.

use super::{Curves, Expectation, Experiment, Panel, Prediction, RunEntry};
use crate::run::settings::{self, Axis, Setting};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;

/// The grid's axes: the file's `[grid]` with the command line's on top (`--set k=v1,v2` replaces
/// or adds an axis; `--set k=v` fixes the key, which then varies no more), in key order.
pub fn grid_axes(grid: &BTreeMap<String, toml::Value>, command_line: &[Axis]) -> Result<Vec<Axis>> {
    let mut axes = Vec::new();
    for (key, values) in grid {
        let axis = Axis::from_toml(key, values).context("[grid]")?;
        if !axis.varies() {
            bail!(
                "[grid] {} has one value; expected two or more (one value for every run: --set {})",
                axis.key.name,
                axis.arg_text()
            );
        }
        axes.push(axis);
    }
    for axis in command_line {
        axes.retain(|a: &Axis| !std::ptr::eq(a.key, axis.key));
        if axis.varies() {
            axes.push(axis.clone());
        }
    }
    axes.sort_by_key(|a| settings::KEYS.iter().position(|k| std::ptr::eq(k, a.key)));
    Ok(axes)
}

/// Every point of `axes` (the first axis outermost), each as settings.
fn grid_points(axes: &[Axis]) -> Vec<Vec<Setting>> {
    let mut points: Vec<Vec<Setting>> = vec![vec![]];
    for axis in axes {
        points = points
            .into_iter()
            .flat_map(|point| {
                axis.values.iter().map(move |value| {
                    let mut point = point.clone();
                    point.push(Setting { key: axis.key, value: value.clone() });
                    point
                })
            })
            .collect();
    }
    points
}

fn point_text(point: &[Setting]) -> String {
    point.iter().map(Setting::to_string).collect::<Vec<_>>().join(", ")
}

/// `entry` at grid point `point`: the point's settings added to its own (which may not name them).
fn run_at(entry: &RunEntry, point: &[Setting]) -> Result<RunEntry> {
    let mut entry = entry.clone();
    for setting in point {
        if entry.set.contains_key(setting.key.name) {
            bail!("[[runs]] '{}' sets {}, which the grid varies", entry.model, setting.key.name);
        }
        entry.set.insert(setting.key.name.to_string(), setting.value.to_toml());
    }
    Ok(entry)
}

impl Prediction {
    /// The same prediction of the runs `rename` names instead.
    fn renamed(&self, rename: impl Fn(&String) -> Result<String>) -> Result<Prediction> {
        Ok(match self {
            Prediction::HigherTrainError { worse, better } => {
                Prediction::HigherTrainError { worse: rename(worse)?, better: rename(better)? }
            }
            Prediction::HigherTestError { worse, better } => {
                Prediction::HigherTestError { worse: rename(worse)?, better: rename(better)? }
            }
            Prediction::SmallerResponses { smaller, larger } => {
                Prediction::SmallerResponses { smaller: rename(smaller)?, larger: rename(larger)? }
            }
            Prediction::FlatterLandscape { flatter, sharper } => {
                Prediction::FlatterLandscape { flatter: rename(flatter)?, sharper: rename(sharper)? }
            }
            Prediction::SimilarTrainError { runs, within } => {
                Prediction::SimilarTrainError { runs: runs.iter().map(rename).collect::<Result<_>>()?, within: *within }
            }
        })
    }
}

impl Experiment {
    /// The experiment with its grid (and the command line's grid axes) spelled out: each run at
    /// each grid point (named by it: `plain-20-lr0.05`), each claim judged at each point it names
    /// (one verdict per point), each panel repeated per value of its `by` key. Without a grid, itself.
    pub fn with_grid(&self, command_line: &[Axis]) -> Result<Experiment> {
        let axes = grid_axes(&self.grid, command_line)?;
        let mut expanded = Experiment { grid: BTreeMap::new(), ..self.clone() };
        if axes.is_empty() {
            return Ok(expanded);
        }
        let points = grid_points(&axes);
        expanded.runs = Vec::new();
        for point in &points {
            for entry in &self.runs {
                expanded.runs.push(run_at(entry, point)?);
            }
        }
        expanded.expect = self.claims_at_points(&axes, &points)?;
        expanded.panels = self.panels_at_points(&axes, &points)?;
        expanded.validate()?;
        Ok(expanded)
    }

    /// The name of run `base` (as the file names it) at grid point `point`.
    fn name_at(&self, base: &str, point: &[Setting]) -> Result<String> {
        let entry = self.entry(base).with_context(|| format!("no run '{base}'"))?;
        run_at(entry, point)?.run_name()
    }

    /// Each claim at each grid point it names (`point = {...}`, default every point).
    fn claims_at_points(&self, axes: &[Axis], points: &[Vec<Setting>]) -> Result<Vec<Expectation>> {
        let mut claims = Vec::new();
        for expectation in &self.expect {
            let wanted: Vec<Setting> = expectation
                .point
                .iter()
                .map(|(key, value)| {
                    let axis = Axis::from_toml(key, value).context("[[expect]] point")?;
                    if !axes.iter().any(|a| std::ptr::eq(a.key, axis.key)) {
                        bail!("[[expect]] point names {}, which the grid does not vary", axis.key.name);
                    }
                    axis.single().with_context(|| format!("[[expect]] point.{key}: expected one value"))
                })
                .collect::<Result<_>>()?;
            for point in points.iter().filter(|p| wanted.iter().all(|w| p.contains(w))) {
                claims.push(Expectation {
                    prediction: expectation.prediction.renamed(|name| self.name_at(name, point))?,
                    claim: Some(format!("{} (at {})", expectation.claim_text(), point_text(point))),
                    point: point.iter().map(|s| (s.key.name.to_string(), s.value.to_toml())).collect(),
                    ..expectation.clone()
                });
            }
        }
        Ok(claims)
    }

    /// Each panel once per value of its `by` key (default the grid's first), with its runs at every
    /// point of that value; without panels, one per value of the first key with every run.
    fn panels_at_points(&self, axes: &[Axis], points: &[Vec<Setting>]) -> Result<Vec<Panel>> {
        let first = &axes[0];
        let panels = if self.panels.is_empty() {
            let every: Vec<String> = self.runs.iter().map(RunEntry::run_name).collect::<Result<_>>()?;
            vec![Panel { title: String::new(), runs: every, show: Curves::Both, by: None }]
        } else {
            self.panels.clone()
        };
        let mut expanded = Vec::new();
        for panel in &panels {
            // A `by` key the command line fixed (`--set lr=0.1`) falls back to the first axis left.
            let by = match &panel.by {
                Some(key) => {
                    let key = settings::key_named(key).context("[[panels]] by")?;
                    let in_file = self.grid.keys().any(|k| settings::key_named(k).is_ok_and(|k| std::ptr::eq(k, key)));
                    match axes.iter().find(|a| std::ptr::eq(a.key, key)) {
                        Some(axis) => axis,
                        None if in_file => first,
                        None => bail!("[[panels]] by = \"{}\": the grid does not vary it", key.name),
                    }
                }
                None => first,
            };
            for value in &by.values {
                let at_value = |p: &&Vec<Setting>| p.iter().any(|s| std::ptr::eq(s.key, by.key) && s.value == *value);
                let mut runs = Vec::new();
                for point in points.iter().filter(at_value) {
                    for name in &panel.runs {
                        runs.push(self.name_at(name, point)?);
                    }
                }
                let heading = format!("{}={value}", by.key.name);
                let title = if panel.title.is_empty() { heading } else { format!("{}, {heading}", panel.title) };
                expanded.push(Panel { title, runs, show: panel.show, by: None });
            }
        }
        Ok(expanded)
    }
}
