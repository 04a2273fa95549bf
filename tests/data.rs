//! The loader on the full shared CIFAR-10 archive.

mod common;
use common::*;
use reslab::data::prepare::{pixel_mean, to_unit_float};
use reslab::data::{Cifar10, DataSource};
use tch::{Kind, Tensor};

#[test]
fn the_shared_archive_loads_with_the_official_layout_and_counts() {
    let data = Cifar10::load(&DataSource::Path(cifar_archive())).unwrap();
    assert_eq!(data.train.len(), 50_000);
    assert_eq!(data.test.len(), 10_000);
    assert_eq!(data.train.images.len(), 50_000 * 3072);
    for class in 0..10u8 {
        assert_eq!(data.train.labels.iter().filter(|&&l| l == class).count(), 5000);
        assert_eq!(data.test.labels.iter().filter(|&&l| l == class).count(), 1000);
    }
}

/// The paper's preprocessing is the per-pixel mean of the training set: reslab's (computed fresh,
/// and as read from the cache next to the archive) equals NumPy's float64 mean of the same records.
#[test]
fn the_per_pixel_mean_equals_numpys_over_the_same_records() {
    let archive = cifar_archive();
    let data = Cifar10::load(&DataSource::Path(archive.clone())).unwrap();
    let images = to_unit_float(&data.train);
    let fresh = pixel_mean(&data.train, &images, None);
    let as_used = pixel_mean(&data.train, &images, data.stats_cache.as_deref());

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mean.safetensors");
    let output = python()
        .arg(project_root().join("tests/python/pixel_mean.py"))
        .arg(&archive)
        .arg(&out)
        .output()
        .expect("the project's Python (.venv/bin/python; run scripts/setup.sh)");
    assert!(output.status.success(), "{}", stderr(&output));
    let numpy = Tensor::read_safetensors(&out).unwrap().remove(0).1;
    assert_eq!(numpy.size(), vec![1, 3, 32, 32]);
    for (what, ours) in [("computed", &fresh), ("cached", &as_used)] {
        assert_eq!(ours.size(), vec![1, 3, 32, 32]);
        let diff = (ours.to_kind(Kind::Double) - &numpy).abs().max().double_value(&[]);
        println!("per-pixel mean ({what}): largest difference from NumPy's float64 mean {diff:.2e}");
        assert!(diff < 1e-6, "{what} per-pixel mean differs from NumPy's by {diff}");
    }
}
