//! The analyses end to end: `train --log-grads` changes nothing in the training and records what it
//! promises; `analyze responses`, `grad-norms` and `shattering` write their CSV files and charts;
//! `reproduce fig7` runs them from the experiment file.

mod common;

use common::{assert_clean_error, reslab, stderr, stdout};
use std::path::Path;

fn train(out: &Path, extra: &[&str]) {
    let out_arg = out.to_str().unwrap();
    let mut args = vec![
        "train",
        "--model",
        "resnet-8",
        "--shortcut",
        "B",
        "--iters",
        "6",
        "--eval-every",
        "3",
        "--threads",
        "1",
        "--precision",
        "fp32",
        "--batch-size",
        "32",
        "--out",
        out_arg,
    ];
    args.extend_from_slice(extra);
    let output = reslab(&args);
    assert!(output.status.success(), "{}", stderr(&output));
}

fn csv_rows(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines().map(|l| l.split(',').map(String::from).collect::<Vec<_>>());
    let header = lines.next().expect("a header");
    (header, lines.collect())
}

#[test]
fn log_grads_leaves_the_weights_bit_identical_and_analyses_read_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let (plain, logged) = (dir.path().join("plain"), dir.path().join("logged"));
    train(&plain, &[]);
    train(&logged, &["--log-grads", "2"]);
    let weights = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert_eq!(weights(&plain), weights(&logged), "--log-grads changed the training");
    assert!(!plain.join("grad_norms.csv").exists());

    // Iterations 1, 2, 4, 6; every conv (7 main-path 3x3, 2 projections) and the classifier.
    let (header, rows) = csv_rows(&logged.join("grad_norms.csv"));
    assert_eq!(header, ["iter", "layer", "depth", "grad_norm", "weight_norm"]);
    assert_eq!(rows.len(), 4 * 10);
    let iters: std::collections::BTreeSet<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(iters.into_iter().collect::<Vec<_>>(), ["1", "2", "4", "6"]);
    let first: Vec<(&str, &str)> = rows[..10].iter().map(|r| (r[1].as_str(), r[2].as_str())).collect();
    assert_eq!(first[0], ("conv1", "1"));
    assert!(first.contains(&("layer2.0.shortcut.0", "5")), "{first:?}");
    assert_eq!(first[9], ("linear", "8"));
    for row in &rows {
        let (grad, weight): (f64, f64) = (row[3].parse().unwrap(), row[4].parse().unwrap());
        assert!(grad > 0.0 && grad.is_finite() && weight > 0.0, "{row:?}");
    }

    // Figure 7 of the trained run: the 7 3x3 layers, on the run's own test set.
    let out = dir.path().join("analysis");
    let output = reslab(&["analyze", "responses", logged.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("logged: 7 3x3 layers"), "{}", stdout(&output));
    let (header, rows) = csv_rows(&out.join("responses.csv"));
    assert_eq!(header, ["run", "model", "layer", "name", "stage", "std"]);
    assert_eq!(rows.len(), 7);
    assert_eq!(rows.iter().map(|r| r[4].as_str()).collect::<Vec<_>>(), ["0", "1", "1", "2", "2", "3", "3"]);
    assert!(out.join("responses.png").is_file() && out.join("responses.svg").is_file());

    let output = reslab(&["analyze", "grad-norms", logged.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(out.join("grad-norms.png").is_file());
    // A run without recorded norms, and a folder that holds no run: one clear line each.
    let output = reslab(&["analyze", "grad-norms", plain.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_clean_error(&output, &["grad_norms.csv", "--log-grads"]);
    let output = reslab(&["analyze", "responses", dir.path().to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_clean_error(&output, &["config.toml"]);
    let output = reslab(&["train", "--model", "resnet-8", "--log-grads", "0", "--iters", "2"]);
    assert_clean_error(&output, &["--log-grads 0"]);
}

#[test]
fn shattering_writes_both_parts_with_a_trained_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    train(&run, &[]);
    let out = dir.path().join("shattering");
    let output = reslab(&[
        "analyze",
        "shattering",
        "--depths",
        "8,14",
        "--inits",
        "1",
        "--toy-depths",
        "1,4",
        "--toy-inits",
        "2",
        "--run",
        run.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let (header, rows) = csv_rows(&out.join("shattering-cifar.csv"));
    assert_eq!(header, ["model", "depth", "state", "samples", "lag", "correlation", "correlation_std"]);
    // plain and residual at 8 and 14 layers, and the trained run: 64 lags each.
    assert_eq!(rows.len(), 5 * 64);
    assert!(rows.iter().any(|r| r[2] == "trained (run)"), "{:?}", &rows[rows.len() - 1]);
    let (_, toy) = csv_rows(&out.join("shattering-toy.csv"));
    assert_eq!(toy.len(), 4 * 2 * 64);
    for stem in ["shattering-toy", "shattering-cifar"] {
        assert!(out.join(format!("{stem}.png")).is_file() && out.join(format!("{stem}.svg")).is_file());
    }
}

#[test]
fn reproduce_fig7_analyses_its_runs_and_judges_the_papers_claims() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fig7");
    let output = reslab(&[
        "reproduce",
        "fig7",
        "--iters",
        "4",
        "--eval-every",
        "2",
        "--depths",
        "20",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    // Only the 20-layer nets: the 20-layer claim is judged, the others are not measured.
    assert!(text.contains("smaller in") && text.contains("of 19 layers"), "{text}");
    assert!(text.contains("NOT MEASURED"), "{text}");
    for file in ["fig7-responses.csv", "fig7-responses.svg", "fig7-grad-norms.svg", "shattering/shattering-cifar.csv"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    // log_grads came from [analysis]: grad_norms = 8 points of a 4-iteration run: every iteration.
    let (_, rows) = csv_rows(&out.join("plain-20-seed0/grad_norms.csv"));
    assert_eq!(rows.len(), 4 * 20);
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("Fig. 7") && report.matches("<svg").count() >= 5, "charts missing from the report");
}
