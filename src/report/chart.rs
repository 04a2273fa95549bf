//! Error-vs-iteration charts in the style of He et al. 2015, Fig. 1: one colour per
//! model, training error dashed, test error solid.
//!
//! Each chart is written as PNG and SVG. Text is drawn with a bundled DejaVu Sans font
//! through plotters' `ab_glyph` feature, so rendering needs no system fonts or fontconfig.

use std::ops::Range;
use std::path::Path;

use anyhow::{bail, Result};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::{DashedPathElement, DynElement, IntoDynElement};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::figure::{plot_err, write_figure, Drawing, Target, FONT};

/// (x, y) in data units.
type Point = (f64, f64);

/// Output size in pixels (PNG) and user units (SVG) of a one-panel chart.
pub const CHART_SIZE: (u32, u32) = (960, 640);
/// Size of each panel of a figure with several side by side.
pub const PANEL_SIZE: (u32, u32) = (640, 640);

/// The size of a figure of `panels` side by side.
pub fn figure_size(panels: usize) -> (u32, u32) {
    if panels <= 1 {
        CHART_SIZE
    } else {
        (PANEL_SIZE.0 * panels as u32, PANEL_SIZE.1)
    }
}

/// One line on the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// Legend label, e.g. "plain-20 train".
    pub label: String,
    /// Colour index: one colour per series (e.g. per depth/model).
    pub series: usize,
    /// Training error dashed, test error solid (as in He et al. 2015 Fig. 1).
    pub dashed: bool,
    /// Markers along the line: the second cue where two curves share a colour (a plain net
    /// beside the residual net of its depth).
    pub marker: bool,
    /// (iteration, error %). Non-finite points are skipped.
    pub points: Vec<(f64, f64)>,
    /// (iteration, low, high): a shaded band around the curve (e.g. the range over seeds);
    /// empty for none.
    pub band: Vec<(f64, f64, f64)>,
}

/// A whole figure: title, axis labels and curves.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorChart {
    /// Shown above the plot.
    pub title: String,
    /// E.g. "iteration".
    pub x_label: String,
    /// E.g. "error (%)".
    pub y_label: String,
    /// The curves, drawn in order (later ones on top).
    pub curves: Vec<Curve>,
    /// None: fitted to both ends of the data (see `fitted`).
    pub y_range: Option<(f64, f64)>,
    /// Linear, or logarithmic (where errors span decades, or small differences near 0% matter).
    pub y_scale: Scale,
    /// What the shaded bands show (`band: 95% CI of the mean over 3 seeds`), as a legend
    /// entry; `None` for no entry.
    pub band_label: Option<String>,
}

/// How values map onto the vertical axis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scale {
    /// Equal steps for equal differences.
    #[default]
    Linear,
    /// Equal steps for equal ratios (ticks at 1, 2, 5 x 10^k); values at or below 0 cannot be
    /// shown and are left out (a band's lower edge there runs along the bottom of the axis).
    Log,
}

impl Scale {
    /// A value's position on the axis (the axis is drawn linear in these units).
    fn position_of(self, v: f64) -> f64 {
        match self {
            Scale::Linear => v,
            Scale::Log if v > 0.0 => v.log10(),
            Scale::Log => f64::NEG_INFINITY,
        }
    }

    /// The value at a position on the axis.
    fn value_at(self, v: f64) -> f64 {
        match self {
            Scale::Linear => v,
            Scale::Log => 10f64.powf(v),
        }
    }
}

/// One colour per network across every chart of a study, in the order first named: a plain net
/// and the residual net of its depth (`plain-20`, `resnet-20`) share one, as in the paper's
/// figures (the plain one is drawn with markers), and every other network (`resnet-20-B`,
/// `resnet-110-pre`) has its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Colours(Vec<String>);

impl Colours {
    /// The map of these networks (repeats are one network).
    pub fn of<'a>(networks: impl IntoIterator<Item = &'a str>) -> Colours {
        let mut keys: Vec<String> = Vec::new();
        for name in networks {
            let key = Self::key(name);
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        Colours(keys)
    }

    /// `plain-20` and `resnet-20` are "20"; `resnet-20-B` is "20-B"; others their name.
    fn key(name: &str) -> String {
        name.strip_prefix("plain-").or_else(|| name.strip_prefix("resnet-")).unwrap_or(name).to_string()
    }

    /// The network's colour index (its series); a network not in the map gets the next one.
    pub fn of_network(&self, name: &str) -> usize {
        let key = Self::key(name);
        self.0.iter().position(|k| *k == key).unwrap_or(self.0.len())
    }
}

/// Tableau-10 colours: orange and blue first, like the paper's figures.
const PALETTE: [RGBColor; 10] = [
    RGBColor(255, 127, 14),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

const LINE_WIDTH: u32 = 2;
/// Dash and gap lengths in pixels for training curves.
const DASH: u32 = 9;
const GAP: u32 = 5;
/// Length of the line sample drawn in front of each legend label.
const LEGEND_SAMPLE: u32 = 28;

const TITLE_SIZE: u32 = 26;
const AXIS_DESC_SIZE: u32 = 20;
const TICK_SIZE: u32 = 16;
const LEGEND_SIZE: u32 = 16;

/// Writes the same chart as PNG and SVG. Creates nothing else. Writes each file to a temporary
/// name in the same directory and renames it into place, so a failure never leaves a half chart.
pub fn render(chart: &ErrorChart, png: &Path, svg: &Path) -> Result<()> {
    render_panels(std::slice::from_ref(chart), png, svg)
}

/// Writes `charts` side by side as one figure (PNG and SVG), e.g. Figure 6's three panels.
pub fn render_panels(charts: &[ErrorChart], png: &Path, svg: &Path) -> Result<()> {
    if charts.is_empty() {
        bail!("a figure needs at least one panel");
    }
    let mut plans = charts.iter().map(Plan::new).collect::<Result<Vec<_>>>()?;
    // Panels fitted to their data share one error axis, so they compare at a glance.
    if charts.iter().all(|c| c.y_range.is_none()) {
        let (lo, hi) = plans.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p.y.start), hi.max(p.y.end)));
        for plan in &mut plans {
            plan.y = lo..hi;
        }
    }
    write_figure(&Panels { charts, plans: &plans }, figure_size(charts.len()), png, svg)
}

