//! Loss landscapes (Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets", NeurIPS) and
//! the path from initialisation (Goodfellow et al. 2015, "Qualitatively characterizing neural
//! network optimization problems").
//!
//! **Surface.** Around a run's final weights w, two random Gaussian directions d1, d2 in weight
//! space, *filter-normalised* as Li et al. do: each filter of a direction (a slice along the first
//! dimension of a convolution's or the classifier's weight) scaled to the norm of the same filter
//! of w; biases and BN parameters (every 1-d parameter) left out of the directions (their
//! `ignore = "biasbn"`). The training loss and error of w + a d1 + b d2 on a fixed subset of the
//! training images (the first N, no augmentation) at every point of the grid [-span, span]^2 (or
//! the line, with one direction), in evaluation mode with the trained BN running statistics held
//! fixed: their code's choice (`net.eval()` in `evaluation.py`, with directions over the
//! parameters, not the BN buffers). Each point re-folds BN into the perturbed convolutions and
//! runs the fused evaluation path ([`crate::model::folded`]); points are spread over threads.
//!
//! **Path.** The loss and error of (1 - t) w0 + t w along the line from the run's initial weights
//! w0 to its final ones (t from -0.2 to 1.2), every parameter moving. Here BN normalises with the
//! statistics of each batch (training mode, batches of the run's size): no running statistics
//! describe the weights in between (the initial ones are 0 and 1, for no weights at all), and the
//! batch statistics are those the run's logged training loss is computed with.
//!
//! **Summary numbers** (docs/analyses.md): the *sharpness*, the mean over the grid points within
//! half the span of the centre (the centre left out) of log10(loss / centre loss), larger for a
//! surface that rises faster; and the *convex share*, the share of the grid points within that
//! radius (not on the edge) where the surface is locally convex by its second differences
//! (f_aa > 0, f_bb > 0 and f_aa f_bb > f_ab^2 in 2-D; f_aa > 0 on a line). Li et al.'s bowl has a
//! small sharpness and a convex share near 1; their chaotic plain-56 a large sharpness and a
//! lower share.

use super::{run_label, Written};
use crate::data::batches::{rng, Stream};
use crate::data::{DataConfig, Dataset};
use crate::model::{Kind as NetKind, Model};
use crate::report::chart::{Curve, ErrorChart, Scale};
use crate::report::contour::{self, ContourFigure, ContourPanel};
use crate::report::table::csv_text;
use crate::run::{InitialWeights, RunConfig, RunDir};
use crate::train::evaluate::{count_wrong, model_for_data};
use crate::train::runtime::thread_count;
use crate::util::fs::write_file;
use crate::util::stats;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Reduction, Tensor};

/// One axis or two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dims {
    /// A line through the weights along one direction.
    One,
    /// A plane through the weights spanned by two directions.
    Two,
}

impl Dims {
    /// From `--dims 1|2`.
    pub fn from_count(count: u8) -> Result<Dims> {
        match count {
            1 => Ok(Dims::One),
            2 => Ok(Dims::Two),
            n => bail!("--dims {n}; expected 1 (a line) or 2 (a plane)"),
        }
    }

    /// 1 or 2.
    pub fn count(self) -> u8 {
        match self {
            Dims::One => 1,
            Dims::Two => 2,
        }
    }
}

/// What `reslab analyze landscape` computes.
#[derive(Debug, Clone, PartialEq)]
pub struct LandscapeSettings {
    /// Points per axis, odd so that the centre is one (default 21).
    pub grid: usize,
    /// The grid covers [-span, span] on each axis (default 1.0: a step of a filter's own norm).
    pub span: f64,
    /// Training images the loss is measured on (the first N; default 1,000).
    pub images: usize,
    /// A line or a plane.
    pub dims: Dims,
    /// The directions' seed (default 0).
    pub seed: u64,
    /// Points on the path from initialisation, t from -0.2 to 1.2 (0: no path; default 15).
    pub path_points: usize,
    /// libtorch threads in all; 0: the machine's cores.
    pub threads: usize,
    /// Points evaluated at once, each on threads / workers threads; 0: one per thread.
    pub workers: usize,
}

impl Default for LandscapeSettings {
    fn default() -> Self {
        LandscapeSettings {
            grid: 21,
            span: 1.0,
            images: 1000,
            dims: Dims::Two,
            seed: 0,
            path_points: 15,
            threads: 0,
            workers: 0,
        }
    }
}

impl LandscapeSettings {
    /// Odd grid of 3 or more, positive span and images.
    pub fn check(&self) -> Result<()> {
        if self.grid < 3 || self.grid.is_multiple_of(2) {
            bail!(
                "grid {}; expected an odd number of points per axis, 3 or more, so that the centre is one",
                self.grid
            );
        }
        if !(self.span.is_finite() && self.span > 0.0) {
            bail!("span {}; expected a positive number (the grid covers [-span, span])", self.span);
        }
        if self.images == 0 {
            bail!("images 0; expected at least 1 training image to measure the loss on");
        }
        if self.path_points == 1 {
            bail!("path points 1; expected 0 (no path) or 2 or more");
        }
        Ok(())
    }

