//! What a plan costs: multiply-accumulates and an estimate of the time on this machine.
//!
//! A run's time comes, in order of preference, from a run of the same network in the study (its
//! recorded wall time per iteration, evaluations and checkpoints included), else from the speeds
//! measured here for the study's layout ([`super::speed`]: the cheapest network of each family
//! timed as the runs will train, side by side, scaled to the others by MACs: the CIFAR nets'
//! layers have the same shapes at every depth, so the time per MAC varies little with depth).
//! The study's time is the runs' scheduled onto its runs at a time, longest first, as `reproduce`
//! starts them.

use super::layout::{self, Layout};
use super::plan::PlannedRun;
use super::speed::{self, Busy, Measured, Probe, SideBySide, Speed};
use crate::data::prepare::EvalSet;
use crate::model::Family;
use crate::model::Precision;
use crate::model::{Model, ModelSpec};
use crate::run::metrics;
use crate::run::RunState;
use crate::train::auto_precision::{self, BF16_MARGIN};
use crate::util::cache::Cache;
use anyhow::Result;
use std::collections::HashMap;
use std::path::Path;

/// Images in CIFAR-10's evaluation set for `eval_set` (the embedded sample evaluates on 500).
fn eval_images(run: &PlannedRun) -> f64 {
    match (&run.config().data.source, run.config().data.eval_set) {
        (crate::data::DataSource::Embedded, _) => 500.0,
        (_, EvalSet::Test) => 10_000.0,
        (_, EvalSet::Holdout) => 5_000.0,
    }
}

/// One planned run's state and cost.
#[derive(Debug, Clone)]
pub struct RunCost {
    /// The run directory's name.
    pub dir: String,
    /// Whether it is complete, partial or not started.
    pub state: RunState,
    /// Forward MACs per image.
    pub macs: u64,
    /// Training MACs x images of the whole run (forward MACs x 3 x images trained).
    pub train_mac_images: f64,
    /// Estimated seconds the run still needs (zero when complete).
    pub remaining_s: f64,
    /// Estimated seconds of the whole run.
    pub total_s: f64,
    /// Where the speed comes from.
    pub speed_from: String,
}

/// Forward MACs per image of each network of `runs`, by its name with variant (each counted once).
fn macs_by_model(runs: &[PlannedRun]) -> Result<HashMap<String, u64>> {
    let mut macs_of = HashMap::new();
    for run in runs {
        let spec = &run.config().model;
        if let std::collections::hash_map::Entry::Vacant(entry) = macs_of.entry(spec.to_string()) {
            entry.insert(Model::shapes_only(spec)?.macs());
        }
    }
    Ok(macs_of)
}

/// `runs` in order of the work each still needs, largest first (equal work keeps the plan's
/// order): with several jobs, the longest runs start first, so none is left to run alone at the
/// end while the other cores idle. Work is forward MACs x (3 x images trained + images
/// evaluated), what is left of it for a partial run: relative costs need no speed measurement.
pub fn longest_first(runs: Vec<PlannedRun>) -> Result<Vec<PlannedRun>> {
    let macs_of = macs_by_model(&runs)?;
    let mut keyed = Vec::with_capacity(runs.len());
    for run in runs {
        let macs = macs_of[&run.config().model.to_string()];
        let schedule = &run.config().schedule;
        let evals = schedule.iters.div_ceil(schedule.eval_every) as f64;
        let images = (schedule.iters * run.config().optim.batch_size) as f64;
        let done = match run.run.state() {
            RunState::Partial { iteration } | RunState::Failed { iteration, .. } => {
                iteration as f64 / schedule.iters.max(1) as f64
            }
            _ => 0.0,
        };
        let work = macs as f64 * (3.0 * images + evals * eval_images(&run)) * (1.0 - done);
        keyed.push((work, run));
    }
    keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
    Ok(keyed.into_iter().map(|(_, run)| run).collect())
}

/// A plan's cost: every run's, and the study's on this machine in the layout it will use.
#[derive(Debug, Clone)]
pub struct Estimate {
    /// Each planned run's state and cost, in plan order.
    pub runs: Vec<RunCost>,
    /// How the runs share this machine.
    pub layout: Layout,
    /// Why that layout, for the user; empty where nothing is left to train.
    pub layout_why: String,
    /// Seconds of the whole study from nothing, in the layout.
    pub total_s: f64,
    /// Seconds until every run is complete, in the layout.
    pub remaining_s: f64,
    /// Where a probe ran on a busy machine: how busy (the times above are then the longest).
    pub busy: Option<Busy>,
}

