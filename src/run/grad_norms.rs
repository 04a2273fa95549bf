//! `grad_norms.csv` (`train --log-grads K`): every K iterations, the gradient norm and the weight
//! norm of every convolution and of the classifier, a row per layer. The gradient is the one the
//! step applies (the mini-batch's, before weight decay and momentum); the weight is before the step.

use super::metrics::{read_rows, reopen_at};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::Path;

/// The per-layer gradient norms in a run directory.
pub const FILE_NAME: &str = "grad_norms.csv";
const HEADER: [&str; 5] = ["iter", "layer", "depth", "grad_norm", "weight_norm"];

/// One layer's norms at one recorded iteration: a row of `grad_norms.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradNormRow {
    /// The iteration (1-based) whose gradient this is.
    pub iter: usize,
    /// The module's name (`layer2.0.conv1`, `linear`).
    pub layer: String,
    /// Position on the main path, 1 = the first convolution (see `model::ConvLayer::depth`).
    pub depth: usize,
    /// L2 norms over the whole tensor.
    pub grad_norm: f64,
    /// The layer's weight norm before the step.
    pub weight_norm: f64,
}

/// Appends rows to `grad_norms.csv`, flushed as they are written.
pub struct GradNormWriter {
    writer: csv::Writer<File>,
}

impl GradNormWriter {
    /// Starts `dir/grad_norms.csv` afresh.
    pub fn create(dir: &Path) -> Result<GradNormWriter> {
        Self::resume(dir, 0)
    }

    /// Continues `dir/grad_norms.csv` after `iteration` (later rows, written after the checkpoint
    /// the run resumes from, are cut).
    pub fn resume(dir: &Path, iteration: usize) -> Result<GradNormWriter> {
        let file = reopen_at(&dir.join(FILE_NAME), &HEADER, iteration)?;
        Ok(GradNormWriter { writer: csv::WriterBuilder::new().has_headers(false).from_writer(file) })
    }

    /// One iteration's rows, flushed together.
    pub fn write(&mut self, rows: &[GradNormRow]) -> Result<()> {
        for r in rows {
            let fields = [
                r.iter.to_string(),
                r.layer.clone(),
                r.depth.to_string(),
                format!("{:e}", r.grad_norm),
                format!("{:e}", r.weight_norm),
            ];
            self.writer.write_record(&fields)?;
        }
        self.writer.flush().with_context(|| format!("writing {FILE_NAME}"))
    }
}

/// A run's gradient-norm rows; an error naming the file if it has none.
pub fn read(dir: &Path) -> Result<Vec<GradNormRow>> {
    let path = dir.join(FILE_NAME);
    if !path.is_file() {
        bail!(
            "{} does not exist: the run was trained without --log-grads (or `grad_norms` in its experiment's [analysis])",
            path.display()
        );
    }
    read_rows(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(iter: usize, depth: usize) -> GradNormRow {
        GradNormRow { iter, layer: format!("layer1.{depth}.conv1"), depth, grad_norm: 0.5, weight_norm: 2.0 }
    }

    #[test]
    fn rows_read_back_and_resuming_cuts_rows_after_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = GradNormWriter::create(dir.path()).unwrap();
        writer.write(&[row(10, 1), row(10, 2)]).unwrap();
        writer.write(&[row(20, 1), row(20, 2)]).unwrap();
        drop(writer);
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(text.starts_with("iter,layer,depth,grad_norm,weight_norm\n"), "{text}");
        assert_eq!(read(dir.path()).unwrap(), vec![row(10, 1), row(10, 2), row(20, 1), row(20, 2)]);
        let mut writer = GradNormWriter::resume(dir.path(), 15).unwrap();
        writer.write(&[row(20, 1)]).unwrap();
        assert_eq!(read(dir.path()).unwrap(), vec![row(10, 1), row(10, 2), row(20, 1)]);
        let err = read(tempfile::tempdir().unwrap().path()).unwrap_err().to_string();
        assert!(err.contains("--log-grads"), "{err}");
    }
}
