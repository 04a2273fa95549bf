//! A study with seeds on demand (`--seeds auto`), as it runs: a round of runs, a look at every
//! claim ([`super::sequential::next_round`]), the look's decision written to the round record
//! ([`super::rounds`]) before the next round trains, until nothing asks for a seed, the cap is
//! reached, or the next round would pass the budget. A killed study continues from its round:
//! the runs of the round that are complete are not trained again, and a look is the same
//! whenever it is taken.

use super::aggregate::{aggregate, paper_iters, StudyReport};
use super::claims::CheckOutcome;
use super::cost;
use super::judging::Judging;
use super::on_demand::{OnDemand, FIRST_SEEDS};
use super::overrides::Overrides;
use super::plan::{pending, plan, PlannedRun};
use super::preset::Preset;
use super::results::read_groups;
use super::rounds::{ClaimStop, Round, Rounds, Stop, StoppedClaim};
use super::runner::{run_study, Parallelism};
use super::sequential::{next_round, NextRound};
use super::slurm::{self, Invocation, SlurmSettings};
use super::spec::Experiment;
use super::study_dir::StudyDir;
use crate::report::verdict::Verdict;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// Runs the rounds of the study in `out` (`overrides.on_demand` set) from where its record
/// stands: the last round's report, and the runs that failed (a failed run ends the rounds: run
/// the study again to continue).
pub fn run_rounds(
    experiment: &Experiment,
    preset: Preset,
    overrides: &Overrides,
    parallelism: Parallelism,
    out: &Path,
) -> Result<(StudyReport, Vec<String>)> {
    let on_demand = overrides.on_demand.clone().context("seeds on demand without --seeds auto")?;
    let dir = StudyDir::new(out);
    let mut rounds = recorded_rounds(experiment, preset, overrides, out)?;
    if rounds.stopped.is_none() {
        std::fs::create_dir_all(out).with_context(|| format!("creating output directory {}", out.display()))?;
        rounds.write(&dir.rounds())?;
    }
    loop {
        let overrides = Overrides { round_seeds: rounds.current_seeds(), ..overrides.clone() };
        if rounds.stopped.is_none() {
            crate::eprint_line!(
                "seeds on demand: round {} ({})",
                rounds.current(),
                seeds_text(&rounds.current_seeds())
            );
        }
        let started = Instant::now();
        let (report, failures) = run_study(experiment, preset, &overrides, parallelism, out)?;
        if !failures.is_empty() || rounds.stopped.is_some() {
            return Ok((report, failures));
        }
        let round = rounds.rounds.last_mut().expect("a round");
        round.seconds = Some(round.seconds.unwrap_or(0.0) + started.elapsed().as_secs_f64());
        let next = decide(experiment, &on_demand, &report.checks, &mut rounds);
        rounds.write(&dir.rounds())?;
        crate::eprint_line!("seeds on demand: {}", look_text(&rounds, &next));
        if rounds.stopped.is_some() {
            // Once more, so the report says which claims stopped, and why the study did.
            let runs = plan(experiment, preset, &overrides, out)?;
            return Ok((aggregate(experiment, preset, &runs, out)?, failures));
        }
    }
}

/// The study's round record, with its first round where it has none yet (not written), and a
/// budget's stop lifted (a budget may be raised between two commands: its stop is decided again).
fn recorded_rounds(experiment: &Experiment, preset: Preset, overrides: &Overrides, out: &Path) -> Result<Rounds> {
    let mut rounds = Rounds::read(&StudyDir::new(out).rounds())?;
    if rounds.rounds.is_empty() {
        let first = Overrides { round_seeds: BTreeMap::new(), ..overrides.clone() };
        let seeds = plan(experiment, preset, &first, out)?.into_iter().map(|r| (r.name, FIRST_SEEDS)).collect();
        rounds.rounds.push(Round { number: 1, seeds, seconds: None, submitted: None });
    }
    if rounds.stopped == Some(Stop::Budget) {
        rounds.stopped = None;
    }
    Ok(rounds)
}