    /// The grid's coordinates on one axis.
    pub fn axis(&self) -> Vec<f64> {
        let n = self.grid;
        (0..n).map(|i| self.span * (2.0 * i as f64 / (n - 1) as f64 - 1.0)).collect()
    }

    /// Every (alpha, beta) of the grid, beta-major (beta 0 on a line).
    pub fn points(&self) -> Vec<(f64, f64)> {
        let axis = self.axis();
        match self.dims {
            Dims::One => axis.iter().map(|&a| (a, 0.0)).collect(),
            Dims::Two => axis.iter().flat_map(|&b| axis.iter().map(move |&a| (a, b))).collect(),
        }
    }

    /// The path's t, from -0.2 to 1.2.
    pub fn path_ts(&self) -> Vec<f64> {
        let n = self.path_points;
        (0..n).map(|i| -0.2 + 1.4 * i as f64 / (n - 1).max(1) as f64).collect()
    }

    fn threads_and_workers(&self) -> (usize, usize) {
        let threads = thread_count(self.threads).max(1);
        let workers = if self.workers == 0 { threads } else { self.workers.min(threads) };
        (workers, (threads / workers).max(1))
    }
}

/// A direction in weight space: one tensor per trainable parameter, in name order (zero where the
/// parameter does not move).
#[derive(Debug)]
pub struct Direction {
    /// (parameter name, direction), in name order.
    pub parts: Vec<(String, Tensor)>,
}

impl Direction {
    fn shallow_clone(&self) -> Direction {
        Direction { parts: self.parts.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect() }
    }
}

/// The trainable parameters of `model`, in name order (shallow clones of its variables).
pub fn parameters(model: &Model) -> Vec<(String, Tensor)> {
    // The BN running statistics are variables too, but not trainable ones.
    let mut named: Vec<(String, Tensor)> =
        model.vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

/// `d` with each filter (slice along dimension 0) scaled to the norm of the same filter of `w`.
pub fn filter_normalised(d: &Tensor, w: &Tensor) -> Tensor {
    let shape: Vec<i64> = std::iter::once(-1).chain(std::iter::repeat_n(1, w.dim() - 1)).collect();
    let norm = |t: &Tensor| t.flatten(1, -1).norm_scalaropt_dim(2, [1], false).view(shape.as_slice());
    d * (norm(w) / (norm(d) + 1e-10))
}

/// A random Gaussian direction with `model`'s shapes (zero for its biases and BN parameters),
/// drawn on the CPU from torch's generator, which the caller seeds: what is saved.
pub fn raw_direction(model: &Model) -> Direction {
    let parts = parameters(model)
        .into_iter()
        .map(|(name, w)| {
            let d = if w.dim() <= 1 {
                Tensor::zeros(w.size(), (Kind::Float, Device::Cpu))
            } else {
                Tensor::randn(w.size(), (Kind::Float, Device::Cpu))
            };
            (name, d)
        })
        .collect();
    Direction { parts }
}

/// `raw` filter-normalised to `model`'s weights, its 1-d parts zero (an error naming the part where
/// `raw` was made for another network).
pub fn normalised(raw: &Direction, model: &Model) -> Result<Direction> {
    let weights = parameters(model);
    if raw.parts.len() != weights.len() {
        bail!(
            "a direction of {} parts for {} parameters of {}; expected directions of the same network",
            raw.parts.len(),
            weights.len(),
            model.spec
        );
    }
    let parts = tch::no_grad(|| {
        raw.parts
            .iter()
            .zip(weights)
            .map(|((name, d), (own, w))| {
                if *name != own || d.size() != w.size() {
                    bail!(
                        "a direction's {name} {:?} against the model's {own} {:?}; expected directions of the same network ({})",
                        d.size(),
                        w.size(),
                        model.spec
                    );
                }
                let w = w.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
                let d = if w.dim() <= 1 { w.zeros_like() } else { filter_normalised(d, &w) };
                Ok((name.clone(), d))
            })
            .collect::<Result<Vec<_>>>()
    })?;
    Ok(Direction { parts })
}

/// The raw directions of a surface, from `seed` (the first direction is the same for a line and
/// a plane of the same seed).
pub fn raw_directions(model: &Model, seed: u64, dims: Dims) -> Vec<Direction> {
    tch::manual_seed(seed as i64);
    let first = raw_direction(model);
    match dims {
        Dims::One => vec![first],
        Dims::Two => vec![first, raw_direction(model)],
    }
}

/// The filter-normalised directions of a surface, from `seed`.
pub fn directions(model: &Model, seed: u64, dims: Dims) -> Result<Vec<Direction>> {
    raw_directions(model, seed, dims).iter().map(|d| normalised(d, model)).collect()
}

/// Saves raw directions as safetensors (`x.NAME`, `y.NAME`, and `seed`).
pub fn save_directions(directions: &[Direction], seed: u64, path: &Path) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> = vec![("seed".into(), Tensor::from(seed as i64))];
    for (axis, direction) in ["x", "y"].iter().zip(directions) {
        tensors.extend(direction.parts.iter().map(|(n, t)| (format!("{axis}.{n}"), t.shallow_clone())));
    }
    crate::util::fs::write_atomically(path, |tmp| {
        Tensor::write_safetensors(&tensors, tmp).map_err(|e| anyhow::anyhow!("{e}"))
    })
    .with_context(|| format!("writing directions {}", path.display()))
}