/// What a run of the study recorded of its network's speed.
#[derive(Debug, Clone)]
struct Recorded {
    /// Wall seconds per iteration: its latest row's wall time over its iterations (evaluations
    /// and checkpoints included).
    s_per_iter: f64,
    /// The run's directory name.
    dir: String,
    /// Its network, forward MACs per image, and batch size.
    spec: ModelSpec,
    macs: u64,
    batch_size: usize,
}

/// The speed each network's runs in the study have recorded, by the network's name.
fn recorded_speeds(
    runs: &[PlannedRun],
    states: &[RunState],
    macs_of: &HashMap<String, u64>,
) -> HashMap<String, Recorded> {
    let mut recorded = HashMap::new();
    for (run, state) in runs.iter().zip(states) {
        // Another configuration's run, or a modified one, says nothing of this study's.
        if !matches!(state, RunState::Complete(_) | RunState::Partial { .. } | RunState::Failed { .. }) {
            continue;
        }
        let key = run.config().model.to_string();
        let Some(last) = metrics::read_if_any(&run.dir().path).ok().and_then(|rows| rows.last().cloned()) else {
            continue;
        };
        if last.iter > 0 && last.wall_s.is_finite() && last.wall_s > 0.0 && !recorded.contains_key(&key) {
            let record = Recorded {
                s_per_iter: last.wall_s / last.iter as f64,
                dir: run.dir_name(),
                spec: run.config().model.clone(),
                macs: macs_of[&key],
                batch_size: run.config().optim.batch_size,
            };
            recorded.insert(key, record);
        }
    }
    recorded
}

/// The recorded speed of `spec`'s runs: its own network's, else a network of its family scaled
/// by the work per iteration (MACs x batch), so that a study in progress needs no probe; with
/// where it comes from.
fn recorded_for(
    spec: &ModelSpec,
    macs: u64,
    batch_size: usize,
    recorded: &HashMap<String, Recorded>,
) -> Option<(f64, String)> {
    let key = spec.to_string();
    if let Some(own) = recorded.get(&key) {
        return Some((own.s_per_iter, format!("measured by a run of {key} in the study ({})", own.dir)));
    }
    let kin = recorded.values().filter(|r| r.spec.family == spec.family).min_by(|a, b| a.dir.cmp(&b.dir))?;
    let work = (macs as f64 * batch_size as f64) / (kin.macs as f64 * kin.batch_size as f64);
    Some((
        kin.s_per_iter * work,
        format!("measured by a run of {} in the study ({}), scaled by MACs", kin.spec, kin.dir),
    ))
}

/// The precision `run` trains in, where known without a probe.
fn known_precision(run: &PlannedRun, layout: Layout, device: tch::Device) -> Result<Option<Precision>> {
    if !run.run.precision_pending() {
        return Ok(Some(run.config().precision));
    }
    let config = run.config();
    auto_precision::known_precision(&config.model, config.optim.batch_size, layout.threads, device)
}

/// The network each family's runs are timed by: its cheapest in `runs`.
fn probe_nets<'a>(runs: impl Iterator<Item = &'a PlannedRun>, macs_of: &HashMap<String, u64>) -> Vec<ModelSpec> {
    let mut cheapest: Vec<ModelSpec> = Vec::new();
    for run in runs {
        let spec = &run.config().model;
        match cheapest.iter_mut().find(|s| s.family == spec.family) {
            Some(known) if macs_of[&known.to_string()] <= macs_of[&spec.to_string()] => {}
            Some(known) => *known = spec.clone(),
            None => cheapest.push(spec.clone()),
        }
    }
    cheapest
}

/// The measured speeds a probe found, by (family, precision), with the probe's net and MACs.
type Probed = Vec<(Family, Precision, ModelSpec, u64, Measured)>;

