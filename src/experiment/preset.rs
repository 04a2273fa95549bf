//! Presets: the named schedule lengths every experiment file offers.

use serde::{Deserialize, Serialize};

/// Named schedule lengths: the same shape as the paper's, scaled down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Minutes on a 2-core CPU, on the embedded sample: checks a study end to end.
    Smoke,
    /// Minutes on a laptop CPU, on the embedded sample.
    Demo,
    /// 80 to 115 minutes on a 2-core CPU on the full data: long enough to tell the paper's central
    /// comparisons apart with 95% intervals (fig6, table6; chosen by measurement, docs/results.md).
    Cpu,
    /// A shortened schedule on the full data: hours on a CPU (each experiment's length is listed
    /// in `reslab reproduce --help`).
    Quick,
    /// The paper's own schedule.
    Paper,
}

impl Preset {
    /// Every preset, shortest first.
    pub const ALL: [Preset; 5] = [Preset::Smoke, Preset::Demo, Preset::Cpu, Preset::Quick, Preset::Paper];

    /// The preset's name, as in experiment files and `--preset`.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Smoke => "smoke",
            Preset::Demo => "demo",
            Preset::Cpu => "cpu",
            Preset::Quick => "quick",
            Preset::Paper => "paper",
        }
    }
}
