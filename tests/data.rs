//! The loader on the full shared CIFAR-10 archive, and a short run trained on it.

#[macro_use]
mod common;
use common::harness::{self};
use common::*;
use reslab::data::prepare::{pixel_mean, to_unit_float};
use reslab::data::{Cifar10, DataSource};
use tch::{Kind, Tensor};

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

/// (From the CLI: a short run on the real archive, evaluated, found complete, and re-run from its
/// config; in fp32, which every CPU computes natively: bf16 is tests/cli.rs's, on the small sample.)
fn a_short_run_on_real_data_lowers_the_training_loss_and_leaves_a_complete_run_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plain-8");
    let archive = cifar_archive();
    let args = [
        "train",
        "--model",
        "plain-8",
        "--data",
        archive.to_str().unwrap(),
        "--iters",
        "60",
        "--eval-every",
        "30",
        "--batch-size",
        "64",
        "--seed",
        "1",
        "--precision",
        "fp32",
        "--kernels",
        "exact",
        "--out",
        out.to_str().unwrap(),
    ];
    let output = reslab(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("precision: fp32, as asked"), "{}", stdout(&output));
    assert!(std::fs::read_to_string(out.join("config.toml")).unwrap().contains("precision = \"fp32\""));
    let rows = read_rows(&out);
    assert_eq!(rows.len(), 2);
    let loss = |row: &csv::StringRecord| row[3].parse::<f64>().unwrap();
    assert!(loss(&rows[1]) < loss(&rows[0]) - 0.05, "loss should fall: {rows:?}");
    assert_eq!(&rows[1][0], "60");
    assert!(rows.iter().all(|r| (0.0..=100.0).contains(&r[5].parse::<f64>().unwrap())));
    for file in ["config.toml", "model.safetensors", "summary.toml"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let summary = std::fs::read_to_string(out.join("summary.toml")).unwrap();
    assert!(summary.contains("status = \"complete\""), "{summary}");

    // The saved weights evaluate to the last row's test error.
    let weights = out.join("model.safetensors");
    let output = reslab(&[
        "eval",
        "--model",
        "plain-8",
        "--weights",
        weights.to_str().unwrap(),
        "--data",
        archive.to_str().unwrap(),
        "--precision",
        "fp32",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains(&format!("test error {:.2}%", rows[1][5].parse::<f64>().unwrap())),
        "{}",
        stdout(&output)
    );

    // Running the same command again finds the complete run and does not train again.
    let again = reslab(&args);
    assert!(again.status.success());
    assert!(stderr(&again).contains("already holds this run"), "{}", stderr(&again));
    // The saved config re-runs the same training.
    let rerun = dir.path().join("rerun");
    let output =
        reslab(&["train", "--config", out.join("config.toml").to_str().unwrap(), "--out", rerun.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let strip = |rows: Vec<csv::StringRecord>| -> Vec<Vec<String>> {
        rows.iter().map(|r| r.iter().take(6).map(str::to_string).collect()).collect()
    };
    assert_eq!(strip(read_rows(&rerun)), strip(read_rows(&out)), "same config, same seed, same numbers");
}

fn main() -> std::process::ExitCode {
    harness::run(vec![
        trial!(the_shared_archive_loads_with_the_official_layout_and_counts, harness::shared_data()),
        trial!(the_per_pixel_mean_equals_numpys_over_the_same_records, harness::shared_data()),
        trial!(
            a_short_run_on_real_data_lowers_the_training_loss_and_leaves_a_complete_run_directory,
            harness::shared_data()
        ),
    ])
}
