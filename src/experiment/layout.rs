//! How many runs of a local study train at a time when the user does not say (`--jobs`), by
//! measurement: one run on every core, or one run per core on one thread each. Which gets more
//! done depends on how well the CPU's kernels use several threads for these small convolutions
//! (on a 2-core machine one run on 2 threads was 1.6-1.8x one thread, so two runs side by side
//! got 10-15% more done; docs/results.md), which no flag says. The first study on a machine
//! times the training step of resnet-20 both ways; the answer is cached per machine
//! ([`crate::util::cache`]). With GPUs: one run per GPU, unmeasured.

use crate::model::ModelSpec;
use crate::model::Precision;
use crate::run::config::OptimConfig;
use crate::run::provenance::LIBTORCH_VERSION;
use crate::train::probe::{step_img_per_s, Bench};
use crate::util::cache::{machine_key, Cache};
use crate::util::load::{too_busy, Meter};
use anyhow::Result;
use serde::{Deserialize, Serialize};

/// The cache file of the layouts.
pub const CACHE_FILE: &str = "layout.toml";

/// What a layout probe measured: training images per second of the whole machine each way.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// One run on every core.
    pub one_run_img_per_s: f64,
    /// One run per core, one thread each, side by side (their sum).
    pub run_per_core_img_per_s: f64,
}

impl Measured {
    /// Runs at a time on `cores` cores, and why, for the user.
    pub fn choice(&self, cores: usize, how: &str) -> (usize, String) {
        let ratio = self.run_per_core_img_per_s / self.one_run_img_per_s;
        if ratio >= 1.0 {
            (cores, format!("{cores} runs at a time, 1 thread each ({how}: {ratio:.2}x the images per second of 1 run on {cores} threads)"))
        } else {
            (1, format!("1 run at a time on {cores} threads ({how}: {:.2}x the images per second of {cores} runs on 1 thread)", 1.0 / ratio))
        }
    }
}

/// Times the training step of several runs side by side: the machine's images per second.
pub trait LayoutClock {
    /// Images per second of `runs` training steps side by side, each on `threads` threads.
    fn img_per_s(&mut self, runs: usize, threads: usize) -> Result<f64>;

    /// Cores other processes kept busy, on average, during the measurements so far; `None`
    /// where unknown (then the probe is trusted).
    fn busy_elsewhere(&mut self) -> Option<f64> {
        None
    }
}

/// The real clock: resnet-20's training step (fp32, the default batch, random images), 2 untimed then 3
/// timed steps per run, the runs on threads of this process side by side.
#[derive(Default)]
pub struct ResNet20Steps {
    meter: Option<Meter>,
}

impl LayoutClock for ResNet20Steps {
    fn busy_elsewhere(&mut self) -> Option<f64> {
        self.meter.as_ref()?.others_cores()
    }

    fn img_per_s(&mut self, runs: usize, threads: usize) -> Result<f64> {
        if self.meter.is_none() {
            self.meter = Meter::start();
        }
        // Local jobs share the CPU's cores: what is measured here.
        let bench = Bench::step_probe(
            "resnet-20".parse()?,
            Precision::Fp32,
            crate::model::Kernels::Exact,
            true,
            threads,
            tch::Device::Cpu,
            OptimConfig::default().batch_size,
        );
        // libtorch's thread count is global: one value for every run of the measurement.
        crate::train::runtime::set_threads(threads);
        let handles: Vec<_> = (0..runs)
            .map(|_| {
                let bench = bench.clone();
                std::thread::spawn(move || step_img_per_s(&bench))
            })
            .collect();
        let mut total = 0.0;
        for handle in handles {
            total += handle.join().map_err(|_| anyhow::anyhow!("a layout probe thread panicked"))??;
        }
        Ok(total)
    }
}

/// The key of the layout of this machine's `cores`.
pub fn key(cores: usize) -> String {
    format!(
        "{} | libtorch {LIBTORCH_VERSION} | reslab {} | {} | batch {} | fp32 | {cores} cores",
        machine_key(None),
        env!("CARGO_PKG_VERSION"),
        "resnet-20".parse::<ModelSpec>().map(|s| s.to_string()).unwrap_or_default(),
        OptimConfig::default().batch_size
    )
}

