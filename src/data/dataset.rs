//! The training stage's view of the data, whichever kind it is: training batches and the
//! evaluation set.

use super::folder::{BadImages, ImageFolder, TestCrops};
use super::{Cifar10, DataSource, EvalSet, Normalization, Prepared};
use crate::data::augment::{apply_crops, draw_crops, PAD};
use anyhow::Result;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use tch::{Device, Tensor};

/// Where the data comes from and how it is prepared: a run config's `[data]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// `embedded` (the CIFAR-10 sample compiled into the binary), CIFAR-10's binary version
    /// (folder or .tar.gz), or an image folder with `train/` and `val/`.
    pub source: DataSource,
    /// How pixels are normalised (default `pixel-mean`, the paper's).
    #[serde(default = "default_normalization")]
    pub normalization: Normalization,
    /// What `test_err` is measured on (default `test`; `holdout` is the paper's 45k/5k split).
    #[serde(default = "default_eval_set")]
    pub eval_set: EvalSet,
    /// The paper's augmentation (CIFAR: pad 4, random crop, flip; folders: scale augmentation).
    #[serde(default = "crate::util::yes")]
    pub augment: bool,
    /// Image folders: the network's input size (the paper's 224; e.g. 64 or 32 on a CPU).
    #[serde(default = "default_input_size")]
    pub input_size: u32,
    /// Image folders: skip or reject files that do not decode (default `skip`).
    #[serde(default)]
    pub bad_images: BadImages,
    /// Image folders: centre crop or the paper's 10-crop testing (default `center`).
    #[serde(default)]
    pub test_crops: TestCrops,
}

fn default_normalization() -> Normalization {
    Normalization::PixelMean
}
fn default_eval_set() -> EvalSet {
    EvalSet::Test
}
fn default_input_size() -> u32 {
    224
}

impl DataConfig {
    /// The defaults for `source`: pixel mean, test set, augmentation on, 224-pixel input.
    pub fn new(source: DataSource) -> DataConfig {
        DataConfig {
            source,
            normalization: default_normalization(),
            eval_set: default_eval_set(),
            augment: true,
            input_size: default_input_size(),
            bad_images: BadImages::default(),
            test_crops: TestCrops::default(),
        }
    }
}

impl DataConfig {
    /// The side of the square images a network sees in this data: an image folder's input size,
    /// CIFAR-10's 32 pixels (a folder no longer there is taken for CIFAR-10).
    pub fn image_size(&self) -> u32 {
        match &self.source {
            DataSource::Path(path) if ImageFolder::is_image_folder(path) => self.input_size,
            _ => super::cifar::IMAGE_SIDE,
        }
    }

    /// Checks that the data is where the configuration says, in its layout, without reading it:
    /// before a probe or a run directory, so bad data is one line at once.
    pub fn ensure_present(&self) -> Result<()> {
        match &self.source {
            DataSource::Embedded => Ok(()),
            DataSource::Path(path) if ImageFolder::is_image_folder(path) => ImageFolder::ensure_layout(path),
            DataSource::Path(path) => Cifar10::ensure_files(path),
        }
    }
}

/// An opened data set: CIFAR-10 prepared as tensors, or an image folder.
pub enum Dataset {
    /// CIFAR-10, normalised and on the device.
    Cifar(Prepared),
    /// An image folder (`train/` and `val/` of class folders), decoded in memory.
    Folder(ImageFolder),
}

impl Dataset {
    /// Loads the data `config` names: an image folder if the path has `train/`, else CIFAR-10.
    pub fn open(config: &DataConfig, device: Device) -> Result<Dataset> {
        if let DataSource::Path(path) = &config.source {
            if ImageFolder::is_image_folder(path) {
                return Ok(Dataset::Folder(ImageFolder::open(path, config.input_size, config.bad_images)?));
            }
        }
        let data = Cifar10::load(&config.source)?;
        Ok(Dataset::Cifar(Prepared::new(&data, config.normalization, config.eval_set, device)?))
    }

    /// Images in the training set.
    pub fn num_train(&self) -> usize {
        match self {
            Dataset::Cifar(p) => p.num_train(),
            Dataset::Folder(f) => f.num_train(),
        }
    }

    /// Classes: 10 for CIFAR-10, the class folders for an image folder.
    pub fn num_classes(&self) -> i64 {
        match self {
            Dataset::Cifar(_) => 10,
            Dataset::Folder(f) => f.classes.len() as i64,
        }
    }

    /// Images in the evaluation set.
    pub fn num_eval(&self) -> usize {
        match self {
            Dataset::Cifar(p) => p.eval_labels.size()[0] as usize,
            Dataset::Folder(f) => f.num_val(),
        }
    }

    /// Images `start..start + len` of the evaluation set (center crops for image folders) and their
    /// labels, on `device`.
    pub fn eval_batch(&self, start: usize, len: usize, device: Device) -> (Tensor, Tensor) {
        match self {
            Dataset::Cifar(p) => {
                let (start, len) = (start as i64, len as i64);
                (p.eval_images.narrow(0, start, len), p.eval_labels.narrow(0, start, len))
            }
            Dataset::Folder(f) => {
                let (images, labels) = f.val_batch(start, len, 0);
                (images.to_device(device), labels.to_device(device))
            }
        }
    }

    /// The training batch of `indices`, augmented when `augment`, on `device`.
    pub fn train_batch(&self, indices: &[i64], augment: bool, rng: &mut impl Rng, device: Device) -> (Tensor, Tensor) {
        self.train_shard(indices, 0..indices.len(), augment, rng, device)
    }

    /// The images `shard` of the training batch of `indices`: exactly those images of
    /// [`Dataset::train_batch`] (the random draws of the whole batch are made, and the shard's
    /// used), so data parallel ranks together see the batch one process would.
    pub fn train_shard(
        &self,
        indices: &[i64],
        shard: Range<usize>,
        augment: bool,
        rng: &mut impl Rng,
        device: Device,
    ) -> (Tensor, Tensor) {
        match self {
            Dataset::Cifar(p) => {
                let crops = augment.then(|| draw_crops(indices.len() as i64, PAD, rng));
                let selected = Tensor::from_slice(&indices[shard.clone()]).to_device(device);
                let images = p.train_images.index_select(0, &selected);
                let labels = p.train_labels.index_select(0, &selected);
                let images = match crops {
                    Some(crops) => apply_crops(&images, PAD, &crops[shard]),
                    None => images,
                };
                (images, labels)
            }
            Dataset::Folder(f) => {
                let (images, labels) = f.train_shard(indices, shard, rng);
                (images.to_device(device), labels.to_device(device))
            }
        }
    }
}