/// Raw directions saved by [`save_directions`] for `model`'s network, and their seed.
pub fn load_directions(model: &Model, path: &Path) -> Result<(Vec<Direction>, u64)> {
    let stored = Tensor::read_safetensors(path)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("reading directions {}", path.display()))?;
    let get = |name: &str| stored.iter().find(|(n, _)| n == name).map(|(_, t)| t.shallow_clone());
    let seed = get("seed").map(|t| t.int64_value(&[]) as u64).unwrap_or(0);
    let mut loaded = Vec::new();
    for axis in ["x", "y"] {
        if !stored.iter().any(|(n, _)| n.starts_with(&format!("{axis}."))) {
            continue;
        }
        let mut parts = Vec::new();
        for (name, _) in parameters(model) {
            let Some(d) = get(&format!("{axis}.{name}")) else {
                bail!("directions {}: no {axis}.{name}; expected directions saved for {}", path.display(), model.spec);
            };
            parts.push((name, d));
        }
        loaded.push(Direction { parts });
    }
    if loaded.is_empty() {
        bail!("directions {}: no x.* tensors; expected a file `analyze landscape` saved", path.display());
    }
    Ok((loaded, seed))
}

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

/// The surface's summary numbers (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The loss at the centre.
    pub centre_loss: f64,
    /// The error at the centre (%).
    pub centre_error: f64,
    /// Mean log10(loss / centre loss) over the points within half the span (the centre left out).
    pub sharpness: f64,
    /// Share of the points within half the span, off the edge, where the surface is locally convex.
    pub convex_share: f64,
}

/// The summary of `loss` at the grid of `settings` (in the order of [`LandscapeSettings::points`]).
pub fn summarise(settings: &LandscapeSettings, losses: &[f64], errors: &[f64]) -> Summary {
    let n = settings.grid;
    let c = n / 2;
    let radius = settings.span / 2.0;
    let axis = settings.axis();
    let (at, rows) = match settings.dims {
        Dims::One => (Box::new(|i: usize, _j: usize| losses[i]) as Box<dyn Fn(usize, usize) -> f64>, 1),
        Dims::Two => (Box::new(|i: usize, j: usize| losses[j * n + i]) as Box<dyn Fn(usize, usize) -> f64>, n),
    };
    let centre_j = if rows == 1 { 0 } else { c };
    let centre_loss = at(c, centre_j);
    let centre_error = errors[if rows == 1 { c } else { c * n + c }];
    let (mut ratios, mut convex, mut inside) = (Vec::new(), 0usize, 0usize);
    for j in 0..rows {
        for i in 0..n {
            let b = if rows == 1 { 0.0 } else { axis[j] };
            let r = (axis[i] * axis[i] + b * b).sqrt();
            if r > radius + 1e-9 {
                continue;
            }
            if (i, j) != (c, centre_j) {
                ratios.push((at(i, j) / centre_loss).log10());
            }
            let interior = i > 0 && i + 1 < n && (rows == 1 || (j > 0 && j + 1 < rows));
            if !interior {
                continue;
            }
            inside += 1;
            let f_aa = at(i + 1, j) - 2.0 * at(i, j) + at(i - 1, j);
            let is_convex = if rows == 1 {
                f_aa > 0.0
            } else {
                let f_bb = at(i, j + 1) - 2.0 * at(i, j) + at(i, j - 1);
                let f_ab = (at(i + 1, j + 1) - at(i + 1, j - 1) - at(i - 1, j + 1) + at(i - 1, j - 1)) / 4.0;
                f_aa > 0.0 && f_bb > 0.0 && f_aa * f_bb > f_ab * f_ab
            };
            convex += usize::from(is_convex);
        }
    }
    let mean = |v: &[f64]| if v.is_empty() { f64::NAN } else { stats::mean(v) };
    Summary {
        centre_loss,
        centre_error,
        sharpness: mean(&ratios),
        convex_share: if inside == 0 { f64::NAN } else { convex as f64 / inside as f64 },
    }
}

