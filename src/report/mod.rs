//! Reports: charts (plotters) and tables.

pub mod chart;
pub mod contour;
mod figure;
pub mod forest;
pub mod html;
pub mod table;
pub mod verdict;
