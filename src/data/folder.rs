//! An image-folder data set for the ImageNet family: `ROOT/train/<class>/*.{jpg,jpeg,png}` and
//! `ROOT/val/<class>/...`, classes in name order. Images are decoded once, in parallel, and kept
//! in memory at the largest size the augmentation needs; batches are resized and cropped per image
//! on all cores.
//!
//! The paper's ImageNet augmentation (Section 3.4), scaled by `input / 224` so small folders train
//! at e.g. 64 or 32 pixels: training images are resized so the shorter side is a random size in
//! [256, 480], randomly cropped to 224x224 and flipped with probability 1/2; the per-pixel mean
//! (of the training set's centre crops) is subtracted. Testing resizes the shorter side to 256 and
//! takes the centre 224x224 crop, or the paper's 10 crops (corners, centre, and their mirrors).

use anyhow::{bail, Context, Result};
use image::imageops::{self, FilterType};
use image::RgbImage;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];
const SCALE_MIN: f64 = 256.0;
const SCALE_MAX: f64 = 480.0;
const CROP: f64 = 224.0;

/// What to do with a file that does not decode as an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BadImages {
    /// Skip it and report how many were skipped.
    #[default]
    Skip,
    /// Stop with an error naming the file.
    Error,
}

/// How evaluation crops are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TestCrops {
    /// Shorter side to 256 (scaled), centre crop.
    #[default]
    Center,
    /// The paper's 10-crop testing: four corners and the centre, and their mirrors; softmax averaged.
    TenCrop,
}

/// One split of a folder: images at stored size, labels.
struct Split {
    images: Vec<RgbImage>,
    labels: Vec<i64>,
}

/// An image folder (`ROOT/train/<class>/*.jpg`, `ROOT/val/<class>/*.jpg`), decoded into memory.
pub struct ImageFolder {
    /// Class names: the folders in `train/`, sorted; a label is an index into these.
    pub classes: Vec<String>,
    train: Split,
    val: Split,
    /// Network input size (the paper's 224).
    pub input: u32,
    /// Per-pixel mean of the training centre crops (3, input, input), subtracted from every batch.
    pub mean: Tensor,
    /// Files skipped because they did not decode (with `BadImages::Skip`).
    pub skipped: usize,
}

impl ImageFolder {
    /// Whether `root` looks like an image folder (has `train/`) rather than CIFAR-10.
    pub fn is_image_folder(root: &Path) -> bool {
        root.join("train").is_dir()
    }

    /// Checks that `root` has `train/` and `val/`, without reading them.
    pub fn ensure_layout(root: &Path) -> Result<()> {
        for dir in [root.join("train"), root.join("val")] {
            if !dir.is_dir() {
                bail!(
                    "image folder {}: {} is missing; expected ROOT/train/<class>/*.jpg and ROOT/val/<class>/*.jpg",
                    root.display(),
                    dir.display()
                );
            }
        }
        Ok(())
    }

    /// Decodes every image of `root`'s `train/` and `val/` for `input` pixels; computes the mean.
    pub fn open(root: &Path, input: u32, bad: BadImages) -> Result<ImageFolder> {
        if !(8..=1024).contains(&input) {
            bail!("input size {input} is out of range; expected 8 to 1024 pixels (the paper's 224)");
        }
        Self::ensure_layout(root)?;
        let train_dir = root.join("train");
        let val_dir = root.join("val");
        let classes = class_names(&train_dir)?;
        if classes.len() < 2 {
            bail!(
                "image folder {}: found {} class folder(s) in train/; expected at least 2",
                root.display(),
                classes.len()
            );
        }
        let stored_short_side = (SCALE_MAX * input as f64 / CROP).round() as u32;
        let mut skipped = 0;
        let mut load = |dir: &Path| -> Result<Split> {
            let files = list_files(dir, &classes)?;
            let decoded = decode_all(&files, stored_short_side);
            let mut split = Split { images: Vec::new(), labels: Vec::new() };
            for ((path, label), image) in files.into_iter().zip(decoded) {
                match image {
                    Ok(image) => {
                        split.images.push(image);
                        split.labels.push(label);
                    }
                    Err(_) if bad == BadImages::Skip => skipped += 1,
                    Err(e) => bail!(
                        "{}: not a readable image ({e}); pass --bad-images skip to skip such files",
                        path.display()
                    ),
                }
            }
            if split.images.is_empty() {
                bail!("{}: no readable images (.jpg, .jpeg, .png) in its class folders", dir.display());
            }
            Ok(split)
        };
        let train = load(&train_dir)?;
        let val = load(&val_dir)?;
        if skipped > 0 {
            crate::eprint_line!("warning: skipped {skipped} unreadable or non-image files in {}", root.display());
        }
        let mut folder = ImageFolder {
            classes,
            train,
            val,
            input,
            mean: Tensor::zeros([3, input as i64, input as i64], (Kind::Float, tch::Device::Cpu)),
            skipped,
        };
        let centre_crops = parallel_map(folder.train.images.len(), |i| test_crop(&folder.train.images[i], input, 0));
        folder.mean = stack(&centre_crops).mean_dim(0, false, Kind::Float);
        Ok(folder)
    }

    /// Images in `train/` (readable ones).
    pub fn num_train(&self) -> usize {
        self.train.images.len()
    }

    /// Images in `val/` (readable ones).
    pub fn num_val(&self) -> usize {
        self.val.images.len()
    }

    /// An augmented, mean-subtracted training batch (N, 3, input, input) and its labels.
    pub fn train_batch(&self, indices: &[i64], rng: &mut impl Rng) -> (Tensor, Tensor) {
        self.train_shard(indices, 0..indices.len(), rng)
    }

