//! Contour plots of surfaces on a grid (the loss landscapes of Li et al. 2018, Fig. 5): each panel
//! a heat map of the value with its contour lines, every panel of a figure on the same levels and
//! the same colours, so that two surfaces compare at a glance. Levels are log-spaced (a landscape's
//! loss spans orders of magnitude); the lines come from marching squares on log10 of the values.
//! Drawn as PNG and SVG, like the error charts.

use super::figure::{plot_err, write_figure, Drawing, Target, FONT};
use anyhow::{bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// One surface on a regular grid.
#[derive(Debug, Clone, PartialEq)]
pub struct ContourPanel {
    /// Above the panel (`resnet-56`).
    pub title: String,
    /// The grid's x coordinates, increasing.
    pub xs: Vec<f64>,
    /// The grid's y coordinates, increasing.
    pub ys: Vec<f64>,
    /// `values[j * xs.len() + i]` is the value at `(xs[i], ys[j])`; positive (log levels).
    pub values: Vec<f64>,
}

/// Panels in rows (a `None` leaves its place empty), on shared levels.
#[derive(Debug, Clone, PartialEq)]
pub struct ContourFigure {
    /// Above the figure.
    pub title: String,
    /// What the values are (`training loss`), under the figure with the levels.
    pub value_label: String,
    /// The axes' names.
    pub x_label: String,
    /// The y axis's name.
    pub y_label: String,
    /// Top to bottom, left to right.
    pub rows: Vec<Vec<Option<ContourPanel>>>,
    /// Contour levels, increasing, all above 0.
    pub levels: Vec<f64>,
}

const PANEL: u32 = 430;
const HEADER: u32 = 60;
const FOOTER: u32 = 44;

/// `count` log-spaced levels from the smallest to the largest of `values` (finite and above 0),
/// the same for every panel drawn with them. Fewer than two distinct values give one level.
pub fn log_levels(values: impl IntoIterator<Item = f64>, count: usize) -> Vec<f64> {
    let (lo, hi) = values
        .into_iter()
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return vec![];
    }
    if hi <= lo * (1.0 + 1e-9) || count < 2 {
        return vec![lo];
    }
    let (a, b) = (lo.log10(), hi.log10());
    // Levels strictly inside (lo, hi): a level at the minimum itself draws no line.
    (1..=count).map(|k| 10f64.powf(a + (b - a) * k as f64 / (count + 1) as f64)).collect()
}

/// Writes the figure as PNG and SVG (whole or not at all).
pub fn render(figure: &ContourFigure, png: &Path, svg: &Path) -> Result<()> {
    let panels: Vec<&ContourPanel> = figure.rows.iter().flatten().flatten().collect();
    if panels.is_empty() {
        bail!("contour figure '{}' has no panels", figure.title);
    }
    for panel in &panels {
        let (nx, ny) = (panel.xs.len(), panel.ys.len());
        if nx < 2 || ny < 2 || panel.values.len() != nx * ny {
            bail!(
                "contour panel '{}': {} values on a {nx} x {ny} grid; expected a grid of at least 2 x 2 with a value at every point",
                panel.title,
                panel.values.len()
            );
        }
    }
    if figure.levels.is_empty() || figure.levels.iter().any(|l| !l.is_finite() || *l <= 0.0) {
        bail!("contour figure '{}': expected one or more levels, all finite and above 0", figure.title);
    }
    let columns = figure.rows.iter().map(Vec::len).max().unwrap_or(1) as u32;
    // At least two panels wide, so that the title and the levels' line fit.
    let size = (PANEL * columns.max(2), HEADER + PANEL * figure.rows.len() as u32 + FOOTER);
    write_figure(figure, size, png, svg)
}

