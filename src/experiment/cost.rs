//! What a plan costs: multiply-accumulates and an estimate of the time on this machine.
//!
//! Training an image costs about three forward passes (forward, and a backward pass of about
//! twice the work), evaluating one a forward pass. The speed comes from an existing run of the
//! same network in the study (its measured images per second), else from a short timed probe of
//! resnet-20 on this machine, scaled by MACs (the CIFAR nets' layers have the same shapes at every
//! depth, so time per MAC varies little with depth).

use super::plan::PlannedRun;
use crate::data::prepare::EvalSet;
use crate::model::{Model, ModelSpec};
use crate::run::metrics;
use crate::run::RunState;
use crate::train::bench::{self, Bench};
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

/// The cost of every run of a plan in `out`, measuring this machine with a probe when no run of
/// the study has measured a network yet.
pub fn estimate(runs: &[PlannedRun], threads: usize) -> Result<Vec<RunCost>> {
    let macs_of = macs_by_model(runs)?;
    let mut measured: HashMap<String, f64> = HashMap::new();
    for run in runs {
        let key = run.config().model.to_string();
        if let Ok(rows) = metrics::read_if_any(&run.dir().path) {
            let speeds: Vec<f64> = rows.iter().map(|r| r.img_per_s).filter(|v| v.is_finite() && *v > 0.0).collect();
            if !speeds.is_empty() && !measured.contains_key(&key) {
                measured.insert(key, speeds.iter().sum::<f64>() / speeds.len() as f64);
            }
        }
    }
    let mut probe: Option<(f64, f64)> = None; // (MAC/s, img/s) of resnet-20
    let mut costs = Vec::new();
    for run in runs {
        let spec = &run.config().model;
        let key = spec.to_string();
        let macs = macs_of[&key];
        let schedule = &run.config().schedule;
        let images = (schedule.iters * run.config().optim.batch_size) as f64;
        let (train_img_per_s, speed_from) = match measured.get(&key) {
            Some(&speed) => (speed, format!("measured by a run of {key}")),
            None => {
                let (mac_per_s, probe_img_per_s) = match probe {
                    Some(v) => v,
                    None => {
                        let probe_spec = ModelSpec::cifar(crate::model::Kind::Residual, 20)?;
                        let probe_macs = Model::new(&probe_spec, tch::Device::Cpu)?.macs() as f64;
                        let img_per_s = bench::step_img_per_s(&Bench::probe(
                            probe_spec.clone(),
                            run.config(),
                            threads,
                            run.config().device.resolve()?,
                        ))?;
                        probe = Some((img_per_s * probe_macs, img_per_s));
                        (img_per_s * probe_macs, img_per_s)
                    }
                };
                let from = format!("a probe of resnet-20 here ({probe_img_per_s:.0} img/s), scaled by MACs");
                (mac_per_s / macs as f64, from)
            }
        };
        let evals = schedule.iters.div_ceil(schedule.eval_every) as f64;
        // Evaluation: a forward pass, about a third of a training image's work.
        let total_s = images / train_img_per_s + evals * eval_images(run) / (3.0 * train_img_per_s);
        let state = run.run.state();
        let remaining_s = match &state {
            RunState::Complete(_) | RunState::Diverged(_) => 0.0,
            RunState::Partial { iteration } | RunState::Failed { iteration, .. } => {
                total_s * (1.0 - *iteration as f64 / schedule.iters as f64)
            }
            // Neither this run nor to be counted: once removed, it trains from the start.
            RunState::New | RunState::Modified { .. } | RunState::Foreign { .. } => total_s,
        };
        costs.push(RunCost {
            dir: run.dir_name(),
            state,
            macs,
            train_mac_images: macs as f64 * 3.0 * images,
            remaining_s,
            total_s,
            speed_from,
        });
    }
    Ok(costs)
}

/// `plan`'s table: a line per run and the totals.
pub fn text(costs: &[RunCost], out: &Path) -> String {
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
    let total: f64 = costs.iter().map(|c| c.total_s).sum();
    let remaining: f64 = costs.iter().map(|c| c.remaining_s).sum();
    let sources: std::collections::BTreeSet<&str> = costs.iter().map(|c| c.speed_from.as_str()).collect();
    text += &format!(
        "{} runs in {}: {complete} complete; about {:.1} hours in all, {:.1} hours left on this machine \
         with one job at a time; speeds: {}\n",
        costs.len(),
        out.display(),
        total / 3600.0,
        remaining / 3600.0,
        sources.into_iter().collect::<Vec<_>>().join("; ")
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::plan::{plan, Overrides};
    use crate::experiment::{Experiment, Preset};

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
