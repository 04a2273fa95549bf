//! Whether a paper's claim held on the runs: the one verdict the claim checks reach and the tables,
//! the forest plot and the page show.

/// Whether a claim held on the runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The runs agree with the paper.
    Held,
    /// The runs contradict the paper.
    NotHeld,
    /// The runs cannot tell (an interval across the line, or one seed).
    Inconclusive,
    /// A run the claim needs is missing (left out by the preset, failed or not finished).
    NotMeasured,
}

impl Verdict {
    /// In words (`held`, `did not hold`, `inconclusive`, `not measured`).
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Held => "held",
            Verdict::NotHeld => "did not hold",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotMeasured => "not measured",
        }
    }
}