    /// The images `shard` of [`ImageFolder::train_batch`]: the same random draws, only the
    /// shard's images decoded.
    pub fn train_shard(&self, indices: &[i64], shard: std::ops::Range<usize>, rng: &mut impl Rng) -> (Tensor, Tensor) {
        let input = self.input as f64;
        // Draw every random number up front, in order, so the batch depends only on the rng.
        let draws: Vec<(u32, f64, f64, bool)> = indices
            .iter()
            .map(|_| {
                let short = (rng.gen_range(SCALE_MIN..=SCALE_MAX) * input / CROP).round() as u32;
                (short, rng.gen::<f64>(), rng.gen::<f64>(), rng.gen_bool(0.5))
            })
            .collect();
        let (draws, indices) = (&draws[shard.clone()], &indices[shard]);
        let (stored, size) = (&self.train.images, self.input);
        let crops = parallel_map(indices.len(), |i| {
            let (short, fx, fy, flip) = draws[i];
            let resized = resize_short_side(&stored[indices[i] as usize], short.max(size));
            let (w, h) = resized.dimensions();
            let x = ((w - size) as f64 * fx) as u32;
            let y = ((h - size) as f64 * fy) as u32;
            let crop = imageops::crop_imm(&resized, x, y, size, size).to_image();
            if flip {
                imageops::flip_horizontal(&crop)
            } else {
                crop
            }
        });
        let labels: Vec<i64> = indices.iter().map(|&i| self.train.labels[i as usize]).collect();
        (stack(&crops) - &self.mean, Tensor::from_slice(&labels))
    }

    /// Validation crops: crop `k` of every image in `range` (k = 0: centre; 1-4: corners;
    /// 5-9: mirrors of 0-4), mean-subtracted, and the labels.
    pub fn val_batch(&self, start: usize, len: usize, crop: usize) -> (Tensor, Tensor) {
        let (stored, size) = (&self.val.images, self.input);
        let crops = parallel_map(len, |i| test_crop(&stored[start + i], size, crop));
        (stack(&crops) - &self.mean, Tensor::from_slice(&self.val.labels[start..start + len]))
    }
}

/// Test crop `k` of `image` at `size` (see [`ImageFolder::val_batch`]).
fn test_crop(image: &RgbImage, size: u32, k: usize) -> RgbImage {
    let short = (SCALE_MIN * size as f64 / CROP).round() as u32;
    let resized = resize_short_side(image, short.max(size));
    let (w, h) = resized.dimensions();
    let (x, y) = match k % 5 {
        0 => ((w - size) / 2, (h - size) / 2),
        1 => (0, 0),
        2 => (w - size, 0),
        3 => (0, h - size),
        _ => (w - size, h - size),
    };
    let crop = imageops::crop_imm(&resized, x, y, size, size).to_image();
    if k >= 5 {
        imageops::flip_horizontal(&crop)
    } else {
        crop
    }
}

fn class_names(train_dir: &Path) -> Result<Vec<String>> {
    let mut classes = Vec::new();
    for entry in std::fs::read_dir(train_dir).with_context(|| format!("reading {}", train_dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            classes.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    classes.sort();
    Ok(classes)
}

/// Every file of `dir/<class>/` for the known classes, with its label; a class folder of `dir`
/// that train/ does not have is an error.
fn list_files(dir: &Path, classes: &[String]) -> Result<Vec<(PathBuf, i64)>> {
    for name in class_names(dir)? {
        if !classes.contains(&name) {
            bail!("{}: class folder '{name}' is not among the training classes", dir.display());
        }
    }
    let mut files = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let class_dir = dir.join(class);
        if !class_dir.is_dir() {
            continue;
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&class_dir)
            .with_context(|| format!("reading {}", class_dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        entries.sort();
        files.extend(entries.into_iter().map(|p| (p, label as i64)));
    }
    Ok(files)
}

/// Decodes (and shrinks to `short_side`, if larger) every file on all cores. Files with other
/// extensions count as unreadable.
fn decode_all(files: &[(PathBuf, i64)], short_side: u32) -> Vec<Result<RgbImage>> {
    parallel_map(files.len(), |i| {
        let path = &files[i].0;
        let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
        if !EXTENSIONS.contains(&extension.as_str()) {
            bail!("extension is not one of {EXTENSIONS:?}");
        }
        let image = image::open(path).map_err(|e| anyhow::anyhow!("{e}"))?.to_rgb8();
        let (w, h) = image.dimensions();
        Ok(if w.min(h) > short_side { resize_short_side(&image, short_side) } else { image })
    })
}

fn resize_short_side(image: &RgbImage, short: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    let scale = short as f64 / w.min(h) as f64;
    let (nw, nh) = (((w as f64 * scale).round() as u32).max(short), ((h as f64 * scale).round() as u32).max(short));
    if (nw, nh) == (w, h) {
        return image.clone();
    }
    imageops::resize(image, nw, nh, FilterType::Triangle)
}

/// (N, 3, H, W) floats in [0, 1].
fn stack(images: &[RgbImage]) -> Tensor {
    Tensor::stack(&images.iter().map(to_tensor).collect::<Vec<_>>(), 0)
}

/// (3, H, W) floats in [0, 1].
fn to_tensor(image: &RgbImage) -> Tensor {
    let (w, h) = image.dimensions();
    Tensor::from_slice(image.as_raw()).view([h as i64, w as i64, 3]).permute([2, 0, 1]).to_kind(Kind::Float) / 255.0
}

/// `f(0..n)` on all cores, results in order.
fn parallel_map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).min(n.max(1));
    let chunk = n.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|start| {
                let f = &f;
                scope.spawn(move || (start..(start + chunk).min(n)).map(f).collect::<Vec<T>>())
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a worker thread panicked")).collect()
    })
}
