//! Any setting a study axis: `--set KEY=VALUE` on `train` and the study commands, `[grid]` in an
//! experiment file (degradation-lr's smoke preset end to end), `reslab keys`.

mod common;
use common::*;
use std::path::Path;

fn config_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("config.toml")).unwrap()
}

#[test]
fn train_sets_any_key_and_refuses_unknown_keys_bad_values_and_a_resumed_run_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out_arg = out.display().to_string();
    let mut args = vec!["train", "--model", "resnet-8", "--iters", "8", "--eval-every", "4", "--batch-size", "16"];
    args.extend(["--precision", "fp32", "--kernels", "exact", "--data", "embedded", "--out", &out_arg]);
    let mut with_set = args.clone();
    with_set.extend(["--set", "lr=0.05", "--set", "weight_decay=0", "--set", "lr_steps=[0.25,0.5]"]);
    with_set.extend(["--set", "shortcut=B", "--set", "augment=false"]);
    let output = reslab(&with_set);
    assert!(output.status.success(), "{}", stderr(&output));
    let config = config_of(&out);
    for line in ["lr = 0.05", "weight_decay = 0.0", "lr_steps = [2, 4]", "shortcut = \"B\"", "augment = false"] {
        assert!(config.lines().any(|l| l == line), "{line} missing from:\n{config}");
    }
    for (bad, expected) in [
        ("lrr=0.1", "unknown key 'lrr'; nearest: lr,"),
        ("wd=0", "nearest: weight_decay"),
        ("momentum=fast", "momentum=fast: expected a number"),
        ("shortcut=D", "expected one of A, B, C, highway"),
        ("momentum=1.5", "optim.momentum is 1.5; expected a value in [0, 1)"),
        ("lr=0.1,0.05", "train takes one value per key"),
    ] {
        let mut bad_args = args.clone();
        bad_args.extend(["--set", bad]);
        let output = reslab(&bad_args);
        assert!(!output.status.success(), "{bad} was accepted");
        let err = stderr(&output);
        assert_eq!(err.lines().filter(|l| !l.trim().is_empty()).count(), 1, "{bad}: {err}");
        assert!(err.starts_with("error: ") && err.contains(expected), "{bad}: {err}");
    }
    let output = reslab(&["train", "--resume", &out_arg, "--set", "lr=0.01"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--set") && stderr(&output).contains("resume"), "{}", stderr(&output));

    let keys = reslab(&["keys", "--format", "csv"]);
    assert!(keys.status.success(), "{}", stderr(&keys));
    let keys = stdout(&keys);
    assert!(keys.starts_with("key,in config.toml,type,default,what\n"), "{keys}");
    for row in ["lr,optim.lr,number,0.1,", "weight_decay,optim.weight_decay,number,0.0001,", "shortcut,model.shortcut,"]
    {
        assert!(keys.lines().any(|l| l.starts_with(row)), "{row} missing: {keys}");
    }
}

#[test]
fn degradation_lr_smoke_crosses_its_grid_with_the_runs_and_judges_each_claim_at_each_point() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("study");
    let out_arg = out.display().to_string();
    let args = [
        "reproduce",
        "degradation-lr",
        "--precision",
        "fp32",
        "--kernels",
        "exact",
        "--jobs",
        "2",
        "--threads",
        "1",
        "--out",
        &out_arg,
    ];
    let output = reslab(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    // 3 learning rates x 2 weight decays x (plain-8, resnet-8), one seed each, named by the point.
    let runs: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("-seed0"))
        .collect();
    assert_eq!(runs.len(), 12, "{runs:?}");
    assert!(runs.contains(&"plain-8-lr0.05-weight_decay0-seed0".to_string()), "{runs:?}");
    let config = config_of(&out.join("plain-8-lr0.05-weight_decay0-seed0"));
    assert!(config.contains("lr = 0.05\n") && config.contains("weight_decay = 0.0\n"), "{config}");

    // The study table groups by every varied key.
    let table = std::fs::read_to_string(out.join("table.csv")).unwrap();
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("run,model,shortcut,lr,weight_decay,params,"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("resnet-8-lr0.02-weight_decay0.0001,resnet-8,A,0.02,0.0001,")));
    assert_eq!(table.lines().count(), 1 + 12 + 18, "a row per network, then per claim: {table}");
    // One verdict per grid point: the shallow claim is judged at all 6, the others not measured.
    let claims = std::fs::read_to_string(out.join("claims.csv")).unwrap();
    let shallow = claims.lines().filter(|l| l.contains("Shallow plain and residual nets")).count();
    assert!(shallow >= 6, "{claims}");
    for lr in ["0.1", "0.05", "0.02"] {
        assert!(claims.contains(&format!("at lr={lr}, weight_decay=0)")), "{lr}: {claims}");
    }
    let text = stdout(&output);
    assert!(text.contains("claims: 0 held, 0 did not hold, 6 inconclusive, 12 not measured"), "{text}");
    assert!(out.join("degradation-lr.png").is_file() && out.join("report.html").is_file());

    // Re-running finds every run complete (stable names); one value narrows the grid.
    let again = reslab(&args);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stderr(&again).contains("12 of 12 runs are complete already"), "{}", stderr(&again));
    let plan = reslab(&["plan", "degradation-lr", "--set", "lr=0.1", "--set", "momentum=0.8", "--out", &out_arg]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    let plan = stdout(&plan);
    assert!(plan.contains("plain-8-weight_decay0-seed0") && !plan.contains("lr0.1"), "{plan}");
    // Another setting into the same folder: refused before anything trains, not taken as done.
    let mut other = args.to_vec();
    other.extend(["--set", "momentum=0.8"]);
    let output = reslab(&other);
    assert_clean_error(&output, &["holds a run of another configuration", "momentum is", "--out"]);
    let bad = reslab(&["plan", "degradation-lr", "--set", "weight_decay=fast"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("weight_decay=fast: expected a number"), "{}", stderr(&bad));
}
