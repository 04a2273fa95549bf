//! `summary.toml`: what a run ended with, written last. A directory without one saying
//! `status = "complete"` is not a finished result.

use super::config::one_line;
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
    /// Data parallel runs: the mean time per step that averaging the gradients over the
    /// processes took (milliseconds, in the last session of the run: not kept across resumptions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_reduce_ms_per_step: Option<f64>,
    /// Why the run stopped, for a diverged run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl RunSummary {
    /// Reads and parses `dir/summary.toml`.
    pub fn load(dir: &Path) -> Result<RunSummary> {
        let path = dir.join(SUMMARY_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), one_line(&e.to_string())))
    }

    /// Writes `dir/summary.toml`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let text = toml::to_string(self).expect("a summary always serialises");
        write_file(&dir.join(SUMMARY_FILE), text.as_bytes())
    }
}
