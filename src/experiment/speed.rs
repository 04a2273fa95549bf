//! How fast a network trains and evaluates here when a study's runs share the machine: the speeds
//! `plan` and `status` estimate from. Runs side by side slow each other (they share memory
//! bandwidth and caches), so the probe times them as the study will train them: `jobs` training
//! steps side by side, each on its threads, then evaluation passes. The result is cached per
//! machine beside `auto`'s precision choices ([`crate::util::cache`]); a probe on a busy machine
//! is not cached and says how busy the machine was, for the estimate's range.

use super::layout::Layout;
use crate::model::ModelSpec;
use crate::model::Precision;
use crate::train::auto_precision::ProbeKey;
use crate::train::probe::{eval_img_per_s, step_img_per_s, Bench, Mode};
use crate::train::runtime::{set_threads, thread_count};
use crate::util::cache::Cache;
use crate::util::load::{too_busy, Meter};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::Device;

/// The cache file of the speeds.
pub const CACHE_FILE: &str = "speed.toml";

/// One run's speeds while the layout's other runs train beside it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Speed {
    /// Training images per second (the training step: forward, backward, SGD).
    pub train_img_per_s: f64,
    /// Evaluation images per second (forward passes, no gradients).
    pub eval_img_per_s: f64,
}

impl Speed {
    /// The speeds of a net with `factor` times the probed net's work per image.
    pub fn scaled(&self, factor: f64) -> Speed {
        Speed { train_img_per_s: self.train_img_per_s / factor, eval_img_per_s: self.eval_img_per_s / factor }
    }
}

/// What a probe times: a network in a precision, as a study's layout trains it on a device.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The network.
    pub spec: ModelSpec,
    /// The arithmetic it trains in.
    pub precision: Precision,
    /// Images per training step.
    pub batch_size: usize,
    /// Channels-last weights and activations, as the runs have them.
    pub channels_last: bool,
    /// Runs side by side and threads each.
    pub layout: Layout,
    /// Where the runs compute.
    pub device: Device,
}

impl Probe {
    /// Runs timed side by side: the layout's on a CPU, whose cores they share; one on a GPU,
    /// where each run has its own.
    pub fn side_by_side(&self) -> usize {
        if self.device.is_cuda() {
            1
        } else {
            self.layout.jobs.max(1)
        }
    }

    /// The cache key: the precision probe's (machine, versions, network, batch, threads) with
    /// the precision and the runs side by side.
    pub fn key(&self) -> String {
        format!(
            "{} | {} | {} side by side",
            ProbeKey::new(&self.spec, self.batch_size, self.layout.threads, self.device).text(),
            self.precision,
            self.side_by_side()
        )
    }
}

/// Times a probe.
pub trait SpeedClock {
    /// One run's speeds, timed with the probe's other runs beside it.
    fn speed(&mut self, probe: &Probe) -> Result<Speed>;

    /// Cores other processes kept busy, on average, during the measurements so far; `None`
    /// where unknown (then the probe is trusted).
    fn busy_elsewhere(&mut self) -> Option<f64> {
        None
    }
}

/// The real clock: on threads of this process side by side, each a fresh net on random images,
/// 2 untimed then 3 timed training steps, then 1 untimed and 2 timed evaluation passes.
#[derive(Default)]
pub struct SideBySide {
    meter: Option<Meter>,
}

impl SpeedClock for SideBySide {
    fn speed(&mut self, probe: &Probe) -> Result<Speed> {
        if self.meter.is_none() {
            self.meter = Meter::start();
        }
        // Exact kernels: where `auto` takes the fused ones it measured them faster, so the
        // estimate errs long, never short.
        let step = Bench::step_probe(
            probe.spec.clone(),
            probe.precision,
            crate::model::Kernels::Exact,
            probe.channels_last,
            probe.layout.threads,
            probe.device,
            probe.batch_size,
        );
        // libtorch's thread count is global: one value for every run of the probe.
        set_threads(probe.layout.threads);
        let handles: Vec<_> = (0..probe.side_by_side())
            .map(|_| {
                let step = step.clone();
                std::thread::spawn(move || -> Result<Speed> {
                    let train_img_per_s = step_img_per_s(&step)?;
                    let eval = Bench { mode: Mode::Eval, iters: 2, warmup: 1, ..step };
                    Ok(Speed { train_img_per_s, eval_img_per_s: eval_img_per_s(&eval)? })
                })
            })
            .collect();
        let mut speeds = Vec::with_capacity(handles.len());
        for handle in handles {
            speeds.push(handle.join().map_err(|_| anyhow::anyhow!("a speed probe thread panicked"))??);
        }
        let n = speeds.len() as f64;
        Ok(Speed {
            train_img_per_s: speeds.iter().map(|s| s.train_img_per_s).sum::<f64>() / n,
            eval_img_per_s: speeds.iter().map(|s| s.eval_img_per_s).sum::<f64>() / n,
        })
    }