/// The cost of every run of a plan on this machine: recorded by the study's runs, else measured
/// by probes (cached per machine). `requested_threads`: the study's `--threads` (0: shared out).
pub fn estimate(runs: &[PlannedRun], requested_threads: usize) -> Result<Estimate> {
    let macs_of = macs_by_model(runs)?;
    let states: Vec<RunState> = runs.iter().map(|r| r.run.state()).collect();
    let left = states.iter().filter(|s| !matches!(s, RunState::Complete(_) | RunState::Diverged(_))).count();
    let (layout, layout_why) = match left {
        0 => (Layout { jobs: 1, threads: requested_threads }, String::new()),
        _ => layout::for_study(left, requested_threads),
    };
    let recorded = recorded_speeds(runs, &states, &macs_of);
    let recorded_of = |run: &PlannedRun| {
        let config = run.config();
        recorded_for(&config.model, macs_of[&config.model.to_string()], config.optim.batch_size, &recorded)
    };
    let device = match runs.first() {
        Some(run) => run.config().device.resolve()?,
        None => tch::Device::Cpu,
    };
    // The runs no run of the study has timed, with their precision where known.
    let mut unrecorded = Vec::new();
    for run in runs.iter().filter(|r| recorded_of(r).is_none()) {
        unrecorded.push((run, known_precision(run, layout, device)?));
    }
    let probed = probe(&unrecorded, &macs_of, layout, device)?;
    let mut costs = Vec::new();
    for (run, state) in runs.iter().zip(states) {
        let macs = macs_of[&run.config().model.to_string()];
        let (total_s, speed_from) = match recorded_of(run) {
            Some((s_per_iter, from)) => (s_per_iter * run.config().schedule.iters as f64, from),
            None => {
                let known = unrecorded.iter().find(|(r, _)| std::ptr::eq(*r, run)).and_then(|(_, p)| *p);
                from_probes(run, macs, known, &probed)?
            }
        };
        costs.push(RunCost::new(run, state, macs, total_s, speed_from));
    }
    let busy = probed.iter().filter_map(|(.., m)| m.busy).max_by(|a, b| a.others_cores.total_cmp(&b.others_cores));
    Ok(Estimate {
        total_s: makespan(costs.iter().map(|c| c.total_s).collect(), layout.jobs),
        remaining_s: makespan(costs.iter().map(|c| c.remaining_s).collect(), layout.jobs),
        runs: costs,
        layout,
        layout_why,
        busy,
    })
}

/// The speeds of the cheapest net of each family among `unrecorded`, in each precision its runs
/// may take, measured in `layout` (or read from the cache).
fn probe(
    unrecorded: &[(&PlannedRun, Option<Precision>)],
    macs_of: &HashMap<String, u64>,
    layout: Layout,
    device: tch::Device,
) -> Result<Probed> {
    let mut probed: Probed = Vec::new();
    let cache = Cache::named(speed::CACHE_FILE);
    for net in probe_nets(unrecorded.iter().map(|(run, _)| *run), macs_of) {
        let of_family: Vec<_> = unrecorded.iter().filter(|(run, _)| run.config().model.family == net.family).collect();
        let config = of_family[0].0.config();
        let mut precisions: Vec<Precision> = of_family.iter().filter_map(|(_, p)| *p).collect();
        if of_family.iter().any(|(_, p)| p.is_none()) {
            // `auto` not yet decided here: both are timed, and the runs take the one `auto` would.
            precisions.extend([Precision::Fp32, Precision::Bf16]);
        }
        precisions.sort_by_key(|p| p.name());
        precisions.dedup();
        for precision in precisions {
            let probe = Probe {
                spec: net.clone(),
                precision,
                batch_size: config.optim.batch_size,
                channels_last: config.channels_last,
                layout,
                device,
            };
            let measured = speed::measure(&probe, &cache, &mut SideBySide::default())?;
            probed.push((net.family, precision, net.clone(), macs_of[&net.to_string()], measured));
        }
    }
    Ok(probed)
}

