//! Building blocks: the two-layer basic block and the shortcuts that make it residual.

use super::layers::{conv_macs, ConvBn};
use super::zoo::Shortcut;
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// A block of layers (with or without a shortcut) and its cost.
pub trait Block: ModuleT + Send + std::fmt::Debug {
    /// Multiply-accumulates for an `h`x`w` input.
    fn macs(&self, h: i64, w: i64) -> u64;
    fn stride(&self) -> i64;
    /// Every convolution with its BN, for folding in evaluation.
    fn conv_bns(&self) -> Vec<&ConvBn>;
}

/// How a residual block's input reaches the addition.
#[derive(Debug)]
pub enum ShortcutPath {
    /// Shapes match: the input itself (options A and B).
    Identity,
    /// Option A where the shape changes: subsample by `stride`, then zero channels added
    /// `pad_before` in front of and `pad_after` behind the input's channels. No parameters.
    ZeroPad { stride: i64, pad_before: i64, pad_after: i64 },
    /// Options B (where the shape changes) and C (everywhere): 1x1 convolution + BN.
    Projection(Box<ConvBn>),
}

impl ShortcutPath {
    /// The shortcut of `option` from `c_in` to `c_out` channels at `stride`; a projection's
    /// variables are named `p/0` (conv) and `p/1` (BN), as in PyTorch's `nn.Sequential`.
    pub fn new(p: nn::Path, option: Shortcut, c_in: i64, c_out: i64, stride: i64) -> ShortcutPath {
        let shape_changes = stride != 1 || c_in != c_out;
        match option {
            Shortcut::C => Self::projection(p, c_in, c_out, stride),
            Shortcut::B if shape_changes => Self::projection(p, c_in, c_out, stride),
            Shortcut::A if shape_changes => {
                let pad_before = (c_out - c_in) / 2;
                ShortcutPath::ZeroPad { stride, pad_before, pad_after: c_out - c_in - pad_before }
            }
            Shortcut::A | Shortcut::B => ShortcutPath::Identity,
        }
    }

    fn projection(p: nn::Path, c_in: i64, c_out: i64, stride: i64) -> ShortcutPath {
        ShortcutPath::Projection(Box::new(ConvBn::new(&p / "0", &p / "1", c_in, c_out, 1, stride).on_shortcut()))
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            ShortcutPath::Identity => x.shallow_clone(),
            ShortcutPath::ZeroPad { stride, pad_before, pad_after } => {
                let subsampled = x.slice(2, 0, None, *stride).slice(3, 0, None, *stride);
                // constant_pad_nd pads the last dimension first: (W, W, H, H, C, C).
                subsampled.constant_pad_nd([0, 0, 0, 0, *pad_before, *pad_after])
            }
            ShortcutPath::Projection(projection) => x.apply_t(projection.as_ref(), train),
        }
    }

    fn macs(&self, c_in: i64, c_out: i64, h_out: i64, w_out: i64) -> u64 {
        match self {
            ShortcutPath::Projection(_) => conv_macs(c_in, c_out, 1, h_out, w_out),
            _ => 0,
        }
    }
}

/// Two 3x3 conv+BN layers; with a shortcut, the input is added before the second ReLU.
/// Without one (`shortcut: None`) it is the plain net's pair of layers.
#[derive(Debug)]
pub struct BasicBlock {
    conv_bn1: ConvBn,
    conv_bn2: ConvBn,
    pub shortcut: Option<ShortcutPath>,
    c_in: i64,
    c_out: i64,
    stride: i64,
}

impl BasicBlock {
    /// `shortcut` is `None` for a plain block; `shortcut_name` is the sub-path a projection's
    /// variables live under (`shortcut` in the CIFAR reproductions, `downsample` in torchvision).
    pub fn new(
        p: nn::Path,
        c_in: i64,
        c_out: i64,
        stride: i64,
        shortcut: Option<Shortcut>,
        shortcut_name: &str,
    ) -> BasicBlock {
        BasicBlock {
            conv_bn1: ConvBn::new(&p / "conv1", &p / "bn1", c_in, c_out, 3, stride),
            conv_bn2: ConvBn::new(&p / "conv2", &p / "bn2", c_out, c_out, 3, 1),
            shortcut: shortcut.map(|s| ShortcutPath::new(&p / shortcut_name, s, c_in, c_out, stride)),
            c_in,
            c_out,
            stride,
        }
    }

