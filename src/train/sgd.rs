//! SGD with momentum and weight decay, with PyTorch's update rule:
//! `g = grad + wd * w; buf = momentum * buf + g; w -= lr * buf`.
//! Owned here (not tch's `nn::Optimizer`, which cannot save its state) so the momentum buffers
//! go into checkpoints, keyed by their parameter's name. The update itself runs in libtorch
//! (`csrc/reslab_native.cpp`) with PyTorch's own ops, fused multiply-adds included, so a step is
//! bit for bit `torch.optim.SGD`'s: tch cannot express `add(.., alpha)`, and the rounding of a
//! separate multiply and add, though a last-bit difference, grows step by step into a different run.

use super::native;
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use tch::{nn, Tensor};

struct Param {
    name: String,
    value: Tensor,
    momentum: Tensor,
}

pub struct Sgd {
    params: Vec<Param>,
    momentum: f64,
    weight_decay: f64,
}

impl Sgd {
    pub fn new(vs: &nn::VarStore, momentum: f64, weight_decay: f64) -> Sgd {
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let params = named
            .into_iter()
            .map(|(name, value)| {
                let momentum = value.zeros_like();
                Param { name, value, momentum }
            })
            .collect();
        Sgd { params, momentum, weight_decay }
    }

    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.value.zero_grad();
        }
    }

    pub fn step(&mut self, lr: f64) -> Result<()> {
        let (values, buffers): (Vec<&mut Tensor>, Vec<&mut Tensor>) =
            self.params.iter_mut().map(|p| (&mut p.value, &mut p.momentum)).unzip();
        native::sgd_step(values, buffers, lr, self.momentum, self.weight_decay)
    }

    /// The momentum buffers by parameter name.
    pub fn buffers(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.params.iter().map(|p| (p.name.as_str(), &p.momentum))
    }

    /// Restores every momentum buffer from `buffers` (by parameter name); all must be there.
    pub fn load_buffers(&mut self, buffers: &BTreeMap<String, Tensor>) -> Result<()> {
        tch::no_grad(|| {
            for p in &mut self.params {
                let Some(saved) = buffers.get(&p.name) else {
                    bail!("no momentum buffer for parameter '{}'", p.name);
                };
                if saved.size() != p.momentum.size() {
                    bail!(
                        "momentum buffer '{}' has shape {:?}, expected {:?}",
                        p.name,
                        saved.size(),
                        p.momentum.size()
                    );
                }
                p.momentum.copy_(saved);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn matches_pytorch_sgd_on_a_quadratic() {
        // Hand-computed PyTorch SGD(lr=0.1, momentum=0.9, weight_decay=0.01) on loss = sum(w^2)/2.
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[1], nn::Init::Const(1.0));
        let mut sgd = Sgd::new(&vs, 0.9, 0.01);
        let mut expected = (1.0f64, 0.0f64);
        for _ in 0..3 {
            sgd.zero_grad();
            (&w * &w / 2.0).sum(Kind::Float).backward();
            sgd.step(0.1).unwrap();
            let (weight, buf) = expected;
            let g = weight + 0.01 * weight;
            let buf = 0.9 * buf + g;
            expected = (weight - 0.1 * buf, buf);
        }
        assert!((w.double_value(&[0]) - expected.0).abs() < 1e-6, "{} vs {}", w.double_value(&[0]), expected.0);
        let (name, buffer) = sgd.buffers().next().unwrap();
        assert_eq!(name, "w");
        assert!((buffer.double_value(&[0]) - expected.1).abs() < 1e-6);
    }
}
