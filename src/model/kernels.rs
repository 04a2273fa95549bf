//! Which kernels compute a training step's BatchNorm, ReLU and the shortcut's addition: libtorch's
//! own ops one after another (`exact`, bit-identical to PyTorch's step), or reslab's fused ones
//! (`fused`: BN + ReLU and BN + addition + ReLU each in one operation forward and backward,
//! `csrc/reslab_fused.cpp`; the same arithmetic in another order, docs/correctness.md). Like the
//! precision, a fact of how a run computes that its configuration records.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// The kernels of a training step's BN, ReLU and addition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kernels {
    /// libtorch's ops, one pass each: PyTorch's step bit for bit.
    #[default]
    Exact,
    /// BN + ReLU and BN + addition + ReLU fused (CPU, channels-last, training mode); every other
    /// op as in `Exact`.
    Fused,
}

impl Kernels {
    /// Its name in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Kernels::Exact => "exact",
            Kernels::Fused => "fused",
        }
    }
}

impl std::fmt::Display for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Kernels {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Kernels> {
        match text {
            "exact" => Ok(Kernels::Exact),
            "fused" => Ok(Kernels::Fused),
            _ => bail!("unknown kernels '{}'; expected exact or fused", text.escape_debug()),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The fused operations against libtorch's, forward and backward, fp32 and bf16, with and
    //! without the shortcut, on channel counts of the vector path (multiples of 8) and of the
    //! one-channel path, and a mean far from zero: the tolerances and why are in
    //! docs/correctness.md.
    use super::*;
    use crate::model::layers::{batch_norm, bn_relu};
    use crate::model::taps::Pass;
    use tch::{nn, Device, Kind, Tensor};

    /// The difference between `a` and `b` relative to `b`, in the L2 norm: a ReLU whose input
    /// rounds to the other side of zero in one of them changes one element by its whole
    /// gradient, which the largest difference would report as if every element had.
    fn relative(a: &Tensor, b: &Tensor) -> f64 {
        let (a, b) = (a.to_kind(Kind::Double), b.to_kind(Kind::Double));
        let norm = |t: &Tensor| t.square().sum(Kind::Double).sqrt().double_value(&[]);
        norm(&(a - &b)) / norm(&b).max(1e-30)
    }

    /// Channels-last, as the trainer passes activations.
    fn activations(shape: [i64; 4], kind: Kind, scale: f64, offset: f64) -> Tensor {
        let x = Tensor::randn(shape, (Kind::Float, Device::Cpu)) * scale + offset;
        x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]).to_kind(kind).set_requires_grad(true)
    }

    struct Side {
        out: Tensor,
        grads: Vec<Tensor>,
        running: Vec<Tensor>,
    }

    /// relu(bn(x) + identity) with `kernels` and its gradients for the upstream gradient `dy`.
    fn side(kernels: Kernels, x: &Tensor, identity: Option<&Tensor>, dy: &Tensor) -> Side {
        let vs = nn::VarStore::new(Device::Cpu);
        let bn = batch_norm(vs.root() / "bn", x.size()[1]);
        tch::no_grad(|| {
            let c = x.size()[1];
            bn.ws
                .as_ref()
                .unwrap()
                .shallow_clone()
                .copy_(&(Tensor::arange(c, (Kind::Float, Device::Cpu)) * 0.05 + 0.6));
            bn.bs
                .as_ref()
                .unwrap()
                .shallow_clone()
                .copy_(&(Tensor::arange(c, (Kind::Float, Device::Cpu)) * 0.02 - 0.1));
        });
        let x = x.detach().set_requires_grad(true);
        let identity = identity.map(|i| i.detach().set_requires_grad(true));
        let out = bn_relu(&bn, &x, identity.as_ref(), Pass::training(kernels));
        assert_eq!(out.kind(), x.kind(), "the output keeps the input's type");
        (&out.to_kind(Kind::Float) * dy).sum(Kind::Float).backward();
        let mut grads = vec![x.grad(), bn.ws.as_ref().unwrap().grad(), bn.bs.as_ref().unwrap().grad()];
        grads.extend(identity.map(|i| i.grad()));
        Side { out: out.detach(), grads, running: vec![bn.running_mean.copy(), bn.running_var.copy()] }
    }

    /// The largest relative differences, fused against exact: (output, gradients, running statistics).
    fn compare(kind: Kind, with_identity: bool, shape: [i64; 4], offset: f64) -> (f64, f64, f64) {
        tch::manual_seed(7);
        let x = activations(shape, kind, 2.0, offset);
        let identity = with_identity.then(|| activations(shape, kind, 1.0, 0.0));
        let dy = Tensor::randn(shape, (Kind::Float, Device::Cpu));
        let exact = side(Kernels::Exact, &x, identity.as_ref(), &dy);
        let fused = side(Kernels::Fused, &x, identity.as_ref(), &dy);
        let grads = exact.grads.iter().zip(&fused.grads).map(|(e, f)| relative(f, e)).fold(0.0, f64::max);
        let running = exact.running.iter().zip(&fused.running).map(|(e, f)| relative(f, e)).fold(0.0, f64::max);
        assert_eq!(exact.grads.len(), fused.grads.len());
        (relative(&fused.out, &exact.out), grads, running)
    }

    #[test]
    fn fused_bn_relu_and_the_block_tail_match_libtorch_in_fp32() {
        for with_identity in [false, true] {
            for (shape, offset) in [([16, 16, 8, 8], 0.0), ([4, 64, 5, 3], 30.0), ([3, 12, 5, 5], 0.0)] {
                let (out, grads, running) = compare(Kind::Float, with_identity, shape, offset);
                let what = format!("fp32, identity {with_identity}, {shape:?} offset {offset}");
                // (Shown with --nocapture: the figures in docs/correctness.md.)
                println!("{what}: output {out:.1e}, gradients {grads:.1e}, running statistics {running:.1e}");
                assert!(out < 1e-5, "{what}: output {out:e}");
                assert!(grads < 1e-5, "{what}: gradients {grads:e}");
                assert!(running < 1e-5, "{what}: running statistics {running:e}");
            }
        }
    }

    #[test]
    fn fused_bn_relu_and_the_block_tail_match_libtorch_in_bf16() {
        for with_identity in [false, true] {
            for (shape, offset) in [([16, 16, 8, 8], 0.0), ([4, 64, 5, 3], 30.0), ([3, 12, 5, 5], 0.0)] {
                let (out, grads, running) = compare(Kind::BFloat16, with_identity, shape, offset);
                let what = format!("bf16, identity {with_identity}, {shape:?} offset {offset}");
                println!("{what}: output {out:.1e}, gradients {grads:.1e}, running statistics {running:.1e}");
                assert!(out < 1e-3, "{what}: output {out:e}");
                assert!(grads < 1e-3, "{what}: gradients {grads:e}");
                assert!(running < 1e-5, "{what}: running statistics {running:e}");
            }
        }
    }

    #[test]
    fn kernels_parse_and_name_themselves() {
        assert_eq!("fused".parse::<Kernels>().unwrap(), Kernels::Fused);
        assert_eq!(Kernels::Exact.to_string(), "exact");
        let error = "fast".parse::<Kernels>().unwrap_err().to_string();
        assert_eq!(error, "unknown kernels 'fast'; expected exact or fused");
    }
}