/// One run's surface and path.
#[derive(Debug, Clone, PartialEq)]
pub struct RunLandscape {
    /// The run directory's name.
    pub run: String,
    /// The network (`resnet-56`), for the figure's layout.
    pub model: String,
    /// Plain or residual.
    pub kind: NetKind,
    /// Its depth.
    pub depth: i64,
    /// Scores at [`LandscapeSettings::points`], in that order.
    pub surface: Vec<Score>,
    /// Its summary numbers.
    pub summary: Summary,
    /// Seconds per grid point.
    pub seconds_per_point: f64,
    /// Scores at [`LandscapeSettings::path_ts`] (empty without a path).
    pub path: Vec<Score>,
    /// Where the path's start came from.
    pub initial: Option<InitialWeights>,
    /// The directions' file.
    pub directions: PathBuf,
}

impl RunLandscape {
    /// The run's surface and path with their summary numbers.
    #[allow(clippy::too_many_arguments)]
    fn new(
        run: String,
        model: &Model,
        settings: &LandscapeSettings,
        surface: Vec<Score>,
        seconds_per_point: f64,
        path: Vec<Score>,
        initial: Option<InitialWeights>,
        directions: PathBuf,
    ) -> RunLandscape {
        let losses: Vec<f64> = surface.iter().map(|s| s.loss).collect();
        let errors: Vec<f64> = surface.iter().map(|s| s.error).collect();
        RunLandscape {
            run,
            model: model.spec.name(),
            kind: model.spec.kind,
            depth: model.spec.depth,
            summary: summarise(settings, &losses, &errors),
            surface,
            seconds_per_point,
            path,
            initial,
            directions,
        }
    }

    /// What `analyze landscape` prints of it.
    pub fn line(&self) -> String {
        let path = match (self.path.first(), self.path.last()) {
            (Some(start), Some(end)) => format!(
                "; path loss {:.3} -> {:.3}, initial weights {}",
                start.loss,
                end.loss,
                self.initial.map(|i| i.to_string()).unwrap_or_default()
            ),
            _ => String::new(),
        };
        format!(
            "{} ({}): centre loss {:.4} error {:.2}%, sharpness {:.3}, convex share {:.2}, {:.3} s per point{path}",
            self.run,
            self.model,
            self.summary.centre_loss,
            self.summary.centre_error,
            self.summary.sharpness,
            self.summary.convex_share,
            self.seconds_per_point
        )
    }
}

/// The first `n` training images (no augmentation) of `data` and their labels.
pub fn training_subset(data: &Dataset, n: usize) -> Result<(Tensor, Tensor)> {
    let n = n.min(data.num_train());
    if n == 0 {
        bail!("the training set is empty; expected images to measure the loss on");
    }
    let indices: Vec<i64> = (0..n as i64).collect();
    Ok(data.train_batch(&indices, false, &mut rng(0, Stream::Augment, 0), Device::Cpu))
}

/// The surface (and path) of one complete run on `data` (opened from `data_config`), its
/// directions saved in `out` (or read from `directions`); the surface already in `out` for the
/// same weights, data and settings is read, not computed again.
pub fn of_run(
    dir: &Path,
    settings: &LandscapeSettings,
    data_config: &DataConfig,
    data: &Dataset,
    directions_file: Option<&Path>,
    out: &Path,
) -> Result<RunLandscape> {
    settings.check()?;
    let run = RunDir::new(dir);
    let config = RunConfig::load(&run.config()).with_context(|| format!("run {}", dir.display()))?;
    let model = run.load_model().with_context(|| format!("run {}", dir.display()))?;
    model_for_data(&model.spec, data).with_context(|| format!("run {}", dir.display()))?;
    let label = run_label(dir);
    let (directions, seed) = match directions_file {
        Some(path) => {
            let (loaded, seed) = load_directions(&model, path)?;
            if loaded.len() < settings.dims.count() as usize {
                bail!("directions {}: one direction; expected two for a plane (--dims 2)", path.display());
            }
            (loaded.into_iter().take(settings.dims.count() as usize).collect::<Vec<_>>(), seed)
        }
        None => (raw_directions(&model, settings.seed, settings.dims), settings.seed),
    };
    let directions_path = out.join(format!("{label}-directions.safetensors"));
    save_directions(&directions, seed, &directions_path)?;
    let directions = directions
        .iter()
        .map(|d| normalised(d, &model))
        .collect::<Result<Vec<_>>>()
        .with_context(|| format!("directions for {}", dir.display()))?;
    let finished_path = out.join(format!("{label}-landscape.json"));
    let key = finished_key(&run, settings, data_config, directions_file)?;
    if let Some(finished) = Finished::read(&finished_path, &key) {
        crate::eprint_line!(
            "{label}: its landscape is in {} already (the same weights, data and settings); not computing it again",
            finished_path.display()
        );
        return Ok(finished.into_run_landscape(label, &model, settings, directions_path));
    }
    crate::eprint_line!("{label}: {} points on {} training images", settings.points().len(), settings.images);
    let (images, labels) = training_subset(data, settings.images)?;
    let (workers, threads_each) = settings.threads_and_workers();
    let make = || NetObjective::new(&model, &images, &labels, BnStatistics::Running);
    let points = settings.points();
    let (surface, seconds_per_point) = scores(&make, &directions, &points, workers, threads_each, &label)?;
    let (path, initial) = if settings.path_points == 0 {
        (Vec::new(), None)
    } else {
        let (start, initial) = run.load_initial_model(&model.spec).with_context(|| format!("run {}", dir.display()))?;
        let towards = tch::no_grad(|| {
            let finals = parameters(&model);
            parameters(&start)
                .into_iter()
                .zip(finals)
                .map(|((name, w0), (_, w1))| (name, w1.to_kind(Kind::Float) - w0.to_kind(Kind::Float)))
                .collect()
        });
        let along = [Direction { parts: towards }];
        let batch = config.optim.batch_size;
        let make = || NetObjective::new(&start, &images, &labels, BnStatistics::Batch(batch));
        let ts: Vec<(f64, f64)> = settings.path_ts().into_iter().map(|t| (t, 0.0)).collect();
        (scores(&make, &along, &ts, workers, threads_each, &format!("{label} path"))?.0, Some(initial))
    };
    let result = RunLandscape::new(label, &model, settings, surface, seconds_per_point, path, initial, directions_path);
    Finished::of(&result, key).write(&finished_path)?;
    Ok(result)
}

