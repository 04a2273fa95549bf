//! The forest plot of a study's claims: one row per statistic a claim rests on, its estimated
//! difference (a dot) with its 95% interval (a bar), oriented so the claim predicts a positive
//! difference, on the region where the claim holds (shaded): right of zero, or inside the margin
//! of a `similar` claim. Drawn as PNG and SVG, like the error charts.

use super::figure::{plot_err, write_figure, Drawing, Target, FONT};
use super::verdict::Verdict;
use anyhow::{bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Where a row's difference must lie for its claim to hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Region {
    /// Above zero.
    Above,
    /// Inside (-margin, margin).
    Within(f64),
}

/// One statistic of one claim.
#[derive(Debug, Clone, PartialEq)]
pub struct ForestRow {
    /// The row's name (`1. plain-56 - plain-20`).
    pub label: String,
    /// Under the name, smaller (`final training error (points)`).
    pub detail: String,
    /// The estimated difference.
    pub effect: f64,
    /// Its 95% interval; `None` (one seed) draws a hollow dot alone.
    pub interval: Option<(f64, f64)>,
    /// Where the claim holds.
    pub region: Region,
    /// The statistic's verdict: the dot's colour.
    pub verdict: Verdict,
}

/// The whole plot.
#[derive(Debug, Clone, PartialEq)]
pub struct ForestChart {
    /// Shown above the plot.
    pub title: String,
    /// Under the axis.
    pub x_label: String,
    /// Top to bottom.
    pub rows: Vec<ForestRow>,
}

/// Colour of the region where a claim holds.
pub const HOLDS_SHADE: RGBColor = RGBColor(222, 240, 222);
const ROW_HEIGHT: u32 = 46;
const LABEL_WIDTH: u32 = 330;
const WIDTH: u32 = 1100;

/// The plot's size for `rows` rows.
pub fn size(rows: usize) -> (u32, u32) {
    (WIDTH, 130 + ROW_HEIGHT * rows as u32)
}

/// Writes the plot as PNG and SVG (whole or not at all).
pub fn render(chart: &ForestChart, png: &Path, svg: &Path) -> Result<()> {
    if chart.rows.is_empty() {
        bail!("forest plot '{}' has no rows", chart.title);
    }
    if chart.rows.iter().any(|r| !r.effect.is_finite()) {
        bail!("forest plot '{}' has a row without a finite difference", chart.title);
    }
    write_figure(chart, size(chart.rows.len()), png, svg)
}

fn verdict_colour(verdict: Verdict) -> RGBColor {
    match verdict {
        Verdict::Held => RGBColor(44, 140, 44),
        Verdict::NotHeld => RGBColor(200, 30, 30),
        Verdict::Inconclusive => RGBColor(215, 140, 0),
        Verdict::NotMeasured => RGBColor(127, 127, 127),
    }
}

impl ForestChart {
    /// The x range: every dot, bar end, zero and margin, with a margin of a tenth.
    fn x_range(&self) -> (f64, f64) {
        let mut values = vec![0.0];
        for row in &self.rows {
            values.push(row.effect);
            if let Some((low, high)) = row.interval {
                values.extend([low, high]);
            }
            if let Region::Within(m) = row.region {
                values.extend([-m, m]);
            }
        }
        let values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        let (lo, hi) = values.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let pad = ((hi - lo) * 0.1).max(0.05);
        (lo - pad, hi + pad)
    }
}