/// Finite data and axis ranges, computed before any file is touched.
struct Plan {
    curves: Vec<Vec<Point>>,
    /// Each curve's band as a closed polygon (upper edge forward, lower edge back).
    bands: Vec<Vec<Point>>,
    x: Range<f64>,
    /// In axis units (log10 of the values on a log axis).
    y: Range<f64>,
    scale: Scale,
}

impl Plan {
    fn new(chart: &ErrorChart) -> Result<Self> {
        let scale = chart.y_scale;
        // Every y in axis units from here on: the axis is drawn linear in them.
        let curves: Vec<Vec<Point>> = chart
            .curves
            .iter()
            .map(|c| {
                let on_axis = c.points.iter().map(|&(x, y)| (x, scale.position_of(y)));
                on_axis.filter(|&(x, y)| x.is_finite() && y.is_finite()).collect()
            })
            .collect();
        let bands: Vec<Vec<Point>> = chart
            .curves
            .iter()
            .map(|c| {
                // A lower edge at or below 0 on a log axis is -inf: drawn along the axis' bottom.
                let on_axis: Vec<(f64, f64, f64)> =
                    c.band.iter().map(|&(x, lo, hi)| (x, scale.position_of(lo), scale.position_of(hi))).collect();
                let drawable: Vec<&(f64, f64, f64)> =
                    on_axis.iter().filter(|(x, lo, hi)| x.is_finite() && !lo.is_nan() && hi.is_finite()).collect();
                let upper = drawable.iter().map(|&&(x, _, hi)| (x, hi));
                let lower = drawable.iter().rev().map(|&&(x, lo, _)| (x, lo));
                upper.chain(lower).collect()
            })
            .collect();
        let all = || curves.iter().flatten().chain(bands.iter().flatten()).filter(|p| p.1.is_finite());
        if all().next().is_none() {
            bail!("chart '{}' has no data", chart.title);
        }
        let max_x = all().map(|p| p.0).fold(f64::MIN, f64::max);
        let min_x = all().map(|p| p.0).fold(f64::MAX, f64::min);
        let max_y = all().map(|p| p.1).fold(f64::MIN, f64::max);
        let min_y = all().map(|p| p.1).fold(f64::MAX, f64::min);
        let x = non_empty(min_x.min(0.0), max_x);
        let y = match (chart.y_range, scale) {
            (Some((lo, hi)), Scale::Log) if lo > 0.0 && lo < hi && hi.is_finite() => lo.log10()..hi.log10(),
            (Some((lo, hi)), Scale::Log) => {
                bail!("chart '{}' has y range {lo}..{hi}; a log axis needs 0 < low < high", chart.title)
            }
            (Some((lo, hi)), Scale::Linear) if lo.is_finite() && hi.is_finite() && lo < hi => lo..hi,
            (Some((lo, hi)), Scale::Linear) => bail!("chart '{}' has invalid y_range {lo}..{hi}", chart.title),
            (None, Scale::Linear) => fitted(min_y, max_y),
            (None, Scale::Log) => fitted_log(min_y, max_y),
        };
        Ok(Plan { curves, bands, x, y, scale })
    }
}

/// Both ends of the data with a margin of a twentieth of its span (at least a hundredth of its
/// magnitude), kept inside 0-100 where the data is (errors in percent), so runs that never leave
/// 75-90% fill the chart instead of a flat line at the top of an empty one.
fn fitted(min: f64, max: f64) -> Range<f64> {
    let margin = ((max - min) * 0.05).max(0.01 * min.abs().max(max.abs())).max(1e-9);
    let (mut lo, mut hi) = (min - margin, max + margin);
    if min >= 0.0 {
        lo = lo.max(0.0);
    }
    if max <= 100.0 {
        hi = hi.min(100.0);
    }
    non_empty(lo, hi)
}

/// A log axis (in decades, `min`/`max` log10 of the data) with a twentieth of its span on either
/// side (at least a twentieth of a decade), kept under 100% where the data is.
fn fitted_log(min: f64, max: f64) -> Range<f64> {
    let margin = ((max - min) * 0.05).max(0.05);
    let mut hi = max + margin;
    if max <= 2.0 {
        hi = hi.min(2.0);
    }
    non_empty(min - margin, hi)
}

/// The tick positions (axis units) of `range`: round numbers on a linear axis; on a log axis
/// 1, 2 and 5 times the powers of ten inside it (every integer multiple where those are too
/// few, round numbers where the axis spans less than a factor of two).
fn y_ticks(range: &Range<f64>, scale: Scale) -> Vec<f64> {
    if scale == Scale::Linear {
        return linear_ticks(range.start, range.end);
    }
    let log_ticks = |multiples: &[f64]| -> Vec<f64> {
        let (first, last) = (range.start.floor() as i32, range.end.ceil() as i32);
        (first..=last)
            .flat_map(|decade| multiples.iter().map(move |m| (m * 10f64.powi(decade)).log10()))
            .filter(|v| range.start <= *v && *v <= range.end)
            .collect()
    };
    let coarse = log_ticks(&[1.0, 2.0, 5.0]);
    if coarse.len() >= 3 {
        return coarse;
    }
    let fine = log_ticks(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    if fine.len() >= 3 {
        return fine;
    }
    let (lo, hi) = (scale.value_at(range.start), scale.value_at(range.end));
    linear_ticks(lo, hi).into_iter().map(|v| scale.position_of(v)).filter(|v| v.is_finite()).collect()
}

/// Multiples of a round step (1, 2 or 5 times a power of ten) in `lo..=hi`, 4 to 9 of them.
fn linear_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let raw = (hi - lo) / 8.0;
    if !(raw.is_finite() && raw > 0.0) {
        return vec![lo];
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(raw);
    let (first, last) = ((lo / step - 1e-9).ceil() as i64, (hi / step + 1e-9).floor() as i64);
    (first..=last).map(|k| k as f64 * step).collect()
}

/// plotters needs a non-degenerate range, e.g. when all data sits at x = 0.
fn non_empty(lo: f64, hi: f64) -> Range<f64> {
    if hi > lo {
        lo..hi
    } else {
        lo..lo + 1.0
    }
}

/// Error charts side by side, each in its own panel, left to right.
struct Panels<'a> {
    charts: &'a [ErrorChart],
    plans: &'a [Plan],
}

