//! A study in MLflow (`--mlflow URI` or `[tracking]`): its runs as MLflow runs in an experiment
//! named after the study, nested under a parent run (`<study> (<preset>)`) that carries the
//! study's tables, charts and report as artifacts and each claim's verdict as a tag. Each run
//! directory is mirrored by [`crate::tracking::mlflow`]; this module says which, under what, and
//! sends the study's files once it is aggregated.

use super::aggregate::StudyReport;
use super::plan::PlannedRun;
use super::preset::Preset;
use super::spec::Experiment;
use super::study_dir::StudyDir;
use crate::tracking::mlflow::{self, Leftover, LiveSync, Mirrored, RunTarget, Status, Syncer};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The study's runs and parent run on one server.
pub struct StudyMirror {
    /// The MLflow experiment.
    experiment: String,
    parent_name: String,
    parent_tags: Vec<(String, String)>,
    parent_state: PathBuf,
    runs: Vec<RunTarget>,
}

impl StudyMirror {
    /// The study's server and mirror; none without `--mlflow` or `[tracking] mlflow`, an error
    /// for an address that is not a server's.
    pub fn of(
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

    /// Keeps the server in step while the runs train (see [`LiveSync`]).
    pub fn follow(self, syncer: Syncer) -> LiveSync {
        LiveSync::start(syncer, Box::new(self))
    }

    fn parent(&self, syncer: &mut Syncer) -> Result<mlflow::Mirror> {
        syncer.ensure_run(&self.parent_state, None, &self.experiment, &self.parent_name, &self.parent_tags)
    }

    /// Sends the study's files (tables, charts, report.html, analyses) as the parent run's
    /// artifacts, its claims' verdicts as tags, and ends it: finished when every run is complete.
    pub fn publish(&self, syncer: &mut Syncer, report: &StudyReport, out: &Path) -> Result<()> {
        let parent = self.parent(syncer)?;
        let (run_id, artifacts) = (parent.run_id.expect("ensured"), parent.artifact_uri.unwrap_or_default());
        for file in &report.files {
            let name = file.strip_prefix(out).unwrap_or(file).to_string_lossy().into_owned();
            let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            syncer.client().upload(&artifacts, &name, bytes)?;
        }
        let mut tags: Vec<(String, String)> = report
            .checks
            .iter()
            .map(|c| (format!("reslab.claim.{}", c.number), format!("{}: {}", c.verdict.text(), c.claim)))
            .collect();
        let runs = report.groups.iter().map(|g| g.runs.len()).sum::<usize>();
        tags.push(("reslab.runs".into(), format!("{runs} complete, {} not", report.incomplete.len())));
        syncer.client().log_params(&run_id, &[], &tags)?;
        let status = if report.incomplete.is_empty() { Status::Finished } else { Status::Killed };
        syncer.client().set_status(&run_id, status, mlflow::now_ms())
    }
}

impl Mirrored for StudyMirror {
    fn sync(&mut self, syncer: &mut Syncer, ended: bool) -> Result<()> {
        let parent = self.parent(syncer)?.run_id.expect("ensured");
        for run in &self.runs {
            let mut run = run.clone();
            run.tags.push(("mlflow.parentRunId".into(), parent.clone()));
            syncer.sync_run(&run, ended).with_context(|| run.name.clone())?;
        }
        Ok(())
    }

    fn leftover(&self) -> Leftover {
        Leftover {
            runs: self.runs.iter().map(|r| (r.dir.clone(), r.name.clone())).collect(),
            also: ", and the study's charts and report".into(),
            hint: "the same command with `aggregate` in place of `reproduce`".into(),
        }
    }
}

/// Starts mirroring the study's runs while they train, if it has a server.
pub fn follow(experiment: &Experiment, preset: Preset, runs: &[PlannedRun], out: &Path) -> Result<Option<LiveSync>> {
    Ok(StudyMirror::of(experiment, preset, runs, out)?.map(|(syncer, mirror)| mirror.follow(syncer)))
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
    let Some(mut syncer) = live.finish() else {
        return; // The warning said what was not sent.
    };
    let published = StudyMirror::of(experiment, preset, runs, out)
        .and_then(|mirror| mirror.map_or(Ok(()), |(_, mirror)| mirror.publish(&mut syncer, report, out)));
    if let Err(e) = published {
        crate::eprint_line!(
            "warning: MLflow at {}: the study's charts and report not sent ({}); the same command with `aggregate` \
             in place of `reproduce` sends them",
            syncer.uri(),
            format!("{e:#}").replace('\n', " ")
        );
    }
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
    let Some((mut syncer, mut mirror)) = StudyMirror::of(experiment, preset, runs, out)? else {
        return Ok(());
    };
    let uri = syncer.uri().to_string();
    mirror
        .sync(&mut syncer, true)
        .and_then(|()| mirror.publish(&mut syncer, report, out))
        .with_context(|| format!("sending the study to MLflow at {uri} (nothing is lost: run the same command again)"))
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
