//! The statistics a claim rests on: the difference of two networks' means with its 95%
//! confidence interval, paired by seed where both have the same seeds (the same seed sees the
//! same data order and augmentation draws, so the per-seed differences remove that variance),
//! else Welch's interval (unequal variances). Student's t quantiles come from the regularised
//! incomplete beta function (Numerical Recipes, 3rd ed., 6.4), solved by bisection.

use crate::util::stats::mean_sd;

/// The chance, per claim, of a false verdict ("held" or "did not hold" where the truth is
/// otherwise) that its intervals allow: 5%, at one look or over every look of a study that adds
/// seeds until its claims settle.
pub const ALPHA: f64 = 0.05;

/// An interval's confidence, as the quantile of Student's t its half-width takes (0.975: a
/// two-sided 95% interval).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    /// The t quantile (1 - alpha / 2 for a two-sided level of 1 - alpha).
    pub quantile: f64,
    /// Whether it is a look of a study with seeds on demand (a single look's can equal 95%).
    pub sequential: bool,
}

impl Level {
    /// A study of a fixed number of seeds, judged once: two-sided 95% intervals.
    pub const FIXED: Level = Level { quantile: 0.975, sequential: false };

    /// Each interval of a claim that rests on `statistics` intervals and is judged at up to
    /// `looks` looks (Bonferroni over the looks and the claim's sides). A false "held" needs every
    /// interval on the wrong side of its line at some look, a false "did not hold" one interval:
    /// with each side's chance a / 2 per interval and look, the chance of either at any look is at
    /// most looks * (statistics + 1) * a / 2, which is [`ALPHA`] when a = 2 ALPHA / ((statistics + 1)
    /// looks). It holds whichever look the study stops at, and for any rule that picks the next
    /// seeds from what the looks showed.
    pub fn sequential(looks: usize, statistics: usize) -> Level {
        let quantile = 1.0 - ALPHA / ((statistics.max(1) + 1) as f64 * looks.max(1) as f64);
        Level { quantile, sequential: true }
    }

    /// The two-sided confidence in percent (95 for [`Level::FIXED`]).
    pub fn percent(self) -> f64 {
        100.0 * (2.0 * self.quantile - 1.0)
    }
}

/// How a claim's intervals are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intervals {
    /// A study of a fixed number of seeds, judged once: 95% intervals.
    Fixed,
    /// A study that adds seeds until its claims settle, judging each claim after every round: at
    /// most `looks` looks per claim (the seeds from the first round's to the cap).
    Sequential {
        /// The most looks any claim gets.
        looks: usize,
    },
}

impl Intervals {
    /// The level of each interval of a claim resting on `statistics` intervals.
    pub fn level(self, statistics: usize) -> Level {
        match self {
            Intervals::Fixed => Level::FIXED,
            Intervals::Sequential { looks } => Level::sequential(looks, statistics),
        }
    }
}

/// A difference of means (b - a) with its 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// The estimated difference.
    pub mean: f64,
    /// Lower end of the 95% interval.
    pub low: f64,
    /// Upper end of the 95% interval.
    pub high: f64,
    /// Runs (pairs when paired) the interval is computed from.
    pub n: usize,
    /// Degrees of freedom of the t distribution used (Welch: Welch-Satterthwaite's).
    pub df: f64,
}

/// The 95% interval of the mean of per-seed differences `b[i] - a[i]`; `None` below two pairs.
pub fn paired(a: &[f64], b: &[f64]) -> Option<Interval> {
    paired_at(a, b, Level::FIXED)
}

/// [`paired`] at `level`.
pub fn paired_at(a: &[f64], b: &[f64], level: Level) -> Option<Interval> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let differences: Vec<f64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
    let (mean, sd) = mean_sd(&differences);
    let n = differences.len();
    let df = (n - 1) as f64;
    let half = t_quantile(level.quantile, df) * sd / (n as f64).sqrt();
    Some(Interval { mean, low: mean - half, high: mean + half, n, df })
}

