//! How a study's claims are judged, decided by what its folder records, never by the command
//! that aggregates: a study of fixed seeds once, with 95% intervals; a study with seeds on demand
//! with sequential intervals at every look, each claim that has stopped taking seeds on the seeds
//! it had at the look that stopped it ([`super::sequential`]).

use super::claims::{check_with, CheckOutcome};
use super::on_demand::FIRST_SEEDS;
use super::results::GroupResult;
use super::rounds::{ClaimStop, Rounds};
use super::sequential;
use super::spec::Expectation;
use super::stats::Intervals;
use super::study_dir::StudyDir;
use crate::report::verdict::Verdict;
use anyhow::Result;
use std::collections::BTreeMap;

/// How a study's claims are judged.
#[derive(Debug, Clone, PartialEq)]
pub enum Judging {
    /// Fixed seeds: each claim once, with two-sided 95% intervals.
    Fixed,
    /// Seeds on demand, up to `cap` seeds per network, with the looks its rounds recorded.
    Sequential {
        /// `--max-seeds`.
        cap: usize,
        /// The round record.
        rounds: Rounds,
    },
}

impl Judging {
    /// As the study in `dir` records it: fixed where it records no seeds on demand (or nothing).
    pub fn of_study(dir: &StudyDir) -> Result<Judging> {
        let Ok((record, _)) = dir.recorded_study() else {
            return Ok(Judging::Fixed);
        };
        Ok(match record.on_demand {
            Some(on_demand) => Judging::Sequential { cap: on_demand.cap(), rounds: Rounds::read(&dir.rounds())? },
            None => Judging::Fixed,
        })
    }

    /// The intervals every claim is judged with.
    pub fn intervals(&self) -> Intervals {
        match self {
            Judging::Fixed => Intervals::Fixed,
            Judging::Sequential { cap, .. } => sequential::intervals(FIRST_SEEDS, *cap),
        }
    }

    /// What the claims' intervals are, in words (the heading of the claims).
    pub fn text(&self) -> String {
        match self {
            Judging::Fixed => "95% intervals over seeds".into(),
            Judging::Sequential { cap, .. } => format!(
                "sequential intervals over seeds on demand: at most 5% chance per claim of a false verdict at any of \
                 its looks, {FIRST_SEEDS} to {cap} seeds per network"
            ),
        }
    }

    /// Judges each of `expectations` on `groups`, numbered from 1.
    pub fn check_all(
        &self,
        expectations: &[Expectation],
        groups: &[GroupResult],
        paper_iters: usize,
    ) -> Vec<CheckOutcome> {
        let intervals = self.intervals();
        let judge = |(i, expectation): (usize, &Expectation)| {
            let number = i + 1;
            let Judging::Sequential { cap, rounds } = self else {
                return CheckOutcome { number, ..check_with(expectation, groups, paper_iters, intervals) };
            };
            let stopped = rounds.claim(number);
            let seeds = stopped.and_then(|s| rounds.seeds_at(s.round));
            let mut outcome = match seeds {
                Some(seeds) => check_with(expectation, &first_seeds(groups, seeds), paper_iters, intervals),
                None => check_with(expectation, groups, paper_iters, intervals),
            };
            outcome.number = number;
            let most = outcome.comparisons.iter().map(|c| c.seeds).max();
            match stopped {
                Some(stop) if stop.outcome == ClaimStop::Settled => outcome.settled_at = most,
                Some(stop) => {
                    let need = stop.would_need.map_or("more than 1,000".to_string(), |n| format!("about {n}"));
                    outcome.reason = format!(
                        "futile after round {}: at its difference and spread it would need {need} seeds per network, \
                         more than --max-seeds {cap}",
                        stop.round
                    );
                }
                None if outcome.verdict == Verdict::Inconclusive => {
                    let seeds = outcome.comparisons.iter().map(|c| c.seeds).min().unwrap_or(0);
                    outcome.reason = match rounds.stopped {
                        Some(stop) => {
                            format!("not settled at {seeds} seeds per network when the study stopped: {}", stop.text())
                        }
                        None => format!("not settled yet at {seeds} seeds per network (round {})", rounds.current()),
                    };
                }
                None => {}
            }
            outcome
        };
        expectations.iter().enumerate().map(judge).collect()
    }
}

/// `groups` with each network that `seeds` names cut to its first seeds (seeds 0 to n-1).
fn first_seeds(groups: &[GroupResult], seeds: &BTreeMap<String, usize>) -> Vec<GroupResult> {
    groups
        .iter()
        .map(|group| match seeds.get(&group.name) {
            Some(&n) => GroupResult {
                runs: group.runs.iter().filter(|r| r.seed < n as u64).cloned().collect(),
                ..group.clone()
            },
            None => group.clone(),
        })
        .collect()
}
