//! Building blocks: the residual block in its variants (basic, bottleneck, grouped; post- and
//! pre-activation and the ablations of He et al. 2016) and the shortcuts that make it residual
//! (identity, zero padding, projection, the highway gate).

use super::layers::{batch_norm, ConvBn};
use super::zoo::{BlockVariant, Shortcut};
use tch::nn::{self, Init, ModuleT};
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
    /// Shapes match: the input itself (options A, B and the highway's carry).
    Identity,
    /// Option A where the shape changes: subsample by `stride`, then zero channels added
    /// `pad_before` in front of and `pad_after` behind the input's channels. No parameters.
    ZeroPad { stride: i64, pad_before: i64, pad_after: i64 },
    /// Options B and highway (where the shape changes) and C (everywhere): 1x1 convolution + BN.
    Projection(Box<ConvBn>),
}

impl ShortcutPath {
    /// The shortcut of `option` from `c_in` to `c_out` channels at `stride`; a projection's
    /// variables are named `p/0` (conv) and `p/1` (BN), as in PyTorch's `nn.Sequential`.
    pub fn new(p: nn::Path, option: Shortcut, c_in: i64, c_out: i64, stride: i64) -> ShortcutPath {
        let shape_changes = stride != 1 || c_in != c_out;
        match option {
            Shortcut::C => Self::projection(p, c_in, c_out, stride),
            Shortcut::B | Shortcut::Highway if shape_changes => Self::projection(p, c_in, c_out, stride),
            Shortcut::A if shape_changes => {
                let pad_before = (c_out - c_in) / 2;
                ShortcutPath::ZeroPad { stride, pad_before, pad_after: c_out - c_in - pad_before }
            }
            Shortcut::A | Shortcut::B | Shortcut::Highway => ShortcutPath::Identity,
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

    fn macs(&self, h_out: i64, w_out: i64) -> u64 {
        match self {
            ShortcutPath::Projection(projection) => projection.macs(h_out, w_out),
            _ => 0,
        }
    }
}

/// The highway gate (Srivastava et al. 2015): T(x) = sigmoid(conv1x1(x) + b), its bias starting
/// negative so the block first carries its input.
#[derive(Debug)]
pub struct Gate {
    conv: nn::Conv2D,
    c_in: i64,
    c_out: i64,
}

/// The gate bias highway blocks start from (Srivastava et al.: "negative, e.g. -1 or -3").
pub const DEFAULT_GATE_BIAS: f64 = -2.0;

impl Gate {
    fn new(p: nn::Path, c_in: i64, c_out: i64, stride: i64, bias: f64) -> Gate {
        let config = nn::ConvConfig { stride, bias: true, bs_init: Init::Const(bias), ..Default::default() };
        Gate { conv: nn::conv2d(p, c_in, c_out, 1, config), c_in, c_out }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.apply(&self.conv).sigmoid()
    }
}

/// A block: (pre-activation only: BN and ReLU of the input), convolutions each followed by BN
/// and ReLU, and the last one's end, which the variant decides:
///
/// | variant | end, with a shortcut s | without (a plain net) |
/// | --- | --- | --- |
/// | post (He et al. 2015) | relu(bn(conv(h)) + s(x)) | relu(bn(conv(h))) |
/// | pre (He et al. 2016) | conv(h) + s(x) | conv(h) |
/// | bn-after-add | relu(bn(conv(h) + s(x))) | |
/// | no-relu-after-add | bn(conv(h)) + s(x) | |
/// | post with a highway gate T | T * relu(bn(conv(h))) + (1 - T) * s(x) | |
///
/// Pre-activation blocks project the activated input, and add the input itself where the shortcut
/// is an identity (or zero padding), as the public pre-activation reproductions do.
#[derive(Debug)]
pub struct ResBlock {
    pre_bn: Option<nn::BatchNorm>,
    convs: Vec<ConvBn>,
    pub shortcut: Option<ShortcutPath>,
    gate: Option<Gate>,
    variant: BlockVariant,
    stride: i64,
}

/// What every block of a net shares: its shortcut option (None: plain), variant and gate bias,
/// and where a projection's variables live (`shortcut` in the CIFAR reproductions, `downsample` in torchvision).
#[derive(Debug, Clone, Copy)]
pub struct BlockStyle<'a> {
    pub shortcut: Option<Shortcut>,
    pub variant: BlockVariant,
    pub gate_bias: f64,
    pub shortcut_name: &'a str,
}

impl<'a> BlockStyle<'a> {
    /// The paper's post-activation block with `shortcut`.
    pub fn post(shortcut: Option<Shortcut>, shortcut_name: &'a str) -> BlockStyle<'a> {
        BlockStyle { shortcut, variant: BlockVariant::Post, gate_bias: DEFAULT_GATE_BIAS, shortcut_name }
    }
}

impl ResBlock {
    /// Two 3x3 convolutions from `c_in` to `c_out` channels, the first with `stride`.
    pub fn basic(p: nn::Path, c_in: i64, c_out: i64, stride: i64, style: BlockStyle) -> ResBlock {
        Self::build(&p, c_in, c_out, &[(3, c_out, stride, 1), (3, c_out, 1, 1)], stride, style)
    }

