//! From run directories to what the report shows: curves, final numbers, and whether the
//! paper's prediction held.

use super::plan::PlannedRun;
use super::spec::{Expectation, Experiment};
use crate::model::Kind;
use crate::report::chart::{Curve, ErrorChart};
use crate::report::table::RunRow as TableRow;
use crate::run::metrics::{self, MetricsRow};
use crate::run::{RunStatus, RunSummary};
use anyhow::{bail, Result};
use std::path::Path;

/// One finished run as read back from its directory.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub name: String,
    pub depth: i64,
    /// "plain" or the shortcut option.
    pub variant: String,
    pub paper_err: Option<f64>,
    pub summary: RunSummary,
    pub rows: Vec<MetricsRow>,
}

impl RunResult {
    /// Reads `dir`; only a complete run is a result.
    pub fn load(run: &PlannedRun, dir: &Path, experiment: &Experiment) -> Result<RunResult> {
        let summary = RunSummary::load(dir)?;
        if summary.status != RunStatus::Complete {
            bail!("run {} did not complete ({:?})", dir.display(), summary.status);
        }
        let model = &run.config.model;
        let variant = match model.kind {
            Kind::Plain => "plain".to_string(),
            Kind::Residual => model.shortcut.to_string(),
        };
        let paper_err = experiment.runs.iter().find(|e| e.run_name() == run.name).and_then(|e| e.paper_err);
        let rows = metrics::read(dir)?;
        Ok(RunResult { name: run.name.clone(), depth: model.depth, variant, paper_err, summary, rows })
    }

    /// This run's line in the report's summary table.
    pub fn table_row(&self) -> TableRow {
        let s = &self.summary;
        TableRow {
            run: self.name.clone(),
            model: s.model.clone(),
            variant: self.variant.clone(),
            params: s.params,
            macs: s.macs,
            iters: s.iters_done,
            final_train_err: s.final_train_err,
            final_test_err: s.final_test_err,
            mean_train_err: s.mean_train_err,
            mean_test_err: s.mean_test_err,
            paper_err: self.paper_err,
            img_per_s: s.mean_img_per_s,
            wall_s: s.wall_s,
        }
    }
}

/// Whether an expectation held, with the numbers that decided it.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    pub holds: bool,
    pub text: String,
}

/// `None` when a run the expectation names was not run (filtered out, or failed).
pub fn check(expectation: &Expectation, results: &[RunResult]) -> Option<CheckOutcome> {
    let find = |name: &String| results.iter().find(|r| &r.name == name);
    match expectation {
        Expectation::Higher { higher_train_error, than } => {
            let (worse, better) = (find(higher_train_error)?, find(than)?);
            let (w, b) = (&worse.summary, &better.summary);
            let holds = w.final_train_err > b.final_train_err && w.mean_train_err > b.mean_train_err;
            let text = format!(
                "{} has a higher training error than {}: final {:.2}% vs {:.2}%, mean over the run {:.2}% vs {:.2}%: {}",
                worse.name,
                better.name,
                w.final_train_err,
                b.final_train_err,
                w.mean_train_err,
                b.mean_train_err,
                verdict(holds)
            );
            Some(CheckOutcome { holds, text })
        }
        Expectation::Similar { similar_train_error, within } => {
            let runs: Vec<&RunResult> = similar_train_error.iter().map(find).collect::<Option<_>>()?;
            let errors: Vec<f64> = runs.iter().map(|r| r.summary.final_train_err).collect();
            let spread =
                errors.iter().cloned().fold(f64::MIN, f64::max) - errors.iter().cloned().fold(f64::MAX, f64::min);
            let holds = spread <= *within;
            let listed: Vec<String> =
                runs.iter().map(|r| format!("{} {:.2}%", r.name, r.summary.final_train_err)).collect();
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

/// The paper's style: one colour per run, training error dashed, test error solid.
pub fn error_chart(title: &str, results: &[&RunResult]) -> ErrorChart {
    let mut curves = Vec::new();
    for (series, result) in results.iter().enumerate() {
        let points = |f: fn(&MetricsRow) -> f64| result.rows.iter().map(|r| (r.iter as f64, f(r))).collect();
        curves.push(Curve {
            label: format!("{} train", result.name),
            series,
            dashed: true,
            points: points(|r| r.train_err),
        });
        curves.push(Curve {
            label: format!("{} test", result.name),
            series,
            dashed: false,
            points: points(|r| r.test_err),
        });
    }
    ErrorChart {
        title: title.to_string(),
        x_label: "iteration".into(),
        y_label: "error (%)".into(),
        curves,
        y_range: None,
    }
}
