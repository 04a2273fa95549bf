//! Each `[[expect]]` claim judged on the runs over seeds, with its uncertainty. A claim rests on
//! one or more statistics (the final training error and its mean over the run, the final test
//! error, the layer responses); for each, the difference of the two networks' means gets a 95%
//! confidence interval (paired by seed where both have the same seeds, else Welch's; see
//! [`super::stats`]). A claim held where every interval lies on the claimed side, did not hold
//! where one lies on the other side, and is inconclusive otherwise (an interval across the line,
//! or one seed and so no interval). The method, with its sources, is in docs/experiments.md.

use super::results::{GroupResult, LandscapeNumbers, RunResult};
use super::spec::{ClaimTime, Expectation, Prediction};
use super::stats::{self, Interval, Intervals, Level};
use crate::report::verdict::Verdict;
use crate::run::metrics::MetricsRow;
use crate::util::stats::{mean, mean_sd};

/// Below this share of the paper's schedule, a claim about the end of training gets a caveat.
pub const END_CAVEAT_SHARE: f64 = 0.25;
/// `at = "start"` claims look at this share of the paper's schedule (4,000 of 64,000 iterations).
pub const START_SHARE: f64 = 1.0 / 16.0;

/// Where a statistic's difference must lie for the claim to hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Side {
    /// Above zero (the effect is oriented so the claim predicts a positive one).
    Above,
    /// Inside (-margin, +margin): the two nets are alike to within the margin.
    Within(f64),
}

/// How an interval was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Both networks have the same seeds: the mean of the per-seed differences.
    Paired,
    /// Different seeds: Welch's interval of the difference of the means.
    Welch,
    /// A network has one seed: no spread, so no interval.
    OneSeed,
    /// A run has no value for the statistic (no evaluation in the claim's window).
    NoValue,
}

impl Method {
    /// In words, for the evidence.
    pub fn text(self) -> &'static str {
        match self {
            Method::Paired => "paired by seed",
            Method::Welch => "Welch",
            Method::OneSeed => "one seed: no interval",
            Method::NoValue => "a run has no evaluation to read it from",
        }
    }
}

/// One statistic of a claim: the difference of two networks' means with its interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// What is compared (`final training error`).
    pub statistic: String,
    /// The difference, in words (`plain-56 - plain-20`).
    pub label: String,
    /// The unit of the difference (`points`, `std`).
    pub unit: &'static str,
    /// The difference of the means (the first network's minus the second's).
    pub effect: f64,
    /// Its 95% interval; `None` with one seed.
    pub interval: Option<Interval>,
    /// How the interval was computed.
    pub method: Method,
    /// Where it must lie for the claim to hold.
    pub side: Side,
    /// Seeds per network in the comparison (the smaller count, where they differ).
    pub seeds: usize,
    /// The spread of one seed's difference (paired: of the per-seed differences; Welch: of a
    /// difference of two independent runs); `None` with one seed.
    pub sd: Option<f64>,
    /// This statistic's verdict.
    pub verdict: Verdict,
    /// The per-seed values of the first network and of the second, in seed order.
    pub values: (Vec<f64>, Vec<f64>),
    /// Whether both networks have the same seeds (paired).
    pub same_seeds: bool,
    /// The interval's level.
    pub level: Level,
}

impl Comparison {
    /// The difference of `first` and `second` in `value`, per run: paired where both have the
    /// same seeds, else Welch's.
    pub fn of(
        statistic: &str,
        (first, second): (&GroupResult, &GroupResult),
        unit: &'static str,
        side: Side,
        value: impl Fn(&RunResult) -> f64,
    ) -> Comparison {
        let (a_runs, b_runs) = (by_seed(first), by_seed(second));
        let a: Vec<f64> = a_runs.iter().map(|r| value(r)).collect();
        let b: Vec<f64> = b_runs.iter().map(|r| value(r)).collect();
        let same_seeds = a_runs.iter().map(|r| r.seed).eq(b_runs.iter().map(|r| r.seed));
        let label = format!("{} - {}", first.name, second.name);
        Comparison::of_values(statistic, &label, unit, side, (a, b), same_seeds, Level::FIXED)
    }

