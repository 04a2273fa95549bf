//! Small helpers shared by the stages.

pub mod fs;
pub mod interrupt;
pub mod lock;
