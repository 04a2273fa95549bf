//! SGD with momentum and weight decay, with PyTorch's update rule:
//! `g = grad + wd * w; buf = momentum * buf + g; w -= lr * buf`.
//! Owned here (not tch's `nn::Optimizer`, which cannot save its state) so the momentum buffers
//! go into checkpoints, keyed by their parameter's name.
//!
//! Speed: every parameter is a view into one flat buffer, its gradient a view into another and
//! its momentum a view into a third, so zeroing the gradients is one op and the update three,
//! whatever the number of parameters (instead of several small ops per parameter).
//! Exactness: the update runs in libtorch (`csrc/reslab_native.cpp`) with PyTorch's own ops, fused
//! multiply-adds included, so each element is bit for bit what `torch.optim.SGD` computes: tch
//! cannot express `add(.., alpha)`, and the rounding of a separate multiply and add, though a
//! last-bit difference, grows step by step into a different run.

use crate::native;
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use tch::{nn, Tensor};

/// SGD with momentum and weight decay over a model's trainable variables, flattened into one buffer.
pub struct Sgd {
    /// Parameter names, in the order of the flat buffers.
    names: Vec<String>,
    /// Each parameter's momentum buffer: a view into `momentum`, with its parameter's strides.
    buffers: Vec<Tensor>,
    values: Tensor,
    grads: Tensor,
    momentum: Tensor,
    momentum_factor: f64,
    weight_decay: f64,
}

impl Sgd {
    /// SGD over every trainable variable of `vs`, which from here on live in one flat buffer
    /// (change their layout, e.g. channels-last, before this).
    pub fn new(vs: &nn::VarStore, momentum: f64, weight_decay: f64) -> Result<Sgd> {
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let (names, mut params): (Vec<String>, Vec<Tensor>) = named.into_iter().unzip();
        let (values, grads) = native::flatten_parameters(&mut params)?;
        let flat_momentum = values.zeros_like();
        let mut offset = 0;
        let buffers = params
            .iter()
            .map(|p| {
                let view = flat_momentum.as_strided(p.size(), p.stride(), offset);
                offset += p.numel() as i64;
                view
            })
            .collect();
        Ok(Sgd { names, buffers, values, grads, momentum: flat_momentum, momentum_factor: momentum, weight_decay })
    }

    /// Zeroes every gradient (one op on the flat buffer).
    pub fn zero_grad(&mut self) {
        let _ = self.grads.zero_();
    }

    /// One update at learning rate `lr`, PyTorch's rule, bit for bit.
    pub fn step(&mut self, lr: f64) -> Result<()> {
        native::sgd_update(
            &mut self.values,
            &mut self.grads,
            &mut self.momentum,
            lr,
            self.momentum_factor,
            self.weight_decay,
        )
    }

    /// Every parameter, in one flat buffer (what data parallel ranks broadcast).
    pub fn flat_values(&self) -> &Tensor {
        &self.values
    }

    /// Every gradient, in one flat buffer (what data parallel ranks average after backward).
    pub fn flat_gradients(&mut self) -> &mut Tensor {
        &mut self.grads
    }

    /// Every momentum buffer, in one flat buffer.
    pub fn flat_momentum(&self) -> &Tensor {
        &self.momentum
    }

    /// The momentum buffers by parameter name.
    pub fn buffers(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.names.iter().map(String::as_str).zip(&self.buffers)
    }

