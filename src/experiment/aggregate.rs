//! From run directories to what the report shows: each network's runs over seeds, their mean and
//! spread, the curves, and whether the paper's predictions held. Reads only run directories, so
//! it works for runs made anywhere (this machine, child processes, a cluster).

use super::plan::PlannedRun;
use super::spec::{Expectation, Experiment};
use crate::model::Kind;
use crate::report::chart::{self, Curve, ErrorChart};
use crate::report::table::{self, ContextRow, GroupRow, MeanStd, RunRow, TableHeading};
use crate::run::metrics::{self, MetricsRow};
use crate::run::{RunState, RunSummary};
use crate::util::fs::write_file;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// One complete run (one seed) as read back from its directory.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub dir: String,
    pub seed: u64,
    pub summary: RunSummary,
    pub rows: Vec<MetricsRow>,
}

/// A network's complete runs over seeds.
#[derive(Debug, Clone)]
pub struct GroupResult {
    /// The run name, without seed (`resnet-20`, `resnet-20-B`).
    pub name: String,
    pub depth: i64,
    /// "plain" or the shortcut option.
    pub variant: String,
    pub paper_err: Option<f64>,
    pub paper_note: Option<String>,
    pub runs: Vec<RunResult>,
}

impl GroupResult {
    /// Mean, sample standard deviation and count over the seeds of `value`.
    pub fn stat(&self, value: impl Fn(&RunSummary) -> f64) -> MeanStd {
        MeanStd::of(&self.runs.iter().map(|r| value(&r.summary)).collect::<Vec<_>>())
    }

    /// `value` at each metrics row, averaged over the seeds (rows at the same iteration), with
    /// its smallest and largest value over the seeds: (iteration, mean, min, max).
    pub fn curve(&self, value: fn(&MetricsRow) -> f64) -> Vec<(f64, f64, f64, f64)> {
        let Some(first) = self.runs.first() else { return Vec::new() };
        first
            .rows
            .iter()
            .filter_map(|row| {
                let values: Vec<f64> = self
                    .runs
                    .iter()
                    .map(|r| r.rows.iter().find(|other| other.iter == row.iter).map(value))
                    .collect::<Option<_>>()?;
                let mean = values.iter().sum::<f64>() / values.len() as f64;
                let min = values.iter().cloned().fold(f64::INFINITY, f64::min);
                let max = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                Some((row.iter as f64, mean, min, max))
            })
            .collect()
    }

    fn table_row(&self) -> GroupRow {
        let first = &self.runs[0].summary;
        GroupRow {
            run: self.name.clone(),
            model: first.model.clone(),
            variant: self.variant.clone(),
            params: first.params,
            final_train_err: self.stat(|s| s.final_train_err),
            final_test_err: self.stat(|s| s.final_test_err),
            mean_train_err: self.stat(|s| s.mean_train_err),
            paper_err: self.paper_err,
            paper_note: self.paper_note.clone(),
        }
    }
}

/// Whether an expectation held, with the numbers that decided it.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    pub holds: bool,
    pub text: String,
}

/// What aggregation found and wrote.
pub struct StudyReport {
    pub groups: Vec<GroupResult>,
    pub checks: Vec<CheckOutcome>,
    /// Planned runs whose directory holds no complete run, with their state.
    pub incomplete: Vec<(String, RunState)>,
    pub files: Vec<PathBuf>,
}

impl StudyReport {
    /// What `reslab reproduce` prints: a line per network (mean over seeds), the checks, the files.
    pub fn text(&self, experiment: &Experiment) -> String {
        let mut text = format!("\n{}: {}\n", experiment.name, experiment.title);
        text += &format!(
            "{:<16} {:>5} {:>18} {:>18} {:>18}\n",
            "run", "seeds", "final train err", "final test err", "mean train err"
        );
        for g in &self.groups {
            let cell = |s: MeanStd| format!("{}%", s.text());
            text += &format!(
                "{:<16} {:>5} {:>18} {:>18} {:>18}\n",
                g.name,
                g.runs.len(),
                cell(g.stat(|s| s.final_train_err)),
                cell(g.stat(|s| s.final_test_err)),
                cell(g.stat(|s| s.mean_train_err))
            );
        }
        for (dir, state) in &self.incomplete {
            text += &format!("{dir}: {state}, not in the tables\n");
        }
        for check in &self.checks {
            text += &format!("{}\n", check.text);
        }
        for file in &self.files {
            text += &format!("wrote {}\n", file.display());
        }
        text
    }
}