    /// Multiply-accumulates for an `h`x`w` input.
    pub fn macs(&self, h: i64, w: i64) -> u64 {
        let (h_out, w_out) = (out_size(h, self.stride), out_size(w, self.stride));
        let convs =
            conv_macs(self.c_in, self.c_out, 3, h_out, w_out) + conv_macs(self.c_out, self.c_out, 3, h_out, w_out);
        let shortcut = self.shortcut.as_ref().map_or(0, |s| s.macs(self.c_in, self.c_out, h_out, w_out));
        convs + shortcut
    }
}

impl Block for BasicBlock {
    fn macs(&self, h: i64, w: i64) -> u64 {
        self.macs(h, w)
    }

    fn stride(&self) -> i64 {
        self.stride
    }

    fn conv_bns(&self) -> Vec<&ConvBn> {
        with_shortcut(vec![&self.conv_bn1, &self.conv_bn2], &self.shortcut)
    }
}

impl Block for Bottleneck {
    fn macs(&self, h: i64, w: i64) -> u64 {
        self.macs(h, w)
    }

    fn stride(&self) -> i64 {
        self.stride
    }

    fn conv_bns(&self) -> Vec<&ConvBn> {
        with_shortcut(vec![&self.conv_bn1, &self.conv_bn2, &self.conv_bn3], &self.shortcut)
    }
}

/// `units` and the shortcut's projection, if it has one.
fn with_shortcut<'a>(mut units: Vec<&'a ConvBn>, shortcut: &'a Option<ShortcutPath>) -> Vec<&'a ConvBn> {
    if let Some(ShortcutPath::Projection(projection)) = shortcut {
        units.push(projection);
    }
    units
}

/// Output size of a padded convolution (or pooling) with `stride`: ceil(size / stride).
pub fn out_size(size: i64, stride: i64) -> i64 {
    (size + stride - 1) / stride
}

/// The ImageNet nets' bottleneck: 1x1 reduce, 3x3, 1x1 expand (x4), each with BN; the shortcut
/// is added before the last ReLU. The stride sits on the first 1x1 conv, as in the paper (and
/// Keras), or on the 3x3 conv with `stride_on_spatial`, as in torchvision ("ResNet v1.5").
#[derive(Debug)]
pub struct Bottleneck {
    conv_bn1: ConvBn,
    conv_bn2: ConvBn,
    conv_bn3: ConvBn,
    pub shortcut: Option<ShortcutPath>,
    c_in: i64,
    width: i64,
    stride: i64,
    stride_on_spatial: bool,
}

impl Bottleneck {
    pub const EXPANSION: i64 = 4;

    pub fn new(
        p: nn::Path,
        c_in: i64,
        width: i64,
        stride: i64,
        stride_on_spatial: bool,
        shortcut: Option<Shortcut>,
    ) -> Bottleneck {
        let c_out = width * Self::EXPANSION;
        let (stride1, stride2) = if stride_on_spatial { (1, stride) } else { (stride, 1) };
        Bottleneck {
            conv_bn1: ConvBn::new(&p / "conv1", &p / "bn1", c_in, width, 1, stride1),
            conv_bn2: ConvBn::new(&p / "conv2", &p / "bn2", width, width, 3, stride2),
            conv_bn3: ConvBn::new(&p / "conv3", &p / "bn3", width, c_out, 1, 1),
            shortcut: shortcut.map(|s| ShortcutPath::new(&p / "downsample", s, c_in, c_out, stride)),
            c_in,
            width,
            stride,
            stride_on_spatial,
        }
    }

