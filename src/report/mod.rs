//! Reports: charts (plotters) and tables.

pub mod chart;
pub mod html;
pub mod table;
