//! The analyses end to end: `train --log-grads` changes nothing in the training and records what it
//! promises; `analyze responses`, `grad-norms`, `shattering` and `landscape` write their CSV files
//! and charts; `reproduce fig7` and `reproduce landscape` run them from the experiment file.

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
        "--kernels",
        "exact",
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
        "--kernels",
        "exact",
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

fn rows_of(path: &Path, run: &str) -> Vec<Vec<String>> {
    csv_rows(path).1.into_iter().filter(|r| r[0] == run).collect()
}

#[test]
fn reproduce_landscape_smoke_writes_every_file_judges_its_claims_and_repeats_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("landscape");
    let output =
        reslab(&["reproduce", "landscape", "--preset", "smoke", "--kernels", "exact", "--out", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let claim = text.lines().find(|l| l.starts_with("5. ")).unwrap_or_else(|| panic!("no claim 5 in {text}"));
    assert!(!claim.ends_with("NOT MEASURED"), "{claim}");
    assert!(text.contains("landscape sharpness") && text.contains("locally convex near the centre"), "{text}");

    let analysis = out.join("landscape");
    let (header, rows) = csv_rows(&analysis.join("landscape.csv"));
    assert_eq!(header, ["run", "alpha", "beta", "loss", "error"]);
    // plain-8 and resnet-8, 2 seeds each, on a 5 x 5 grid.
    assert_eq!(rows.len(), 4 * 25);
    let (header, summary) = csv_rows(&analysis.join("landscape-summary.csv"));
    assert_eq!(header[9], "sharpness");
    assert_eq!(summary.len(), 4);
    let (_, path) = csv_rows(&analysis.join("landscape-path.csv"));
    assert_eq!(path.len(), 4 * 5);
    assert!(path.iter().all(|r| r[4] == "saved (init.safetensors)"), "{:?}", path[0]);
    for file in [
        "landscape-contours.png",
        "landscape-contours.svg",
        "landscape-lines.svg",
        "landscape-path.svg",
        "resnet-8-seed0-directions.safetensors",
        "plain-8-seed1-directions.safetensors",
    ] {
        assert!(analysis.join(file).is_file(), "{file} missing");
    }
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("Fig. 5") && report.contains("Goodfellow"), "the landscape charts are not in the report");

    // Drawn again, the study reads each finished surface instead of computing it again.
    let surfaces = std::fs::read(analysis.join("landscape.csv")).unwrap();
    let again =
        reslab(&["reproduce", "landscape", "--preset", "smoke", "--kernels", "exact", "--out", out.to_str().unwrap()]);
    assert!(again.status.success(), "{}", stderr(&again));
    let reused = stderr(&again).matches("not computing it again").count();
    assert_eq!(reused, 4, "every run's surface read back: {}", stderr(&again));
    assert_eq!(std::fs::read(analysis.join("landscape.csv")).unwrap(), surfaces);
    assert_eq!(stdout(&again).lines().find(|l| l.starts_with("5. ")), Some(claim), "the same verdict");

    // The same run alone, the same settings: the same surface; and from the saved directions
    // (another --seed is then ignored), again the same.
    let run = out.join("resnet-8-seed0");
    let analyze = |extra: &[&str], to: &Path| {
        let mut args = vec!["analyze", "landscape", run.to_str().unwrap(), "--grid", "5", "--images", "64"];
        args.extend_from_slice(&["--path-points", "5", "--out", to.to_str().unwrap()]);
        args.extend_from_slice(extra);
        let output = reslab(&args);
        assert!(output.status.success(), "{}", stderr(&output));
        output
    };
    let alone = dir.path().join("alone");
    let printed = stdout(&analyze(&[], &alone));
    assert!(printed.contains("resnet-8-seed0 (resnet-8): centre loss") && printed.contains("s per point"), "{printed}");
    let study_rows = rows_of(&analysis.join("landscape.csv"), "resnet-8-seed0");
    assert_eq!(rows_of(&alone.join("landscape.csv"), "resnet-8-seed0"), study_rows);
    // Other settings into the same folder: computed again, not read back.
    let narrower = stderr(&analyze(&["--span", "0.5"], &alone));
    assert!(narrower.contains("25 points on 64") && !narrower.contains("not computing it again"), "{narrower}");
    assert_ne!(rows_of(&alone.join("landscape.csv"), "resnet-8-seed0"), study_rows);
    let saved = alone.join("resnet-8-seed0-directions.safetensors");
    let again = dir.path().join("again");
    analyze(&["--directions", saved.to_str().unwrap(), "--seed", "9"], &again);
    assert_eq!(rows_of(&again.join("landscape.csv"), "resnet-8-seed0"), study_rows);

    // Without init.safetensors the path starts from the initialisation rebuilt from the seed:
    // the same weights, so the same path.
    let copy = dir.path().join("resnet-8-seed0");
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(&run).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "init.safetensors" && entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
        }
    }
    let rebuilt = dir.path().join("rebuilt");
    let output = reslab(&[
        "analyze",
        "landscape",
        copy.to_str().unwrap(),
        "--dims",
        "1",
        "--grid",
        "3",
        "--images",
        "64",
        "--path-points",
        "5",
        "--out",
        rebuilt.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let from_seed = rows_of(&rebuilt.join("landscape-path.csv"), "resnet-8-seed0");
    assert!(from_seed.iter().all(|r| r[4] == "rebuilt from seed 0"), "{from_seed:?}");
    let from_file = rows_of(&analysis.join("landscape-path.csv"), "resnet-8-seed0");
    let losses = |rows: &[Vec<String>]| rows.iter().map(|r| r[2].clone()).collect::<Vec<_>>();
    assert_eq!(losses(&from_seed), losses(&from_file));
    assert_eq!(csv_rows(&rebuilt.join("landscape.csv")).1.len(), 3, "a line of 3 points");

    // Bad input: one clear line each.
    let run_arg = run.to_str().unwrap();
    assert_clean_error(&reslab(&["analyze", "landscape", run_arg, "--grid", "4"]), &["grid 4", "odd"]);
    assert_clean_error(&reslab(&["analyze", "landscape", run_arg, "--dims", "3"]), &["--dims 3", "expected 1"]);
    let missing = dir.path().join("nothing");
    assert_clean_error(&reslab(&["analyze", "landscape", missing.to_str().unwrap()]), &["config.toml"]);
}
