//! The experiment trackers (MLflow): a run's mirror (mlflow.rs) and a study's (study.rs) on a
//! tracking server, over one REST client (client.rs), apart from the run directory
//! ([`crate::run`]), whose contract is the files on disk.

pub mod client;
pub mod mlflow;
pub mod study;
