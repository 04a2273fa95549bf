//! The CIFAR-10 networks of He et al. (2015), Section 4.2: 6n+2 weighted layers; and their
//! relatives in the same harness: the 9n+2-layer bottleneck nets and block variants of He et al.
//! (2016) and the ResNeXt-29 nets of Xie et al. (2017).
//!
//! A 3x3 conv with 16 filters, then three stages of n blocks with 16, 32 and 64 filters on 32x32,
//! 16x16 and 8x8 maps (the first block of stages 2 and 3 has stride 2), global average pooling and
//! a 10-way fully-connected layer. Bottleneck nets expand each stage's width 4x (64, 128, 256
//! outputs); ResNeXt-29 has a 64-filter stem, stage outputs 256, 512, 1024 and grouped 3x3
//! convolutions of C x d channels (doubled per stage). Pre-activation nets have a bare stem
//! convolution and a final BN and ReLU before pooling. Names as in the most used PyTorch
//! reproduction (akamaster/pytorch_resnet_cifar10): `conv1`, `bn1`, `layer{1,2,3}.{i}.*`, `linear`.

use super::blocks::{Block, BlockStyle, ResBlock};
use super::layers::{batch_norm, conv_macs, linear, ConvBn};
use super::zoo::{cifar_unit, BlockVariant, Kind, ModelSpec, Unit};
use super::Network;
use anyhow::Result;
use tch::nn::{self, ModuleT};
use tch::Tensor;

pub const STAGE_WIDTHS: [i64; 3] = [16, 32, 64];
pub const IMAGE_SIZE: i64 = 32;
/// ResNeXt-29's stem and first stage's output (Xie et al. 2017, Sec. 5.2).
const RESNEXT_STEM: i64 = 64;
const RESNEXT_STAGE_OUT: [i64; 3] = [256, 512, 1024];

#[derive(Debug)]
pub struct CifarNet {
    stem: ConvBn,
    blocks: Vec<ResBlock>,
    /// Pre-activation nets: the BN before the final ReLU and pooling.
    final_bn: Option<nn::BatchNorm>,
    linear: nn::Linear,
    stem_width: i64,
    features: i64,
    num_classes: i64,
}

impl CifarNet {
    pub fn new(p: &nn::Path, spec: &ModelSpec) -> Result<CifarNet> {
        spec.validate()?;
        let unit = if spec.groups.is_some() { Unit::Bottleneck } else { cifar_unit(spec.depth)? };
        let layers_per_block = if unit == Unit::Bottleneck { 9 } else { 6 };
        let blocks_per_stage = (spec.depth - 2) / layers_per_block;
        let style = BlockStyle {
            shortcut: match spec.kind {
                Kind::Plain => None,
                Kind::Residual => Some(spec.shortcut),
            },
            variant: spec.block,
            gate_bias: spec.gate_bias(),
            shortcut_name: "shortcut",
        };
        let pre = spec.block == BlockVariant::Pre;
        let stem_width = if spec.groups.is_some() { RESNEXT_STEM } else { STAGE_WIDTHS[0] };
        let stem = if pre {
            ConvBn::bare(p / "conv1", 3, stem_width, 3, 1)
        } else {
            ConvBn::new(p / "conv1", p / "bn1", 3, stem_width, 3, 1)
        };
        let mut c_in = stem_width;
        let mut blocks = Vec::new();
        for stage in 0..3 {
            let layer = p / format!("layer{}", stage + 1);
            for i in 0..blocks_per_stage {
                // Only the first block of a stage changes the shape, so only it needs stride 2.
                let stride = if i == 0 && stage > 0 { 2 } else { 1 };
                let path = &layer / i;
                let block = match (unit, spec.groups) {
                    (Unit::Basic, _) => ResBlock::basic(path, c_in, STAGE_WIDTHS[stage], stride, style),
                    (Unit::Bottleneck, None) => {
                        let width = STAGE_WIDTHS[stage];
                        ResBlock::bottleneck(path, c_in, width, 4 * width, stride, true, 1, style)
                    }
                    (Unit::Bottleneck, Some(g)) => {
                        let width = (g.cardinality * g.width) << stage;
                        ResBlock::bottleneck(
                            path,
                            c_in,
                            width,
                            RESNEXT_STAGE_OUT[stage],
                            stride,
                            true,
                            g.cardinality,
                            style,
                        )
                    }
                };
                c_in = match (unit, spec.groups) {
                    (Unit::Basic, _) => STAGE_WIDTHS[stage],
                    (Unit::Bottleneck, None) => 4 * STAGE_WIDTHS[stage],
                    (Unit::Bottleneck, Some(_)) => RESNEXT_STAGE_OUT[stage],
                };
                blocks.push(block);
            }
        }
        let num_classes = spec.classes();
        let final_bn = pre.then(|| batch_norm(p / "bn_final", c_in));
        let linear = linear(p / "linear", c_in, num_classes);
        Ok(CifarNet { stem, blocks, final_bn, linear, stem_width, features: c_in, num_classes })
    }

    pub fn blocks(&self) -> impl Iterator<Item = &ResBlock> {
        self.blocks.iter()
    }
}

impl Network for CifarNet {
    fn macs(&self) -> u64 {
        let mut size = IMAGE_SIZE;
        let mut total = conv_macs(3, self.stem_width, 3, size, size);
        for block in &self.blocks {
            total += block.macs(size, size);
            size = super::blocks::out_size(size, block.stride());
        }
        total + (self.features * self.num_classes) as u64
    }

    fn classifier(&self) -> (&nn::Linear, &'static str) {
        (&self.linear, "linear")
    }

    fn conv_bns(&self) -> Vec<&ConvBn> {
        std::iter::once(&self.stem).chain(self.blocks().flat_map(|b| b.conv_bns())).collect()
    }
}

impl ModuleT for CifarNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut out = match self.final_bn {
            // Pre-activation: every block starts with its own BN and ReLU.
            Some(_) => self.stem.forward_t(x, train),
            None => self.stem.forward_relu(x, train),
        };
        for block in self.blocks() {
            out = out.apply_t(block, train);
        }
        if let Some(bn) = &self.final_bn {
            out = out.apply_t(bn, train).relu();
        }
        // Average pooling over the whole map, written as the PyTorch reproduction writes it
        // (F.avg_pool2d with an 8x8 window): adaptive pooling rounds differently in the last bit,
        // and last bits grow step by step into a different run.
        let size = out.size()[3];
        out.avg_pool2d([size, size], [size, size], [0, 0], false, true, None::<i64>).flatten(1, -1).apply(&self.linear)
    }
}