    pub fn macs(&self, h: i64, w: i64) -> u64 {
        let (h_out, w_out) = (out_size(h, self.stride), out_size(w, self.stride));
        let (h1, w1) = if self.stride_on_spatial { (h, w) } else { (h_out, w_out) };
        let c_out = self.width * Self::EXPANSION;
        let convs = conv_macs(self.c_in, self.width, 1, h1, w1)
            + conv_macs(self.width, self.width, 3, h_out, w_out)
            + conv_macs(self.width, c_out, 1, h_out, w_out);
        let shortcut = self.shortcut.as_ref().map_or(0, |s| s.macs(self.c_in, c_out, h_out, w_out));
        convs + shortcut
    }
}

impl ModuleT for Bottleneck {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let out = self.conv_bn2.forward_relu(&self.conv_bn1.forward_relu(x, train), train);
        match &self.shortcut {
            Some(shortcut) => self.conv_bn3.forward_add_relu(&out, &shortcut.forward_t(x, train), train),
            None => self.conv_bn3.forward_relu(&out, train),
        }
    }
}

impl ModuleT for BasicBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let out = self.conv_bn1.forward_relu(x, train);
        match &self.shortcut {
            Some(shortcut) => self.conv_bn2.forward_add_relu(&out, &shortcut.forward_t(x, train), train),
            None => self.conv_bn2.forward_relu(&out, train),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn option_a_subsamples_and_pads_zero_channels_equally_around_the_input() {
        let vs = nn::VarStore::new(Device::Cpu);
        let shortcut = ShortcutPath::new(vs.root(), Shortcut::A, 16, 32, 2);
        assert!(vs.variables().is_empty(), "option A has no parameters");
        let x = Tensor::randn([2, 16, 8, 8], (Kind::Float, Device::Cpu));
        let y = shortcut.forward_t(&x, true);
        assert_eq!(y.size(), vec![2, 32, 4, 4]);
        let subsampled = x.slice(2, 0, None, 2).slice(3, 0, None, 2);
        assert!(y.narrow(1, 8, 16).equal(&subsampled), "the input sits in channels 8..24");
        assert_eq!(y.narrow(1, 0, 8).abs().sum(Kind::Float).double_value(&[]), 0.0);
        assert_eq!(y.narrow(1, 24, 8).abs().sum(Kind::Float).double_value(&[]), 0.0);
    }

    #[test]
    fn identity_where_the_shape_is_kept_projection_where_the_option_asks() {
        let vs = nn::VarStore::new(Device::Cpu);
        let x = Tensor::randn([1, 16, 4, 4], (Kind::Float, Device::Cpu));
        for option in [Shortcut::A, Shortcut::B] {
            let s = ShortcutPath::new(vs.root(), option, 16, 16, 1);
            assert!(matches!(s, ShortcutPath::Identity));
            assert!(s.forward_t(&x, false).equal(&x));
        }
        assert!(matches!(ShortcutPath::new(vs.root(), Shortcut::B, 16, 32, 2), ShortcutPath::Projection { .. }));
        assert!(matches!(ShortcutPath::new(vs.root() / "c", Shortcut::C, 16, 16, 1), ShortcutPath::Projection { .. }));
    }

    #[test]
    fn a_plain_block_has_no_shortcut_and_a_residual_block_adds_its_input() {
        let vs = nn::VarStore::new(Device::Cpu);
        let plain = BasicBlock::new(vs.root() / "p", 16, 16, 1, None, "shortcut");
        let residual = BasicBlock::new(vs.root() / "r", 16, 16, 1, Some(Shortcut::A), "shortcut");
        assert!(plain.shortcut.is_none());
        // With the second BN's weight at zero the residual branch is zero: out = relu(x).
        tch::no_grad(|| {
            for (name, mut t) in vs.variables() {
                if name.ends_with("bn2.weight") || name.ends_with("bn2.bias") {
                    let _ = t.zero_();
                }
            }
        });
        let x = Tensor::randn([2, 16, 4, 4], (Kind::Float, Device::Cpu));
        assert!(residual.forward_t(&x, false).allclose(&x.relu(), 1e-6, 1e-6, false));
        assert_eq!(plain.forward_t(&x, false).abs().sum(Kind::Float).double_value(&[]), 0.0);
    }
}
