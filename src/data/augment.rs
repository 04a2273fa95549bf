//! The paper's CIFAR augmentation on whole batches: pad 4 pixels with zeros on each side, take a
//! random 32x32 crop, flip horizontally with probability 1/2. Zero padding happens after
//! normalisation (as in fb.resnet.torch), so the border is the mean image, not black.
//!
//! Every random draw comes from the `rng` passed in, never from a global generator, so a batch
//! is a pure function of (seed, iteration): runs are reproducible and resumable.

use rand::Rng;
use tch::{Kind, Tensor};

/// Padding on each side before the random crop.
pub const PAD: i64 = 4;

/// Random crop and flip of `images` (N, C, H, W), as one gather: each output pixel is read from
/// the padded batch at its image's crop offset, with the column index mirrored for flipped images.
pub fn crop_and_flip(images: &Tensor, pad: i64, rng: &mut impl Rng) -> Tensor {
    let (n, _c, h, w) = images.size4().expect("a batch of images (N, C, H, W)");
    let device = images.device();
    let padded = images.constant_pad_nd([pad, pad, pad, pad]);
    let mut row_offsets = Vec::with_capacity(n as usize);
    let mut col_starts = Vec::with_capacity(n as usize);
    let mut col_steps = Vec::with_capacity(n as usize);
    for _ in 0..n {
        row_offsets.push(rng.gen_range(0..=2 * pad));
        let col_offset = rng.gen_range(0..=2 * pad);
        if rng.gen_bool(0.5) {
            col_starts.push(col_offset + w - 1);
            col_steps.push(-1);
        } else {
            col_starts.push(col_offset);
            col_steps.push(1);
        }
    }
    let to_column = |values: Vec<i64>| Tensor::from_slice(&values).to(device).view([n, 1]);
    let rows = to_column(row_offsets) + Tensor::arange(h, (Kind::Int64, device)).view([1, h]);
    let cols = to_column(col_starts) + to_column(col_steps) * Tensor::arange(w, (Kind::Int64, device)).view([1, w]);
    let batch = Tensor::arange(n, (Kind::Int64, device)).view([n, 1, 1]);
    // Advanced indices separated by a full slice put the index dimensions first: (N, H, W, C).
    let gathered = padded.index(&[Some(batch), None, Some(rows.view([n, h, 1])), Some(cols.view([n, 1, w]))]);
    gathered.permute([0, 3, 1, 2]).contiguous()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn numbered_batch(n: i64) -> Tensor {
        Tensor::arange(n * 2 * 5 * 5, (Kind::Float, tch::Device::Cpu)).view([n, 2, 5, 5]) + 1.0
    }

    #[test]
    fn every_crop_is_a_shifted_or_mirrored_window_of_the_padded_image() {
        let images = numbered_batch(64);
        let out = crop_and_flip(&images, 2, &mut ChaCha8Rng::seed_from_u64(7));
        assert_eq!(out.size(), vec![64, 2, 5, 5]);
        let padded = images.constant_pad_nd([2, 2, 2, 2]);
        let (mut flipped, mut offsets) = (0, std::collections::HashSet::new());
        for i in 0..64 {
            let found = (0..=4).flat_map(|dy| (0..=4).map(move |dx| (dy, dx))).find_map(|(dy, dx)| {
                let window = padded.get(i).narrow(1, dy, 5).narrow(2, dx, 5);
                if window.equal(&out.get(i)) {
                    Some((dy, dx, false))
                } else if window.flip([2]).equal(&out.get(i)) {
                    Some((dy, dx, true))
                } else {
                    None
                }
            });
            let (dy, dx, flip) = found.expect("crop is a window of the padded image");
            flipped += flip as usize;
            offsets.insert((dy, dx));
        }
        assert!(flipped > 10 && flipped < 54, "about half the images are flipped, got {flipped}");
        assert!(offsets.len() > 10, "offsets vary, got {offsets:?}");
        assert!(
            offsets.contains(&(0, 0)) || offsets.iter().any(|&(y, x)| y == 4 || x == 4),
            "extreme offsets reachable"
        );
    }

    #[test]
    fn same_seed_gives_same_batch() {
        let images = numbered_batch(8);
        let a = crop_and_flip(&images, 4, &mut ChaCha8Rng::seed_from_u64(1));
        let b = crop_and_flip(&images, 4, &mut ChaCha8Rng::seed_from_u64(1));
        let c = crop_and_flip(&images, 4, &mut ChaCha8Rng::seed_from_u64(2));
        assert!(a.equal(&b));
        assert!(!a.equal(&c));
    }
}
