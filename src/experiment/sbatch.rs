//! The values reslab puts into `#SBATCH` options, each parsed where it is read (the command line
//! or an experiment's `[slurm]` table): a value sbatch would refuse is one clear line at once, not
//! a rejected job after the runs were planned and the scripts written.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A partition, account or QoS as Slurm names it: letters, digits, `-`, `_` and `.`; commas
/// separate the partitions of a list (`gpu,gpu-long`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SlurmName(String);

impl FromStr for SlurmName {
    type Err = String;

    fn from_str(text: &str) -> Result<SlurmName, String> {
        let expected = "expected a Slurm name: letters, digits, '-', '_' and '.' (e.g. proj42)";
        if text.is_empty() {
            return Err(format!("empty; {expected}"));
        }
        match text.chars().find(|c| !(c.is_ascii_alphanumeric() || "-_.,".contains(*c))) {
            Some(bad) => Err(format!("has {:?}; {expected}", bad)),
            None => Ok(SlurmName(text.to_string())),
        }
    }
}

impl TryFrom<String> for SlurmName {
    type Error = String;
    fn try_from(text: String) -> Result<SlurmName, String> {
        text.parse()
    }
}

impl From<SlurmName> for String {
    fn from(name: SlurmName) -> String {
        name.0
    }
}

impl fmt::Display for SlurmName {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A job's time limit, in every form sbatch takes (`MINUTES`, `MINUTES:SECONDS`,
/// `HOURS:MINUTES:SECONDS`, `DAYS-HOURS[:MINUTES[:SECONDS]]`, `UNLIMITED`), written back as
/// `[DAYS-]HH:MM:SS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum TimeLimit {
    /// No limit: `UNLIMITED`, `INFINITE` or 0, as sbatch reads them.
    Unlimited,
    /// At most this long (whole seconds; Slurm rounds up to the minute).
    Limited(Duration),
}

impl FromStr for TimeLimit {
    type Err = String;

    fn from_str(text: &str) -> Result<TimeLimit, String> {
        let expected = || {
            "expected a time limit as sbatch takes it: MINUTES, MINUTES:SECONDS, HOURS:MINUTES:SECONDS or \
             DAYS-HOURS[:MINUTES[:SECONDS]] (e.g. 04:00:00, 2-00:00:00), or UNLIMITED"
                .to_string()
        };
        if ["unlimited", "infinite"].contains(&text.to_ascii_lowercase().as_str()) {
            return Ok(TimeLimit::Unlimited);
        }
        // At most 9 digits a field: no sum below can overflow.
        let number = |field: &str| -> Result<u64, String> {
            match field.len() {
                1..=9 if field.chars().all(|c| c.is_ascii_digit()) => Ok(field.parse().expect("digits")),
                _ => Err(expected()),
            }
        };
        let (days, clock) = match text.split_once('-') {
            Some((days, clock)) => (Some(number(days)?), clock),
            None => (None, text),
        };
        let fields = clock.split(':').map(number).collect::<Result<Vec<u64>, String>>()?;
        let seconds = match (days, fields.as_slice()) {
            (None, [minutes]) => minutes * 60,
            (None, [minutes, seconds]) => minutes * 60 + seconds,
            (None, [hours, minutes, seconds]) => (hours * 60 + minutes) * 60 + seconds,
            (Some(days), [hours]) => (days * 24 + hours) * 3600,
            (Some(days), [hours, minutes]) => ((days * 24 + hours) * 60 + minutes) * 60,
            (Some(days), [hours, minutes, seconds]) => ((days * 24 + hours) * 60 + minutes) * 60 + seconds,
            _ => return Err(expected()),
        };
        Ok(match seconds {
            0 => TimeLimit::Unlimited,
            seconds => TimeLimit::Limited(Duration::from_secs(seconds)),
        })
    }
}

impl TryFrom<String> for TimeLimit {
    type Error = String;
    fn try_from(text: String) -> Result<TimeLimit, String> {
        text.parse()
    }
}

impl From<TimeLimit> for String {
    fn from(limit: TimeLimit) -> String {
        limit.to_string()
    }
}

impl fmt::Display for TimeLimit {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let TimeLimit::Limited(limit) = self else { return f.write_str("UNLIMITED") };
        let seconds = limit.as_secs();
        let (days, hours, minutes, seconds) = (seconds / 86400, seconds / 3600 % 24, seconds / 60 % 60, seconds % 60);
        if days > 0 {
            write!(f, "{days}-")?;
        }
        write!(f, "{hours:02}:{minutes:02}:{seconds:02}")
    }
}

/// A unit of [`MemorySize`], as sbatch's suffixes name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryUnit {
    /// `K`.
    Kilobytes,
    /// `M`, sbatch's unit where none is given.
    Megabytes,
    /// `G`.
    Gigabytes,
    /// `T`.
    Terabytes,
}

impl MemoryUnit {
    const ALL: [MemoryUnit; 4] =
        [MemoryUnit::Kilobytes, MemoryUnit::Megabytes, MemoryUnit::Gigabytes, MemoryUnit::Terabytes];

