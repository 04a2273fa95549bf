//! A study's claims as its outputs show them: the forest plot and its caption, a claim's line in
//! the study table, its rows in `claims.csv`; each saying which interval it is.

use super::claims::{CheckOutcome, Comparison, Side};
use super::judging::Judging;
use super::spec::Experiment;
use crate::report::forest::{ForestChart, ForestRow, Region};
use crate::report::table::{ClaimLine, ClaimRow};

/// The forest plot's caption, naming the claims' intervals.
pub fn forest_caption(judging: &Judging) -> String {
    let interval = match judging {
        Judging::Fixed => "95% confidence interval",
        Judging::Sequential { .. } => {
            "sequential confidence interval (seeds on demand: at most 5% chance per claim of a false verdict at any \
             look; each claim at the look that settled it)"
        }
    };
    format!("Each claim's statistics: the difference of the two networks' means (dot) with its {interval} (bar), {FOREST_CAPTION_REST}")
}

const FOREST_CAPTION_REST: &str =
    "oriented so the claim predicts a positive difference; the shaded region is where the \
    claim holds (above zero, or inside the margin of a `similar` claim). The dot's colour is the statistic's verdict: \
    green held, red did not hold, amber inconclusive. A hollow dot has no interval (one seed).";

/// The forest plot of the claims' comparisons; `None` where no claim was measured.
pub fn forest_chart(experiment: &Experiment, checks: &[CheckOutcome], judging: &Judging) -> Option<ForestChart> {
    let rows: Vec<ForestRow> = checks
        .iter()
        .flat_map(|check| {
            // A statistic no run has a value for has no place on the axis.
            check.comparisons.iter().filter(|c| c.effect.is_finite()).map(move |c| ForestRow {
                label: format!("{}. {}", check.number, c.label),
                detail: match check.settled_at {
                    Some(n) => format!("{} ({}), settled at {n} seeds", c.statistic, c.unit),
                    None => format!("{} ({})", c.statistic, c.unit),
                },
                effect: c.effect,
                interval: c.interval.map(|i| (i.low, i.high)),
                region: match c.side {
                    Side::Above => Region::Above,
                    Side::Within(m) => Region::Within(m),
                },
                verdict: c.verdict,
            })
        })
        .collect();
    (!rows.is_empty()).then(|| ForestChart {
        title: match judging {
            Judging::Fixed => format!("{}: each claim's effect with its 95% interval", experiment.name),
            Judging::Sequential { .. } => {
                format!("{}: each claim's effect with its sequential interval (5% per claim)", experiment.name)
            }
        },
        x_label: "difference of the means (error: points; responses: std)".into(),
        rows,
    })
}

/// A claim as a row of the study table's CSV: its number and words, verdict, evidence and caveat.
pub fn claim_line(check: &CheckOutcome) -> ClaimLine {
    let caveat = check.caveat.as_ref().map(|c| format!("; caveat: {c}")).unwrap_or_default();
    ClaimLine {
        claim: format!("{}. {}", check.number, check.claim),
        verdict: check.verdict,
        evidence: format!("{}{caveat}", check.evidence()),
    }
}

/// A claim's comparisons as rows of `claims.csv`.
pub fn claim_rows(check: &CheckOutcome) -> Vec<ClaimRow> {
    let row = |c: Option<&Comparison>| ClaimRow {
        claim: check.claim.clone(),
        source: check.source.clone(),
        verdict: check.verdict,
        statistic: c.map(|c| c.statistic.clone()).unwrap_or_default(),
        statistic_verdict: c.map(|c| c.verdict),
        compared: c.map(|c| c.label.clone()).unwrap_or_default(),
        unit: c.map(|c| c.unit.to_string()).unwrap_or_default(),
        difference: c.map(|c| c.effect),
        low: c.and_then(|c| c.interval.map(|i| i.low)),
        high: c.and_then(|c| c.interval.map(|i| i.high)),
        interval: c.filter(|c| c.interval.is_some()).map(|c| c.interval_kind()).unwrap_or_default(),
        n: c.map(|c| c.seeds),
        settled_at: check.settled_at,
        method: c.map(|c| c.method.text().to_string()).unwrap_or_default(),
        margin: c.and_then(|c| match c.side {
            Side::Within(m) => Some(m),
            Side::Above => None,
        }),
        caveat: check.caveat.clone().unwrap_or_default(),
    };
    if check.comparisons.is_empty() {
        return vec![row(None)];
    }
    check.comparisons.iter().map(|c| row(Some(c))).collect()
}
