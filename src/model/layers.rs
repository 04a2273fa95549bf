//! Layer helpers with the paper's initialisation stated in one place, as torchvision's
//! `conv3x3` and `conv1x1`.
//!
//! tch's defaults differ from the paper: its conv weights are Kaiming *uniform* fan-in and its
//! BatchNorm weights are uniform(0, 1). Here convolutions get He (MSRA) normal initialisation
//! (fan-out, as torchvision and the PyTorch CIFAR reproductions use), BatchNorm weight 1 and bias 0,
//! and the final fully-connected layer PyTorch's default uniform(+-1/sqrt(fan_in)).

use super::taps::Pass;
use tch::nn::{self, init::FanInOut, init::NonLinearity, init::NormalOrUniform, Init};
use tch::Tensor;

/// He et al. (2015, "Delving deep into rectifiers") normal initialisation.
const HE_NORMAL: Init =
    Init::Kaiming { dist: NormalOrUniform::Normal, fan: FanInOut::FanOut, non_linearity: NonLinearity::ReLU };

/// PyTorch's BatchNorm epsilon.
pub const BN_EPS: f64 = 1e-5;

/// PyTorch's BatchNorm momentum: the weight of a batch's statistics in the running ones.
pub const BN_MOMENTUM: f64 = 0.1;

thread_local! {
    /// Whether the layers being built are only counted ([`shapes_only`]).
    static SHAPES_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `build` with every drawn weight of the layers it makes zero instead: the same shapes,
/// without drawing them (the zoo's 1.4 G parameters take seconds to draw). For counting
/// parameters and MACs; such a net is never trained or evaluated.
pub fn shapes_only<T>(build: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SHAPES_ONLY.set(self.0);
        }
    }
    let _restore = Restore(SHAPES_ONLY.replace(true));
    build()
}

/// `init`, or zeros inside [`shapes_only`]: every random initialisation goes through here.
pub fn drawn(init: Init) -> Init {
    if SHAPES_ONLY.get() {
        Init::Const(0.0)
    } else {
        init
    }
}

/// A bias-free convolution with "same" padding (odd kernels), and the module name PyTorch gives it.
#[derive(Debug)]
pub struct Conv {
    /// tch's convolution: the weight (`ws`), no bias.
    pub conv: nn::Conv2D,
    /// The variable path with dots (`layer1.0.conv1`), as PyTorch names the module.
    pub name: String,
    /// The kernel's side (1, 3, 7).
    pub kernel: i64,
    /// The stride in both dimensions.
    pub stride: i64,
    /// Groups the channels are split into (ResNeXt's cardinality); 1 for an ordinary convolution.
    pub groups: i64,
}

impl Conv {
    /// A `kernel`x`kernel` convolution in `groups` groups (ResNeXt's split-transform-merge); He
    /// normal over the fan-out of one group's filters, as torchvision initialises grouped
    /// convolutions.
    pub fn new(p: nn::Path, c_in: i64, c_out: i64, kernel: i64, stride: i64, groups: i64) -> Conv {
        let config = nn::ConvConfig {
            stride,
            padding: kernel / 2,
            bias: false,
            ws_init: drawn(HE_NORMAL),
            groups,
            ..Default::default()
        };
        let name = p.components().collect::<Vec<_>>().join(".");
        Conv { conv: nn::conv2d(p, c_in, c_out, kernel, config), name, kernel, stride, groups }
    }

    /// `conv(x)`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.apply(&self.conv)
    }

    /// The "same" padding: half the kernel.
    pub fn padding(&self) -> i64 {
        self.kernel / 2
    }

    /// The output size of an input `size` pixels wide: ceil(size / stride).
    pub fn out_size(&self, size: i64) -> i64 {
        out_size(size, self.stride)
    }

    /// Multiply-accumulates for an `h_out`x`w_out` output.
    pub fn macs(&self, h_out: i64, w_out: i64) -> u64 {
        (self.conv.ws.numel() as i64 * h_out * w_out) as u64
    }
}

/// A 3x3 convolution, padding 1.
pub fn conv3x3(p: nn::Path, c_in: i64, c_out: i64, stride: i64, groups: i64) -> Conv {
    Conv::new(p, c_in, c_out, 3, stride, groups)
}

/// A 1x1 convolution (a bottleneck's reduction and expansion, a shortcut's projection).
pub fn conv1x1(p: nn::Path, c_in: i64, c_out: i64, stride: i64) -> Conv {
    Conv::new(p, c_in, c_out, 1, stride, 1)
}

/// BatchNorm with weight 1, bias 0, PyTorch's momentum 0.1 and eps 1e-5.
pub fn batch_norm(p: nn::Path, channels: i64) -> nn::BatchNorm {
    let config = nn::BatchNormConfig {
        ws_init: Init::Const(1.0),
        bs_init: Init::Const(0.0),
        momentum: BN_MOMENTUM,
        eps: BN_EPS,
        ..Default::default()
    };
    nn::batch_norm2d(p, channels, config)
}

/// `relu(bn(x) + identity)` (no addition without `identity`): in one fused operation where `pass`
/// fuses ([`Pass::fuses`]), else as libtorch's ops one after another, PyTorch's order.
pub fn bn_relu(bn: &nn::BatchNorm, x: &Tensor, identity: Option<&Tensor>, pass: Pass) -> Tensor {
    if pass.fuses(x, identity) {
        let (weight, bias) = (bn.ws.as_ref().expect("an affine BN"), bn.bs.as_ref().expect("an affine BN"));
        return crate::native::bn_relu(
            x,
            identity,
            weight,
            bias,
            &bn.running_mean,
            &bn.running_var,
            BN_MOMENTUM,
            BN_EPS,
        )
        .expect("the fused BN's inputs were checked by Pass::fuses");
    }
    let out = x.apply_t(bn, pass.train);
    match identity {
        Some(identity) => (out + identity).relu(),
        None => out.relu(),
    }
}

