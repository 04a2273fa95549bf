//! A short timed probe of this machine's training speed: a few training steps of a model on a
//! fixed random batch, for estimates of how long runs will take (`reslab plan`).

use super::sgd::Sgd;
use super::trainer::set_threads;
use crate::model::{Model, ModelSpec};
use anyhow::Result;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Training images per second of `spec` at `batch`, channels-last, over `steps` steps after two
/// untimed ones (oneDNN picks its kernels on the first).
pub fn training_img_per_s(spec: &ModelSpec, batch: i64, steps: usize, threads: usize) -> Result<f64> {
    set_threads(threads);
    tch::manual_seed(0);
    let device = Device::cuda_if_available();
    let mut model = Model::new(spec, device)?;
    model.use_channels_last();
    let mut sgd = Sgd::new(&model.vs, 0.9, 1e-4);
    let x = Tensor::randn([batch, 3, 32, 32], (Kind::Float, device));
    let y = Tensor::randint(spec.classes(), [batch], (Kind::Int64, device));
    let mut start = Instant::now();
    for step in 0..steps + 2 {
        if step == 2 {
            start = Instant::now();
        }
        let loss = model.forward_t(&x, true).cross_entropy_for_logits(&y);
        sgd.zero_grad();
        loss.backward();
        sgd.step(0.1)?;
        let _ = loss.double_value(&[]);
    }
    Ok((steps as i64 * batch) as f64 / start.elapsed().as_secs_f64())
}
