//! `summary.toml`: what a run ended with, written last. A directory without one saying
//! `status = "complete"` is not a finished result.

use super::config::one_line;
use super::digests::Digests;
use super::provenance::Provenance;
use super::SUMMARY_FILE;
use crate::util::fs::write_file;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// It trained for every iteration.
    Complete,
    /// The loss became non-finite and training stopped.
    Diverged,
}

/// What a run ended with, saved as `summary.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Complete or diverged.
    pub status: RunStatus,
    /// The model's name (`resnet-20`).
    pub model: String,
    /// Trainable parameters.
    pub params: i64,
    /// Forward multiply-accumulates per image.
    pub macs: u64,
    /// Iterations trained.
    pub iters_done: usize,
    /// Training error (%) of the last metrics row.
    pub final_train_err: f64,
    /// Test error (%) of the last metrics row.
    pub final_test_err: f64,
    /// Mean over the run's rows: the "on average over the run" of the degradation check.
    pub mean_train_err: f64,
    /// Mean test error (%) over the run's rows.
    pub mean_test_err: f64,
    /// Mean training throughput over the rows, images per second.
    pub mean_img_per_s: f64,
    /// Wall-clock seconds of the run.
    pub wall_s: f64,
    /// Seed, precision, threads, versions, machine, start and end, at the top level of the file;
    /// `None` for a summary written before reslab recorded them (or with one of them missing).
    #[serde(flatten)]
    pub provenance: Option<Provenance>,
    /// Data parallel runs: the mean time per step that averaging the gradients over the
    /// processes took (milliseconds, in the last session of the run: not kept across resumptions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_reduce_ms_per_step: Option<f64>,
    /// Why the run stopped, for a diverged run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The digests of its configuration, metrics and weights when it ended; `None` for a summary
    /// written before reslab recorded them ("complete, unverified").
    #[serde(flatten)]
    pub digests: Option<Digests>,
}

impl RunSummary {
    /// Reads and parses `dir/summary.toml`.
    pub fn load(dir: &Path) -> Result<RunSummary> {
        let path = dir.join(SUMMARY_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), one_line(&e.to_string())))
    }

    /// Writes `dir/summary.toml`, with the digests of the run's files as they are now: the
    /// summary is written last, so these are the files the run ended with.
    pub fn save(&mut self, dir: &Path) -> Result<()> {
        self.digests = Some(Digests::of(&super::RunDir::new(dir))?);
        let text = toml::to_string(self).expect("a summary always serialises");
        write_file(&dir.join(SUMMARY_FILE), text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Precision;

    /// A summary as reslab wrote them before it recorded where and when a run was made.
    const OLD: &str = "status = \"complete\"\nmodel = \"resnet-20 (A)\"\nparams = 269722\nmacs = 40551040\n\
        iters_done = 400\nfinal_train_err = 40.5\nfinal_test_err = 45.0\nmean_train_err = 60.25\n\
        mean_test_err = 62.0\nmean_img_per_s = 900.5\nwall_s = 12.5\n";

    #[test]
    fn a_summary_records_its_provenance_and_an_older_one_without_it_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SUMMARY_FILE), OLD).unwrap();
        let old = RunSummary::load(dir.path()).unwrap();
        assert_eq!((old.status, old.iters_done, old.provenance.clone()), (RunStatus::Complete, 400, None));

        let provenance = Provenance {
            seed: 2,
            precision: Precision::Bf16,
            kernels: crate::model::Kernels::Fused,
            threads: 4,
            reslab_version: "0.1.0".into(),
            commit: "0123abc-dirty".into(),
            libtorch_version: "2.9.0".into(),
            device: Some(crate::run::config::DeviceChoice::Cpu),
            cpu: "AMD EPYC 7B13 64-Core Processor".into(),
            gpu: None,
            started: "2026-12-07T01:02:03Z".into(),
            ended: "2026-12-07T01:04:05Z".into(),
        };
        std::fs::write(dir.path().join(crate::run::CONFIG_FILE), "config").unwrap();
        std::fs::write(dir.path().join(crate::run::metrics::FILE_NAME), "rows").unwrap();
        let mut new = RunSummary { provenance: Some(provenance), ..old };
        new.save(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(SUMMARY_FILE)).unwrap();
        for line in [
            "seed = 2\n",
            "precision = \"bf16\"\n",
            "kernels = \"fused\"\n",
            "threads = 4\n",
            "reslab_version = \"0.1.0\"\n",
            "commit = \"0123abc-dirty\"\n",
            "libtorch_version = \"2.9.0\"\n",
            "cpu = \"AMD EPYC 7B13 64-Core Processor\"\n",
            "started = \"2026-12-07T01:02:03Z\"\n",
            "ended = \"2026-12-07T01:04:05Z\"\n",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
        assert!(!text.contains("gpu"), "no GPU, no line: {text}");
        // What the run ended with: "config" and "rows" here; no weights, no line.
        assert!(
            text.contains("config_sha256 = \"b79606fb3afea5bd1609ed40b622142f1c98125abcfe89a76a661b0e8e343910\""),
            "{text}"
        );
        assert!(text.contains("metrics_sha256 = ") && !text.contains("weights_sha256"), "{text}");
        assert_eq!(RunSummary::load(dir.path()).unwrap(), new);
    }
}
