//! Model descriptions: which network, parsed from names like `plain-56`, `resnet-110` or
//! `resnet-50`, the checks of which combinations the families build, and the depths each family
//! takes. The building files (`blocks`, `cifar`, `imagenet`) read these; this file reads none of
//! them.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Which architecture family; the name's depth is interpreted within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// The 6n+2-layer CIFAR-10 networks (Section 4.2).
    Cifar,
    /// The 18/34/50/101/152-layer ImageNet networks (Table 1).
    Imagenet,
}

/// Plain nets are the residual nets with every shortcut removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// No shortcuts: each block's output is relu(F(x)).
    Plain,
    /// With shortcuts: relu(F(x) + shortcut(x)); `resnet` in names and files.
    #[serde(rename = "resnet")]
    Residual,
}

/// The paper's three shortcut options (Section 3.3, Table 3), and the highway gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum Shortcut {
    /// Identity; where the shape changes, stride-2 subsampling and zero-padded channels.
    A,
    /// Identity; 1x1 projections (conv + BN) only where the shape changes.
    B,
    /// 1x1 projections on every shortcut.
    C,
    /// Gated (Highway networks, Srivastava et al. 2015): y = T(x) * F(x) + (1 - T(x)) * x with
    /// T(x) = sigmoid(conv1x1(x) + b), b starting at the gate bias (default -2) so the gate first
    /// carries x; option B's projection where the shape changes.
    #[value(name = "highway")]
    #[serde(rename = "highway")]
    Highway,
}

/// Where BN and ReLU sit in a residual block (He et al. 2016, "Identity mappings in deep
/// residual networks", Fig. 4). CIFAR family only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BlockVariant {
    /// The 2015 paper's: conv, BN, ReLU, conv, BN, add, ReLU.
    #[default]
    Post,
    /// Full pre-activation: BN, ReLU, conv, BN, ReLU, conv, add; a final BN and ReLU before pooling.
    Pre,
    /// BN after the addition: conv, BN, ReLU, conv, add, BN, ReLU.
    BnAfterAdd,
    /// No ReLU after the addition: conv, BN, ReLU, conv, BN, add.
    NoReluAfterAdd,
}

impl BlockVariant {
    /// Every variant, post first.
    pub const ALL: [BlockVariant; 4] =
        [BlockVariant::Post, BlockVariant::Pre, BlockVariant::BnAfterAdd, BlockVariant::NoReluAfterAdd];

    /// The 2015 paper's block.
    pub fn is_post(&self) -> bool {
        *self == BlockVariant::Post
    }

    /// The name in model names and on the command line (`bn-after-add`).
    pub fn name(self) -> &'static str {
        match self {
            BlockVariant::Post => "post",
            BlockVariant::Pre => "pre",
            BlockVariant::BnAfterAdd => "bn-after-add",
            BlockVariant::NoReluAfterAdd => "no-relu-after-add",
        }
    }
}

/// ResNeXt's split-transform-merge (Xie et al. 2017): each bottleneck's 3x3 convolution in
/// `cardinality` groups of `width` channels in the first stage (doubled per stage), as in the
/// names `resnext-29-8x64d` and `resnext-50-32x4d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Groups {
    /// Groups of each bottleneck's 3x3 convolution (the `8` of `8x64d`).
    pub cardinality: i64,
    /// Channels per group in the first stage (the `64` of `8x64d`).
    pub width: i64,
}

/// Where a bottleneck block that halves the size puts its stride.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BottleneckStride {
    /// On the first 1x1 conv, as in the paper (and Keras).
    #[default]
    Reduce,
    /// On the 3x3 conv, as in torchvision ("ResNet v1.5").
    Spatial,
}

/// One network of the zoo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// CIFAR or ImageNet.
    pub family: Family,
    /// Plain or residual.
    pub kind: Kind,
    /// Weighted layers (convolutions and the classifier, not counting shortcut projections).
    pub depth: i64,
    /// Ignored by plain nets (kept so a plain net names the residual net it mirrors).
    pub shortcut: Shortcut,
    /// Bottleneck nets only.
    #[serde(default)]
    pub bottleneck_stride: BottleneckStride,
    /// Outputs of the classifier; `None`: 10 for CIFAR, 1000 for ImageNet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_classes: Option<i64>,
    /// Where BN and ReLU sit in each block (CIFAR family).
    #[serde(default, skip_serializing_if = "BlockVariant::is_post")]
    pub block: BlockVariant,
    /// Highway nets: the gates' initial bias; `None`: -2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_bias: Option<f64>,
    /// ResNeXt nets: cardinality and group width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Groups>,
}