/// Welch's 95% interval of `mean(b) - mean(a)`; `None` unless each has two values.
pub fn welch(a: &[f64], b: &[f64]) -> Option<Interval> {
    welch_at(a, b, Level::FIXED)
}

/// [`welch`] at `level`.
pub fn welch_at(a: &[f64], b: &[f64], level: Level) -> Option<Interval> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let ((ma, sa), (mb, sb)) = (mean_sd(a), mean_sd(b));
    let (va, vb) = (sa * sa / a.len() as f64, sb * sb / b.len() as f64);
    let se = (va + vb).sqrt();
    let df = if se == 0.0 {
        (a.len() + b.len() - 2) as f64
    } else {
        (va + vb).powi(2) / (va * va / (a.len() - 1) as f64 + vb * vb / (b.len() - 1) as f64)
    };
    let mean = mb - ma;
    let half = t_quantile(level.quantile, df) * se;
    Some(Interval { mean, low: mean - half, high: mean + half, n: a.len() + b.len(), df })
}

/// About how many seeds (pairs) would make an interval of this effect and spread exclude zero:
/// the smallest n with t(0.975, n - 1) * sd / sqrt(n) < |effect|; `None` without an effect or
/// above 1,000.
pub fn seeds_to_settle(effect: f64, sd: f64) -> Option<usize> {
    if effect == 0.0 || !effect.is_finite() || !sd.is_finite() {
        return None;
    }
    (2..=1000).find(|&n| t_quantile(0.975, (n - 1) as f64) * sd / (n as f64).sqrt() < effect.abs())
}

/// The seeds per network a paired claim resting on `statistics` intervals needs, judged after
/// every round from `first` seeds to `cap`, to settle a true difference of `effect_sd` standard
/// deviations of one seed's difference: the fewest seeds whose interval, at the study's level,
/// clears zero when the observed difference is the true one (about half the studies settle
/// by then). `None` where the cap is too few.
pub fn sequential_seeds(effect_sd: f64, first: usize, cap: usize, statistics: usize) -> Option<usize> {
    let level = Level::sequential(cap + 1 - first.min(cap), statistics);
    (first.max(2)..=cap).find(|&n| t_quantile(level.quantile, (n - 1) as f64) / (n as f64).sqrt() < effect_sd.abs())
}

/// Student's t distribution's `p` quantile with `df` degrees of freedom (0 < p < 1).
pub fn t_quantile(p: f64, df: f64) -> f64 {
    if p == 0.5 {
        return 0.0;
    }
    if p < 0.5 {
        return -t_quantile(1.0 - p, df);
    }
    // The same few (p, df) recur across a study's claims and looks (paired: df = seeds - 1).
    thread_local! {
        static KNOWN: std::cell::RefCell<std::collections::HashMap<(u64, u64), f64>> = Default::default();
    }
    let key = (p.to_bits(), df.to_bits());
    if let Some(t) = KNOWN.with(|known| known.borrow().get(&key).copied()) {
        return t;
    }
    let t = t_quantile_uncached(p, df);
    KNOWN.with(|known| {
        let mut known = known.borrow_mut();
        // Welch's degrees of freedom are real numbers: keep the table small.
        if known.len() > 4096 {
            known.clear();
        }
        known.insert(key, t);
    });
    t
}

/// [`t_quantile`] for p > 0.5, computed.
fn t_quantile_uncached(p: f64, df: f64) -> f64 {
    let (mut low, mut high) = (0.0, 1.0);
    while t_cdf(high, df) < p {
        low = high;
        high *= 2.0;
    }
    // Newton's method kept inside the bracket [low, high] around the root: a step that would
    // leave it halves the bracket instead. A few steps reach the last bits.
    let mut t = 0.5 * (low + high);
    for _ in 0..200 {
        let excess = t_cdf(t, df) - p;
        if excess < 0.0 {
            low = t;
        } else {
            high = t;
        }
        let newton = t - excess / t_density(t, df);
        let next = if newton > low && newton < high { newton } else { 0.5 * (low + high) };
        if (next - t).abs() <= 2.0 * f64::EPSILON * t.abs() || next == low || next == high {
            return next;
        }
        t = next;
    }
    t
}

