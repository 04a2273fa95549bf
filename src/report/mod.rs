//! Reports: charts (plotters) and tables.

pub mod chart;
pub mod contour;
pub mod forest;
pub mod html;
pub mod table;
pub mod verdict;
