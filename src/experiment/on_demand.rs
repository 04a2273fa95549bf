//! What `--seeds auto` asks for: seeds on demand, their first round and cap, and a study's time
//! budget. The method that judges their looks is [`super::sequential`]; the rounds as they run,
//! [`super::seeds_on_demand`].

use anyhow::Result;

/// Seeds of every network in the first round: the fewest whose interval can settle a claim at
/// the sequential level (two give one degree of freedom, whose quantile no effect clears).
pub const FIRST_SEEDS: usize = 3;

/// The most seeds a network gets where `--max-seeds` does not say.
pub const DEFAULT_MAX_SEEDS: usize = 10;

/// `--seeds auto`: a study that trains its networks a round of seeds at a time until each claim
/// is settled ([`super::sequential`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnDemand {
    /// `--max-seeds`: the most seeds a network gets (default [`DEFAULT_MAX_SEEDS`]; a study
    /// records it). The intervals are widened for the looks this cap allows, so a study keeps it
    /// from its first round to its last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seeds: Option<usize>,
    /// `--budget`: no round starts that would end past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
}

impl OnDemand {
    /// `--seeds auto` with `max_seeds` (default [`DEFAULT_MAX_SEEDS`]) and `budget`: one line
    /// where the cap is below the first round's seeds.
    pub fn new(max_seeds: Option<usize>, budget: Option<Budget>) -> Result<OnDemand> {
        if let Some(max_seeds) = max_seeds.filter(|&n| n < FIRST_SEEDS) {
            anyhow::bail!(
                "--max-seeds {max_seeds}: seeds on demand start with {FIRST_SEEDS} seeds per network; expected \
                 {FIRST_SEEDS} or more"
            );
        }
        Ok(OnDemand { max_seeds, budget })
    }

    /// The most seeds a network gets.
    pub fn cap(&self) -> usize {
        self.max_seeds.unwrap_or(DEFAULT_MAX_SEEDS)
    }

    /// As a study records it: with its cap spelled out.
    pub fn recorded(&self) -> OnDemand {
        OnDemand { max_seeds: Some(self.cap()), ..self.clone() }
    }

    /// The command-line arguments that ask for it.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec!["--seeds".to_string(), "auto".into(), "--max-seeds".into(), self.cap().to_string()];
        if let Some(budget) = self.budget {
            args.extend(["--budget".to_string(), budget.to_string()]);
        }
        args
    }
}

/// A study's time budget (`--budget 2h`, `90m`, `1h30m`, `45s`, `1d`), recorded as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Budget {
    /// In seconds.
    pub seconds: u64,
}

impl std::str::FromStr for Budget {
    type Err = String;

    fn from_str(text: &str) -> Result<Budget, String> {
        let bad = || format!("budget '{text}': expected a duration such as 2h, 90m, 1h30m, 45s or 1d");
        let (mut seconds, mut number) = (0u64, String::new());
        for c in text.trim().chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let unit = match c {
                'd' => 86_400,
                'h' => 3_600,
                'm' => 60,
                's' => 1,
                _ => return Err(bad()),
            };
            let n: u64 = number.parse().map_err(|_| bad())?;
            seconds = n.checked_mul(unit).and_then(|s| seconds.checked_add(s)).ok_or_else(bad)?;
            number.clear();
        }
        if !number.is_empty() || seconds == 0 {
            return Err(bad());
        }
        Ok(Budget { seconds })
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (mut left, mut text) = (self.seconds, String::new());
        for (unit, name) in [(86_400, 'd'), (3_600, 'h'), (60, 'm'), (1, 's')] {
            if left >= unit {
                text += &format!("{}{name}", left / unit);
                left %= unit;
            }
        }
        f.write_str(&text)
    }
}

impl TryFrom<String> for Budget {
    type Error = String;

    fn try_from(text: String) -> Result<Budget, String> {
        text.parse()
    }
}

impl From<Budget> for String {
    fn from(budget: Budget) -> String {
        budget.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_read_as_written_and_refuse_the_rest() {
        for (text, seconds, shown) in [("2h", 7_200, "2h"), ("90m", 5_400, "1h30m"), ("1d2h3m4s", 93_784, "1d2h3m4s")] {
            let budget: Budget = text.parse().unwrap();
            assert_eq!((budget.seconds, budget.to_string().as_str()), (seconds, shown));
        }
        for bad in ["", "2", "h", "2x", "0m", "-1h", "99999999999999999999d"] {
            let err = bad.parse::<Budget>().unwrap_err();
            assert!(err.contains("expected a duration"), "{bad}: {err}");
        }
        assert!(OnDemand::new(Some(2), None).unwrap_err().to_string().contains("expected 3 or more"));
        assert_eq!(OnDemand::new(None, None).unwrap().cap(), DEFAULT_MAX_SEEDS);
    }
}