/// Reads the planned runs' directories in `out` and writes the study's tables and charts there.
pub fn aggregate(experiment: &Experiment, runs: &[PlannedRun], out: &Path) -> Result<StudyReport> {
    let mut groups: Vec<GroupResult> = Vec::new();
    let mut incomplete = Vec::new();
    for run in runs {
        let dir = out.join(run.dir_name());
        let summary = match RunState::read(&dir) {
            RunState::Complete(summary) => *summary,
            other => {
                incomplete.push((run.dir_name(), other));
                continue;
            }
        };
        let result = RunResult { dir: run.dir_name(), seed: run.seed, summary, rows: metrics::read(&dir)? };
        match groups.iter_mut().find(|g| g.name == run.name) {
            Some(group) => group.runs.push(result),
            None => {
                let model = &run.config.model;
                let entry = experiment.entry(&run.name);
                groups.push(GroupResult {
                    name: run.name.clone(),
                    depth: model.depth,
                    variant: match model.kind {
                        Kind::Plain => "plain".to_string(),
                        Kind::Residual => model.shortcut.to_string(),
                    },
                    paper_err: entry.and_then(|e| e.paper_err),
                    paper_note: entry.and_then(|e| e.paper_note.clone()),
                    runs: vec![result],
                })
            }
        }
    }
    let checks: Vec<CheckOutcome> = experiment.expect.iter().filter_map(|e| check(e, &groups)).collect();
    let mut files = Vec::new();
    if !groups.is_empty() {
        files.extend(write_charts(experiment, &groups, out)?);
    }
    files.extend(write_tables(experiment, &groups, &checks, out)?);
    Ok(StudyReport { groups, checks, incomplete, files })
}

fn write_tables(
    experiment: &Experiment,
    groups: &[GroupResult],
    checks: &[CheckOutcome],
    out: &Path,
) -> Result<Vec<PathBuf>> {
    let heading = TableHeading {
        title: experiment.title.clone(),
        description: experiment.description.clone(),
        paper_source: experiment.paper_source.clone(),
    };
    let run_rows: Vec<RunRow> = groups.iter().flat_map(|g| g.runs.iter().map(move |r| run_row(g, r))).collect();
    let group_rows: Vec<GroupRow> = groups.iter().map(GroupResult::table_row).collect();
    let context: Vec<ContextRow> = experiment
        .context
        .iter()
        .map(|c| ContextRow { method: c.method.clone(), err: c.err, note: c.note.clone() })
        .collect();
    let check_texts: Vec<String> = checks.iter().map(|c| c.text.clone()).collect();
    let stem = experiment.table.clone().unwrap_or_else(|| "table".into());
    let files = [
        (out.join("summary.csv"), table::summary_csv(&run_rows)?),
        (out.join("summary.md"), table::summary_markdown(&heading, &run_rows, &[])),
        (out.join(format!("{stem}.csv")), table::study_csv(&group_rows, &context)?),
        (out.join(format!("{stem}.md")), table::study_markdown(&heading, &group_rows, &context, &check_texts)),
    ];
    for (path, text) in &files {
        write_file(path, text.as_bytes())?;
    }
    Ok(files.into_iter().map(|(path, _)| path).collect())
}

fn run_row(group: &GroupResult, run: &RunResult) -> RunRow {
    let s = &run.summary;
    RunRow {
        run: run.dir.clone(),
        model: s.model.clone(),
        variant: group.variant.clone(),
        params: s.params,
        macs: s.macs,
        iters: s.iters_done,
        final_train_err: s.final_train_err,
        final_test_err: s.final_test_err,
        mean_train_err: s.mean_train_err,
        mean_test_err: s.mean_test_err,
        paper_err: group.paper_err,
        img_per_s: s.mean_img_per_s,
        wall_s: s.wall_s,
    }
}

/// The paper's axes (error 0-20%) for runs of the paper's full schedule; shorter runs sit far
/// above 20% and get an axis that fits them.
fn y_range(groups: &[&GroupResult]) -> Option<(f64, f64)> {
    let full = groups.iter().flat_map(|g| &g.runs).all(|r| r.summary.iters_done >= 64_000);
    full.then_some((0.0, 20.0))
}

