//! The evaluation-time form of a trained net: every BN right after a convolution folded into it
//! (weight scaled by gamma / sqrt(var + eps) per output channel, bias beta - mean * that scale),
//! the same function up to float rounding with one pass over the activations fewer. Built from the
//! net's weights as they are when [`Folded::new`] runs; borrowing the net, it cannot outlive a
//! training step. With `fuse`, fp32 CPU passes also run each convolution with the addition and
//! ReLU after it as one oneDNN inference convolution, so a block's output is written once.
//!
//! Each block is the trained block's forward (see [`super::blocks`]) in fused operations: where
//! the trained block writes `relu(bn(conv(out)) + identity)`, this writes
//! `conv.forward_add_relu(out, identity)`.

use super::blocks::{BareBranch, Block, Branch, Gate, ShortcutPath};
use super::layers::{Conv, ConvBn, BN_EPS};
use super::net::{stem_pool, Head, Net, Stem};
use super::taps::Pass;
use crate::native;
use tch::nn;
use tch::{Device, Kind, Tensor};

/// A convolution with its BN folded in.
#[derive(Debug)]
pub struct FoldedConv {
    weight: Tensor,
    bias: Tensor,
    stride: i64,
    padding: i64,
    groups: i64,
    fuse: bool,
}

impl FoldedConv {
    /// `unit`'s BN, with its current statistics and affine parameters, folded into its
    /// convolution (computed in fp32; under bf16 autocast the folded convolution then runs in
    /// bf16, rounding as the unfolded pair's bf16 output does, at other places). With `fuse`, fp32
    /// CPU inputs also go through oneDNN's fused convolution (which autocast does not reach: fuse
    /// only in fp32).
    pub fn new(unit: &ConvBn, fuse: bool) -> FoldedConv {
        let (conv, bn) = (&unit.conv, &unit.bn);
        tch::no_grad(|| {
            let weight = bn.ws.as_ref().expect("BN layers are affine");
            let bias = bn.bs.as_ref().expect("BN layers are affine");
            let scale = weight / (&bn.running_var + BN_EPS).sqrt();
            let conv_weight = &conv.conv.ws * scale.view([-1, 1, 1, 1]);
            let conv_bias = bias - &bn.running_mean * &scale;
            FoldedConv {
                weight: conv_weight,
                bias: conv_bias,
                stride: conv.stride,
                padding: conv.padding(),
                groups: conv.groups,
                fuse,
            }
        })
    }

    /// `bn(conv(x))`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(&self.weight, Some(&self.bias), [self.stride; 2], [self.padding; 2], [1, 1], self.groups)
    }

    /// `relu(bn(conv(x)))`.
    pub fn forward_relu(&self, x: &Tensor) -> Tensor {
        self.fused(x, None, true).unwrap_or_else(|| self.forward(x).relu())
    }

    /// `relu(bn(conv(x)) + identity)`: the end of a residual block.
    pub fn forward_add_relu(&self, x: &Tensor, identity: &Tensor) -> Tensor {
        self.fused(x, Some(identity), true).unwrap_or_else(|| (self.forward(x) + identity).relu())
    }

    /// `bn(conv(x)) + identity`, no ReLU after the addition.
    pub fn forward_add(&self, x: &Tensor, identity: &Tensor) -> Tensor {
        self.fused(x, Some(identity), false).unwrap_or_else(|| self.forward(x) + identity)
    }

    /// The fused convolution, where it applies: with `fuse`, ungrouped, fp32 tensors on the CPU;
    /// the op-by-op path computes the same otherwise (and if oneDNN refuses).
    fn fused(&self, x: &Tensor, other: Option<&Tensor>, relu: bool) -> Option<Tensor> {
        if !self.fuse || self.groups != 1 {
            return None;
        }
        let fp32_cpu = |t: &Tensor| t.device() == Device::Cpu && t.kind() == Kind::Float;
        if !fp32_cpu(x) || !other.is_none_or(fp32_cpu) {
            return None;
        }
        native::conv_fused(x, &self.weight, &self.bias, self.stride, self.padding, other, relu).ok()
    }
}

/// F with every BN folded: all but the last convolution followed by a ReLU.
#[derive(Debug)]
struct FoldedBranch {
    hidden: Vec<FoldedConv>,
    last: FoldedConv,
}

impl FoldedBranch {
    fn new(branch: &Branch, fuse: bool) -> FoldedBranch {
        let mut convs: Vec<FoldedConv> = branch.convs.iter().map(|unit| FoldedConv::new(unit, fuse)).collect();
        let last = convs.pop().expect("a branch has convolutions");
        FoldedBranch { hidden: convs, last }
    }

