//! `--precision auto` for training, decided by measurement: whether bf16 is faster than fp32 is a
//! property of the CPU's or GPU's kernels for this net at this batch size and thread count, and
//! flags cannot tell (on AVX512-BF16 CPUs without AMX bf16 was measured both 1.4x faster and
//! slower than fp32, docs/results.md). The first time a (machine, model, batch size, threads) is
//! trained, a probe times the training step in both precisions after a warm-up; bf16 is chosen
//! only where it is at least [`BF16_MARGIN`] faster. The result is cached per machine
//! ([`crate::util::cache`]), so later runs decide at once.

use super::probe::{step_img_per_s, Bench};
use super::runtime::{self, thread_count};
use crate::model::Precision;
use crate::model::{Family, ModelSpec};
use crate::run::config::PrecisionChoice;
use crate::util::cache::{machine_key, Cache};
use crate::util::load::{too_busy, Meter};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::Device;

/// How much faster bf16 has to be to be chosen: below that, fp32's exactness is worth more.
pub const BF16_MARGIN: f64 = 1.10;

/// The cache file of the choices.
pub const CACHE_FILE: &str = "precision.toml";

/// What a probe measured: training images per second in each precision.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// Training images per second in fp32.
    pub fp32_img_per_s: f64,
    /// Training images per second in bf16 (autocast).
    pub bf16_img_per_s: f64,
}

impl Measured {
    /// bf16's speed over fp32's.
    pub fn speedup(&self) -> f64 {
        self.bf16_img_per_s / self.fp32_img_per_s
    }

    /// The precision these numbers choose, and why, for the user.
    pub fn choice(&self, how: &str) -> (Precision, String) {
        let speedup = self.speedup();
        if speedup >= BF16_MARGIN {
            (Precision::Bf16, format!("bf16 (auto: {how} {speedup:.2}x faster than fp32 here)"))
        } else if speedup >= 1.0 {
            (
                Precision::Fp32,
                format!("fp32 (auto: bf16 {how} only {speedup:.2}x as fast as fp32 here, below {BF16_MARGIN:.2}x)"),
            )
        } else {
            (Precision::Fp32, format!("fp32 (auto: bf16 {how} {:.2}x slower than fp32 here)", 1.0 / speedup))
        }
    }
}

/// What a probe is for: everything its result depends on, as the cache key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeKey {
    /// The CPU's model and flags, or the GPU's name.
    pub machine: String,
    /// The model as it names itself with its variant (`resnet-56 (A)`).
    pub model: String,
    /// Images per training step.
    pub batch_size: usize,
    /// libtorch threads (the core count for 0; 0 on a GPU, where they do not matter).
    pub threads: usize,
}

impl ProbeKey {
    /// The key of training `spec` at `batch_size` with `threads` (0: one per core) on `device`.
    pub fn new(spec: &ModelSpec, batch_size: usize, threads: usize, device: Device) -> ProbeKey {
        let gpu = device.is_cuda().then(|| runtime::gpu_name().unwrap_or_else(|| "cuda (unnamed)".into()));
        ProbeKey {
            machine: machine_key(gpu.as_deref()),
            model: spec.to_string(),
            batch_size,
            threads: if device.is_cuda() { 0 } else { thread_count(threads) },
        }
    }

    /// The key as the cache stores it, with libtorch's and reslab's versions.
    pub fn text(&self) -> String {
        format!(
            "{} | libtorch {} | reslab {} | {} | batch {} | {} threads",
            self.machine,
            crate::run::provenance::LIBTORCH_VERSION,
            env!("CARGO_PKG_VERSION"),
            self.model,
            self.batch_size,
            self.threads
        )
    }
}

/// Times the training step: images per second in a precision.
pub trait StepClock {
    /// Training images per second in `precision`.
    fn img_per_s(&mut self, precision: Precision) -> Result<f64>;

    /// Cores other processes kept busy, on average, during the measurements so far; `None`
    /// where unknown (then the probe is trusted).
    fn busy_elsewhere(&mut self) -> Option<f64> {
        None
    }
}

/// The real clock: the training step of `bench` (a fresh net on random images, SGD included),
/// [`PROBE_WARMUP`](super::probe::PROBE_WARMUP) untimed steps (oneDNN and cuDNN pick their kernels on the first) then
/// [`PROBE_STEPS`](super::probe::PROBE_STEPS) timed ones, per precision.
pub struct TrainingStep {
    /// The net to time.
    pub spec: ModelSpec,
    /// Images per step.
    pub batch_size: usize,
    /// libtorch threads; 0: one per core.
    pub threads: usize,
    /// Channels-last layout, as the run has it.
    pub channels_last: bool,
    /// Where the run computes.
    pub device: Device,
    /// The machine's load since the first measurement.
    meter: Option<Meter>,
}

impl TrainingStep {
    /// The clock of training `spec` at `batch_size` on `threads` threads (0: one per core) on `device`.
    pub fn new(
        spec: ModelSpec,
        batch_size: usize,
        threads: usize,
        channels_last: bool,
        device: Device,
    ) -> TrainingStep {
        TrainingStep { spec, batch_size, threads, channels_last, device, meter: None }
    }
}

