//! The experiment trackers (MLflow): a run's and a study's mirror on a tracking server, apart from
//! the run directory ([`crate::run`]), whose contract is the files on disk.

pub mod client;
pub mod mlflow;