/// `reproduce --backend slurm` of a study with seeds on demand: submits the current round's runs
/// that are not complete (an array job, and an aggregation job that runs this again with
/// `after_round`); once the round is trained, takes its look and submits the next round, or
/// writes the last report where the study stops. What was done, for the user.
pub fn on_slurm(
    experiment: &Experiment,
    invocation: &Invocation,
    settings: &SlurmSettings,
    out: &Path,
    (after_round, dry_run): (Option<usize>, bool),
) -> Result<String> {
    let on_demand = invocation.overrides.on_demand.clone().context("seeds on demand without --seeds auto")?;
    let dir = StudyDir::new(out);
    let mut rounds = recorded_rounds(experiment, invocation.preset, &invocation.overrides, out)?;
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let with_seeds =
        |rounds: &Rounds| Overrides { round_seeds: rounds.current_seeds(), ..invocation.overrides.clone() };
    let runs = plan(experiment, invocation.preset, &with_seeds(&rounds), out)?;
    let left = pending(runs.clone())?;
    if rounds.stopped.is_some() || (left.is_empty() && !dry_run) {
        if rounds.stopped.is_none() {
            let report = aggregate(experiment, invocation.preset, &runs, out)?;
            let round = rounds.rounds.last_mut().expect("a round");
            round.seconds = round.submitted.map(|at| now().saturating_sub(at) as f64);
            let next = decide(experiment, &on_demand, &report.checks, &mut rounds);
            rounds.write(&dir.rounds())?;
            crate::eprint_line!("seeds on demand: {}", look_text(&rounds, &next));
        }
        if let Some(stop) = rounds.stopped {
            let runs = plan(experiment, invocation.preset, &with_seeds(&rounds), out)?;
            let report = aggregate(experiment, invocation.preset, &runs, out)?;
            return Ok(format!("the study has stopped: {}\n{}", stop.text(), report.text(experiment)));
        }
    } else if after_round == Some(rounds.current()) {
        let report = aggregate(experiment, invocation.preset, &runs, out)?;
        let names: Vec<String> = left.iter().map(PlannedRun::dir_name).collect();
        bail!(
            "round {} ended with {} runs not complete ({}); the report in {} shows the others: run `reslab reproduce \
             {} --backend slurm` to submit them again ({} claims judged so far)",
            rounds.current(),
            names.len(),
            names.join(", "),
            out.display(),
            out.display(),
            report.checks.len()
        );
    }
    let invocation = Invocation { overrides: with_seeds(&rounds), round: Some(rounds.current()), ..invocation.clone() };
    let Some(submission) = slurm::reproduce(experiment, &invocation, settings, out, dry_run)? else {
        return Ok(String::new());
    };
    let round = rounds.rounds.last_mut().expect("a round");
    round.submitted = round.submitted.or(Some(now()));
    rounds.write(&dir.rounds())?;
    Ok(format!(
        "seeds on demand, round {} ({}): submitted {} runs as array job {}; job {} takes the round's look when it \
         ends and submits the next round.\nfollow them with: reslab status {}   (or squeue -j {})\n",
        rounds.current(),
        seeds_text(&rounds.current_seeds()),
        submission.runs.len(),
        submission.array_job,
        submission.aggregate_job,
        out.display(),
        submission.array_job
    ))
}

/// The look after the current round, recorded in `rounds`: the claims that settled or are futile
/// stop taking seeds, and either a next round (one more seed of each network an open claim
/// needs) or the study's stop.
fn decide(experiment: &Experiment, on_demand: &OnDemand, checks: &[CheckOutcome], rounds: &mut Rounds) -> NextRound {
    let current = rounds.current();
    let seeds = rounds.current_seeds();
    // Claims that stopped earlier are not looked at again.
    let open: Vec<CheckOutcome> = checks.iter().filter(|c| rounds.claim(c.number).is_none()).cloned().collect();
    let networks = |number: usize| -> Vec<String> {
        experiment.expect.get(number - 1).map(|e| e.runs().into_iter().cloned().collect()).unwrap_or_default()
    };
    let next = next_round(&open, &networks, &seeds, FIRST_SEEDS, on_demand.cap());
    for claim in open.iter().filter(|c| matches!(c.verdict, Verdict::Held | Verdict::NotHeld)) {
        let stop = StoppedClaim { number: claim.number, round: current, outcome: ClaimStop::Settled, would_need: None };
        rounds.stopped_claims.push(stop);
    }
    for &(number, would_need) in &next.futile {
        rounds.stopped_claims.push(StoppedClaim { number, round: current, outcome: ClaimStop::Futile, would_need });
    }
    rounds.stopped_claims.sort_by_key(|c| c.number);
    if next.stops() {
        let waiting = open.iter().any(|c| c.verdict == Verdict::Inconclusive && rounds.claim(c.number).is_none());
        rounds.stopped = Some(if waiting { Stop::Cap } else { Stop::Settled });
        return next;
    }
    if let Some(budget) = on_demand.budget {
        if rounds.seconds_spent() + next_round_seconds(rounds, next.grow.len()) > budget.seconds as f64 {
            rounds.stopped = Some(Stop::Budget);
            return next;
        }
    }
    let mut seeds = seeds;
    for network in &next.grow {
        *seeds.entry(network.clone()).or_insert(FIRST_SEEDS) += 1;
    }
    rounds.rounds.push(Round { number: current + 1, seeds, seconds: None, submitted: None });
    next
}

