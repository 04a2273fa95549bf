//! `--precision auto` and `--kernels auto` for training, decided by measurement together:
//! whether bf16 is faster than fp32, and the fused kernels than exact ones, is a property of the
//! CPU's or GPU's kernels for this net at this batch size and thread count, and flags cannot
//! tell (on AVX512-BF16 CPUs without AMX bf16 was measured both 1.4x faster and slower than fp32,
//! docs/results.md). The first time a (machine, model, batch size, threads) is trained, one probe
//! times the training step in every pair of precision and kernels left open, after a warm-up;
//! bf16 is chosen only where it is at least [`BF16_MARGIN`] faster, fused kernels where at least
//! [`FUSED_MARGIN`] faster. The result is cached per machine ([`crate::util::cache`]), so later
//! runs decide at once.

use super::probe::{step_img_per_s, Bench};
use super::runtime::{self, thread_count};
use crate::model::{Family, Kernels, ModelSpec, Precision};
use crate::run::config::{KernelsChoice, PrecisionChoice};
use crate::util::cache::{machine_key, Cache};
use crate::util::load::{too_busy, Meter};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::Device;

/// How much faster bf16 has to be to be chosen: below that, fp32's exactness is worth more.
pub const BF16_MARGIN: f64 = 1.10;

/// How much faster the fused kernels have to be to be chosen: below that, the exact step (bit
/// for bit PyTorch's) is worth more.
pub const FUSED_MARGIN: f64 = 1.05;

/// The fused kernels' version (`csrc/reslab_fused.cpp`), in the cache key: a change to them
/// measures again.
pub const FUSED_KERNELS_VERSION: u32 = 1;

/// The cache file of the choices.
pub const CACHE_FILE: &str = "precision.toml";

/// What a probe measured: training images per second in each pair of precision and kernels it
/// timed (absent: not timed).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Measured {
    /// fp32, exact kernels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp32_img_per_s: Option<f64>,
    /// bf16 (autocast), exact kernels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bf16_img_per_s: Option<f64>,
    /// fp32, fused kernels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp32_fused_img_per_s: Option<f64>,
    /// bf16, fused kernels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bf16_fused_img_per_s: Option<f64>,
}

impl Measured {
    /// The speed of `precision` with `kernels`, where timed.
    pub fn get(&self, precision: Precision, kernels: Kernels) -> Option<f64> {
        let speed = match (precision, kernels) {
            (Precision::Fp32, Kernels::Exact) => self.fp32_img_per_s,
            (Precision::Bf16, Kernels::Exact) => self.bf16_img_per_s,
            (Precision::Fp32, Kernels::Fused) => self.fp32_fused_img_per_s,
            (Precision::Bf16, Kernels::Fused) => self.bf16_fused_img_per_s,
        };
        speed.filter(|s| *s > 0.0)
    }

    fn set(&mut self, precision: Precision, kernels: Kernels, img_per_s: f64) {
        let slot = match (precision, kernels) {
            (Precision::Fp32, Kernels::Exact) => &mut self.fp32_img_per_s,
            (Precision::Bf16, Kernels::Exact) => &mut self.bf16_img_per_s,
            (Precision::Fp32, Kernels::Fused) => &mut self.fp32_fused_img_per_s,
            (Precision::Bf16, Kernels::Fused) => &mut self.bf16_fused_img_per_s,
        };
        *slot = Some(img_per_s);
    }

    /// The kernels these numbers choose in `precision` among `kernels`, and why.
    fn kernels_in(&self, precision: Precision, kernels: &[Kernels], how: &str) -> Option<(Kernels, String)> {
        if let [only] = kernels {
            return Some((*only, String::new()));
        }
        let (exact, fused) = (self.get(precision, Kernels::Exact)?, self.get(precision, Kernels::Fused)?);
        let speedup = fused / exact;
        Some(if speedup >= FUSED_MARGIN {
            (Kernels::Fused, format!("fused (auto: {how} {speedup:.2}x as fast as exact in {precision} here)"))
        } else {
            (
                Kernels::Exact,
                format!(
                    "exact (auto: fused {how} {speedup:.2}x as fast in {precision} here, below {FUSED_MARGIN:.2}x)"
                ),
            )
        })
    }

