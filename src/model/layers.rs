//! Small layer helpers with the paper's initialisation stated in one place.
//!
//! tch's defaults differ from the paper: its conv weights are Kaiming *uniform* fan-in and its
//! BatchNorm weights are uniform(0, 1). Here convolutions get He (MSRA) normal initialisation
//! (fan-out, as torchvision and the PyTorch CIFAR reproductions use), BatchNorm weight 1 and bias 0,
//! and the final fully-connected layer PyTorch's default uniform(+-1/sqrt(fan_in)).

use crate::native;
use std::cell::{Cell, RefCell};
use tch::nn::{self, init::FanInOut, init::NonLinearity, init::NormalOrUniform, Init, ModuleT};
use tch::{Device, Kind, Tensor};

/// He et al. (2015, "Delving deep into rectifiers") normal initialisation.
const HE_NORMAL: Init =
    Init::Kaiming { dist: NormalOrUniform::Normal, fan: FanInOut::FanOut, non_linearity: NonLinearity::ReLU };

/// A bias-free convolution with "same" padding for odd kernels.
pub fn conv(p: nn::Path, c_in: i64, c_out: i64, kernel: i64, stride: i64) -> nn::Conv2D {
    grouped_conv(p, c_in, c_out, kernel, stride, 1)
}

/// [`conv`] in `groups` groups (ResNeXt's split-transform-merge); He normal over the fan-out of
/// one group's filters, as torchvision initialises grouped convolutions.
pub fn grouped_conv(p: nn::Path, c_in: i64, c_out: i64, kernel: i64, stride: i64, groups: i64) -> nn::Conv2D {
    let config =
        nn::ConvConfig { stride, padding: kernel / 2, bias: false, ws_init: HE_NORMAL, groups, ..Default::default() };
    nn::conv2d(p, c_in, c_out, kernel, config)
}

pub fn conv3x3(p: nn::Path, c_in: i64, c_out: i64, stride: i64) -> nn::Conv2D {
    conv(p, c_in, c_out, 3, stride)
}

pub fn conv1x1(p: nn::Path, c_in: i64, c_out: i64, stride: i64) -> nn::Conv2D {
    conv(p, c_in, c_out, 1, stride)
}

/// PyTorch's BatchNorm epsilon.
const BN_EPS: f64 = 1e-5;

/// BatchNorm with weight 1, bias 0, PyTorch's momentum 0.1 and eps 1e-5.
pub fn batch_norm(p: nn::Path, channels: i64) -> nn::BatchNorm {
    let config = nn::BatchNormConfig {
        ws_init: Init::Const(1.0),
        bs_init: Init::Const(0.0),
        momentum: 0.1,
        eps: BN_EPS,
        ..Default::default()
    };
    nn::batch_norm2d(p, channels, config)
}

/// The classifier: PyTorch's default initialisation (uniform with bound 1/sqrt(fan_in)).
pub fn linear(p: nn::Path, d_in: i64, d_out: i64) -> nn::Linear {
    let bound = 1.0 / (d_in as f64).sqrt();
    let config = nn::LinearConfig {
        ws_init: Init::Uniform { lo: -bound, up: bound },
        bs_init: Some(Init::Uniform { lo: -bound, up: bound }),
        bias: true,
    };
    nn::linear(p, d_in, d_out, config)
}

/// Multiply-accumulates of a `kernel`x`kernel` convolution producing an `h`x`w` output.
pub fn conv_macs(c_in: i64, c_out: i64, kernel: i64, h_out: i64, w_out: i64) -> u64 {
    (kernel * kernel * c_in * c_out * h_out * w_out) as u64
}

/// A convolution and the BatchNorm after it (or none: the last convolution of a pre-activation
/// block; or one after the shortcut's addition: the "BN after addition" ablation). In evaluation mode the pair can run as one
/// convolution with the BN folded in (weight scaled by gamma / sqrt(var + eps) per output
/// channel, bias beta - mean * that scale): the same function up to float rounding, one pass over
/// the activations fewer. Folding is switched on for one evaluation at a time by
/// [`crate::model::Model::with_folded_batch_norm`]; training never sees it. Folded, in fp32 on a
/// CPU, the convolution also takes in what follows it (a shortcut's addition, the ReLU) through
/// oneDNN's fused inference convolution, so a block's output is written once.
#[derive(Debug)]
pub struct ConvBn {
    pub conv: nn::Conv2D,
    pub bn: Option<nn::BatchNorm>,
    /// The BN normalises the sum of the convolution and the shortcut, not the convolution alone.
    pub bn_after_add: bool,
    pub groups: i64,
    /// The convolution's variable path with dots (`layer1.0.conv1`), as PyTorch names the module.
    pub name: String,
    pub kernel: i64,
    /// A shortcut's projection (options B and C), not a layer of the main path.
    pub on_shortcut: bool,
    stride: i64,
    padding: i64,
    folded: RefCell<Option<Folded>>,
    /// While set, each forward pass keeps the BN's output (the layer's response) for the analyses.
    tapped: Cell<bool>,
    response: RefCell<Option<Tensor>>,
}

