//! A figure written as PNG and SVG: the bundled font registered once, the PNG drawn at twice the
//! size and box-filtered down, each file written to a temporary name and renamed into place.
//! chart.rs, contour.rs and forest.rs draw through it.

use crate::util::fs;
use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use std::path::Path;
use std::sync::OnceLock;

/// Font family name we register the bundled font under; every text style below uses it.
pub(super) const FONT: &str = "sans-serif";
/// Embedded so the binary renders text on machines without any fonts installed.
pub(super) const FONT_BYTES: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/fonts/DejaVuSans.ttf"));

/// Something drawn the same way on the PNG and the SVG backends.
pub(super) trait Drawing {
    /// Draws the whole figure on `root`, every pixel size scaled by `t.k`.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, t: Target) -> Result<()>;
}

/// Writes `drawing` as PNG and SVG of `size`. Creates nothing else. Writes each file to a
/// temporary name in the same directory and renames it into place, so a failure never leaves a
/// half chart.
pub(super) fn write_figure(drawing: &impl Drawing, size: (u32, u32), png: &Path, svg: &Path) -> Result<()> {
    ensure_font()?;
    // Hidden names beside the targets that keep the extension plotters picks the encoder by.
    let png_tmp = fs::unique_temporary_name(png);
    let svg_tmp = fs::unique_temporary_name(svg);
    // Both temporaries are complete before either rename, so a drawing failure leaves
    // both old files untouched.
    let writing = |path: &Path| format!("writing chart {}", path.display());
    let result = render_png(drawing, size, &png_tmp)
        .with_context(|| writing(png))
        .and_then(|()| render_svg(drawing, size, &svg_tmp).with_context(|| writing(svg)))
        .and_then(|()| commit(&png_tmp, png))
        .and_then(|()| commit(&svg_tmp, svg));
    if result.is_err() {
        // Best effort: the temporaries may not exist, and the original error matters more.
        let _ = std::fs::remove_file(&png_tmp);
        let _ = std::fs::remove_file(&svg_tmp);
    }
    result
}

/// Registers the bundled font once per process. plotters keeps fonts in a global table,
/// and a font registered under "sans-serif" serves every style through its fallback.
fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            register_font(FONT, FontStyle::Normal, FONT_BYTES)
                .map_err(|_| "bundled DejaVuSans.ttf is not a valid font".to_string())
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

/// How one output is drawn.
#[derive(Clone, Copy)]
pub(super) struct Target {
    /// Scale of every pixel size (fonts, margins, lines, dashes).
    pub(super) k: u32,
    /// Stroke each segment separately with round joins (see `draw_runs`).
    pub(super) round_joins: bool,
}

/// The bitmap backend draws lines without anti-aliasing, so the PNG is drawn at twice the
/// size and box-filtered down: smooth lines and text at little cost.
const PNG_TARGET: Target = Target { k: 2, round_joins: true };
const SVG_TARGET: Target = Target { k: 1, round_joins: false };

fn render_png(drawing: &impl Drawing, size: (u32, u32), path: &Path) -> Result<()> {
    let k = PNG_TARGET.k;
    let big_size = (size.0 * k, size.1 * k);
    let mut big = vec![0u8; 3 * (big_size.0 * big_size.1) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut big, big_size).into_drawing_area();
        drawing.draw(&root, PNG_TARGET)?;
        root.present().map_err(plot_err)?;
    }
    // Each pixel the rounded mean of its k x k block: image's thumbnail takes exactly those boxes
    // for a whole factor k.
    let big =
        image::RgbImage::from_raw(big_size.0, big_size.1, big).context("the drawing's buffer has the wrong size")?;
    let small = image::imageops::thumbnail(&big, size.0, size.1).into_raw();
    let mut out = BitMapBackend::new(path, size);
    out.blit_bitmap((0, 0), size, &small).map_err(plot_err)?;
    out.present().map_err(plot_err)
}

fn render_svg(drawing: &impl Drawing, size: (u32, u32), path: &Path) -> Result<()> {
    let root = SVGBackend::new(path, size).into_drawing_area();
    drawing.draw(&root, SVG_TARGET)?;
    root.present().map_err(plot_err)
}

/// plotters' errors are not Send + Sync in every version, so keep only their message.
pub(super) fn plot_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("{e}")
}

/// Renames a finished temporary into place, durably (see [`fs::commit`]).
fn commit(tmp: &Path, target: &Path) -> Result<()> {
    fs::commit(tmp, target).with_context(|| format!("writing chart {}", target.display()))
}
