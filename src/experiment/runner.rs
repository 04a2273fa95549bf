//! Runs an experiment's runs one after another on this machine and writes its report.

use super::aggregate::{check, error_chart, CheckOutcome, RunResult};
use super::plan::{plan, Overrides};
use super::spec::Experiment;
use crate::report::{chart, table};
use crate::run::config::Preset;
use crate::train::train;
use crate::util::fs::write_file;
use crate::util::interrupt;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// What a finished experiment produced.
pub struct ExperimentReport {
    pub results: Vec<RunResult>,
    pub checks: Vec<CheckOutcome>,
    pub files: Vec<PathBuf>,
}

pub fn run(experiment: &Experiment, preset: Preset, overrides: &Overrides, out: &Path) -> Result<ExperimentReport> {
    let runs = plan(experiment, preset, overrides)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating output directory {}", out.display()))?;
    let header = format!(
        "# reslab {}: this experiment was run with --preset {} (seed {}).\n",
        env!("CARGO_PKG_VERSION"),
        preset.name(),
        overrides.seed
    );
    let text = toml::to_string(experiment).expect("an experiment always serialises");
    write_file(&out.join("experiment.toml"), (header + &text).as_bytes())?;

    let mut failures = Vec::new();
    for run in &runs {
        if let Err(e) = train(&run.config, &out.join(&run.name), &run.name) {
            // Ctrl-C stops the experiment, not just this run; re-running it resumes.
            if interrupt::requested() {
                return Err(e.context(format!("{} (run again to continue the experiment)", run.name)));
            }
            eprintln!("error: {}: {e:#}", run.name);
            failures.push(run.name.clone());
        }
    }
    let results = runs
        .iter()
        .filter(|run| !failures.contains(&run.name))
        .map(|run| RunResult::load(run, &out.join(&run.name), experiment))
        .collect::<Result<Vec<_>>>()?;
    let report = write_report(experiment, results, out)?;
    if !failures.is_empty() {
        bail!(
            "{} of {} runs failed ({}); the report in {} shows the others",
            failures.len(),
            runs.len(),
            failures.join(", "),
            out.display()
        );
    }
    Ok(report)
}

/// The chart (PNG and SVG; one per depth if the experiment asks and the runs span several) and the results table
/// (CSV and Markdown) of `results`.
pub fn write_report(experiment: &Experiment, results: Vec<RunResult>, out: &Path) -> Result<ExperimentReport> {
    let checks: Vec<CheckOutcome> = experiment.expect.iter().filter_map(|e| check(e, &results)).collect();
    let mut depths: Vec<i64> = results.iter().map(|r| r.depth).collect();
    depths.dedup();
    let mut files = Vec::new();
    let groups: Vec<(String, String, Vec<&RunResult>)> = if experiment.chart_per_depth && depths.len() > 1 {
        depths
            .iter()
            .map(|&d| {
                let runs = results.iter().filter(|r| r.depth == d).collect();
                (format!("{}-{d}", experiment.name), format!("{}, {d} layers", experiment.title), runs)
            })
            .collect()
    } else {
        vec![(experiment.name.clone(), experiment.title.clone(), results.iter().collect())]
    };
    for (stem, title, runs) in groups {
        let (png, svg) = (out.join(format!("{stem}.png")), out.join(format!("{stem}.svg")));
        chart::render(&error_chart(&title, &runs), &png, &svg)?;
        files.extend([png, svg]);
    }
    let stem = experiment.table.clone().unwrap_or_else(|| "summary".into());
    let (csv, md) = (out.join(format!("{stem}.csv")), out.join(format!("{stem}.md")));
    let rows: Vec<table::RunRow> = results.iter().map(RunResult::table_row).collect();
    let heading = table::TableHeading {
        title: experiment.title.clone(),
        description: experiment.description.clone(),
        paper_source: experiment.paper_source.clone(),
    };
    let check_texts: Vec<String> = checks.iter().map(|c| c.text.clone()).collect();
    write_file(&csv, table::summary_csv(&rows)?.as_bytes())?;
    write_file(&md, table::summary_markdown(&heading, &rows, &check_texts).as_bytes())?;
    files.extend([csv, md]);
    Ok(ExperimentReport { results, checks, files })
}
