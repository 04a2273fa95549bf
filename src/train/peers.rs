//! The processes training one run together, behind one interface for the training loop: a
//! process alone, whose collectives do nothing, or a rank of a data parallel world.

use super::distributed::{shard, DataParallel};
use super::evaluate::{count_errors, error_rate};
use super::sgd::Sgd;
use crate::data::folder::TestCrops;
use crate::data::Dataset;
use crate::model::Model;
use crate::model::Precision;
use crate::run::checkpoint::LoopState;
use crate::util::interrupt;
use anyhow::Result;
use std::ops::Range;
use std::time::Duration;
use tch::{nn, Tensor};

/// Who trains the run.
pub enum Peers<'a> {
    /// This process alone.
    Alone,
    /// This process as one rank of a data parallel run.
    Ranks(&'a mut DataParallel),
}

impl Peers<'_> {
    /// Whether this process writes the run directory (the only process, or rank 0).
    pub fn is_leader(&self) -> bool {
        match self {
            Peers::Alone => true,
            Peers::Ranks(parallel) => parallel.is_leader(),
        }
    }

    /// This process's rank in a data parallel run; `None` alone.
    pub fn rank(&self) -> Option<usize> {
        match self {
            Peers::Alone => None,
            Peers::Ranks(parallel) => Some(parallel.world().rank),
        }
    }

    /// Processes training the run.
    pub fn count(&self) -> usize {
        match self {
            Peers::Alone => 1,
            Peers::Ranks(parallel) => parallel.world().size,
        }
    }

    /// This process's part of a batch of `batch` images.
    pub fn shard(&self, batch: usize) -> Range<usize> {
        match self {
            Peers::Alone => 0..batch,
            Peers::Ranks(parallel) => parallel.shard(batch),
        }
    }

    /// The starting point everyone shares: rank 0's weights, BN buffers, momentum and loop
    /// state (resumed or fresh), broadcast to the other ranks.
    pub fn share_start(&mut self, vs: &nn::VarStore, sgd: &mut Sgd, state: LoopState) -> Result<LoopState> {
        match self {
            Peers::Alone => Ok(state),
            Peers::Ranks(parallel) => {
                parallel.broadcast_state(vs, sgd)?;
                parallel.broadcast_loop_state(&state)
            }
        }
    }

    /// Averages the gradients over the ranks.
    pub fn average_gradients(&mut self, sgd: &mut Sgd) -> Result<()> {
        match self {
            Peers::Alone => Ok(()),
            Peers::Ranks(parallel) => parallel.average_gradients(sgd),
        }
    }

    /// `values` summed over the processes.
    pub fn sum(&mut self, values: Tensor) -> Result<Tensor> {
        match self {
            Peers::Alone => Ok(values),
            Peers::Ranks(parallel) => parallel.sum(&values),
        }
    }

    /// Whether to stop after this step: ranks stop together, at the step where any of them was
    /// asked to (`agreed`, summed over them with the step's figures); one process when it is asked.
    pub fn stop(&self, agreed: bool) -> bool {
        match self {
            Peers::Alone => agreed || interrupt::requested(),
            Peers::Ranks(_) => agreed,
        }
    }

    /// The test error (%): one process evaluates the whole set; data parallel ranks each their
    /// share, and sum the errors.
    pub fn test_error(&mut self, model: &Model, data: &Dataset, crops: TestCrops, precision: Precision) -> Result<f64> {
        match self {
            Peers::Alone => error_rate(model, data, crops, precision),
            Peers::Ranks(parallel) => {
                let n = data.num_eval();
                let world = parallel.world();
                let wrong = count_errors(model, data, shard(n, world.rank, world.size), crops, precision)?;
                let total = parallel.sum(&Tensor::from_slice(&[wrong as f64]))?;
                Ok(100.0 * total.double_value(&[0]) / n as f64)
            }
        }
    }

    /// Time spent in the gradients' all-reduce so far (data parallel runs).
    pub fn take_reduce_time(&mut self) -> Option<Duration> {
        match self {
            Peers::Alone => None,
            Peers::Ranks(parallel) => Some(parallel.take_reduce_time()),
        }
    }
}
