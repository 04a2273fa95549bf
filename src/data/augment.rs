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

/// Where one image's crop starts in the padded image, and whether it is mirrored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crop {
    /// First row of the crop in the padded image, 0..=2*pad.
    pub row: i64,
    /// First column of the crop in the padded image, 0..=2*pad.
    pub col: i64,
    /// Whether the crop is mirrored left to right.
    pub flip: bool,
}

/// The random crops of a batch of `n` images padded by `pad`: offsets uniform in 0..=2*pad,
/// a flip with probability 1/2, drawn in that order per image.
pub fn draw_crops(n: i64, pad: i64, rng: &mut impl Rng) -> Vec<Crop> {
    (0..n)
        .map(|_| {
            let row = rng.gen_range(0..=2 * pad);
            let col = rng.gen_range(0..=2 * pad);
            Crop { row, col, flip: rng.gen_bool(0.5) }
        })
        .collect()
}

/// Random crop and flip of `images` (N, C, H, W).
pub fn crop_and_flip(images: &Tensor, pad: i64, rng: &mut impl Rng) -> Tensor {
    let n = images.size()[0];
    apply_crops(images, pad, &draw_crops(n, pad, rng))
}

/// `images` (N, C, H, W) padded by `pad` zeros on each side, then cropped back to H x W at each
/// image's offsets and mirrored where asked, as one gather: each output pixel is read from the
/// padded batch at its image's crop offset, with the column index mirrored for flipped images.
pub fn apply_crops(images: &Tensor, pad: i64, crops: &[Crop]) -> Tensor {
    let (n, _c, h, w) = images.size4().expect("a batch of images (N, C, H, W)");
    assert_eq!(crops.len() as i64, n, "one crop per image");
    let device = images.device();
    let padded = images.constant_pad_nd([pad, pad, pad, pad]);
    let row_offsets: Vec<i64> = crops.iter().map(|c| c.row).collect();
    let col_starts: Vec<i64> = crops.iter().map(|c| if c.flip { c.col + w - 1 } else { c.col }).collect();
    let col_steps: Vec<i64> = crops.iter().map(|c| if c.flip { -1 } else { 1 }).collect();
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

    /// The textbook definition, pixel by pixel: pad with zeros, take the window at the offset,
    /// read its columns right to left when flipped.
    fn reference_crop(image: &[f32], c: usize, h: usize, w: usize, pad: usize, crop: Crop) -> Vec<f32> {
        let mut padded = vec![0.0f32; c * (h + 2 * pad) * (w + 2 * pad)];
        let (ph, pw) = (h + 2 * pad, w + 2 * pad);
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    padded[(ch * ph + y + pad) * pw + x + pad] = image[(ch * h + y) * w + x];
                }
            }
        }
        let mut out = Vec::with_capacity(c * h * w);
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let source_x = if crop.flip { w - 1 - x } else { x };
                    out.push(padded[(ch * ph + y + crop.row as usize) * pw + source_x + crop.col as usize]);
                }
            }
        }
        out
    }

    #[test]
    fn crops_equal_a_pixel_by_pixel_reference_given_the_same_offsets_and_flips() {
        let (n, c, h, w, pad) = (40i64, 3i64, 8i64, 6i64, 4i64);
        let images = Tensor::randn([n, c, h, w], (Kind::Float, tch::Device::Cpu));
        let crops = draw_crops(n, pad, &mut ChaCha8Rng::seed_from_u64(11));
        // Every extreme is among the draws, so the reference covers the borders too.
        let mut crops = crops;
        crops[0] = Crop { row: 0, col: 0, flip: false };
        crops[1] = Crop { row: 2 * pad, col: 2 * pad, flip: true };
        crops[2] = Crop { row: 0, col: 2 * pad, flip: true };
        assert!(crops.iter().any(|c| c.flip) && crops.iter().any(|c| !c.flip));
        let out = apply_crops(&images, pad, &crops);
        assert_eq!(out.size(), vec![n, c, h, w]);
        for (i, crop) in crops.iter().enumerate() {
            let image = Vec::<f32>::try_from(images.get(i as i64).flatten(0, -1)).unwrap();
            let expected = reference_crop(&image, c as usize, h as usize, w as usize, pad as usize, *crop);
            let got = Vec::<f32>::try_from(out.get(i as i64).flatten(0, -1)).unwrap();
            assert_eq!(got, expected, "image {i}, {crop:?}");
        }
    }

    #[test]
    fn offsets_and_flips_are_drawn_uniformly() {
        let crops = draw_crops(9000, 4, &mut ChaCha8Rng::seed_from_u64(3));
        for offset in 0..=8 {
            let rows = crops.iter().filter(|c| c.row == offset).count();
            let cols = crops.iter().filter(|c| c.col == offset).count();
            // 1000 expected of each; 5 standard deviations is about 150.
            assert!((850..1150).contains(&rows) && (850..1150).contains(&cols), "offset {offset}: {rows} {cols}");
        }
        let flips = crops.iter().filter(|c| c.flip).count();
        assert!((4300..4700).contains(&flips), "{flips} flips of 9000");
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
