//! Evaluation: a model's error rate on a data set's evaluation set, in evaluation mode, without
//! gradients, with every BN folded into its convolution (see [`crate::model::folded`]).

use super::runtime::{self, autocast, set_threads};
use crate::data::folder::TestCrops;
use crate::data::{DataConfig, Dataset};
use crate::model::{weights, Model, ModelSpec};
use crate::run::config::Precision;
use anyhow::{bail, Result};
use std::ops::Range;
use std::path::Path;
use tch::{Kind, Tensor};

/// What `reslab eval` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The model evaluated, its classifier sized to the data.
    pub spec: ModelSpec,
    /// Error rate (%).
    pub error: f64,
    /// Images in the evaluation set.
    pub images: usize,
}

/// The error of `spec` with the weights in `weights_file` on the evaluation set of `data`.
pub fn evaluate_weights(
    spec: &ModelSpec,
    weights_file: &Path,
    data: &DataConfig,
    threads: usize,
    precision: Precision,
) -> Result<Evaluation> {
    weights::ensure_exists(weights_file)?;
    set_threads(threads);
    let dataset = Dataset::open(data, runtime::device())?;
    evaluate_weights_on(spec, weights_file, &dataset, data.test_crops, precision)
}

/// [`evaluate_weights`] on a data set already open (several models on one data set read it once).
pub fn evaluate_weights_on(
    spec: &ModelSpec,
    weights_file: &Path,
    dataset: &Dataset,
    test_crops: TestCrops,
    precision: Precision,
) -> Result<Evaluation> {
    weights::ensure_exists(weights_file)?;
    let spec = model_for_data(spec, dataset)?;
    let mut model = Model::new(&spec, runtime::device())?;
    weights::load(&mut model.vs, weights_file)?;
    model.use_channels_last();
    let error = error_rate(&model, dataset, test_crops, precision)?;
    Ok(Evaluation { spec, error, images: dataset.num_eval() })
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