impl Drawing for Panels<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, t: Target) -> Result<()> {
        root.fill(&WHITE).map_err(plot_err)?;
        let areas = root.split_evenly((1, self.charts.len()));
        // Every panel's legend strip as tall as the tallest, so the axes line up.
        let mut legend_height = 0;
        for ((area, chart), plan) in areas.iter().zip(self.charts).zip(self.plans) {
            legend_height = legend_height.max(LegendLayout::of(area, &legend_entries(chart, plan), t.k)?.height);
        }
        for ((area, chart), plan) in areas.iter().zip(self.charts).zip(self.plans) {
            draw(area, chart, plan, legend_height, t)?;
        }
        Ok(())
    }
}

/// Draws one panel, its legend in a strip of `legend_height` pixels (or its own height, if more)
/// below the axes.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &ErrorChart,
    plan: &Plan,
    legend_height: u32,
    t: Target,
) -> Result<()> {
    let k = t.k;
    root.fill(&WHITE).map_err(plot_err)?;
    // The legend gets a strip of its own below the axes, so it never covers a curve.
    let entries = legend_entries(chart, plan);
    let layout = LegendLayout::of(root, &entries, k)?;
    let height = root.dim_in_pixel().1;
    let strip = layout.height.max(legend_height);
    let (plot_area, legend_area) = root.split_vertically(height.saturating_sub(strip) as i32);
    let mut ctx = ChartBuilder::on(&plot_area)
        .caption(&chart.title, (FONT, TITLE_SIZE * k).into_font())
        .margin(18 * k)
        .margin_right(32 * k)
        .x_label_area_size(56 * k)
        .y_label_area_size(72 * k)
        .build_cartesian_2d(plan.x.clone(), TickedAxis::new(&plan.y, plan.scale))
        .map_err(plot_err)?;

    draw_axes(&mut ctx, chart, plan, k)?;
    // Bands first, so every line stays visible on top of them.
    for (curve, band) in chart.curves.iter().zip(&plan.bands) {
        if band.len() > 2 {
            let colour = PALETTE[curve.series % PALETTE.len()].mix(0.15);
            let clamped: Vec<Point> = band.iter().map(|&(x, y)| (x, y.clamp(plan.y.start, plan.y.end))).collect();
            ctx.draw_series(std::iter::once(Polygon::new(clamped, colour.filled()))).map_err(plot_err)?;
        }
    }
    for (curve, points) in chart.curves.iter().zip(&plan.curves) {
        draw_curve(&mut ctx, curve, points, plan, t)?;
    }
    draw_legend(&legend_area, &entries, &layout, k)
}

/// Grid, ticks, axis descriptions and a closed frame.
fn draw_axes<'a, DB: DrawingBackend + 'a>(
    ctx: &mut Ctx<'a, DB>,
    chart: &ErrorChart,
    plan: &Plan,
    k: u32,
) -> Result<()> {
    // Long schedules in units of 1e4 iterations, as the paper's figures ("iter. (1e4)").
    let per_1e4 = plan.x.end > 10_000.0;
    let x_fmt = |v: &f64| format_x(*v, per_1e4);
    let x_desc = if per_1e4 { format!("{} (1e4)", chart.x_label) } else { chart.x_label.clone() };
    let y_fmt = |v: &f64| format_number(plan.scale.value_at(*v));
    let grid = BLACK.mix(0.12).stroke_width(k);
    ctx.configure_mesh()
        .x_desc(&x_desc)
        .y_desc(&chart.y_label)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .x_labels(9)
        .y_labels(11)
        .axis_desc_style((FONT, AXIS_DESC_SIZE * k))
        .label_style((FONT, TICK_SIZE * k))
        .axis_style(BLACK.mix(0.8).stroke_width(k))
        .set_all_tick_mark_size(5 * k)
        .bold_line_style(grid)
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(plot_err)?;

    // plotters only draws the left and bottom axes; close the frame like matplotlib does.
    let (x, y) = (&plan.x, &plan.y);
    let frame = [(x.start, y.end), (x.end, y.end), (x.end, y.start)];
    ctx.draw_series(std::iter::once(PathElement::new(frame, BLACK.mix(0.8).stroke_width(k)))).map_err(plot_err)?;
    Ok(())
}

/// One legend entry: a sample of the curve (or a shaded box for the bands) and its label.
struct LegendEntry {
    label: String,
    colour: RGBColor,
    dashed: bool,
    marker: bool,
    /// The bands' entry: a shaded box instead of a line.
    band: bool,
}

/// Curves with data (a label next to nothing would mislead), then the bands' entry where the
/// chart has bands.
fn legend_entries(chart: &ErrorChart, plan: &Plan) -> Vec<LegendEntry> {
    let mut entries: Vec<LegendEntry> = chart
        .curves
        .iter()
        .zip(&plan.curves)
        .filter(|(_, points)| !points.is_empty())
        .map(|(c, _)| LegendEntry {
            label: c.label.clone(),
            colour: PALETTE[c.series % PALETTE.len()],
            dashed: c.dashed,
            marker: c.marker,
            band: false,
        })
        .collect();
    if let Some(label) = chart.band_label.as_ref().filter(|_| plan.bands.iter().any(|b| b.len() > 2)) {
        entries.push(LegendEntry {
            label: label.clone(),
            colour: RGBColor(0, 0, 0),
            dashed: false,
            marker: false,
            band: true,
        });
    }
    entries
}

/// The legend's grid below the plot: columns as wide as the widest entry, as many as fit the
/// panel's width, filled row by row.
struct LegendLayout {
    columns: usize,
    column_width: u32,
    row_height: u32,
    /// Curve entries drawn; the rest are counted in a last line (the strip is at most
    /// [`LEGEND_SHARE`] of the panel).
    shown: usize,
    /// Curve entries not drawn.
    more: usize,
    /// Whether the bands' entry is drawn (on its own row).
    band: bool,
    /// The strip's height, padding included (0 without entries).
    height: u32,
}

/// The most of a panel's height the legend may take.
const LEGEND_SHARE: f64 = 0.4;

