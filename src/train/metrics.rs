//! `metrics.csv`: one row per evaluation, flushed as it is written so a killed run keeps its rows.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::Path;

pub const FILE_NAME: &str = "metrics.csv";

/// Errors are in percent. `train_loss` and `train_err` are running values over the augmented
/// training batches since the previous row; `test_err` is on the whole evaluation set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    /// Iterations completed.
    pub iter: usize,
    pub epoch: f64,
    pub lr: f64,
    pub train_loss: f64,
    pub train_err: f64,
    pub test_err: f64,
    /// Training images per second since the previous row (evaluation time excluded).
    pub img_per_s: f64,
    /// Seconds since the run started.
    pub wall_s: f64,
}

pub struct MetricsWriter {
    writer: csv::Writer<File>,
}

impl MetricsWriter {
    /// Creates (or truncates) `dir/metrics.csv` and writes the header.
    pub fn create(dir: &Path) -> Result<MetricsWriter> {
        let path = dir.join(FILE_NAME);
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(file);
        writer
            .write_record(["iter", "epoch", "lr", "train_loss", "train_err", "test_err", "img_per_s", "wall_s"])
            .and_then(|()| Ok(writer.flush()?))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(MetricsWriter { writer })
    }

    pub fn write(&mut self, row: &MetricsRow) -> Result<()> {
        let r = row;
        let fields = [
            r.iter.to_string(),
            format!("{:.3}", r.epoch),
            format!("{}", (r.lr * 1e12).round() / 1e12), // 0.001, not 0.0010000000000000002
            format!("{:.5}", r.train_loss),
            format!("{:.3}", r.train_err),
            format!("{:.3}", r.test_err),
            format!("{:.1}", r.img_per_s),
            format!("{:.2}", r.wall_s),
        ];
        self.writer.write_record(&fields)?;
        self.writer.flush().context("writing metrics.csv")?;
        Ok(())
    }
}

/// Reads a run's `metrics.csv`.
pub fn read(dir: &Path) -> Result<Vec<MetricsRow>> {
    let path = dir.join(FILE_NAME);
    let mut reader = csv::Reader::from_path(&path).with_context(|| format!("reading {}", path.display()))?;
    let rows = reader
        .deserialize()
        .collect::<Result<Vec<MetricsRow>, _>>()
        .with_context(|| format!("{}: malformed row", path.display()))?;
    if rows.is_empty() {
        bail!("{} has no rows", path.display());
    }
    Ok(rows)
}