    /// The difference of the per-seed values `a` and `b` (the first network's and the second's,
    /// in seed order), at `level`: paired where they have the same seeds, else Welch's.
    pub fn of_values(
        statistic: &str,
        label: &str,
        unit: &'static str,
        side: Side,
        (a, b): (Vec<f64>, Vec<f64>),
        same_seeds: bool,
        level: Level,
    ) -> Comparison {
        let mut comparison = Comparison {
            statistic: statistic.to_string(),
            label: label.to_string(),
            unit,
            effect: mean(&a) - mean(&b),
            interval: None,
            method: Method::NoValue,
            side,
            seeds: a.len().min(b.len()),
            sd: None,
            verdict: Verdict::NotMeasured,
            values: (a, b),
            same_seeds,
            level,
        };
        comparison.judge(level);
        comparison
    }

    /// The interval at `level` and the verdict it gives.
    fn judge(&mut self, level: Level) {
        let (a, b) = (&self.values.0, &self.values.1);
        // stats computes b - a; the claim's effect is first - second.
        let (interval, method, sd) = if !a.iter().chain(b).all(|v| v.is_finite()) {
            (None, Method::NoValue, None)
        } else if a.len() < 2 || b.len() < 2 {
            (None, Method::OneSeed, None)
        } else if self.same_seeds {
            let differences: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
            (stats::paired_at(b, a, level), Method::Paired, Some(mean_sd(&differences).1))
        } else {
            let sd = (mean_sd(a).1.powi(2) + mean_sd(b).1.powi(2)).sqrt();
            (stats::welch_at(b, a, level), Method::Welch, Some(sd))
        };
        self.verdict = match method {
            Method::NoValue => Verdict::NotMeasured,
            _ => verdict_of(interval, self.side),
        };
        (self.interval, self.method, self.sd, self.level) = (interval, method, sd, level);
    }

    /// About how many seeds per network would settle an inconclusive comparison, from the
    /// observed effect and spread (`None` where it is settled, or cannot be estimated).
    pub fn seeds_to_settle(&self) -> Option<usize> {
        if self.verdict != Verdict::Inconclusive {
            return None;
        }
        let sd = self.sd?;
        // The distance of the effect from the nearest line it must clear.
        let distance = match self.side {
            Side::Above => self.effect,
            Side::Within(m) => m - self.effect.abs(),
        };
        let needed = stats::seeds_to_settle(distance, sd)?;
        // More than there are: the ones there are could not tell.
        Some(needed.max(self.seeds + 1))
    }

    /// The interval's confidence in words: `95%`, or a sequential look's `99.69% sequential`.
    pub fn level_text(&self) -> String {
        if !self.level.sequential {
            return "95%".into();
        }
        format!("{:.2}% sequential", self.level.percent())
    }

    /// Which interval, for a table: `95% fixed`, or a sequential look's `99.69% sequential`.
    pub fn interval_kind(&self) -> String {
        if !self.level.sequential {
            return "95% fixed".into();
        }
        self.level_text()
    }

    /// The comparison in words: `final training error, plain-56 - plain-20: +4.21 points,
    /// 95% CI [+1.02, +7.40] (paired by seed, n = 3)`.
    pub fn text(&self) -> String {
        if self.method == Method::NoValue {
            return format!("{}, {}: {}", self.statistic, self.label, self.method.text());
        }
        let mut text = format!("{}, {}: {:+.2} {}", self.statistic, self.label, self.effect, self.unit);
        match self.interval {
            Some(i) => {
                let level = self.level_text();
                text += &format!(
                    ", {level} CI [{:+.2}, {:+.2}] ({}, n = {})",
                    i.low,
                    i.high,
                    self.method.text(),
                    self.seeds
                )
            }
            None => text += &format!(" ({})", self.method.text()),
        }
        if let Side::Within(m) = self.side {
            text += &format!(", allowed within ±{m}");
        }
        text
    }
}

/// A network's runs in the order of their seeds.
fn by_seed(group: &GroupResult) -> Vec<&RunResult> {
    let mut runs: Vec<&RunResult> = group.runs.iter().collect();
    runs.sort_by_key(|r| r.seed);
    runs
}