/// The folded convolution's weight and bias, and whether to fuse what follows it.
#[derive(Debug)]
struct Folded {
    weight: Tensor,
    bias: Tensor,
    fuse: bool,
}

impl ConvBn {
    /// A `kernel`x`kernel` convolution (variables under `conv_path`) and its BN (under `bn_path`).
    pub fn new(conv_path: nn::Path, bn_path: nn::Path, c_in: i64, c_out: i64, kernel: i64, stride: i64) -> ConvBn {
        Self::build(conv_path, Some(bn_path), c_in, c_out, kernel, stride, 1)
    }

    /// [`ConvBn::new`] with the convolution in `groups` groups.
    pub fn grouped(
        conv_path: nn::Path,
        bn_path: nn::Path,
        (c_in, c_out): (i64, i64),
        kernel: i64,
        stride: i64,
        groups: i64,
    ) -> ConvBn {
        Self::build(conv_path, Some(bn_path), c_in, c_out, kernel, stride, groups)
    }

    /// A convolution with no BN after it.
    pub fn bare(conv_path: nn::Path, c_in: i64, c_out: i64, kernel: i64, stride: i64) -> ConvBn {
        Self::build(conv_path, None, c_in, c_out, kernel, stride, 1)
    }

    /// A convolution whose BN comes after the shortcut's addition: see [`ConvBn::forward_add_relu`].
    pub fn bn_after_add(
        conv_path: nn::Path,
        bn_path: nn::Path,
        c_in: i64,
        c_out: i64,
        kernel: i64,
        stride: i64,
    ) -> ConvBn {
        ConvBn { bn_after_add: true, ..Self::new(conv_path, bn_path, c_in, c_out, kernel, stride) }
    }

    fn build(
        conv_path: nn::Path,
        bn_path: Option<nn::Path>,
        c_in: i64,
        c_out: i64,
        kernel: i64,
        stride: i64,
        groups: i64,
    ) -> ConvBn {
        ConvBn {
            name: conv_path.components().collect::<Vec<_>>().join("."),
            conv: grouped_conv(conv_path, c_in, c_out, kernel, stride, groups),
            bn: bn_path.map(|p| batch_norm(p, c_out)),
            bn_after_add: false,
            groups,
            kernel,
            on_shortcut: false,
            stride,
            padding: kernel / 2,
            folded: RefCell::new(None),
            tapped: Cell::new(false),
            response: RefCell::new(None),
        }
    }

    /// Multiply-accumulates for an `h_out`x`w_out` output.
    pub fn macs(&self, h_out: i64, w_out: i64) -> u64 {
        (self.conv.ws.numel() as i64 * h_out * w_out) as u64
    }

    pub fn stride(&self) -> i64 {
        self.stride
    }

    /// The same unit marked as a shortcut's projection.
    pub fn on_shortcut(self) -> ConvBn {
        ConvBn { on_shortcut: true, ..self }
    }

    /// Whether forward passes keep their response (`bn(conv(x))`) for [`ConvBn::take_response`].
    /// The fused evaluation path never forms it: analyses run unfolded.
    pub fn set_tapped(&self, tapped: bool) {
        self.tapped.set(tapped);
        if !tapped {
            self.response.borrow_mut().take();
        }
    }

    /// The response of the last forward pass while tapped.
    pub fn take_response(&self) -> Option<Tensor> {
        self.response.borrow_mut().take()
    }

    /// Folds the BN's current statistics and affine parameters into the convolution (computed in
    /// fp32; under bf16 autocast the folded convolution then runs in bf16, rounding as the
    /// unfolded pair's bf16 output does, at other places). With `fuse`, fp32 CPU inputs also go
    /// through oneDNN's fused convolution (which autocast does not reach: fuse only in fp32).
    pub fn fold(&self, fuse: bool) {
        let Some(bn) = self.bn.as_ref().filter(|_| !self.bn_after_add) else {
            return; // nothing to fold: no BN, or one after the addition
        };
        let folded = tch::no_grad(|| {
            let weight = bn.ws.as_ref().expect("BN layers are affine");
            let bias = bn.bs.as_ref().expect("BN layers are affine");
            let scale = weight / (&bn.running_var + BN_EPS).sqrt();
            let conv_weight = &self.conv.ws * scale.view([-1, 1, 1, 1]);
            let conv_bias = bias - &bn.running_mean * &scale;
            Folded { weight: conv_weight, bias: conv_bias, fuse }
        });
        *self.folded.borrow_mut() = Some(folded);
    }

    pub fn unfold(&self) {
        *self.folded.borrow_mut() = None;
    }

