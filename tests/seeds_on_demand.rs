//! A tiny study with seeds on demand on the embedded sample: its rounds, its stop, and a kill in
//! its second round that the next command continues from, training no run twice.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Stdio};

/// plain-8 against resnet-8 after 10 iterations (their final training errors 2.1 points apart,
/// with a spread of 1.4), on three `similar` claims: one with a margin no spread can cross
/// (settles in the first round), one with the margin at the difference (no seeds settle it:
/// futile), and one between, which the first round's 3 seeds cannot settle and 4 can (it takes a
/// second round: its interval at 4 seeds, [-1.9, +6.3], is inside 8 by more than a point). The
/// runs are the same on every machine to far better than the margins' gaps.
const STUDY: &str = r#"
name = "tiny"
title = "A tiny study with seeds on demand"
description = "plain-8, resnet-8"
default_preset = "smoke"

[[runs]]
model = "plain-8"

[[runs]]
model = "resnet-8"

[[expect]]
similar_train_error = ["plain-8", "resnet-8"]
within = 1000

[[expect]]
similar_train_error = ["plain-8", "resnet-8"]
within = 2

[[expect]]
similar_train_error = ["plain-8", "resnet-8"]
within = 8

[presets.smoke]
data = "embedded"
iters = 10
eval_every = 5
batch_size = 16
"#;

const RUNS: [&str; 8] = [
    "plain-8-seed0",
    "plain-8-seed1",
    "plain-8-seed2",
    "resnet-8-seed0",
    "resnet-8-seed1",
    "resnet-8-seed2",
    "plain-8-seed3",
    "resnet-8-seed3",
];

fn reproduce(file: &Path, out: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_reslab"));
    command.args(["reproduce", file.to_str().unwrap(), "--seeds", "auto", "--precision", "fp32", "--kernels", "exact"]);
    command.args(["--threads", "1", "--jobs", "1", "--out", out.to_str().unwrap()]);
    command
}

fn summary_of(out: &Path, run: &str) -> String {
    std::fs::read_to_string(out.join(run).join("summary.toml")).unwrap_or_default()
}

#[test]
fn a_study_with_seeds_on_demand_runs_rounds_stops_and_continues_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tiny.toml");
    std::fs::write(&file, STUDY).unwrap();
    let out = dir.path().join("study");

    // Round 1 trains 3 seeds of each network, each run held at iteration 5 until released; round
    // 2 adds a seed to both, and is killed while its first run is held.
    let holds = Holds::new(dir.path(), 5);
    let (key, value) = holds.env();
    let child = reproduce(&file, &out).env(key, value).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let mut child = Children(vec![child]);
    let mut released: Vec<&str> = Vec::new();
    while released.len() < 6 {
        let held = std::cell::Cell::new(None);
        wait_for("a run of round 1 to be held", REACH_HOLD, || {
            held.set(RUNS[..6].iter().copied().find(|run| !released.contains(run) && holds.is_held(run, None)));
            held.get().is_some()
        });
        holds.release(held.get().unwrap());
        released.push(held.get().unwrap());
    }
    let second = std::cell::Cell::new(None);
    wait_for("a run of round 2 to be held", REACH_HOLD, || {
        second.set(RUNS[6..].iter().find(|run| holds.is_held(run, None)));
        second.get().is_some()
    });
    assert_running(&mut child[0], "the study");
    child[0].kill().unwrap();
    child[0].wait().unwrap();

    let rounds = std::fs::read_to_string(out.join("rounds.toml")).unwrap();
    assert!(rounds.contains("number = 2") && !rounds.contains("stopped"), "{rounds}");
    for (claim, outcome) in [(1, "settled"), (2, "futile")] {
        let record = format!("[[claim]]\nnumber = {claim}\nround = 1\noutcome = \"{outcome}\"");
        assert!(rounds.contains(&record), "claim {claim} {outcome} after round 1: {rounds}");
    }
    assert!(!rounds.contains("number = 3\nround"), "claim 3 takes seeds: {rounds}");
    let round_one: Vec<String> = RUNS[..6].iter().map(|run| summary_of(&out, run)).collect();
    assert!(round_one.iter().all(|s| s.contains("status = \"complete\"")), "{round_one:?}");
    assert!(summary_of(&out, second.get().unwrap()).is_empty(), "the held run of round 2 did not complete");

    // Where it stands: the settled and futile claims, the round that is not trained yet.
    let status = reslab(&["status", out.to_str().unwrap()]);
    let text = stdout(&status);
    assert!(status.status.success(), "{}", stderr(&status));
    for line in [
        "seeds on demand: round 2 (plain-8 4, resnet-8 4; 3 to 10 per network)",
        "claim 1: held after round 1, at 3 seeds per network",
        "claim 2: futile after round 1",
        "claim 3: open (inconclusive)",
        "round 2 (it adds a seed to plain-8, resnet-8) is not trained yet",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }

    // The same command continues round 2, trains round 1's runs no more, and stops when claim 3
    // settles.
    let again = reproduce(&file, &out).output().unwrap();
    let (text, err) = (stdout(&again), stderr(&again));
    assert!(again.status.success(), "{err}");
    assert!(err.contains("seeds on demand: round 2 (plain-8 4, resnet-8 4)"), "{err}");
    assert!(err.contains("6 of 8 runs are complete already; running the other 2"), "{err}");
    let after: Vec<String> = RUNS[..6].iter().map(|run| summary_of(&out, run)).collect();
    assert_eq!(after, round_one, "round 1's runs were not trained again");
    for run in &RUNS[6..] {
        assert_eq!(read_rows(&out.join(run)).len(), 2, "{run}: each metrics row once");
    }
    let rounds = std::fs::read_to_string(out.join("rounds.toml")).unwrap();
    assert!(rounds.contains("stopped = \"settled\"") && !rounds.contains("[[round]]\nnumber = 3"), "{rounds}");
    assert!(rounds.contains("[[claim]]\nnumber = 3\nround = 2\noutcome = \"settled\""), "{rounds}");
    assert!(err.contains("after round 2: claim 3 settled; the study stops: every claim is settled or futile"), "{err}");
    assert!(text.contains("3. plain-8, resnet-8 end within 8 points") && text.contains("sequential CI"), "{text}");
    let claims = std::fs::read_to_string(out.join("claims.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(claims.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let cells = |name: &str| rows.iter().map(|r| r[column(name)].to_string()).collect::<Vec<_>>();
    assert_eq!(cells("verdict"), ["held", "inconclusive", "held"]);
    assert_eq!(cells("settled_at_seeds"), ["3", "", "4"]);
    assert_eq!(cells("n"), ["3", "3", "4"], "each claim on the seeds it stopped at");
    assert!(cells("interval").iter().all(|i| i.ends_with("% sequential")), "{claims}");

    // Nothing is left to do: the same command again trains nothing and says the same.
    let last = reproduce(&file, &out).output().unwrap();
    assert!(last.status.success(), "{}", stderr(&last));
    assert_eq!(std::fs::read_to_string(out.join("claims.csv")).unwrap(), claims);
}