    /// 1x1 reduce to `width`, 3x3 (`groups` groups), 1x1 expand to `c_out`; the stride on the first
    /// 1x1 conv, as in the paper, or on the 3x3 with `stride_on_spatial` (torchvision's "v1.5").
    #[allow(clippy::too_many_arguments)]
    pub fn bottleneck(
        p: nn::Path,
        c_in: i64,
        width: i64,
        c_out: i64,
        stride: i64,
        stride_on_spatial: bool,
        groups: i64,
        style: BlockStyle,
    ) -> ResBlock {
        let (stride1, stride2) = if stride_on_spatial { (1, stride) } else { (stride, 1) };
        Self::build(
            &p,
            c_in,
            c_out,
            &[(1, width, stride1, 1), (3, width, stride2, groups), (1, c_out, 1, 1)],
            stride,
            style,
        )
    }

    /// `convs`: (kernel, output channels, stride, groups) of each convolution.
    fn build(
        p: &nn::Path,
        c_in: i64,
        c_out: i64,
        convs: &[(i64, i64, i64, i64)],
        stride: i64,
        style: BlockStyle,
    ) -> ResBlock {
        let variant = if style.shortcut.is_none() && variant_needs_shortcut(style.variant) {
            BlockVariant::Post
        } else {
            style.variant
        };
        let pre = variant == BlockVariant::Pre;
        let last = convs.len() - 1;
        let mut channels = c_in;
        let units = convs
            .iter()
            .enumerate()
            .map(|(i, &(kernel, out, stride, groups))| {
                let conv_path = p / format!("conv{}", i + 1);
                // Pre-activation: bn1 normalises the input, bn(i+1) follows conv(i); the last conv has none.
                let bn_path = p / format!("bn{}", if pre { i + 2 } else { i + 1 });
                let unit = match (i == last, variant) {
                    (true, BlockVariant::Pre) => ConvBn::bare(conv_path, channels, out, kernel, stride),
                    (true, BlockVariant::BnAfterAdd) => {
                        ConvBn::bn_after_add(conv_path, bn_path, channels, out, kernel, stride)
                    }
                    _ => ConvBn::grouped(conv_path, bn_path, (channels, out), kernel, stride, groups),
                };
                channels = out;
                unit
            })
            .collect();
        ResBlock {
            pre_bn: pre.then(|| batch_norm(p / "bn1", c_in)),
            convs: units,
            shortcut: style.shortcut.map(|s| ShortcutPath::new(p / style.shortcut_name, s, c_in, c_out, stride)),
            gate: (style.shortcut == Some(Shortcut::Highway))
                .then(|| Gate::new(p / "gate", c_in, c_out, stride, style.gate_bias)),
            variant,
            stride,
        }
    }

    /// Multiply-accumulates for an `h`x`w` input.
    pub fn macs(&self, h: i64, w: i64) -> u64 {
        let (mut h_now, mut w_now) = (h, w);
        let mut total = 0;
        for unit in &self.convs {
            (h_now, w_now) = (out_size(h_now, unit.stride()), out_size(w_now, unit.stride()));
            total += unit.macs(h_now, w_now);
        }
        let (h_out, w_out) = (out_size(h, self.stride), out_size(w, self.stride));
        let shortcut = self.shortcut.as_ref().map_or(0, |s| s.macs(h_out, w_out));
        let gate = self.gate.as_ref().map_or(0, |g| (g.c_in * g.c_out * h_out * w_out) as u64);
        total + shortcut + gate
    }

    /// The gate's bias (highway blocks), to set it in tests and analyses.
    pub fn gate_bias(&self) -> Option<&Tensor> {
        self.gate.as_ref().and_then(|g| g.conv.bs.as_ref())
    }
}

/// The ablations change the addition: without a shortcut they are the post-activation block.
fn variant_needs_shortcut(variant: BlockVariant) -> bool {
    matches!(variant, BlockVariant::BnAfterAdd | BlockVariant::NoReluAfterAdd)
}

impl Block for ResBlock {
    fn macs(&self, h: i64, w: i64) -> u64 {
        self.macs(h, w)
    }

    fn stride(&self) -> i64 {
        self.stride
    }

    fn conv_bns(&self) -> Vec<&ConvBn> {
        let mut units: Vec<&ConvBn> = self.convs.iter().collect();
        if let Some(ShortcutPath::Projection(projection)) = &self.shortcut {
            units.push(projection);
        }
        units
    }
}

impl ModuleT for ResBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let activated = self.pre_bn.as_ref().map(|bn| x.apply_t(bn, train).relu());
        let input = activated.as_ref().unwrap_or(x);
        let (last, first) = self.convs.split_last().expect("a block has convolutions");
        let mut h = input.shallow_clone();
        for unit in first {
            h = unit.forward_relu(&h, train);
        }
        let Some(shortcut) = &self.shortcut else {
            return match self.variant {
                BlockVariant::Pre => last.forward_t(&h, train),
                _ => last.forward_relu(&h, train),
            };
        };
        let carried = match shortcut {
            ShortcutPath::Projection(_) => shortcut.forward_t(input, train),
            _ => shortcut.forward_t(x, train),
        };
        if let Some(gate) = &self.gate {
            let t = gate.forward(x);
            return &t * last.forward_relu(&h, train) + (1.0 - &t) * carried;
        }
        match self.variant {
            BlockVariant::Post | BlockVariant::BnAfterAdd => last.forward_add_relu(&h, &carried, train),
            BlockVariant::NoReluAfterAdd => last.forward_add(&h, &carried, train),
            BlockVariant::Pre => last.forward_t(&h, train) + carried,
        }
    }
}

