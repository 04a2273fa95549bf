//! Training: the run configuration, SGD, the learning-rate schedule, the loop and its outputs.

pub mod checkpoint;
pub mod config;
pub mod metrics;
mod native;
pub mod schedule;
pub mod sgd;
pub mod step_dump;
pub mod trainer;

pub use config::{Preset, RunConfig};
pub use trainer::{train, train_recording, Recording, RunSummary};
