//! How a run executes, as opposed to what it computes: the device, the numeric precision, the
//! CPU threads and the memory layout. The choices live in the run configuration (`precision`,
//! `threads`, `channels_last`); this module turns them into libtorch settings.

use crate::native::Autocast;
use crate::run::config::Precision;
use anyhow::Result;
use std::process::Command;
use tch::Device;

/// The device runs train on: the first GPU where there is one (the Slurm and local runners give
/// each job its own through CUDA_VISIBLE_DEVICES), else the CPU. On a GPU, cuDNN's benchmark mode
/// is switched on (a run's shapes never change, so the fastest kernels are found once).
pub fn device() -> Device {
    let device = Device::cuda_if_available();
    if device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(true);
    }
    device
}

/// `threads`, or one per core when 0.
pub fn thread_count(threads: usize) -> usize {
    if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    }
}

/// libtorch's intra-op threads: `threads`, or one per core when 0.
pub fn set_threads(threads: usize) {
    tch::set_num_threads(thread_count(threads) as i32);
}

pub use crate::run::config::PrecisionChoice;

impl PrecisionChoice {
    /// The precision to train with on `device`, and why, for the user.
    pub fn resolve(self, device: Device) -> (Precision, String) {
        match self {
            PrecisionChoice::Fp32 => (Precision::Fp32, "fp32, as asked".into()),
            PrecisionChoice::Bf16 => (Precision::Bf16, "bf16, as asked".into()),
            PrecisionChoice::Auto => match fast_bf16(device) {
                Ok(why) => (Precision::Bf16, format!("bf16 (auto: {why})")),
                Err(why) => (Precision::Fp32, format!("fp32 (auto: {why})")),
            },
        }
    }
}

/// Whether bf16 makes training on `device` faster, and why (or why not): on an NVIDIA GPU of
/// compute capability 8.0 or later (Ampere: bf16 tensor cores), on a CPU with AMX-BF16 (matrix
/// tiles, which oneDNN's bf16 convolutions use). A CPU with AVX512-BF16 alone computes bf16
/// natively too, but there oneDNN's bf16 convolutions measured slower than fp32 for these nets
/// (docs/results.md): `--precision bf16` still uses it.
pub fn fast_bf16(device: Device) -> Result<String, String> {
    if device.is_cuda() {
        return match cuda_compute_capability() {
            Some(c) if c >= 8.0 => Ok(format!("the GPU's compute capability is {c}")),
            Some(c) => Err(format!("the GPU's compute capability is {c}, below 8.0")),
            None => Err("the GPU's compute capability is unknown (no nvidia-smi)".into()),
        };
    }
    let flags = cpu_flags();
    let has = |flag: &str| flags.iter().any(|f| f == flag);
    if has("amx_bf16") {
        Ok("the CPU has AMX-BF16".into())
    } else if has("avx512_bf16") {
        Err("the CPU has AVX512-BF16 but no AMX, where bf16 convolutions are slower than fp32".into())
    } else {
        Err("the CPU has no native bf16".into())
    }
}

/// The CPU's feature flags as Linux lists them (`/proc/cpuinfo`); none elsewhere.
fn cpu_flags() -> Vec<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, flags)| flags.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The first GPU's compute capability, from nvidia-smi (tch does not expose it).
fn cuda_compute_capability() -> Option<f64> {
    let output = Command::new("nvidia-smi").args(["--query-gpu=compute_cap", "--format=csv,noheader"]).output().ok()?;
    String::from_utf8_lossy(&output.stdout).lines().next()?.trim().parse().ok()
}

/// The forward pass's precision: under the returned guard, `Bf16` runs convolutions and matmuls
/// in bf16 through libtorch's autocast (weights, BN statistics and the loss stay fp32, as
/// `torch.autocast` does); `Fp32` changes nothing.
#[must_use = "autocast ends when the guard is dropped"]
pub fn autocast(precision: Precision, device: Device) -> Result<Option<Autocast>> {
    match precision {
        Precision::Fp32 => Ok(None),
        Precision::Bf16 => Autocast::bf16(device).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn bf16_autocast_computes_convolutions_in_bf16_and_only_inside_the_guard() {
        let x = Tensor::randn([2, 3, 8, 8], (Kind::Float, Device::Cpu));
        let w = Tensor::randn([4, 3, 3, 3], (Kind::Float, Device::Cpu));
        let conv = |x: &Tensor| x.conv2d(&w, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1);
        {
            let _guard = autocast(Precision::Bf16, Device::Cpu).unwrap();
            assert_eq!(conv(&x).kind(), Kind::BFloat16);
            assert_eq!(x.relu().kind(), Kind::Float, "elementwise ops keep their input's type");
        }
        assert_eq!(conv(&x).kind(), Kind::Float, "autocast ends with the guard");
        assert!(autocast(Precision::Fp32, Device::Cpu).unwrap().is_none());
    }

    #[test]
    fn explicit_choices_are_kept_and_auto_says_why() {
        assert_eq!(PrecisionChoice::Fp32.resolve(Device::Cpu).0, Precision::Fp32);
        assert_eq!(PrecisionChoice::Bf16.resolve(Device::Cpu).0, Precision::Bf16);
        let (precision, why) = PrecisionChoice::Auto.resolve(Device::Cpu);
        assert_eq!(precision == Precision::Bf16, fast_bf16(Device::Cpu).is_ok(), "{why}");
        assert!(why.contains("auto"), "{why}");
    }
}
