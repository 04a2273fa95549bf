//! Gradient health: the per-layer gradient norms a run recorded (`train --log-grads K`, or
//! `grad_norms` in an experiment's `[analysis]`), against depth at a few points of training, plain
//! against residual at the same depth. He et al. (2015) argue that plain nets do not fail from
//! vanishing gradients (BN keeps the backward signal healthy, Sec. 4.1): this chart shows it.

use super::{run_label, Written};
use crate::report::chart::{Curve, ErrorChart, Scale};
use crate::run::grad_norms::{self, GradNormRow};
use crate::run::{RunConfig, RunDir};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// One run's recorded norms.
#[derive(Debug, Clone, PartialEq)]
pub struct RunGradNorms {
    /// The run directory's name.
    pub run: String,
    /// The model's name (`resnet-20`).
    pub model: String,
    /// The network's depth in weighted layers.
    pub depth: i64,
    /// The rows of `grad_norms.csv`, in the order recorded.
    pub rows: Vec<GradNormRow>,
}

impl RunGradNorms {
    /// Reads the run's configuration and its recorded gradient norms from the run directory `dir`.
    pub fn read(dir: &Path) -> Result<RunGradNorms> {
        let config = RunConfig::load(&RunDir::new(dir).config())?;
        Ok(RunGradNorms {
            run: run_label(dir),
            model: config.model.to_string(),
            depth: config.model.depth,
            rows: grad_norms::read(dir)?,
        })
    }

    /// The iterations recorded, in order.
    pub fn iterations(&self) -> Vec<usize> {
        let mut iters: Vec<usize> = self.rows.iter().map(|r| r.iter).collect();
        iters.dedup();
        iters
    }

    /// (depth, gradient norm) along the main path at `iter` (a shortcut's projection shares its
    /// depth with a main-path layer and is left out).
    pub fn profile(&self, iter: usize) -> Vec<(f64, f64)> {
        let mut seen = std::collections::BTreeMap::new();
        for row in self.rows.iter().filter(|r| r.iter == iter && !is_projection(&r.layer)) {
            seen.entry(row.depth).or_insert(row.grad_norm);
        }
        seen.into_iter().map(|(d, g)| (d as f64, g)).collect()
    }
}

fn is_projection(layer: &str) -> bool {
    layer.contains(".shortcut.") || layer.contains(".downsample.")
}

/// Up to `count` recorded iterations spread over the run: the first, the last and evenly between.
pub fn points_of_training(iterations: &[usize], count: usize) -> Vec<usize> {
    if iterations.len() <= count {
        return iterations.to_vec();
    }
    if count < 2 {
        return iterations.last().into_iter().copied().take(count).collect();
    }
    let mut chosen: Vec<usize> = (0..count).map(|i| iterations[i * (iterations.len() - 1) / (count - 1)]).collect();
    chosen.dedup();
    chosen
}

/// Points of training drawn per run.
const POINTS: usize = 4;

/// The chart (`<stem>.png`, `.svg`): one panel per network depth, each layer's gradient norm
/// (on a log axis) against its depth at up to four points of training; plain runs dashed, residual solid,
/// one colour per point of training.
pub fn write(runs: &[RunGradNorms], out: &Path, stem: &str) -> Result<Written> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut depths: Vec<i64> = runs.iter().map(|r| r.depth).collect();
    depths.sort_unstable();
    depths.dedup();
    let panels: Vec<ErrorChart> = depths
        .iter()
        .map(|&depth| {
            let mut curves = Vec::new();
            for run in runs.iter().filter(|r| r.depth == depth) {
                for (series, iter) in points_of_training(&run.iterations(), POINTS).into_iter().enumerate() {
                    let points = run.profile(iter);
                    curves.push(Curve {
                        label: format!("{} it {iter}", run.run),
                        series,
                        dashed: run.model.starts_with("plain"),
                        points,
                        marker: false,
                        band: vec![],
                    });
                }
            }
            ErrorChart {
                title: format!("Gradient norms, {depth} layers"),
                x_label: "layer depth".into(),
                y_label: "gradient norm (log scale)".into(),
                curves,
                y_range: None,
                y_scale: Scale::Log,
                band_label: None,
            }
        })
        .collect();
    let mut written = Written::default();
    let caption = "Gradient norm of every conv and fc weight against its depth (log axis), at points of training; \
                   plain nets dashed, residual nets solid.";
    written.chart(out, stem, caption, &panels)?;
    Ok(written)
}

/// `reslab analyze grad-norms`: the chart of the runs' recorded norms.
pub fn analyze(runs: &[PathBuf], out: &Path) -> Result<(Vec<RunGradNorms>, Written)> {
    let results = runs.iter().map(|dir| RunGradNorms::read(dir)).collect::<Result<Vec<_>>>()?;
    let written = write(&results, out, "grad-norms")?;
    Ok((results, written))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_of_training_take_the_ends_and_spread_between() {
        let iters: Vec<usize> = (1..=10).collect();
        assert_eq!(points_of_training(&iters, 4), vec![1, 4, 7, 10]);
        assert_eq!(points_of_training(&[1, 5], 4), vec![1, 5]);
        assert_eq!(points_of_training(&[], 4), Vec::<usize>::new());
    }

    #[test]
    fn profiles_follow_the_main_path() {
        let row = |iter, layer: &str, depth, grad_norm| GradNormRow {
            iter,
            layer: layer.into(),
            depth,
            grad_norm,
            weight_norm: 1.0,
        };
        let run = RunGradNorms {
            run: "r".into(),
            model: "resnet-8-B".into(),
            depth: 8,
            rows: vec![
                row(1, "conv1", 1, 0.1),
                row(1, "layer2.0.conv2", 2, 0.2),
                row(1, "layer2.0.shortcut.0", 2, 9.0),
                row(1, "linear", 3, 0.3),
                row(5, "conv1", 1, 0.4),
            ],
        };
        assert_eq!(run.iterations(), vec![1, 5]);
        assert_eq!(run.profile(1), vec![(1.0, 0.1), (2.0, 0.2), (3.0, 0.3)]);
    }
}
