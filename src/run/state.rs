//! What a run directory holds, read from its files alone (so it works for runs made anywhere),
//! and judged against the run a study or a command expects there.

use super::config::RunConfig;
use super::identity::{Difference, Leeway};
use super::summary::{RunStatus, RunSummary};
use super::{checkpoint, RunDir, CONFIG_FILE, ERROR_FILE, SUMMARY_FILE};
use anyhow::Result;
use std::path::Path;

/// What a run directory holds.
#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    /// No configuration, checkpoint or summary yet.
    New,
    /// Started: the last checkpoint is at this iteration (0 when none was written yet).
    Partial {
        /// The iteration of the last checkpoint.
        iteration: usize,
    },
    /// Finished, with its summary.
    Complete(Box<RunSummary>),
    /// Stopped because the loss became non-finite, with its summary.
    Diverged(Box<RunSummary>),
    /// Stopped by an error (not an interrupt) at or after this checkpoint iteration.
    Failed {
        /// The iteration of the last checkpoint.
        iteration: usize,
        /// The recorded error, one line.
        error: String,
    },
    /// It ended, but a file changed since (or its summary or configuration cannot be read):
    /// neither complete nor partial, and never counted.
    Modified {
        /// What changed, in words (`config.toml changed after the run completed`).
        what: String,
    },
    /// A run of another configuration than the one expected, with something to lose (it ended,
    /// or has a checkpoint): neither this run nor to be overwritten.
    Foreign {
        /// The first difference (recorded there, expected here).
        difference: Difference,
        /// Its own state.
        recorded: Box<RunState>,
    },
}

impl RunState {
    /// What `dir` holds: a summary (checked against the digests it records), else a recorded
    /// error, else a checkpoint or config, else nothing.
    pub fn read(dir: &Path) -> RunState {
        let run = RunDir::new(dir);
        if dir.join(SUMMARY_FILE).exists() {
            let summary = match RunSummary::load(dir) {
                Ok(summary) => summary,
                Err(_) => return RunState::Modified { what: format!("its {SUMMARY_FILE} cannot be read") },
            };
            if let Err(e) = RunConfig::load(&run.config()) {
                let what = match run.config().exists() {
                    true => format!("its {CONFIG_FILE} is not a run configuration ({})", first_line(&e)),
                    false => format!("its {CONFIG_FILE} is missing"),
                };
                return RunState::Modified { what };
            }
            if let Some(what) = summary.digests.as_ref().and_then(|d| d.first_change(&run)) {
                return RunState::Modified { what };
            }
            return match summary.status {
                RunStatus::Complete => RunState::Complete(Box::new(summary)),
                RunStatus::Diverged => RunState::Diverged(Box::new(summary)),
            };
        }
        let started = run.config().is_file();
        let iteration = checkpoint::iteration(dir).unwrap_or(0);
        if let Ok(error) = std::fs::read_to_string(dir.join(ERROR_FILE)) {
            return RunState::Failed { iteration, error: error.trim().to_string() };
        }
        if started || iteration > 0 {
            return RunState::Partial { iteration };
        }
        RunState::New
    }

    /// What `dir` holds, judged against `expected`: [`RunState::Foreign`] where its recorded
    /// configuration is another run's (beyond `leeway`) and it has something to lose (it ended,
    /// or has a checkpoint; a run that never reached one is simply started again).
    pub fn read_as(dir: &Path, expected: &RunConfig, leeway: Leeway) -> RunState {
        let state = RunState::read(dir);
        let something_to_lose = match &state {
            RunState::Complete(_) | RunState::Diverged(_) => true,
            RunState::Partial { iteration } | RunState::Failed { iteration, .. } => *iteration > 0,
            RunState::New | RunState::Modified { .. } | RunState::Foreign { .. } => false,
        };
        if !something_to_lose {
            return state;
        }
        let recorded = match RunConfig::load(&RunDir::new(dir).config()) {
            Ok(recorded) => recorded,
            Err(_) => return state,
        };
        match recorded.difference(expected, leeway) {
            Some(difference) => RunState::Foreign { difference, recorded: Box::new(state) },
            None => state,
        }
    }

    /// Records that the run in `dir` failed with `error` (one line).
    pub fn record_failure(dir: &Path, error: &anyhow::Error) -> Result<()> {
        let line = format!("{error:#}").replace(['\n', '\r'], " ");
        crate::util::fs::write_file(&dir.join(ERROR_FILE), format!("{line}\n").as_bytes())
    }

    /// Forgets a recorded failure (the run starts again).
    pub fn clear_failure(dir: &Path) {
        let _ = std::fs::remove_file(dir.join(ERROR_FILE));
    }

    /// Whether the run finished (not diverged), as expected.
    pub fn is_complete(&self) -> bool {
        matches!(self, RunState::Complete(_))
    }

    /// Whether the directory holds something a study cannot use and must not overwrite: a run
    /// modified after completion, or another configuration's.
    pub fn needs_attention(&self) -> bool {
        matches!(self, RunState::Modified { .. } | RunState::Foreign { .. })
    }

    /// The one line that refuses to use the run in `dir` in a state that
    /// [`Self::needs_attention`]: what is there, and what to do about it.
    pub fn refusal(&self, dir: &Path) -> String {
        let dir = dir.display();
        match self {
            RunState::Modified { what } => format!(
                "run directory {dir} was modified after completion: {what}; expected it as the run left it: restore \
                 the file, or remove the directory to train the run again"
            ),
            RunState::Foreign { difference, recorded } => format!(
                "run directory {dir} holds a run of another configuration ({difference}; {recorded}); expected this \
                 run there: choose another --out, or remove the directory"
            ),
            other => format!("run directory {dir} is {other}"),
        }
    }
}