/// Whether a claim held, with the numbers that decided it.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    /// The claim's number in its experiment, from 1 (the forest plot's rows name it).
    pub number: usize,
    /// Held, did not hold, inconclusive or not measured.
    pub verdict: Verdict,
    /// The paper's claim in words.
    pub claim: String,
    /// Where the paper makes it (`Fig. 6, left`).
    pub source: String,
    /// Each statistic the claim rests on, with its interval.
    pub comparisons: Vec<Comparison>,
    /// More of what was measured (e.g. in how many layers the responses were smaller).
    pub notes: Vec<String>,
    /// Why it is inconclusive or not measured, and what would settle it; empty otherwise.
    pub reason: String,
    /// Said beside the verdict: the runs are too short for a claim about the end of training.
    pub caveat: Option<String>,
    /// Seeds on demand: the seeds per network at the look that settled it.
    pub settled_at: Option<usize>,
}

impl CheckOutcome {
    /// The numbers that decided the verdict, in words (each comparison, then the reason).
    pub fn evidence(&self) -> String {
        let mut parts: Vec<String> = self.comparisons.iter().map(Comparison::text).collect();
        parts.extend(self.notes.iter().cloned());
        if !self.reason.is_empty() {
            parts.push(self.reason.clone());
        }
        parts.join("; ")
    }

    /// The verdict as the terminal and the Markdown table show it.
    fn verdict_word(&self) -> &'static str {
        match self.verdict {
            Verdict::Held => "HELD",
            Verdict::NotHeld => "DID NOT HOLD",
            Verdict::Inconclusive => "INCONCLUSIVE",
            Verdict::NotMeasured => "NOT MEASURED",
        }
    }

    /// One line, for the Markdown table: the claim, the verdict, the caveat and the evidence.
    pub fn text(&self) -> String {
        let caveat = self.caveat.as_ref().map(|c| format!(" [{c}]")).unwrap_or_default();
        format!("{}. {}: {}{caveat} ({})", self.number, self.claim, self.verdict_word(), self.evidence())
    }

    /// For the terminal: the claim and its verdict, then each statistic, the reason and the
    /// caveat on lines of their own, indented.
    pub fn lines(&self) -> String {
        let mut text = format!("{}. {}: {}\n", self.number, self.claim, self.verdict_word());
        let details = self.comparisons.iter().map(Comparison::text).chain(self.notes.iter().cloned());
        for line in details.chain((!self.reason.is_empty()).then(|| self.reason.clone())) {
            text += &format!("     {line}\n");
        }
        if let Some(caveat) = &self.caveat {
            text += &format!("     caveat: {caveat}\n");
        }
        text
    }
}

/// Judges each of `expectations` on the groups, numbered from 1 (see [`check`]).
pub fn check_all(expectations: &[Expectation], groups: &[GroupResult], paper_iters: usize) -> Vec<CheckOutcome> {
    let judge = |(i, e): (usize, &Expectation)| CheckOutcome { number: i + 1, ..check(e, groups, paper_iters) };
    expectations.iter().enumerate().map(judge).collect()
}

/// Judges `expectation` on the groups: not measured when a run it names has no complete run
/// (left out by the preset, failed, or not finished). `paper_iters` is the length of the
/// paper's schedule for this experiment (for `at` and the caveat).
pub fn check(expectation: &Expectation, groups: &[GroupResult], paper_iters: usize) -> CheckOutcome {
    check_with(expectation, groups, paper_iters, Intervals::Fixed)
}

