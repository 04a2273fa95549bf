//! `reslab status EXP`: where a study stands, from its run directories (and, for a study submitted
//! to Slurm, what Slurm says of each task).

use super::cost::{self, Estimate};
use super::plan::PlannedRun;
use super::slurm::{self, Submission};
use crate::run::lock::{self, LockOwner};
use crate::run::RunState;
use anyhow::Result;
use std::path::Path;

/// Where a run stands, all sources together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Complete.
    Done,
    /// A live process or a Slurm task is training it.
    Running,
    /// Not started, or stopped and resumable.
    Pending,
    /// Diverged, or failed with nothing that will retry it.
    Failed,
    /// Changed after it completed: not counted until restored or removed.
    Modified,
    /// Another configuration's run: not this study's.
    Foreign,
}

/// One run's line of `reslab status`.
#[derive(Debug, Clone)]
pub struct RunLine {
    /// The run directory's name.
    pub dir: String,
    /// What the run directory holds.
    pub state: RunState,
    /// Slurm's state of the run's task, where the study was submitted and Slurm knows it.
    pub slurm: Option<String>,
    /// Who holds the run's lock, when a live process does.
    pub holder: Option<LockOwner>,
    /// Where the run stands, all sources together.
    pub phase: Phase,
    /// Estimated seconds of training left, at the measured speed.
    pub remaining_s: f64,
}

/// Where a study stands: a line per planned run.
pub struct StudyStatus {
    /// Every planned run, in plan order.
    pub runs: Vec<RunLine>,
    /// What was submitted to Slurm, if the study was.
    pub submission: Option<Submission>,
    /// The time the runs left need here, in the layout a local study uses.
    pub estimate: Estimate,
}

/// Slurm states after which a task will not run again by itself.
const SLURM_FAILED: [&str; 6] = ["FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "CANCELLED", "BOOT_FAIL"];

fn phase(state: &RunState, slurm: Option<&str>, holder: Option<&LockOwner>) -> Phase {
    match state {
        RunState::Complete(_) => Phase::Done,
        RunState::Modified { .. } => Phase::Modified,
        RunState::Foreign { .. } => Phase::Foreign,
        RunState::Diverged(_) => Phase::Failed,
        _ if slurm == Some("RUNNING") || holder.is_some() => Phase::Running,
        RunState::Failed { .. } => Phase::Failed,
        _ if slurm.is_some_and(|s| SLURM_FAILED.contains(&s)) => Phase::Failed,
        _ => Phase::Pending,
    }
}

/// The status of every planned run in `out`; `threads` for the speed probe when no run of the
/// study has measured a network yet.
pub fn status(runs: &[PlannedRun], out: &Path, threads: usize) -> Result<StudyStatus> {
    let estimate = cost::estimate(runs, threads)?;
    let submission = Submission::load(out);
    let slurm_states = submission.as_ref().map(slurm::task_states).unwrap_or_default();
    let stale = lock::staleness()?;
    let lines = runs
        .iter()
        .zip(&estimate.runs)
        .map(|(run, cost)| {
            let dir = run.dir_name();
            let slurm = submission
                .as_ref()
                .and_then(|s| s.runs.iter().position(|r| *r == dir))
                .and_then(|task| slurm_states.get(task).cloned().flatten());
            let holder = LockOwner::read(&run.dir().path).filter(|(o, age)| o.is_live(*age, stale)).map(|(o, _)| o);
            let phase = phase(&cost.state, slurm.as_deref(), holder.as_ref());
            RunLine { dir, state: cost.state.clone(), slurm, holder, phase, remaining_s: cost.remaining_s }
        })
        .collect();
    Ok(StudyStatus { runs: lines, submission, estimate })
}

impl StudyStatus {
    /// What `reslab status` prints for study folder `out`: a line per run, counts, time left.
    pub fn text(&self, out: &Path) -> String {
        let w = self.runs.iter().map(|r| r.dir.len()).max().unwrap_or(0).max(22);
        let mut text = format!("{:<w$} {:<12} {:<14} state\n", "run", "phase", "slurm");
        for run in &self.runs {
            let phase = format!("{:?}", run.phase).to_lowercase();
            let mut state = run.state.to_string();
            if let Some(holder) = &run.holder {
                state += &format!(" (process {} on {})", holder.pid, holder.host);
            }
            text += &format!("{:<w$} {:<12} {:<14} {state}\n", run.dir, phase, run.slurm.as_deref().unwrap_or("-"));
        }
        let count = |p: Phase| self.runs.iter().filter(|r| r.phase == p).count();
        // Runs done need nothing more; the others as the estimate has them, side by side.
        let left = self.estimate.span_text(self.estimate.remaining_s);
        text += &format!(
            "{}: {} runs: {} done, {} running, {} pending, {} failed{}; about {left} of training left {}\n",
            out.display(),
            self.runs.len(),
            count(Phase::Done),
            count(Phase::Running),
            count(Phase::Pending),
            count(Phase::Failed),
            match (count(Phase::Foreign), count(Phase::Modified)) {
                (0, 0) => String::new(),
                (foreign, modified) => {
                    let parts: Vec<String> =
                        [(foreign, "of another configuration"), (modified, "modified after completion")]
                            .iter()
                            .filter(|(n, _)| *n > 0)
                            .map(|(n, what)| format!("{n} {what}"))
                            .collect();
                    format!(", {} (not counted: remove them, or restore what changed)", parts.join(", "))
                }
            },
            self.estimate.basis_text(),
        );
        if let Some(s) = &self.submission {
            text +=
                &format!("slurm: array job {}, aggregation job {} (after the array)\n", s.array_job, s.aggregate_job);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_combine_the_directory_slurm_and_the_lock() {
        let partial = RunState::Partial { iteration: 10 };
        let failed = RunState::Failed { iteration: 10, error: "x".into() };
        let me = LockOwner { host: "h".into(), pid: 1 };
        assert_eq!(phase(&partial, None, None), Phase::Pending);
        assert_eq!(phase(&partial, Some("PENDING"), None), Phase::Pending);
        assert_eq!(phase(&partial, Some("RUNNING"), None), Phase::Running);
        assert_eq!(phase(&partial, None, Some(&me)), Phase::Running);
        assert_eq!(phase(&partial, Some("TIMEOUT"), None), Phase::Failed);
        assert_eq!(phase(&failed, Some("REQUEUED"), None), Phase::Failed);
        assert_eq!(phase(&failed, Some("RUNNING"), None), Phase::Running, "a failed run started again");
        assert_eq!(phase(&RunState::New, None, None), Phase::Pending);
    }
}
