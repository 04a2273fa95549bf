//! Seeds on demand: a study that adds seeds a round at a time until each claim is settled. Its
//! first round trains [`FIRST_SEEDS`](super::on_demand::FIRST_SEEDS) seeds of every network, and each later round one more seed of
//! the networks an unsettled claim needs, up to a cap ([`DEFAULT_MAX_SEEDS`](super::on_demand::DEFAULT_MAX_SEEDS)). Every claim is
//! judged after every round with intervals widened for all the looks the cap allows
//! ([`Intervals::Sequential`], Bonferroni over the looks): the chance of a false "held" or "did
//! not hold" at any look stays at most 5% per claim, whichever round the study stops at. A
//! settled claim is not judged again: its verdict and interval are those of the look that
//! settled it.

use super::claims::{combined, verdict_of, CheckOutcome, Comparison, Method};
use super::stats::{t_quantile, Interval, Intervals, Level};
use crate::report::verdict::Verdict;
use std::collections::BTreeMap;

/// The intervals of a study whose networks start at `first` seeds and stop at `cap`: one look
/// per round, the first at `first` seeds.
pub fn intervals(first: usize, cap: usize) -> Intervals {
    Intervals::Sequential { looks: cap.saturating_sub(first) + 1 }
}

/// What the look after a round decides.
#[derive(Debug, Clone, PartialEq)]
pub struct NextRound {
    /// Networks that get one more seed, by name, each once.
    pub grow: Vec<String>,
    /// Unsettled claims that stop taking seeds: at their observed difference and spread the cap
    /// cannot settle them (futility). Each with the seeds per network it would need (`None`: more
    /// than 1,000).
    pub futile: Vec<(usize, Option<usize>)>,
}

impl NextRound {
    /// Whether the study stops: no claim asks for another seed.
    pub fn stops(&self) -> bool {
        self.grow.is_empty()
    }
}

/// The look after a round: every claim still inconclusive and not futile asks one more seed of
/// each of its networks (`networks` gives them by claim number; both sides of a paired claim,
/// so the new seed is on both), none beyond `cap`; networks whose claims are all settled get
/// none. `seeds` counts each network's seeds so far; `first` is the first round's seeds.
pub fn next_round(
    claims: &[CheckOutcome],
    networks: &dyn Fn(usize) -> Vec<String>,
    seeds: &BTreeMap<String, usize>,
    first: usize,
    cap: usize,
) -> NextRound {
    let mut grow: Vec<String> = Vec::new();
    let mut futile = Vec::new();
    for claim in claims.iter().filter(|c| c.verdict == Verdict::Inconclusive) {
        if !settles_by(&claim.comparisons, first, cap) {
            futile.push((claim.number, (cap + 1..=1000).find(|&n| settles_by(&claim.comparisons, first, n))));
            continue;
        }
        for network in networks(claim.number) {
            if seeds.get(&network).copied().unwrap_or(0) < cap && !grow.contains(&network) {
                grow.push(network);
            }
        }
    }
    NextRound { grow, futile }
}

/// Whether the comparisons, with their observed differences and spreads, would settle their claim
/// at `cap` seeds per network, judged at a study's level from `first` seeds to `cap`. A
/// comparison without a spread yet (one seed) may settle.
fn settles_by(comparisons: &[Comparison], first: usize, cap: usize) -> bool {
    let level = intervals(first, cap).level(comparisons.len());
    let projected: Vec<Comparison> =
        comparisons.iter().map(|c| Comparison { verdict: projected_verdict(c, cap, level), ..c.clone() }).collect();
    combined(&projected) != Verdict::Inconclusive
}

