//! Seeds on demand: a study that adds seeds a round at a time until each claim is settled. Its
//! first round trains [`FIRST_SEEDS`] seeds of every network, and each later round one more seed of
//! the networks an unsettled claim needs, up to a cap ([`DEFAULT_MAX_SEEDS`]). Every claim is
//! judged after every round with intervals widened for all the looks the cap allows
//! ([`Intervals::Sequential`], Bonferroni over the looks): the chance of a false "held" or "did
//! not hold" at any look stays at most 5% per claim, whichever round the study stops at. A
//! settled claim is not judged again: its verdict and interval are those of the look that
//! settled it.

use super::stats::Intervals;

/// Seeds of every network in the first round: the fewest whose interval can settle a claim at
/// the sequential level (two give one degree of freedom, whose quantile no effect clears).
pub const FIRST_SEEDS: usize = 3;

/// The most seeds a network gets where `--max-seeds` does not say.
pub const DEFAULT_MAX_SEEDS: usize = 10;

/// The intervals of a study whose networks start at `first` seeds and stop at `cap`: one look
/// per round, the first at `first` seeds.
pub fn intervals(first: usize, cap: usize) -> Intervals {
    Intervals::Sequential { looks: cap.saturating_sub(first) + 1 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::claims::{decide, Comparison, Side};
    use crate::experiment::stats::sequential_seeds;
    use crate::report::verdict::Verdict;
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
}
