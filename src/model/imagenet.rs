//! The ImageNet networks of He et al. (2015), Table 1: a 7x7/2 conv (64), a 3x3/2 max-pool, four
//! stages with base widths 64/128/256/512 (stride 2 in the first block of stages 2-4), global
//! average pooling and a fully-connected layer. 18 and 34 layers use basic blocks, 50/101/152
//! bottleneck blocks. Names as in torchvision (`conv1`, `bn1`, `layer1.0.conv1`,
//! `layer2.0.downsample.0`, `fc`), so option-B weights load into `torchvision.models.resnetN`.

use super::blocks::{Block, BlockStyle, ResBlock};
use super::layers::{conv_macs, linear, ConvBn};
use super::zoo::{BottleneckStride, Kind, ModelSpec};
use super::Network;
use anyhow::{bail, Result};
use tch::nn::{self, ModuleT};
use tch::Tensor;

pub const STAGE_WIDTHS: [i64; 4] = [64, 128, 256, 512];
pub const DEPTHS: [i64; 5] = [18, 34, 50, 101, 152];
/// MACs are reported for the paper's 224x224 crops.
pub const IMAGE_SIZE: i64 = 224;

/// Blocks per stage, and whether they are bottlenecks.
pub fn layout(depth: i64) -> Result<([i64; 4], bool)> {
    Ok(match depth {
        18 => ([2, 2, 2, 2], false),
        34 => ([3, 4, 6, 3], false),
        50 => ([3, 4, 6, 3], true),
        101 => ([3, 4, 23, 3], true),
        152 => ([3, 8, 36, 3], true),
        _ => bail!("depth {depth} is not an ImageNet depth: expected 18, 34, 50, 101 or 152"),
    })
}

#[derive(Debug)]
pub struct ImageNetNet {
    stem: ConvBn,
    blocks: Vec<Box<dyn Block>>,
    fc: nn::Linear,
    features: i64,
    num_classes: i64,
}

impl ImageNetNet {
    pub fn new(p: &nn::Path, spec: &ModelSpec) -> Result<ImageNetNet> {
        spec.validate()?;
        let (counts, bottleneck) = layout(spec.depth)?;
        let shortcut = match spec.kind {
            Kind::Plain => None,
            Kind::Residual => Some(spec.shortcut),
        };
        let style = BlockStyle { gate_bias: spec.gate_bias(), ..BlockStyle::post(shortcut, "downsample") };
        let stem = ConvBn::new(p / "conv1", p / "bn1", 3, 64, 7, 2);
        let expansion = if bottleneck { 4 } else { 1 };
        let mut c_in = 64;
        let mut blocks = Vec::new();
        for (stage, (&width, &count)) in STAGE_WIDTHS.iter().zip(&counts).enumerate() {
            let layer = p / format!("layer{}", stage + 1);
            for i in 0..count {
                let stride = if i == 0 && stage > 0 { 2 } else { 1 };
                let block_path = &layer / i;
                let block: Box<dyn Block> = if bottleneck {
                    let on_spatial = spec.bottleneck_stride == BottleneckStride::Spatial;
                    // torchvision's ResNeXt width: planes * (group width / 64) * cardinality.
                    let (inner, groups) = match spec.groups {
                        Some(g) => (width * g.width / 64 * g.cardinality, g.cardinality),
                        None => (width, 1),
                    };
                    Box::new(ResBlock::bottleneck(
                        block_path,
                        c_in,
                        inner,
                        width * expansion,
                        stride,
                        on_spatial,
                        groups,
                        style,
                    ))
                } else {
                    Box::new(ResBlock::basic(block_path, c_in, width, stride, style))
                };
                blocks.push(block);
                c_in = width * expansion;
            }
        }
        let num_classes = spec.classes();
        let fc = linear(p / "fc", c_in, num_classes);
        Ok(ImageNetNet { stem, blocks, fc, features: c_in, num_classes })
    }
}

impl Network for ImageNetNet {
    fn macs(&self) -> u64 {
        let mut size = (IMAGE_SIZE + 1) / 2; // conv1, stride 2
        let mut total = conv_macs(3, 64, 7, size, size);
        size = (size + 1) / 2; // max-pool, stride 2
        for block in &self.blocks {
            total += block.macs(size, size);
            size = (size + block.stride() - 1) / block.stride();
        }
        total + (self.features * self.num_classes) as u64
    }

    fn classifier(&self) -> (&nn::Linear, &'static str) {
        (&self.fc, "fc")
    }

    fn conv_bns(&self) -> Vec<&ConvBn> {
        std::iter::once(&self.stem).chain(self.blocks.iter().flat_map(|b| b.conv_bns())).collect()
    }
}

impl ModuleT for ImageNetNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut out = self.stem.forward_relu(x, train).max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        for block in &self.blocks {
            out = block.forward_t(&out, train);
        }
        out.adaptive_avg_pool2d([1, 1]).flatten(1, -1).apply(&self.fc)
    }
}