/// Copies the finished surfaces of `dirs`' runs from an earlier analysis's folder `from` into
/// `to`, where [`analyze`] looks for them: an aggregation written afresh does not compute again
/// what an earlier one finished (a surface of other weights or settings is computed again anyway).
pub fn carry_finished(dirs: &[PathBuf], from: &Path, to: &Path) -> Result<()> {
    for dir in dirs {
        let name = format!("{}-landscape.json", super::run_label(dir));
        if from.join(&name).is_file() {
            std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
            std::fs::copy(from.join(&name), to.join(&name))
                .with_context(|| format!("copying {} to {}", from.join(&name).display(), to.display()))?;
        }
    }
    Ok(())
}

/// A finished surface and path, kept beside the charts (`<run>-landscape.json`) so that drawing
/// a study again does not compute them again; valid while its key matches.
#[derive(Debug, Serialize, Deserialize)]
struct Finished {
    /// [`finished_key`] of what it was computed from.
    key: String,
    /// (loss, error) at [`LandscapeSettings::points`].
    surface: Vec<[f64; 2]>,
    /// (loss, error) at [`LandscapeSettings::path_ts`].
    path: Vec<[f64; 2]>,
    seconds_per_point: f64,
    /// The seed the path's start was rebuilt from; `None`: its init.safetensors (or no path).
    initial_rebuilt_from_seed: Option<u64>,
}

impl Finished {
    fn of(result: &RunLandscape, key: String) -> Finished {
        let pairs = |scores: &[Score]| scores.iter().map(|s| [s.loss, s.error]).collect();
        Finished {
            key,
            surface: pairs(&result.surface),
            path: pairs(&result.path),
            seconds_per_point: result.seconds_per_point,
            initial_rebuilt_from_seed: match result.initial {
                Some(InitialWeights::Rebuilt { seed }) => Some(seed),
                _ => None,
            },
        }
    }

    /// The file at `path` if it holds a surface for `key`; anything else (none, unreadable,
    /// another key) is computed again.
    fn read(path: &Path, key: &str) -> Option<Finished> {
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str::<Finished>(&text).ok().filter(|f| f.key == key)
    }

    fn write(&self, path: &Path) -> Result<()> {
        write_file(path, serde_json::to_string(self)?.as_bytes())
    }

    fn into_run_landscape(
        self,
        run: String,
        model: &Model,
        settings: &LandscapeSettings,
        directions: PathBuf,
    ) -> RunLandscape {
        let scores = |pairs: Vec<[f64; 2]>| pairs.into_iter().map(|[loss, error]| Score { loss, error }).collect();
        let path: Vec<Score> = scores(self.path);
        let initial = match (path.is_empty(), self.initial_rebuilt_from_seed) {
            (true, _) => None,
            (false, Some(seed)) => Some(InitialWeights::Rebuilt { seed }),
            (false, None) => Some(InitialWeights::Saved),
        };
        let surface = scores(self.surface);
        RunLandscape::new(run, model, settings, surface, self.seconds_per_point, path, initial, directions)
    }
}