/// The classifier: PyTorch's default initialisation (uniform with bound 1/sqrt(fan_in)).
pub fn linear(p: nn::Path, d_in: i64, d_out: i64) -> nn::Linear {
    let bound = 1.0 / (d_in as f64).sqrt();
    let config = nn::LinearConfig {
        ws_init: drawn(Init::Uniform { lo: -bound, up: bound }),
        bs_init: Some(drawn(Init::Uniform { lo: -bound, up: bound })),
        bias: true,
    };
    nn::linear(p, d_in, d_out, config)
}

/// Output size of a padded convolution (or pooling) with `stride`: ceil(size / stride).
pub fn out_size(size: i64, stride: i64) -> i64 {
    (size + stride - 1) / stride
}

/// A convolution of a built net and the BN that normalises its output (none: the last
/// convolution of a pre-activation block), as the analyses and the layer listings see it.
#[derive(Debug, Clone, Copy)]
pub struct ConvRef<'a> {
    /// The convolution.
    pub conv: &'a Conv,
    /// Right after it, or after the shortcut's addition (the "BN after addition" ablation).
    pub bn: Option<&'a nn::BatchNorm>,
    /// A shortcut's projection (options B and C), not a layer of the main path.
    pub on_shortcut: bool,
}

/// A convolution and the BatchNorm after it, `bn(conv(x))`: the response the analyses tap (He et
/// al. 2015, Fig. 7: "after BN and before nonlinearity"). Folding the BN into the convolution for
/// evaluation is [`super::folded`]'s.
#[derive(Debug)]
pub struct ConvBn {
    /// The bias-free convolution.
    pub conv: Conv,
    /// The BatchNorm of its output.
    pub bn: nn::BatchNorm,
}

impl ConvBn {
    /// `conv` and a BN of its outputs under `bn_path`.
    pub fn new(conv: Conv, bn_path: nn::Path) -> ConvBn {
        let channels = conv.conv.ws.size()[0];
        ConvBn { bn: batch_norm(bn_path, channels), conv }
    }

    /// `bn(conv(x))`, kept by `pass` under the convolution's name where it taps it.
    pub fn forward(&self, x: &Tensor, pass: Pass) -> Tensor {
        let out = self.conv.forward(x).apply_t(&self.bn, pass.train);
        pass.keep(&self.conv.name, &out);
        out
    }

    /// `relu(bn(conv(x)) + identity)` (no addition without `identity`), BN to ReLU fused where
    /// `pass` fuses; otherwise [`ConvBn::forward`] (and its tap) then the addition and ReLU.
    pub fn forward_relu(&self, x: &Tensor, identity: Option<&Tensor>, pass: Pass) -> Tensor {
        let conv = self.conv.forward(x);
        if pass.fuses(&conv, identity) {
            return bn_relu(&self.bn, &conv, identity, pass);
        }
        let out = conv.apply_t(&self.bn, pass.train);
        pass.keep(&self.conv.name, &out);
        match identity {
            Some(identity) => (out + identity).relu(),
            None => out.relu(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn the_helpers_pad_to_keep_the_size_and_name_the_module_as_pytorch() {
        let vs = nn::VarStore::new(Device::Cpu);
        let c3 = conv3x3(vs.root() / "layer1" / 0 / "conv1", 4, 8, 2, 2);
        let c1 = conv1x1(vs.root() / "down", 4, 8, 1);
        assert_eq!((c3.name.as_str(), c3.padding(), c3.conv.ws.size()), ("layer1.0.conv1", 1, vec![8, 2, 3, 3]));
        assert_eq!((c1.name.as_str(), c1.padding(), c1.conv.ws.size()), ("down", 0, vec![8, 4, 1, 1]));
        assert!(c3.conv.bs.is_none() && c1.conv.bs.is_none(), "bias-free");
        let x = Tensor::randn([1, 4, 9, 9], (Kind::Float, Device::Cpu));
        assert_eq!(c3.forward(&x).size(), vec![1, 8, 5, 5]);
        assert_eq!(c3.out_size(9), 5);
        assert_eq!(c3.macs(5, 5), 8 * 2 * 9 * 25);
        assert_eq!(c1.forward(&x).size(), vec![1, 8, 9, 9]);
    }

    #[test]
    fn a_conv_bn_normalises_its_convolution_with_weight_one_and_bias_zero() {
        let vs = nn::VarStore::new(Device::Cpu);
        let unit = ConvBn::new(conv3x3(vs.root() / "c", 3, 6, 1, 1), vs.root() / "b");
        let vars = vs.variables();
        assert_eq!(Vec::<f32>::try_from(&vars["b.weight"]).unwrap(), vec![1.0; 6]);
        assert_eq!(Vec::<f32>::try_from(&vars["b.bias"]).unwrap(), vec![0.0; 6]);
        let x = Tensor::randn([4, 3, 5, 5], (Kind::Float, Device::Cpu));
        let out = unit.forward(&x, Pass::new(true));
        // Training mode: batch statistics, so every channel has mean 0 and variance 1.
        let mean = out.mean_dim([0, 2, 3].as_slice(), false, Kind::Float);
        assert!(mean.abs().max().double_value(&[]) < 1e-5);
    }
}
