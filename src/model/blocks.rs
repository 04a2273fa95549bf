//! Building blocks, as torchvision's `BasicBlock` and `Bottleneck`: a residual function F (two 3x3
//! convolutions, or a 1x1-3x3-1x1 bottleneck with optionally grouped 3x3), the shortcut that
//! carries the input to the addition (identity, zero padding, projection), and how the two meet:
//!
//! | block | forward |
//! | --- | --- |
//! | [`Block::Plain`] | relu(F(x)) |
//! | [`Block::Post`] (He et al. 2015) | relu(F(x) + shortcut(x)) |
//! | [`Block::NoReluAfterAdd`] | F(x) + shortcut(x) |
//! | [`Block::BnAfterAdd`] | relu(bn(F'(x) + shortcut(x))) |
//! | [`Block::Pre`] (He et al. 2016) | F'(relu(bn1(x))) + shortcut(x), a projection of relu(bn1(x)) |
//! | [`Block::PlainPre`] | F'(relu(bn1(x))) |
//! | [`Block::Highway`] | T(x) * relu(F(x)) + (1 - T(x)) * shortcut(x) |
//!
//! F ends with its last convolution's BN ([`Branch`]); F' ends at the bare convolution
//! ([`BareBranch`]).

use super::layers::{batch_norm, bn_relu, conv1x1, conv3x3, Conv, ConvBn, ConvRef};
use super::spec::{BlockVariant, Kind, Shortcut, Unit};
use super::taps::Pass;
use tch::nn::{self, Init};
use tch::Tensor;

/// How a residual block's input reaches the addition.
#[derive(Debug)]
pub enum ShortcutPath {
    /// Shapes match: the input itself (options A, B and the highway's carry).
    Identity,
    /// Option A where the shape changes: subsample by `stride`, then zero channels added
    /// `pad_before` in front of and `pad_after` behind the input's channels. No parameters.
    ZeroPad {
        /// The subsampling step in both dimensions.
        stride: i64,
        /// Zero channels in front of the input's.
        pad_before: i64,
        /// Zero channels behind the input's.
        pad_after: i64,
    },
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
        ShortcutPath::Projection(Box::new(ConvBn::new(conv1x1(&p / "0", c_in, c_out, stride), &p / "1")))
    }

    /// What reaches the addition from `x`.
    pub fn forward(&self, x: &Tensor, pass: Pass) -> Tensor {
        match self {
            ShortcutPath::Identity => x.shallow_clone(),
            ShortcutPath::ZeroPad { stride, pad_before, pad_after } => {
                let subsampled = x.slice(2, 0, None, *stride).slice(3, 0, None, *stride);
                // constant_pad_nd pads the last dimension first: (W, W, H, H, C, C).
                subsampled.constant_pad_nd([0, 0, 0, 0, *pad_before, *pad_after])
            }
            ShortcutPath::Projection(projection) => projection.forward(x, pass),
        }
    }

    fn macs(&self, h_out: i64, w_out: i64) -> u64 {
        match self {
            ShortcutPath::Projection(projection) => projection.conv.macs(h_out, w_out),
            _ => 0,
        }
    }

    fn layers(&self) -> Option<ConvRef<'_>> {
        match self {
            ShortcutPath::Projection(p) => Some(ConvRef { conv: &p.conv, bn: Some(&p.bn), on_shortcut: true }),
            _ => None,
        }
    }
}

/// The highway gate (Srivastava et al. 2015): T(x) = sigmoid(conv1x1(x) + b), its bias starting
/// negative so the block first carries its input.
#[derive(Debug)]
pub struct Gate {
    /// A 1x1 convolution with a bias (tch's default initialisation), at the block's stride.
    pub conv: nn::Conv2D,
}

impl Gate {
    fn new(p: nn::Path, c_in: i64, c_out: i64, stride: i64, bias: f64) -> Gate {
        let ws_init = super::layers::drawn(nn::ConvConfig::default().ws_init);
        let config = nn::ConvConfig { stride, bias: true, ws_init, bs_init: Init::Const(bias), ..Default::default() };
        Gate { conv: nn::conv2d(p, c_in, c_out, 1, config) }
    }

    /// T(x), in (0, 1) per channel and position.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.apply(&self.conv).sigmoid()
    }

    /// The gate's bias, to set it in tests and analyses.
    pub fn bias(&self) -> &Tensor {
        self.conv.bs.as_ref().expect("a gate has a bias")
    }
}

