//! The summary table of an experiment: one row per run.

use crate::experiment::aggregate::{CheckOutcome, RunResult};
use crate::experiment::Experiment;
use anyhow::Result;

const COLUMNS: [&str; 13] = [
    "run",
    "model",
    "shortcut",
    "params",
    "macs",
    "iters",
    "final_train_err",
    "final_test_err",
    "mean_train_err",
    "mean_test_err",
    "paper_err",
    "img_per_s",
    "wall_s",
];

fn cells(result: &RunResult) -> [String; 13] {
    let s = &result.summary;
    [
        result.name.clone(),
        s.model.clone(),
        result.variant.clone(),
        s.params.to_string(),
        s.macs.to_string(),
        s.iters_done.to_string(),
        format!("{:.2}", s.final_train_err),
        format!("{:.2}", s.final_test_err),
        format!("{:.2}", s.mean_train_err),
        format!("{:.2}", s.mean_test_err),
        result.paper_err.map(|e| format!("{e:.2}")).unwrap_or_default(),
        format!("{:.1}", s.mean_img_per_s),
        format!("{:.1}", s.wall_s),
    ]
}

pub fn summary_csv(results: &[RunResult]) -> Result<String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(COLUMNS)?;
    for result in results {
        writer.write_record(cells(result))?;
    }
    Ok(String::from_utf8(writer.into_inner()?)?)
}

pub fn summary_markdown(experiment: &Experiment, results: &[RunResult], checks: &[CheckOutcome]) -> String {
    let mut md = format!(
        "# {}

{}

Errors in percent",
        experiment.title, experiment.description
    );
    if let Some(source) = &experiment.paper_source {
        md += &format!("; `paper_err`: {source}");
    }
    md += ".\n\n";
    md += &format!("| {} |\n|{}\n", COLUMNS.join(" | "), "---|".repeat(COLUMNS.len()));
    for result in results {
        md += &format!("| {} |\n", cells(result).join(" | "));
    }
    if !checks.is_empty() {
        md += "\n";
        for check in checks {
            md += &format!("- {}\n", check.text);
        }
    }
    md
}
