//! reslab: plain and residual networks side by side, reproducing He et al. (2015),
//! "Deep Residual Learning for Image Recognition", on tch-rs (libtorch).
//!
//! The data flows one way, one module per stage:
//! experiment file -> run specs ([`experiment`]) -> data ([`data`]) and model ([`model`]) ->
//! trainer ([`train`]) -> run directory (CSV, weights; mirrored on a tracking server by
//! [`tracking`]) -> aggregation -> charts and tables ([`report`]).

#![warn(missing_docs)]

pub mod analysis;
pub mod data;
pub mod experiment;
pub mod model;
/// Bindings to `csrc/reslab_native.cpp`: the libtorch operations tch does not expose.
mod native;
pub mod report;
pub mod run;
pub mod tracking;
pub mod train;
pub mod util;
