//! The loader on the full shared CIFAR-10 archive.

mod common;
use common::*;
use reslab::data::{Cifar10, DataSource};

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
