//! One training step's forward and backward pass, shared by the trainer and the speed probe.

use super::runtime::autocast;
use super::sgd::Sgd;
use crate::model::Model;
use crate::model::Precision;
use anyhow::Result;
use tch::{Kind, Tensor};

/// The forward pass in `precision`, the cross-entropy in fp32 (on the logits cast up, as
/// PyTorch's mixed-precision recipe has it), and the backward pass into zeroed gradients: the
/// logits and the loss.
pub fn forward_backward(
    model: &Model,
    sgd: &mut Sgd,
    images: &Tensor,
    labels: &Tensor,
    precision: Precision,
) -> Result<(Tensor, Tensor)> {
    let logits = {
        let _autocast = autocast(precision, model.vs.device())?;
        model.forward_t(images, true)
    };
    let loss = logits.to_kind(Kind::Float).cross_entropy_for_logits(labels);
    sgd.zero_grad();
    loss.backward();
    Ok((logits, loss))
}