/// The next round's wall time, estimated from the last round's time per run it trained.
fn next_round_seconds(rounds: &Rounds, runs: usize) -> f64 {
    let [.., before, last] = rounds.rounds.as_slice() else {
        let first = &rounds.rounds[0];
        let trained: usize = first.seeds.values().sum();
        return first.seconds.unwrap_or(0.0) / trained.max(1) as f64 * runs as f64;
    };
    let trained: usize = last.seeds.iter().map(|(n, s)| s - before.seeds.get(n).copied().unwrap_or(0)).sum();
    last.seconds.unwrap_or(0.0) / trained.max(1) as f64 * runs as f64
}

/// `plain-20 3, plain-56 4`.
fn seeds_text(seeds: &BTreeMap<String, usize>) -> String {
    seeds.iter().map(|(network, n)| format!("{network} {n}")).collect::<Vec<_>>().join(", ")
}

/// What a look decided, in one line.
fn look_text(rounds: &Rounds, next: &NextRound) -> String {
    let current = rounds.current();
    // The round looked at: the current one where the study stopped, else the one before it.
    let looked = if rounds.stopped.is_some() { current } else { current - 1 };
    let stopped_now: Vec<String> = rounds
        .stopped_claims
        .iter()
        .filter(|c| c.round == looked)
        .map(|c| match c.outcome {
            ClaimStop::Settled => format!("claim {} settled", c.number),
            ClaimStop::Futile => format!("claim {} futile", c.number),
        })
        .collect();
    let after = if stopped_now.is_empty() { String::new() } else { format!("{}; ", stopped_now.join(", ")) };
    match rounds.stopped {
        Some(stop) => format!("after round {looked}: {after}the study stops: {}", stop.text()),
        None => format!("after round {looked}: {after}round {current} adds a seed to {}", next.grow.join(", ")),
    }
}

/// Where a study with seeds on demand stands, for `reslab status`: its round, each claim (open,
/// settled or futile), and what the round adds or, once it is trained, what its look will
/// decide (or why the study stopped). `runs` is the current round's plan.
pub fn status_text(experiment: &Experiment, overrides: &Overrides, runs: &[PlannedRun], out: &Path) -> Result<String> {
    let Some(on_demand) = &overrides.on_demand else {
        return Ok(String::new());
    };
    let judging = Judging::of_study(&StudyDir::new(out))?;
    let Judging::Sequential { cap, rounds } = &judging else {
        return Ok(String::new());
    };
    let mut text = format!(
        "seeds on demand: round {} ({}; {FIRST_SEEDS} to {cap} per network)\n",
        rounds.current(),
        seeds_text(&rounds.current_seeds())
    );
    let (groups, _) = read_groups(experiment, runs)?;
    let checks = judging.check_all(&experiment.expect, &groups, paper_iters(experiment));
    for check in &checks {
        let state = match rounds.claim(check.number) {
            Some(stop) if stop.outcome == ClaimStop::Settled => format!(
                "{} after round {}, at {} seeds per network",
                check.verdict.text(),
                stop.round,
                check.settled_at.unwrap_or(0)
            ),
            // The reason says when and what it would need.
            Some(_) => check.reason.clone(),
            None => format!("open ({})", check.verdict.text()),
        };
        text += &format!("  claim {}: {state}\n", check.number);
    }
    let trained = runs.iter().all(|r| r.run.state().is_complete());
    text += &match (rounds.stopped, trained) {
        (Some(stop), _) => format!("stopped: {}\n", stop.text()),
        (None, false) => {
            let before = rounds.rounds.iter().rev().nth(1).map(|r| r.seeds.clone()).unwrap_or_default();
            let added: Vec<String> =
                rounds.current_seeds().into_iter().filter(|(n, s)| before.get(n) != Some(s)).map(|(n, _)| n).collect();
            let adds = match before.is_empty() {
                true => "its first seeds".to_string(),
                false => format!("a seed to {}", added.join(", ")),
            };
            format!("round {} (it adds {adds}) is not trained yet: `reslab reproduce` continues it\n", rounds.current())
        }
        (None, true) => {
            let mut after = rounds.clone();
            let next = decide(experiment, on_demand, &checks, &mut after);
            format!(
                "round {} is trained; its look: {} (`reslab reproduce` takes it)\n",
                rounds.current(),
                look_text(&after, &next)
            )
        }
    };
    Ok(text)
}

