//! A network of either family, as torchvision's `ResNet`: a stem, stages of blocks (`layer1`,
//! `layer2`, ...) built by one [`make_layer`], and a head (pooling and the classifier). The
//! families differ only in what `cifar` and `imagenet` put in.

use super::blocks::{Block, BlockShape, BlockStyle};
use super::layers::{out_size, Conv, ConvBn, ConvRef};
use super::taps::Pass;
use tch::nn;
use tch::Tensor;

/// The first convolution.
#[derive(Debug)]
pub enum Stem {
    /// relu(bn1(conv1(x))), then (ImageNet nets) a 3x3/2 max-pool.
    Post {
        /// conv1 and bn1.
        conv: ConvBn,
        /// Whether a 3x3/2 max-pool follows (ImageNet nets).
        max_pool: bool,
    },
    /// Pre-activation nets: the bare convolution (every block starts with its own BN and ReLU).
    Bare(Conv),
}

impl Stem {
    /// The stem's output, the first stage's input.
    pub fn forward(&self, x: &Tensor, pass: Pass) -> Tensor {
        match self {
            Stem::Post { conv, max_pool } => {
                let out = conv.forward_relu(x, None, pass);
                if *max_pool {
                    stem_pool(&out)
                } else {
                    out
                }
            }
            Stem::Bare(conv) => conv.forward(x),
        }
    }

    /// The stem convolution and its BN (none in pre-activation nets).
    pub fn conv(&self) -> ConvRef<'_> {
        match self {
            Stem::Post { conv, .. } => ConvRef { conv: &conv.conv, bn: Some(&conv.bn), on_shortcut: false },
            Stem::Bare(conv) => ConvRef { conv, bn: None, on_shortcut: false },
        }
    }

    fn has_max_pool(&self) -> bool {
        matches!(self, Stem::Post { max_pool: true, .. })
    }
}

/// The ImageNet stem's 3x3/2 max-pool.
pub fn stem_pool(x: &Tensor) -> Tensor {
    x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false)
}

/// How the head averages the last feature map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// A window over the whole map, written as the PyTorch CIFAR reproduction writes it
    /// (F.avg_pool2d with an 8x8 window): adaptive pooling rounds differently in the last bit,
    /// and last bits grow step by step into a different run.
    Window,
    /// torchvision's `AdaptiveAvgPool2d((1, 1))`.
    Adaptive,
}

/// After the last stage: (pre-activation nets) a final BN and ReLU, global average pooling, the
/// fully-connected classifier.
#[derive(Debug)]
pub struct Head {
    /// Pre-activation nets: the BN before the final ReLU and pooling.
    pub final_bn: Option<nn::BatchNorm>,
    /// How the last feature map is averaged.
    pub pool: Pool,
    /// The classifier: features to class logits.
    pub fc: nn::Linear,
    /// The classifier's module name (`linear`, `fc`).
    pub name: &'static str,
}

impl Head {
    /// Logits of the last stage's output.
    pub fn forward(&self, x: &Tensor, pass: Pass) -> Tensor {
        let out = match &self.final_bn {
            Some(bn) => super::layers::bn_relu(bn, x, None, pass),
            None => x.shallow_clone(),
        };
        let pooled = match self.pool {
            Pool::Window => {
                let size = out.size()[3];
                out.avg_pool2d([size, size], [size, size], [0, 0], false, true, None::<i64>)
            }
            Pool::Adaptive => out.adaptive_avg_pool2d([1, 1]),
        };
        pooled.flatten(1, -1).apply(&self.fc)
    }
}

/// A network: stem, stages, head.
#[derive(Debug)]
pub struct Net {
    /// The first convolution (and, for ImageNet nets, the max-pool).
    pub stem: Stem,
    /// `layer1`, `layer2`, ...: each a list of blocks.
    pub stages: Vec<Vec<Block>>,
    /// Final BN (pre-activation), pooling and the classifier.
    pub head: Head,
    /// The image size MACs are counted at (the paper's: 32 for CIFAR, 224 for ImageNet).
    pub image_size: i64,
}

impl Net {
    /// Logits (N, classes) of images (N, 3, H, W).
    pub fn forward(&self, x: &Tensor, pass: Pass) -> Tensor {
        let mut out = self.stem.forward(x, pass);
        for block in self.blocks() {
            out = block.forward(&out, pass);
        }
        self.head.forward(&out, pass)
    }

    /// Every block, in order.
    pub fn blocks(&self) -> impl Iterator<Item = &Block> {
        self.stages.iter().flatten()
    }

    /// Every convolution with its BN, in network order (a block's shortcut projection after the
    /// block's own convolutions).
    pub fn convs(&self) -> Vec<ConvRef<'_>> {
        std::iter::once(self.stem.conv()).chain(self.blocks().flat_map(Block::layers)).collect()
    }

    /// Multiply-accumulates of one forward pass of one image at [`Net::image_size`]
    /// (convolutions and fully-connected layers; BN, ReLU, additions and pooling are not counted,
    /// as in the paper's FLOPs).
    pub fn macs(&self) -> u64 {
        let stem = self.stem.conv().conv;
        let mut size = stem.out_size(self.image_size);
        let mut total = stem.macs(size, size);
        if self.stem.has_max_pool() {
            size = out_size(size, 2);
        }
        for block in self.blocks() {
            total += block.macs(size, size);
            size = block.out_size(size);
        }
        total + self.head.fc.ws.numel() as u64
    }
}

/// One stage, as torchvision's `_make_layer`: `blocks` blocks under `p` (`layer1`, ...), the
/// first of shape `first` (the stage's stride and change of width), the others keeping the shape.
pub fn make_layer(p: &nn::Path, style: &BlockStyle, first: BlockShape, blocks: i64) -> Vec<Block> {
    (0..blocks)
        .map(|i| {
            let shape = if i == 0 { first } else { BlockShape { c_in: first.c_out, stride: 1, ..first } };
            Block::new(&(p / i), &shape, style)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::{BlockVariant, Kind, Shortcut, Unit};
    use tch::Device;

    #[test]
    fn a_stage_changes_the_shape_in_its_first_block_only() {
        let vs = nn::VarStore::new(Device::Cpu);
        let style = BlockStyle {
            kind: Kind::Residual,
            shortcut: Shortcut::B,
            variant: BlockVariant::Post,
            gate_bias: -2.0,
            shortcut_name: "downsample",
        };
        let first = BlockShape {
            unit: Unit::Basic,
            c_in: 8,
            width: 16,
            c_out: 16,
            stride: 2,
            groups: 1,
            stride_on_spatial: false,
        };
        let stage = make_layer(&(vs.root() / "layer2"), &style, first, 3);
        assert_eq!(stage.len(), 3);
        let names: Vec<String> = stage.iter().flat_map(|b| b.layers()).map(|l| l.conv.name.clone()).collect();
        assert_eq!(names[..3], ["layer2.0.conv1", "layer2.0.conv2", "layer2.0.downsample.0"].map(String::from));
        assert_eq!(names.len(), 7, "a projection only where the shape changes");
        assert_eq!(stage.iter().map(|b| b.out_size(8)).collect::<Vec<_>>(), [4, 8, 8]);
    }
}