/// A colour from dark blue (low) over green to yellow (high), for `t` in [0, 1].
fn colour(t: f64) -> RGBColor {
    const STOPS: [(f64, (f64, f64, f64)); 5] = [
        (0.0, (68.0, 1.0, 84.0)),
        (0.25, (59.0, 82.0, 139.0)),
        (0.5, (33.0, 145.0, 140.0)),
        (0.75, (94.0, 201.0, 98.0)),
        (1.0, (253.0, 231.0, 37.0)),
    ];
    let t = t.clamp(0.0, 1.0);
    let i = STOPS.iter().position(|(s, _)| *s >= t).unwrap_or(STOPS.len() - 1).max(1);
    let ((s0, a), (s1, b)) = (STOPS[i - 1], STOPS[i]);
    let f = (t - s0) / (s1 - s0);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// The segments where the bilinear surface through `values` crosses `level` (marching squares;
/// a saddle cell is split by its centre's value).
pub fn contour_segments(panel: &ContourPanel, level: f64) -> Vec<[(f64, f64); 2]> {
    let (nx, ny) = (panel.xs.len(), panel.ys.len());
    let at = |i: usize, j: usize| panel.values[j * nx + i];
    let mut segments = Vec::new();
    for j in 0..ny.saturating_sub(1) {
        for i in 0..nx.saturating_sub(1) {
            // Corners counter-clockwise from the bottom left, and the edges between them.
            let corners = [(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)];
            let v: Vec<f64> = corners.iter().map(|&(a, b)| at(a, b)).collect();
            if v.iter().any(|x| !x.is_finite()) {
                continue;
            }
            let point = |e: usize| {
                let (a, b) = (e, (e + 1) % 4);
                let t = (level - v[a]) / (v[b] - v[a]);
                let (pa, pb) = (corners[a], corners[b]);
                let (xa, ya) = (panel.xs[pa.0], panel.ys[pa.1]);
                let (xb, yb) = (panel.xs[pb.0], panel.ys[pb.1]);
                (xa + t * (xb - xa), ya + t * (yb - ya))
            };
            let crossed: Vec<usize> = (0..4).filter(|&e| (v[e] >= level) != (v[(e + 1) % 4] >= level)).collect();
            match crossed.len() {
                2 => segments.push([point(crossed[0]), point(crossed[1])]),
                4 => {
                    let centre = v.iter().sum::<f64>() / 4.0;
                    // Join the edges around the corners on the centre's other side.
                    let pairs = if (centre >= level) == (v[0] >= level) { [(0, 1), (2, 3)] } else { [(3, 0), (1, 2)] };
                    for (a, b) in pairs {
                        segments.push([point(a), point(b)]);
                    }
                }
                _ => {}
            }
        }
    }
    segments
}

impl Drawing for ContourFigure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, t: Target) -> Result<()> {
        let k = t.k;
        root.fill(&WHITE).map_err(plot_err)?;
        let (header, rest) = root.split_vertically(HEADER * k);
        header.titled(&self.title, (FONT, 18 * k)).map_err(plot_err)?;
        let (body, footer) = rest.split_vertically(PANEL * k * self.rows.len() as u32);
        let (lo, hi) = (self.levels[0].log10(), self.levels[self.levels.len() - 1].log10());
        let shade = |v: f64| colour(if hi > lo { (v.log10() - lo) / (hi - lo) } else { 0.5 });
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(1).max(2);
        let row_areas = body.split_evenly((self.rows.len(), 1));
        for (row, row_area) in self.rows.iter().zip(&row_areas) {
            let cells = row_area.split_evenly((1, columns));
            for (panel, area) in row.iter().zip(&cells) {
                let Some(panel) = panel else { continue };
                let (x0, x1) = (panel.xs[0], panel.xs[panel.xs.len() - 1]);
                let (y0, y1) = (panel.ys[0], panel.ys[panel.ys.len() - 1]);
                let mut ctx = ChartBuilder::on(area)
                    .caption(&panel.title, (FONT, 18 * k))
                    .margin(8 * k)
                    .x_label_area_size(40 * k)
                    .y_label_area_size(48 * k)
                    .build_cartesian_2d(x0..x1, y0..y1)
                    .map_err(plot_err)?;
                ctx.configure_mesh()
                    .x_desc(&self.x_label)
                    .y_desc(&self.y_label)
                    .x_labels(5)
                    .y_labels(5)
                    .disable_mesh()
                    .axis_desc_style((FONT, 15 * k))
                    .label_style((FONT, 13 * k))
                    .draw()
                    .map_err(plot_err)?;
                // Each grid point's cell, coloured by its value.
                let (nx, ny) = (panel.xs.len(), panel.ys.len());
                let edge = |c: &[f64], i: usize| -> (f64, f64) {
                    let left = if i == 0 { c[0] } else { (c[i - 1] + c[i]) / 2.0 };
                    let right = if i + 1 == c.len() { c[i] } else { (c[i] + c[i + 1]) / 2.0 };
                    (left, right)
                };
                let mut cells = Vec::with_capacity(nx * ny);
                for j in 0..ny {
                    for i in 0..nx {
                        let v = panel.values[j * nx + i];
                        let fill = if v.is_finite() && v > 0.0 { shade(v) } else { RGBColor(255, 255, 255) };
                        let ((a, b), (c, d)) = (edge(&panel.xs, i), edge(&panel.ys, j));
                        cells.push(Rectangle::new([(a, c), (b, d)], fill.filled()));
                    }
                }
                ctx.draw_series(cells).map_err(plot_err)?;
                let logged = ContourPanel {
                    values: panel.values.iter().map(|v| if *v > 0.0 { v.log10() } else { f64::NAN }).collect(),
                    ..panel.clone()
                };
                for level in &self.levels {
                    let style = BLACK.mix(0.55).stroke_width(k);
                    let lines = contour_segments(&logged, level.log10())
                        .into_iter()
                        .map(|[a, b]| PathElement::new(vec![a, b], style));
                    ctx.draw_series(lines).map_err(plot_err)?;
                }
                // The centre: the trained weights.
                ctx.draw_series(std::iter::once(Cross::new((0.0, 0.0), 5 * k, WHITE.stroke_width(2 * k))))
                    .map_err(plot_err)?;
            }
        }
        let text = format!(
            "{}: {} contour levels, log-spaced from {} to {} (the same in every panel); darker is lower; x marks the trained weights",
            self.value_label,
            self.levels.len(),
            short(self.levels[0]),
            short(self.levels[self.levels.len() - 1])
        );
        footer.titled(&text, (FONT, 12 * k)).map_err(plot_err)?;
        Ok(())
    }
}