/// The shape of a block's convolutions: basic (two 3x3 convolutions to `c_out`) or bottleneck (1x1
/// reduce to `width`, 3x3 in `groups` groups, 1x1 expand to `c_out`), from `c_in` channels; the
/// stride on the first convolution, or a bottleneck's 3x3 with `stride_on_spatial`
/// (torchvision's "v1.5").
#[derive(Debug, Clone, Copy)]
pub struct BlockShape {
    /// Basic or bottleneck.
    pub unit: Unit,
    /// Input channels.
    pub c_in: i64,
    /// A bottleneck's inner width; a basic block's is `c_out`.
    pub width: i64,
    /// Output channels.
    pub c_out: i64,
    /// Spatial stride (2 where a stage halves the feature map, else 1).
    pub stride: i64,
    /// Groups of the bottleneck's 3x3 (ResNeXt's cardinality); 1 otherwise.
    pub groups: i64,
    /// Bottlenecks: the stride on the 3x3 rather than the first 1x1.
    pub stride_on_spatial: bool,
}

impl BlockShape {
    /// How many convolutions F has.
    fn len(&self) -> usize {
        match self.unit {
            Unit::Basic => 2,
            Unit::Bottleneck => 3,
        }
    }

    /// F's convolution `i` (0-based), named `conv{i+1}` under `p`.
    fn conv(&self, p: &nn::Path, i: usize) -> Conv {
        let path = p / format!("conv{}", i + 1);
        let (reduce_stride, spatial_stride) = if self.stride_on_spatial { (1, self.stride) } else { (self.stride, 1) };
        match (self.unit, i) {
            (Unit::Basic, 0) => conv3x3(path, self.c_in, self.c_out, self.stride, 1),
            (Unit::Basic, _) => conv3x3(path, self.c_out, self.c_out, 1, 1),
            (Unit::Bottleneck, 0) => conv1x1(path, self.c_in, self.width, reduce_stride),
            (Unit::Bottleneck, 1) => conv3x3(path, self.width, self.width, spatial_stride, self.groups),
            (Unit::Bottleneck, _) => conv1x1(path, self.width, self.c_out, 1),
        }
    }
}

/// A residual function F: convolutions each followed by its BN, a ReLU between them
/// (`conv3x3-bn-relu-conv3x3-bn`; a bottleneck's `conv1x1-bn-relu-conv3x3-bn-relu-conv1x1-bn`).
#[derive(Debug)]
pub struct Branch {
    /// Each convolution with its BN, in order.
    pub convs: Vec<ConvBn>,
}

impl Branch {
    /// `conv{i}` and `bn{i}` under `p`.
    pub fn new(p: &nn::Path, shape: &BlockShape) -> Branch {
        let convs = (0..shape.len()).map(|i| ConvBn::new(shape.conv(p, i), p / format!("bn{}", i + 1))).collect();
        Branch { convs }
    }

    /// F(x): the last convolution's BN output, before any addition or ReLU.
    pub fn forward(&self, x: &Tensor, pass: Pass) -> Tensor {
        let (last, hidden) = self.convs.split_last().expect("a branch has convolutions");
        last.forward(&Self::hidden(hidden, x, pass), pass)
    }

    /// relu(F(x) + identity) (no addition without `identity`), the last BN, the addition and
    /// the ReLU fused where `pass` fuses.
    pub fn forward_relu(&self, x: &Tensor, identity: Option<&Tensor>, pass: Pass) -> Tensor {
        let (last, hidden) = self.convs.split_last().expect("a branch has convolutions");
        last.forward_relu(&Self::hidden(hidden, x, pass), identity, pass)
    }

    /// The hidden units' output: each relu(bn(conv(.))).
    fn hidden(hidden: &[ConvBn], x: &Tensor, pass: Pass) -> Tensor {
        let mut out = x.shallow_clone();
        for unit in hidden {
            out = unit.forward_relu(&out, None, pass);
        }
        out
    }

    fn layers(&self) -> impl Iterator<Item = ConvRef<'_>> {
        self.convs.iter().map(|u| ConvRef { conv: &u.conv, bn: Some(&u.bn), on_shortcut: false })
    }
}

