//! A study on a tracking server: its runs as MLflow runs nested under a parent run that carries
//! the study's files as artifacts and each claim's verdict as a tag. Which runs, under what names
//! and tags, is the study's to say (experiment/tracking.rs); this is how they are sent.

use super::mlflow::{self, Leftover, LiveSync, Mirrored, RunTarget, Status, Syncer};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The study's runs and parent run on one server.
pub struct StudyMirror {
    /// The MLflow experiment.
    pub experiment: String,
    /// The parent run's name.
    pub parent_name: String,
    /// The parent run's tags.
    pub parent_tags: Vec<(String, String)>,
    /// Where the parent run's state on the server is remembered (the study folder's mlflow.toml).
    pub parent_state: PathBuf,
    /// The study's runs, each mirrored under the parent.
    pub runs: Vec<RunTarget>,
}

/// What an aggregated study sends to its parent run.
pub struct Aggregated<'a> {
    /// The study's files (tables, charts, report.html, analyses), under `out`.
    pub files: &'a [PathBuf],
    /// The study's folder.
    pub out: &'a Path,
    /// Each claim's number and its verdict with the claim, in words.
    pub claims: Vec<(usize, String)>,
    /// Runs complete.
    pub complete: usize,
    /// Runs not complete.
    pub incomplete: usize,
}

impl StudyMirror {
    /// Keeps the server in step while the runs train (see [`LiveSync`]).
    pub fn follow(self, syncer: Syncer) -> LiveSync {
        LiveSync::start(syncer, Box::new(self))
    }

    fn parent(&self, syncer: &mut Syncer) -> Result<mlflow::Mirror> {
        syncer.ensure_run(&self.parent_state, None, &self.experiment, &self.parent_name, &self.parent_tags)
    }

    /// Sends the study's files as the parent run's artifacts, its claims' verdicts as tags, and
    /// ends it: finished when every run is complete.
    pub fn publish(&self, syncer: &mut Syncer, study: &Aggregated) -> Result<()> {
        let parent = self.parent(syncer)?;
        let (run_id, artifacts) = (parent.run_id.expect("ensured"), parent.artifact_uri.unwrap_or_default());
        for file in study.files {
            let name = file.strip_prefix(study.out).unwrap_or(file).to_string_lossy().into_owned();
            let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            syncer.client().upload(&artifacts, &name, bytes)?;
        }
        let mut tags: Vec<(String, String)> =
            study.claims.iter().map(|(number, text)| (format!("reslab.claim.{number}"), text.clone())).collect();
        tags.push(("reslab.runs".into(), format!("{} complete, {} not", study.complete, study.incomplete)));
        syncer.client().log_params(&run_id, &[], &tags)?;
        let status = if study.incomplete == 0 { Status::Finished } else { Status::Killed };
        syncer.client().set_status(&run_id, status, mlflow::now_ms())
    }

    /// Ends the mirroring of the runs and, if they all reached the server, sends the aggregated
    /// study through `mirror` (none: the study has no server); a warning, never an error, if it
    /// cannot.
    pub fn publish_after(live: LiveSync, mirror: Result<Option<StudyMirror>>, study: &Aggregated) {
        let Some(mut syncer) = live.finish() else {
            return; // The warning said what was not sent.
        };
        let published = mirror.and_then(|mirror| mirror.map_or(Ok(()), |mirror| mirror.publish(&mut syncer, study)));
        if let Err(e) = published {
            crate::eprint_line!(
                "warning: MLflow at {}: the study's charts and report not sent ({}); the same command with \
                 `aggregate` in place of `reproduce` sends them",
                syncer.uri(),
                format!("{e:#}").replace('\n', " ")
            );
        }
    }

    /// Sends whatever the server lacks of the study's runs, then the aggregated study. An error
    /// if the server cannot take it (nothing is lost: send it again).
    pub fn send(mut self, mut syncer: Syncer, study: &Aggregated) -> Result<()> {
        let uri = syncer.uri().to_string();
        self.sync(&mut syncer, true).and_then(|()| self.publish(&mut syncer, study)).with_context(|| {
            format!("sending the study to MLflow at {uri} (nothing is lost: run the same command again)")
        })
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
