//! Reports: charts (plotters) and tables.

pub mod chart;
pub mod table;
