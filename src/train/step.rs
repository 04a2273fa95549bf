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

#[cfg(test)]
mod tests {
    //! 20 training steps with fused kernels stay close to the exact step's trajectory: the
    //! tolerances and why are in docs/correctness.md.
    use super::*;
    use crate::model::Kernels;
    use tch::Device;

    /// The loss at each of 20 steps of `net` in `precision` with `kernels` (lr 0.1, the paper's
    /// momentum and weight decay) on one fixed batch of 16 images, and the final weights.
    fn trajectory(net: &str, precision: Precision, kernels: Kernels) -> (Vec<f64>, Tensor) {
        tch::set_num_threads(2);
        tch::manual_seed(11);
        let mut model = Model::new(&net.parse().unwrap(), Device::Cpu).unwrap();
        model.use_channels_last();
        model.use_kernels(kernels);
        let mut sgd = Sgd::new(&model.vs, 0.9, 1e-4).unwrap();
        let images = Tensor::randn([16, 3, 32, 32], (Kind::Float, Device::Cpu));
        let labels = Tensor::randint(10, [16], (Kind::Int64, Device::Cpu));
        let losses = (0..20)
            .map(|_| {
                let (_, loss) = forward_backward(&model, &mut sgd, &images, &labels, precision).unwrap();
                sgd.step(0.1).unwrap();
                loss.double_value(&[])
            })
            .collect();
        (losses, sgd.flat_values().copy())
    }

    /// The largest difference of the losses relative to the first, and the relative difference of
    /// the final weights in the L2 norm.
    fn distance(net: &str, precision: Precision) -> (f64, f64) {
        let (exact_losses, exact_weights) = trajectory(net, precision, Kernels::Exact);
        let (fused_losses, fused_weights) = trajectory(net, precision, Kernels::Fused);
        // Over the first loss: a small late loss would make its own relative difference large.
        let first = exact_losses[0];
        let losses = exact_losses.iter().zip(&fused_losses).map(|(e, f)| (f - e).abs() / first).fold(0.0, f64::max);
        let norm = |t: &Tensor| t.square().sum(Kind::Double).sqrt().double_value(&[]);
        (losses, norm(&(fused_weights - &exact_weights)) / norm(&exact_weights))
    }

    #[test]
    fn twenty_fused_steps_follow_the_exact_trajectory_of_a_plain_and_a_residual_net() {
        // The tolerances are five to ten times what exact kernels alone differ by when the step's
        // arithmetic is reordered (1 thread against 2: docs/correctness.md); at lr 0.1 the 20
        // steps amplify any difference, so a wrong gradient is far outside them.
        // bf16 on the residual net only (it has both fused operations): bf16 is emulated, slowly,
        // on CPUs without it.
        let cases = [
            ("plain-8", Precision::Fp32, 2e-3, 6e-2),
            ("resnet-8", Precision::Fp32, 2e-3, 6e-2),
            ("resnet-8", Precision::Bf16, 5e-3, 1e-1),
        ];
        for (net, precision, loss_tolerance, weight_tolerance) in cases {
            let (losses, weights) = distance(net, precision);
            // (Shown with --nocapture: the figures in docs/correctness.md.)
            println!("{net} {precision}: losses within {losses:.1e}, final weights within {weights:.1e}");
            assert!(losses < loss_tolerance, "{net} {precision}: losses differ by {losses:e}");
            assert!(weights < weight_tolerance, "{net} {precision}: final weights differ by {weights:e}");
        }
    }
}