    /// The choice these numbers make among `options`; `None` where a pair it needs was not timed.
    fn choose(&self, options: &Options, how: &str) -> Option<Choice> {
        let in_fp32 = || self.kernels_in(Precision::Fp32, &options.kernels, how);
        let in_bf16 = || self.kernels_in(Precision::Bf16, &options.kernels, how);
        let (precision, (kernels, kernels_note), precision_note) = match options.precisions.as_slice() {
            [only] => (*only, self.kernels_in(*only, &options.kernels, how)?, String::new()),
            _ => {
                let ((fp32_kernels, fp32_note), (bf16_kernels, bf16_note)) = (in_fp32()?, in_bf16()?);
                let speedup = self.get(Precision::Bf16, bf16_kernels)? / self.get(Precision::Fp32, fp32_kernels)?;
                if speedup >= BF16_MARGIN {
                    let note = format!("bf16 (auto: {how} {speedup:.2}x faster than fp32 here)");
                    (Precision::Bf16, (bf16_kernels, bf16_note), note)
                } else if speedup >= 1.0 {
                    let note = format!(
                        "fp32 (auto: bf16 {how} only {speedup:.2}x as fast as fp32 here, below {BF16_MARGIN:.2}x)"
                    );
                    (Precision::Fp32, (fp32_kernels, fp32_note), note)
                } else {
                    let note = format!("fp32 (auto: bf16 {how} {:.2}x slower than fp32 here)", 1.0 / speedup);
                    (Precision::Fp32, (fp32_kernels, fp32_note), note)
                }
            }
        };
        Some(Choice { precision, kernels, precision_note, kernels_note })
    }
}

/// The precision and kernels a training run takes, and why, for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The forward pass's arithmetic.
    pub precision: Precision,
    /// The kernels of BN, ReLU and the additions.
    pub kernels: Kernels,
    /// Why this precision (`fp32, as asked`, `bf16 (auto: measured 1.42x faster ...)`).
    pub precision_note: String,
    /// Why these kernels.
    pub kernels_note: String,
}

impl Choice {
    /// An evaluation's: `precision` as given, exact kernels (evaluation folds BN into the
    /// convolutions; nothing is left to fuse).
    pub fn evaluation(precision: Precision) -> Choice {
        Choice {
            precision,
            kernels: Kernels::Exact,
            precision_note: format!("{precision} (evaluation: fp32 unless bf16 is asked)"),
            kernels_note: "exact (evaluation folds BN into the convolutions)".into(),
        }
    }
}

/// What is left open for a probe: the precisions and the kernels it may choose among (one of
/// either: decided).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    precisions: Vec<Precision>,
    kernels: Vec<Kernels>,
    /// Notes of what was decided without measuring.
    precision_note: Option<String>,
    kernels_note: Option<String>,
}

impl Options {
    /// Every pair of precision and kernels a probe times.
    fn pairs(&self) -> impl Iterator<Item = (Precision, Kernels)> + '_ {
        self.precisions.iter().flat_map(|p| self.kernels.iter().map(move |k| (*p, *k)))
    }

    /// The choice where nothing is left to measure.
    fn decided(&self) -> Option<Choice> {
        match (self.precisions.as_slice(), self.kernels.as_slice()) {
            ([precision], [kernels]) => Some(Choice {
                precision: *precision,
                kernels: *kernels,
                precision_note: self.precision_note.clone().unwrap_or_default(),
                kernels_note: self.kernels_note.clone().unwrap_or_default(),
            }),
            _ => None,
        }
    }

    /// A measured choice with the notes of what was decided without measuring.
    fn with_notes(&self, mut choice: Choice) -> Choice {
        if let Some(note) = &self.precision_note {
            choice.precision_note = note.clone();
        }
        if let Some(note) = &self.kernels_note {
            choice.kernels_note = note.clone();
        }
        choice
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

    /// The key as the cache stores it, with libtorch's, reslab's and the fused kernels' versions.
    pub fn text(&self) -> String {
        format!(
            "{} | libtorch {} | reslab {} | {} | batch {} | {} threads | fused kernels {}",
            self.machine,
            crate::run::provenance::LIBTORCH_VERSION,
            env!("CARGO_PKG_VERSION"),
            self.model,
            self.batch_size,
            self.threads,
            FUSED_KERNELS_VERSION
        )
    }
}

/// Times the training step: images per second in a precision with some kernels.
pub trait StepClock {
    /// Training images per second in `precision` with `kernels`.
    fn img_per_s(&mut self, precision: Precision, kernels: Kernels) -> Result<f64>;