/// What a run's surface is a function of: reslab's version, the settings but the threads (the
/// layout changes no point's value beyond rounding), the data, the run's configuration, final
/// and initial weights, and the directions' file if one is given.
fn finished_key(
    run: &RunDir,
    settings: &LandscapeSettings,
    data: &DataConfig,
    directions: Option<&Path>,
) -> Result<String> {
    let mut hash = Sha256::new();
    let what = format!(
        "reslab {} landscape grid {} span {} images {} dims {} seed {} path {} data {data:?}",
        env!("CARGO_PKG_VERSION"),
        settings.grid,
        settings.span,
        settings.images,
        settings.dims.count(),
        settings.seed,
        settings.path_points
    );
    hash.update(what.as_bytes());
    let init = run.init_weights();
    let files =
        [Some(run.config()), Some(run.weights()), init.is_file().then_some(init), directions.map(Path::to_path_buf)];
    for file in files.into_iter().flatten() {
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(&bytes);
    }
    Ok(format!("{:x}", hash.finalize()))
}

/// Every run's surface and path, each on its own training data (opened once per configuration);
/// their files in `out`.
pub fn analyze(
    dirs: &[PathBuf],
    settings: &LandscapeSettings,
    data: Option<&DataConfig>,
    directions: Option<&Path>,
    out: &Path,
    stem: &str,
) -> Result<(Vec<RunLandscape>, Written)> {
    settings.check()?;
    if dirs.is_empty() {
        bail!("no runs; expected one or more complete run directories");
    }
    for dir in dirs {
        RunDir::new(dir).check_weights().with_context(|| format!("run {}", dir.display()))?;
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut opened: Vec<(DataConfig, Dataset)> = Vec::new();
    let mut results = Vec::new();
    for dir in dirs {
        let config = match data {
            Some(data) => data.clone(),
            None => RunConfig::load(&RunDir::new(dir).config()).with_context(|| format!("run {}", dir.display()))?.data,
        };
        let index = match opened.iter().position(|(c, _)| *c == config) {
            Some(index) => index,
            None => {
                opened.push((config.clone(), Dataset::open(&config, Device::Cpu)?));
                opened.len() - 1
            }
        };
        let result = of_run(dir, settings, &opened[index].0, &opened[index].1, directions, out)?;
        results.push(result);
    }
    let written = write(&results, settings, out, stem)?;
    Ok((results, written))
}

/// `<stem>.csv` (run, alpha, beta, loss, error), `<stem>-summary.csv`, `<stem>-path.csv` and the
/// charts, in `out`.
pub fn write(results: &[RunLandscape], settings: &LandscapeSettings, out: &Path, stem: &str) -> Result<Written> {
    let mut written = Written::default();
    let points = settings.points();
    let rows: Vec<Vec<String>> = results
        .iter()
        .flat_map(|r| {
            points.iter().zip(&r.surface).map(move |((a, b), s)| {
                vec![
                    r.run.clone(),
                    format!("{a:.4}"),
                    format!("{b:.4}"),
                    format!("{:.6}", s.loss),
                    format!("{:.4}", s.error),
                ]
            })
        })
        .collect();
    written.csv(out.join(format!("{stem}.csv")), &csv_text(&["run", "alpha", "beta", "loss", "error"], &rows)?)?;
    let summary_rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.run.clone(),
                r.model.clone(),
                settings.dims.count().to_string(),
                settings.grid.to_string(),
                settings.span.to_string(),
                settings.images.to_string(),
                settings.seed.to_string(),
                format!("{:.6}", r.summary.centre_loss),
                format!("{:.4}", r.summary.centre_error),
                format!("{:.5}", r.summary.sharpness),
                format!("{:.4}", r.summary.convex_share),
                format!("{:.4}", r.seconds_per_point),
            ]
        })
        .collect();
    let header = [
        "run",
        "model",
        "dims",
        "grid",
        "span",
        "images",
        "seed",
        "centre_loss",
        "centre_error",
        "sharpness",
        "convex_share",
        "seconds_per_point",
    ];
    written.csv(out.join(format!("{stem}-summary.csv")), &csv_text(&header, &summary_rows)?)?;
    let ts = settings.path_ts();
    let with_path: Vec<&RunLandscape> = results.iter().filter(|r| !r.path.is_empty()).collect();
    if !with_path.is_empty() {
        let rows: Vec<Vec<String>> = with_path
            .iter()
            .flat_map(|r| {
                let initial = r.initial.map(|i| i.to_string()).unwrap_or_default();
                ts.iter().zip(&r.path).map(move |(t, s)| {
                    vec![
                        r.run.clone(),
                        format!("{t:.4}"),
                        format!("{:.6}", s.loss),
                        format!("{:.4}", s.error),
                        initial.clone(),
                    ]
                })
            })
            .collect();
        written.csv(
            out.join(format!("{stem}-path.csv")),
            &csv_text(&["run", "t", "loss", "error", "initial_weights"], &rows)?,
        )?;
    }
    let shown = first_of_each_network(results);
    if settings.dims == Dims::Two {
        contour_figure(&shown, settings, out, stem, &mut written)?;
    }
    line_charts(&shown, settings, out, stem, &mut written)?;
    if !with_path.is_empty() {
        path_chart(&shown, &ts, out, stem, &mut written)?;
    }
    Ok(written)
}