    /// Restores every momentum buffer from `buffers` (by parameter name); all must be there.
    pub fn load_buffers(&mut self, buffers: &BTreeMap<String, Tensor>) -> Result<()> {
        tch::no_grad(|| {
            for (name, buffer) in self.names.iter().zip(&mut self.buffers) {
                let Some(saved) = buffers.get(name) else {
                    bail!("no momentum buffer for parameter '{name}'");
                };
                if saved.size() != buffer.size() {
                    bail!("momentum buffer '{name}' has shape {:?}, expected {:?}", saved.size(), buffer.size());
                }
                buffer.copy_(saved);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// The flat update computes each element exactly as the per-parameter update PyTorch runs:
    /// elementwise ops whose vectorised and scalar paths round alike, however a buffer is split
    /// into vector lanes, tails and thread chunks.
    /// Set in the child process that runs the thread-count test alone.
    const THREADS_CHILD: &str = "RESLAB_SGD_THREADS_CHILD";

    /// libtorch's thread count is global to a process, so this test sets it in a process of its
    /// own (this test binary again, running only this test), never under the other tests.
    #[test]
    fn the_flat_update_equals_the_per_parameter_update_bit_for_bit() {
        const NAME: &str = "train::sgd::tests::the_flat_update_equals_the_per_parameter_update_bit_for_bit";
        if std::env::var_os(THREADS_CHILD).is_some() {
            for threads in [1, 2] {
                tch::set_num_threads(threads);
                flat_equals_per_parameter();
            }
            return;
        }
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([NAME, "--exact", "--test-threads=1", "--nocapture"])
            .env(THREADS_CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.contains("test result: ok. 1 passed"), "the child ran no test:\n{stdout}");
    }

    fn flat_equals_per_parameter() {
        let sizes = [3, 17, 1000, 40_001, 5];
        let make =
            || -> Vec<Tensor> { sizes.iter().map(|&n| Tensor::randn([n], (Kind::Float, Device::Cpu))).collect() };
        tch::manual_seed(11);
        let (params, grads, buffers) = (make(), make(), make());
        let (mut per_param, mut per_buffer) =
            (params.iter().map(Tensor::copy).collect::<Vec<_>>(), buffers.iter().map(Tensor::copy).collect::<Vec<_>>());
        for ((p, g), b) in per_param.iter_mut().zip(&grads).zip(&mut per_buffer) {
            native::sgd_update(p, &mut g.copy(), b, 0.1, 0.9, 1e-4).unwrap();
        }
        let mut flat_param = Tensor::cat(&params, 0);
        let mut flat_buffer = Tensor::cat(&buffers, 0);
        native::sgd_update(&mut flat_param, &mut Tensor::cat(&grads, 0), &mut flat_buffer, 0.1, 0.9, 1e-4).unwrap();
        assert!(flat_param.equal(&Tensor::cat(&per_param, 0)), "parameters");
        assert!(flat_buffer.equal(&Tensor::cat(&per_buffer, 0)), "momentum buffers");
    }

    #[test]
    fn parameters_and_gradients_live_in_the_flat_buffers() {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[2, 3, 3, 3], nn::Init::Const(1.0));
        let b = vs.root().var("b", &[5], nn::Init::Const(2.0));
        let mut sgd = Sgd::new(&vs, 0.9, 0.0).unwrap();
        ((&w * 3.0).sum(Kind::Float) + (&b * 2.0).sum(Kind::Float)).backward();
        assert_eq!(sgd.grads.size(), vec![59]);
        // Sorted by name: b (5 values) first, then w (54).
        assert_eq!(Vec::<f32>::try_from(&sgd.grads).unwrap(), [vec![2.0f32; 5], vec![3.0; 54]].concat());
        sgd.step(0.5).unwrap();
        assert_eq!(b.double_value(&[0]), 1.0, "the update reaches the model's own tensors");
        assert_eq!(w.double_value(&[1, 2, 0, 0]), -0.5);
        sgd.zero_grad();
        assert_eq!(w.grad().abs().sum(Kind::Float).double_value(&[]), 0.0);
    }

    #[test]
    fn matches_pytorch_sgd_on_a_quadratic() {
        // Hand-computed PyTorch SGD(lr=0.1, momentum=0.9, weight_decay=0.01) on loss = sum(w^2)/2.
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[1], nn::Init::Const(1.0));
        let mut sgd = Sgd::new(&vs, 0.9, 0.01).unwrap();
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
