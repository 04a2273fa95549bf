//! TensorBoard event files: what reslab writes, TensorBoard's own reader reads back, equal to
//! metrics.csv row for row; a resumed run's file holds each row once.

mod common;
use common::*;
use std::path::Path;

/// (tag, step, value) as TensorBoard reads them from the run directory.
fn tensorboard_scalars(dir: &Path) -> Vec<(String, usize, f64)> {
    let output = python()
        .arg(project_root().join("tests/python/read_events.py"))
        .arg(dir)
        .output()
        .expect("the project's Python (.venv/bin/python; run scripts/setup.sh)");
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (fields[0].to_string(), fields[1].parse().unwrap(), fields[2].parse().unwrap())
        })
        .collect()
}

fn metrics_rows(dir: &Path) -> Vec<Vec<f64>> {
    std::fs::read_to_string(dir.join("metrics.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect()
}

fn train(out: &Path) -> std::process::Output {
    reslab(&[
        "train",
        "--kernels",
        "exact",
        "--model",
        "plain-8",
        "--iters",
        "6",
        "--eval-every",
        "2",
        "--checkpoint-every",
        "2",
        "--batch-size",
        "32",
        "--threads",
        "2",
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn tensorboard_reads_every_metrics_row_back_once_even_after_a_resume() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let output = train(&out);
    assert!(output.status.success(), "{}", stderr(&output));
    let rows = metrics_rows(&out);
    assert_eq!(rows.len(), 3);
    let scalars = tensorboard_scalars(&out);
    // Columns: iter,epoch,lr,train_loss,train_err,test_err,img_per_s,wall_s.
    for (tag, column) in [("train/loss", 3), ("train/error", 4), ("test/error", 5), ("lr", 2), ("images_per_s", 6)] {
        let ours: Vec<(usize, f64)> =
            scalars.iter().filter(|(t, _, _)| t == tag).map(|(_, step, value)| (*step, *value)).collect();
        assert_eq!(ours.len(), rows.len(), "{tag}: one scalar per row");
        for ((step, value), row) in ours.iter().zip(&rows) {
            assert_eq!(*step, row[0] as usize, "{tag}");
            // metrics.csv writes images/s with one decimal: allow its rounding too.
            let rounding = if tag == "images_per_s" { 0.05 } else { 0.0 };
            assert!(
                (value - row[column]).abs() <= 1e-3 * row[column].abs().max(1.0) + rounding,
                "{tag} at {step}: {value} vs {}",
                row[column]
            );
        }
    }

    // As if killed after writing row 6 but before its checkpoint: the newest checkpoint is the
    // one of iteration 4. Resuming cuts metrics.csv back to iteration 4 and must cut the event
    // file too, so row 6 is not there twice.
    std::fs::rename(out.join("checkpoint.prev.safetensors"), out.join("checkpoint.safetensors")).unwrap();
    std::fs::remove_file(out.join("summary.toml")).unwrap();
    let output = train(&out);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("resuming from"), "{}", stderr(&output));
    let scalars = tensorboard_scalars(&out);
    let steps: Vec<usize> = scalars.iter().filter(|(t, _, _)| t == "test/error").map(|(_, s, _)| *s).collect();
    assert_eq!(steps, [2, 4, 6], "each row once");
    assert_eq!(metrics_rows(&out).len(), 3);
}
