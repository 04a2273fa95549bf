//! What is measured inside networks, trained or fresh, beside their error curves:
//!
//! - [`responses`]: He et al. (2015), Figure 7: the standard deviation of every 3x3 layer's
//!   response (after BN, before the ReLU or the addition) on the test set;
//! - [`grad_norms`]: the per-layer gradient norms a run recorded (`train --log-grads K`), against
//!   depth at a few points of training;
//! - [`shattering`]: Balduzzi et al. (2017), "The shattered gradients problem": how fast the
//!   gradients at neighbouring inputs decorrelate with depth, in their toy networks and in
//!   reslab's CIFAR nets;
//! - [`landscape`]: Li et al. (2018), the loss landscape around a run's final weights on two
//!   filter-normalised random directions, and the path from its initial weights (Goodfellow et
//!   al. 2015).
//!
//! Analyses read models and run directories and write CSV files and charts (through
//! [`crate::report`]); an experiment's aggregation calls them (its `[analysis]` table), never the
//! reverse.

pub mod grad_norms;
pub mod landscape;
pub mod responses;
pub mod shattering;

use crate::report::chart::{self, ErrorChart};
use crate::util::fs::write_file;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The files an analysis wrote, and the SVG of its chart for a report.
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// The CSV files (and chart images) written, in order.
    pub files: Vec<PathBuf>,
    /// (caption, SVG text) of each chart.
    pub figures: Vec<(String, String)>,
}

impl Written {
    /// Appends another analysis's files and figures to these.
    pub fn extend(&mut self, other: Written) {
        self.files.extend(other.files);
        self.figures.extend(other.figures);
    }

    fn csv(&mut self, path: PathBuf, text: &str) -> Result<()> {
        write_file(&path, text.as_bytes())?;
        self.files.push(path);
        Ok(())
    }

    /// Renders `panels` side by side as `stem.png` and `stem.svg` in `out`.
    fn chart(&mut self, out: &Path, stem: &str, caption: &str, panels: &[ErrorChart]) -> Result<()> {
        let (png, svg) = (out.join(format!("{stem}.png")), out.join(format!("{stem}.svg")));
        chart::render_panels(panels, &png, &svg)?;
        let text = std::fs::read_to_string(&svg).with_context(|| format!("reading {}", svg.display()))?;
        self.figures.push((caption.to_string(), text));
        self.files.extend([png, svg]);
        Ok(())
    }
}

/// A run's label in tables and legends: its directory's name.
fn run_label(dir: &Path) -> String {
    dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned())
}
