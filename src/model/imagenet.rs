//! The ImageNet networks of He et al. (2015), Table 1: a 7x7/2 conv (64), a 3x3/2 max-pool, four
//! stages with base widths 64/128/256/512 (stride 2 in the first block of stages 2-4), global
//! average pooling and a fully-connected layer. 18 and 34 layers use basic blocks, 50/101/152
//! bottleneck blocks. Names as in torchvision (`conv1`, `bn1`, `layer1.0.conv1`,
//! `layer2.0.downsample.0`, `fc`), so option-B weights load into `torchvision.models.resnetN`.

use super::blocks::{BlockShape, BlockStyle};
use super::layers::{linear, Conv, ConvBn};
use super::net::{make_layer, Head, Net, Pool, Stem};
use super::spec::{imagenet_layout, BottleneckStride, ModelSpec, Unit};
use anyhow::Result;
use tch::nn;

/// Each stage's base width (torchvision's `planes`).
pub const STAGE_WIDTHS: [i64; 4] = [64, 128, 256, 512];
/// MACs are reported for the paper's 224x224 crops.
pub const IMAGE_SIZE: i64 = 224;

/// The ImageNet net `spec` describes, its variables under `p`.
pub fn build(p: &nn::Path, spec: &ModelSpec) -> Result<Net> {
    spec.validate()?;
    let (counts, unit) = imagenet_layout(spec.depth)?;
    let style = BlockStyle {
        kind: spec.kind,
        shortcut: spec.shortcut,
        variant: spec.block, // post: validated
        gate_bias: spec.gate_bias(),
        shortcut_name: "downsample",
    };
    let stem = Stem::Post { conv: ConvBn::new(Conv::new(p / "conv1", 3, 64, 7, 2, 1), p / "bn1"), max_pool: true };
    let expansion = if unit == Unit::Bottleneck { 4 } else { 1 };
    let mut c_in = 64;
    let mut stages = Vec::new();
    for (stage, (&planes, &blocks)) in STAGE_WIDTHS.iter().zip(&counts).enumerate() {
        // torchvision's ResNeXt width: planes * (group width / 64) * cardinality.
        let (width, groups) = match spec.groups {
            Some(g) => (planes * g.width / 64 * g.cardinality, g.cardinality),
            None => (planes, 1),
        };
        let c_out = planes * expansion;
        let stride = if stage > 0 { 2 } else { 1 };
        let stride_on_spatial = spec.bottleneck_stride == BottleneckStride::Spatial;
        let first = BlockShape { unit, c_in, width, c_out, stride, groups, stride_on_spatial };
        stages.push(make_layer(&(p / format!("layer{}", stage + 1)), &style, first, blocks));
        c_in = c_out;
    }
    let head = Head { final_bn: None, pool: Pool::Adaptive, fc: linear(p / "fc", c_in, spec.classes()), name: "fc" };
    Ok(Net { stem, stages, head, image_size: IMAGE_SIZE })
}