/// Output size of a padded convolution (or pooling) with `stride`: ceil(size / stride).
pub fn out_size(size: i64, stride: i64) -> i64 {
    (size + stride - 1) / stride
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
        let plain = ResBlock::basic(vs.root() / "p", 16, 16, 1, BlockStyle::post(None, "shortcut"));
        let residual = ResBlock::basic(vs.root() / "r", 16, 16, 1, BlockStyle::post(Some(Shortcut::A), "shortcut"));
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

    #[test]
    fn a_highway_block_with_its_gate_shut_is_exactly_the_identity_on_its_input() {
        let vs = nn::VarStore::new(Device::Cpu);
        let style = BlockStyle::post(Some(Shortcut::Highway), "shortcut");
        let block = ResBlock::basic(vs.root() / "h", 16, 16, 1, style);
        assert!(matches!(block.shortcut, Some(ShortcutPath::Identity)));
        let bias = block.gate_bias().expect("a gate with a bias");
        assert_eq!(Vec::<f32>::try_from(bias).unwrap(), vec![-2.0; 16], "the gate starts at the default bias");
        tch::no_grad(|| {
            let _ = bias.shallow_clone().fill_(f64::NEG_INFINITY);
        });
        // Any input, negative values included: the carried input comes out unchanged.
        let x = Tensor::randn([2, 16, 6, 6], (Kind::Float, Device::Cpu)) * 3.0;
        for train in [false, true] {
            assert!(block.forward_t(&x, train).equal(&x), "train {train}");
        }
        // Where the shape changes, the carry is option B's projection.
        let down = ResBlock::basic(vs.root() / "d", 16, 32, 2, style);
        assert!(matches!(down.shortcut, Some(ShortcutPath::Projection(_))));
        assert_eq!(down.forward_t(&x, false).size(), vec![2, 32, 3, 3]);
    }

    #[test]
    fn a_pre_activation_block_starts_with_bn_and_ends_with_a_bare_convolution() {
        let vs = nn::VarStore::new(Device::Cpu);
        let style = BlockStyle { variant: BlockVariant::Pre, ..BlockStyle::post(Some(Shortcut::A), "shortcut") };
        let block = ResBlock::basic(vs.root() / "b", 16, 16, 1, style);
        let vars = vs.variables();
        assert_eq!(vars["b.bn1.weight"].size(), vec![16], "the first op: BN of the input");
        assert!(vars.contains_key("b.bn2.running_var") && !vars.contains_key("b.bn3.weight"));
        assert!(block.convs[1].bn.is_none(), "the last convolution has no BN");
        // Its first BN sees the input: scale it to zero and the block's branch sees relu(beta) = 0,
        // so the block is the identity (the convolutions have no bias).
        tch::no_grad(|| {
            let _ = vars["b.bn1.weight"].shallow_clone().zero_();
        });
        let x = Tensor::randn([2, 16, 4, 4], (Kind::Float, Device::Cpu));
        assert!(block.forward_t(&x, false).allclose(&x, 1e-6, 1e-6, false));
    }

    #[test]
    fn the_ablations_move_the_bn_or_drop_the_relu_after_the_addition() {
        let vs = nn::VarStore::new(Device::Cpu);
        let style = |variant| BlockStyle { variant, ..BlockStyle::post(Some(Shortcut::A), "shortcut") };
        let no_relu = ResBlock::basic(vs.root() / "n", 8, 8, 1, style(BlockVariant::NoReluAfterAdd));
        let bn_after = ResBlock::basic(vs.root() / "a", 8, 8, 1, style(BlockVariant::BnAfterAdd));
        assert!(bn_after.convs[1].bn_after_add && !no_relu.convs[1].bn_after_add);
        tch::no_grad(|| {
            for (name, t) in vs.variables() {
                if name.ends_with("bn2.weight") {
                    let _ = t.shallow_clone().zero_();
                }
            }
        });
        let x = Tensor::randn([2, 8, 4, 4], (Kind::Float, Device::Cpu));
        // No ReLU after the addition: with the branch at zero, the input passes negative values too.
        assert!(no_relu.forward_t(&x, false).allclose(&x, 1e-6, 1e-6, false));
        // BN after the addition with weight 0: relu(0 * (...) + 0) = 0 everywhere.
        assert_eq!(bn_after.forward_t(&x, false).abs().sum(Kind::Float).double_value(&[]), 0.0);
    }
}