    fn suffix(self) -> char {
        match self {
            MemoryUnit::Kilobytes => 'K',
            MemoryUnit::Megabytes => 'M',
            MemoryUnit::Gigabytes => 'G',
            MemoryUnit::Terabytes => 'T',
        }
    }
}

/// Memory as sbatch's `--mem` takes it: a whole number with a unit K, M, G or T (megabytes
/// without one); 0 asks for all of a node's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MemorySize {
    /// How many `unit`s.
    pub amount: u64,
    /// The unit of `amount`.
    pub unit: MemoryUnit,
}

impl FromStr for MemorySize {
    type Err = String;

    fn from_str(text: &str) -> Result<MemorySize, String> {
        let expected = "expected memory as sbatch takes it: a whole number with K, M, G or T (e.g. 16G; megabytes \
                        without a unit)";
        let (digits, unit) = match MemoryUnit::ALL.iter().find(|u| text.to_ascii_uppercase().ends_with(u.suffix())) {
            Some(&unit) => (&text[..text.len() - 1], unit),
            None => (text, MemoryUnit::Megabytes),
        };
        if digits.is_empty() || digits.len() > 12 || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(expected.to_string());
        }
        Ok(MemorySize { amount: digits.parse().expect("digits"), unit })
    }
}

impl TryFrom<String> for MemorySize {
    type Error = String;
    fn try_from(text: String) -> Result<MemorySize, String> {
        text.parse()
    }
}

impl From<MemorySize> for String {
    fn from(size: MemorySize) -> String {
        size.to_string()
    }
}

impl fmt::Display for MemorySize {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}{}", self.amount, self.unit.suffix())
    }
}

/// A further option for sbatch, as it takes it (`--mail-type=FAIL`, `--constraint=a100`): written
/// as an `#SBATCH` line of its own, so one line starting with `-`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SbatchOption(String);

impl FromStr for SbatchOption {
    type Err = String;

    fn from_str(text: &str) -> Result<SbatchOption, String> {
        if !text.starts_with('-') || text.chars().any(char::is_control) {
            return Err("expected an option as sbatch takes it, on one line (e.g. --mail-type=FAIL)".into());
        }
        Ok(SbatchOption(text.to_string()))
    }
}

impl TryFrom<String> for SbatchOption {
    type Error = String;
    fn try_from(text: String) -> Result<SbatchOption, String> {
        text.parse()
    }
}

impl From<SbatchOption> for String {
    fn from(option: SbatchOption) -> String {
        option.0
    }
}

impl fmt::Display for SbatchOption {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_time_form_of_sbatch_is_read_and_written_back_as_hours_minutes_seconds() {
        for (text, written) in [
            ("90", "01:30:00"),
            ("90:30", "01:30:30"),
            ("04:00:00", "04:00:00"),
            ("2-12", "2-12:00:00"),
            ("2-00:30", "2-00:30:00"),
            ("1-02:03:04", "1-02:03:04"),
            ("UNLIMITED", "UNLIMITED"),
            ("infinite", "UNLIMITED"),
            ("0", "UNLIMITED"),
        ] {
            let limit: TimeLimit = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(limit.to_string(), written, "{text}");
            assert_eq!(limit.to_string().parse::<TimeLimit>(), Ok(limit), "{text} reads back");
        }
        for bad in ["", "4h", "1:2:3:4", "-5", "2-", "1-2:3:4:5", "04:00:", "1.5", " 60", "9999999999"] {
            let error = bad.parse::<TimeLimit>().expect_err(bad);
            assert!(error.contains("as sbatch takes it") && !error.contains('\n'), "{bad}: {error}");
        }
    }

    #[test]
    fn memory_takes_sbatch_units_and_defaults_to_megabytes() {
        for (text, written) in
            [("16G", "16G"), ("16g", "16G"), ("500", "500M"), ("2T", "2T"), ("64K", "64K"), ("0", "0M")]
        {
            let size: MemorySize = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(size.to_string(), written, "{text}");
        }
        for bad in ["", "G", "16GB", "1.5G", "-1G", "sixteen"] {
            assert!(bad.parse::<MemorySize>().expect_err(bad).contains("e.g. 16G"), "{bad}");
        }
    }

    #[test]
    fn a_slurm_name_is_one_word_and_an_sbatch_option_one_line() {
        assert_eq!("proj42".parse::<SlurmName>().unwrap().to_string(), "proj42");
        assert!("gpu,gpu-long".parse::<SlurmName>().is_ok(), "a list of partitions");
        assert!("".parse::<SlurmName>().expect_err("empty").starts_with("empty; expected a Slurm name"));
        for bad in ["two words", "proj42\n#SBATCH --x", "a'b", "--account=x"] {
            assert!(bad.parse::<SlurmName>().is_err(), "{bad}");
        }
        assert!("--mail-type=FAIL".parse::<SbatchOption>().is_ok());
        for bad in ["", "mail-type=FAIL", "--a\n--b"] {
            assert!(bad.parse::<SbatchOption>().is_err(), "{bad:?}");
        }
    }
}
