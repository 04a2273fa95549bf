//! From records to normalised float tensors on the training device.

use super::cifar::{Cifar10, Records, IMAGE_BYTES};
use crate::util::fs::write_atomically;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::path::Path;
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
    /// Training images (N, 3, 32, 32), normalised.
    pub train_images: Tensor,
    /// Training labels (N), int64.
    pub train_labels: Tensor,
    /// Evaluation images (test set or held-out tenth), normalised as the training images.
    pub eval_images: Tensor,
    /// Evaluation labels, int64.
    pub eval_labels: Tensor,
}

impl Prepared {
    /// Splits, scales and normalises `data` onto `device`; an error if either split is empty.
    pub fn new(data: &Cifar10, normalization: Normalization, eval_set: EvalSet, device: Device) -> Result<Prepared> {
        // Borrowed for the test set: the training records are 150 MB, not worth copying.
        let (train, eval): (Cow<Records>, Cow<Records>) = match eval_set {
            EvalSet::Test => (Cow::Borrowed(&data.train), Cow::Borrowed(&data.test)),
            EvalSet::Holdout => {
                let keep = data.train.len() - data.train.len() / 10;
                let indices: Vec<usize> = (0..data.train.len()).collect();
                (Cow::Owned(data.train.select(&indices[..keep])), Cow::Owned(data.train.select(&indices[keep..])))
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
                let mean = pixel_mean(&train, &train_images, data.stats_cache.as_deref());
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

    /// Images in the training set.
    pub fn num_train(&self) -> usize {
        self.train_labels.size()[0] as usize
    }
}

/// Pixels as floats in [0, 1], shape (N, 3, 32, 32).
pub fn to_unit_float(records: &Records) -> Tensor {
    let n = (records.images.len() / IMAGE_BYTES) as i64;
    Tensor::from_slice(&records.images).view([n, 3, 32, 32]).to_kind(Kind::Float) / 255.0
}

/// The per-pixel mean (1, 3, 32, 32) of `images`, from the cache at `cache` when it was computed
/// from exactly these records (SHA-256 of their bytes), else computed and cached there. Next to
/// read-only data no cache is kept.
pub fn pixel_mean(records: &Records, images: &Tensor, cache: Option<&Path>) -> Tensor {
    let mut hasher = Sha256::new();
    hasher.update(&records.images);
    hasher.update(&records.labels);
    let source = format!("{:x}", hasher.finalize());
    if let Some(cached) = cache.and_then(|path| read_cached_mean(path, &source)) {
        return cached;
    }
    let mean = images.mean_dim(0, true, Kind::Float);
    // Root can write anywhere; a folder without write permission bits is meant to stay untouched.
    let writable =
        |path: &Path| path.parent().and_then(|d| d.metadata().ok()).is_some_and(|m| !m.permissions().readonly());
    if let Some(path) = cache.filter(|p| writable(p)) {
        let tensors = [
            ("mean".to_string(), mean.shallow_clone()),
            ("source_sha256".to_string(), Tensor::from_slice(source.as_bytes())),
        ];
        let _ =
            write_atomically(path, |tmp| Tensor::write_safetensors(&tensors, tmp).map_err(|e| anyhow::anyhow!("{e}")));
    }
    mean
}

fn read_cached_mean(path: &Path, source: &str) -> Option<Tensor> {
    let tensors: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(path).ok()?.into_iter().collect();
    let stored = Vec::<u8>::try_from(tensors.get("source_sha256")?).ok()?;
    let mean = tensors.get("mean")?;
    (stored == source.as_bytes() && mean.size() == [1, 3, 32, 32]).then(|| mean.shallow_clone())
}

fn labels(records: &Records) -> Tensor {
    Tensor::from_slice(&records.labels).to_kind(Kind::Int64)
}

fn imagenet_normalize(images: &Tensor) -> Tensor {
    let mean = Tensor::from_slice(&[0.485f32, 0.456, 0.406]).view([1, 3, 1, 1]);
    let std = Tensor::from_slice(&[0.229f32, 0.224, 0.225]).view([1, 3, 1, 1]);
    (images - mean) / std
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pixel_mean_is_cached_with_the_checksum_of_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("stats.safetensors");
        let mut records = Records { images: vec![10; 2 * IMAGE_BYTES], labels: vec![1, 2] };
        let images = to_unit_float(&records);
        let mean = pixel_mean(&records, &images, Some(&cache));
        assert!(cache.is_file());
        assert!((mean.mean(Kind::Float).double_value(&[]) - 10.0 / 255.0).abs() < 1e-6);
        // Same records: read from the cache (prove it by planting a different mean in it).
        let planted = [
            ("mean".to_string(), Tensor::zeros([1, 3, 32, 32], (Kind::Float, tch::Device::Cpu))),
            (
                "source_sha256".to_string(),
                Tensor::read_safetensors(&cache).unwrap().into_iter().find(|(n, _)| n == "source_sha256").unwrap().1,
            ),
        ];
        Tensor::write_safetensors(&planted, &cache).unwrap();
        assert_eq!(pixel_mean(&records, &images, Some(&cache)).sum(Kind::Float).double_value(&[]), 0.0);
        // Other records: the cache does not apply and is recomputed.
        records.images[0] = 200;
        let images = to_unit_float(&records);
        assert!(pixel_mean(&records, &images, Some(&cache)).sum(Kind::Float).double_value(&[]) > 0.0);
    }
}
