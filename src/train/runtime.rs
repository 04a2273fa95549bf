//! How a run executes, as opposed to what it computes: the device, the numeric precision, the
//! CPU threads and the memory layout. The choices live in the run configuration (`precision`,
//! `threads`, `channels_last`); this module turns them into libtorch settings.

use crate::model::Precision;
use crate::native::Autocast;
use crate::run::config::{PrecisionChoice, RunConfig};
use crate::run::provenance::Provenance;
use anyhow::{Context, Result};
use std::path::Path;
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

/// The cores this process may use (its CPU affinity and cgroup quota).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `threads`, or one per core when 0; at most the cores this process may use. The command line
/// refuses more; a run's configuration may ask for more where it was made on a larger machine, so
/// it is capped here, with a warning the first time.
pub fn thread_count(threads: usize) -> usize {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let cores = cores();
    if threads > cores {
        WARNED.call_once(|| {
            crate::eprint_line!(
                "warning: threads = {threads} (the run's configuration) is more than the {cores} cores this process \
                 may use; libtorch gets {cores} threads"
            )
        });
    }
    match threads {
        0 => cores,
        _ => threads.min(cores),
    }
}

/// libtorch's intra-op threads: `threads`, or one per core when 0.
pub fn set_threads(threads: usize) {
    tch::set_num_threads(thread_count(threads) as i32);
}

impl PrecisionChoice {
    /// The precision of an evaluation (`eval`): `auto` is fp32, because bf16 evaluation folds BN
    /// but cannot use the fused fp32 path (docs/performance.md); a training run's `auto` is
    /// measured instead ([`super::auto_precision`]).
    pub fn for_evaluation(self) -> Precision {
        match self {
            PrecisionChoice::Bf16 => Precision::Bf16,
            PrecisionChoice::Fp32 | PrecisionChoice::Auto => Precision::Fp32,
        }
    }
}

/// Says whether to take the CPU for one with native bf16 (yes or no), whatever its flags: the
/// tests run `auto`'s probe, and its absence, on any CPU with it.
pub const CPU_BF16_ENV: &str = "RESLAB_CPU_BF16";

/// Whether the CPU computes bf16 natively (AVX512-BF16 or AMX-BF16, as Linux lists its flags),
/// unless [`CPU_BF16_ENV`] says: elsewhere bf16 is emulated and many times slower, so `auto`
/// does not even measure it.
pub fn cpu_has_bf16() -> Result<bool> {
    if let Some(value) = std::env::var_os(CPU_BF16_ENV) {
        let value = value.to_string_lossy();
        return crate::util::parse_flag(&value)
            .with_context(|| format!("{CPU_BF16_ENV}={value}: expected {}", crate::util::FLAG_VALUES));
    }
    Ok(crate::util::cache::cpu_info_field("flags").split_whitespace().any(|f| f == "avx512_bf16" || f == "amx_bf16"))
}

/// The first GPU's name, from nvidia-smi (tch does not expose it).
pub fn gpu_name() -> Option<String> {
    let output = Command::new("nvidia-smi").args(["--query-gpu=name", "--format=csv,noheader"]).output().ok()?;
    String::from_utf8_lossy(&output.stdout).lines().next().map(|l| l.trim().to_string()).filter(|n| !n.is_empty())
}

/// What the summary of the run `config` in `dir` records of how and where it was made, ending
/// now after `wall_s` seconds on `device`, with this process's libtorch threads. The GPU's name
/// is nvidia-smi's first GPU (tch does not name the device a process uses).
pub fn provenance(config: &RunConfig, dir: &Path, device: Device, wall_s: f64) -> Provenance {
    let gpu = device.is_cuda().then(|| gpu_name().unwrap_or_else(|| "cuda (unnamed)".into()));
    Provenance::ending_now(config, dir, tch::get_num_threads().max(1) as usize, gpu, wall_s)
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
    fn evaluation_is_fp32_unless_bf16_is_asked() {
        assert_eq!(PrecisionChoice::Auto.for_evaluation(), Precision::Fp32);
        assert_eq!(PrecisionChoice::Fp32.for_evaluation(), Precision::Fp32);
        assert_eq!(PrecisionChoice::Bf16.for_evaluation(), Precision::Bf16);
    }
}
