//! A surface's summary numbers: the loss and error at its centre, its sharpness and its convex
//! share (defined in the module documentation of `landscape`).

use super::{Dims, LandscapeSettings};
use crate::util::stats;

/// The surface's summary numbers (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The loss at the centre.
    pub centre_loss: f64,
    /// The error at the centre (%).
    pub centre_error: f64,
    /// Mean log10(loss / centre loss) over the points within half the span (the centre left out).
    pub sharpness: f64,
    /// Share of the points within half the span, off the edge, where the surface is locally convex.
    pub convex_share: f64,
}

/// The summary of `loss` at the grid of `settings` (in the order of [`LandscapeSettings::points`]).
pub fn summarise(settings: &LandscapeSettings, losses: &[f64], errors: &[f64]) -> Summary {
    let n = settings.grid;
    let c = n / 2;
    let radius = settings.span / 2.0;
    let axis = settings.axis();
    let (at, rows) = match settings.dims {
        Dims::One => (Box::new(|i: usize, _j: usize| losses[i]) as Box<dyn Fn(usize, usize) -> f64>, 1),
        Dims::Two => (Box::new(|i: usize, j: usize| losses[j * n + i]) as Box<dyn Fn(usize, usize) -> f64>, n),
    };
    let centre_j = if rows == 1 { 0 } else { c };
    let centre_loss = at(c, centre_j);
    let centre_error = errors[if rows == 1 { c } else { c * n + c }];
    let (mut ratios, mut convex, mut inside) = (Vec::new(), 0usize, 0usize);
    for j in 0..rows {
        for i in 0..n {
            let b = if rows == 1 { 0.0 } else { axis[j] };
            let r = (axis[i] * axis[i] + b * b).sqrt();
            if r > radius + 1e-9 {
                continue;
            }
            if (i, j) != (c, centre_j) {
                ratios.push((at(i, j) / centre_loss).log10());
            }
            let interior = i > 0 && i + 1 < n && (rows == 1 || (j > 0 && j + 1 < rows));
            if !interior {
                continue;
            }
            inside += 1;
            let f_aa = at(i + 1, j) - 2.0 * at(i, j) + at(i - 1, j);
            let is_convex = if rows == 1 {
                f_aa > 0.0
            } else {
                let f_bb = at(i, j + 1) - 2.0 * at(i, j) + at(i, j - 1);
                let f_ab = (at(i + 1, j + 1) - at(i + 1, j - 1) - at(i - 1, j + 1) + at(i - 1, j - 1)) / 4.0;
                f_aa > 0.0 && f_bb > 0.0 && f_aa * f_bb > f_ab * f_ab
            };
            convex += usize::from(is_convex);
        }
    }
    let mean = |v: &[f64]| if v.is_empty() { f64::NAN } else { stats::mean(v) };
    Summary {
        centre_loss,
        centre_error,
        sharpness: mean(&ratios),
        convex_share: if inside == 0 { f64::NAN } else { convex as f64 / inside as f64 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::landscape::tests::settings;

    #[test]
    fn summary_numbers_order_a_steep_surface_above_a_flat_one() {
        let s = settings(9, Dims::Two);
        let bowl = |k: f64| -> Vec<f64> { s.points().iter().map(|(a, b)| 0.5 + k * (a * a + b * b)).collect() };
        let zeros = vec![0.0; 81];
        let (flat, steep) = (summarise(&s, &bowl(0.1), &zeros), summarise(&s, &bowl(10.0), &zeros));
        assert!(steep.sharpness > flat.sharpness && flat.sharpness > 0.0);
        assert_eq!((flat.convex_share, steep.convex_share), (1.0, 1.0));
        // A saddle is nowhere convex.
        let saddle: Vec<f64> = s.points().iter().map(|(a, b)| 5.0 + a * a - b * b).collect();
        assert_eq!(summarise(&s, &saddle, &zeros).convex_share, 0.0);
        assert_eq!(summarise(&s, &saddle, &zeros).centre_loss, 5.0);
        let line = settings(9, Dims::One);
        let v: Vec<f64> = line.points().iter().map(|(a, _)| 1.0 + a * a).collect();
        assert_eq!(summarise(&line, &v, &[0.0; 9]).convex_share, 1.0);
        assert!(LandscapeSettings { grid: 4, ..s.clone() }.check().unwrap_err().to_string().contains("odd"));
        assert!(LandscapeSettings { span: 0.0, ..s }.check().is_err());
    }
}