impl LegendLayout {
    fn of<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, entries: &[LegendEntry], k: u32) -> Result<LegendLayout> {
        let none =
            LegendLayout { columns: 1, column_width: 0, row_height: 0, shown: 0, more: 0, band: false, height: 0 };
        if entries.is_empty() {
            return Ok(none);
        }
        let font = legend_font(k);
        // The bands' entry has a row of its own, so its long label does not widen the grid.
        let curves: Vec<&LegendEntry> = entries.iter().filter(|e| !e.band).collect();
        let has_band = curves.len() < entries.len();
        let mut widest = 0;
        for entry in &curves {
            widest = widest.max(area.estimate_text_size(&entry.label, &font).map_err(plot_err)?.0);
        }
        let (width, height) = area.dim_in_pixel();
        let column_width = (LEGEND_SAMPLE + 10 + 24) * k + widest;
        let usable = width.saturating_sub(2 * LEGEND_PADDING * k);
        let columns = ((usable / column_width.max(1)) as usize).clamp(1, curves.len().max(1));
        let row_height = (LEGEND_SIZE + 8) * k;
        let max_rows = (((f64::from(height) * LEGEND_SHARE) as u32).saturating_sub(2 * LEGEND_PADDING * k) / row_height)
            .max(1) as usize;
        let wanted = curves.len().div_ceil(columns) + usize::from(has_band);
        let (shown, band, rows) = if wanted <= max_rows {
            (curves.len(), has_band, wanted)
        } else {
            // One row for the line that counts what is left out.
            ((max_rows - 1) * columns, false, max_rows)
        };
        let more = curves.len() - shown;
        let height = rows as u32 * row_height + 2 * LEGEND_PADDING * k;
        Ok(LegendLayout { columns, column_width, row_height, shown, more, band, height })
    }
}

const LEGEND_PADDING: u32 = 8;

fn legend_font(k: u32) -> TextStyle<'static> {
    (FONT, LEGEND_SIZE * k).into_font().into()
}

/// The legend in its strip below the axes, the grid centred.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
    layout: &LegendLayout,
    k: u32,
) -> Result<()> {
    let width = area.dim_in_pixel().0;
    let grid_width = layout.columns as u32 * layout.column_width;
    let left = width.saturating_sub(grid_width) / 2;
    let font = legend_font(k).pos(Pos::new(HPos::Left, VPos::Center));
    let sample = (LEGEND_SAMPLE * k) as i32;
    let curve_rows = layout.shown.div_ceil(layout.columns) as u32;
    let shown = entries.iter().filter(|e| !e.band).take(layout.shown);
    let band = entries.iter().filter(|e| e.band && layout.band);
    for (i, entry) in shown.chain(band).enumerate() {
        let (column, row) = match entry.band {
            true => (0, curve_rows),
            false => ((i % layout.columns) as u32, (i / layout.columns) as u32),
        };
        let x = (left + column * layout.column_width) as i32;
        let y = (LEGEND_PADDING * k + row * layout.row_height + layout.row_height / 2) as i32;
        if entry.band {
            let half = (6 * k) as i32;
            area.draw(&Rectangle::new([(x, y - half), (x + sample, y + half)], BLACK.mix(0.15).filled()))
                .map_err(plot_err)?;
        } else {
            let style = entry.colour.stroke_width(LINE_WIDTH * k);
            let dashed = entry.dashed.then_some(((DASH * k) as i32, (GAP * k) as i32));
            area.draw(&legend_sample::<DB>((x, y), sample, style, dashed)).map_err(plot_err)?;
            if entry.marker {
                area.draw(&Circle::new((x + sample / 2, y), (4 * k) as i32, entry.colour.filled()))
                    .map_err(plot_err)?;
            }
        }
        area.draw(&Text::new(entry.label.clone(), (x + sample + (10 * k) as i32, y), font.clone()))
            .map_err(plot_err)?;
    }
    if layout.more > 0 {
        let y = (LEGEND_PADDING * k + curve_rows * layout.row_height + layout.row_height / 2) as i32;
        let text = format!("... and {} more curves (every value is in the CSV)", layout.more);
        area.draw(&Text::new(text, (left as i32, y), font.clone())).map_err(plot_err)?;
    }
    Ok(())
}

/// Pixel position; plotters uses this type but does not re-export its name.
type BackendCoord = (i32, i32);

/// The y axis carries its own ticks (see `y_ticks`), so a log axis and a linear one draw alike.
type Ctx<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, TickedAxis>>;

/// A linear axis (in axis units) whose grid lines and labels sit at ticks of our own.
struct TickedAxis {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
}

impl TickedAxis {
    fn new(range: &Range<f64>, scale: Scale) -> TickedAxis {
        TickedAxis { inner: range.clone().into(), ticks: y_ticks(range, scale) }
    }
}

impl Ranged for TickedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // Bold lines only: the light grid is not drawn.
        if hint.weight().allow_light_points() {
            return Vec::new();
        }
        self.ticks.clone()
    }

    fn range(&self) -> Range<f64> {
        self.inner.range()
    }
}

fn draw_curve<'a, DB: DrawingBackend + 'a>(
    ctx: &mut Ctx<'a, DB>,
    curve: &Curve,
    points: &[Point],
    plan: &Plan,
    t: Target,
) -> Result<()> {
    // A curve without data gets no legend entry: a label next to nothing would mislead.
    if points.is_empty() {
        return Ok(());
    }
    let colour = PALETTE[curve.series % PALETTE.len()];
    let style = colour.stroke_width(LINE_WIDTH * t.k);
    let (dash, gap) = (DASH * t.k, GAP * t.k);

    // plotters clamps out-of-range points onto the frame, which would draw flat lines
    // along it when `y_range` is set; cut the curve at the frame instead.
    let mut runs = clip_y(points, &plan.y);
    if curve.dashed {
        let (w, h) = ctx.plotting_area().dim_in_pixel();
        let px_per_unit = (f64::from(w) / (plan.x.end - plan.x.start), f64::from(h) / (plan.y.end - plan.y.start));
        let (dash, gap) = (f64::from(dash), f64::from(gap));
        runs = runs.iter().flat_map(|run| dashes(run, dash, gap, px_per_unit)).collect();
    }
    draw_runs(ctx, &runs, style, t)?;

    if curve.marker {
        // About a dozen markers whatever the number of points, so a long run stays a line.
        let step = (points.len() / 12).max(1);
        let marks = points.iter().step_by(step).filter(|p| in_range(p.1, &plan.y));
        ctx.draw_series(marks.map(|p| Circle::new(*p, 4 * t.k, colour.filled()))).map_err(plot_err)?;
    }
    // A line through one point draws nothing; mark it so the value is still visible.
    if let [p] = points {
        if in_range(p.1, &plan.y) {
            let marker = Circle::new(*p, 3 * t.k, colour.filled());
            ctx.draw_series(std::iter::once(marker)).map_err(plot_err)?;
        }
    }
    Ok(())
}