/// [`check`] with the claim's intervals computed as `intervals` says.
pub fn check_with(
    expectation: &Expectation,
    groups: &[GroupResult],
    paper_iters: usize,
    intervals: Intervals,
) -> CheckOutcome {
    let mut outcome = CheckOutcome {
        number: 1,
        verdict: Verdict::NotMeasured,
        claim: expectation.claim_text(),
        source: expectation.source.clone().unwrap_or_default(),
        comparisons: Vec::new(),
        notes: Vec::new(),
        reason: String::new(),
        caveat: None,
        settled_at: None,
    };
    let missing: Vec<&str> =
        expectation.runs().into_iter().filter(|n| !groups.iter().any(|g| &g.name == *n)).map(String::as_str).collect();
    if !missing.is_empty() {
        outcome.reason = format!("no complete run of {}", missing.join(", "));
        return outcome;
    }
    let find = |name: &String| groups.iter().find(|g| &g.name == name).expect("checked above");
    let trained = expectation
        .runs()
        .into_iter()
        .flat_map(|n| &find(n).runs)
        .map(|r| r.summary.iters_done)
        .min()
        .unwrap_or_default();
    let window = Window::new(expectation.at, paper_iters);
    if expectation.at == ClaimTime::Start && trained < window.until {
        outcome.notes.push(format!(
            "the runs end at {trained} iterations, inside the first {} the claim is about: read at their end",
            window.until
        ));
    }
    match comparisons(&expectation.prediction, &find, &window, &mut outcome.notes) {
        Ok(comparisons) => outcome.comparisons = comparisons,
        Err(reason) => {
            outcome.reason = reason;
            return outcome;
        }
    }
    outcome.verdict = decide(&mut outcome.comparisons, intervals);
    match outcome.verdict {
        Verdict::NotMeasured => outcome.reason = "a run has no evaluation the statistic can be read from".into(),
        Verdict::Inconclusive => outcome.reason = inconclusive_reason(&outcome.comparisons),
        Verdict::Held | Verdict::NotHeld => {}
    }
    if expectation.at == ClaimTime::End && (trained as f64) < END_CAVEAT_SHARE * paper_iters as f64 {
        outcome.caveat = Some(format!(
            "measured at {trained} iterations, {} of the paper's {paper_iters}: what these runs show so early, \
             not what the paper's trained nets show",
            schedule_share(trained, paper_iters)
        ));
    }
    outcome
}

/// `iters` as a share of the paper's `paper_iters` in words a reader takes in at once: `under
/// 0.1%`, `1.6%`, `25%`.
pub fn schedule_share(iters: usize, paper_iters: usize) -> String {
    match 100.0 * iters as f64 / paper_iters as f64 {
        s if s < 0.1 => "under 0.1%".to_string(),
        s if s < 10.0 => format!("{s:.1}%"),
        s => format!("{s:.0}%"),
    }
}

/// The statistics `prediction` rests on, each compared between its networks (`find` gives a
/// network's runs), read in `window`; more of what was measured goes to `notes`. `Err` says why
/// a statistic cannot be read at all.
fn comparisons<'a>(
    prediction: &Prediction,
    find: &dyn Fn(&String) -> &'a GroupResult,
    window: &Window,
    notes: &mut Vec<String>,
) -> Result<Vec<Comparison>, String> {
    let points = "points";
    Ok(match prediction {
        Prediction::HigherTrainError { worse, better } => {
            let pair = (find(worse), find(better));
            vec![
                Comparison::of(&window.name("final training error"), pair, points, Side::Above, |r| {
                    window.value(r, Statistic::FinalTrain)
                }),
                Comparison::of(&window.name("mean training error"), pair, points, Side::Above, |r| {
                    window.value(r, Statistic::MeanTrain)
                }),
            ]
        }
        Prediction::HigherTestError { worse, better } => {
            let pair = (find(worse), find(better));
            vec![Comparison::of(&window.name("final test error"), pair, points, Side::Above, |r| {
                window.value(r, Statistic::FinalTest)
            })]
        }
        Prediction::SimilarTrainError { runs, within } => {
            let members: Vec<&GroupResult> = runs.iter().map(find).collect();
            let mut comparisons = Vec::new();
            for (i, a) in members.iter().enumerate() {
                for b in &members[i + 1..] {
                    comparisons.push(Comparison::of(
                        &window.name("final training error"),
                        (a, b),
                        points,
                        Side::Within(*within),
                        |r| window.value(r, Statistic::FinalTrain),
                    ));
                }
            }
            comparisons
        }
        Prediction::SmallerResponses { smaller, larger } => {
            let (smaller, larger) = (find(smaller), find(larger));
            let (Some(s), Some(l)) = (smaller.responses(), larger.responses()) else {
                return Err("the layer responses were not analysed".into());
            };
            if s.len() == l.len() {
                let below = s.iter().zip(&l).filter(|(a, b)| a < b).count();
                notes.push(format!("smaller in {below} of {} layers (means over seeds)", s.len()));
            }
            let mean_std = |r: &RunResult| {
                let layers = r.responses.as_deref().unwrap_or_default();
                layers.iter().sum::<f64>() / layers.len().max(1) as f64
            };
            vec![Comparison::of(
                "mean std of the 3x3 layers' responses",
                (larger, smaller),
                "std",
                Side::Above,
                mean_std,
            )]
        }
        Prediction::FlatterLandscape { flatter, sharper } => {
            let (flatter, sharper) = (find(flatter), find(sharper));
            let numbers = |g: &GroupResult| g.runs.iter().map(|r| r.landscape).collect::<Option<Vec<_>>>();
            let (Some(f), Some(s)) = (numbers(flatter), numbers(sharper)) else {
                return Err("the loss landscapes were not analysed".into());
            };
            let mean_share = |v: &[LandscapeNumbers]| v.iter().map(|n| n.convex_share).sum::<f64>() / v.len() as f64;
            notes.push(format!(
                "locally convex near the centre: {:.0}% of points for {}, {:.0}% for {} (means over seeds)",
                100.0 * mean_share(&f),
                flatter.name,
                100.0 * mean_share(&s),
                sharper.name
            ));
            vec![Comparison::of(
                "landscape sharpness (mean log10 loss rise within half the span)",
                (sharper, flatter),
                "log10",
                Side::Above,
                |r| r.landscape.map_or(f64::NAN, |n| n.sharpness),
            )]
        }
    })
}