/// The figure (PNG and SVG): the experiment's panels side by side, or one chart (one per depth
/// where the experiment asks and the runs span several).
fn write_charts(experiment: &Experiment, groups: &[GroupResult], out: &Path) -> Result<Vec<PathBuf>> {
    if !experiment.panels.is_empty() {
        let charts: Vec<ErrorChart> = experiment
            .panels
            .iter()
            .map(|panel| {
                let members: Vec<&GroupResult> =
                    panel.runs.iter().filter_map(|name| groups.iter().find(|g| &g.name == name)).collect();
                error_chart(&panel.title, &members)
            })
            .filter(|chart| !chart.curves.is_empty())
            .collect();
        let (png, svg) = (out.join(format!("{}.png", experiment.name)), out.join(format!("{}.svg", experiment.name)));
        chart::render_panels(&charts, &png, &svg)?;
        return Ok(vec![png, svg]);
    }
    let mut depths: Vec<i64> = groups.iter().map(|g| g.depth).collect();
    depths.dedup();
    let panels: Vec<(String, String, Vec<&GroupResult>)> = if experiment.chart_per_depth && depths.len() > 1 {
        depths
            .iter()
            .map(|&d| {
                let members = groups.iter().filter(|g| g.depth == d).collect();
                (format!("{}-{d}", experiment.name), format!("{}, {d} layers", experiment.title), members)
            })
            .collect()
    } else {
        vec![(experiment.name.clone(), experiment.title.clone(), groups.iter().collect())]
    };
    let mut files = Vec::new();
    for (stem, title, members) in panels {
        let (png, svg) = (out.join(format!("{stem}.png")), out.join(format!("{stem}.svg")));
        chart::render(&error_chart(&title, &members), &png, &svg)?;
        files.extend([png, svg]);
    }
    Ok(files)
}

/// `None` when a run the expectation names has no complete run (filtered out, or failed).
/// Decided on the means over seeds.
pub fn check(expectation: &Expectation, groups: &[GroupResult]) -> Option<CheckOutcome> {
    let find = |name: &String| groups.iter().find(|g| &g.name == name);
    let seeds =
        |g: &GroupResult| if g.runs.len() > 1 { format!(" (mean of {} seeds)", g.runs.len()) } else { String::new() };
    match expectation {
        Expectation::Higher { higher_train_error, than } => {
            let (worse, better) = (find(higher_train_error)?, find(than)?);
            let final_err = |g: &GroupResult| g.stat(|s| s.final_train_err).mean;
            let mean_err = |g: &GroupResult| g.stat(|s| s.mean_train_err).mean;
            let holds = final_err(worse) > final_err(better) && mean_err(worse) > mean_err(better);
            let text = format!(
                "{}{} has a higher training error than {}{}: final {:.2}% vs {:.2}%, mean over the run {:.2}% vs {:.2}%: {}",
                worse.name,
                seeds(worse),
                better.name,
                seeds(better),
                final_err(worse),
                final_err(better),
                mean_err(worse),
                mean_err(better),
                verdict(holds)
            );
            Some(CheckOutcome { holds, text })
        }
        Expectation::Similar { similar_train_error, within } => {
            let members: Vec<&GroupResult> = similar_train_error.iter().map(find).collect::<Option<_>>()?;
            let errors: Vec<f64> = members.iter().map(|g| g.stat(|s| s.final_train_err).mean).collect();
            let spread =
                errors.iter().cloned().fold(f64::MIN, f64::max) - errors.iter().cloned().fold(f64::MAX, f64::min);
            let holds = spread <= *within;
            let listed: Vec<String> = members.iter().zip(&errors).map(|(g, e)| format!("{} {e:.2}%", g.name)).collect();
            let text = format!(
                "{} lie within {within} points of each other (final training error; spread {spread:.2}): {}",
                listed.join(", "),
                verdict(holds)
            );
            Some(CheckOutcome { holds, text })
        }
    }
}

fn verdict(holds: bool) -> &'static str {
    if holds {
        "yes, as in the paper"
    } else {
        "NO, unlike the paper"
    }
}

/// The paper's style: one colour per network, training error dashed, test error solid; with
/// several seeds the mean curve over seeds in a shaded band from their minimum to maximum.
pub fn error_chart(title: &str, groups: &[&GroupResult]) -> ErrorChart {
    let mut curves = Vec::new();
    let train: fn(&MetricsRow) -> f64 = |r| r.train_err;
    let test: fn(&MetricsRow) -> f64 = |r| r.test_err;
    for (series, group) in groups.iter().enumerate() {
        for (what, dashed, value) in [("train", true, train), ("test", false, test)] {
            let curve = group.curve(value);
            let band = match group.runs.len() {
                1 => vec![],
                _ => curve.iter().map(|&(x, _, lo, hi)| (x, lo, hi)).collect(),
            };
            curves.push(Curve {
                label: format!("{} {what}", group.name),
                series,
                dashed,
                points: curve.iter().map(|&(x, mean, _, _)| (x, mean)).collect(),
                band,
            });
        }
    }
    ErrorChart {
        title: title.to_string(),
        x_label: "iteration".into(),
        y_label: "error (%)".into(),
        curves,
        y_range: y_range(groups),
    }
}
