//! One run's surface and path, and every run's: the run's directions and training images, its
//! points scored, and the finished result kept beside the charts so that it is not computed again.

use super::direction::{load_directions, normalised, parameters, raw_directions, save_directions, Direction};
use super::scoring::{scores, BnStatistics, NetObjective, Score};
use super::summary::{summarise, Summary};
use super::LandscapeSettings;
use crate::analysis::run_label;
use crate::data::batches::{rng, Stream};
use crate::data::{DataConfig, Dataset};
use crate::model::{Kind as NetKind, Model};
use crate::run::{InitialWeights, RunConfig, RunDir};
use crate::train::evaluate::model_for_data;
use crate::util::fs::write_file;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

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
        let name = format!("{}-landscape.json", run_label(dir));
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
