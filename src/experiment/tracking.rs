//! A study in MLflow (`--mlflow URI` or `[tracking]`): its runs as MLflow runs in an experiment
//! named after the study, nested under a parent run (`<study> (<preset>)`) that carries the
//! study's tables, charts and report as artifacts and each claim's verdict as a tag. This module
//! says which runs, under what names and tags; [`crate::tracking::study`] sends them, and
//! [`crate::tracking::mlflow`] mirrors each run directory.

use super::aggregate::StudyReport;
use super::plan::PlannedRun;
use super::preset::Preset;
use super::spec::Experiment;
use super::study_dir::StudyDir;
use crate::tracking::mlflow::{LiveSync, RunTarget, Syncer};
use crate::tracking::study::{Aggregated, StudyMirror};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The study's server and mirror; none without `--mlflow` or `[tracking] mlflow`, an error for an
/// address that is not a server's.
fn mirror_of(
    experiment: &Experiment,
    preset: Preset,
    runs: &[PlannedRun],
    out: &Path,
) -> Result<Option<(Syncer, StudyMirror)>> {
    let Some(uri) = &experiment.tracking.mlflow else {
        return Ok(None);
    };
    let syncer = Syncer::new(uri).context("--mlflow (or [tracking] mlflow)")?;
    let mlflow_experiment = experiment.tracking.experiment.clone().unwrap_or_else(|| experiment.name.clone());
    let common = vec![
        ("reslab.study".to_string(), experiment.name.clone()),
        ("reslab.preset".to_string(), preset.name().to_string()),
        ("mlflow.source.name".to_string(), "reslab".to_string()),
    ];
    let mut parent_tags = common.clone();
    parent_tags.push(("reslab.title".into(), experiment.title.clone()));
    parent_tags.push(("reslab.folder".into(), absolute(out).display().to_string()));
    let runs = runs
        .iter()
        .map(|run| {
            let mut tags = common.clone();
            tags.push(("reslab.run".into(), run.name.clone()));
            tags.push(("reslab.seed".into(), run.seed.to_string()));
            RunTarget {
                dir: run.dir().path.clone(),
                experiment: mlflow_experiment.clone(),
                name: run.dir_name(),
                tags,
                expected: Some((run.config().clone(), run.run.leeway())),
            }
        })
        .collect();
    let mirror = StudyMirror {
        parent_name: format!("{} ({})", experiment.name, preset.name()),
        experiment: mlflow_experiment,
        parent_tags,
        parent_state: StudyDir::new(out).mlflow_state(),
        runs,
    };
    Ok(Some((syncer, mirror)))
}

/// What the aggregated study sends to its parent run.
fn aggregated<'a>(report: &'a StudyReport, out: &'a Path) -> Aggregated<'a> {
    Aggregated {
        files: &report.files,
        out,
        claims: report.checks.iter().map(|c| (c.number, format!("{}: {}", c.verdict.text(), c.claim))).collect(),
        complete: report.groups.iter().map(|g| g.runs.len()).sum::<usize>(),
        incomplete: report.incomplete.len(),
    }
}

/// Starts mirroring the study's runs while they train, if it has a server.
pub fn follow(experiment: &Experiment, preset: Preset, runs: &[PlannedRun], out: &Path) -> Result<Option<LiveSync>> {
    Ok(mirror_of(experiment, preset, runs, out)?.map(|(syncer, mirror)| mirror.follow(syncer)))
}

/// Ends the mirroring of the runs and, if they all reached the server, sends the aggregated
/// study; a warning, never an error, if it cannot.
pub fn publish_after(
    live: LiveSync,
    experiment: &Experiment,
    preset: Preset,
    runs: &[PlannedRun],
    out: &Path,
    report: &StudyReport,
) {
    let mirror = mirror_of(experiment, preset, runs, out).map(|found| found.map(|(_, mirror)| mirror));
    StudyMirror::publish_after(live, mirror, &aggregated(report, out));
}

/// `reslab aggregate --mlflow URI`: sends whatever the server lacks of the study's runs, then
/// the aggregated study. An error if the server cannot take it (nothing is lost: run it again).
pub fn send(
    experiment: &Experiment,
    preset: Preset,
    runs: &[PlannedRun],
    out: &Path,
    report: &StudyReport,
) -> Result<()> {
    let Some((syncer, mirror)) = mirror_of(experiment, preset, runs, out)? else {
        return Ok(());
    };
    mirror.send(syncer, &aggregated(report, out))
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