/// A claim's verdict from its statistics': held only where every one held; did not hold where
/// any did not; not measured where any has no value; else inconclusive.
/// Where `interval` lies against the line `side` draws: held on the claimed side, did not hold
/// on the other, inconclusive across it or without an interval.
pub fn verdict_of(interval: Option<Interval>, side: Side) -> Verdict {
    match (interval, side) {
        (None, _) => Verdict::Inconclusive,
        (Some(i), Side::Above) if i.low > 0.0 => Verdict::Held,
        (Some(i), Side::Above) if i.high < 0.0 => Verdict::NotHeld,
        (Some(i), Side::Within(m)) if -m < i.low && i.high < m => Verdict::Held,
        (Some(i), Side::Within(m)) if i.low > m || i.high < -m => Verdict::NotHeld,
        _ => Verdict::Inconclusive,
    }
}

/// A claim's verdict from its comparisons, each judged at the level `intervals` gives a claim
/// resting on that many: the decision a study makes at every look.
pub fn decide(comparisons: &mut [Comparison], intervals: Intervals) -> Verdict {
    let level = intervals.level(comparisons.len());
    for comparison in comparisons.iter_mut().filter(|c| c.level != level) {
        comparison.judge(level);
    }
    combined(comparisons)
}

/// A claim's verdict from its statistics' verdicts: any "did not hold" decides, "held" needs all.
pub fn combined(comparisons: &[Comparison]) -> Verdict {
    let verdicts: Vec<Verdict> = comparisons.iter().map(|c| c.verdict).collect();
    if verdicts.contains(&Verdict::NotMeasured) {
        Verdict::NotMeasured
    } else if verdicts.contains(&Verdict::NotHeld) {
        Verdict::NotHeld
    } else if verdicts.iter().all(|v| *v == Verdict::Held) {
        Verdict::Held
    } else {
        Verdict::Inconclusive
    }
}

/// Why the comparisons cannot tell, and about how many seeds would.
fn inconclusive_reason(comparisons: &[Comparison]) -> String {
    let seeds = comparisons.iter().map(|c| c.seeds).min().unwrap_or(0);
    if comparisons.iter().any(|c| c.method == Method::OneSeed) {
        return format!(
            "rests on {seeds} seed per network, so there is no spread to judge the difference against: \
             --seeds 3 gives each statistic a 95% interval"
        );
    }
    let open: Vec<&Comparison> = comparisons.iter().filter(|c| c.verdict == Verdict::Inconclusive).collect();
    let needed: Option<Vec<usize>> = open.iter().map(|c| c.seeds_to_settle()).collect();
    match needed.and_then(|n| n.into_iter().max()) {
        Some(n) => format!(
            "an interval crosses the line at {seeds} seeds: with this effect and spread, about {n} seeds would settle it"
        ),
        None => format!(
            "an interval crosses the line at {seeds} seeds, and an effect is too close to it to settle by seeds \
             (over 1,000 would be needed)"
        ),
    }
}