    fn busy_elsewhere(&mut self) -> Option<f64> {
        self.meter.as_ref()?.others_cores()
    }
}

/// A probe's speeds, and how busy other processes kept the machine while it ran.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// One run's speeds.
    pub speed: Speed,
    /// Where the machine was too busy to trust the probe: the cores other processes kept busy,
    /// and the cores the probe needed.
    pub busy: Option<Busy>,
}

/// How busy a probe's machine was.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Busy {
    /// Cores other processes kept busy, on average.
    pub others_cores: f64,
    /// Cores the probe's runs needed.
    pub needed_cores: f64,
    /// The machine's cores.
    pub cores: usize,
}

impl Busy {
    /// The share of the time the probe measured that the same work takes on a quiet machine, at
    /// best: the probe's threads had the cores for needed / (needed + others) of the time when
    /// the machine shared them out evenly.
    pub fn quiet_share(&self) -> f64 {
        self.needed_cores / (self.needed_cores + self.others_cores)
    }
}

/// The speeds of `probe`: cached, or timed on `clock` (then cached, unless other processes kept
/// the machine too busy for the result to be trusted).
pub fn measure(probe: &Probe, cache: &Cache, clock: &mut dyn SpeedClock) -> Result<Measured> {
    let key = probe.key();
    if let Some(speed) = cache.get::<Speed>(&key).filter(|s| s.train_img_per_s > 0.0 && s.eval_img_per_s > 0.0) {
        return Ok(Measured { speed, busy: None });
    }
    let threads = thread_count(probe.layout.threads);
    // On stdout with the estimate: progress, not a warning.
    println!(
        "estimate: timing {} in {}, {} side by side on {threads} thread{} each (once on this machine)",
        probe.spec,
        probe.precision,
        probe.side_by_side(),
        if threads == 1 { "" } else { "s" }
    );
    let speed = clock.speed(probe)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let needed = (probe.side_by_side() * threads).min(cores);
    // On a GPU the CPU's load does not decide the kernels' speed.
    let busy = clock
        .busy_elsewhere()
        .filter(|&others| !probe.device.is_cuda() && too_busy(others, cores, needed))
        .map(|others_cores| Busy { others_cores, needed_cores: needed as f64, cores });
    if busy.is_none() {
        cache.put(&key, &speed);
    }
    Ok(Measured { speed, busy })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock with a fixed speed and load, counting its calls.
    struct Fixed {
        busy: Option<f64>,
        calls: usize,
    }

    impl SpeedClock for Fixed {
        fn speed(&mut self, _probe: &Probe) -> Result<Speed> {
            self.calls += 1;
            Ok(Speed { train_img_per_s: 100.0, eval_img_per_s: 400.0 })
        }

        fn busy_elsewhere(&mut self) -> Option<f64> {
            self.busy
        }
    }

    fn probe(jobs: usize) -> Probe {
        Probe {
            spec: "resnet-20".parse().unwrap(),
            precision: Precision::Fp32,
            batch_size: 128,
            channels_last: true,
            layout: Layout { jobs, threads: 1 },
            device: Device::Cpu,
        }
    }

    #[test]
    fn a_quiet_probe_is_cached_per_layout_and_a_busy_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join(CACHE_FILE));
        let mut quiet = Fixed { busy: Some(0.0), calls: 0 };
        let first = measure(&probe(1), &cache, &mut quiet).unwrap();
        assert_eq!(first.busy, None);
        assert_eq!(measure(&probe(1), &cache, &mut quiet).unwrap(), first, "cached");
        assert_eq!(quiet.calls, 1);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut busy = Fixed { busy: Some(cores as f64 + 1e6), calls: 0 };
        let measured = measure(&probe(2), &cache, &mut busy).unwrap();
        let load = measured.busy.expect("a machine busier than its cores is too busy");
        assert!(load.quiet_share() > 0.0 && load.quiet_share() < 1.0, "{load:?}");
        measure(&probe(2), &cache, &mut busy).unwrap();
        assert_eq!(busy.calls, 2, "another layout is another key, and a busy probe is not cached");
        assert_ne!(probe(1).key(), probe(2).key());
    }

    #[test]
    fn a_deeper_net_is_slower_by_its_work() {
        let speed = Speed { train_img_per_s: 300.0, eval_img_per_s: 900.0 }.scaled(3.0);
        assert_eq!(speed, Speed { train_img_per_s: 100.0, eval_img_per_s: 300.0 });
    }
}
