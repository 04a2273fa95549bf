//! The arithmetic of a network's forward pass. A model's own fact rather than a run's: a weights
//! file records the precision it was trained in ([`super::weights::metadata`]), and a run's
//! configuration chooses it.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// Mixed precision: `bf16` computes convolutions and matmuls in bfloat16 (libtorch's autocast),
/// with fp32 master weights, momentum, BN statistics and loss; `fp32` computes everything in fp32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in fp32.
    #[default]
    Fp32,
    /// Convolutions and matmuls in bfloat16, the rest in fp32.
    Bf16,
}

impl Precision {
    /// Its name in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Precision> {
        match text {
            "fp32" => Ok(Precision::Fp32),
            "bf16" => Ok(Precision::Bf16),
            _ => bail!("unknown precision '{}'; expected fp32 or bf16", text.escape_debug()),
        }
    }
}