/// A residual function F' that ends at its last convolution, bare: `conv-bn-relu-conv` (the BN of
/// the last convolution, if any, is the block's: after the addition, or the next block's bn1).
#[derive(Debug)]
pub struct BareBranch {
    /// Each followed by a ReLU.
    pub hidden: Vec<ConvBn>,
    /// The last convolution, without BN or ReLU.
    pub last: Conv,
}

impl BareBranch {
    /// `conv{i}` under `p`, each but the last followed by `bn{i + first_bn - 1}`.
    pub fn new(p: &nn::Path, shape: &BlockShape, first_bn: usize) -> BareBranch {
        let last = shape.len() - 1;
        let hidden = (0..last).map(|i| ConvBn::new(shape.conv(p, i), p / format!("bn{}", i + first_bn))).collect();
        BareBranch { hidden, last: shape.conv(p, last) }
    }

    /// F'(x): the last convolution's output.
    pub fn forward(&self, x: &Tensor, pass: Pass) -> Tensor {
        let mut out = x.shallow_clone();
        for unit in &self.hidden {
            out = unit.forward_relu(&out, None, pass);
        }
        self.last.forward(&out)
    }

    /// Its convolutions; `last_bn` the BN that normalises the last one (after the addition).
    fn layers<'a>(&'a self, last_bn: Option<&'a nn::BatchNorm>) -> impl Iterator<Item = ConvRef<'a>> {
        let hidden = self.hidden.iter().map(|u| ConvRef { conv: &u.conv, bn: Some(&u.bn), on_shortcut: false });
        hidden.chain(std::iter::once(ConvRef { conv: &self.last, bn: last_bn, on_shortcut: false }))
    }
}

/// F and a shortcut: the paper's block, and its no-ReLU-after-addition ablation.
#[derive(Debug)]
pub struct Residual {
    /// F, ending with its last BN.
    pub branch: Branch,
    /// The shortcut to the addition.
    pub shortcut: ShortcutPath,
}

/// The BN-after-addition ablation: F', the shortcut, and the BN of their sum.
#[derive(Debug)]
pub struct BnAfterAdd {
    /// F', ending at the bare last convolution.
    pub branch: BareBranch,
    /// The BN of F'(x) + shortcut(x), before the ReLU.
    pub bn: nn::BatchNorm,
    /// The shortcut to the addition.
    pub shortcut: ShortcutPath,
}

/// Full pre-activation: BN and ReLU of the input, F', the shortcut.
#[derive(Debug)]
pub struct PreAct {
    /// The BN of the block's input, before its ReLU.
    pub bn1: nn::BatchNorm,
    /// F', on relu(bn1(x)).
    pub branch: BareBranch,
    /// The shortcut: identity of x, or a projection of relu(bn1(x)).
    pub shortcut: ShortcutPath,
}

/// A plain net's pre-activation block: BN and ReLU of the input, F'.
#[derive(Debug)]
pub struct PreActPlain {
    /// The BN of the block's input, before its ReLU.
    pub bn1: nn::BatchNorm,
    /// F', on relu(bn1(x)).
    pub branch: BareBranch,
}

/// F, the shortcut and the gate that mixes them.
#[derive(Debug)]
pub struct Highway {
    /// F, whose ReLU is gated by T(x).
    pub branch: Branch,
    /// The carry path, gated by 1 - T(x).
    pub shortcut: ShortcutPath,
    /// T(x).
    pub gate: Gate,
}

/// One block of a net (the table in this module's documentation).
#[derive(Debug)]
pub enum Block {
    /// relu(F(x)): a plain net's block, no shortcut.
    Plain(Branch),
    /// F'(relu(bn1(x))): a plain net's pre-activation block.
    PlainPre(PreActPlain),
    /// relu(F(x) + shortcut(x)): He et al. (2015).
    Post(Residual),
    /// F(x) + shortcut(x): the no-ReLU-after-addition ablation.
    NoReluAfterAdd(Residual),
    /// relu(bn(F'(x) + shortcut(x))): the BN-after-addition ablation.
    BnAfterAdd(BnAfterAdd),
    /// F'(relu(bn1(x))) + shortcut(x): full pre-activation, He et al. (2016).
    Pre(PreAct),
    /// T(x) * relu(F(x)) + (1 - T(x)) * shortcut(x): Srivastava et al. (2015).
    Highway(Highway),
}

