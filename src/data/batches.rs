//! The order training images are visited in: a fresh shuffle each epoch, a batch a function of
//! (seed, iteration) alone, so a run can be replayed or resumed at any iteration.

use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Independent random streams derived from one seed.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    /// The per-epoch shuffle of the training images.
    Shuffle = 1,
    /// The per-iteration crops and flips of the augmentation.
    Augment = 2,
}

/// The generator of `stream` at position `index` (an epoch or an iteration).
pub fn rng(seed: u64, stream: Stream, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((stream as u64) << 56));
    rng.set_stream(index);
    rng
}

/// Batches of `batch_size` indices into `num_images` images; the last partial batch of each
/// epoch is dropped so every batch has the same size.
pub struct BatchOrder {
    num_images: usize,
    batch_size: usize,
    seed: u64,
    epoch_order: Option<(usize, Vec<i64>)>,
}

impl BatchOrder {
    /// The order over `num_images` images; an error if the batch size is 0 or exceeds them.
    pub fn new(num_images: usize, batch_size: usize, seed: u64) -> Result<BatchOrder> {
        if batch_size == 0 {
            bail!("batch size must be at least 1");
        }
        if num_images < batch_size {
            bail!("the training set has {num_images} images, fewer than the batch size {batch_size}");
        }
        Ok(BatchOrder { num_images, batch_size, seed, epoch_order: None })
    }

    /// Full batches per epoch (the remainder is dropped).
    pub fn batches_per_epoch(&self) -> usize {
        self.num_images / self.batch_size
    }

    /// Epochs completed after `iterations` iterations (fractional).
    pub fn epoch(&self, iterations: usize) -> f64 {
        iterations as f64 / self.batches_per_epoch() as f64
    }

    /// The image indices of the batch at `iteration` (0-based).
    pub fn batch(&mut self, iteration: usize) -> &[i64] {
        let epoch = iteration / self.batches_per_epoch();
        if self.epoch_order.as_ref().map(|(e, _)| *e) != Some(epoch) {
            let mut order: Vec<i64> = (0..self.num_images as i64).collect();
            order.shuffle(&mut rng(self.seed, Stream::Shuffle, epoch as u64));
            self.epoch_order = Some((epoch, order));
        }
        let start = (iteration % self.batches_per_epoch()) * self.batch_size;
        &self.epoch_order.as_ref().expect("set above").1[start..start + self.batch_size]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_visits_every_image_at_most_once_and_epochs_differ() {
        let mut order = BatchOrder::new(10, 3, 5).unwrap();
        assert_eq!(order.batches_per_epoch(), 3);
        let epoch0: Vec<i64> = (0..3).flat_map(|i| order.batch(i).to_vec()).collect();
        let mut sorted = epoch0.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 9);
        let epoch1: Vec<i64> = (3..6).flat_map(|i| order.batch(i).to_vec()).collect();
        assert_ne!(epoch0, epoch1);
    }

    #[test]
    fn a_batch_depends_only_on_seed_and_iteration() {
        let mut a = BatchOrder::new(100, 8, 1).unwrap();
        let mut b = BatchOrder::new(100, 8, 1).unwrap();
        let late = a.batch(40).to_vec();
        for i in 0..40 {
            b.batch(i);
        }
        assert_eq!(b.batch(40), late.as_slice());
        assert_ne!(BatchOrder::new(100, 8, 2).unwrap().batch(40), late.as_slice());
    }

    #[test]
    fn too_few_images_is_an_error() {
        let err = BatchOrder::new(5, 128, 0).err().unwrap().to_string();
        assert!(err.contains("5 images") && err.contains("128"), "{err}");
    }
}
