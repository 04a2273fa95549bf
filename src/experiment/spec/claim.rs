//! The claim grammar: an `[[expect]]` table, what it predicts of the runs and when in training.
//! Separate from the file format around it because `claims.rs` judges these on the results and
//! serde reads and writes them through their own flat table (`ExpectationFields`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A claim of the paper about the runs, checked on the results: what it predicts, and in words
/// where the paper says it (shown in the report beside the evidence).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ExpectationFields", into = "ExpectationFields")]
pub struct Expectation {
    /// What the claim predicts of the runs.
    pub prediction: Prediction,
    /// The paper's claim in words; default: the prediction spelled out.
    pub claim: Option<String>,
    /// Where the paper makes it (`Fig. 6, left`).
    pub source: Option<String>,
    /// Which part of training the claim is about (`at = "end"`, the default, or `"start"`).
    pub at: ClaimTime,
    /// In a study with a grid: the grid points it is judged at (`point = { lr = 0.1 }`); default
    /// every point, with one verdict each.
    pub point: BTreeMap<String, toml::Value>,
}

/// Which part of training a claim is about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClaimTime {
    /// The end of the paper's schedule: the trained nets. Judged on the runs' last evaluation
    /// and their whole curve; a run under a quarter of the paper's schedule gets a caveat.
    #[default]
    End,
    /// The first epochs: judged on the evaluations in the first sixteenth of the paper's
    /// schedule (4,000 of its 64,000 iterations on CIFAR-10, about 10 epochs).
    Start,
}

impl ClaimTime {
    /// The name, as in experiment files.
    pub fn name(self) -> &'static str {
        match self {
            ClaimTime::End => "end",
            ClaimTime::Start => "start",
        }
    }
}

/// What an `[[expect]]` claim predicts, checked on the runs' summaries (or responses).
#[derive(Debug, Clone, PartialEq)]
pub enum Prediction {
    /// `worse` ends with a higher training error than `better`, at the end and on average over
    /// the run (the degradation problem, Figure 1; plain vs residual, Table 3).
    HigherTrainError {
        /// The run expected to train worse (`plain-56`).
        worse: String,
        /// The run expected to train better (`plain-20`, `resnet-56`).
        better: String,
    },
    /// `worse` ends with a higher test error than `better` (Table 6: deeper is better up to 110
    /// layers; 1202 layers overfit).
    HigherTestError {
        /// The run expected to test worse.
        worse: String,
        /// The run expected to test better.
        better: String,
    },
    /// These runs' final training errors lie within `within` points of each other (A/B/C).
    SimilarTrainError {
        /// The runs compared.
        runs: Vec<String>,
        /// The largest spread allowed, in percentage points.
        within: f64,
    },
    /// `smaller`'s 3x3 layers respond with a smaller std on average than `larger`'s (Figure 7;
    /// needs `responses` in `[analysis]`).
    SmallerResponses {
        /// The run expected to respond with the smaller std.
        smaller: String,
        /// The run expected to respond with the larger std.
        larger: String,
    },
    /// `flatter`'s loss landscape rises less around its final weights than `sharper`'s (its
    /// sharpness is smaller; Li et al. 2018, Fig. 5; needs `[analysis.landscape]`).
    FlatterLandscape {
        /// The run expected to have the flatter landscape (`resnet-56`).
        flatter: String,
        /// The run expected to have the sharper one (`plain-56`).
        sharper: String,
    },
}

/// An `[[expect]]` table as written: exactly one of `higher_train_error = R, than = S`,
/// `higher_test_error = R, than = S` or `similar_train_error = [...], within = W`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectationFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    higher_train_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    higher_test_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    smaller_responses: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    flatter_landscape: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    than: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    similar_train_error: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    within: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    claim: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<ClaimTime>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    point: BTreeMap<String, toml::Value>,
}

impl TryFrom<ExpectationFields> for Expectation {
    type Error = String;