/// What every block of a net shares: plain or residual, the shortcut option and block variant,
/// the gate bias (highway), and where a projection's variables live (`shortcut` in the CIFAR
/// reproductions, `downsample` in torchvision).
#[derive(Debug, Clone, Copy)]
pub struct BlockStyle<'a> {
    /// Plain (no shortcuts) or residual.
    pub kind: Kind,
    /// The shortcut option (A, B, C or highway).
    pub shortcut: Shortcut,
    /// Where BN and ReLU sit (post, pre or an ablation).
    pub variant: BlockVariant,
    /// The highway gates' initial bias.
    pub gate_bias: f64,
    /// The projection's module name (`shortcut`, `downsample`).
    pub shortcut_name: &'a str,
}

impl Block {
    /// The block `style` asks for, of `shape`, under `p`. A plain net's ablation variants (which
    /// change an addition it has not) are its post-activation block.
    pub fn new(p: &nn::Path, shape: &BlockShape, style: &BlockStyle) -> Block {
        let shortcut =
            || ShortcutPath::new(p / style.shortcut_name, style.shortcut, shape.c_in, shape.c_out, shape.stride);
        match (style.kind, style.variant) {
            (Kind::Plain, BlockVariant::Pre) => {
                let branch = BareBranch::new(p, shape, 2);
                Block::PlainPre(PreActPlain { branch, bn1: batch_norm(p / "bn1", shape.c_in) })
            }
            (Kind::Plain, _) => Block::Plain(Branch::new(p, shape)),
            (Kind::Residual, BlockVariant::Post) if style.shortcut == Shortcut::Highway => {
                let (branch, shortcut) = (Branch::new(p, shape), shortcut());
                let gate = Gate::new(p / "gate", shape.c_in, shape.c_out, shape.stride, style.gate_bias);
                Block::Highway(Highway { branch, shortcut, gate })
            }
            (Kind::Residual, BlockVariant::Post) => {
                Block::Post(Residual { branch: Branch::new(p, shape), shortcut: shortcut() })
            }
            (Kind::Residual, BlockVariant::NoReluAfterAdd) => {
                Block::NoReluAfterAdd(Residual { branch: Branch::new(p, shape), shortcut: shortcut() })
            }
            (Kind::Residual, BlockVariant::BnAfterAdd) => {
                let branch = BareBranch::new(p, shape, 1);
                let bn = batch_norm(p / format!("bn{}", shape.len()), shape.c_out);
                Block::BnAfterAdd(BnAfterAdd { branch, bn, shortcut: shortcut() })
            }
            (Kind::Residual, BlockVariant::Pre) => {
                // bn1 normalises the input; bn(i+1) follows conv(i); the last conv has none. bn1 is
                // made after the convolutions, as it always was: the optimizer's parameter order.
                let branch = BareBranch::new(p, shape, 2);
                let bn1 = batch_norm(p / "bn1", shape.c_in);
                Block::Pre(PreAct { bn1, branch, shortcut: shortcut() })
            }
        }
    }

    /// The block's output (the table in this module's documentation).
    pub fn forward(&self, x: &Tensor, pass: Pass) -> Tensor {
        match self {
            Block::Plain(branch) => branch.forward_relu(x, None, pass),
            Block::PlainPre(b) => {
                let out = bn_relu(&b.bn1, x, None, pass);
                b.branch.forward(&out, pass)
            }
            Block::Post(b) => {
                // The shortcut first: the fused tail takes it with the branch's last BN.
                let identity = b.shortcut.forward(x, pass);
                b.branch.forward_relu(x, Some(&identity), pass)
            }
            Block::NoReluAfterAdd(b) => {
                let out = b.branch.forward(x, pass);
                let identity = b.shortcut.forward(x, pass);
                out + identity
            }
            Block::BnAfterAdd(b) => {
                let out = b.branch.forward(x, pass);
                let identity = b.shortcut.forward(x, pass);
                let sum = out + identity;
                if pass.fuses(&sum, None) {
                    return bn_relu(&b.bn, &sum, None, pass);
                }
                let out = sum.apply_t(&b.bn, pass.train);
                pass.keep(&b.branch.last.name, &out);
                out.relu()
            }
            Block::Pre(b) => {
                let out = bn_relu(&b.bn1, x, None, pass);
                // A projection sees the activated input; the identity (and zero padding) the input
                // itself, as the public pre-activation reproductions do.
                let identity = match b.shortcut {
                    ShortcutPath::Projection(_) => b.shortcut.forward(&out, pass),
                    _ => b.shortcut.forward(x, pass),
                };
                b.branch.forward(&out, pass) + identity
            }
            Block::Highway(b) => {
                let out = b.branch.forward_relu(x, None, pass);
                let identity = b.shortcut.forward(x, pass);
                let t = b.gate.forward(x);
                &t * out + (1.0 - &t) * identity
            }
        }
    }

