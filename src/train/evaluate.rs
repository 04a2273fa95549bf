//! Evaluation: a model's error rate on a data set's evaluation set, in evaluation mode, without
//! gradients, with every BN folded into its convolution (see [`crate::model::folded`]).

use super::runtime::{autocast, set_threads};
use crate::data::folder::TestCrops;
use crate::data::{DataConfig, Dataset};
use crate::model::weights::{self, Expected};
use crate::model::Precision;
use crate::model::{Model, ModelSpec};
use crate::run::config::DeviceChoice;
use crate::run::{RunConfig, RunDir};
use anyhow::{bail, Result};
use std::ops::Range;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// What `reslab eval` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The model evaluated, its classifier sized to the data.
    pub spec: ModelSpec,
    /// Error rate (%).
    pub error: f64,
    /// Images in the evaluation set.
    pub images: usize,
    /// The precision of the forward passes.
    pub precision: Precision,
    /// The precision the weights were trained in (their run's test errors were measured in it),
    /// from their metadata or their run's configuration; `None` where neither says.
    pub trained_in: Option<Precision>,
}

impl Evaluation {
    /// What `eval` prints: the precision line, then the error of the weights in `weights` on `data`.
    pub fn text(&self, data: &impl std::fmt::Display, weights: &Path) -> String {
        format!(
            "precision: {}\n{}: test error {:.2}% on {} images of {data} ({})\n",
            self.precision_note(),
            self.spec,
            self.error,
            self.images,
            weights.display()
        )
    }

    /// Which precision the evaluation ran in and which the weights trained in: a run's own test
    /// errors were measured in its training precision, so another gives slightly other numbers.
    pub fn precision_note(&self) -> String {
        let evaluated = self.precision;
        match self.trained_in {
            Some(trained) if trained == evaluated => format!("{evaluated}, as the weights were trained"),
            Some(trained) => format!(
                "{evaluated}; the weights were trained in {trained}, which their run's test errors were measured in \
                 (--precision {trained} repeats those; {evaluated} differs slightly)"
            ),
            None => format!("{evaluated}; the precision the weights were trained in is not recorded"),
        }
    }
}

/// The error of `spec` with the weights in `weights_file` on the evaluation set of `data`.
pub fn evaluate_weights(
    spec: &ModelSpec,
    weights_file: &Path,
    data: &DataConfig,
    threads: usize,
    precision: Precision,
    device: DeviceChoice,
) -> Result<Evaluation> {
    let device = device.resolve()?;
    // Another network's weights are refused before the data is read (the classes come with it).
    weights::check(weights_file, spec, Expected::Flags)?;
    set_threads(threads);
    let dataset = Dataset::open(data, device)?;
    evaluate_weights_on(spec, weights_file, &dataset, data.test_crops, precision, device)
}

/// [`evaluate_weights`] on a data set already open (several models on one data set read it once).
pub fn evaluate_weights_on(
    spec: &ModelSpec,
    weights_file: &Path,
    dataset: &Dataset,
    test_crops: TestCrops,
    precision: Precision,
    device: Device,
) -> Result<Evaluation> {
    weights::ensure_exists(weights_file)?;
    let spec = model_for_data(spec, dataset)?;
    let mut model = Model::new(&spec, device)?;
    let metadata = weights::load(&mut model, weights_file, Expected::Flags)?;
    model.use_channels_last();
    let error = error_rate(&model, dataset, test_crops, precision)?;
    let trained_in = match metadata.and_then(|m| m.run) {
        Some(origin) => Some(origin.precision),
        None => precision_of_run_beside(weights_file),
    };
    Ok(Evaluation { spec, error, images: dataset.num_eval(), precision, trained_in })
}

/// The training precision of the run whose weights file `weights_file` is (its final or initial
/// weights, in its directory), for a file without metadata (a reslab before metadata made it).
fn precision_of_run_beside(weights_file: &Path) -> Option<Precision> {
    let run = RunDir::new(weights_file.parent()?);
    if weights_file != run.weights() && weights_file != run.init_weights() {
        return None;
    }
    RunConfig::load(&run.config()).ok().map(|config| config.precision)
}

/// The model for `data`: its classifier sized to the data's classes unless the config fixes it.
pub fn model_for_data(spec: &ModelSpec, data: &Dataset) -> Result<ModelSpec> {
    let classes = data.num_classes();
    match spec.num_classes {
        Some(n) if n != classes => bail!("the model has {n} outputs but the data has {classes} classes"),
        _ => Ok(ModelSpec { num_classes: Some(classes), ..spec.clone() }),
    }
}

/// Images per forward pass when evaluating.
pub const EVAL_BATCH: usize = 500;

/// Error rate (%) of `model` on the evaluation set of `data`, its forward passes in `precision`;
/// image folders average the softmax over `test_crops`.
pub fn error_rate(model: &Model, data: &Dataset, test_crops: TestCrops, precision: Precision) -> Result<f64> {
    let n = data.num_eval();
    Ok(100.0 * count_errors(model, data, 0..n, test_crops, precision)? as f64 / n as f64)
}

/// How many of the evaluation images `range` `model` misclassifies (what data parallel ranks
/// each count on their share of the evaluation set, to be summed).
pub fn count_errors(
    model: &Model,
    data: &Dataset,
    range: Range<usize>,
    test_crops: TestCrops,
    precision: Precision,
) -> Result<i64> {
    let device = model.vs.device();
    let end = range.end;
    let _autocast = autocast(precision, device)?;
    let folded = model.fold_batch_norm(precision == Precision::Fp32);
    let wrong: i64 = tch::no_grad(|| {
        range
            .step_by(EVAL_BATCH)
            .map(|start| {
                let len = EVAL_BATCH.min(end - start);
                match data {
                    Dataset::Cifar(p) => {
                        let (start, len) = (start as i64, len as i64);
                        let logits = folded.forward(&p.eval_images.narrow(0, start, len));
                        count_wrong(&logits, &p.eval_labels.narrow(0, start, len))
                    }
                    Dataset::Folder(f) => {
                        let crops = match test_crops {
                            TestCrops::Center => 1,
                            TestCrops::TenCrop => 10,
                        };
                        let classes = f.classes.len() as i64;
                        let mut probabilities = Tensor::zeros([len as i64, classes], (Kind::Float, device));
                        let mut labels = Tensor::zeros([len as i64], (Kind::Int64, device));
                        for crop in 0..crops {
                            let (images, l) = f.val_batch(start, len, crop);
                            probabilities += folded.forward(&images.to_device(device)).softmax(-1, Kind::Float);
                            labels = l.to_device(device);
                        }
                        count_wrong(&probabilities, &labels)
                    }
                }
            })
            .sum()
    });
    Ok(wrong)
}

/// Images whose highest score is not their label.
pub fn count_wrong(scores: &Tensor, labels: &Tensor) -> i64 {
    scores.argmax(-1, false).ne_tensor(labels).sum(Kind::Int64).int64_value(&[])
}
