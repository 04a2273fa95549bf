//! Where, with what and when a run was made: the fields of `summary.toml` beside its results
//! (seed, precision, kernels, threads, reslab's version and commit, libtorch's version, the device, the
//! CPU and GPU, when it started and ended). Summaries written before reslab recorded them have none.

use super::attempts;
use super::config::{DeviceChoice, RunConfig};
use crate::model::{Kernels, Precision};
use crate::util::time::{now_unix_s, rfc3339_utc};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How and where a run was made, recorded in its summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The seed (as `config.toml` has it).
    pub seed: u64,
    /// The forward pass's arithmetic (as `config.toml` has it).
    pub precision: Precision,
    /// The training step's kernels (as `config.toml` has them); absent from summaries written
    /// before reslab had a choice of them, whose runs were exact.
    #[serde(default)]
    pub kernels: Kernels,
    /// libtorch's intra-op threads of the session that finished the run (per process).
    pub threads: usize,
    /// reslab's version (`0.1.0`).
    pub reslab_version: String,
    /// The commit reslab was built from, `-dirty` with uncommitted changes; `unknown` when built
    /// outside a git checkout.
    pub commit: String,
    /// The version of the libtorch reslab was built against.
    pub libtorch_version: String,
    /// The device the session that finished the run computed on (`cpu`, `cuda:0`); absent from
    /// summaries written before reslab recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceChoice>,
    /// The CPU's model (Linux's `/proc/cpuinfo`), `unknown` elsewhere.
    pub cpu: String,
    /// The GPU's name (`nvidia-smi`) for a run trained on one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
    /// When the training that made these weights began, RFC 3339 UTC: the last start from
    /// iteration 0 in `attempts.csv`, so a resumed run's start is its first session's.
    pub started: String,
    /// When the run ended (its summary was written), RFC 3339 UTC.
    pub ended: String,
}

impl Provenance {
    /// The provenance of the run `config` in `dir` ending now, after `wall_s` seconds of training,
    /// on `gpu` (`None`: the CPU) with `threads` threads. Where `attempts.csv` cannot be read, the
    /// start is taken as `wall_s` before now.
    pub fn ending_now(config: &RunConfig, dir: &Path, threads: usize, gpu: Option<String>, wall_s: f64) -> Provenance {
        let ended = now_unix_s();
        let started = attempts::read(dir)
            .ok()
            .and_then(|all| all.iter().rev().find(|a| a.start_iteration == 0).map(|a| a.started_unix_s))
            .unwrap_or_else(|| ended.saturating_sub(wall_s.max(0.0) as u64));
        let cpu = crate::util::cache::cpu_info_field("model name");
        Provenance {
            seed: config.seed,
            precision: config.precision,
            kernels: config.kernels,
            threads,
            reslab_version: env!("CARGO_PKG_VERSION").into(),
            commit: COMMIT.into(),
            libtorch_version: LIBTORCH_VERSION.into(),
            device: Some(config.device),
            cpu: if cpu.is_empty() { "unknown".into() } else { cpu },
            gpu,
            started: rfc3339_utc(started),
            ended: rfc3339_utc(ended),
        }
    }
}

/// The commit reslab was built from (by build.rs).
pub const COMMIT: &str = env!("RESLAB_COMMIT");

/// The version of the libtorch reslab was built against (from its headers, by build.rs).
pub const LIBTORCH_VERSION: &str = env!("RESLAB_LIBTORCH_VERSION");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_started_when_its_last_attempt_from_iteration_zero_did() {
        let dir = tempfile::tempdir().unwrap();
        let config = RunConfig { seed: 7, precision: Precision::Bf16, ..RunConfig::example() };
        attempts::record(dir.path(), 1, 2, DeviceChoice::Cpu, 0).unwrap();
        let provenance = Provenance::ending_now(&config, dir.path(), 2, None, 5.0);
        assert_eq!((provenance.seed, provenance.precision, provenance.threads), (7, Precision::Bf16, 2));
        let started = attempts::read(dir.path()).unwrap()[0].started_unix_s;
        assert_eq!(provenance.started, rfc3339_utc(started));
        assert!(provenance.started <= provenance.ended, "{provenance:?}");
        assert_eq!(provenance.ended.len(), "2026-12-07T01:02:03Z".len());
        assert_eq!((provenance.commit.as_str(), provenance.libtorch_version.as_str()), (COMMIT, LIBTORCH_VERSION));
        assert!(!provenance.cpu.is_empty() && provenance.gpu.is_none());
    }
}