/// 3 significant digits.
fn short(v: f64) -> String {
    format!("{}", format!("{v:.3e}").parse::<f64>().unwrap_or(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bowl(n: usize) -> ContourPanel {
        let axis: Vec<f64> = (0..n).map(|i| -1.0 + 2.0 * i as f64 / (n - 1) as f64).collect();
        let values = axis.iter().flat_map(|y| axis.iter().map(move |x| 0.1 + x * x + y * y)).collect();
        ContourPanel { title: "bowl".into(), xs: axis.clone(), ys: axis, values }
    }

    #[test]
    fn levels_are_log_spaced_inside_the_values() {
        let levels = log_levels([0.1, 10.0, f64::NAN, -1.0], 3);
        assert_eq!(levels.len(), 3);
        for (level, expected) in levels.iter().zip([0.316_227_766, 1.0, 3.162_277_66]) {
            assert!((level - expected).abs() < 1e-6, "{levels:?}");
        }
        assert_eq!(log_levels([2.0, 2.0], 5), vec![2.0]);
        assert!(log_levels([f64::NAN], 5).is_empty());
    }

    #[test]
    fn a_bowl_s_contour_is_a_circle_of_the_right_radius() {
        let panel = bowl(41);
        let segments = contour_segments(&panel, 0.1 + 0.25);
        assert!(segments.len() > 20, "{} segments", segments.len());
        for [a, b] in &segments {
            for (x, y) in [a, b] {
                let r = (x * x + y * y).sqrt();
                assert!((r - 0.5).abs() < 0.01, "point at radius {r}");
            }
        }
        assert!(contour_segments(&panel, 0.05).is_empty(), "below the minimum");
    }

    #[test]
    fn renders_a_figure_and_refuses_a_ragged_panel() {
        let dir = tempfile::tempdir().unwrap();
        let (png, svg) = (dir.path().join("c.png"), dir.path().join("c.svg"));
        let panel = bowl(11);
        let levels = log_levels(panel.values.iter().copied(), 8);
        let figure = ContourFigure {
            title: "t".into(),
            value_label: "loss".into(),
            x_label: "alpha".into(),
            y_label: "beta".into(),
            rows: vec![vec![Some(panel.clone()), None], vec![Some(panel.clone()), Some(panel.clone())]],
            levels,
        };
        render(&figure, &png, &svg).unwrap();
        assert!(std::fs::metadata(&png).unwrap().len() > 1000);
        assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
        let ragged = ContourFigure { rows: vec![vec![Some(ContourPanel { values: vec![1.0; 3], ..panel })]], ..figure };
        let err = render(&ragged, &png, &svg).unwrap_err().to_string();
        assert!(err.contains("3 values on a 11 x 11 grid"), "{err}");
    }
}
