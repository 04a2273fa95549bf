//! Loss landscapes (Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets", NeurIPS) and
//! the path from initialisation (Goodfellow et al. 2015, "Qualitatively characterizing neural
//! network optimization problems").
//!
//! **Surface.** Around a run's final weights w, two random Gaussian directions d1, d2 in weight
//! space, *filter-normalised* as Li et al. do: each filter of a direction (a slice along the first
//! dimension of a convolution's or the classifier's weight) scaled to the norm of the same filter
//! of w; biases and BN parameters (every 1-d parameter) left out of the directions (their
//! `ignore = "biasbn"`). The training loss and error of w + a d1 + b d2 on a fixed subset of the
//! training images (the first N, no augmentation) at every point of the grid [-span, span]^2 (or
//! the line, with one direction), in evaluation mode with the trained BN running statistics held
//! fixed: their code's choice (`net.eval()` in `evaluation.py`, with directions over the
//! parameters, not the BN buffers). Each point re-folds BN into the perturbed convolutions and
//! runs the fused evaluation path ([`crate::model::folded`]); points are spread over threads.
//!
//! **Path.** The loss and error of (1 - t) w0 + t w along the line from the run's initial weights
//! w0 to its final ones (t from -0.2 to 1.2), every parameter moving. Here BN normalises with the
//! statistics of each batch (training mode, batches of the run's size): no running statistics
//! describe the weights in between (the initial ones are 0 and 1, for no weights at all), and the
//! batch statistics are those the run's logged training loss is computed with.
//!
//! **Summary numbers** (docs/analyses.md): the *sharpness*, the mean over the grid points within
//! half the span of the centre (the centre left out) of log10(loss / centre loss), larger for a
//! surface that rises faster; and the *convex share*, the share of the grid points within that
//! radius (not on the edge) where the surface is locally convex by its second differences
//! (f_aa > 0, f_bb > 0 and f_aa f_bb > f_ab^2 in 2-D; f_aa > 0 on a line). Li et al.'s bowl has a
//! small sharpness and a convex share near 1; their chaotic plain-56 a large sharpness and a
//! lower share.

mod direction;
mod output;
mod runs;
mod scoring;
mod summary;

pub use direction::{
    directions, filter_normalised, load_directions, normalised, parameters, raw_direction, raw_directions,
    save_directions, Direction,
};
pub use output::write;
pub use runs::{carry_finished, of_run, training_subset, RunLandscape};
pub use scoring::{scores, BnStatistics, NetObjective, Objective, QuadraticToy, Score};
pub use summary::{summarise, Summary};

use super::Written;
use crate::data::{DataConfig, Dataset};
use crate::run::{RunConfig, RunDir};
use crate::train::runtime::thread_count;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use tch::Device;

/// One axis or two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dims {
    /// A line through the weights along one direction.
    One,
    /// A plane through the weights spanned by two directions.
    Two,
}

impl Dims {
    /// From `--dims 1|2`.
    pub fn from_count(count: u8) -> Result<Dims> {
        match count {
            1 => Ok(Dims::One),
            2 => Ok(Dims::Two),
            n => bail!("--dims {n}; expected 1 (a line) or 2 (a plane)"),
        }
    }

    /// 1 or 2.
    pub fn count(self) -> u8 {
        match self {
            Dims::One => 1,
            Dims::Two => 2,
        }
    }
}

/// What `reslab analyze landscape` computes.
#[derive(Debug, Clone, PartialEq)]
pub struct LandscapeSettings {
    /// Points per axis, odd so that the centre is one (default 21).
    pub grid: usize,
    /// The grid covers [-span, span] on each axis (default 1.0: a step of a filter's own norm).
    pub span: f64,
    /// Training images the loss is measured on (the first N; default 1,000).
    pub images: usize,
    /// A line or a plane.
    pub dims: Dims,
    /// The directions' seed (default 0).
    pub seed: u64,
    /// Points on the path from initialisation, t from -0.2 to 1.2 (0: no path; default 15).
    pub path_points: usize,
    /// libtorch threads in all; 0: the machine's cores.
    pub threads: usize,
    /// Points evaluated at once, each on threads / workers threads; 0: one per thread.
    pub workers: usize,
}

