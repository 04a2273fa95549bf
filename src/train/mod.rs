//! Training: the run configuration, SGD, the learning-rate schedule, the loop and its outputs.

pub mod bench;
pub mod evaluate;
pub mod runtime;
pub mod schedule;
pub mod sgd;
pub mod step_dump;
pub mod trainer;

pub use trainer::{train, train_recording, Recording};