    /// Cores other processes kept busy, on average, during the measurements so far; `None`
    /// where unknown (then the probe is trusted).
    fn busy_elsewhere(&mut self) -> Option<f64> {
        None
    }
}

/// The real clock: the training step of `bench` (a fresh net on random images, SGD included),
/// [`PROBE_WARMUP`](super::probe::PROBE_WARMUP) untimed steps (oneDNN and cuDNN pick their kernels on the first) then
/// [`PROBE_STEPS`](super::probe::PROBE_STEPS) timed ones, per pair.
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
    fn img_per_s(&mut self, precision: Precision, kernels: Kernels) -> Result<f64> {
        if self.meter.is_none() {
            self.meter = Meter::start();
        }
        let bench = Bench::step_probe(
            self.spec.clone(),
            precision,
            kernels,
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

/// What `precision` and `kernels` leave open for `spec` here, with the notes of what they decide
/// without measuring: a forced choice as it is; bf16 only on a CPU with native bf16 and fused
/// kernels only on a CPU, channels-last; on a CPU, nothing of an ImageNet-size net is probed.
fn options(
    precision: PrecisionChoice,
    kernels: KernelsChoice,
    spec: &ModelSpec,
    channels_last: bool,
    device: Device,
) -> Result<Options> {
    let imagenet_on_cpu = device == Device::Cpu && spec.family == Family::Imagenet;
    let (precisions, precision_note) = match precision {
        PrecisionChoice::Fp32 => (vec![Precision::Fp32], Some("fp32, as asked".to_string())),
        PrecisionChoice::Bf16 => (vec![Precision::Bf16], Some("bf16, as asked".to_string())),
        // Without native bf16 instructions bf16 is emulated, many times slower: nothing to measure.
        PrecisionChoice::Auto if device == Device::Cpu && !runtime::cpu_has_bf16()? => {
            (vec![Precision::Fp32], Some("fp32 (auto: the CPU has no native bf16)".into()))
        }
        // A training step at 224 pixels takes many seconds on a CPU: the probe would cost more
        // than the short runs it would speed up.
        PrecisionChoice::Auto if imagenet_on_cpu => (
            vec![Precision::Fp32],
            Some("fp32 (auto: ImageNet-size nets are not probed on a CPU; --precision bf16 forces)".into()),
        ),
        PrecisionChoice::Auto => (vec![Precision::Fp32, Precision::Bf16], None),
    };
    let (kernels, kernels_note) = match kernels {
        KernelsChoice::Exact => (vec![Kernels::Exact], Some("exact, as asked".to_string())),
        KernelsChoice::Fused => (vec![Kernels::Fused], Some("fused, as asked".to_string())),
        KernelsChoice::Auto if device != Device::Cpu => {
            (vec![Kernels::Exact], Some("exact (auto: the fused kernels are the CPU's)".into()))
        }
        KernelsChoice::Auto if !channels_last => {
            (vec![Kernels::Exact], Some("exact (auto: the fused kernels need channels_last)".into()))
        }
        KernelsChoice::Auto if imagenet_on_cpu => (
            vec![Kernels::Exact],
            Some("exact (auto: ImageNet-size nets are not probed on a CPU; --kernels fused forces)".into()),
        ),
        KernelsChoice::Auto => (vec![Kernels::Exact, Kernels::Fused], None),
    };
    Ok(Options { precisions, kernels, precision_note, kernels_note })
}

/// The choice cached for `key_text` among `options`, where a probe measured every pair it needs.
fn cached_choice(key_text: &str, cache: &Cache, options: &Options) -> Option<Choice> {
    let measured = cache.get::<Measured>(key_text)?;
    measured.choose(options, "measured earlier").map(|choice| options.with_notes(choice))
}

/// What a probe times, for the user: `fp32 against bf16`, `exact against fused kernels`.
fn probe_text(options: &Options) -> String {
    let names = |names: Vec<&str>| names.join(" against ");
    let mut parts = Vec::new();
    if options.precisions.len() > 1 {
        parts.push(names(options.precisions.iter().map(|p| p.name()).collect()));
    }
    if options.kernels.len() > 1 {
        parts.push(format!("{} kernels", names(options.kernels.iter().map(|k| k.name()).collect())));
    }
    parts.join(" and ")
}

/// The choice among `options` for `key`: the cached one, or a probe on `clock` of the pairs not
/// timed yet (then cached with the others).
fn decide(key: &ProbeKey, cache: &Cache, clock: &mut dyn StepClock, options: &Options) -> Result<Choice> {
    if let Some(decided) = options.decided() {
        return Ok(decided);
    }
    let text = key.text();
    if let Some(cached) = cached_choice(&text, cache, options) {
        return Ok(cached);
    }
    // On stdout with the choice: progress, not a warning (stderr keeps one line for an error).
    let what = if options.precisions.len() > 1 { "precision" } else { "kernels" };
    println!("{what}: measuring {} for {} (once on this machine; a few seconds)", probe_text(options), key.model);
    let started = std::time::Instant::now();
    let mut measured = cache.get::<Measured>(&text).unwrap_or_default();
    let mut timed = Vec::new();
    for (precision, kernels) in options.pairs() {
        if measured.get(precision, kernels).is_none() {
            let img_per_s = clock.img_per_s(precision, kernels)?;
            measured.set(precision, kernels, img_per_s);
        }
        timed.push(format!("{precision} {kernels} {:.0} img/s", measured.get(precision, kernels).unwrap_or(0.0)));
    }
    println!("{what}: {} (probe {:.1} s)", timed.join(", "), started.elapsed().as_secs_f64());
    let choice = |how| measured.choose(options, how).map(|c| options.with_notes(c));
    let unmeasured = || anyhow::anyhow!("the probe timed no speed for {}", key.model);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // On a GPU (threads 0) the CPU's load does not decide the kernels' speed.
    let busy = clock.busy_elsewhere().filter(|&others| key.threads > 0 && too_busy(others, cores, key.threads));
    if let Some(others) = busy {
        println!(
            "{what}: other processes kept {others:.1} of {cores} cores busy during the probe: its result decides this \
             run only and is not cached"
        );
        return choice("measured on a busy machine").ok_or_else(unmeasured);
    }
    cache.put(&text, &measured);
    choice("measured").ok_or_else(unmeasured)
}

/// `auto`'s precision for training `spec` where no probe has to measure it (the CPU has no native
/// bf16, an ImageNet-size net on a CPU, or a choice measured earlier); `None` where a probe must.
/// The estimates of `reslab plan` use it.
pub fn known_precision(
    spec: &ModelSpec,
    batch_size: usize,
    threads: usize,
    device: Device,
) -> Result<Option<Precision>> {
    let options = options(PrecisionChoice::Auto, KernelsChoice::Exact, spec, true, device)?;
    if let Some(decided) = options.decided() {
        return Ok(Some(decided.precision));
    }
    let key = ProbeKey::new(spec, batch_size, threads, device);
    Ok(cached_choice(&key.text(), &Cache::named(CACHE_FILE), &options).map(|c| c.precision))
}

/// The precision and kernels a training run of `spec` at `batch_size` with `threads` takes for
/// `precision` and `kernels`, and why: a forced one as it is, `auto` decided without measuring
/// where it can be, else from the cache of the user's cache folder or by a probe on the real clock.
pub fn training_choice(
    precision: PrecisionChoice,
    kernels: KernelsChoice,
    spec: &ModelSpec,
    batch_size: usize,
    threads: usize,
    channels_last: bool,
    device: Device,
) -> Result<Choice> {
    let options = options(precision, kernels, spec, channels_last, device)?;
    let key = ProbeKey::new(spec, batch_size, threads, device);
    let mut clock = TrainingStep::new(spec.clone(), batch_size, threads, channels_last, device);
    decide(&key, &Cache::named(CACHE_FILE), &mut clock, &options)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock that reports given speeds (exact fp32, exact bf16, fused fp32, fused bf16) and
    /// counts its calls.
    struct Fixed {
        speeds: [f64; 4],
        calls: usize,
    }

    fn fixed(fp32: f64, bf16: f64) -> Fixed {
        Fixed { speeds: [fp32, bf16, fp32, bf16], calls: 0 }
    }

    impl StepClock for Fixed {
        fn img_per_s(&mut self, precision: Precision, kernels: Kernels) -> Result<f64> {
            self.calls += 1;
            Ok(match (precision, kernels) {
                (Precision::Fp32, Kernels::Exact) => self.speeds[0],
                (Precision::Bf16, Kernels::Exact) => self.speeds[1],
                (Precision::Fp32, Kernels::Fused) => self.speeds[2],
                (Precision::Bf16, Kernels::Fused) => self.speeds[3],
            })
        }
    }

    /// A clock measured while other processes held `others` cores.
    struct Busy {
        clock: Fixed,
        others: f64,
    }

    impl StepClock for Busy {
        fn img_per_s(&mut self, precision: Precision, kernels: Kernels) -> Result<f64> {
            self.clock.img_per_s(precision, kernels)
        }

        fn busy_elsewhere(&mut self) -> Option<f64> {
            Some(self.others)
        }
    }

    /// Both precisions open, exact kernels.
    fn precisions() -> Options {
        Options {
            precisions: vec![Precision::Fp32, Precision::Bf16],
            kernels: vec![Kernels::Exact],
            precision_note: None,
            kernels_note: Some("exact, as asked".into()),
        }
    }

    /// Everything open.
    fn everything() -> Options {
        Options { kernels: vec![Kernels::Exact, Kernels::Fused], kernels_note: None, ..precisions() }
    }

    #[test]
    fn a_probe_on_a_busy_machine_decides_its_run_only() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("precision.toml"));
        let cores = std::thread::available_parallelism().unwrap().get();
        // Busier than any slack (RESLAB_PROBE_SLACK_CORES may be set, as ./run test does).
        let busy = |others| Busy { clock: fixed(100.0, 80.0), others };
        let one_thread = ProbeKey { threads: 1, ..key("a") };
        let choice = decide(&one_thread, &cache, &mut busy(1000.0 + cores as f64), &precisions()).unwrap();
        assert_eq!(choice.precision, Precision::Fp32);
        assert!(choice.precision_note.contains("measured on a busy machine"), "{choice:?}");
        let mut calm = busy(0.0);
        decide(&one_thread, &cache, &mut calm, &precisions()).unwrap();
        assert_eq!(calm.clock.calls, 2, "nothing was cached from the busy probe: measured again");
        decide(&one_thread, &cache, &mut calm, &precisions()).unwrap();
        assert_eq!(calm.clock.calls, 2, "the calm probe was cached");
    }

    fn key(model: &str) -> ProbeKey {
        ProbeKey { machine: "cpu test".into(), model: model.into(), batch_size: 128, threads: 2 }
    }

    #[test]
    fn the_choice_follows_the_probe_with_a_margin() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("precision.toml"));
        let faster = decide(&key("a"), &cache, &mut fixed(100.0, 142.0), &precisions()).unwrap();
        assert_eq!(faster.precision, Precision::Bf16);
        assert_eq!(faster.precision_note, "bf16 (auto: measured 1.42x faster than fp32 here)");
        assert_eq!((faster.kernels, faster.kernels_note.as_str()), (Kernels::Exact, "exact, as asked"));
        let slower = decide(&key("b"), &cache, &mut fixed(100.0, 80.0), &precisions()).unwrap();
        assert_eq!(slower.precision, Precision::Fp32);
        assert!(slower.precision_note.contains("1.25x slower"), "{}", slower.precision_note);
        let marginal = decide(&key("c"), &cache, &mut fixed(100.0, 105.0), &precisions()).unwrap();
        assert_eq!(marginal.precision, Precision::Fp32, "5% faster is below the margin: {marginal:?}");
    }

    #[test]
    fn one_probe_chooses_the_precision_and_the_kernels_together() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("precision.toml"));
        // Fused helps bf16 more: bf16 fused against fp32 fused decides the precision.
        let mut clock = Fixed { speeds: [100.0, 104.0, 103.0, 125.0], calls: 0 };
        let choice = decide(&key("a"), &cache, &mut clock, &everything()).unwrap();
        assert_eq!(clock.calls, 4, "every pair once");
        assert_eq!((choice.precision, choice.kernels), (Precision::Bf16, Kernels::Fused), "{choice:?}");
        assert!(choice.kernels_note.starts_with("fused (auto: measured 1.20x as fast as exact in bf16"), "{choice:?}");
        // In fp32 alone, fused at 1.03x is below its margin.
        let fp32 = Options {
            precisions: vec![Precision::Fp32],
            precision_note: Some("fp32, as asked".into()),
            ..everything()
        };
        let choice = decide(&key("a"), &cache, &mut clock, &fp32).unwrap();
        assert_eq!(clock.calls, 4, "the cached pairs serve");
        assert_eq!((choice.precision, choice.kernels), (Precision::Fp32, Kernels::Exact), "{choice:?}");
        assert!(choice.kernels_note.contains("measured earlier 1.03x as fast in fp32 here, below 1.05x"), "{choice:?}");
        assert_eq!(choice.precision_note, "fp32, as asked");
        // A pair not timed yet is timed alone, and joins the others in the cache.
        let mut other = Fixed { speeds: [100.0, 0.0, 120.0, 0.0], calls: 0 };
        let kernels_only = Options { precisions: vec![Precision::Fp32], ..everything() };
        decide(&key("b"), &cache, &mut other, &kernels_only).unwrap();
        assert_eq!(other.calls, 2);
        let measured: Measured = cache.get(&key("b").text()).unwrap();
        assert_eq!((measured.fp32_fused_img_per_s, measured.bf16_img_per_s), (Some(120.0), None));
    }

    #[test]
    fn a_forced_or_impossible_choice_never_probes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("precision.toml"));
        let spec: ModelSpec = "resnet-20".parse().unwrap();
        let forced = options(PrecisionChoice::Bf16, KernelsChoice::Fused, &spec, true, Device::Cpu).unwrap();
        let mut clock = fixed(1.0, 1.0);
        let choice = decide(&key("a"), &cache, &mut clock, &forced).unwrap();
        assert_eq!(clock.calls, 0);
        assert_eq!(
            (choice.precision_note.as_str(), choice.kernels_note.as_str()),
            ("bf16, as asked", "fused, as asked")
        );
        let first_layout = options(PrecisionChoice::Fp32, KernelsChoice::Auto, &spec, false, Device::Cpu).unwrap();
        let choice = first_layout.decided().expect("decided without a probe");
        assert_eq!(choice.kernels, Kernels::Exact);
        assert_eq!(choice.kernels_note, "exact (auto: the fused kernels need channels_last)");
        let imagenet: ModelSpec = "resnet-18".parse().unwrap();
        let big = options(PrecisionChoice::Fp32, KernelsChoice::Auto, &imagenet, true, Device::Cpu).unwrap();
        assert!(big.decided().unwrap().kernels_note.contains("ImageNet-size nets are not probed"));
    }

    #[test]
    fn a_cached_choice_is_reused_and_a_changed_key_measures_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("precision.toml"));
        let mut clock = fixed(100.0, 150.0);
        decide(&key("a"), &cache, &mut clock, &precisions()).unwrap();
        assert_eq!(clock.calls, 2, "one probe: both precisions");
        let again = decide(&key("a"), &cache, &mut clock, &precisions()).unwrap();
        assert_eq!(clock.calls, 2, "the cached choice is reused");
        assert_eq!(again.precision_note, "bf16 (auto: measured earlier 1.50x faster than fp32 here)");
        let other_threads = ProbeKey { threads: 1, ..key("a") };
        decide(&other_threads, &cache, &mut clock, &precisions()).unwrap();
        assert_eq!(clock.calls, 4, "another thread count measures again");
        let other_machine = ProbeKey { machine: "cpu other".into(), ..key("a") };
        decide(&other_machine, &cache, &mut clock, &precisions()).unwrap();
        assert_eq!(clock.calls, 6, "another machine measures again");
    }

    #[test]
    fn a_corrupt_cache_is_ignored_and_measured_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("precision.toml");
        std::fs::write(&path, "\u{0}garbage[[").unwrap();
        let cache = Cache::at(&path);
        let mut clock = fixed(100.0, 50.0);
        assert_eq!(decide(&key("a"), &cache, &mut clock, &precisions()).unwrap().precision, Precision::Fp32);
        assert_eq!(clock.calls, 2);
        assert!(std::fs::read_to_string(&path).unwrap().contains("fp32_img_per_s"), "rewritten");
    }

    #[test]
    fn the_key_names_the_versions_and_what_was_measured() {
        let text = key("resnet-56 (A)").text();
        assert!(text.contains("libtorch ") && text.contains("reslab ") && text.contains("resnet-56 (A)"), "{text}");
        assert!(text.contains("batch 128") && text.contains("2 threads"), "{text}");
        assert!(text.ends_with(&format!("fused kernels {FUSED_KERNELS_VERSION}")), "{text}");
    }
}