/// One run per network (the first given), residual nets before plain ones, by depth.
fn first_of_each_network(results: &[RunLandscape]) -> Vec<&RunLandscape> {
    let mut shown: Vec<&RunLandscape> = Vec::new();
    for r in results {
        if !shown.iter().any(|s| s.model == r.model) {
            shown.push(r);
        }
    }
    shown.sort_by_key(|r| (r.kind != NetKind::Residual, r.depth));
    shown
}

/// The contour levels span this factor above the lowest loss of a figure (3 decades).
const LEVEL_DECADES: f64 = 1000.0;

/// Li et al.'s Fig. 5: residual nets on the top row, plain nets below, by depth.
fn contour_figure(
    shown: &[&RunLandscape],
    settings: &LandscapeSettings,
    out: &Path,
    stem: &str,
    written: &mut Written,
) -> Result<()> {
    let axis = settings.axis();
    let panel = |r: &RunLandscape| ContourPanel {
        title: format!("{} ({})", r.model, r.run),
        xs: axis.clone(),
        ys: axis.clone(),
        values: r.surface.iter().map(|s| s.loss).collect(),
    };
    let mut depths: Vec<i64> = shown.iter().map(|r| r.depth).collect();
    depths.sort_unstable();
    depths.dedup();
    let mut rows = Vec::new();
    for kind in [NetKind::Residual, NetKind::Plain] {
        let row: Vec<Option<ContourPanel>> =
            depths.iter().map(|&d| shown.iter().find(|r| r.kind == kind && r.depth == d).map(|r| panel(r))).collect();
        if row.iter().any(Option::is_some) {
            rows.push(row);
        }
    }
    let others: Vec<Option<ContourPanel>> = shown
        .iter()
        .filter(|r| r.kind != NetKind::Residual && r.kind != NetKind::Plain)
        .map(|r| Some(panel(r)))
        .collect();
    if !others.is_empty() {
        rows.push(others);
    }
    // Levels over three decades above the lowest loss: a perturbed net's loss can reach 10^9 at the
    // grid's edge, and levels spread up to there would all lie above the basin around the centre.
    let losses: Vec<f64> = shown.iter().flat_map(|r| r.surface.iter().map(|s| s.loss)).collect();
    let lowest = losses.iter().copied().filter(|v| v.is_finite() && *v > 0.0).fold(f64::MAX, f64::min);
    let levels = contour::log_levels(losses.into_iter().filter(|v| *v <= lowest * LEVEL_DECADES), 14);
    let figure = ContourFigure {
        title: format!(
            "Training loss around the trained weights (filter-normalised directions, {} x {} grid, {} images)",
            settings.grid, settings.grid, settings.images
        ),
        value_label: "training loss".into(),
        x_label: "alpha".into(),
        y_label: "beta".into(),
        rows,
        levels,
    };
    let (png, svg) = (out.join(format!("{stem}-contours.png")), out.join(format!("{stem}-contours.svg")));
    contour::render(&figure, &png, &svg)?;
    let text = std::fs::read_to_string(&svg).with_context(|| format!("reading {}", svg.display()))?;
    written.figures.push((
        "Li et al. (2018), Fig. 5: the training loss on the plane of two filter-normalised random directions \
         through each run's final weights (the centre); residual nets on the top row, plain nets below; the same \
         log-spaced contour levels in every panel."
            .into(),
        text,
    ));
    written.files.extend([png, svg]);
    Ok(())
}

/// Loss and error along the first direction (beta = 0).
fn line_charts(
    shown: &[&RunLandscape],
    settings: &LandscapeSettings,
    out: &Path,
    stem: &str,
    written: &mut Written,
) -> Result<()> {
    let axis = settings.axis();
    let c = settings.grid / 2;
    let lines = shown
        .iter()
        .map(|r| {
            let line = match settings.dims {
                Dims::One => &r.surface[..],
                Dims::Two => &r.surface[c * settings.grid..(c + 1) * settings.grid],
            };
            (*r, axis.iter().copied().zip(line.iter().copied()).collect())
        })
        .collect();
    let titles = ("Training loss along the first direction", "Training error along the first direction");
    let caption = "The loss and error along one filter-normalised direction through each run's final weights \
                   (alpha = 0); plain nets dashed.";
    written.chart(out, &format!("{stem}-lines"), caption, &loss_and_error(lines, "alpha", titles))
}

/// Goodfellow et al.'s interpolation from the initial to the final weights.
fn path_chart(shown: &[&RunLandscape], ts: &[f64], out: &Path, stem: &str, written: &mut Written) -> Result<()> {
    let lines = shown
        .iter()
        .filter(|r| !r.path.is_empty())
        .map(|r| (*r, ts.iter().copied().zip(r.path.iter().copied()).collect()))
        .collect();
    let titles = ("Training loss from initial (t = 0) to final (t = 1) weights", "Training error on the same line");
    let caption = "Goodfellow et al. (2015): the straight line from each run's initial weights to its final ones, \
                   every parameter moving; BN normalises each batch by its own statistics at every point. Plain \
                   nets dashed.";
    written.chart(out, &format!("{stem}-path"), caption, &loss_and_error(lines, "t", titles))
}