    /// Every convolution with the BN that normalises it, in order: F's, then a projection's.
    pub fn layers(&self) -> Vec<ConvRef<'_>> {
        let main: Vec<ConvRef> = match self {
            Block::Plain(branch) => branch.layers().collect(),
            Block::Post(b) | Block::NoReluAfterAdd(b) => b.branch.layers().collect(),
            Block::Highway(b) => b.branch.layers().collect(),
            Block::PlainPre(b) => b.branch.layers(None).collect(),
            Block::Pre(b) => b.branch.layers(None).collect(),
            Block::BnAfterAdd(b) => b.branch.layers(Some(&b.bn)).collect(),
        };
        main.into_iter().chain(self.shortcut().and_then(ShortcutPath::layers)).collect()
    }

    /// The shortcut (none in a plain net).
    pub fn shortcut(&self) -> Option<&ShortcutPath> {
        match self {
            Block::Plain(_) | Block::PlainPre(_) => None,
            Block::Post(b) | Block::NoReluAfterAdd(b) => Some(&b.shortcut),
            Block::BnAfterAdd(b) => Some(&b.shortcut),
            Block::Pre(b) => Some(&b.shortcut),
            Block::Highway(b) => Some(&b.shortcut),
        }
    }

    /// The output size for an input `size` pixels wide.
    pub fn out_size(&self, size: i64) -> i64 {
        self.layers().iter().filter(|l| !l.on_shortcut).fold(size, |size, l| l.conv.out_size(size))
    }

    /// Multiply-accumulates for an `h`x`w` input: convolutions, a projection and a gate.
    pub fn macs(&self, h: i64, w: i64) -> u64 {
        let (mut h_now, mut w_now) = (h, w);
        let mut total = 0;
        for layer in self.layers().iter().filter(|l| !l.on_shortcut) {
            (h_now, w_now) = (layer.conv.out_size(h_now), layer.conv.out_size(w_now));
            total += layer.conv.macs(h_now, w_now);
        }
        let shortcut = self.shortcut().map_or(0, |s| s.macs(h_now, w_now));
        let gate = match self {
            Block::Highway(b) => b.gate.conv.ws.numel() as u64 * (h_now * w_now) as u64,
            _ => 0,
        };
        total + shortcut + gate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind as Dtype};

    fn style(kind: Kind, shortcut: Shortcut, variant: BlockVariant) -> BlockStyle<'static> {
        BlockStyle {
            kind,
            shortcut,
            variant,
            gate_bias: super::super::spec::DEFAULT_GATE_BIAS,
            shortcut_name: "shortcut",
        }
    }

    fn basic(c_in: i64, c_out: i64, stride: i64) -> BlockShape {
        BlockShape { unit: Unit::Basic, c_in, width: c_out, c_out, stride, groups: 1, stride_on_spatial: false }
    }

    fn zero_bn2(vs: &nn::VarStore) {
        tch::no_grad(|| {
            for (name, mut t) in vs.variables() {
                if name.ends_with("bn2.weight") || name.ends_with("bn2.bias") {
                    let _ = t.zero_();
                }
            }
        });
    }

    #[test]
    fn option_a_subsamples_and_pads_zero_channels_equally_around_the_input() {
        let vs = nn::VarStore::new(Device::Cpu);
        let shortcut = ShortcutPath::new(vs.root(), Shortcut::A, 16, 32, 2);
        assert!(vs.variables().is_empty(), "option A has no parameters");
        let x = Tensor::randn([2, 16, 8, 8], (Dtype::Float, Device::Cpu));
        let y = shortcut.forward(&x, Pass::new(true));
        assert_eq!(y.size(), vec![2, 32, 4, 4]);
        let subsampled = x.slice(2, 0, None, 2).slice(3, 0, None, 2);
        assert!(y.narrow(1, 8, 16).equal(&subsampled), "the input sits in channels 8..24");
        assert_eq!(y.narrow(1, 0, 8).abs().sum(Dtype::Float).double_value(&[]), 0.0);
        assert_eq!(y.narrow(1, 24, 8).abs().sum(Dtype::Float).double_value(&[]), 0.0);
    }

    #[test]
    fn identity_where_the_shape_is_kept_projection_where_the_option_asks() {
        let vs = nn::VarStore::new(Device::Cpu);
        let x = Tensor::randn([1, 16, 4, 4], (Dtype::Float, Device::Cpu));
        for option in [Shortcut::A, Shortcut::B] {
            let s = ShortcutPath::new(vs.root(), option, 16, 16, 1);
            assert!(matches!(s, ShortcutPath::Identity));
            assert!(s.forward(&x, Pass::new(false)).equal(&x));
        }
        assert!(matches!(ShortcutPath::new(vs.root(), Shortcut::B, 16, 32, 2), ShortcutPath::Projection { .. }));
        assert!(matches!(ShortcutPath::new(vs.root() / "c", Shortcut::C, 16, 16, 1), ShortcutPath::Projection { .. }));
    }

    #[test]
    fn a_plain_block_has_no_shortcut_and_a_residual_block_adds_its_input() {
        let vs = nn::VarStore::new(Device::Cpu);
        let plain =
            Block::new(&(vs.root() / "p"), &basic(16, 16, 1), &style(Kind::Plain, Shortcut::A, BlockVariant::Post));
        let residual =
            Block::new(&(vs.root() / "r"), &basic(16, 16, 1), &style(Kind::Residual, Shortcut::A, BlockVariant::Post));
        assert!(matches!(plain, Block::Plain(_)) && plain.shortcut().is_none());
        assert!(matches!(residual, Block::Post(_)));
        // With the second BN's weight at zero the residual branch is zero: out = relu(x).
        zero_bn2(&vs);
        let x = Tensor::randn([2, 16, 4, 4], (Dtype::Float, Device::Cpu));
        assert!(residual.forward(&x, Pass::new(false)).allclose(&x.relu(), 1e-6, 1e-6, false));
        assert_eq!(plain.forward(&x, Pass::new(false)).abs().sum(Dtype::Float).double_value(&[]), 0.0);
    }

    #[test]
    fn a_highway_block_with_its_gate_shut_is_exactly_the_identity_on_its_input() {
        let vs = nn::VarStore::new(Device::Cpu);
        let highway = style(Kind::Residual, Shortcut::Highway, BlockVariant::Post);
        let block = Block::new(&(vs.root() / "h"), &basic(16, 16, 1), &highway);
        let Block::Highway(h) = &block else { panic!("a highway block: {block:?}") };
        assert!(matches!(h.shortcut, ShortcutPath::Identity));
        let bias = h.gate.bias();
        assert_eq!(Vec::<f32>::try_from(bias).unwrap(), vec![-2.0; 16], "the gate starts at the default bias");
        tch::no_grad(|| {
            let _ = bias.shallow_clone().fill_(f64::NEG_INFINITY);
        });
        // Any input, negative values included: the carried input comes out unchanged.
        let x = Tensor::randn([2, 16, 6, 6], (Dtype::Float, Device::Cpu)) * 3.0;
        for train in [false, true] {
            assert!(block.forward(&x, Pass::new(train)).equal(&x), "train {train}");
        }
        // Where the shape changes, the carry is option B's projection.
        let down = Block::new(&(vs.root() / "d"), &basic(16, 32, 2), &highway);
        assert!(matches!(down.shortcut(), Some(ShortcutPath::Projection(_))));
        assert_eq!(down.forward(&x, Pass::new(false)).size(), vec![2, 32, 3, 3]);
    }

    #[test]
    fn a_pre_activation_block_starts_with_bn_and_ends_with_a_bare_convolution() {
        let vs = nn::VarStore::new(Device::Cpu);
        let block =
            Block::new(&(vs.root() / "b"), &basic(16, 16, 1), &style(Kind::Residual, Shortcut::A, BlockVariant::Pre));
        let vars = vs.variables();
        assert_eq!(vars["b.bn1.weight"].size(), vec![16], "the first op: BN of the input");
        assert!(vars.contains_key("b.bn2.running_var") && !vars.contains_key("b.bn3.weight"));
        let layers = block.layers();
        assert!(layers[1].bn.is_none(), "the last convolution has no BN");
        // Its first BN sees the input: scale it to zero and the block's branch sees relu(beta) = 0,
        // so the block is the identity (the convolutions have no bias).
        tch::no_grad(|| {
            let _ = vars["b.bn1.weight"].shallow_clone().zero_();
        });
        let x = Tensor::randn([2, 16, 4, 4], (Dtype::Float, Device::Cpu));
        assert!(block.forward(&x, Pass::new(false)).allclose(&x, 1e-6, 1e-6, false));
    }

    #[test]
    fn the_ablations_move_the_bn_or_drop_the_relu_after_the_addition() {
        let vs = nn::VarStore::new(Device::Cpu);
        let shape = basic(8, 8, 1);
        let no_relu =
            Block::new(&(vs.root() / "n"), &shape, &style(Kind::Residual, Shortcut::A, BlockVariant::NoReluAfterAdd));
        let bn_after =
            Block::new(&(vs.root() / "a"), &shape, &style(Kind::Residual, Shortcut::A, BlockVariant::BnAfterAdd));
        assert!(matches!(bn_after, Block::BnAfterAdd(_)) && matches!(no_relu, Block::NoReluAfterAdd(_)));
        // The BN after the addition is the last convolution's (the analyses' response).
        assert_eq!(bn_after.layers().iter().filter(|l| l.bn.is_some()).count(), 2);
        tch::no_grad(|| {
            for (name, t) in vs.variables() {
                if name.ends_with("bn2.weight") {
                    let _ = t.shallow_clone().zero_();
                }
            }
        });
        let x = Tensor::randn([2, 8, 4, 4], (Dtype::Float, Device::Cpu));
        // No ReLU after the addition: with the branch at zero, the input passes negative values too.
        assert!(no_relu.forward(&x, Pass::new(false)).allclose(&x, 1e-6, 1e-6, false));
        // BN after the addition with weight 0: relu(0 * (...) + 0) = 0 everywhere.
        assert_eq!(bn_after.forward(&x, Pass::new(false)).abs().sum(Dtype::Float).double_value(&[]), 0.0);
    }

    #[test]
    fn a_bottleneck_reduces_convolves_in_groups_and_expands_with_its_stride_where_asked() {
        let vs = nn::VarStore::new(Device::Cpu);
        let shape = |stride_on_spatial| BlockShape {
            unit: Unit::Bottleneck,
            c_in: 16,
            width: 8,
            c_out: 32,
            stride: 2,
            groups: 4,
            stride_on_spatial,
        };
        let post = style(Kind::Residual, Shortcut::B, BlockVariant::Post);
        for (name, on_spatial, strides) in [("r", false, [2, 1, 1]), ("s", true, [1, 2, 1])] {
            let block = Block::new(&(vs.root() / name), &shape(on_spatial), &post);
            let layers = block.layers();
            let names: Vec<&str> = layers.iter().map(|l| l.conv.name.as_str()).collect();
            assert_eq!(
                names,
                [
                    &format!("{name}.conv1"),
                    &format!("{name}.conv2"),
                    &format!("{name}.conv3"),
                    &format!("{name}.shortcut.0")
                ]
                .map(|s| s.as_str())
            );
            assert_eq!(layers.iter().take(3).map(|l| l.conv.stride).collect::<Vec<_>>(), strides);
            assert_eq!(layers[1].conv.conv.ws.size(), vec![8, 2, 3, 3], "grouped 3x3");
            let x = Tensor::randn([2, 16, 8, 8], (Dtype::Float, Device::Cpu));
            assert_eq!(block.forward(&x, Pass::new(true)).size(), vec![2, 32, 4, 4]);
            assert_eq!(block.out_size(8), 4);
            // 1x1 16->8 at 8x8 or 4x4, 3x3 grouped 8->8 at 4x4, 1x1 8->32 and the projection 16->32 at 4x4.
            let reduce = if on_spatial { 16 * 8 * 64 } else { 16 * 8 * 16 };
            assert_eq!(block.macs(8, 8), (reduce + 8 * 2 * 9 * 16 + 8 * 32 * 16 + 16 * 32 * 16) as u64);
        }
    }
}
