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

use super::blocks::{BlockShape, BlockStyle};
use super::layers::{batch_norm, conv3x3, linear, ConvBn};
use super::net::{make_layer, Head, Net, Pool, Stem};
use super::spec::{cifar_unit, BlockVariant, ModelSpec, Unit};
use anyhow::Result;
use tch::nn;

/// Each stage's width (its output channels in basic-block nets).
pub const STAGE_WIDTHS: [i64; 3] = [16, 32, 64];
/// The input size, at which MACs are counted.
pub const IMAGE_SIZE: i64 = 32;
/// ResNeXt-29's stem and first stage's output (Xie et al. 2017, Sec. 5.2).
const RESNEXT_STEM: i64 = 64;
const RESNEXT_STAGE_OUT: [i64; 3] = [256, 512, 1024];

/// The CIFAR net `spec` describes, its variables under `p`.
pub fn build(p: &nn::Path, spec: &ModelSpec) -> Result<Net> {
    spec.validate()?;
    let unit = if spec.groups.is_some() { Unit::Bottleneck } else { cifar_unit(spec.depth)? };
    let layers_per_block = if unit == Unit::Bottleneck { 9 } else { 6 };
    let blocks_per_stage = (spec.depth - 2) / layers_per_block;
    let style = BlockStyle {
        kind: spec.kind,
        shortcut: spec.shortcut,
        variant: spec.block,
        gate_bias: spec.gate_bias(),
        shortcut_name: "shortcut",
    };
    let pre = spec.block == BlockVariant::Pre;
    let stem_width = if spec.groups.is_some() { RESNEXT_STEM } else { STAGE_WIDTHS[0] };
    let conv1 = conv3x3(p / "conv1", 3, stem_width, 1, 1);
    let stem =
        if pre { Stem::Bare(conv1) } else { Stem::Post { conv: ConvBn::new(conv1, p / "bn1"), max_pool: false } };
    let mut c_in = stem_width;
    let mut stages = Vec::new();
    for (stage, &planes) in STAGE_WIDTHS.iter().enumerate() {
        let (width, c_out, groups) = match (unit, spec.groups) {
            (Unit::Basic, _) => (planes, planes, 1),
            (Unit::Bottleneck, None) => (planes, 4 * planes, 1),
            (Unit::Bottleneck, Some(g)) => {
                ((g.cardinality * g.width) << stage, RESNEXT_STAGE_OUT[stage], g.cardinality)
            }
        };
        // Only the first block of a stage changes the shape, so only it needs stride 2.
        let stride = if stage > 0 { 2 } else { 1 };
        let first = BlockShape { unit, c_in, width, c_out, stride, groups, stride_on_spatial: true };
        stages.push(make_layer(&(p / format!("layer{}", stage + 1)), &style, first, blocks_per_stage));
        c_in = c_out;
    }
    let final_bn = pre.then(|| batch_norm(p / "bn_final", c_in));
    let head = Head { final_bn, pool: Pool::Window, fc: linear(p / "linear", c_in, spec.classes()), name: "linear" };
    Ok(Net { stem, stages, head, image_size: IMAGE_SIZE })
}
