//! The landscapes' tables and figures: the surfaces, summaries and paths as CSV, Li et al.'s
//! contour figure, and the charts along the first direction and along the path.

use super::runs::RunLandscape;
use super::scoring::Score;
use super::{Dims, LandscapeSettings};
use crate::analysis::Written;
use crate::model::Kind as NetKind;
use crate::report::chart::{Curve, ErrorChart, Scale};
use crate::report::contour::{self, ContourFigure, ContourPanel};
use crate::report::table::csv_text;
use anyhow::{Context, Result};
use std::path::Path;

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
