//! From run directories to what the report shows: curves, final numbers, and whether the
//! paper's prediction held.

use super::spec::{Expectation, Experiment};
use crate::report::chart::{Curve, ErrorChart};
use crate::train::metrics::{self, MetricsRow};
use crate::train::trainer::{RunStatus, RunSummary};
use anyhow::{bail, Result};
use std::path::Path;

/// One finished run as read back from its directory.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub name: String,
    pub summary: RunSummary,
    pub rows: Vec<MetricsRow>,
}

impl RunResult {
    /// Reads `dir`; only a complete run is a result.
    pub fn load(name: &str, dir: &Path) -> Result<RunResult> {
        let summary = RunSummary::load(dir)?;
        if summary.status != RunStatus::Complete {
            bail!(
                "run {} did not complete ({:?})",
                dir.display(),
                summary.status
            );
        }
        Ok(RunResult {
            name: name.to_string(),
            summary,
            rows: metrics::read(dir)?,
        })
    }
}

/// Whether an expectation held, with the numbers that decided it.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    pub holds: bool,
    pub text: String,
}

pub fn check(expectation: &Expectation, results: &[RunResult]) -> Option<CheckOutcome> {
    let find = |name: &String| results.iter().find(|r| &r.name == name);
    let (worse, better) = (
        find(&expectation.higher_train_error)?,
        find(&expectation.than)?,
    );
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
        if holds { "yes, as in the paper" } else { "NO, unlike the paper" }
    );
    Some(CheckOutcome { holds, text })
}

/// The paper's style: one colour per run, training error dashed, test error solid.
pub fn error_chart(experiment: &Experiment, results: &[RunResult]) -> ErrorChart {
    let mut curves = Vec::new();
    for (series, result) in results.iter().enumerate() {
        let points =
            |f: fn(&MetricsRow) -> f64| result.rows.iter().map(|r| (r.iter as f64, f(r))).collect();
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
        title: experiment.title.clone(),
        x_label: "iteration".into(),
        y_label: "error (%)".into(),
        curves,
        y_range: None,
    }
}
