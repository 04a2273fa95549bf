//! "Is this the same run?": the one comparison of two run configurations, and the digest that
//! names a run's configuration in the files made from it (weights, summaries).
//!
//! Three fields never make another run: the thread count and the device (how a run is executed:
//! `--jobs` splits the cores differently from one invocation to the next, a run may resume on
//! another GPU or on the CPU) and `log_grads` (a recording that changes
//! nothing in the training). What else may differ depends on who asks, and is said by [`Leeway`]:
//! `--precision auto` and `--kernels auto` accept the precision and kernels a run was already
//! made with, a checkpoint's own message names another world size.

use super::config::{DeviceChoice, RunConfig, Undecided};
use crate::model::weights::{RunOrigin, WeightsMetadata};
use crate::model::Kernels;
use crate::model::ModelSpec;
use sha2::{Digest, Sha256};

/// What may differ between a recorded configuration and the expected one, besides the thread
/// count and `log_grads`, which never count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Leeway {
    /// The precision (`--precision auto` keeps the one a run was made in).
    pub precision: bool,
    /// The kernels (`--kernels auto` keeps the ones a run was made with).
    pub kernels: bool,
    /// The number of processes (only to tell that this is the one difference).
    pub world_size: bool,
}

impl Leeway {
    /// Nothing else may differ.
    pub const NONE: Leeway = Leeway { precision: false, kernels: false, world_size: false };
    /// The precision may differ (an `auto` choice).
    pub const PRECISION: Leeway = Leeway { precision: true, kernels: false, world_size: false };

    /// What `auto` choices leave free: the precision, the kernels, or both.
    pub fn of_auto(auto: Undecided) -> Leeway {
        Leeway { precision: auto.precision, kernels: auto.kernels, world_size: false }
    }
}

/// The first key in which a recorded configuration differs from the expected one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The key, dotted as in `--set` and `config.toml` (`schedule.iters`).
    pub key: String,
    /// Its value in the recorded configuration (`absent` where it has none).
    pub recorded: String,
    /// Its value in the expected one.
    pub expected: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is {} there, expected {}", self.key, self.recorded, self.expected)
    }
}

impl RunConfig {
    /// The first difference between this (recorded) configuration and `expected`, beyond what
    /// `leeway` allows; `None` when they are the same run.
    pub fn difference(&self, expected: &RunConfig, leeway: Leeway) -> Option<Difference> {
        let mut recorded = self.essence();
        let expected = expected.essence();
        if leeway.precision {
            recorded.precision = expected.precision;
        }
        if leeway.kernels {
            recorded.kernels = expected.kernels;
        }
        if leeway.world_size {
            recorded.world_size = expected.world_size;
        }
        if recorded == expected {
            return None;
        }
        let (recorded, expected) = (flat(&recorded), flat(&expected));
        let keys = expected.iter().map(|(k, _)| k).chain(recorded.iter().map(|(k, _)| k));
        let value = |pairs: &[(String, String)], key: &str| {
            pairs.iter().find(|(k, _)| k == key).map_or_else(|| "absent".to_string(), |(_, v)| v.clone())
        };
        keys.map(|key| Difference {
            key: key.clone(),
            recorded: value(&recorded, key),
            expected: value(&expected, key),
        })
        .find(|d| d.recorded != d.expected)
        // Equal in TOML but not as values (a float's last digit): say so rather than nothing.
        .or_else(|| {
            Some(Difference { key: "the configuration".into(), recorded: "another".into(), expected: "this".into() })
        })
    }

    /// Whether `other` describes the same run (no [`Leeway`]).
    pub fn same_run(&self, other: &RunConfig) -> bool {
        self.difference(other, Leeway::NONE).is_none()
    }

    /// SHA-256 (hex) of what makes the run this run: the same for two configurations exactly when
    /// [`Self::same_run`] says they are the same. Weights and summaries carry it.
    pub fn identity_digest(&self) -> String {
        let mut text = self.essence().to_toml();
        if self.kernels == Kernels::Exact {
            // Runs made before the setting existed were exact: an exact run's digest is theirs.
            text = text.replacen(EXACT_KERNELS_LINE, "", 1);
        }
        format!("{:x}", Sha256::digest(text.as_bytes()))
    }