/// The depths the paper trains on CIFAR-10 (Table 6), listed by `reslab models`.
pub const CIFAR_DEPTHS: [i64; 6] = [20, 32, 44, 56, 110, 1202];

/// The ImageNet depths (Table 1).
pub const IMAGENET_DEPTHS: [i64; 5] = [18, 34, 50, 101, 152];

/// The gate bias highway blocks start from (Srivastava et al.: "negative, e.g. -1 or -3").
pub const DEFAULT_GATE_BIAS: f64 = -2.0;

/// An ImageNet depth's blocks per stage, and which block (Table 1).
pub fn imagenet_layout(depth: i64) -> Result<([i64; 4], Unit)> {
    Ok(match depth {
        18 => ([2, 2, 2, 2], Unit::Basic),
        34 => ([3, 4, 6, 3], Unit::Basic),
        50 => ([3, 4, 6, 3], Unit::Bottleneck),
        101 => ([3, 4, 23, 3], Unit::Bottleneck),
        152 => ([3, 8, 36, 3], Unit::Bottleneck),
        _ => bail!("depth {depth} is not an ImageNet depth: expected 18, 34, 50, 101 or 152"),
    })
}

impl ModelSpec {
    /// A network of `family` at `depth` with that family's default shortcut (A for CIFAR, the
    /// paper's choice there; B for ImageNet).
    pub fn new(family: Family, kind: Kind, depth: i64) -> Result<ModelSpec> {
        let shortcut = match family {
            Family::Cifar => match cifar_unit(depth)? {
                Unit::Basic => Shortcut::A,
                Unit::Bottleneck => Shortcut::B,
            },
            Family::Imagenet => {
                imagenet_layout(depth)?;
                Shortcut::B
            }
        };
        Ok(ModelSpec {
            family,
            kind,
            depth,
            shortcut,
            bottleneck_stride: BottleneckStride::Reduce,
            num_classes: None,
            block: BlockVariant::Post,
            gate_bias: None,
            groups: None,
        })
    }

    /// A ResNeXt net: bottlenecks with grouped 3x3 convolutions, projections where the shape
    /// changes, the stride on the 3x3 convolution (as the ResNeXt paper and torchvision).
    pub fn resnext(family: Family, depth: i64, groups: Groups) -> Result<ModelSpec> {
        if groups.cardinality < 1 || groups.width < 1 {
            bail!("ResNeXt {}x{}d: expected a positive cardinality and group width", groups.cardinality, groups.width);
        }
        let spec = ModelSpec::new(family, Kind::Residual, depth)?;
        if family == Family::Cifar && (depth - 2) % 9 != 0 {
            bail!("depth {depth} is not a CIFAR ResNeXt depth: expected 9n+2 (29, ...)");
        }
        if family == Family::Imagenet && !spec.is_bottleneck() {
            bail!("ResNeXt needs bottleneck blocks: expected depth 50, 101 or 152");
        }
        Ok(ModelSpec {
            shortcut: Shortcut::B,
            bottleneck_stride: BottleneckStride::Spatial,
            groups: Some(groups),
            ..spec
        })
    }

    /// Checks the combination of settings the types allow but the families do not build.
    pub fn validate(&self) -> Result<()> {
        if self.family == Family::Imagenet && !self.block.is_post() {
            bail!("block '{}' is built for the CIFAR family only; expected post for ImageNet nets", self.block.name());
        }
        if self.kind == Kind::Plain && matches!(self.block, BlockVariant::BnAfterAdd | BlockVariant::NoReluAfterAdd) {
            bail!(
                "block '{}' changes the shortcut's addition, which a plain net has not; expected post or pre",
                self.block.name()
            );
        }
        if self.groups.is_some() && !(self.block.is_post() && self.kind == Kind::Residual) {
            bail!("ResNeXt nets are residual with post-activation blocks");
        }
        if self.shortcut == Shortcut::Highway && self.kind == Kind::Residual && !self.block.is_post() {
            bail!("highway shortcuts are built with post-activation blocks; expected block post");
        }
        if let Some(bias) = self.gate_bias {
            if self.shortcut != Shortcut::Highway {
                bail!(
                    "gate_bias {bias} is for highway shortcuts, but the shortcut is {}; expected shortcut \"highway\" \
                     with a gate_bias, or no gate_bias",
                    self.shortcut
                );
            }
            if bias.is_nan() || bias == f64::INFINITY {
                bail!("gate bias {bias}: expected a number below infinity (negative carries the input first)");
            }
        }
        Ok(())
    }