/// Draws polylines. plotters' bitmap backend turns a thick polyline into one polygon whose
/// inner corner at a sharp turn shoots far out, so noisy curves get long spikes. For
/// bitmaps each segment is therefore a separate straight stroke, with a dot on every
/// vertex as a round join. SVG viewers join lines properly and get plain polylines.
fn draw_runs<'a, DB: DrawingBackend + 'a>(
    ctx: &mut Ctx<'a, DB>,
    runs: &[Vec<Point>],
    style: ShapeStyle,
    t: Target,
) -> Result<()> {
    if !t.round_joins {
        let lines = runs.iter().map(|run| PathElement::new(run.clone(), style));
        ctx.draw_series(lines).map_err(plot_err)?;
        return Ok(());
    }
    let segments = runs.iter().flat_map(|run| run.windows(2)).map(|seg| PathElement::new(seg.to_vec(), style));
    ctx.draw_series(segments).map_err(plot_err)?;
    let joins = runs
        .iter()
        .filter(|run| run.len() > 2)
        .flat_map(|run| &run[1..run.len() - 1])
        .map(|p| Circle::new(*p, style.stroke_width / 2, style.filled()));
    ctx.draw_series(joins).map_err(plot_err)?;
    Ok(())
}

fn in_range(y: f64, range: &Range<f64>) -> bool {
    range.start <= y && y <= range.end
}

/// Splits a polyline into the runs that lie inside the horizontal band `range`, cutting
/// segments exactly where they cross it.
fn clip_y(points: &[Point], range: &Range<f64>) -> Vec<Vec<Point>> {
    if let [p] = points {
        return if in_range(p.1, range) { vec![vec![*p]] } else { vec![] };
    }
    let mut runs = vec![];
    let mut run: Vec<Point> = vec![];
    for seg in points.windows(2) {
        match clip_segment(seg[0], seg[1], range) {
            Some((a, b)) => {
                // A run continues only while segments join at the same point.
                if run.last() != Some(&a) {
                    push_run(&mut runs, &mut run);
                    run.push(a);
                }
                run.push(b);
            }
            None => push_run(&mut runs, &mut run),
        }
    }
    push_run(&mut runs, &mut run);
    runs
}

fn push_run(runs: &mut Vec<Vec<Point>>, run: &mut Vec<Point>) {
    if run.len() > 1 {
        runs.push(std::mem::take(run));
    }
    run.clear();
}

/// The part of segment `p`-`q` inside the band, if any. Unclipped ends are returned
/// unchanged (not recomputed), so consecutive segments still meet exactly.
fn clip_segment(p: Point, q: Point, range: &Range<f64>) -> Option<(Point, Point)> {
    let dy = q.1 - p.1;
    let (mut t0, mut t1) = (0.0, 1.0);
    if dy == 0.0 {
        if !in_range(p.1, range) {
            return None;
        }
    } else {
        let (ta, tb) = ((range.start - p.1) / dy, (range.end - p.1) / dy);
        t0 = f64::max(t0, ta.min(tb));
        t1 = f64::min(t1, ta.max(tb));
        if t0 > t1 {
            return None;
        }
    }
    let at = |t: f64| {
        if t <= 0.0 {
            p
        } else if t >= 1.0 {
            q
        } else {
            (p.0 + t * (q.0 - p.0), p.1 + t * dy)
        }
    };
    Some((at(t0), at(t1)))
}

/// Cuts a polyline into dashes of `on` pixels separated by `off` pixels, measuring lengths
/// on screen (`px_per_unit` for x and y) so dashes look the same at any slope.
fn dashes(run: &[Point], on: f64, off: f64, px_per_unit: (f64, f64)) -> Vec<Vec<Point>> {
    debug_assert!(on > 0.0 && off > 0.0, "zero dash or gap would never advance");
    let mut out = vec![];
    let Some(&first) = run.first() else {
        return out;
    };
    let mut dash = vec![first];
    let (mut drawing, mut left) = (true, on);
    for seg in run.windows(2) {
        let (mut a, b) = (seg[0], seg[1]);
        let mut len = f64::hypot((b.0 - a.0) * px_per_unit.0, (b.1 - a.1) * px_per_unit.1);
        // Each pass ends the current dash or gap inside this segment.
        while len > left {
            let t = left / len;
            let cut = (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
            if drawing {
                dash.push(cut);
                out.push(std::mem::take(&mut dash));
            } else {
                dash = vec![cut];
            }
            (a, len) = (cut, len - left);
            drawing = !drawing;
            left = if drawing { on } else { off };
        }
        left -= len;
        if drawing {
            dash.push(b);
        }
    }
    if drawing && dash.len() > 1 {
        out.push(dash);
    }
    out
}

/// The short line in front of a legend label, dashed like the curve it names.
fn legend_sample<DB: DrawingBackend>(
    (x, y): BackendCoord,
    len: i32,
    style: ShapeStyle,
    dashed: Option<(i32, i32)>,
) -> DynElement<'static, DB, BackendCoord> {
    let pts = vec![(x, y), (x + len, y)];
    match dashed {
        Some((dash, gap)) => DashedPathElement::new(pts, dash, gap, style).into_dyn(),
        None => PathElement::new(pts, style).into_dyn(),
    }
}

/// Iteration ticks: "32k" when the axis goes past 10,000, plain numbers otherwise.
fn format_x(v: f64, per_1e4: bool) -> String {
    if per_1e4 {
        format_number(v / 1e4)
    } else {
        format_number(v)
    }
}

