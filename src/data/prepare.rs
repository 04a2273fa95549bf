//! From records to normalised float tensors on the training device.

use super::cifar::{Cifar10, Records, IMAGE_BYTES};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// How pixels are normalised before they reach the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Normalization {
    /// The paper's: scale to [0, 1], subtract the training set's per-pixel mean.
    PixelMean,
    /// torchvision's: scale to [0, 1], per channel subtract (0.485, 0.456, 0.406) and divide by
    /// (0.229, 0.224, 0.225); what the public pretrained CIFAR ResNets were trained with.
    Imagenet,
}

/// What the `test_err` column is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum EvalSet {
    /// Train on all training images, evaluate on the test set.
    Test,
    /// The paper's 45k/5k split: hold out the last tenth of the training images (5,000 of
    /// 50,000), train on the rest and evaluate on the held-out images.
    Holdout,
}

/// Training and evaluation images as float tensors (N, 3, 32, 32) on the device, normalised.
pub struct Prepared {
    pub train_images: Tensor,
    pub train_labels: Tensor,
    pub eval_images: Tensor,
    pub eval_labels: Tensor,
}

impl Prepared {
    pub fn new(data: &Cifar10, normalization: Normalization, eval_set: EvalSet, device: Device) -> Result<Prepared> {
        let (train, eval) = match eval_set {
            EvalSet::Test => (data.train.clone(), data.test.clone()),
            EvalSet::Holdout => {
                let keep = data.train.len() - data.train.len() / 10;
                let indices: Vec<usize> = (0..data.train.len()).collect();
                (data.train.select(&indices[..keep]), data.train.select(&indices[keep..]))
            }
        };
        if train.is_empty() || eval.is_empty() {
            bail!(
                "the data set has {} training and {} evaluation images; both must be non-empty",
                train.len(),
                eval.len()
            );
        }
        let (train_images, eval_images) = (to_unit_float(&train), to_unit_float(&eval));
        let (train_images, eval_images) = match normalization {
            Normalization::PixelMean => {
                let mean = train_images.mean_dim(0, true, Kind::Float);
                (train_images - &mean, eval_images - &mean)
            }
            Normalization::Imagenet => (imagenet_normalize(&train_images), imagenet_normalize(&eval_images)),
        };
        Ok(Prepared {
            train_images: train_images.to_device(device),
            train_labels: labels(&train).to_device(device),
            eval_images: eval_images.to_device(device),
            eval_labels: labels(&eval).to_device(device),
        })
    }

    pub fn num_train(&self) -> usize {
        self.train_labels.size()[0] as usize
    }
}

/// Pixels as floats in [0, 1], shape (N, 3, 32, 32).
fn to_unit_float(records: &Records) -> Tensor {
    let n = (records.images.len() / IMAGE_BYTES) as i64;
    Tensor::from_slice(&records.images).view([n, 3, 32, 32]).to_kind(Kind::Float) / 255.0
}

fn labels(records: &Records) -> Tensor {
    Tensor::from_slice(&records.labels).to_kind(Kind::Int64)
}

fn imagenet_normalize(images: &Tensor) -> Tensor {
    let mean = Tensor::from_slice(&[0.485f32, 0.456, 0.406]).view([1, 3, 1, 1]);
    let std = Tensor::from_slice(&[0.229f32, 0.224, 0.225]).view([1, 3, 1, 1]);
    (images - mean) / std
}