    /// A CIFAR net at `depth` with the family's default shortcut.
    pub fn cifar(kind: Kind, depth: i64) -> Result<ModelSpec> {
        Self::new(Family::Cifar, kind, depth)
    }

    /// The same net with `shortcut`.
    pub fn with_shortcut(mut self, shortcut: Shortcut) -> ModelSpec {
        self.shortcut = shortcut;
        self
    }

    /// Outputs of the classifier.
    pub fn classes(&self) -> i64 {
        self.num_classes.unwrap_or(match self.family {
            Family::Cifar => 10,
            Family::Imagenet => 1000,
        })
    }

    /// Whether the net is built of bottleneck blocks.
    pub fn is_bottleneck(&self) -> bool {
        match self.family {
            Family::Imagenet => self.depth >= 50,
            Family::Cifar => self.groups.is_some() || cifar_unit(self.depth).is_ok_and(|u| u == Unit::Bottleneck),
        }
    }

    /// The name without the shortcut option: `plain-56`, `resnet-110`, `resnet-50`,
    /// `resnext-29-8x64d`, with the block variant where it is not post (`resnet-110-pre`); a CIFAR
    /// net whose depth is also an ImageNet depth (50, 152) is `cifar-resnet-50`.
    pub fn name(&self) -> String {
        let mut name = match self.groups {
            Some(g) => format!("resnext-{}-{}x{}d", self.depth, g.cardinality, g.width),
            None => format!("{}-{}", self.kind, self.depth),
        };
        if !self.block.is_post() {
            name = format!("{name}-{}", self.block.name());
        }
        if Self::default_family(self.depth) != self.family {
            format!("{}-{name}", self.family)
        } else {
            name
        }
    }

    /// What decides the layers built, and so which weights fit: the spec without what only
    /// initialises (the gate bias) or goes unused (a plain net's shortcut; the stride placement
    /// outside ImageNet bottlenecks, as CIFAR bottlenecks always stride their 3x3) and without the
    /// classes (compared on their own where known). Equal for two specs exactly when one's weights
    /// are the other's network.
    pub fn architecture(&self) -> ModelSpec {
        let stride_placed = self.family == Family::Imagenet && self.is_bottleneck();
        ModelSpec {
            shortcut: if self.kind == Kind::Plain { Shortcut::A } else { self.shortcut },
            bottleneck_stride: if stride_placed { self.bottleneck_stride } else { BottleneckStride::default() },
            num_classes: None,
            gate_bias: None,
            ..self.clone()
        }
    }

    /// The gates' initial bias (highway nets).
    pub fn gate_bias(&self) -> f64 {
        self.gate_bias.unwrap_or(DEFAULT_GATE_BIAS)
    }

    /// ImageNet depths name ImageNet nets; every other depth a CIFAR net.
    fn default_family(depth: i64) -> Family {
        if IMAGENET_DEPTHS.contains(&depth) {
            Family::Imagenet
        } else {
            Family::Cifar
        }
    }
}

/// Which block a net is built of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Two 3x3 convolutions.
    Basic,
    /// 1x1 reduce, 3x3, 1x1 expand.
    Bottleneck,
}

/// Which block a CIFAR depth builds: 6n+2 basic blocks (20, 56, 110, 1202), except 164, and
/// other 9n+2 depths (1001) bottlenecks, as in He et al. (2016).
pub fn cifar_unit(depth: i64) -> Result<Unit> {
    let basic = depth >= 8 && (depth - 2) % 6 == 0;
    let bottleneck = depth >= 11 && (depth - 2) % 9 == 0;
    match (basic, bottleneck) {
        (_, true) if depth == 164 || !basic => Ok(Unit::Bottleneck),
        (true, _) => Ok(Unit::Basic),
        _ => bail!(
            "depth {depth} is not a CIFAR depth: expected 6n+2 with n >= 1 for basic blocks (8, 20, 32, 44, 56, 110, \
             1202, ...) or 9n+2 for bottlenecks (164, 1001, ...)"
        ),
    }
}

impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.kind {
            Kind::Plain => write!(f, "{}", self.name()),
            Kind::Residual => write!(f, "{} ({})", self.name(), self.shortcut),
        }
    }
}

impl fmt::Display for Shortcut {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let letter = match self {
            Shortcut::A => "A",
            Shortcut::B => "B",
            Shortcut::C => "C",
            Shortcut::Highway => "highway",
        };
        f.write_str(letter)
    }
}

impl fmt::Display for BlockVariant {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ModelSpec {
    type Err = anyhow::Error;

    /// Parses `plain-N` or `resnet-N`, optionally prefixed by the family (`cifar-resnet-50`,
    /// `imagenet-plain-34`). Without a prefix, N in 18/34/50/101/152 is an ImageNet net and any
    /// other N = 6n+2 a CIFAR net.
    fn from_str(text: &str) -> Result<ModelSpec> {
        let name = text.escape_debug().to_string(); // errors stay on one line
        let expected = "expected plain-N or resnet-N with N = 6n+2 for CIFAR (20, 56, 110, ...) \
                        or 18/34/50/101/152 for ImageNet, or resnext-N-CxDd (resnext-29-8x64d, resnext-50-32x4d), \
                        optionally prefixed cifar- or imagenet- and followed by a block variant (-pre)";
        let (text, block) = match BlockVariant::ALL.iter().skip(1).find(|b| text.ends_with(&format!("-{}", b.name()))) {
            Some(&block) => (&text[..text.len() - block.name().len() - 1], block),
            None => (text, BlockVariant::Post),
        };
        let (family, rest) = match text.split_once('-') {
            Some(("cifar", rest)) => (Some(Family::Cifar), rest),
            Some(("imagenet", rest)) => (Some(Family::Imagenet), rest),
            _ => (None, text),
        };
        let Some((kind, depth)) = rest.split_once('-') else {
            bail!("unknown model '{name}': {expected}");
        };
        let (kind, depth, groups) = match kind {
            "plain" => (Kind::Plain, depth, None),
            "resnet" => (Kind::Residual, depth, None),
            "resnext" => {
                let parsed = depth.split_once('-').and_then(|(depth, groups)| {
                    let (cardinality, width) = groups.strip_suffix('d')?.split_once('x')?;
                    Some((depth, Groups { cardinality: cardinality.parse().ok()?, width: width.parse().ok()? }))
                });
                let Some((depth, groups)) = parsed else {
                    bail!("unknown model '{name}': a ResNeXt is named resnext-N-CxDd (cardinality C, group width D); {expected}");
                };
                (Kind::Residual, depth, Some(groups))
            }
            _ => bail!("unknown model '{name}': {expected}"),
        };
        let Ok(depth) = depth.parse::<i64>() else {
            bail!("unknown model '{name}': depth '{}' is not a number; {expected}", depth.escape_debug());
        };
        let family = family.unwrap_or(Self::default_family(depth));
        let spec = match groups {
            Some(groups) => ModelSpec::resnext(family, depth, groups),
            None => ModelSpec::new(family, kind, depth),
        };
        let spec = ModelSpec { block, ..spec.map_err(|e| anyhow::anyhow!("model '{name}': {e}"))? };
        spec.validate().map_err(|e| anyhow::anyhow!("model '{name}': {e}"))?;
        Ok(spec)
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Family::Cifar => "cifar",
            Family::Imagenet => "imagenet",
        })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Kind::Plain => "plain",
            Kind::Residual => "resnet",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_pick_the_family_by_depth_unless_prefixed() {
        let spec: ModelSpec = "resnet-50".parse().unwrap();
        assert_eq!((spec.family, spec.shortcut), (Family::Imagenet, Shortcut::B));
        let spec: ModelSpec = "cifar-resnet-50".parse().unwrap();
        assert_eq!((spec.family, spec.shortcut, spec.name()), (Family::Cifar, Shortcut::A, "cifar-resnet-50".into()));
        assert_eq!("plain-56".parse::<ModelSpec>().unwrap().family, Family::Cifar);
        let spec: ModelSpec = "resnext-29-8x64d".parse().unwrap();
        assert_eq!(
            (spec.family, spec.shortcut, spec.groups),
            (Family::Cifar, Shortcut::B, Some(Groups { cardinality: 8, width: 64 }))
        );
        assert_eq!(spec.name(), "resnext-29-8x64d");
        let spec: ModelSpec = "resnext-50-32x4d".parse().unwrap();
        assert_eq!((spec.family, spec.bottleneck_stride), (Family::Imagenet, BottleneckStride::Spatial));
        let spec: ModelSpec = "resnet-110-bn-after-add".parse().unwrap();
        assert_eq!(
            (spec.depth, spec.block, spec.name()),
            (110, BlockVariant::BnAfterAdd, "resnet-110-bn-after-add".into())
        );
        let spec: ModelSpec = "resnet-164".parse().unwrap();
        assert!(spec.is_bottleneck() && spec.shortcut == Shortcut::B);
        assert!(!"resnet-110".parse::<ModelSpec>().unwrap().is_bottleneck());
        assert!("resnet-1001-pre".parse::<ModelSpec>().unwrap().is_bottleneck());
        for bad in [
            "resnet-21",
            "imagenet-resnet-20",
            "vgg-16",
            "resnet-x",
            "resnext-29",
            "resnext-29-8x",
            "resnet-34-pre",
            "plain-20-bn-after-add",
        ] {
            let err = bad.parse::<ModelSpec>().unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn a_gate_bias_is_refused_without_a_highway_shortcut_in_one_line() {
        let mut spec: ModelSpec = "resnet-20".parse().unwrap();
        spec.gate_bias = Some(-3.0);
        let err = spec.validate().unwrap_err().to_string();
        assert!(err.contains("gate_bias") && err.contains("\"highway\"") && !err.contains('\n'), "{err}");
        for shortcut in [Shortcut::B, Shortcut::C] {
            assert!(spec.clone().with_shortcut(shortcut).validate().is_err(), "{shortcut}");
        }
        spec.shortcut = Shortcut::Highway;
        spec.validate().unwrap();
        assert_eq!(spec.gate_bias(), -3.0);
        spec.gate_bias = Some(f64::NAN);
        assert!(spec.validate().is_err());
        spec.gate_bias = None;
        assert_eq!(spec.gate_bias(), DEFAULT_GATE_BIAS);
    }

    #[test]
    fn the_architecture_keeps_what_builds_other_layers_only() {
        let arch = |name: &str| name.parse::<ModelSpec>().unwrap().architecture();
        assert_ne!(arch("plain-20"), arch("resnet-20"), "option A adds no parameters, yet is another net");
        assert_ne!(
            arch("resnet-20"),
            "resnet-20".parse::<ModelSpec>().unwrap().with_shortcut(Shortcut::B).architecture()
        );
        assert_ne!(arch("resnet-110"), arch("resnet-110-pre"));
        assert_eq!(
            arch("plain-20"),
            "plain-20".parse::<ModelSpec>().unwrap().with_shortcut(Shortcut::C).architecture()
        );
        let mut highway = "resnet-20".parse::<ModelSpec>().unwrap().with_shortcut(Shortcut::Highway);
        let start = highway.architecture();
        highway.gate_bias = Some(-5.0);
        highway.num_classes = Some(100);
        assert_eq!(highway.architecture(), start);
        let v1_5 = ModelSpec { bottleneck_stride: BottleneckStride::Spatial, ..arch("resnet-50") };
        assert_ne!(v1_5.architecture(), arch("resnet-50"));
        let cifar = ModelSpec { bottleneck_stride: BottleneckStride::Spatial, ..arch("resnet-164") };
        assert_eq!(cifar.architecture(), arch("resnet-164"));
    }

    #[test]
    fn imagenet_layouts_follow_table_1() {
        let blocks = |depth| imagenet_layout(depth).unwrap().0.iter().sum::<i64>();
        assert_eq!([18, 34, 50, 101, 152].map(blocks), [8, 16, 16, 33, 50]);
        assert_eq!(imagenet_layout(50).unwrap().1, Unit::Bottleneck);
        assert!(imagenet_layout(20).is_err());
    }
}