/// The verdict `comparison` would have at `seeds` per network if its difference and spread stayed
/// as observed.
fn projected_verdict(comparison: &Comparison, seeds: usize, level: Level) -> Verdict {
    let Some(sd) = comparison.sd.filter(|_| seeds >= 2) else {
        // No spread to project from: it may settle.
        return Verdict::Held;
    };
    let df = match comparison.method {
        Method::Welch => 2.0 * (seeds - 1) as f64,
        _ => (seeds - 1) as f64,
    };
    let half = t_quantile(level.quantile, df) * sd / (seeds as f64).sqrt();
    let effect = comparison.effect;
    let interval = Interval { mean: effect, low: effect - half, high: effect + half, n: seeds, df };
    verdict_of(Some(interval), comparison.side)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::claims::{decide, Side};
    use crate::experiment::on_demand::{DEFAULT_MAX_SEEDS, FIRST_SEEDS};
    use crate::experiment::stats::sequential_seeds;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Per-seed outcomes: normal, or Student's t with 3 degrees of freedom (scaled to unit
    /// variance).
    #[derive(Clone, Copy, Debug)]
    enum Tails {
        Normal,
        T3,
    }

    fn normal(rng: &mut ChaCha8Rng) -> f64 {
        let (u, v): (f64, f64) = (rng.gen::<f64>().max(f64::MIN_POSITIVE), rng.gen());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    fn draw(rng: &mut ChaCha8Rng, tails: Tails) -> f64 {
        match tails {
            Tails::Normal => normal(rng),
            Tails::T3 => {
                let chi2: f64 = (0..3).map(|_| normal(rng).powi(2)).sum();
                normal(rng) / (chi2 / 3.0).sqrt() / 3f64.sqrt()
            }
        }
    }

    /// One simulated claim: two networks compared on two correlated statistics (as the final and
    /// the mean training error are), the first network's spread `spread` times the second's,
    /// the first `extra` seeds ahead (another claim asked for them: Welch), looked at after
    /// every round from [`FIRST_SEEDS`] to `cap` seeds, stopping at the first settled look.
    #[derive(Clone, Copy, Debug)]
    struct Case {
        side: Side,
        /// The true difference of the networks' means (first - second), on both statistics.
        difference: f64,
        paired: bool,
        extra: usize,
        spread: f64,
        tails: Tails,
        statistics: usize,
        cap: usize,
    }

    /// The verdict a simulated study ends with, and the seeds (of the second network) it took.
    fn study(case: Case, rng: &mut ChaCha8Rng) -> (Verdict, usize) {
        let most = case.cap;
        // Per seed: the outcome both networks share (paired: the same data order), then each
        // network's own; the second statistic is correlated with the first.
        let mut seeds: Vec<[[f64; 2]; 2]> = Vec::with_capacity(most);
        for _ in 0..most {
            let shared = if case.paired { draw(rng, case.tails) } else { 0.0 };
            let mut seed = [[0.0; 2]; 2];
            for (net, sd) in [(0, case.spread), (1, 1.0)] {
                let own = draw(rng, case.tails);
                let second = draw(rng, case.tails);
                let mean = if net == 0 { case.difference } else { 0.0 };
                seed[net][0] = mean + shared + sd * own;
                seed[net][1] = mean + shared + sd * (0.8 * own + 0.6 * second);
            }
            seeds.push(seed);
        }
        let intervals = intervals(FIRST_SEEDS, case.cap);
        let level = intervals.level(case.statistics);
        for n in FIRST_SEEDS..=case.cap {
            let n_first = (n + case.extra).min(most);
            let mut comparisons: Vec<Comparison> = (0..case.statistics)
                .map(|s| {
                    let a: Vec<f64> = seeds[..n_first].iter().map(|seed| seed[0][s]).collect();
                    let b: Vec<f64> = seeds[..n].iter().map(|seed| seed[1][s]).collect();
                    let same = case.paired && n_first == n;
                    Comparison::of_values("statistic", "a - b", "points", case.side, (a, b), same, level)
                })
                .collect();
            let verdict = decide(&mut comparisons, intervals);
            if matches!(verdict, Verdict::Held | Verdict::NotHeld) || n == case.cap {
                return (verdict, n);
            }
        }
        unreachable!("the loop returns at the cap")
    }

    /// The share of `studies` simulated studies of `case` ending in a false verdict (any verdict
    /// but inconclusive: every case here sits where neither is true), on two threads.
    fn false_share(case: Case, studies: usize, seed: u64) -> f64 {
        let false_ones: usize = std::thread::scope(|scope| {
            let halves: Vec<_> = (0..2u64)
                .map(|half| {
                    scope.spawn(move || {
                        let mut rng = ChaCha8Rng::seed_from_u64(seed * 2 + half);
                        (0..studies / 2)
                            .filter(|_| matches!(study(case, &mut rng).0, Verdict::Held | Verdict::NotHeld))
                            .count()
                    })
                })
                .collect();
            halves.into_iter().map(|h| h.join().expect("a simulation thread")).sum()
        });
        false_ones as f64 / (studies / 2 * 2) as f64
    }

    #[test]
    fn a_false_verdict_at_any_look_stays_under_five_percent_per_claim() {
        const STUDIES: usize = 20_000;
        // 5% plus two Monte Carlo standard errors.
        let bound = 0.05 + 2.0 * (0.05 * 0.95 / STUDIES as f64).sqrt();
        let mut cases = Vec::new();
        for tails in [Tails::Normal, Tails::T3] {
            for (paired, extra) in [(true, 0), (false, 2)] {
                for (side, difference) in [(Side::Above, 0.0), (Side::Within(1.0), 1.0), (Side::Within(1.0), -1.0)] {
                    let spread = 5.0;
                    cases.push(Case { side, difference, paired, extra, spread, tails, statistics: 2, cap: 10 });
                }
            }
        }
        // One statistic, and spreads alike, for the simplest claim.
        let simple = Case { statistics: 1, spread: 1.0, ..cases[0] };
        cases.push(simple);
        assert_eq!(cases.len(), 13);
        for (i, case) in cases.into_iter().enumerate() {
            let share = false_share(case, STUDIES, i as u64);
            assert!(share <= bound, "{case:?}: {:.2}% false verdicts, above {:.2}%", 100.0 * share, 100.0 * bound);
        }
    }

    #[test]
    fn a_real_difference_settles_near_the_seeds_the_table_gives() {
        for (effect, cap) in [(1.0, 20), (2.0, 10), (4.0, 10)] {
            // The per-seed difference's spread is that of two unit draws, sqrt(2): `effect` of it.
            let case = Case {
                side: Side::Above,
                difference: effect * 2f64.sqrt(),
                paired: true,
                extra: 0,
                spread: 1.0,
                tails: Tails::Normal,
                statistics: 1,
                cap,
            };
            let table = sequential_seeds(effect, FIRST_SEEDS, cap, 1).expect("settles within the cap");
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            let mut needed: Vec<usize> = (0..2_000)
                .map(|_| study(case, &mut rng))
                .filter(|(verdict, _)| *verdict == Verdict::Held)
                .map(|(_, n)| n)
                .collect();
            assert!(needed.len() > 1_000, "{effect} sd: only {} of 2,000 studies held", needed.len());
            needed.sort_unstable();
            let median = needed[needed.len() / 2] as f64;
            let off = (median - table as f64).abs() / table as f64;
            assert!(off <= 0.2, "{effect} sd: a median of {median} seeds, the table {table}");
        }
    }

    fn claim(number: usize, side: Side, first: Vec<f64>, second: Vec<f64>) -> CheckOutcome {
        let level = intervals(FIRST_SEEDS, DEFAULT_MAX_SEEDS).level(1);
        let mut comparisons =
            vec![Comparison::of_values("final training error", "a - b", "points", side, (first, second), true, level)];
        CheckOutcome {
            number,
            verdict: decide(&mut comparisons, intervals(FIRST_SEEDS, DEFAULT_MAX_SEEDS)),
            claim: format!("claim {number}"),
            source: String::new(),
            comparisons,
            notes: Vec::new(),
            reason: String::new(),
            caveat: None,
            settled_at: None,
        }
    }

    #[test]
    fn only_unsettled_claims_that_the_cap_can_settle_take_seeds() {
        // 1: settled (a clear difference); 2: close to settling; 3: no difference at a wide
        // spread (the cap cannot settle it: futile).
        let settled = claim(1, Side::Above, vec![20.0, 21.0, 20.5], vec![10.0, 10.2, 9.9]);
        let close = claim(2, Side::Above, vec![12.0, 13.5, 11.0], vec![10.0, 10.5, 9.5]);
        let hopeless = claim(3, Side::Above, vec![10.0, 30.0, 20.0], vec![21.0, 9.0, 30.0]);
        assert_eq!(
            [settled.verdict, close.verdict, hopeless.verdict],
            [Verdict::Held, Verdict::Inconclusive, Verdict::Inconclusive]
        );
        let networks = |n: usize| vec![format!("deep-{n}"), format!("shallow-{n}")];
        let seeds: BTreeMap<String, usize> = (1..=3).flat_map(networks).map(|n| (n, FIRST_SEEDS)).collect();
        let next = next_round(&[settled, close, hopeless], &networks, &seeds, FIRST_SEEDS, DEFAULT_MAX_SEEDS);
        assert_eq!(next.grow, ["deep-2", "shallow-2"]);
        assert_eq!(next.futile.len(), 1);
        assert_eq!(next.futile[0].0, 3);
        assert!(!next.stops());
        // At the cap nothing grows, and the study stops.
        let full: BTreeMap<String, usize> = seeds.keys().map(|n| (n.clone(), DEFAULT_MAX_SEEDS)).collect();
        let close = claim(2, Side::Above, vec![12.0, 13.5, 11.0], vec![10.0, 10.5, 9.5]);
        assert!(next_round(&[close], &networks, &full, FIRST_SEEDS, DEFAULT_MAX_SEEDS).stops());
    }
}
