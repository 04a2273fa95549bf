//! Small helpers shared by the stages.

pub mod cache;
pub mod console;
pub mod fs;
pub mod interrupt;
pub mod load;
pub mod supervisor;
pub mod time;

/// serde's default for flags that are on unless a file turns them off.
pub fn yes() -> bool {
    true
}
