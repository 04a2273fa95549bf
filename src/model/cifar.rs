//! The CIFAR-10 networks of He et al. (2015), Section 4.2: 6n+2 weighted layers.
//!
//! A 3x3 conv with 16 filters, then three stages of n basic blocks (2n layers) with 16, 32 and 64
//! filters on 32x32, 16x16 and 8x8 maps (the first conv of stages 2 and 3 has stride 2), global
//! average pooling and a 10-way fully-connected layer. Names as in the most used PyTorch
//! reproduction (akamaster/pytorch_resnet_cifar10): `conv1`, `bn1`, `layer{1,2,3}.{i}.*`, `linear`.

use super::blocks::BasicBlock;
use super::blocks::Block;
use super::layers::{conv_macs, linear, ConvBn};
use super::zoo::{Kind, ModelSpec};
use super::Network;
use anyhow::{ensure, Result};
use tch::nn::{self, ModuleT};
use tch::Tensor;

pub const STAGE_WIDTHS: [i64; 3] = [16, 32, 64];
pub const IMAGE_SIZE: i64 = 32;

#[derive(Debug)]
pub struct CifarNet {
    stem: ConvBn,
    stages: Vec<Vec<BasicBlock>>,
    linear: nn::Linear,
    num_classes: i64,
}

impl CifarNet {
    pub fn new(p: &nn::Path, spec: &ModelSpec) -> Result<CifarNet> {
        ensure!(
            spec.depth >= 8 && (spec.depth - 2) % 6 == 0,
            "depth {} is not a CIFAR depth: expected 6n+2 (20, 32, 44, 56, 110, 1202, ...)",
            spec.depth
        );
        let blocks_per_stage = (spec.depth - 2) / 6;
        let shortcut = match spec.kind {
            Kind::Plain => None,
            Kind::Residual => Some(spec.shortcut),
        };
        let stem = ConvBn::new(p / "conv1", p / "bn1", 3, STAGE_WIDTHS[0], 3, 1);
        let mut c_in = STAGE_WIDTHS[0];
        let mut stages = Vec::new();
        for (stage, &width) in STAGE_WIDTHS.iter().enumerate() {
            let layer = p / format!("layer{}", stage + 1);
            let blocks = (0..blocks_per_stage)
                .map(|i| {
                    // Only the first block of a stage changes the shape, so only it needs stride 2.
                    let stride = if i == 0 && stage > 0 { 2 } else { 1 };
                    let block = BasicBlock::new(&layer / i, c_in, width, stride, shortcut, "shortcut");
                    c_in = width;
                    block
                })
                .collect();
            stages.push(blocks);
        }
        let num_classes = spec.classes();
        let linear = linear(p / "linear", STAGE_WIDTHS[2], num_classes);
        Ok(CifarNet { num_classes, stem, stages, linear })
    }

    pub fn blocks(&self) -> impl Iterator<Item = &BasicBlock> {
        self.stages.iter().flatten()
    }
}

impl Network for CifarNet {
    fn macs(&self) -> u64 {
        let mut size = IMAGE_SIZE;
        let mut total = conv_macs(3, STAGE_WIDTHS[0], 3, size, size);
        for (stage, blocks) in self.stages.iter().enumerate() {
            for (i, block) in blocks.iter().enumerate() {
                total += block.macs(size, size);
                if i == 0 && stage > 0 {
                    size /= 2;
                }
            }
        }
        total + (STAGE_WIDTHS[2] * self.num_classes) as u64
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
        let mut out = self.stem.forward_relu(x, train);
        for block in self.blocks() {
            out = out.apply_t(block, train);
        }
        // Average pooling over the whole map, written as the PyTorch reproduction writes it
        // (F.avg_pool2d with an 8x8 window): adaptive pooling rounds differently in the last bit,
        // and last bits grow step by step into a different run.
        let size = out.size()[3];
        out.avg_pool2d([size, size], [size, size], [0, 0], false, true, None::<i64>).flatten(1, -1).apply(&self.linear)
    }
}
