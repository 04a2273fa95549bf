//! Model descriptions: which network, parsed from names like `plain-56`, `resnet-110` or
//! `resnet-50`, and the zoo `reslab models` lists.

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
    Plain,
    #[serde(rename = "resnet")]
    Residual,
}

/// The paper's three shortcut options (Section 3.3, Table 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum Shortcut {
    /// Identity; where the shape changes, stride-2 subsampling and zero-padded channels.
    A,
    /// Identity; 1x1 projections (conv + BN) only where the shape changes.
    B,
    /// 1x1 projections on every shortcut.
    C,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub family: Family,
    pub kind: Kind,
    pub depth: i64,
    /// Ignored by plain nets (kept so a plain net names the residual net it mirrors).
    pub shortcut: Shortcut,
    /// Bottleneck nets only.
    #[serde(default)]
    pub bottleneck_stride: BottleneckStride,
    /// Outputs of the classifier; `None`: 10 for CIFAR, 1000 for ImageNet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_classes: Option<i64>,
}

/// The depths the paper trains on CIFAR-10 (Table 6), listed by `reslab models`.
pub const CIFAR_DEPTHS: [i64; 6] = [20, 32, 44, 56, 110, 1202];

impl ModelSpec {
    /// A network of `family` at `depth` with that family's default shortcut (A for CIFAR, the
    /// paper's choice there; B for ImageNet).
    pub fn new(family: Family, kind: Kind, depth: i64) -> Result<ModelSpec> {
        let shortcut = match family {
            Family::Cifar => {
                if depth < 8 || (depth - 2) % 6 != 0 {
                    bail!("depth {depth} is not a CIFAR depth: expected 6n+2 with n >= 1 (8, 20, 32, 44, 56, 110, 1202, ...)");
                }
                Shortcut::A
            }
            Family::Imagenet => {
                super::imagenet::layout(depth)?;
                Shortcut::B
            }
        };
        Ok(ModelSpec { family, kind, depth, shortcut, bottleneck_stride: BottleneckStride::Reduce, num_classes: None })
    }

    pub fn cifar(kind: Kind, depth: i64) -> Result<ModelSpec> {
        Self::new(Family::Cifar, kind, depth)
    }

    pub fn with_shortcut(mut self, shortcut: Shortcut) -> ModelSpec {
        self.shortcut = shortcut;
        self
    }

    pub fn classes(&self) -> i64 {
        self.num_classes.unwrap_or(match self.family {
            Family::Cifar => 10,
            Family::Imagenet => 1000,
        })
    }

    pub fn is_bottleneck(&self) -> bool {
        self.family == Family::Imagenet && self.depth >= 50
    }

    /// The name without the shortcut option: `plain-56`, `resnet-110`, `resnet-50`; a CIFAR
    /// net whose depth is also an ImageNet depth (50, 152) is `cifar-resnet-50`.
    pub fn name(&self) -> String {
        let name = format!("{}-{}", self.kind, self.depth);
        if Self::default_family(self.depth) != self.family {
            format!("{}-{name}", self.family)
        } else {
            name
        }
    }

    /// ImageNet depths name ImageNet nets; every other depth a CIFAR net.
    fn default_family(depth: i64) -> Family {
        if super::imagenet::DEPTHS.contains(&depth) {
            Family::Imagenet
        } else {
            Family::Cifar
        }
    }

    /// Every model `reslab models` lists: plain and residual nets at the paper's depths, each
    /// residual net with every shortcut option.
    pub fn zoo() -> Vec<ModelSpec> {
        let mut specs = Vec::new();
        let depths = CIFAR_DEPTHS.iter().map(|&d| (Family::Cifar, d));
        let depths = depths.chain(super::imagenet::DEPTHS.iter().map(|&d| (Family::Imagenet, d)));
        for (family, depth) in depths {
            let plain = ModelSpec::new(family, Kind::Plain, depth).expect("zoo depths are valid");
            let residual = ModelSpec { kind: Kind::Residual, ..plain.clone() };
            specs.push(plain);
            for shortcut in [Shortcut::A, Shortcut::B, Shortcut::C] {
                specs.push(residual.clone().with_shortcut(shortcut));
            }
        }
        specs
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
        };
        f.write_str(letter)
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
                        or 18/34/50/101/152 for ImageNet, optionally prefixed cifar- or imagenet-";
        let (family, rest) = match text.split_once('-') {
            Some(("cifar", rest)) => (Some(Family::Cifar), rest),
            Some(("imagenet", rest)) => (Some(Family::Imagenet), rest),
            _ => (None, text),
        };
        let Some((kind, depth)) = rest.split_once('-') else {
            bail!("unknown model '{name}': {expected}");
        };
        let kind = match kind {
            "plain" => Kind::Plain,
            "resnet" => Kind::Residual,
            _ => bail!("unknown model '{name}': {expected}"),
        };
        let Ok(depth) = depth.parse::<i64>() else {
            bail!("unknown model '{name}': depth '{}' is not a number; {expected}", depth.escape_debug());
        };
        let family = family.unwrap_or(Self::default_family(depth));
        ModelSpec::new(family, kind, depth).map_err(|e| anyhow::anyhow!("model '{name}': {e}"))
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
        for bad in ["resnet-21", "imagenet-resnet-20", "vgg-16", "resnet-x"] {
            let err = bad.parse::<ModelSpec>().unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }
}
