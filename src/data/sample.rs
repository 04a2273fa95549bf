//! Makes the small CIFAR-10 sample that is compiled into reslab (`data/cifar10-sample.tar.gz`):
//! the first `per_class` images of each class, in the official binary layout.

use super::cifar::{Cifar10, Records, FOLDER, NUM_CLASSES, TEST_FILE, TRAIN_FILES};
use crate::util::fs::write_atomically;
use anyhow::{Context, Result};
use flate2::write::GzEncoder;
use std::path::Path;

const CLASS_NAMES: &str = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n";

/// The first `per_class` records of every class, in file order; classes interleaved as found.
pub fn balanced_subset(records: &Records, per_class: usize) -> Records {
    let mut taken = [0usize; NUM_CLASSES as usize];
    let mut indices = Vec::new();
    for (i, &label) in records.labels.iter().enumerate() {
        if taken[label as usize] < per_class {
            taken[label as usize] += 1;
            indices.push(i);
        }
    }
    records.select(&indices)
}

/// Writes `train` (split evenly over the five batch files) and `test` as a `.tar.gz`.
pub fn write_archive(train: &Records, test: &Records, out: &Path) -> Result<()> {
    write_atomically(out, |tmp| {
        let file = std::fs::File::create(tmp)?;
        let mut archive = tar::Builder::new(GzEncoder::new(file, flate2::Compression::best()));
        let mut add = |name: &str, bytes: &[u8]| -> Result<()> {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_cksum();
            archive.append_data(&mut header, format!("{FOLDER}/{name}"), bytes)?;
            Ok(())
        };
        let files = TRAIN_FILES.len();
        for (i, name) in TRAIN_FILES.iter().enumerate() {
            let part: Vec<usize> = (i * train.len() / files..(i + 1) * train.len() / files).collect();
            add(name, &train.select(&part).to_bytes())?;
        }
        add(TEST_FILE, &test.to_bytes())?;
        add("batches.meta.txt", CLASS_NAMES.as_bytes())?;
        archive.into_inner()?.finish()?;
        Ok(())
    })
}

/// `reslab data sample`: a balanced sample of `data`.
pub fn make_sample(data: &Cifar10, train_per_class: usize, test_per_class: usize, out: &Path) -> Result<()> {
    let train = balanced_subset(&data.train, train_per_class);
    let test = balanced_subset(&data.test, test_per_class);
    write_archive(&train, &test, out).with_context(|| format!("writing sample {}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(labels: &[u8]) -> Records {
        let mut r = Records::default();
        for (i, &label) in labels.iter().enumerate() {
            r.labels.push(label);
            r.images.extend(std::iter::repeat_n(i as u8, super::super::cifar::IMAGE_BYTES));
        }
        r
    }

    #[test]
    fn a_written_archive_reads_back_identically() {
        let dir = tempfile::tempdir().unwrap();
        let train = records(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let test = records(&[3, 1, 4]);
        let path = dir.path().join("s.tar.gz");
        write_archive(&train, &test, &path).unwrap();
        let back = Cifar10::from_path(&path).unwrap();
        assert_eq!(back.train, train);
        assert_eq!(back.test, test);
    }

    #[test]
    fn the_subset_is_balanced_and_keeps_file_order() {
        let subset = balanced_subset(&records(&[1, 1, 2, 1, 2, 2, 0]), 2);
        assert_eq!(subset.labels, vec![1, 1, 2, 2, 0]);
        assert_eq!(subset.images[super::super::cifar::IMAGE_BYTES * 2], 2);
    }
}
