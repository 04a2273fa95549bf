//! Data: CIFAR-10 in the official binary layout, preprocessing and batch augmentation.

pub mod augment;
pub mod batches;
pub mod cifar;
pub mod dataset;
pub mod download;
pub mod folder;
pub mod prepare;
pub mod sample;

pub use cifar::{Cifar10, DataSource};
pub use dataset::{DataConfig, Dataset};
pub use prepare::{EvalSet, Normalization, Prepared};