/// Runs at a time on `cores` cores: the cached layout for `key`, or a probe on `clock` (then
/// cached); and why.
pub fn decide(cores: usize, key: &str, cache: &Cache, clock: &mut dyn LayoutClock) -> Result<(usize, String)> {
    if cores <= 1 {
        return Ok((1, "1 run at a time (one core)".into()));
    }
    if let Some(measured) = cache.get::<Measured>(key) {
        if measured.one_run_img_per_s > 0.0 && measured.run_per_core_img_per_s > 0.0 {
            return Ok(measured.choice(cores, "measured earlier"));
        }
    }
    println!("jobs: measuring 1 run on {cores} threads against {cores} runs on 1 thread (once on this machine)");
    let started = std::time::Instant::now();
    let one_run_img_per_s = clock.img_per_s(1, cores)?;
    let run_per_core_img_per_s = clock.img_per_s(cores, 1)?;
    let measured = Measured { one_run_img_per_s, run_per_core_img_per_s };
    println!(
        "jobs: 1 run {one_run_img_per_s:.0} img/s, {cores} runs {run_per_core_img_per_s:.0} img/s (probe {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    // The probe used every core: any other process's work biases it.
    if let Some(others) = clock.busy_elsewhere().filter(|&others| too_busy(others, cores, cores)) {
        println!(
            "jobs: other processes kept {others:.1} of {cores} cores busy during the probe: its result decides \
             this study only and is not cached"
        );
        return Ok(measured.choice(cores, "measured on a busy machine"));
    }
    cache.put(key, &measured);
    Ok(measured.choice(cores, "measured"))
}

/// How a study's runs share the machine: runs at a time, and libtorch threads each (0: one per core).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Runs training side by side.
    pub jobs: usize,
    /// libtorch threads of each run; 0: one per core.
    pub threads: usize,
}

/// libtorch threads per run when `jobs` runs share this machine's cores, unless the user chose
/// (`requested` above 0): the cores shared out, at least one each.
pub fn threads_per_job(jobs: usize, requested: usize) -> usize {
    if requested > 0 || jobs <= 1 {
        return requested;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / jobs).max(1)
}

/// Runs at a time when the user does not say, and why: one per GPU where there are GPUs; on a
/// CPU the measured layout (one run per core where the probe fails, which it should not).
pub fn jobs_here() -> (usize, String) {
    match tch::Cuda::device_count() {
        0 => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            match decide(cores, &key(cores), &Cache::named(CACHE_FILE), &mut ResNet20Steps::default()) {
                Ok(decided) => decided,
                Err(e) => {
                    (cores, format!("{cores} runs at a time, 1 thread each (the job layout probe failed: {e:#})"))
                }
            }
        }
        gpus => (gpus as usize, format!("{gpus} runs at a time, one per GPU")),
    }
}

/// [`jobs_here`], saying why on stdout.
pub fn default_jobs() -> usize {
    let (jobs, why) = jobs_here();
    println!("jobs: {why}");
    jobs
}

/// The layout `reproduce` gives a local study's `left` runs still to train here, and why: the
/// runs at a time of [`jobs_here`] (fewer when fewer runs are left), [`threads_per_job`] each.
pub fn for_study(left: usize, requested_threads: usize) -> (Layout, String) {
    let (jobs_here, why) = jobs_here();
    let jobs = jobs_here.min(left).max(1);
    let threads = threads_per_job(jobs, requested_threads);
    let why = if jobs < jobs_here {
        format!("{jobs} run{} at a time ({} left; {why})", if jobs == 1 { "" } else { "s" }, left)
    } else {
        why
    };
    (Layout { jobs, threads }, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock with given speeds for (1 run, n runs), counting its calls.
    struct Fixed {
        one: f64,
        many: f64,
        calls: usize,
    }

    impl LayoutClock for Fixed {
        fn img_per_s(&mut self, runs: usize, _threads: usize) -> Result<f64> {
            self.calls += 1;
            Ok(if runs == 1 { self.one } else { self.many })
        }
    }

    #[test]
    fn the_layout_follows_the_probe_and_is_cached() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("layout.toml"));
        let mut side_by_side = Fixed { one: 100.0, many: 115.0, calls: 0 };
        let (jobs, why) = decide(2, "a", &cache, &mut side_by_side).unwrap();
        assert_eq!(jobs, 2, "{why}");
        assert!(why.contains("1.15x"), "{why}");
        let (jobs, why) = decide(2, "a", &cache, &mut side_by_side).unwrap();
        assert_eq!((jobs, side_by_side.calls), (2, 2), "cached: {why}");
        assert!(why.contains("measured earlier"), "{why}");
        let mut one_run = Fixed { one: 100.0, many: 80.0, calls: 0 };
        let (jobs, why) = decide(2, "b", &cache, &mut one_run).unwrap();
        assert_eq!(jobs, 1, "a changed key measures again and may choose otherwise: {why}");
        assert_eq!(decide(1, "c", &cache, &mut one_run).unwrap().0, 1, "one core: nothing to measure");
        assert_eq!(one_run.calls, 2);
    }
}
