//! Small helpers shared by the stages.

pub mod cache;
pub mod console;
pub mod fs;
pub mod interrupt;
pub mod load;
pub mod stats;
pub mod supervisor;
pub mod time;

/// serde's default for flags that are on unless a file turns them off.
pub fn yes() -> bool {
    true
}

/// The one spelling of a yes-or-no value everywhere (`--set`, environment variables): true/false,
/// yes/no, on/off or 1/0, in any case.
pub fn parse_flag(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// What [`parse_flag`] takes, for error messages.
pub const FLAG_VALUES: &str = "true or false (or yes/no, on/off, 1/0; any case)";

#[cfg(test)]
mod tests {
    #[test]
    fn every_spelling_of_a_flag_in_any_case_and_nothing_else() {
        for (text, value) in [("true", true), ("False", false), ("YES", true), ("no", false), ("On", true)] {
            assert_eq!(super::parse_flag(text), Some(value), "{text}");
        }
        assert_eq!((super::parse_flag("1"), super::parse_flag("0")), (Some(true), Some(false)));
        assert_eq!(super::parse_flag("maybe"), None);
        assert_eq!(super::parse_flag("2"), None);
    }
}
