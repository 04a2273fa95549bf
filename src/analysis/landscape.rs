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
mod runs;
mod scoring;
mod summary;

pub use direction::{
    directions, filter_normalised, load_directions, normalised, parameters, raw_direction, raw_directions,
    save_directions, Direction,
};
pub use runs::{analyze, carry_finished, of_run, training_subset, RunLandscape};
pub use scoring::{scores, BnStatistics, NetObjective, Objective, QuadraticToy, Score};
pub use summary::{summarise, Summary};

use super::Written;
use crate::model::Kind as NetKind;
use crate::report::chart::{Curve, ErrorChart, Scale};
use crate::report::contour::{self, ContourFigure, ContourPanel};
use crate::report::table::csv_text;
use crate::train::runtime::thread_count;
use anyhow::{bail, Context, Result};
use std::path::Path;

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

/// `<stem>.csv` (run, alpha, beta, loss, error), `<stem>-summary.csv`, `<stem>-path.csv` and the
/// charts, in `out`.
pub fn write(results: &[RunLandscape], settings: &LandscapeSettings, out: &Path, stem: &str) -> Result<Written> {
    let mut written = Written::default();
    let points = settings.points();
    let rows: Vec<Vec<String>> = results
        .iter()
        .flat_map(|r| {
            points.iter().zip(&r.surface).map(move |((a, b), s)| {
                vec![
                    r.run.clone(),
                    format!("{a:.4}"),
                    format!("{b:.4}"),
                    format!("{:.6}", s.loss),
                    format!("{:.4}", s.error),
                ]
            })
        })
        .collect();
    written.csv(out.join(format!("{stem}.csv")), &csv_text(&["run", "alpha", "beta", "loss", "error"], &rows)?)?;
    let summary_rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.run.clone(),
                r.model.clone(),
                settings.dims.count().to_string(),
                settings.grid.to_string(),
                settings.span.to_string(),
                settings.images.to_string(),
                settings.seed.to_string(),
                format!("{:.6}", r.summary.centre_loss),
                format!("{:.4}", r.summary.centre_error),
                format!("{:.5}", r.summary.sharpness),
                format!("{:.4}", r.summary.convex_share),
                format!("{:.4}", r.seconds_per_point),
            ]
        })
        .collect();
    let header = [
        "run",
        "model",
        "dims",
        "grid",
        "span",
        "images",
        "seed",
        "centre_loss",
        "centre_error",
        "sharpness",
        "convex_share",
        "seconds_per_point",
    ];
    written.csv(out.join(format!("{stem}-summary.csv")), &csv_text(&header, &summary_rows)?)?;
    let ts = settings.path_ts();
    let with_path: Vec<&RunLandscape> = results.iter().filter(|r| !r.path.is_empty()).collect();
    if !with_path.is_empty() {
        let rows: Vec<Vec<String>> = with_path
            .iter()
            .flat_map(|r| {
                let initial = r.initial.map(|i| i.to_string()).unwrap_or_default();
                ts.iter().zip(&r.path).map(move |(t, s)| {
                    vec![
                        r.run.clone(),
                        format!("{t:.4}"),
                        format!("{:.6}", s.loss),
                        format!("{:.4}", s.error),
                        initial.clone(),
                    ]
                })
            })
            .collect();
        written.csv(
            out.join(format!("{stem}-path.csv")),
            &csv_text(&["run", "t", "loss", "error", "initial_weights"], &rows)?,
        )?;
    }
    let shown = first_of_each_network(results);
    if settings.dims == Dims::Two {
        contour_figure(&shown, settings, out, stem, &mut written)?;
    }
    line_charts(&shown, settings, out, stem, &mut written)?;
    if !with_path.is_empty() {
        path_chart(&shown, &ts, out, stem, &mut written)?;
    }
    Ok(written)
}

/// One run per network (the first given), residual nets before plain ones, by depth.
fn first_of_each_network(results: &[RunLandscape]) -> Vec<&RunLandscape> {
    let mut shown: Vec<&RunLandscape> = Vec::new();
    for r in results {
        if !shown.iter().any(|s| s.model == r.model) {
            shown.push(r);
        }
    }
    shown.sort_by_key(|r| (r.kind != NetKind::Residual, r.depth));
    shown
}

/// The contour levels span this factor above the lowest loss of a figure (3 decades).
const LEVEL_DECADES: f64 = 1000.0;