    /// `relu(bn(conv(x)))`.
    pub fn forward_relu(&self, x: &Tensor, train: bool) -> Tensor {
        self.fused(x, None, train).unwrap_or_else(|| x.apply_t(self, train).relu())
    }

    /// `relu(bn(conv(x)) + other)`: the end of a residual block; `relu(bn(conv(x) + other))` for a
    /// unit whose BN comes after the addition.
    pub fn forward_add_relu(&self, x: &Tensor, other: &Tensor, train: bool) -> Tensor {
        if self.bn_after_add {
            let bn = self.bn.as_ref().expect("a BN after the addition");
            let response = (x.apply(&self.conv) + other).apply_t(bn, train);
            self.keep(&response);
            return response.relu();
        }
        self.fused(x, Some(other), train).unwrap_or_else(|| (x.apply_t(self, train) + other).relu())
    }

    /// `bn(conv(x)) + other`, no ReLU after the addition.
    pub fn forward_add(&self, x: &Tensor, other: &Tensor, train: bool) -> Tensor {
        self.fused_with(x, Some(other), false, train).unwrap_or_else(|| x.apply_t(self, train) + other)
    }

    /// Keeps `response` where the unit is tapped.
    fn keep(&self, response: &Tensor) {
        if self.tapped.get() {
            *self.response.borrow_mut() = Some(response.shallow_clone());
        }
    }

    /// The fused evaluation, where it applies: folded with `fuse`, fp32 tensors on the CPU; the
    /// op-by-op path computes the same otherwise (and if oneDNN refuses).
    fn fused(&self, x: &Tensor, other: Option<&Tensor>, train: bool) -> Option<Tensor> {
        self.fused_with(x, other, true, train)
    }

    fn fused_with(&self, x: &Tensor, other: Option<&Tensor>, relu: bool, train: bool) -> Option<Tensor> {
        if train || self.groups != 1 {
            return None;
        }
        let folded = self.folded.borrow();
        let folded = folded.as_ref().filter(|f| f.fuse)?;
        let fp32_cpu = |t: &Tensor| t.device() == Device::Cpu && t.kind() == Kind::Float;
        if !fp32_cpu(x) || !other.is_none_or(fp32_cpu) {
            return None;
        }
        native::conv_fused(x, &folded.weight, &folded.bias, self.stride, self.padding, other, relu).ok()
    }
}

impl ModuleT for ConvBn {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let folded = match self.folded.borrow().as_ref() {
            Some(Folded { weight, bias, .. }) if !train => {
                Some(x.conv2d(weight, Some(bias), [self.stride; 2], [self.padding; 2], [1, 1], self.groups))
            }
            _ => None,
        };
        let response = folded.unwrap_or_else(|| {
            let out = x.apply(&self.conv);
            match &self.bn {
                Some(bn) if !self.bn_after_add => out.apply_t(bn, train),
                _ => out,
            }
        });
        if self.bn.is_some() && !self.bn_after_add {
            self.keep(&response);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn a_folded_conv_bn_computes_what_conv_then_bn_computes_in_evaluation() {
        let vs = nn::VarStore::new(Device::Cpu);
        let unit = ConvBn::new(vs.root() / "c", vs.root() / "b", 4, 6, 3, 2);
        tch::no_grad(|| {
            for (name, mut t) in vs.variables() {
                if name.starts_with('b') {
                    // Statistics and affine parameters away from their identity values.
                    t.copy_(&(Tensor::rand_like(&t) + 0.5));
                }
            }
        });
        let x = Tensor::randn([3, 4, 9, 9], (Kind::Float, Device::Cpu));
        let unfolded = unit.forward_t(&x, false);
        let other = Tensor::randn([3, 6, 5, 5], (Kind::Float, Device::Cpu));
        let (relu, add_relu) = (unfolded.relu(), (&unfolded + &other).relu());
        for fuse in [false, true] {
            unit.fold(fuse);
            let folded = unit.forward_t(&x, false);
            assert_eq!(folded.size(), vec![3, 6, 5, 5]);
            assert!(folded.allclose(&unfolded, 1e-5, 1e-5, false), "{}", (&folded - &unfolded).abs().max());
            assert_eq!(unit.fused(&x, None, false).is_some(), fuse, "fused only when asked");
            assert!(unit.forward_relu(&x, false).allclose(&relu, 1e-5, 1e-5, false), "fuse {fuse}");
            assert!(unit.forward_add_relu(&x, &other, false).allclose(&add_relu, 1e-5, 1e-5, false), "fuse {fuse}");
        }
        unit.unfold();
        assert!(unit.forward_t(&x, false).equal(&unfolded));
        unit.fold(true);
        // Training mode never uses the folding: batch statistics (which also update the running ones).
        assert!(!unit.forward_t(&x, true).allclose(&unfolded, 1e-3, 1e-3, false), "training uses batch statistics");
    }
}