/// Two panels of each run's scores along a line: the loss (log axis) and the error.
fn loss_and_error(
    lines: Vec<(&RunLandscape, Vec<(f64, Score)>)>,
    x_label: &str,
    titles: (&str, &str),
) -> [ErrorChart; 2] {
    let curves = |value: fn(&Score) -> f64| -> Vec<Curve> {
        lines
            .iter()
            .enumerate()
            .map(|(series, (r, points))| Curve {
                label: r.model.clone(),
                series,
                dashed: r.kind == NetKind::Plain,
                marker: false,
                points: points.iter().map(|(x, s)| (*x, value(s))).collect(),
                band: vec![],
            })
            .collect()
    };
    let panel = |title: &str, y_label: &str, value: fn(&Score) -> f64, y_range, y_scale| ErrorChart {
        title: title.into(),
        x_label: x_label.into(),
        y_label: y_label.into(),
        curves: curves(value),
        y_range,
        y_scale,
        band_label: None,
    };
    [
        panel(titles.0, "training loss", |s| s.loss, None, Scale::Log),
        panel(titles.1, "training error (%)", |s| s.error, Some((0.0, 100.0)), Scale::Linear),
    ]
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
    use crate::data::DataSource;

    fn settings(grid: usize, dims: Dims) -> LandscapeSettings {
        LandscapeSettings { grid, span: 1.0, images: 64, dims, seed: 3, path_points: 0, threads: 2, workers: 2 }
    }

    #[test]
    fn every_filter_of_a_direction_has_its_weights_norm_and_bn_and_biases_stay_put() {
        let model = crate::model::fresh(&"resnet-8".parse().unwrap(), 1).unwrap();
        let [x, y]: [Direction; 2] = directions(&model, 5, Dims::Two).unwrap().try_into().unwrap();
        let weights = parameters(&model);
        assert_eq!(x.parts.len(), weights.len());
        let (mut filters, mut zeroed) = (0, 0);
        for ((name, d), (_, w)) in x.parts.iter().zip(&weights) {
            if w.dim() <= 1 {
                assert_eq!(d.abs().sum(Kind::Double).double_value(&[]), 0.0, "{name} moves");
                zeroed += 1;
                continue;
            }
            for i in 0..w.size()[0] {
                let (dn, wn) = (d.get(i).norm().double_value(&[]), w.get(i).norm().double_value(&[]));
                assert!((dn - wn).abs() <= 1e-5 * wn.max(1e-6), "{name}[{i}]: {dn} vs {wn}");
                filters += 1;
            }
        }
        assert!(filters > 100 && zeroed > 10, "{filters} filters, {zeroed} 1-d parameters");
        assert!(x.parts.iter().any(|(n, _)| n.contains(".bn") || n.contains("bn1")), "BN parameters are listed");
        // Two different directions from one seed, and the same two again.
        let conv = x.parts.iter().position(|(_, d)| d.dim() == 4).unwrap();
        assert!(!x.parts[conv].1.equal(&y.parts[conv].1));
        let again = directions(&model, 5, Dims::Two).unwrap();
        assert!(again[1].parts.iter().zip(&y.parts).all(|((_, a), (_, b))| a.equal(b)));
    }

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

    #[test]
    fn summary_numbers_order_a_steep_surface_above_a_flat_one() {
        let s = settings(9, Dims::Two);
        let bowl = |k: f64| -> Vec<f64> { s.points().iter().map(|(a, b)| 0.5 + k * (a * a + b * b)).collect() };
        let zeros = vec![0.0; 81];
        let (flat, steep) = (summarise(&s, &bowl(0.1), &zeros), summarise(&s, &bowl(10.0), &zeros));
        assert!(steep.sharpness > flat.sharpness && flat.sharpness > 0.0);
        assert_eq!((flat.convex_share, steep.convex_share), (1.0, 1.0));
        // A saddle is nowhere convex.
        let saddle: Vec<f64> = s.points().iter().map(|(a, b)| 5.0 + a * a - b * b).collect();
        assert_eq!(summarise(&s, &saddle, &zeros).convex_share, 0.0);
        assert_eq!(summarise(&s, &saddle, &zeros).centre_loss, 5.0);
        let line = settings(9, Dims::One);
        let v: Vec<f64> = line.points().iter().map(|(a, _)| 1.0 + a * a).collect();
        assert_eq!(summarise(&line, &v, &[0.0; 9]).convex_share, 1.0);
        assert!(LandscapeSettings { grid: 4, ..s.clone() }.check().unwrap_err().to_string().contains("odd"));
        assert!(LandscapeSettings { span: 0.0, ..s }.check().is_err());
    }
}
