//! Model descriptions: which network, parsed from names like `plain-56` or `resnet-110`.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Which architecture family; the name's depth is interpreted within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// The 6n+2-layer CIFAR-10 networks (Section 4.2).
    Cifar,
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
pub enum Shortcut {
    /// Identity; where the shape changes, stride-2 subsampling and zero-padded channels.
    A,
    /// Identity; 1x1 projections (conv + BN) only where the shape changes.
    B,
    /// 1x1 projections on every shortcut.
    C,
}

/// One network of the zoo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub family: Family,
    pub kind: Kind,
    pub depth: i64,
    /// Ignored by plain nets (kept so a plain net names the residual net it mirrors).
    pub shortcut: Shortcut,
}

/// The depths the paper trains on CIFAR-10 (Table 6), listed by `reslab models`.
pub const CIFAR_DEPTHS: [i64; 6] = [20, 32, 44, 56, 110, 1202];

impl ModelSpec {
    pub fn cifar(kind: Kind, depth: i64) -> Result<ModelSpec> {
        if depth < 8 || (depth - 2) % 6 != 0 {
            bail!("depth {depth} is not a CIFAR depth: expected 6n+2 with n >= 1 (8, 20, 32, 44, 56, 110, 1202, ...)");
        }
        Ok(ModelSpec {
            family: Family::Cifar,
            kind,
            depth,
            shortcut: Shortcut::A,
        })
    }

    pub fn with_shortcut(mut self, shortcut: Shortcut) -> ModelSpec {
        self.shortcut = shortcut;
        self
    }

    /// The name without the shortcut option: `plain-56`, `resnet-110`.
    pub fn name(&self) -> String {
        format!("{}-{}", self.kind, self.depth)
    }

    /// Every model `reslab models` lists: plain and residual nets at the paper's depths, each
    /// residual net with every shortcut option.
    pub fn zoo() -> Vec<ModelSpec> {
        let mut specs = Vec::new();
        for depth in CIFAR_DEPTHS {
            specs.push(ModelSpec {
                family: Family::Cifar,
                kind: Kind::Plain,
                depth,
                shortcut: Shortcut::A,
            });
            for shortcut in [Shortcut::A, Shortcut::B, Shortcut::C] {
                specs.push(ModelSpec {
                    family: Family::Cifar,
                    kind: Kind::Residual,
                    depth,
                    shortcut,
                });
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

    /// Parses `plain-N` or `resnet-N` (N = 6n+2); the shortcut defaults to A.
    fn from_str(name: &str) -> Result<ModelSpec> {
        let expected =
            "expected plain-N or resnet-N with N = 6n+2 (e.g. plain-20, resnet-56, resnet-110)";
        let Some((kind, depth)) = name.split_once('-') else {
            bail!("unknown model '{name}': {expected}");
        };
        let kind = match kind {
            "plain" => Kind::Plain,
            "resnet" => Kind::Residual,
            _ => bail!("unknown model '{name}': {expected}"),
        };
        let Ok(depth) = depth.parse::<i64>() else {
            bail!("unknown model '{name}': depth '{depth}' is not a number; {expected}");
        };
        ModelSpec::cifar(kind, depth).map_err(|e| anyhow::anyhow!("model '{name}': {e}"))
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Family::Cifar => "cifar",
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
