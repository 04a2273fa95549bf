//! Scoring weights moved along directions: what is scored (a network on fixed images, or a toy),
//! and the points of a surface dealt over threads.

use super::direction::{parameters, Direction};
use crate::model::Model;
use crate::train::evaluate::count_wrong;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Instant;
use tch::{Device, Kind, Reduction, Tensor};

/// The loss and error at one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// Mean cross-entropy loss.
    pub loss: f64,
    /// Error rate (%).
    pub error: f64,
}

/// What can be scored at weights set in place: a network on images, or a toy.
pub trait Objective: Send {
    /// The parameters directions move, by name (tensors sharing the objective's storage).
    fn parameters(&self) -> Vec<(String, Tensor)>;
    /// The loss and error at the parameters' current values.
    fn score(&self) -> Result<Score>;
}

/// How BN is treated at each point of a network objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BnStatistics {
    /// Evaluation mode with the model's running statistics (folded into the convolutions).
    Running,
    /// Training mode: each batch of this many images normalised by its own statistics.
    Batch(usize),
}

/// A network scored on fixed images.
pub struct NetObjective {
    model: Model,
    images: Tensor,
    labels: Tensor,
    bn: BnStatistics,
}

impl NetObjective {
    /// `model` (a copy is made) on `images` and `labels`.
    pub fn new(model: &Model, images: &Tensor, labels: &Tensor, bn: BnStatistics) -> Result<NetObjective> {
        let mut copy = Model::new(&model.spec, Device::Cpu)?;
        tch::no_grad(|| {
            let source = model.vs.variables();
            for (name, mut var) in copy.vs.variables() {
                var.copy_(&source[&name]);
            }
        });
        copy.use_channels_last();
        Ok(NetObjective { model: copy, images: images.shallow_clone(), labels: labels.shallow_clone(), bn })
    }
}

/// Images per forward pass in evaluation mode.
const EVAL_BATCH: i64 = 500;

impl Objective for NetObjective {
    fn parameters(&self) -> Vec<(String, Tensor)> {
        parameters(&self.model)
    }

    fn score(&self) -> Result<Score> {
        let n = self.images.size()[0];
        let (batch, train) = match self.bn {
            BnStatistics::Running => (EVAL_BATCH, false),
            BnStatistics::Batch(size) => (size as i64, true),
        };
        let (loss, wrong) = tch::no_grad(|| {
            let folded = (!train).then(|| self.model.fold_batch_norm(true));
            let mut loss = 0.0;
            let mut wrong = 0;
            for start in (0..n).step_by(batch as usize) {
                let len = batch.min(n - start);
                let (x, y) = (self.images.narrow(0, start, len), self.labels.narrow(0, start, len));
                let logits = match &folded {
                    Some(folded) => folded.forward(&x),
                    None => self.model.forward_t(&x, true),
                };
                loss += logits
                    .to_kind(Kind::Float)
                    .cross_entropy_loss::<Tensor>(&y, None, Reduction::Sum, -100, 0.0)
                    .double_value(&[]);
                wrong += count_wrong(&logits, &y);
            }
            (loss, wrong)
        });
        Ok(Score { loss: loss / n as f64, error: 100.0 * wrong as f64 / n as f64 })
    }
}

/// The scores at `points` of base + a x + b y (`y` absent: a line), objectives made by `make`
/// (one per worker, points dealt round-robin, each worker on `threads_each` libtorch threads), in
/// the order of `points`; and the seconds per point.
pub fn scores<O: Objective>(
    make: &dyn Fn() -> Result<O>,
    directions: &[Direction],
    points: &[(f64, f64)],
    workers: usize,
    threads_each: usize,
    label: &str,
) -> Result<(Vec<Score>, f64)> {
    if directions.is_empty() {
        bail!("a surface needs at least one direction");
    }
    let workers = workers.clamp(1, points.len().max(1));
    crate::train::runtime::set_threads(threads_each);
    // Tensors are not shared between threads: each worker gets its own handles, made here.
    let mut jobs = Vec::new();
    for w in 0..workers {
        let objective = make()?;
        let owned: Vec<Direction> = directions.iter().map(Direction::shallow_clone).collect();
        let mine: Vec<(usize, (f64, f64))> = points.iter().copied().enumerate().skip(w).step_by(workers).collect();
        jobs.push((objective, owned, mine));
    }
    let progress = ProgressBar::new(points.len() as u64);
    progress.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} points  {per_sec} eta {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    progress.set_prefix(label.to_string());
    let started = Instant::now();
    let results: Vec<Result<Vec<(usize, Score)>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|(objective, owned, mine)| {
                let progress = progress.clone();
                scope.spawn(move || score_points(&objective, &owned, &mine, &progress))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| bail!("a landscape worker panicked"))).collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    progress.finish_and_clear();
    let mut scored: Vec<Option<Score>> = vec![None; points.len()];
    for result in results {
        for (i, score) in result? {
            scored[i] = Some(score);
        }
    }
    let scored: Vec<Score> = scored.into_iter().collect::<Option<_>>().context("a grid point was not scored")?;
    Ok((scored, seconds / points.len().max(1) as f64))
}