/// A run's time from the speeds probed for its family, in its precision (`known`, else the one
/// `auto` takes from them), scaled by MACs: training images over the training speed, evaluation
/// images over the evaluation speed. With the text saying where the speed came from.
fn from_probes(run: &PlannedRun, macs: u64, known: Option<Precision>, probed: &Probed) -> Result<(f64, String)> {
    let spec = &run.config().model;
    let measured_in = |precision: Precision| {
        probed
            .iter()
            .find(|(f, p, ..)| *f == spec.family && *p == precision)
            .map(|(_, _, net, macs, m)| (net, *macs, *m))
    };
    let precision = known.unwrap_or_else(|| {
        auto_choice(measured_in(Precision::Fp32).map(|m| m.2.speed), measured_in(Precision::Bf16).map(|m| m.2.speed))
    });
    let (net, net_macs, measured) =
        measured_in(precision).ok_or_else(|| anyhow::anyhow!("no speed was measured for {spec} in {precision}"))?;
    let speed = measured.speed.scaled(macs as f64 / net_macs as f64);
    let schedule = &run.config().schedule;
    let images = (schedule.iters * run.config().optim.batch_size) as f64;
    let evals = schedule.iters.div_ceil(schedule.eval_every) as f64;
    let total_s = images / speed.train_img_per_s + evals * eval_images(run) / speed.eval_img_per_s;
    let scaled = if net.to_string() == spec.to_string() { String::new() } else { ", scaled by MACs".into() };
    let from =
        format!("measured here for {net} in {precision} ({:.0} img/s a run{scaled})", measured.speed.train_img_per_s);
    Ok((total_s, from))
}

impl RunCost {
    /// `run` in `state`, taking `total_s` from start to end: what is left of it.
    fn new(run: &PlannedRun, state: RunState, macs: u64, total_s: f64, speed_from: String) -> RunCost {
        let iters = run.config().schedule.iters;
        let remaining_s = match &state {
            RunState::Complete(_) | RunState::Diverged(_) => 0.0,
            RunState::Partial { iteration } | RunState::Failed { iteration, .. } => {
                total_s * (1.0 - *iteration as f64 / iters.max(1) as f64)
            }
            // Neither this run nor to be counted: once removed, it trains from the start.
            RunState::New | RunState::Modified { .. } | RunState::Foreign { .. } => total_s,
        };
        let images = (iters * run.config().optim.batch_size) as f64;
        RunCost {
            dir: run.dir_name(),
            state,
            macs,
            train_mac_images: macs as f64 * 3.0 * images,
            remaining_s,
            total_s,
            speed_from,
        }
    }
}

/// The precision `auto` takes from the speeds of each (bf16 where at least the margin faster).
fn auto_choice(fp32: Option<Speed>, bf16: Option<Speed>) -> Precision {
    match (fp32, bf16) {
        (Some(fp32), Some(bf16)) if bf16.train_img_per_s >= BF16_MARGIN * fp32.train_img_per_s => Precision::Bf16,
        _ => Precision::Fp32,
    }
}

/// Seconds until every one of `seconds` is done with `jobs` of them at a time, each started as
/// soon as a job is free, longest first.
pub fn makespan(mut seconds: Vec<f64>, jobs: usize) -> f64 {
    seconds.sort_by(|a, b| b.total_cmp(a));
    let mut free_at = vec![0.0_f64; jobs.max(1)];
    for s in seconds.into_iter().filter(|s| *s > 0.0) {
        let soonest = free_at.iter_mut().min_by(|a, b| a.total_cmp(b)).expect("at least one job");
        *soonest += s;
    }
    free_at.into_iter().fold(0.0, f64::max)
}

/// `seconds` for the user: minutes below an hour, hours above.
pub fn duration_text(seconds: f64) -> String {
    let minutes = (seconds / 60.0).round();
    if seconds >= 3600.0 {
        format!("{:.1} hours", seconds / 3600.0)
    } else if minutes == 1.0 {
        "1 minute".into()
    } else {
        format!("{minutes:.0} minutes")
    }
}

impl Estimate {
    /// `seconds` of this estimate for the user: where a probe ran on a busy machine, the range
    /// from a quiet machine's time to the time at the load it measured.
    pub fn span_text(&self, seconds: f64) -> String {
        match self.busy {
            Some(busy) => format!("{} to {}", duration_text(seconds * busy.quiet_share()), duration_text(seconds)),
            None => duration_text(seconds),
        }
    }

    /// The line that says how the estimate was made: the layout, and a busy probe.
    pub fn basis_text(&self) -> String {
        if self.layout_why.is_empty() {
            return "(nothing left to train)".into();
        }
        let mut text = format!("at {}", self.layout_why);
        if let Some(busy) = self.busy {
            text += &format!(
                "; the speed probe ran while other processes kept {:.1} of {} cores busy: the shorter time if they \
                 stop, the longer if they go on",
                busy.others_cores, busy.cores
            );
        }
        text
    }

