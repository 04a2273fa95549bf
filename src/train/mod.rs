//! Training: the run configuration, SGD, the learning-rate schedule, the loop and its outputs.

pub mod auto_precision;
pub mod bench;
pub mod c10d;
pub mod distributed;
pub mod evaluate;
pub mod hold;
pub mod peak;
pub mod peers;
pub mod probe;
pub mod profile;
pub mod request;
pub mod runtime;
pub mod schedule;
pub mod sgd;
pub mod step;
pub mod step_dump;
pub mod trainer;

pub use request::{Run, RunRequest, RunSource};
pub use trainer::{train, train_distributed, train_recording, Recording};