    /// The input of the last convolution.
    fn hidden(&self, x: &Tensor) -> Tensor {
        self.hidden.iter().fold(x.shallow_clone(), |out, conv| conv.forward_relu(&out))
    }
}

/// F' with its hidden convolutions' BNs folded; the last convolution bare.
#[derive(Debug)]
struct FoldedBareBranch<'a> {
    hidden: Vec<FoldedConv>,
    last: &'a Conv,
}

impl<'a> FoldedBareBranch<'a> {
    fn new(branch: &'a BareBranch, fuse: bool) -> FoldedBareBranch<'a> {
        FoldedBareBranch {
            hidden: branch.hidden.iter().map(|u| FoldedConv::new(u, fuse)).collect(),
            last: &branch.last,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let out = self.hidden.iter().fold(x.shallow_clone(), |out, conv| conv.forward_relu(&out));
        self.last.forward(&out)
    }
}

/// A shortcut: a projection folded, the identity and zero padding as they are.
#[derive(Debug)]
enum FoldedShortcut<'a> {
    Projection(FoldedConv),
    Parameterless(&'a ShortcutPath),
}

impl<'a> FoldedShortcut<'a> {
    fn new(shortcut: &'a ShortcutPath, fuse: bool) -> FoldedShortcut<'a> {
        match shortcut {
            ShortcutPath::Projection(projection) => FoldedShortcut::Projection(FoldedConv::new(projection, fuse)),
            other => FoldedShortcut::Parameterless(other),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            FoldedShortcut::Projection(projection) => projection.forward(x),
            FoldedShortcut::Parameterless(shortcut) => shortcut.forward(x, Pass::new(false)),
        }
    }
}

/// A block in fused operations: the variants of [`Block`].
#[derive(Debug)]
enum FoldedBlock<'a> {
    Plain(FoldedBranch),
    PlainPre { bn1: &'a nn::BatchNorm, branch: FoldedBareBranch<'a> },
    Post { branch: FoldedBranch, shortcut: FoldedShortcut<'a> },
    NoReluAfterAdd { branch: FoldedBranch, shortcut: FoldedShortcut<'a> },
    BnAfterAdd { branch: FoldedBareBranch<'a>, bn: &'a nn::BatchNorm, shortcut: FoldedShortcut<'a> },
    Pre { bn1: &'a nn::BatchNorm, branch: FoldedBareBranch<'a>, shortcut: FoldedShortcut<'a> },
    Highway { branch: FoldedBranch, shortcut: FoldedShortcut<'a>, gate: &'a Gate },
}

impl<'a> FoldedBlock<'a> {
    fn new(block: &'a Block, fuse: bool) -> FoldedBlock<'a> {
        let shortcut = |s| FoldedShortcut::new(s, fuse);
        match block {
            Block::Plain(branch) => FoldedBlock::Plain(FoldedBranch::new(branch, fuse)),
            Block::PlainPre(b) => FoldedBlock::PlainPre { bn1: &b.bn1, branch: FoldedBareBranch::new(&b.branch, fuse) },
            Block::Post(b) => {
                FoldedBlock::Post { branch: FoldedBranch::new(&b.branch, fuse), shortcut: shortcut(&b.shortcut) }
            }
            Block::NoReluAfterAdd(b) => FoldedBlock::NoReluAfterAdd {
                branch: FoldedBranch::new(&b.branch, fuse),
                shortcut: shortcut(&b.shortcut),
            },
            Block::BnAfterAdd(b) => FoldedBlock::BnAfterAdd {
                branch: FoldedBareBranch::new(&b.branch, fuse),
                bn: &b.bn,
                shortcut: shortcut(&b.shortcut),
            },
            Block::Pre(b) => FoldedBlock::Pre {
                bn1: &b.bn1,
                branch: FoldedBareBranch::new(&b.branch, fuse),
                shortcut: shortcut(&b.shortcut),
            },
            Block::Highway(b) => FoldedBlock::Highway {
                branch: FoldedBranch::new(&b.branch, fuse),
                shortcut: shortcut(&b.shortcut),
                gate: &b.gate,
            },
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            FoldedBlock::Plain(branch) => branch.last.forward_relu(&branch.hidden(x)),
            FoldedBlock::PlainPre { bn1, branch } => branch.forward(&x.apply_t(*bn1, false).relu()),
            FoldedBlock::Post { branch, shortcut } => {
                let out = branch.hidden(x);
                let identity = shortcut.forward(x);
                branch.last.forward_add_relu(&out, &identity)
            }
            FoldedBlock::NoReluAfterAdd { branch, shortcut } => {
                let out = branch.hidden(x);
                let identity = shortcut.forward(x);
                branch.last.forward_add(&out, &identity)
            }
            FoldedBlock::BnAfterAdd { branch, bn, shortcut } => {
                let out = branch.forward(x);
                let identity = shortcut.forward(x);
                (out + identity).apply_t(*bn, false).relu()
            }
            FoldedBlock::Pre { bn1, branch, shortcut } => {
                let out = x.apply_t(*bn1, false).relu();
                let identity = match shortcut {
                    FoldedShortcut::Projection(_) => shortcut.forward(&out),
                    FoldedShortcut::Parameterless(_) => shortcut.forward(x),
                };
                branch.forward(&out) + identity
            }
            FoldedBlock::Highway { branch, shortcut, gate } => {
                let out = branch.hidden(x);
                let identity = shortcut.forward(x);
                let t = gate.forward(x);
                &t * branch.last.forward_relu(&out) + (1.0 - &t) * identity
            }
        }
    }
}

/// The stem in fused operations.
#[derive(Debug)]
enum FoldedStem<'a> {
    Post { conv: FoldedConv, max_pool: bool },
    Bare(&'a Conv),
}

/// A net in its evaluation form (see the module documentation); the head (a pre-activation net's
/// final BN, pooling, classifier) as trained.
#[derive(Debug)]
pub struct Folded<'a> {
    stem: FoldedStem<'a>,
    blocks: Vec<FoldedBlock<'a>>,
    head: &'a Head,
    channels_last: bool,
}

impl<'a> Folded<'a> {
    /// `net` folded; `channels_last`: inputs are passed with NHWC strides, as the model's weights.
    pub fn new(net: &'a Net, fuse: bool, channels_last: bool) -> Folded<'a> {
        let stem = match &net.stem {
            Stem::Post { conv, max_pool } => {
                FoldedStem::Post { conv: FoldedConv::new(conv, fuse), max_pool: *max_pool }
            }
            Stem::Bare(conv) => FoldedStem::Bare(conv),
        };
        let blocks = net.blocks().map(|block| FoldedBlock::new(block, fuse)).collect();
        Folded { stem, blocks, head: &net.head, channels_last }
    }

    /// Logits (N, classes) of images (N, 3, H, W), as the model's evaluation-mode forward pass.
    pub fn forward(&self, images: &Tensor) -> Tensor {
        let x = if self.channels_last { super::to_channels_last(images) } else { images.shallow_clone() };
        let mut out = match &self.stem {
            FoldedStem::Post { conv, max_pool } => {
                let out = conv.forward_relu(&x);
                if *max_pool {
                    stem_pool(&out)
                } else {
                    out
                }
            }
            FoldedStem::Bare(conv) => conv.forward(&x),
        };
        for block in &self.blocks {
            out = block.forward(&out);
        }
        self.head.forward(&out, Pass::new(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layers::conv3x3;

    #[test]
    fn a_folded_conv_bn_computes_what_conv_then_bn_computes_in_evaluation() {
        let vs = nn::VarStore::new(Device::Cpu);
        let unit = ConvBn::new(Conv::new(vs.root() / "c", 4, 6, 3, 2, 1), vs.root() / "b");
        tch::no_grad(|| {
            for (name, mut t) in vs.variables() {
                if name.starts_with('b') {
                    // Statistics and affine parameters away from their identity values.
                    t.copy_(&(Tensor::rand_like(&t) + 0.5));
                }
            }
        });
        let x = Tensor::randn([3, 4, 9, 9], (Kind::Float, Device::Cpu));
        let unfolded = tch::no_grad(|| unit.forward(&x, Pass::new(false)));
        let other = Tensor::randn([3, 6, 5, 5], (Kind::Float, Device::Cpu));
        let (relu, add_relu, add) = (unfolded.relu(), (&unfolded + &other).relu(), &unfolded + &other);
        for fuse in [false, true] {
            let folded = FoldedConv::new(&unit, fuse);
            let out = folded.forward(&x);
            assert_eq!(out.size(), vec![3, 6, 5, 5]);
            assert!(out.allclose(&unfolded, 1e-5, 1e-5, false), "{}", (&out - &unfolded).abs().max());
            assert_eq!(folded.fused(&x, None, true).is_some(), fuse, "fused only when asked");
            assert!(folded.forward_relu(&x).allclose(&relu, 1e-5, 1e-5, false), "fuse {fuse}");
            assert!(folded.forward_add_relu(&x, &other).allclose(&add_relu, 1e-5, 1e-5, false), "fuse {fuse}");
            assert!(folded.forward_add(&x, &other).allclose(&add, 1e-5, 1e-5, false), "fuse {fuse}");
        }
        // Grouped convolutions fold but do not fuse.
        let grouped = ConvBn::new(conv3x3(vs.root() / "g", 4, 6, 1, 2), vs.root() / "gb");
        assert!(FoldedConv::new(&grouped, true).fused(&x, None, true).is_none());
    }
}