    /// `plan`'s table: a line per run and the totals.
    pub fn text(&self, out: &Path) -> String {
        let costs = &self.runs;
        // Run names grow with their variants (resnet-110-no-relu-after-add-seed0): the column fits them.
        let w = costs.iter().map(|c| c.dir.len()).max().unwrap_or(0).max(22);
        let mut text =
            format!("{:<w$} {:<28} {:>12} {:>16} {:>10}\n", "run", "state", "MACs/image", "train MACs", "est. hours");
        for c in costs {
            text += &format!(
                "{:<w$} {:<28} {:>12} {:>16.3e} {:>10.2}\n",
                c.dir,
                c.state.to_string(),
                c.macs,
                c.train_mac_images,
                c.total_s / 3600.0
            );
        }
        let complete = costs.iter().filter(|c| c.state.is_complete()).count();
        let sources: std::collections::BTreeSet<&str> = costs.iter().map(|c| c.speed_from.as_str()).collect();
        text += &format!(
            "{} runs in {}: {complete} complete; about {} in all, {} left on this machine {}; speeds: {}\n",
            costs.len(),
            out.display(),
            self.span_text(self.total_s),
            self.span_text(self.remaining_s),
            self.basis_text(),
            sources.into_iter().collect::<Vec<_>>().join("; ")
        );
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::overrides::Overrides;
    use crate::experiment::plan::plan;
    use crate::experiment::{Experiment, Preset};

    #[test]
    fn the_study_ends_when_its_busiest_job_does() {
        assert_eq!(makespan(vec![10.0, 30.0, 10.0, 30.0], 2), 40.0, "the two long runs side by side, then the short");
        assert_eq!(makespan(vec![10.0, 30.0, 10.0, 30.0], 1), 80.0);
        assert_eq!(makespan(vec![50.0, 10.0, 10.0, 10.0], 2), 50.0, "the short runs fill the other job");
        assert_eq!(makespan(vec![5.0, 0.0], 4), 5.0);
        assert_eq!(makespan(Vec::new(), 2), 0.0);
    }

    #[test]
    fn a_probe_on_a_busy_machine_gives_a_range_and_says_why() {
        let mut estimate = Estimate {
            runs: Vec::new(),
            layout: Layout { jobs: 2, threads: 1 },
            layout_why: "2 runs at a time, 1 thread each".into(),
            total_s: 7200.0,
            remaining_s: 1800.0,
            busy: None,
        };
        assert_eq!(estimate.span_text(estimate.total_s), "2.0 hours");
        assert_eq!(estimate.span_text(estimate.remaining_s), "30 minutes");
        assert_eq!(estimate.basis_text(), "at 2 runs at a time, 1 thread each");
        estimate.busy = Some(Busy { others_cores: 2.0, needed_cores: 2.0, cores: 2 });
        assert_eq!(estimate.span_text(estimate.total_s), "1.0 hours to 2.0 hours");
        let basis = estimate.basis_text();
        assert!(basis.contains("other processes kept 2.0 of 2 cores busy"), "{basis}");
    }

    #[test]
    fn the_longest_runs_come_first_and_equal_ones_keep_the_plans_order() {
        let experiment = Experiment::load("fig6").unwrap();
        let runs = plan(&experiment, Preset::Smoke, &Overrides::default(), Path::new("no-such-dir")).unwrap();
        let ordered: Vec<String> = longest_first(runs.clone()).unwrap().iter().map(PlannedRun::dir_name).collect();
        assert_eq!(ordered.len(), runs.len());
        let depth = |dir: &str| dir.split('-').nth(1).unwrap().parse::<u32>().unwrap();
        let depths: Vec<u32> = ordered.iter().map(|d| depth(d)).collect();
        assert!(depths.windows(2).all(|w| w[0] >= w[1]), "deepest first: {ordered:?}");
        // Seeds of one network cost the same: they stay in the plan's order.
        let first_two = &ordered[..2];
        assert!(first_two[0].ends_with("seed0") && first_two[1].ends_with("seed1"), "{ordered:?}");
    }
}