/// What a comparison of errors is about.
#[derive(Debug, Clone, Copy)]
enum Statistic {
    FinalTrain,
    MeanTrain,
    FinalTest,
}

/// The part of each run a claim looks at: all of it (`at = "end"`), or the evaluations in the
/// first sixteenth of the paper's schedule (`at = "start"`).
struct Window {
    at: ClaimTime,
    until: usize,
}

impl Window {
    fn new(at: ClaimTime, paper_iters: usize) -> Window {
        Window { at, until: ((paper_iters as f64 * START_SHARE).round() as usize).max(1) }
    }

    fn name(&self, statistic: &str) -> String {
        match self.at {
            ClaimTime::End => statistic.to_string(),
            ClaimTime::Start => format!("{statistic} in the first {} iterations", self.until),
        }
    }

    /// `statistic` of `run` in the window: for the whole run, the summary's (what the tables show).
    fn value(&self, run: &RunResult, statistic: Statistic) -> f64 {
        let s = &run.summary;
        if self.at == ClaimTime::End {
            return match statistic {
                Statistic::FinalTrain => s.final_train_err,
                Statistic::MeanTrain => s.mean_train_err,
                Statistic::FinalTest => s.final_test_err,
            };
        }
        let rows: Vec<&MetricsRow> = run.rows.iter().filter(|r| r.iter <= self.until).collect();
        let values: Vec<f64> = match statistic {
            Statistic::FinalTrain => rows.last().map(|r| r.train_err).into_iter().collect(),
            Statistic::MeanTrain => rows.iter().map(|r| r.train_err).collect(),
            Statistic::FinalTest => rows.last().map(|r| r.test_err).into_iter().collect(),
        };
        mean(&values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_of_the_schedule_reads_at_a_glance() {
        assert_eq!(schedule_share(30, 64_000), "under 0.1%");
        assert_eq!(schedule_share(1_000, 64_000), "1.6%");
        assert_eq!(schedule_share(16_000, 64_000), "25%");
        assert_eq!(schedule_share(64_000, 64_000), "100%");
    }
    use crate::model::Precision;
    use crate::run::summary::{RunStatus, RunSummary};

    /// A network's runs with these final (and mean) training errors, seeds 0, 1, ...
    fn group(name: &str, errors: &[f64]) -> GroupResult {
        group_with_seeds(name, errors, 0)
    }

    fn group_with_seeds(name: &str, errors: &[f64], first_seed: u64) -> GroupResult {
        let runs = errors
            .iter()
            .enumerate()
            .map(|(i, &err)| RunResult {
                dir: format!("{name}-seed{}", first_seed + i as u64),
                seed: first_seed + i as u64,
                summary: RunSummary {
                    status: RunStatus::Complete,
                    model: name.into(),
                    params: 1,
                    macs: 1,
                    iters_done: 64_000,
                    final_train_err: err,
                    final_test_err: err + 5.0,
                    mean_train_err: err + 10.0,
                    mean_test_err: err + 15.0,
                    mean_img_per_s: 1.0,
                    wall_s: 1.0,
                    provenance: None,
                    all_reduce_ms_per_step: None,
                    message: None,
                    digests: None,
                },
                precision: Precision::Fp32,
                rows: vec![],
                responses: None,
                landscape: None,
            })
            .collect();
        GroupResult {
            name: name.into(),
            model: name.into(),
            depth: 20,
            variant: "plain".into(),
            paper_err: None,
            paper_note: None,
            runs,
            point: vec![],
        }
    }

    fn higher(worse: &str, better: &str) -> Expectation {
        Expectation {
            prediction: Prediction::HigherTrainError { worse: worse.into(), better: better.into() },
            claim: None,
            source: None,
            at: ClaimTime::End,
            point: Default::default(),
        }
    }

    #[test]
    fn a_clear_effect_holds_a_reversed_one_does_not_and_noise_or_one_seed_cannot_tell() {
        let clear = [group("deep", &[30.0, 32.0, 31.0]), group("shallow", &[20.0, 21.5, 20.5])];
        let outcome = check(&higher("deep", "shallow"), &clear, 64_000);
        assert_eq!(outcome.verdict, Verdict::Held, "{}", outcome.text());
        assert_eq!(outcome.comparisons.len(), 2, "final and mean training error");
        let first = &outcome.comparisons[0];
        assert_eq!((first.method, first.seeds), (Method::Paired, 3));
        assert!((first.effect - 10.333_333).abs() < 1e-5, "{first:?}");
        assert!(outcome.text().contains("HELD") && outcome.text().contains("95% CI ["), "{}", outcome.text());
        assert_eq!(outcome.caveat, None, "at the paper's length");

        let reversed = check(&higher("shallow", "deep"), &clear, 64_000);
        assert_eq!(reversed.verdict, Verdict::NotHeld, "{}", reversed.text());

        let noise = [group("deep", &[30.0, 20.0, 26.0]), group("shallow", &[25.0, 24.0, 27.0])];
        let outcome = check(&higher("deep", "shallow"), &noise, 64_000);
        assert_eq!(outcome.verdict, Verdict::Inconclusive, "{}", outcome.text());
        assert!(outcome.reason.contains("crosses the line at 3 seeds"), "{}", outcome.reason);

        let one_seed = [group("deep", &[40.0]), group("shallow", &[20.0])];
        let outcome = check(&higher("deep", "shallow"), &one_seed, 64_000);
        assert_eq!(outcome.verdict, Verdict::Inconclusive, "a big effect from one seed each: {}", outcome.text());
        assert!(outcome.reason.contains("1 seed per network") && outcome.reason.contains("--seeds 3"));
        assert!(outcome.comparisons.iter().all(|c| c.interval.is_none() && c.method == Method::OneSeed));
    }

    #[test]
    fn different_seeds_are_compared_by_welch_and_a_noisy_effect_says_how_many_seeds_would_settle_it() {
        let groups = [group("deep", &[30.0, 32.0, 31.0]), group_with_seeds("shallow", &[20.0, 21.5, 20.5], 10)];
        let outcome = check(&higher("deep", "shallow"), &groups, 64_000);
        assert_eq!(outcome.comparisons[0].method, Method::Welch);
        assert_eq!(outcome.verdict, Verdict::Held, "{}", outcome.text());

        // An effect of 2 points with a per-seed spread of about 3: two seeds cannot tell, ~20 can.
        let noisy = [group("deep", &[24.0, 20.0]), group("shallow", &[20.0, 20.0])];
        let comparison = &check(&higher("deep", "shallow"), &noisy, 64_000).comparisons[0];
        assert_eq!(comparison.verdict, Verdict::Inconclusive);
        let needed = comparison.seeds_to_settle().unwrap();
        assert!((5..40).contains(&needed), "{needed} seeds for an effect of 2 and a spread of 2.8");
    }

    #[test]
    fn similar_holds_only_inside_the_margin_and_short_runs_get_the_caveat() {
        let similar = |within| Expectation {
            prediction: Prediction::SimilarTrainError { runs: vec!["a".into(), "b".into(), "c".into()], within },
            claim: None,
            source: None,
            at: ClaimTime::End,
            point: Default::default(),
        };
        let groups =
            [group("a", &[10.0, 10.2, 9.9]), group("b", &[10.1, 10.0, 10.0]), group("c", &[10.05, 10.1, 9.95])];
        let outcome = check(&similar(1.0), &groups, 64_000);
        assert_eq!(outcome.comparisons.len(), 3, "every pair");
        assert_eq!(outcome.verdict, Verdict::Held, "{}", outcome.text());
        let far = [group("a", &[10.0, 10.2, 9.9]), group("b", &[14.1, 14.0, 14.0]), group("c", &[10.0, 10.1, 9.9])];
        assert_eq!(check(&similar(1.0), &far, 64_000).verdict, Verdict::NotHeld);
        assert_eq!(check(&similar(0.05), &groups, 64_000).verdict, Verdict::Inconclusive);

        let mut short = [group("deep", &[30.0, 32.0, 31.0]), group("shallow", &[20.0, 21.5, 20.5])];
        for run in short.iter_mut().flat_map(|g| g.runs.iter_mut()) {
            run.summary.iters_done = 1_000;
        }
        let outcome = check(&higher("deep", "shallow"), &short, 64_000);
        assert_eq!(outcome.verdict, Verdict::Held);
        let caveat = outcome.caveat.as_deref().expect("a claim about the end measured at 1.6% of the schedule");
        assert!(caveat.contains("1000 iterations, 1.6% of the paper's 64000"), "{caveat}");
        assert!(outcome.text().contains("HELD [measured at 1000"), "{}", outcome.text());
        let start = Expectation { at: ClaimTime::Start, ..higher("deep", "shallow") };
        assert_eq!(check(&start, &short, 64_000).caveat, None, "a claim about the start has no caveat");
    }

    #[test]
    fn a_claim_about_the_start_reads_the_first_evaluations_only() {
        let row = |iter, train_err| MetricsRow {
            iter,
            epoch: 0.0,
            lr: 0.1,
            train_loss: 1.0,
            train_err,
            test_err: train_err,
            img_per_s: 1.0,
            wall_s: 1.0,
        };
        let mut groups = [group("deep", &[10.0, 10.0, 10.0]), group("shallow", &[20.0, 20.0, 20.0])];
        // Early on the deep net is worse (by 5, 6, 7 points); by the end it is better.
        for (g, early) in groups.iter_mut().zip([[55.0, 56.0, 57.0], [50.0, 50.0, 50.0]]) {
            for (run, e) in g.runs.iter_mut().zip(early) {
                run.rows = vec![row(2_000, e + 10.0), row(4_000, e), row(32_000, 30.0), row(64_000, 10.0)];
            }
        }
        let start = Expectation { at: ClaimTime::Start, ..higher("deep", "shallow") };
        let outcome = check(&start, &groups, 64_000);
        assert_eq!(outcome.verdict, Verdict::Held, "{}", outcome.text());
        assert!(outcome.comparisons[0].statistic.contains("in the first 4000 iterations"));
        assert!((outcome.comparisons[0].effect - 6.0).abs() < 1e-9, "at iteration 4000: {:?}", outcome.comparisons[0]);
        assert_eq!(check(&higher("deep", "shallow"), &groups, 64_000).verdict, Verdict::NotHeld, "at the end");
    }

    #[test]
    fn a_start_claim_on_runs_without_evaluations_is_not_measured_and_short_runs_are_read_at_their_end() {
        let groups = [group("deep", &[30.0, 31.0]), group("shallow", &[20.0, 21.0])];
        let start = Expectation { at: ClaimTime::Start, ..higher("deep", "shallow") };
        let outcome = check(&start, &groups, 64_000);
        assert_eq!(outcome.verdict, Verdict::NotMeasured, "no metrics rows: {}", outcome.text());
        assert!(outcome.text().contains("no evaluation"), "{}", outcome.text());
        let mut short = groups.clone();
        for run in short.iter_mut().flat_map(|g| g.runs.iter_mut()) {
            run.summary.iters_done = 40;
            let err = run.summary.final_train_err;
            run.rows = vec![MetricsRow {
                iter: 40,
                epoch: 0.1,
                lr: 0.1,
                train_loss: 2.0,
                train_err: err,
                test_err: err,
                img_per_s: 1.0,
                wall_s: 1.0,
            }];
        }
        let outcome = check(&start, &short, 64_000);
        assert_ne!(outcome.verdict, Verdict::NotMeasured);
        assert!(outcome.text().contains("the runs end at 40 iterations, inside the first 4000"), "{}", outcome.text());
    }

    #[test]
    fn a_missing_network_is_not_measured() {
        let outcome = check(&higher("deep", "shallow"), &[group("deep", &[1.0, 2.0])], 64_000);
        assert_eq!(outcome.verdict, Verdict::NotMeasured);
        assert!(outcome.text().contains("no complete run of shallow"), "{}", outcome.text());
    }
}