    fn try_from(f: ExpectationFields) -> Result<Self, String> {
        let named = (f.higher_train_error, f.higher_test_error, f.smaller_responses, f.flatter_landscape);
        let prediction = match (named, f.than, f.similar_train_error, f.within) {
            ((Some(worse), None, None, None), Some(better), None, None) => {
                Prediction::HigherTrainError { worse, better }
            }
            ((None, Some(worse), None, None), Some(better), None, None) => Prediction::HigherTestError { worse, better },
            ((None, None, Some(smaller), None), Some(larger), None, None) => {
                Prediction::SmallerResponses { smaller, larger }
            }
            ((None, None, None, Some(flatter)), Some(sharper), None, None) => {
                Prediction::FlatterLandscape { flatter, sharper }
            }
            ((None, None, None, None), None, Some(runs), Some(within)) if runs.len() >= 2 && within >= 0.0 => {
                Prediction::SimilarTrainError { runs, within }
            }
            _ => {
                return Err("an [[expect]] must be one of: higher_train_error = \"RUN\" with than = \"RUN\"; \
                            higher_test_error = \"RUN\" with than = \"RUN\"; smaller_responses = \"RUN\" with \
                            than = \"RUN\"; flatter_landscape = \"RUN\" with than = \"RUN\"; similar_train_error = [two or more runs] with within = POINTS \
                            (plus claim, source and at = \"end\" or \"start\", optional)"
                    .into())
            }
        };
        Ok(Expectation { prediction, claim: f.claim, source: f.source, at: f.at.unwrap_or_default(), point: f.point })
    }
}

impl From<Expectation> for ExpectationFields {
    fn from(e: Expectation) -> Self {
        let at = (e.at != ClaimTime::End).then_some(e.at);
        let fields = ExpectationFields { claim: e.claim, source: e.source, at, point: e.point, ..Default::default() };
        match e.prediction {
            Prediction::HigherTrainError { worse, better } => {
                ExpectationFields { higher_train_error: Some(worse), than: Some(better), ..fields }
            }
            Prediction::HigherTestError { worse, better } => {
                ExpectationFields { higher_test_error: Some(worse), than: Some(better), ..fields }
            }
            Prediction::SimilarTrainError { runs, within } => {
                ExpectationFields { similar_train_error: Some(runs), within: Some(within), ..fields }
            }
            Prediction::SmallerResponses { smaller, larger } => {
                ExpectationFields { smaller_responses: Some(smaller), than: Some(larger), ..fields }
            }
            Prediction::FlatterLandscape { flatter, sharper } => {
                ExpectationFields { flatter_landscape: Some(flatter), than: Some(sharper), ..fields }
            }
        }
    }
}

impl Expectation {
    /// The names of the runs the prediction compares.
    pub fn runs(&self) -> Vec<&String> {
        match &self.prediction {
            Prediction::HigherTrainError { worse, better } | Prediction::HigherTestError { worse, better } => {
                vec![worse, better]
            }
            Prediction::SmallerResponses { smaller, larger } => vec![smaller, larger],
            Prediction::FlatterLandscape { flatter, sharper } => vec![flatter, sharper],
            Prediction::SimilarTrainError { runs, .. } => runs.iter().collect(),
        }
    }

    /// The claim in words: the file's, or the prediction spelled out.
    pub fn claim_text(&self) -> String {
        if let Some(claim) = &self.claim {
            return claim.clone();
        }
        match &self.prediction {
            Prediction::HigherTrainError { worse, better } => {
                format!("{worse} ends with a higher training error than {better}")
            }
            Prediction::HigherTestError { worse, better } => {
                format!("{worse} ends with a higher test error than {better}")
            }
            Prediction::SimilarTrainError { runs, within } => {
                format!("{} end within {within} points of training error of each other", runs.join(", "))
            }
            Prediction::SmallerResponses { smaller, larger } => {
                format!("{smaller}'s 3x3 layers respond with a smaller std than {larger}'s")
            }
            Prediction::FlatterLandscape { flatter, sharper } => {
                format!("{flatter}'s loss landscape is flatter around its final weights than {sharper}'s")
            }
        }
    }
}