impl StepClock for TrainingStep {
    fn img_per_s(&mut self, precision: Precision) -> Result<f64> {
        if self.meter.is_none() {
            self.meter = Meter::start();
        }
        let bench = Bench::step_probe(
            self.spec.clone(),
            precision,
            self.channels_last,
            self.threads,
            self.device,
            self.batch_size,
        );
        step_img_per_s(&bench)
    }

    fn busy_elsewhere(&mut self) -> Option<f64> {
        self.meter.as_ref()?.others_cores()
    }
}

/// The choice cached for `key_text`, where a probe measured it.
fn cached_choice(key_text: &str, cache: &Cache) -> Option<(Precision, String)> {
    let measured = cache.get::<Measured>(key_text)?;
    (measured.fp32_img_per_s > 0.0 && measured.bf16_img_per_s > 0.0).then(|| measured.choice("measured earlier"))
}

/// `auto`'s precision for `key`: the cached choice, or a probe on `clock` (then cached).
pub fn decide(key: &ProbeKey, cache: &Cache, clock: &mut dyn StepClock) -> Result<(Precision, String)> {
    let text = key.text();
    if let Some(cached) = cached_choice(&text, cache) {
        return Ok(cached);
    }
    // On stdout with the choice: progress, not a warning (stderr keeps one line for an error).
    println!("precision: measuring fp32 against bf16 for {} (once on this machine; a few seconds)", key.model);
    let started = std::time::Instant::now();
    let fp32_img_per_s = clock.img_per_s(Precision::Fp32)?;
    let bf16_img_per_s = clock.img_per_s(Precision::Bf16)?;
    let measured = Measured { fp32_img_per_s, bf16_img_per_s };
    println!(
        "precision: fp32 {fp32_img_per_s:.0} img/s, bf16 {bf16_img_per_s:.0} img/s (probe {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // On a GPU (threads 0) the CPU's load does not decide the kernels' speed.
    let busy = clock.busy_elsewhere().filter(|&others| key.threads > 0 && too_busy(others, cores, key.threads));
    if let Some(others) = busy {
        println!(
            "precision: other processes kept {others:.1} of {cores} cores busy during the probe: its result \
             decides this run only and is not cached"
        );
        return Ok(measured.choice("measured on a busy machine"));
    }
    cache.put(&text, &measured);
    Ok(measured.choice("measured"))
}

/// `auto`'s precision where no probe has to measure it: the CPU has no native bf16, an
/// ImageNet-size net on a CPU, or a choice measured earlier; `None` where a probe must.
pub fn known_choice(
    spec: &ModelSpec,
    batch_size: usize,
    threads: usize,
    device: Device,
) -> Result<Option<(Precision, String)>> {
    if device == Device::Cpu && !runtime::cpu_has_bf16()? {
        // Without native bf16 instructions bf16 is emulated, many times slower: nothing to measure.
        return Ok(Some((Precision::Fp32, "fp32 (auto: the CPU has no native bf16)".into())));
    }
    if device == Device::Cpu && spec.family == Family::Imagenet {
        // A training step at 224 pixels takes many seconds on a CPU: the probe would cost more
        // than the short runs it would speed up.
        return Ok(Some((
            Precision::Fp32,
            "fp32 (auto: ImageNet-size nets are not probed on a CPU; --precision bf16 forces)".into(),
        )));
    }
    let key = ProbeKey::new(spec, batch_size, threads, device);
    Ok(cached_choice(&key.text(), &Cache::named(CACHE_FILE)))
}

/// `auto`'s precision for training `spec` at `batch_size` with `threads` on `device`: known
/// ([`known_choice`]), or measured by a probe with the cache of the user's cache folder and the
/// real clock.
pub fn decide_here(
    spec: &ModelSpec,
    batch_size: usize,
    threads: usize,
    channels_last: bool,
    device: Device,
) -> Result<(Precision, String)> {
    if let Some(known) = known_choice(spec, batch_size, threads, device)? {
        return Ok(known);
    }
    let key = ProbeKey::new(spec, batch_size, threads, device);
    let mut clock = TrainingStep::new(spec.clone(), batch_size, threads, channels_last, device);
    decide(&key, &Cache::named(CACHE_FILE), &mut clock)
}

/// The precision a training run of `spec` at `batch_size` with `threads` takes for `choice`, and
/// why, for the user: a forced one as it is (never probed), `auto` by [`decide_here`].
pub fn training_precision(
    choice: PrecisionChoice,
    spec: &ModelSpec,
    batch_size: usize,
    threads: usize,
    channels_last: bool,
    device: Device,
) -> Result<(Precision, String)> {
    match choice {
        PrecisionChoice::Fp32 => Ok((Precision::Fp32, "fp32, as asked".into())),
        PrecisionChoice::Bf16 => Ok((Precision::Bf16, "bf16, as asked".into())),
        PrecisionChoice::Auto => decide_here(spec, batch_size, threads, channels_last, device),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock that reports given speeds and counts its calls.
    struct Fixed {
        fp32: f64,
        bf16: f64,
        calls: usize,
    }

    impl StepClock for Fixed {
        fn img_per_s(&mut self, precision: Precision) -> Result<f64> {
            self.calls += 1;
            Ok(match precision {
                Precision::Fp32 => self.fp32,
                Precision::Bf16 => self.bf16,
            })
        }
    }

    /// A clock measured while other processes held `others` cores.
    struct Busy {
        clock: Fixed,
        others: f64,
    }

    impl StepClock for Busy {
        fn img_per_s(&mut self, precision: Precision) -> Result<f64> {
            self.clock.img_per_s(precision)
        }

        fn busy_elsewhere(&mut self) -> Option<f64> {
            Some(self.others)
        }
    }

    #[test]
    fn a_probe_on_a_busy_machine_decides_its_run_only() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("precision.toml"));
        let cores = std::thread::available_parallelism().unwrap().get();
        // Busier than any slack (RESLAB_PROBE_SLACK_CORES may be set, as ./run test does).
        let busy = |others| Busy { clock: Fixed { fp32: 100.0, bf16: 80.0, calls: 0 }, others };
        let one_thread = ProbeKey { threads: 1, ..key("a") };
        let (precision, why) = decide(&one_thread, &cache, &mut busy(1000.0 + cores as f64)).unwrap();
        assert_eq!(precision, Precision::Fp32);
        assert!(why.contains("measured on a busy machine"), "{why}");
        let mut calm = busy(0.0);
        decide(&one_thread, &cache, &mut calm).unwrap();
        assert_eq!(calm.clock.calls, 2, "nothing was cached from the busy probe: measured again");
        decide(&one_thread, &cache, &mut calm).unwrap();
        assert_eq!(calm.clock.calls, 2, "the calm probe was cached");
    }

    fn key(model: &str) -> ProbeKey {
        ProbeKey { machine: "cpu test".into(), model: model.into(), batch_size: 128, threads: 2 }
    }

    #[test]
    fn the_choice_follows_the_probe_with_a_margin() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("precision.toml"));
        let faster = decide(&key("a"), &cache, &mut Fixed { fp32: 100.0, bf16: 142.0, calls: 0 }).unwrap();
        assert_eq!(faster, (Precision::Bf16, "bf16 (auto: measured 1.42x faster than fp32 here)".into()));
        let slower = decide(&key("b"), &cache, &mut Fixed { fp32: 100.0, bf16: 80.0, calls: 0 }).unwrap();
        assert_eq!(slower.0, Precision::Fp32);
        assert!(slower.1.contains("1.25x slower"), "{}", slower.1);
        let marginal = decide(&key("c"), &cache, &mut Fixed { fp32: 100.0, bf16: 105.0, calls: 0 }).unwrap();
        assert_eq!(marginal.0, Precision::Fp32, "5% faster is below the margin: {}", marginal.1);
    }

    #[test]
    fn a_cached_choice_is_reused_and_a_changed_key_measures_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("precision.toml"));
        let mut clock = Fixed { fp32: 100.0, bf16: 150.0, calls: 0 };
        decide(&key("a"), &cache, &mut clock).unwrap();
        assert_eq!(clock.calls, 2, "one probe: both precisions");
        let again = decide(&key("a"), &cache, &mut clock).unwrap();
        assert_eq!(clock.calls, 2, "the cached choice is reused");
        assert_eq!(again, (Precision::Bf16, "bf16 (auto: measured earlier 1.50x faster than fp32 here)".into()));
        let other_threads = ProbeKey { threads: 1, ..key("a") };
        decide(&other_threads, &cache, &mut clock).unwrap();
        assert_eq!(clock.calls, 4, "another thread count measures again");
        let other_machine = ProbeKey { machine: "cpu other".into(), ..key("a") };
        decide(&other_machine, &cache, &mut clock).unwrap();
        assert_eq!(clock.calls, 6, "another machine measures again");
    }

    #[test]
    fn a_corrupt_cache_is_ignored_and_measured_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("precision.toml");
        std::fs::write(&path, "\u{0}garbage[[").unwrap();
        let cache = Cache::at(&path);
        let mut clock = Fixed { fp32: 100.0, bf16: 50.0, calls: 0 };
        assert_eq!(decide(&key("a"), &cache, &mut clock).unwrap().0, Precision::Fp32);
        assert_eq!(clock.calls, 2);
        assert!(std::fs::read_to_string(&path).unwrap().contains("fp32_img_per_s"), "rewritten");
    }

    #[test]
    fn the_key_names_the_versions_and_what_was_measured() {
        let text = key("resnet-56 (A)").text();
        assert!(text.contains("libtorch ") && text.contains("reslab ") && text.contains("resnet-56 (A)"), "{text}");
        assert!(text.contains("batch 128") && text.contains("2 threads"), "{text}");
    }
}