/// Student's t density at `t` with `df` degrees of freedom.
fn t_density(t: f64, df: f64) -> f64 {
    let log_norm = ln_gamma((df + 1.0) / 2.0) - ln_gamma(df / 2.0) - 0.5 * (df * std::f64::consts::PI).ln();
    (log_norm - (df + 1.0) / 2.0 * (1.0 + t * t / df).ln()).exp()
}

/// Student's t distribution function at `t` with `df` degrees of freedom.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t));
    if t >= 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// The regularised incomplete beta function I_x(a, b).
fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front = (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_fraction(b, a, 1.0 - x) / b
    }
}

/// The continued fraction of the incomplete beta function (modified Lentz's method).
fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    d = if d.abs() < TINY { TINY } else { d };
    d = 1.0 / d;
    let mut h = d;
    for m in 1..300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        for aa in [m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))] {
            d = 1.0 + aa * d;
            d = if d.abs() < TINY { TINY } else { d };
            c = 1.0 + aa / c;
            c = if c.abs() < TINY { TINY } else { c };
            d = 1.0 / d;
            h *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// ln Γ(x) for x > 0 (Lanczos' approximation, g = 7, 9 terms).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let sum = G[1..].iter().enumerate().fold(G[0], |s, (i, g)| s + g / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_the_tables() {
        // Student's t, two-sided 95%: df 1, 2, 4, 10, 30, 1000.
        for (df, expected) in [(1.0, 12.706), (2.0, 4.303), (4.0, 2.776), (10.0, 2.228), (30.0, 2.042), (1000.0, 1.962)]
        {
            let q = t_quantile(0.975, df);
            assert!((q - expected).abs() < 1e-3, "df {df}: {q} vs {expected}");
        }
        assert!((t_cdf(0.0, 5.0) - 0.5).abs() < 1e-12);
        assert!((t_quantile(0.025, 10.0) + 2.228).abs() < 1e-3);
    }

    #[test]
    fn pairing_removes_the_shared_seed_variance() {
        // Seeds differ a lot; b is a's seed plus 1 with a little noise.
        let a = [10.0, 20.0, 30.0, 40.0];
        let b = [11.1, 20.9, 31.0, 41.0];
        let paired = paired(&a, &b).unwrap();
        assert!(paired.low > 0.0, "paired: the difference is clear: {paired:?}");
        let welch = welch(&a, &b).unwrap();
        assert!(welch.low < 0.0 && welch.high > 0.0, "unpaired: it drowns in the seeds' spread: {welch:?}");
        assert!((paired.mean - welch.mean).abs() < 1e-12, "the same estimate");
        assert_eq!((paired.n, paired.df), (4, 3.0));
        assert_eq!(super::paired(&a[..1], &b[..1]), None, "one pair has no spread");
    }

    #[test]
    fn welch_matches_a_worked_example_and_seeds_to_settle_grows_with_the_spread() {
        // Two samples of unequal variance: the difference of their means is 1.5.
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [2.0, 4.0, 6.0, 4.0];
        let w = welch(&a, &b).unwrap();
        assert!((w.mean - 1.5).abs() < 1e-12);
        let (sa, sb) = (mean_sd(&a).1, mean_sd(&b).1);
        let se = (sa * sa / 4.0 + sb * sb / 4.0).sqrt();
        assert!((w.high - w.mean - t_quantile(0.975, w.df) * se).abs() < 1e-9);
        assert!(w.df > 3.0 && w.df < 6.0, "{w:?}");
        let few = seeds_to_settle(1.0, 0.5).unwrap();
        let many = seeds_to_settle(1.0, 2.0).unwrap();
        assert!(few < many, "{few} vs {many}");
        assert_eq!(seeds_to_settle(0.0, 1.0), None);
    }
}
