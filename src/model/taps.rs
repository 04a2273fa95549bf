//! What a forward pass is for: training or evaluation, and which layer responses it keeps for the
//! analyses (as PyTorch's forward hooks would). The networks take a [`Pass`] where torch modules
//! take `self.training`; nothing of it is stored in the layers.

use super::kernels::Kernels;
use std::cell::RefCell;
use std::collections::BTreeMap;
use tch::Tensor;

/// One forward pass's mode, and the taps it fills (none in training and ordinary evaluation).
#[derive(Debug, Clone, Copy)]
pub struct Pass<'a> {
    /// Training mode: BN uses (and updates) batch statistics.
    pub train: bool,
    /// The kernels of a training pass's BN, ReLU and addition (an evaluation pass's are exact).
    pub kernels: Kernels,
    taps: Option<&'a Taps>,
}

impl Pass<'static> {
    /// A pass in training or evaluation mode that keeps nothing, with exact kernels.
    pub fn new(train: bool) -> Pass<'static> {
        Pass { train, kernels: Kernels::Exact, taps: None }
    }

    /// A training pass with `kernels`.
    pub fn training(kernels: Kernels) -> Pass<'static> {
        Pass { train: true, kernels, taps: None }
    }
}

impl<'a> Pass<'a> {
    /// An evaluation-mode pass that keeps the responses `taps` asks for.
    pub fn tapped(taps: &'a Taps) -> Pass<'a> {
        Pass { train: false, kernels: Kernels::Exact, taps: Some(taps) }
    }

    /// Whether this pass computes BN + ReLU (+ the addition) of `x` with the fused kernels: a
    /// training pass that asks for them, on a 4-d fp32 or bf16 CPU tensor, with a shortcut of the
    /// same type. (Taps are only in evaluation passes, which are exact.)
    pub fn fuses(&self, x: &Tensor, identity: Option<&Tensor>) -> bool {
        self.train
            && self.kernels == Kernels::Fused
            && x.device() == tch::Device::Cpu
            && x.dim() == 4
            && matches!(x.kind(), tch::Kind::Float | tch::Kind::BFloat16)
            && identity.is_none_or(|i| i.kind() == x.kind() && i.size() == x.size())
    }

    /// Keeps `response` as the response of layer `name`, where the taps ask for it.
    pub fn keep(&self, name: &str, response: &Tensor) {
        if let Some(taps) = self.taps {
            taps.keep(name, response);
        }
    }
}

/// The responses of chosen layers (by convolution name, `layer2.0.conv1`): for a layer with its BN
/// after it, BN's output before the ReLU or the addition; for the "BN after addition" ablation,
/// that BN's output.
#[derive(Debug, Default)]
pub struct Taps {
    kept: RefCell<BTreeMap<String, Option<Tensor>>>,
}

impl Taps {
    /// Taps on the layers `names`.
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Taps {
        Taps { kept: RefCell::new(names.into_iter().map(|n| (n.into(), None)).collect()) }
    }

    fn keep(&self, name: &str, response: &Tensor) {
        if let Some(slot) = self.kept.borrow_mut().get_mut(name) {
            *slot = Some(response.shallow_clone());
        }
    }

    /// The response layer `name` gave in the last tapped pass (once).
    pub fn take(&self, name: &str) -> Option<Tensor> {
        self.kept.borrow_mut().get_mut(name).and_then(Option::take)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taps_keep_only_the_layers_asked_for_and_give_each_response_once() {
        let taps = Taps::new(["a", "b"]);
        let pass = Pass::tapped(&taps);
        assert!(!pass.train, "tapped passes evaluate");
        pass.keep("a", &Tensor::from(1.0));
        pass.keep("c", &Tensor::from(3.0));
        Pass::new(false).keep("b", &Tensor::from(2.0));
        assert_eq!(taps.take("a").map(|t| t.double_value(&[])), Some(1.0));
        assert!(taps.take("a").is_none() && taps.take("b").is_none() && taps.take("c").is_none());
    }
}