impl Drawing for ForestChart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, t: Target) -> Result<()> {
        let k = t.k;
        root.fill(&WHITE).map_err(plot_err)?;
        let n = self.rows.len() as f64;
        let (x_lo, x_hi) = self.x_range();
        let mut ctx = ChartBuilder::on(root)
            .caption(&self.title, (FONT, 24 * k).into_font())
            .margin(16 * k)
            .margin_right(28 * k)
            .x_label_area_size(52 * k)
            .y_label_area_size(LABEL_WIDTH * k)
            .build_cartesian_2d(x_lo..x_hi, 0.0..n)
            .map_err(plot_err)?;
        ctx.configure_mesh()
            .x_desc(&self.x_label)
            .disable_y_mesh()
            .y_labels(0)
            .x_labels(9)
            .axis_desc_style((FONT, 18 * k))
            .label_style((FONT, 15 * k))
            .axis_style(BLACK.mix(0.8).stroke_width(k))
            .bold_line_style(BLACK.mix(0.1).stroke_width(k))
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(plot_err)?;
        // Row i sits at y = n - i - 0.5 (the first row on top).
        let centre = |i: usize| n - i as f64 - 0.5;
        for (i, row) in self.rows.iter().enumerate() {
            let (from, to) = match row.region {
                Region::Above => (0.0, x_hi),
                Region::Within(m) => (-m, m),
            };
            let (y0, y1) = (centre(i) - 0.45, centre(i) + 0.45);
            ctx.draw_series(std::iter::once(Rectangle::new([(from, y0), (to, y1)], HOLDS_SHADE.filled())))
                .map_err(plot_err)?;
        }
        let zero = [(0.0, 0.0), (0.0, n)];
        ctx.draw_series(std::iter::once(PathElement::new(zero, BLACK.mix(0.6).stroke_width(k)))).map_err(plot_err)?;
        for (i, row) in self.rows.iter().enumerate() {
            let colour = verdict_colour(row.verdict);
            let y = centre(i);
            let style = colour.stroke_width(3 * k);
            if let Some((low, high)) = row.interval {
                let caps = 0.15;
                let lines = [
                    vec![(low, y), (high, y)],
                    vec![(low, y - caps), (low, y + caps)],
                    vec![(high, y - caps), (high, y + caps)],
                ];
                ctx.draw_series(lines.into_iter().map(|l| PathElement::new(l, style))).map_err(plot_err)?;
            }
            let dot: ShapeStyle = if row.interval.is_some() { colour.filled() } else { colour.stroke_width(2 * k) };
            ctx.draw_series(std::iter::once(Circle::new((row.effect, y), 6 * k, dot))).map_err(plot_err)?;
            // The row's name left of the plotting area, on the drawing's own pixels.
            let (_, py) = ctx.backend_coord(&(x_lo, y));
            let label: TextStyle = (FONT, 16 * k).into_font().into();
            let detail: TextStyle = (FONT, 13 * k).into_font().color(&BLACK.mix(0.6));
            let x = (16 * k) as i32;
            root.draw(&Text::new(row.label.clone(), (x, py - (15 * k) as i32), label)).map_err(plot_err)?;
            root.draw(&Text::new(row.detail.clone(), (x, py + (3 * k) as i32), detail)).map_err(plot_err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_is_drawn_on_its_shaded_region() {
        let dir = tempfile::tempdir().unwrap();
        let row = |label: &str, effect, interval, region, verdict| ForestRow {
            label: label.into(),
            detail: "final training error (points)".into(),
            effect,
            interval,
            region,
            verdict,
        };
        let chart = ForestChart {
            title: "claims".into(),
            x_label: "difference".into(),
            rows: vec![
                row("1. held", 5.0, Some((2.0, 8.0)), Region::Above, Verdict::Held),
                row("2. reversed", -4.0, Some((-6.0, -2.0)), Region::Above, Verdict::NotHeld),
                row("3. noise", 1.0, Some((-3.0, 5.0)), Region::Above, Verdict::Inconclusive),
                row("4. one seed", 2.0, None, Region::Within(1.0), Verdict::Inconclusive),
            ],
        };
        let (png, svg) = (dir.path().join("f.png"), dir.path().join("f.svg"));
        render(&chart, &png, &svg).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        for label in ["1. held", "2. reversed", "3. noise", "4. one seed"] {
            assert!(text.contains(label), "{label}");
        }
        let image = image::open(&png).unwrap().to_rgb8();
        assert_eq!(image.dimensions(), size(4));
        let near = |c: RGBColor| {
            image.pixels().filter(|p| (0..3).all(|i| (p.0[i] as i32 - [c.0, c.1, c.2][i] as i32).abs() <= 6)).count()
        };
        assert!(near(HOLDS_SHADE) > 20_000, "the region where claims hold is shaded: {}", near(HOLDS_SHADE));
        for verdict in [Verdict::Held, Verdict::NotHeld, Verdict::Inconclusive] {
            assert!(
                near(verdict_colour(verdict)) > 200,
                "{verdict:?}'s bars and dots: {}",
                near(verdict_colour(verdict))
            );
        }
        let empty = ForestChart { rows: vec![], ..chart };
        assert!(render(&empty, &png, &svg).is_err());
    }
}