fn first_line(e: &anyhow::Error) -> String {
    format!("{e:#}").lines().next().unwrap_or_default().to_string()
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunState::New => write!(f, "new"),
            RunState::Partial { iteration } => write!(f, "partial at iteration {iteration}"),
            RunState::Complete(s) if s.digests.is_none() => {
                write!(f, "complete, unverified ({} iterations; written before runs recorded digests)", s.iters_done)
            }
            RunState::Complete(s) => write!(f, "complete ({} iterations)", s.iters_done),
            RunState::Diverged(s) => write!(f, "diverged at iteration {}", s.iters_done + 1),
            RunState::Failed { iteration, error } => write!(f, "failed after iteration {iteration}: {error}"),
            RunState::Modified { what } => write!(f, "modified after completion: {what}"),
            RunState::Foreign { difference, recorded } => {
                write!(f, "another configuration's run ({difference}; {recorded})")
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::run::metrics::FILE_NAME as METRICS;
    use crate::run::WEIGHTS_FILE;

    /// A complete run of `RunConfig::example()` in `dir`, its summary written as the trainer
    /// writes it (with digests).
    pub(crate) fn complete_run(dir: &Path) -> RunConfig {
        let config = RunConfig::example();
        RunDir::new(dir).write_config(&config).unwrap();
        std::fs::write(dir.join(METRICS), "iter,train_err\n10,50\n").unwrap();
        std::fs::write(dir.join(WEIGHTS_FILE), "weights").unwrap();
        let mut summary: RunSummary = toml::from_str(
            "status = \"complete\"\nmodel = \"plain-20\"\nparams = 1\nmacs = 1\niters_done = 10\n\
             final_train_err = 50.0\nfinal_test_err = 60.0\nmean_train_err = 50.0\nmean_test_err = 60.0\n\
             mean_img_per_s = 100.0\nwall_s = 1.0\n",
        )
        .unwrap();
        summary.save(dir).unwrap();
        config
    }

    #[test]
    fn a_file_changed_after_completion_makes_the_run_modified_and_says_which() {
        for (file, change) in [
            (CONFIG_FILE, "edited"),
            (METRICS, "edited"),
            (WEIGHTS_FILE, "edited"),
            (WEIGHTS_FILE, "removed"),
            (SUMMARY_FILE, "truncated"),
            (CONFIG_FILE, "garbage"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let config = complete_run(dir.path());
            assert!(RunState::read(dir.path()).is_complete());
            assert_eq!(RunState::read(dir.path()).to_string(), "complete (10 iterations)");
            let path = dir.path().join(file);
            let text = std::fs::read_to_string(&path).unwrap();
            match change {
                "edited" if file == CONFIG_FILE => std::fs::write(&path, text.replace("depth = 20", "depth = 56")),
                "edited" => std::fs::write(&path, format!("{text}x")),
                "removed" => std::fs::remove_file(&path),
                "truncated" => std::fs::write(&path, &text[..text.len() / 2]),
                _ => std::fs::write(&path, "garbage ="),
            }
            .unwrap();
            let state = RunState::read(dir.path());
            let line = state.refusal(dir.path());
            assert!(matches!(state, RunState::Modified { .. }), "{file} {change}: {state}");
            assert!(line.contains(file) && line.contains("restore the file"), "{file} {change}: {line}");
            // Judged against its own configuration, it is still not complete (nor foreign).
            let judged = RunState::read_as(dir.path(), &config, Leeway::NONE);
            assert!(matches!(judged, RunState::Modified { .. }), "{judged}");
        }
    }

    #[test]
    fn a_summary_without_digests_reads_complete_unverified() {
        let dir = tempfile::tempdir().unwrap();
        complete_run(dir.path());
        let path = dir.path().join(SUMMARY_FILE);
        let text: String = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter(|l| !l.contains("_sha256"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&path, text).unwrap();
        let state = RunState::read(dir.path());
        assert!(state.is_complete());
        assert!(state.to_string().starts_with("complete, unverified"), "{state}");
    }

    #[test]
    fn a_run_of_another_configuration_is_foreign_with_its_first_difference() {
        let dir = tempfile::tempdir().unwrap();
        let config = complete_run(dir.path());
        let expected =
            RunConfig { schedule: crate::run::config::ScheduleConfig::paper_shape(40, 10), ..config.clone() };
        let state = RunState::read_as(dir.path(), &expected, Leeway::NONE);
        let line = state.refusal(dir.path());
        assert!(state.needs_attention() && !state.is_complete());
        assert!(line.contains("schedule.iters is 64000 there, expected 40"), "{line}");
        // Another thread count is the same run.
        let same = RunConfig { threads: 1, ..config };
        assert!(RunState::read_as(dir.path(), &same, Leeway::NONE).is_complete());
        // A run that never reached a checkpoint has nothing to lose: it simply starts again.
        let fresh = tempfile::tempdir().unwrap();
        RunDir::new(fresh.path()).write_config(&RunConfig::example()).unwrap();
        assert_eq!(RunState::read_as(fresh.path(), &expected, Leeway::NONE), RunState::Partial { iteration: 0 });
    }
}
