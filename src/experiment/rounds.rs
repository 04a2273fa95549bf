//! `rounds.toml`: the round record of a study with seeds on demand. Each round lists the seeds
//! every network has once it is trained; each claim that takes no more seeds says at which round
//! it stopped (settled, or futile with the seeds it would need); a study that has stopped says
//! why. Written before a round trains, so a killed study continues from its round and trains no
//! run twice; `plan`, `status` and `aggregate` read the runs of every round from it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

/// A study's rounds, in order, and what its looks decided.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rounds {
    /// Every round so far: the last is the current one.
    #[serde(default, rename = "round")]
    pub rounds: Vec<Round>,
    /// The claims that take no more seeds, each once.
    #[serde(default, rename = "claim")]
    pub stopped_claims: Vec<StoppedClaim>,
    /// Why the study stopped, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Stop>,
}

/// One round: the seeds of every network once it is trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Round {
    /// From 1.
    pub number: usize,
    /// Each network's seeds (0 to n-1) once the round is trained.
    pub seeds: BTreeMap<String, usize>,
    /// The round's wall time, once it is trained (what the budget counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// On Slurm: when the round was submitted (seconds since 1970), its wall time's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted: Option<u64>,
}

/// A claim that takes no more seeds: judged, from then on, on the seeds its networks had at the
/// look that stopped it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoppedClaim {
    /// The claim's number in its experiment.
    pub number: usize,
    /// The round after which it stopped.
    pub round: usize,
    /// Settled, or futile.
    pub outcome: ClaimStop,
    /// Futile: the seeds per network it would need at its observed difference and spread
    /// (absent: more than 1,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub would_need: Option<usize>,
}

/// Why a claim takes no more seeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClaimStop {
    /// Held, or did not hold.
    Settled,
    /// The cap cannot settle it at its observed difference and spread.
    Futile,
}

/// Why a study with seeds on demand stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stop {
    /// Every claim is settled or futile (or not measured).
    Settled,
    /// The claims left need networks that are at the cap.
    Cap,
    /// The next round would end past the budget.
    Budget,
}

impl Stop {
    /// Why, in words.
    pub fn text(self) -> &'static str {
        match self {
            Stop::Settled => "every claim is settled or futile",
            Stop::Cap => "the claims left need networks already at --max-seeds",
            Stop::Budget => "the next round would end past --budget",
        }
    }
}

impl Rounds {
    /// The record at `path`; empty where there is none yet.
    pub fn read(path: &Path) -> Result<Rounds> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| {
                anyhow::anyhow!(
                    "{}: {}; expected the round record reslab writes (remove it to start the rounds again)",
                    path.display(),
                    crate::run::config::one_line(&e.to_string())
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Rounds::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the record to `path` (atomically).
    pub fn write(&self, path: &Path) -> Result<()> {
        let header = "# The rounds of a study with seeds on demand, written by reslab before each round trains.\n";
        let text = toml::to_string(self).context("writing the round record")?;
        crate::util::fs::write_file(path, (header.to_string() + &text).as_bytes())
    }

    /// Each network's seeds at the current round (empty before the first).
    pub fn current_seeds(&self) -> BTreeMap<String, usize> {
        self.rounds.last().map(|r| r.seeds.clone()).unwrap_or_default()
    }

    /// The current round's number (0 before the first).
    pub fn current(&self) -> usize {
        self.rounds.last().map_or(0, |r| r.number)
    }

    /// Claim `number`'s stop, if it has stopped.
    pub fn claim(&self, number: usize) -> Option<&StoppedClaim> {
        self.stopped_claims.iter().find(|c| c.number == number)
    }

    /// The seeds of each network at `round` (its networks as the round lists them).
    pub fn seeds_at(&self, round: usize) -> Option<&BTreeMap<String, usize>> {
        self.rounds.iter().find(|r| r.number == round).map(|r| &r.seeds)
    }

    /// The wall time of the rounds trained so far.
    pub fn seconds_spent(&self) -> f64 {
        self.rounds.iter().filter_map(|r| r.seconds).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_record_round_trips_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rounds.toml");
        assert_eq!(Rounds::read(&path).unwrap(), Rounds::default());
        let seeds: BTreeMap<String, usize> = [("plain-20".to_string(), 3), ("plain-56".to_string(), 4)].into();
        let rounds = Rounds {
            rounds: vec![Round { number: 1, seeds: seeds.clone(), seconds: Some(12.5), submitted: None }],
            stopped_claims: vec![StoppedClaim {
                number: 1,
                round: 1,
                outcome: ClaimStop::Futile,
                would_need: Some(40),
            }],
            stopped: Some(Stop::Cap),
        };
        rounds.write(&path).unwrap();
        assert_eq!(Rounds::read(&path).unwrap(), rounds);
        assert_eq!((rounds.current(), rounds.current_seeds()), (1, seeds));
        std::fs::write(&path, "[[round]]\nnumber = \"one\"\n").unwrap();
        let err = Rounds::read(&path).unwrap_err().to_string();
        assert!(err.contains("rounds.toml") && err.contains("expected the round record"), "{err}");
    }
}
