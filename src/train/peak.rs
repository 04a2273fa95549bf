//! The machine's peak, for `bench`'s "share of peak": the GFLOP/s of a large matrix product in a
//! precision (libtorch's GEMM, which runs on the CPU's FMA units in fp32 and, in bf16, on its AMX
//! tiles or AVX512-BF16 where it has them), at the bench's thread count. bf16's peak is the better
//! of its product and fp32's: where the CPU has no bf16 arithmetic, bf16 work runs as fp32 at
//! best (libtorch's own bf16 product there is a slow fallback, not the machine's peak). Measured, not looked up
//! in a table of CPU models: the same code is right on a CPU nobody listed. Measured once per
//! (machine, libtorch, precision, threads) and cached ([`crate::util::cache`]).

use super::runtime::{gpu_name, set_threads, thread_count};
use crate::model::Precision;
use crate::util::cache::{machine_key, Cache};
use anyhow::Result;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// The cache file of the peaks.
pub const CACHE_FILE: &str = "peak.toml";

/// The side of the square matrices multiplied: 2 GFLOP a product, large enough for GEMM's peak.
pub const SIDE: i64 = 1024;

/// The peak, and what it is, for the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Peak {
    /// GFLOP/s.
    pub gflops: f64,
    /// Where it comes from (`a 1024x1024 fp32 matrix product, measured now`).
    pub from: String,
}

/// The best of `products` timed products of two random `side`x`side` matrices in `precision` on
/// `device`, after two untimed ones: GFLOP/s.
pub fn gemm_gflops(precision: Precision, device: Device, side: i64, products: usize) -> Result<f64> {
    let kind = match precision {
        Precision::Fp32 => Kind::Float,
        Precision::Bf16 => Kind::BFloat16,
    };
    let a = Tensor::randn([side, side], (kind, device));
    let b = Tensor::randn([side, side], (kind, device));
    let mut best = f64::INFINITY;
    for i in 0..products + 2 {
        let start = Instant::now();
        let product = a.matmul(&b);
        // Reading one element waits for the product (a GPU's too).
        let _ = product.double_value(&[0, 0]);
        if i >= 2 {
            best = best.min(start.elapsed().as_secs_f64());
        }
    }
    Ok(2.0 * (side as f64).powi(3) / best / 1e9)
}

/// The peak of `precision` on `device` with `threads` (0: one per core): cached, or measured now
/// (then cached).
pub fn peak(precision: Precision, threads: usize, device: Device) -> Result<Peak> {
    let threads = if device.is_cuda() { 0 } else { thread_count(threads) };
    let gpu = device.is_cuda().then(|| gpu_name().unwrap_or_else(|| "cuda (unnamed)".into()));
    let key = format!(
        "{} | libtorch {} | {precision} | {threads} threads",
        machine_key(gpu.as_deref()),
        crate::run::provenance::LIBTORCH_VERSION
    );
    let mut from = format!("a {SIDE}x{SIDE} {precision} matrix product");
    let cache = Cache::named(CACHE_FILE);
    if let Some((gflops, from)) = cache.get::<(f64, String)>(&key).filter(|(g, _)| *g > 0.0) {
        return Ok(Peak { gflops, from: format!("{from}, measured earlier") });
    }
    set_threads(threads);
    let gflops = if precision == Precision::Bf16 {
        let fp32 = gemm_gflops(Precision::Fp32, device, SIDE, 10)?;
        // Where bf16 is emulated its large product takes seconds: a small one tells first.
        let slow = gemm_gflops(Precision::Bf16, device, SIDE / 4, 1)? < fp32 / 4.0;
        let bf16 = if slow { 0.0 } else { gemm_gflops(Precision::Bf16, device, SIDE, 10)? };
        if fp32 > bf16 {
            from = format!("a {SIDE}x{SIDE} fp32 matrix product, faster than bf16's here");
        }
        fp32.max(bf16)
    } else {
        gemm_gflops(precision, device, SIDE, 10)?
    };
    cache.put(&key, &(gflops, from.clone()));
    Ok(Peak { gflops, from: format!("{from}, measured now") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_matrix_product_has_a_positive_finite_speed() {
        let gflops = gemm_gflops(Precision::Fp32, Device::Cpu, 64, 1).unwrap();
        assert!(gflops.is_finite() && gflops > 0.0, "{gflops}");
    }
}