/// Integers without a decimal point; otherwise at most two decimals (two significant digits
/// below 0.1, so a log axis' 0.001 is not 0), trailing zeros cut.
fn format_number(v: f64) -> String {
    let rounded = v.round();
    if (v - rounded).abs() < 1e-9 * v.abs().max(1.0) {
        // `+ 0.0` turns -0 into 0.
        format!("{}", rounded + 0.0)
    } else {
        let decimals = if v.abs() < 0.1 { (-v.abs().log10().floor()) as usize + 1 } else { 2 };
        let s = format!("{v:.decimals$}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fresh directory per test; removed at the end of a passing test.
    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("reslab-chart-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Roughly the shape of a training run: error decaying over 64k iterations.
    fn decay(start: f64, end: f64, offset: f64) -> Vec<(f64, f64)> {
        (0..=640)
            .map(|i| {
                let x = i as f64 * 100.0;
                let y = end + (start - end) * (-x / 9000.0).exp() + offset;
                (x, y)
            })
            .collect()
    }

    fn two_series() -> ErrorChart {
        let curve = |label: &str, series, dashed, offset| Curve {
            label: label.to_string(),
            series,
            dashed,
            points: decay(90.0, 8.0 + 3.0 * series as f64, offset),
            marker: false,
            band: vec![],
        };
        ErrorChart {
            title: "CIFAR-10, plain networks".to_string(),
            x_label: "iteration".to_string(),
            y_label: "error (%)".to_string(),
            curves: vec![
                curve("plain-20 train", 0, true, -4.0),
                curve("plain-20 test", 0, false, 0.0),
                curve("plain-56 train", 1, true, -4.0),
                curve("plain-56 test", 1, false, 0.0),
            ],
            y_range: None,
            y_scale: Scale::Linear,
            band_label: None,
        }
    }

    /// Width and height from the IHDR chunk, which must directly follow the signature.
    fn png_size(bytes: &[u8]) -> (u32, u32) {
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
        assert_eq!(&bytes[12..16], b"IHDR", "IHDR chunk first");
        let be = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap());
        (be(&bytes[16..20]), be(&bytes[20..24]))
    }

    #[test]
    fn renders_png_and_svg() {
        let dir = scratch_dir("both");
        let (png, svg) = (dir.join("fig1.png"), dir.join("fig1.svg"));
        render(&two_series(), &png, &svg).unwrap();

        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(png_size(&bytes), CHART_SIZE);
        assert!(bytes.len() > 10_000, "PNG only {} bytes", bytes.len());

        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg") || text.starts_with("<?xml"));
        assert!(text.contains("<text"));
        assert!(text.contains("plain-20 train"), "legend label in SVG");
        assert!(text.contains("iteration (1e4)"), "a long schedule is in units of 1e4 iterations, as the paper's");

        // Nothing but the two charts: the temporaries were renamed away.
        let mut names: Vec<_> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["fig1.png", "fig1.svg"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn no_data_is_an_error() {
        let dir = scratch_dir("empty");
        let mut chart = two_series();
        chart.title = "nothing".to_string();
        for c in &mut chart.curves {
            c.points = vec![(f64::NAN, 1.0), (2.0, f64::INFINITY)];
        }
        let err = render(&chart, &dir.join("a.png"), &dir.join("a.svg")).unwrap_err();
        assert_eq!(err.to_string(), "chart 'nothing' has no data");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn nan_points_are_skipped() {
        let mut chart = two_series();
        chart.curves[0].points.push((f64::NAN, 5.0));
        chart.curves[1].points.insert(3, (1.0, f64::NEG_INFINITY));
        let plan = Plan::new(&chart).unwrap();
        assert_eq!(plan.curves[0].len(), chart.curves[0].points.len() - 1);
        assert_eq!(plan.curves[1].len(), chart.curves[1].points.len() - 1);
        assert!(plan.curves.iter().flatten().all(|p| p.0.is_finite() && p.1.is_finite()));
        assert_eq!(plan.x, 0.0..64_000.0);

        let dir = scratch_dir("nan");
        render(&chart, &dir.join("n.png"), &dir.join("n.svg")).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn empty_and_single_point_curves_render() {
        let mut chart = two_series();
        chart.curves[0].points.clear();
        chart.curves[1].points = vec![(0.0, 50.0)];
        chart.curves.truncate(2);
        let plan = Plan::new(&chart).unwrap();
        // All data at x = 0 still gives a usable axis.
        assert_eq!(plan.x, 0.0..1.0);
        assert_eq!(plan.y, 49.5..50.5, "one value: a hundredth of it either side");

        let dir = scratch_dir("sparse");
        render(&chart, &dir.join("s.png"), &dir.join("s.svg")).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_directory_names_the_file() {
        let dir = std::env::temp_dir().join("reslab-chart-test-no-such-dir/x");
        let png = dir.join("y.png");
        let err = render(&two_series(), &png, &dir.join("y.svg")).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(&format!("writing chart {}", png.display())), "{msg}");
    }

    #[test]
    fn failure_leaves_no_partial_files() {
        let dir = scratch_dir("atomic");
        std::fs::write(dir.join("old.png"), b"old").unwrap();
        let svg = dir.join("missing/old.svg");
        let err = render(&two_series(), &dir.join("old.png"), &svg).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(&format!("writing chart {}", svg.display())), "{msg}");
        // The old PNG is untouched and no temporary is left behind.
        assert_eq!(std::fs::read(dir.join("old.png")).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn y_range_defaults_and_validation() {
        let mut chart = two_series();
        let y = Plan::new(&chart).unwrap().y;
        assert!(y.start == 0.0 && (y.end - 94.3).abs() < 0.1, "fitted with a margin, kept above 0: {y:?}");
        chart.curves[1].points.push((100.0, 99.0));
        assert_eq!(Plan::new(&chart).unwrap().y.end, 100.0, "capped at 100");
        // Runs that never leave 75-90% fill the chart.
        for curve in &mut chart.curves {
            curve.points = vec![(0.0, 90.0), (40.0, 75.0)];
        }
        let y = Plan::new(&chart).unwrap().y;
        assert!((y.start - 74.1).abs() < 1e-9 && (y.end - 90.9).abs() < 1e-9, "{y:?}");
        chart.y_range = Some((0.0, 20.0));
        assert_eq!(Plan::new(&chart).unwrap().y, 0.0..20.0);
        chart.y_range = Some((20.0, 20.0));
        assert!(Plan::new(&chart).is_err());
    }

    #[test]
    fn ticks_are_round_numbers_on_linear_and_log_axes() {
        let labels = |lo: f64, hi: f64, scale: Scale| -> Vec<String> {
            let range = scale.position_of(lo)..scale.position_of(hi);
            y_ticks(&range, scale).iter().map(|v| format_number(scale.value_at(*v))).collect()
        };
        assert_eq!(labels(0.0, 20.0, Scale::Linear), ["0", "5", "10", "15", "20"], "the paper's axis");
        assert_eq!(labels(0.0, 100.0, Scale::Linear), ["0", "20", "40", "60", "80", "100"]);
        assert_eq!(labels(74.1, 90.9, Scale::Linear), ["75", "80", "85", "90"]);
        assert_eq!(labels(-0.2, 1.05, Scale::Linear), ["-0.2", "0", "0.2", "0.4", "0.6", "0.8", "1"]);
        assert_eq!(labels(1.0, 100.0, Scale::Log), ["1", "2", "5", "10", "20", "50", "100"]);
        assert_eq!(labels(15.0, 45.0, Scale::Log), ["20", "30", "40"], "every multiple where 1-2-5 are too few");
        assert_eq!(labels(80.0, 90.0, Scale::Log), ["80", "82", "84", "86", "88", "90"], "inside a factor of 2");
        assert_eq!(labels(0.001, 0.1, Scale::Log)[..3], ["0.001", "0.002", "0.005"], "small values keep a digit");
    }

    #[test]
    fn a_log_axis_fits_the_data_leaves_out_zeros_and_checks_its_range() {
        let mut chart = two_series();
        chart.y_scale = Scale::Log;
        chart.curves[0].points = vec![(0.0, 90.0), (1000.0, 10.0), (2000.0, 0.0)];
        chart.curves[1].points = vec![(0.0, 80.0), (2000.0, 2.0)];
        chart.curves[1].band = vec![(0.0, 70.0, 90.0), (2000.0, 0.0, 4.0)];
        let plan = Plan::new(&chart).unwrap();
        assert_eq!(plan.curves[0].len(), 2, "0% has no place on a log axis");
        assert!(plan.bands[1].iter().any(|p| p.1 == f64::NEG_INFINITY), "a band edge at 0 runs along the bottom");
        let (lo, hi) = (10f64.powf(plan.y.start), 10f64.powf(plan.y.end));
        assert!(lo < 2.0 && lo > 1.5 && hi == 100.0, "fitted in decades, capped at 100%: {lo}..{hi}");
        let dir = scratch_dir("log");
        let (png, svg) = (dir.join("log.png"), dir.join("log.svg"));
        render(&chart, &png, &svg).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        for tick in ["2", "5", "10", "20", "50"] {
            assert!(text.contains(&format!(">\n{tick}\n</text>")), "log tick {tick} in the SVG");
        }
        chart.y_range = Some((0.0, 100.0));
        let err = Plan::new(&chart).err().expect("a log axis from 0").to_string();
        assert!(err.contains("a log axis needs 0 < low < high"), "{err}");
        chart.y_range = Some((1.0, 100.0));
        assert_eq!(Plan::new(&chart).unwrap().y, 0.0..2.0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn clipping_cuts_at_the_frame() {
        let pts = [(0.0, 10.0), (1.0, 30.0), (2.0, 10.0), (3.0, 12.0)];
        let runs = clip_y(&pts, &(0.0..20.0));
        assert_eq!(runs, vec![vec![(0.0, 10.0), (0.5, 20.0)], vec![(1.5, 20.0), (2.0, 10.0), (3.0, 12.0)],]);
        assert!(clip_y(&[(0.0, 50.0), (1.0, 60.0)], &(0.0..20.0)).is_empty());
        assert_eq!(clip_y(&[(1.0, 5.0)], &(0.0..20.0)), vec![vec![(1.0, 5.0)]]);
    }

    #[test]
    fn dashes_follow_screen_length() {
        // 100 px long at 2 px per unit: dashes at 0-10, 15-25, ..., 90-100.
        let line = [(0.0, 0.0), (10.0, 0.0), (50.0, 0.0)];
        let d = dashes(&line, 10.0, 5.0, (2.0, 1.0));
        assert_eq!(d.len(), 7);
        assert_eq!(d[0], vec![(0.0, 0.0), (5.0, 0.0)]);
        // The dash across the vertex at x = 10 keeps the vertex.
        assert_eq!(d[1], vec![(7.5, 0.0), (10.0, 0.0), (12.5, 0.0)]);
        assert_eq!(d[6], vec![(45.0, 0.0), (50.0, 0.0)]);
        assert!(dashes(&[(1.0, 1.0)], 10.0, 5.0, (1.0, 1.0)).is_empty());
    }

    #[test]
    fn tick_labels() {
        assert_eq!(format_x(32_000.0, true), "3.2");
        assert_eq!(format_x(64_000.0, true), "6.4");
        assert_eq!(format_x(2_500.0, true), "0.25");
        assert_eq!(format_x(0.0, true), "0");
        assert_eq!(format_x(3_000.0, false), "3000");
        assert_eq!(format_number(12.5), "12.5");
        assert_eq!(format_number(-0.0), "0");
        assert_eq!(format_number(0.126), "0.13");
        assert_eq!(format_number(1.1), "1.1");
        assert_eq!(format_number(0.002), "0.002");
        assert_eq!(format_number(0.05), "0.05");
    }

    #[test]
    fn the_legend_never_covers_a_curve() {
        // A curve along the top of the plot, where a legend inside the axes would sit, and enough
        // others for a legend of several rows.
        let flat = |label: &str, series: usize, y: f64| Curve {
            label: label.into(),
            series,
            dashed: false,
            points: vec![(0.0, y), (1000.0, y)],
            marker: false,
            band: vec![],
        };
        let mut curves = vec![flat("top net test", 0, 95.0)];
        curves.extend((1..8).map(|i| flat(&format!("net {i} test"), i, 10.0 * i as f64)));
        let chart = ErrorChart {
            title: "legend".into(),
            x_label: "iteration".into(),
            y_label: "error (%)".into(),
            curves,
            y_range: Some((0.0, 100.0)),
            y_scale: Scale::Linear,
            band_label: None,
        };
        let dir = tempfile::tempdir().unwrap();
        let (png, svg) = (dir.path().join("l.png"), dir.path().join("l.svg"));
        render(&chart, &png, &svg).unwrap();
        let image = image::open(&png).unwrap().to_rgb8();
        let (w, h) = image.dimensions();
        let orange = |x: u32, y: u32| {
            let p = image.get_pixel(x, y).0;
            (i32::from(p[0]) - 255).abs() < 40
                && (i32::from(p[1]) - 127).abs() < 40
                && (i32::from(p[2]) - 14).abs() < 60
        };
        // The top curve's row: its longest unbroken orange run spans the plot's width.
        let longest_run = |y: u32| {
            let (mut best, mut run) = (0, 0);
            for x in 0..w {
                run = if orange(x, y) { run + 1 } else { 0 };
                best = best.max(run);
            }
            best
        };
        let top = (0..h / 2).max_by_key(|&y| longest_run(y)).unwrap();
        assert!(longest_run(top) > 4 * w / 5, "the top curve runs unbroken: {} of {w} px", longest_run(top));
        // Every other curve, in its own colour, runs unbroken too: no legend sits on any of them.
        let near = |x: u32, y: u32, c: RGBColor| {
            let p = image.get_pixel(x, y).0;
            (0..3).all(|i| (i32::from(p[i]) - i32::from([c.0, c.1, c.2][i])).abs() < 40)
        };
        // The x axis: the lowest dark line across most of the width (the frame's top is higher).
        let axis_row = (0..h)
            .filter(|&y| (0..w).filter(|&x| near(x, y, RGBColor(51, 51, 51))).count() > (w / 2) as usize)
            .max()
            .unwrap();
        for (series, &colour) in PALETTE.iter().enumerate().take(8).skip(1) {
            let best = (0..axis_row)
                .map(|y| {
                    let (mut best, mut run) = (0, 0);
                    for x in 0..w {
                        run = if near(x, y, colour) { run + 1 } else { 0 };
                        best = best.max(run);
                    }
                    best
                })
                .max()
                .unwrap();
            assert!(best > 4 * w / 5, "curve {series} runs unbroken: {best} of {w} px");
        }
        // The legend's samples are below the x axis (under its tick labels).
        assert!(
            (axis_row + 30..h).any(|y| (0..w).any(|x| orange(x, y))),
            "the legend's orange sample sits below the x axis (row {axis_row})"
        );
    }

    #[test]
    fn a_legend_of_many_curves_takes_at_most_its_share_and_counts_the_rest() {
        let curves = (0..80)
            .map(|i| Curve {
                label: format!("plain-20-seed{i} it 12000"),
                series: i,
                dashed: false,
                marker: false,
                points: vec![(0.0, i as f64), (10.0, i as f64 + 1.0)],
                band: vec![],
            })
            .collect();
        let chart = ErrorChart {
            title: "many".into(),
            x_label: "iteration".into(),
            y_label: "norm".into(),
            curves,
            y_range: None,
            y_scale: Scale::Linear,
            band_label: None,
        };
        let dir = tempfile::tempdir().unwrap();
        let (png, svg) = (dir.path().join("m.png"), dir.path().join("m.svg"));
        render_panels(&[chart.clone(), chart], &png, &svg).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        let more = text.matches("more curves (every value is in the CSV)").count();
        assert_eq!(more, 2, "each panel counts what its legend leaves out");
        assert!(text.contains("plain-20-seed0 it 12000") && !text.contains("plain-20-seed79 it 12000"));
    }

    #[test]
    fn panels_sit_side_by_side_and_bands_render() {
        let dir = tempfile::tempdir().unwrap();
        // Two curves whose bands do not overlap: net 1 sits 40 points above net 0.
        let banded = |series: usize| {
            let up = 40.0 * series as f64;
            Curve {
                label: format!("net {series} train"),
                series,
                dashed: true,
                points: vec![(0.0, 50.0 + up), (100.0, 30.0 + up), (200.0, 20.0 + up)],
                marker: false,
                band: vec![(0.0, 40.0 + up, 60.0 + up), (100.0, 20.0 + up, 40.0 + up), (200.0, 10.0 + up, 30.0 + up)],
            }
        };
        let panel = |title: &str| ErrorChart {
            title: title.into(),
            x_label: "iteration".into(),
            y_label: "error (%)".into(),
            curves: vec![banded(0), banded(1)],
            y_range: Some((0.0, 100.0)),
            y_scale: Scale::Linear,
            band_label: Some("band: 95% CI of the mean over 3 seeds".into()),
        };
        let (png, svg) = (dir.path().join("f.png"), dir.path().join("f.svg"));
        render_panels(&[panel("left"), panel("middle"), panel("right")], &png, &svg).unwrap();
        assert_eq!(png_size(&std::fs::read(&png).unwrap()), (3 * PANEL_SIZE.0, PANEL_SIZE.1));
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("left") && text.contains("middle") && text.contains("right"));
        assert!(text.matches("<polygon").count() >= 6, "a band per curve per panel");
        assert_eq!(
            text.matches("band: 95% CI of the mean over 3 seeds").count(),
            3,
            "each panel's legend names the band"
        );
        // On the pixels: each band in its curve's colour at 15% over white.
        let image = image::open(&png).unwrap().to_rgb8();
        for colour in [PALETTE[0], PALETTE[1]] {
            let tint = |c: u8| (255.0 - 0.15 * (255.0 - f64::from(c))).round() as i32;
            let expected = [tint(colour.0), tint(colour.1), tint(colour.2)];
            let shaded =
                image.pixels().filter(|p| (0..3).all(|i| (i32::from(p.0[i]) - expected[i]).abs() <= 2)).count();
            assert!(shaded > 10_000, "the band of {colour:?} covers {shaded} pixels");
        }
        assert!(render_panels(&[], &png, &svg).is_err());
    }
}