/// `reslab plan --seeds auto`: every run up to the cap, and the cost from the fewest seeds (the
/// claims settle in the current round, the first in a new study) to the most (every network at
/// the cap).
pub fn plan_text(experiment: &Experiment, preset: Preset, overrides: &Overrides, out: &Path) -> Result<String> {
    let cap = overrides.on_demand.as_ref().context("plan_text without --seeds auto")?.cap();
    let fewest = plan(experiment, preset, overrides, out)?;
    let at_cap: BTreeMap<String, usize> = fewest.iter().map(|r| (r.name.clone(), cap)).collect();
    let most = plan(experiment, preset, &Overrides { round_seeds: at_cap, ..overrides.clone() }, out)?;
    let rounds = Rounds::read(&StudyDir::new(out).rounds())?;
    if let Some(stop) = rounds.stopped {
        let cost = cost::estimate(&fewest, overrides.threads)?;
        let stopped = format!("the study stopped after round {}: {}", rounds.current(), stop.text());
        return Ok(format!("{}seeds on demand: {stopped}\n", cost.text(out)));
    }
    let (fewest_cost, most_cost) =
        (cost::estimate(&fewest, overrides.threads)?, cost::estimate(&most, overrides.threads)?);
    Ok(format!(
        "{}seeds on demand: about {} left if every claim settles with the seeds of round {} ({}), about {} if every \
         network needs the cap of {cap} seeds\n",
        most_cost.text(out),
        fewest_cost.span_text(fewest_cost.remaining_s),
        rounds.current().max(1),
        seeds_text(&fewest.iter().fold(BTreeMap::new(), |mut seeds, r| {
            *seeds.entry(r.name.clone()).or_insert(0) += 1;
            seeds
        })),
        most_cost.span_text(most_cost.remaining_s),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::claims::{decide as judge, Comparison, Side};
    use crate::experiment::on_demand::{Budget, DEFAULT_MAX_SEEDS};
    use crate::experiment::sequential;

    /// fig1's claim, open after 3 seeds and within reach of the cap: its networks take a seed.
    fn open_claim(cap: usize) -> CheckOutcome {
        let intervals = sequential::intervals(FIRST_SEEDS, cap);
        let values = (vec![12.0, 15.0, 11.0], vec![10.0, 10.5, 9.5]);
        let comparison =
            Comparison::of_values("final", "a - b", "points", Side::Above, values, true, intervals.level(1));
        let mut comparisons = vec![comparison];
        CheckOutcome {
            number: 1,
            verdict: judge(&mut comparisons, intervals),
            claim: String::new(),
            source: String::new(),
            comparisons,
            notes: Vec::new(),
            reason: String::new(),
            caveat: None,
            settled_at: None,
        }
    }

    fn first_round(seconds: f64) -> Rounds {
        let seeds = [("plain-20".to_string(), 3), ("plain-56".to_string(), 3)].into();
        Rounds {
            rounds: vec![Round { number: 1, seeds, seconds: Some(seconds), submitted: None }],
            ..Rounds::default()
        }
    }

    #[test]
    fn a_round_starts_only_within_the_budget_and_below_the_cap() {
        let experiment = Experiment::load("fig1").unwrap();
        let claim = open_claim(DEFAULT_MAX_SEEDS);
        assert_eq!(claim.verdict, Verdict::Inconclusive);
        // 6 runs took 600 s: the next round's 2, about 200 s more.
        let budget = |seconds| OnDemand { max_seeds: None, budget: Some(Budget { seconds }) };
        let mut rounds = first_round(600.0);
        let next = decide(&experiment, &budget(900), std::slice::from_ref(&claim), &mut rounds);
        assert_eq!((next.grow.len(), rounds.current(), rounds.stopped), (2, 2, None));
        assert_eq!(rounds.current_seeds().values().collect::<Vec<_>>(), [&4, &4]);
        let mut rounds = first_round(600.0);
        decide(&experiment, &budget(700), std::slice::from_ref(&claim), &mut rounds);
        assert_eq!((rounds.current(), rounds.stopped), (1, Some(Stop::Budget)));
        // At the cap, an open claim is futile (its projection is its interval), and the study stops.
        let at_cap = OnDemand { max_seeds: Some(FIRST_SEEDS), budget: None };
        let mut rounds = first_round(600.0);
        let claim = open_claim(FIRST_SEEDS);
        assert_eq!(claim.verdict, Verdict::Inconclusive);
        decide(&experiment, &at_cap, &[claim], &mut rounds);
        assert_eq!((rounds.current(), rounds.stopped), (1, Some(Stop::Settled)));
        let futile = rounds.claim(1).expect("claim 1 stopped");
        assert!(
            futile.outcome == ClaimStop::Futile && futile.would_need.is_some_and(|n| n > FIRST_SEEDS),
            "{futile:?}"
        );
    }
}