/// Li et al.'s Fig. 5: residual nets on the top row, plain nets below, by depth.
fn contour_figure(
    shown: &[&RunLandscape],
    settings: &LandscapeSettings,
    out: &Path,
    stem: &str,
    written: &mut Written,
) -> Result<()> {
    let axis = settings.axis();
    let panel = |r: &RunLandscape| ContourPanel {
        title: format!("{} ({})", r.model, r.run),
        xs: axis.clone(),
        ys: axis.clone(),
        values: r.surface.iter().map(|s| s.loss).collect(),
    };
    let mut depths: Vec<i64> = shown.iter().map(|r| r.depth).collect();
    depths.sort_unstable();
    depths.dedup();
    let mut rows = Vec::new();
    for kind in [NetKind::Residual, NetKind::Plain] {
        let row: Vec<Option<ContourPanel>> =
            depths.iter().map(|&d| shown.iter().find(|r| r.kind == kind && r.depth == d).map(|r| panel(r))).collect();
        if row.iter().any(Option::is_some) {
            rows.push(row);
        }
    }
    let others: Vec<Option<ContourPanel>> = shown
        .iter()
        .filter(|r| r.kind != NetKind::Residual && r.kind != NetKind::Plain)
        .map(|r| Some(panel(r)))
        .collect();
    if !others.is_empty() {
        rows.push(others);
    }
    // Levels over three decades above the lowest loss: a perturbed net's loss can reach 10^9 at the
    // grid's edge, and levels spread up to there would all lie above the basin around the centre.
    let losses: Vec<f64> = shown.iter().flat_map(|r| r.surface.iter().map(|s| s.loss)).collect();
    let lowest = losses.iter().copied().filter(|v| v.is_finite() && *v > 0.0).fold(f64::MAX, f64::min);
    let levels = contour::log_levels(losses.into_iter().filter(|v| *v <= lowest * LEVEL_DECADES), 14);
    let figure = ContourFigure {
        title: format!(
            "Training loss around the trained weights (filter-normalised directions, {} x {} grid, {} images)",
            settings.grid, settings.grid, settings.images
        ),
        value_label: "training loss".into(),
        x_label: "alpha".into(),
        y_label: "beta".into(),
        rows,
        levels,
    };
    let (png, svg) = (out.join(format!("{stem}-contours.png")), out.join(format!("{stem}-contours.svg")));
    contour::render(&figure, &png, &svg)?;
    let text = std::fs::read_to_string(&svg).with_context(|| format!("reading {}", svg.display()))?;
    written.figures.push((
        "Li et al. (2018), Fig. 5: the training loss on the plane of two filter-normalised random directions \
         through each run's final weights (the centre); residual nets on the top row, plain nets below; the same \
         log-spaced contour levels in every panel."
            .into(),
        text,
    ));
    written.files.extend([png, svg]);
    Ok(())
}

/// Loss and error along the first direction (beta = 0).
fn line_charts(
    shown: &[&RunLandscape],
    settings: &LandscapeSettings,
    out: &Path,
    stem: &str,
    written: &mut Written,
) -> Result<()> {
    let axis = settings.axis();
    let c = settings.grid / 2;
    let lines = shown
        .iter()
        .map(|r| {
            let line = match settings.dims {
                Dims::One => &r.surface[..],
                Dims::Two => &r.surface[c * settings.grid..(c + 1) * settings.grid],
            };
            (*r, axis.iter().copied().zip(line.iter().copied()).collect())
        })
        .collect();
    let titles = ("Training loss along the first direction", "Training error along the first direction");
    let caption = "The loss and error along one filter-normalised direction through each run's final weights \
                   (alpha = 0); plain nets dashed.";
    written.chart(out, &format!("{stem}-lines"), caption, &loss_and_error(lines, "alpha", titles))
}

/// Goodfellow et al.'s interpolation from the initial to the final weights.
fn path_chart(shown: &[&RunLandscape], ts: &[f64], out: &Path, stem: &str, written: &mut Written) -> Result<()> {
    let lines = shown
        .iter()
        .filter(|r| !r.path.is_empty())
        .map(|r| (*r, ts.iter().copied().zip(r.path.iter().copied()).collect()))
        .collect();
    let titles = ("Training loss from initial (t = 0) to final (t = 1) weights", "Training error on the same line");
    let caption = "Goodfellow et al. (2015): the straight line from each run's initial weights to its final ones, \
                   every parameter moving; BN normalises each batch by its own statistics at every point. Plain \
                   nets dashed.";
    written.chart(out, &format!("{stem}-path"), caption, &loss_and_error(lines, "t", titles))
}

/// Two panels of each run's scores along a line: the loss (log axis) and the error.
fn loss_and_error(
    lines: Vec<(&RunLandscape, Vec<(f64, Score)>)>,
    x_label: &str,
    titles: (&str, &str),
) -> [ErrorChart; 2] {
    let curves = |value: fn(&Score) -> f64| -> Vec<Curve> {
        lines
            .iter()
            .enumerate()
            .map(|(series, (r, points))| Curve {
                label: r.model.clone(),
                series,
                dashed: r.kind == NetKind::Plain,
                marker: false,
                points: points.iter().map(|(x, s)| (*x, value(s))).collect(),
                band: vec![],
            })
            .collect()
    };
    let panel = |title: &str, y_label: &str, value: fn(&Score) -> f64, y_range, y_scale| ErrorChart {
        title: title.into(),
        x_label: x_label.into(),
        y_label: y_label.into(),
        curves: curves(value),
        y_range,
        y_scale,
        band_label: None,
    };
    [
        panel(titles.0, "training loss", |s| s.loss, None, Scale::Log),
        panel(titles.1, "training error (%)", |s| s.error, Some((0.0, 100.0)), Scale::Linear),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small settings, for the submodules' tests.
    pub(super) fn settings(grid: usize, dims: Dims) -> LandscapeSettings {
        LandscapeSettings { grid, span: 1.0, images: 64, dims, seed: 3, path_points: 0, threads: 2, workers: 2 }
    }
}