    /// The metadata of weights this run makes of `model` (its network, classifier sized to the
    /// data): its network, image size, precision and identity digest.
    pub fn weights_metadata(&self, model: &ModelSpec) -> WeightsMetadata {
        let origin = RunOrigin { precision: self.precision, config_digest: self.identity_digest() };
        WeightsMetadata::new(model, self.data.image_size(), Some(origin))
    }

    /// The configuration without what never makes another run.
    fn essence(&self) -> RunConfig {
        RunConfig { threads: 0, log_grads: 0, device: DeviceChoice::Auto, ..self.clone() }
    }
}

/// The line an exact run's `config.toml` has, and configurations made before the setting lack.
const EXACT_KERNELS_LINE: &str = "kernels = \"exact\"\n";

/// A configuration as `(dotted key, value)` pairs, in `config.toml`'s order (toml keeps it).
fn flat(config: &RunConfig) -> Vec<(String, String)> {
    let value = toml::Value::try_from(config).expect("a run config always converts");
    let mut pairs = Vec::new();
    flatten("", &value, &mut pairs);
    pairs
}

fn flatten(prefix: &str, value: &toml::Value, out: &mut Vec<(String, String)>) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                let key = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                flatten(&key, value, out);
            }
        }
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Precision;

    #[test]
    fn the_first_difference_is_named_with_both_values() {
        let expected = RunConfig::example();
        let mut recorded = expected.clone();
        recorded.schedule.iters = 240;
        recorded.seed = 9;
        let d = recorded.difference(&expected, Leeway::NONE).unwrap();
        assert_eq!(d.to_string(), "schedule.iters is 240 there, expected 64000");
        let d = RunConfig { seed: 9, ..expected.clone() }.difference(&expected, Leeway::NONE).unwrap();
        assert_eq!((d.key.as_str(), d.recorded.as_str(), d.expected.as_str()), ("seed", "9", "3"));
    }

    #[test]
    fn threads_and_recordings_never_count_and_leeway_says_what_else_may_differ() {
        let expected = RunConfig::example();
        let other_threads = RunConfig { threads: 7, log_grads: 10, ..expected.clone() };
        assert!(other_threads.same_run(&expected));
        assert_eq!(other_threads.identity_digest(), expected.identity_digest());
        let bf16 = RunConfig { precision: Precision::Bf16, ..expected.clone() };
        assert_eq!(bf16.difference(&expected, Leeway::NONE).unwrap().key, "precision");
        assert_eq!(bf16.difference(&expected, Leeway::PRECISION), None);
        assert_ne!(bf16.identity_digest(), expected.identity_digest());
        let two = RunConfig { world_size: 2, ..expected.clone() };
        assert_eq!(two.difference(&expected, Leeway::NONE).unwrap().key, "world_size");
        assert_eq!(two.difference(&expected, Leeway { world_size: true, ..Leeway::NONE }), None);
        let fused = RunConfig { kernels: Kernels::Fused, ..expected.clone() };
        assert_eq!(fused.difference(&expected, Leeway::NONE).unwrap().key, "kernels");
        assert_eq!(fused.difference(&expected, Leeway::PRECISION).unwrap().key, "kernels");
        assert_eq!(fused.difference(&expected, Leeway::of_auto(Undecided { precision: false, kernels: true })), None);
        assert_ne!(fused.identity_digest(), expected.identity_digest());
    }

    #[test]
    fn an_exact_run_keeps_the_digest_of_a_run_made_before_the_kernels_setting() {
        let config = RunConfig::example();
        let text = config.to_toml();
        assert!(text.contains(EXACT_KERNELS_LINE), "config.toml records the kernels: {text}");
        let before =
            RunConfig::from_toml(&text.replacen(EXACT_KERNELS_LINE, "", 1), std::path::Path::new("c")).unwrap();
        assert_eq!(before, config, "a configuration without the setting is exact");
        // The digest of the configuration as it was written before the setting existed.
        let old = text.replacen(EXACT_KERNELS_LINE, "", 1).replacen("threads = 2\n", "threads = 0\n", 1);
        assert_eq!(config.identity_digest(), format!("{:x}", Sha256::digest(old.as_bytes())));
    }

    #[test]
    fn a_key_only_one_side_has_reads_absent() {
        let expected = RunConfig::example();
        let mut recorded = expected.clone();
        recorded.schedule.warmup = Some(Default::default());
        let d = recorded.difference(&expected, Leeway::NONE).unwrap();
        assert!(d.key.starts_with("schedule.warmup") && d.expected == "absent", "{d}");
    }
}