impl Default for LandscapeSettings {
    fn default() -> Self {
        LandscapeSettings {
            grid: 21,
            span: 1.0,
            images: 1000,
            dims: Dims::Two,
            seed: 0,
            path_points: 15,
            threads: 0,
            workers: 0,
        }
    }
}

impl LandscapeSettings {
    /// Odd grid of 3 or more, positive span and images.
    pub fn check(&self) -> Result<()> {
        if self.grid < 3 || self.grid.is_multiple_of(2) {
            bail!(
                "grid {}; expected an odd number of points per axis, 3 or more, so that the centre is one",
                self.grid
            );
        }
        if !(self.span.is_finite() && self.span > 0.0) {
            bail!("span {}; expected a positive number (the grid covers [-span, span])", self.span);
        }
        if self.images == 0 {
            bail!("images 0; expected at least 1 training image to measure the loss on");
        }
        if self.path_points == 1 {
            bail!("path points 1; expected 0 (no path) or 2 or more");
        }
        Ok(())
    }

    /// The grid's coordinates on one axis.
    pub fn axis(&self) -> Vec<f64> {
        let n = self.grid;
        (0..n).map(|i| self.span * (2.0 * i as f64 / (n - 1) as f64 - 1.0)).collect()
    }

    /// Every (alpha, beta) of the grid, beta-major (beta 0 on a line).
    pub fn points(&self) -> Vec<(f64, f64)> {
        let axis = self.axis();
        match self.dims {
            Dims::One => axis.iter().map(|&a| (a, 0.0)).collect(),
            Dims::Two => axis.iter().flat_map(|&b| axis.iter().map(move |&a| (a, b))).collect(),
        }
    }

    /// The path's t, from -0.2 to 1.2.
    pub fn path_ts(&self) -> Vec<f64> {
        let n = self.path_points;
        (0..n).map(|i| -0.2 + 1.4 * i as f64 / (n - 1).max(1) as f64).collect()
    }

    fn threads_and_workers(&self) -> (usize, usize) {
        let threads = thread_count(self.threads).max(1);
        let workers = if self.workers == 0 { threads } else { self.workers.min(threads) };
        (workers, (threads / workers).max(1))
    }
}

/// Every run's surface and path, each on its own training data (opened once per configuration);
/// their files in `out`.
pub fn analyze(
    dirs: &[PathBuf],
    settings: &LandscapeSettings,
    data: Option<&DataConfig>,
    directions: Option<&Path>,
    out: &Path,
    stem: &str,
) -> Result<(Vec<RunLandscape>, Written)> {
    settings.check()?;
    if dirs.is_empty() {
        bail!("no runs; expected one or more complete run directories");
    }
    for dir in dirs {
        RunDir::new(dir).check_weights().with_context(|| format!("run {}", dir.display()))?;
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut opened: Vec<(DataConfig, Dataset)> = Vec::new();
    let mut results = Vec::new();
    for dir in dirs {
        let config = match data {
            Some(data) => data.clone(),
            None => RunConfig::load(&RunDir::new(dir).config()).with_context(|| format!("run {}", dir.display()))?.data,
        };
        let index = match opened.iter().position(|(c, _)| *c == config) {
            Some(index) => index,
            None => {
                opened.push((config.clone(), Dataset::open(&config, Device::Cpu)?));
                opened.len() - 1
            }
        };
        let result = of_run(dir, settings, &opened[index].0, &opened[index].1, directions, out)?;
        results.push(result);
    }
    let written = write(&results, settings, out, stem)?;
    Ok((results, written))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small settings, for the submodules' tests.
    pub(super) fn settings(grid: usize, dims: Dims) -> LandscapeSettings {
        LandscapeSettings { grid, span: 1.0, images: 64, dims, seed: 3, path_points: 0, threads: 2, workers: 2 }
    }
}
