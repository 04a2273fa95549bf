//! `metrics.csv`: one row per evaluation, flushed as it is written so a killed run keeps its rows.

use crate::util::fs::write_file;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::Path;

/// The metrics of a run directory, a row per evaluation.
pub const FILE_NAME: &str = "metrics.csv";
const HEADER: [&str; 8] = ["iter", "epoch", "lr", "train_loss", "train_err", "test_err", "img_per_s", "wall_s"];

/// Errors are in percent. `train_loss` and `train_err` are running values over the augmented
/// training batches since the previous row; `test_err` is on the whole evaluation set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    /// Iterations completed.
    pub iter: usize,
    /// Epochs completed (fractional).
    pub epoch: f64,
    /// The learning rate of the last iteration.
    pub lr: f64,
    /// Mean training loss (cross-entropy) since the previous row.
    pub train_loss: f64,
    /// Training error (%) since the previous row.
    pub train_err: f64,
    /// Error (%) on the evaluation set.
    pub test_err: f64,
    /// Training images per second since the previous row (evaluation time excluded).
    pub img_per_s: f64,
    /// Seconds since the run started.
    pub wall_s: f64,
}

/// Appends rows to `metrics.csv`, flushed as they are written.
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
            .write_record(HEADER)
            .and_then(|()| Ok(writer.flush()?))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(MetricsWriter { writer })
    }

    /// Reopens `dir/metrics.csv` to continue a run from `iteration`: rows after it (written
    /// after the checkpoint) and any partly written line are cut first, so no row is duplicated
    /// or lost.
    pub fn resume(dir: &Path, iteration: usize) -> Result<MetricsWriter> {
        let file = reopen_at(&dir.join(FILE_NAME), &HEADER, iteration)?;
        Ok(MetricsWriter { writer: csv::WriterBuilder::new().has_headers(false).from_writer(file) })
    }

    /// Appends `row` and flushes it.
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

/// Reopens the CSV file at `path` (columns `header`, the first being the iteration) for appending
/// from `iteration`: rows after it (written after the checkpoint) and any partly written line are
/// cut first, so no row is duplicated or lost.
pub(crate) fn reopen_at(path: &Path, header: &[&str], iteration: usize) -> Result<File> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let header_line = header.join(",") + "\n";
    let mut kept = String::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let complete = line.ends_with('\n') && line.split(',').count() == header.len();
        let keep = if i == 0 {
            complete && line == header_line
        } else {
            complete && line.split(',').next().and_then(|n| n.parse::<usize>().ok()).is_some_and(|n| n <= iteration)
        };
        if i == 0 && !keep {
            kept.push_str(&header_line);
        }
        if keep {
            kept.push_str(line);
        }
    }
    if kept.is_empty() {
        kept = header_line;
    }
    write_file(path, kept.as_bytes())?;
    std::fs::OpenOptions::new().append(true).open(path).with_context(|| format!("opening {}", path.display()))
}

/// A run's rows so far; none if it has no `metrics.csv` yet.
pub fn read_if_any(dir: &Path) -> Result<Vec<MetricsRow>> {
    if !dir.join(FILE_NAME).exists() {
        return Ok(Vec::new());
    }
    let mut reader = csv::Reader::from_path(dir.join(FILE_NAME))?;
    reader
        .deserialize()
        .collect::<Result<Vec<MetricsRow>, _>>()
        .with_context(|| format!("{}: malformed row", dir.join(FILE_NAME).display()))
}

/// The rows written so far while the run may be writing the next: a last line without its
/// newline is left for the next read. None if there is no `metrics.csv` yet.
pub fn read_written(dir: &Path) -> Result<Vec<MetricsRow>> {
    let path = dir.join(FILE_NAME);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(Vec::new());
    };
    let complete = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
    csv::Reader::from_reader(complete.as_bytes())
        .deserialize()
        .collect::<Result<Vec<MetricsRow>, _>>()
        .with_context(|| format!("{}: malformed row", path.display()))
}

/// Reads a run's `metrics.csv`.
pub fn read(dir: &Path) -> Result<Vec<MetricsRow>> {
    read_rows(&dir.join(FILE_NAME))
}

/// The rows of the CSV file at `path` (a run's metrics or gradient norms); an error naming the
/// file if it cannot be read, has a malformed row, or has none.
pub(crate) fn read_rows<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let rows = reader
        .deserialize()
        .collect::<Result<Vec<T>, _>>()
        .with_context(|| format!("{}: malformed row", path.display()))?;
    if rows.is_empty() {
        bail!("{} has no rows", path.display());
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resuming_cuts_rows_after_the_checkpoint_and_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let text = "iter,epoch,lr,train_loss,train_err,test_err,img_per_s,wall_s\n\
                    10,1,0.1,2,80,80,100,1\n20,2,0.1,2,70,70,100,2\n30,3,0.1,2,60,60,100,3\n4";
        std::fs::write(dir.path().join(FILE_NAME), text).unwrap();
        let mut writer = MetricsWriter::resume(dir.path(), 25).unwrap();
        let row = MetricsRow {
            iter: 30,
            epoch: 3.0,
            lr: 0.1,
            train_loss: 1.0,
            train_err: 50.0,
            test_err: 55.0,
            img_per_s: 1.0,
            wall_s: 4.0,
        };
        writer.write(&row).unwrap();
        let rows = read(dir.path()).unwrap();
        let iters: Vec<usize> = rows.iter().map(|r| r.iter).collect();
        assert_eq!(iters, vec![10, 20, 30]);
        assert_eq!(rows[2].train_err, 50.0);
    }
}
