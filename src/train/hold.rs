//! A pause point for the tests that stop a run from outside (a signal, a kill, a lost node): with
//! `RESLAB_TEST_HOLD=N:DIR`, a run that has done N iterations (or more, when it resumes past them)
//! waits before its next iteration, or before its end, until it is asked to stop (SIGINT/SIGTERM)
//! or released. A test then stops a run that cannot have finished first, however fast the machine.
//!
//! A held process shows it with `DIR/<run>.held` (`DIR/<run>.rank<R>.held` for a rank of a data
//! parallel run) holding its process ID; `DIR/<run>.release` lets every process of the run go on,
//! now and whenever it reaches N again (a resumed attempt). Unset, as in every real use, nothing
//! happens. A hold ends on its own after [`LIMIT`], so a test that died cannot leave a run waiting forever.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The environment variable that sets a hold: `N:DIR`.
pub const ENV: &str = "RESLAB_TEST_HOLD";

/// The longest a hold lasts.
pub const LIMIT: Duration = Duration::from_secs(600);

/// Where and when this process holds its run, once.
#[derive(Debug)]
pub struct Hold {
    at: usize,
    held: PathBuf,
    release: PathBuf,
    done: bool,
}

impl Hold {
    /// The hold `RESLAB_TEST_HOLD` sets for the run in `run_dir` on this process (`rank` of a data
    /// parallel run), if any.
    pub fn from_env(run_dir: &Path, rank: Option<usize>) -> Result<Option<Hold>> {
        match std::env::var(ENV) {
            Ok(value) if !value.is_empty() => Hold::parse(&value, run_dir, rank).map(Some),
            _ => Ok(None),
        }
    }

    fn parse(value: &str, run_dir: &Path, rank: Option<usize>) -> Result<Hold> {
        let Some((at, dir)) = value.split_once(':') else {
            bail!("{ENV}={value}: expected ITERATION:FOLDER (e.g. 10:/tmp/holds)")
        };
        let at: usize = at.parse().with_context(|| format!("{ENV}={value}: {at:?} is not an iteration"))?;
        let dir = Path::new(dir);
        if !dir.is_dir() {
            bail!("{ENV}={value}: the folder {} does not exist", dir.display());
        }
        let run = run_dir.file_name().map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
        let held = match rank {
            Some(rank) => dir.join(format!("{run}.rank{rank}.held")),
            None => dir.join(format!("{run}.held")),
        };
        Ok(Hold { at, held, release: dir.join(format!("{run}.release")), done: false })
    }

    /// Waits here if this process has done `iteration >= N` iterations and has not held yet,
    /// until `stop_requested`, the release file, or [`LIMIT`].
    pub fn wait_if_due(&mut self, iteration: usize, stop_requested: impl Fn() -> bool) -> Result<()> {
        if self.done || iteration < self.at {
            return Ok(());
        }
        self.done = true;
        if self.release.exists() {
            return Ok(());
        }
        std::fs::write(&self.held, std::process::id().to_string())
            .with_context(|| format!("{ENV}: writing {}", self.held.display()))?;
        let started = Instant::now();
        while !stop_requested() && !self.release.exists() && started.elapsed() < LIMIT {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_file(&self.held);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_waits_once_until_released_or_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let value = format!("3:{}", dir.path().display());
        let mut hold = Hold::parse(&value, Path::new("/runs/plain-8-seed0"), None).unwrap();
        assert_eq!(hold.held, dir.path().join("plain-8-seed0.held"));
        // Before N: no wait, nothing written.
        hold.wait_if_due(2, || panic!("not asked before N")).unwrap();
        assert!(!hold.held.exists());
        // At N: held (the file shows it) until asked to stop.
        let held = hold.held.clone();
        let seen = std::cell::Cell::new(false);
        hold.wait_if_due(3, || {
            seen.set(seen.get() || held.exists());
            seen.get()
        })
        .unwrap();
        assert!(seen.get(), "the held file was there while holding");
        assert!(!hold.held.exists(), "and is gone after");
        // Once per process.
        hold.wait_if_due(4, || panic!("held twice")).unwrap();

        // A released run passes at once; ranks are named.
        std::fs::write(dir.path().join("plain-8-seed0.release"), "").unwrap();
        let mut rank = Hold::parse(&value, Path::new("/runs/plain-8-seed0"), Some(1)).unwrap();
        assert_eq!(rank.held, dir.path().join("plain-8-seed0.rank1.held"));
        rank.wait_if_due(7, || panic!("released")).unwrap();
    }

    #[test]
    fn a_malformed_hold_is_one_clear_error() {
        let run = Path::new("/runs/r");
        let err = Hold::parse("ten", run, None).unwrap_err().to_string();
        assert!(err.contains("expected ITERATION:FOLDER"), "{err}");
        let err = Hold::parse("x:/tmp", run, None).unwrap_err().to_string();
        assert!(err.contains("is not an iteration"), "{err}");
        let err = Hold::parse("3:/no/such/folder", run, None).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
    }
}
