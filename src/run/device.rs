//! Where a run computes: `--device auto|cpu|cuda|cuda:N`. `auto` is the first GPU where libtorch
//! sees one (the Slurm and local runners give each job its own through CUDA_VISIBLE_DEVICES), else
//! the CPU. A run records the device it ran on (`config.toml`, `summary.toml`, `attempts.csv`);
//! the device never makes another run: a run may resume on another one, and says so.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use tch::Device;

/// The device a command computes on, as asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceChoice {
    /// The first GPU where there is one, else the CPU.
    #[default]
    Auto,
    /// The CPU, even where there is a GPU.
    Cpu,
    /// A CUDA GPU: its index, or `None` for the first (a data-parallel rank's: its local rank's).
    Cuda(Option<usize>),
}

impl super::RunConfig {
    /// This configuration as it runs on `device`: what its run directory records.
    pub fn ran_on(&self, device: Device) -> super::RunConfig {
        super::RunConfig { device: DeviceChoice::of(device), ..self.clone() }
    }
}

impl DeviceChoice {
    /// Whether it is `auto` (left out of `config.toml`: runs made before the setting were `auto`).
    pub fn is_auto(&self) -> bool {
        *self == DeviceChoice::Auto
    }

    /// The device this machine gives it; one line where it has no such device. On a GPU, cuDNN's
    /// benchmark mode is switched on (a run's shapes never change, so the fastest kernels are
    /// found once).
    pub fn resolve(self) -> Result<Device> {
        self.resolve_with(tch::Cuda::device_count().max(0) as usize)
    }

    /// [`Self::resolve`] on a machine with `gpus` CUDA devices.
    fn resolve_with(self, gpus: usize) -> Result<Device> {
        let device = match self {
            DeviceChoice::Cpu => Device::Cpu,
            DeviceChoice::Auto if gpus == 0 => Device::Cpu,
            DeviceChoice::Auto | DeviceChoice::Cuda(None) => Device::Cuda(0),
            DeviceChoice::Cuda(Some(index)) => Device::Cuda(index),
        };
        if let Device::Cuda(index) = device {
            if gpus == 0 {
                bail!("device {self}: libtorch sees no CUDA device on this machine; expected cpu or auto");
            }
            if index >= gpus {
                let there = (0..gpus).map(|i| format!("cuda:{i}")).collect::<Vec<_>>().join(", ");
                bail!("device {self}: this machine has {gpus} CUDA device(s) ({there}); expected one of them, cpu or auto");
            }
            if tch::Cuda::is_available() {
                tch::Cuda::cudnn_set_benchmark(true);
            }
        }
        Ok(device)
    }

    /// The device a data-parallel rank computes on: `auto` and `cuda` give rank `local_rank` the
    /// GPU of its local rank (modulo the GPUs there are), or the CPU where there are none.
    pub fn resolve_for_rank(self, local_rank: usize) -> Result<Device> {
        let gpus = tch::Cuda::device_count().max(0) as usize;
        match self {
            DeviceChoice::Auto if gpus == 0 => Ok(Device::Cpu),
            DeviceChoice::Auto | DeviceChoice::Cuda(None) if gpus > 0 => {
                DeviceChoice::Cuda(Some(local_rank % gpus)).resolve_with(gpus)
            }
            choice => choice.resolve_with(gpus),
        }
    }

    /// The device as it is recorded: `cpu` or `cuda:N`.
    pub fn of(device: Device) -> DeviceChoice {
        match device {
            Device::Cuda(index) => DeviceChoice::Cuda(Some(index)),
            _ => DeviceChoice::Cpu,
        }
    }
}

/// The words `--device` takes.
const EXPECTED: &str = "expected auto, cpu, cuda or cuda:N (a GPU's index, e.g. cuda:1)";

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<DeviceChoice, String> {
        let lower = text.to_ascii_lowercase();
        match lower.as_str() {
            "auto" => return Ok(DeviceChoice::Auto),
            "cpu" => return Ok(DeviceChoice::Cpu),
            "cuda" => return Ok(DeviceChoice::Cuda(None)),
            _ => {}
        }
        match lower.strip_prefix("cuda:").map(|index| (index, index.parse::<usize>())) {
            Some((digits, Ok(index))) if digits.chars().all(|c| c.is_ascii_digit()) => {
                Ok(DeviceChoice::Cuda(Some(index)))
            }
            _ => Err(EXPECTED.to_string()),
        }
    }
}

impl TryFrom<String> for DeviceChoice {
    type Error = String;
    fn try_from(text: String) -> Result<DeviceChoice, String> {
        text.parse().map_err(|e| format!("device '{text}': {e}"))
    }
}

impl From<DeviceChoice> for String {
    fn from(choice: DeviceChoice) -> String {
        choice.to_string()
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            DeviceChoice::Auto => f.write_str("auto"),
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(None) => f.write_str("cuda"),
            DeviceChoice::Cuda(Some(index)) => write!(f, "cuda:{index}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_reads_back_and_anything_else_says_what_is_expected() {
        for (text, choice) in [
            ("auto", DeviceChoice::Auto),
            ("CPU", DeviceChoice::Cpu),
            ("cuda", DeviceChoice::Cuda(None)),
            ("cuda:1", DeviceChoice::Cuda(Some(1))),
        ] {
            assert_eq!(text.parse::<DeviceChoice>(), Ok(choice), "{text}");
            assert_eq!(choice.to_string().parse::<DeviceChoice>(), Ok(choice), "{text} reads back");
        }
        for bad in ["", "gpu", "cuda:", "cuda:-1", "cuda:+1", "cuda:x", "mps", "cuda:99999999999999999999999"] {
            assert_eq!(bad.parse::<DeviceChoice>(), Err(EXPECTED.to_string()), "{bad}");
        }
    }

    #[test]
    fn a_device_that_is_not_there_is_one_line_and_auto_falls_back_to_the_cpu() {
        assert_eq!(DeviceChoice::Auto.resolve_with(0).unwrap(), Device::Cpu);
        assert_eq!(DeviceChoice::Cpu.resolve_with(0).unwrap(), Device::Cpu);
        let none = DeviceChoice::Cuda(None).resolve_with(0).unwrap_err().to_string();
        assert_eq!(none, "device cuda: libtorch sees no CUDA device on this machine; expected cpu or auto");
        let beyond = DeviceChoice::Cuda(Some(2)).resolve_with(0).unwrap_err().to_string();
        assert!(beyond.starts_with("device cuda:2: libtorch sees no CUDA device"), "{beyond}");
        let beyond = DeviceChoice::Cuda(Some(2)).resolve_with(2).unwrap_err().to_string();
        assert_eq!(
            beyond,
            "device cuda:2: this machine has 2 CUDA device(s) (cuda:0, cuda:1); expected one of them, cpu or auto"
        );
        assert_eq!(DeviceChoice::Cuda(Some(1)).resolve_with(2).unwrap(), Device::Cuda(1));
        assert_eq!(DeviceChoice::of(Device::Cpu), DeviceChoice::Cpu);
        assert_eq!(DeviceChoice::of(Device::Cuda(3)), DeviceChoice::Cuda(Some(3)));
    }
}