fn score_points<O: Objective>(
    objective: &O,
    directions: &[Direction],
    mine: &[(usize, (f64, f64))],
    progress: &ProgressBar,
) -> Result<Vec<(usize, Score)>> {
    let params = objective.parameters();
    // Only the parameters some direction moves are rewritten at each point.
    let mut moving = Vec::new();
    for (p, (name, var)) in params.iter().enumerate() {
        let along: Vec<Tensor> = directions
            .iter()
            .map(|d| {
                d.parts.get(p).filter(|(n, _)| n == name).map(|(_, t)| t.shallow_clone()).with_context(|| {
                    format!("the directions have no {name}; expected directions made for this network")
                })
            })
            .collect::<Result<_>>()?;
        if along.iter().all(|t| t.abs().max().double_value(&[]) == 0.0) {
            continue;
        }
        moving.push((var.shallow_clone(), var.detach().copy(), along));
    }
    let mut out = Vec::with_capacity(mine.len());
    for &(i, (a, b)) in mine {
        tch::no_grad(|| {
            for (var, base, along) in &mut moving {
                let mut moved = base.shallow_clone() + &along[0] * a;
                if let Some(y) = along.get(1) {
                    moved += y * b;
                }
                var.copy_(&moved);
            }
        });
        out.push((i, objective.score()?));
        progress.inc(1);
    }
    Ok(out)
}

/// The toy of the tests: loss = sum (w - w*)^2 over a matrix w, minimum at w*.
pub struct QuadraticToy {
    weight: Tensor,
    target: Tensor,
}

impl QuadraticToy {
    /// Weights at `start`, minimum at `target` (both 2-d).
    pub fn new(start: &Tensor, target: &Tensor) -> QuadraticToy {
        QuadraticToy { weight: start.copy(), target: target.copy() }
    }
}

impl Objective for QuadraticToy {
    fn parameters(&self) -> Vec<(String, Tensor)> {
        vec![("weight".into(), self.weight.shallow_clone())]
    }

    fn score(&self) -> Result<Score> {
        let loss = (&self.weight - &self.target).square().sum(Kind::Double).double_value(&[]);
        Ok(Score { loss, error: 0.0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::landscape::tests::settings;
    use crate::analysis::landscape::{directions, filter_normalised, summarise, training_subset, Dims};
    use crate::data::{DataConfig, DataSource, Dataset};
    use crate::train::evaluate::model_for_data;

    #[test]
    fn a_quadratic_toy_s_lowest_point_is_the_centre() {
        tch::manual_seed(0);
        let target = Tensor::randn([8, 5], (Kind::Float, Device::Cpu));
        let make = || Ok(QuadraticToy::new(&target, &target));
        let toy = make().unwrap();
        let d = |seed| {
            tch::manual_seed(seed);
            let w = &toy.parameters()[0].1;
            Direction {
                parts: vec![(
                    "weight".into(),
                    filter_normalised(&Tensor::randn([8, 5], (Kind::Float, Device::Cpu)), w),
                )],
            }
        };
        let s = settings(9, Dims::Two);
        let (scored, _) = scores(&make, &[d(1), d(2)], &s.points(), 2, 1, "toy").unwrap();
        let losses: Vec<f64> = scored.iter().map(|s| s.loss).collect();
        let lowest = (0..losses.len()).min_by(|&a, &b| losses[a].total_cmp(&losses[b])).unwrap();
        assert_eq!(lowest, 4 * 9 + 4, "the centre of a 9 x 9 grid");
        assert!(losses[lowest].abs() < 1e-10);
        let summary = summarise(&s, &losses, &vec![0.0; losses.len()]);
        assert_eq!(summary.convex_share, 1.0, "a quadratic is convex everywhere");
        assert!(summary.sharpness.is_infinite(), "the centre loss is 0: every ratio is infinite");
    }

    #[test]
    fn the_centre_is_reslab_s_evaluation_and_a_repeat_is_bit_identical() {
        let data = Dataset::open(&DataConfig::new(DataSource::Embedded), Device::Cpu).unwrap();
        let model = crate::model::fresh(&"resnet-8".parse::<crate::model::ModelSpec>().unwrap(), 2).unwrap();
        let spec = model_for_data(&model.spec, &data).unwrap();
        let model = {
            let m = Model::new(&spec, Device::Cpu).unwrap();
            tch::no_grad(|| {
                for (name, mut v) in m.vs.variables() {
                    v.copy_(&model.vs.variables()[&name]);
                }
            });
            m
        };
        let (images, labels) = training_subset(&data, 64).unwrap();
        let s = settings(3, Dims::Two);
        let make = || NetObjective::new(&model, &images, &labels, BnStatistics::Running);
        let dirs = directions(&model, s.seed, s.dims).unwrap();
        let (first, _) = scores(&make, &dirs, &s.points(), 2, 1, "resnet-8").unwrap();
        // The centre (point 4 of 3 x 3) against the unfolded net in evaluation mode.
        let logits = tch::no_grad(|| model.forward_t(&images, false));
        let loss = logits.cross_entropy_loss::<Tensor>(&labels, None, Reduction::Mean, -100, 0.0).double_value(&[]);
        let error = 100.0 * count_wrong(&logits, &labels) as f64 / 64.0;
        assert!((first[4].loss - loss).abs() < 1e-4 * loss, "{} vs {loss}", first[4].loss);
        assert_eq!(first[4].error, error);
        assert!(first.iter().enumerate().any(|(i, p)| i != 4 && p.loss != first[4].loss), "the points differ");
        let (second, _) = scores(&make, &dirs, &s.points(), 2, 1, "resnet-8").unwrap();
        assert!(first.iter().zip(&second).all(|(a, b)| a.loss.to_bits() == b.loss.to_bits() && a.error == b.error));
    }
}
