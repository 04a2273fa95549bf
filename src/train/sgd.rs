//! SGD with momentum and weight decay, with PyTorch's update rule:
//! `g = grad + wd * w; buf = momentum * buf + g; w -= lr * buf`.
//! Owned here (not tch's `nn::Optimizer`) so the momentum buffers can be inspected and saved.

use tch::{nn, Tensor};

pub struct Sgd {
    params: Vec<Tensor>,
    buffers: Vec<Tensor>,
    momentum: f64,
    weight_decay: f64,
}

impl Sgd {
    pub fn new(vs: &nn::VarStore, momentum: f64, weight_decay: f64) -> Sgd {
        let params = vs.trainable_variables();
        let buffers = params.iter().map(|p| p.zeros_like()).collect();
        Sgd { params, buffers, momentum, weight_decay }
    }

    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.zero_grad();
        }
    }

    pub fn step(&mut self, lr: f64) {
        tch::no_grad(|| {
            for (p, buf) in self.params.iter_mut().zip(&mut self.buffers) {
                let grad = p.grad();
                if !grad.defined() {
                    continue;
                }
                let update = grad + &*p * self.weight_decay;
                let _ = buf.g_mul_scalar_(self.momentum).g_add_(&update);
                let _ = p.g_sub_(&(&*buf * lr));
            }
        });
    }

    /// The momentum buffers, in the order of `vs.trainable_variables()`.
    pub fn buffers(&self) -> &[Tensor] {
        &self.buffers
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
            sgd.step(0.1);
            let (weight, buf) = expected;
            let g = weight + 0.01 * weight;
            let buf = 0.9 * buf + g;
            expected = (weight - 0.1 * buf, buf);
        }
        assert!((w.double_value(&[0]) - expected.0).abs() < 1e-6, "{} vs {}", w.double_value(&[0]), expected.0);
        assert!((sgd.buffers()[0].double_value(&[0]) - expected.1).abs() < 1e-6);
    }
}
