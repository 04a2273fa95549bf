//! The variants beyond the 2015 paper's block end to end: highway shortcuts, pre-activation and the
//! ablations, bottleneck CIFAR nets and ResNeXt train, resume bit for bit, export, and run from
//! their experiment files with their tables.

mod common;

use common::{assert_clean_error, reslab, stderr, stdout};
use std::path::Path;

fn train(out: &Path, model: &[&str]) {
    let mut args = vec!["train", "--model"];
    args.extend_from_slice(model);
    args.extend_from_slice(&[
        "--iters",
        "4",
        "--eval-every",
        "2",
        "--checkpoint-every",
        "2",
        "--threads",
        "1",
        "--precision",
        "fp32",
        "--kernels",
        "exact",
        "--batch-size",
        "16",
        // The sample's last 500 training images, not its 1,000 test images: half the evaluation.
        "--eval-set",
        "holdout",
        "--out",
    ]);
    args.push(out.to_str().unwrap());
    let output = reslab(&args);
    assert!(output.status.success(), "{model:?}: {}", stderr(&output));
}

#[test]
fn every_variant_trains_resumes_bit_for_bit_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let variants: [&[&str]; 6] = [
        &["resnet-8", "--shortcut", "highway", "--gate-bias", "-3"],
        &["resnet-8", "--block", "pre"],
        &["resnet-8", "--block", "bn-after-add"],
        &["resnet-8", "--block", "no-relu-after-add"],
        &["resnet-11", "--block", "pre"],
        &["resnext-29-2x4d"],
    ];
    for (i, model) in variants.iter().enumerate() {
        let whole = dir.path().join(format!("whole{i}"));
        train(&whole, model);
        let config = std::fs::read_to_string(whole.join("config.toml")).unwrap();
        // Interrupted after iteration 2: the newest checkpoint is the one of iteration 2.
        let resumed = dir.path().join(format!("resumed{i}"));
        std::fs::create_dir(&resumed).unwrap();
        for file in ["config.toml", "metrics.csv", "checkpoint.prev.safetensors"] {
            std::fs::copy(whole.join(file), resumed.join(file)).unwrap();
        }
        std::fs::rename(resumed.join("checkpoint.prev.safetensors"), resumed.join("checkpoint.safetensors")).unwrap();
        let output = reslab(&["train", "--resume", resumed.to_str().unwrap()]);
        assert!(output.status.success(), "{model:?}: {}", stderr(&output));
        assert!(stderr(&output).contains("at iteration 2"), "{}", stderr(&output));
        let weights = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
        assert!(weights(&whole) == weights(&resumed), "{model:?}: resumed weights differ\n{config}");
        let exported = dir.path().join(format!("export{i}.safetensors"));
        let output = reslab(&["export", "--run", whole.to_str().unwrap(), "--out", exported.to_str().unwrap()]);
        assert!(output.status.success() && exported.is_file(), "{model:?}: {}", stderr(&output));
    }
    let config = std::fs::read_to_string(dir.path().join("whole0/config.toml")).unwrap();
    assert!(config.contains("shortcut = \"highway\"") && config.contains("gate_bias = -3.0"), "{config}");
    let config = std::fs::read_to_string(dir.path().join("whole1/config.toml")).unwrap();
    assert!(config.contains("block = \"pre\""), "{config}");
}

#[test]
fn combinations_the_families_do_not_build_are_refused_in_one_line() {
    let output = reslab(&["train", "--model", "resnet-34", "--block", "pre", "--iters", "1"]);
    assert_clean_error(&output, &["block 'pre'", "CIFAR family"]);
    let output = reslab(&["train", "--model", "resnet-20", "--gate-bias", "-1", "--iters", "1"]);
    assert_clean_error(&output, &["--gate-bias", "--shortcut highway"]);
    let output = reslab(&["train", "--model", "resnet-20", "--shortcut", "highway", "--block", "pre", "--iters", "1"]);
    assert_clean_error(&output, &["highway", "post"]);
    let output = reslab(&["train", "--model", "resnext-29-8", "--iters", "1"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("resnext-N-CxDd"), "{}", stderr(&output));
}

#[test]
fn the_shortcuts_and_blocks_studies_run_with_their_tables() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("shortcuts");
    let output = reslab(&[
        "reproduce",
        "shortcuts",
        "--depths",
        "20",
        "--iters",
        "2",
        "--eval-every",
        "2",
        "--precision",
        "fp32",
        "--kernels",
        "exact",
        "--set",
        "batch_size=16",
        "--set",
        "eval_set=holdout",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = std::fs::read_to_string(out.join("table_shortcuts.csv")).unwrap();
    for row in ["plain-20,", "resnet-20,", "resnet-20-B,", "resnet-20-C,", "resnet-20-highway,", "Highway (Srivastava"]
    {
        assert!(table.lines().any(|l| l.starts_with(row)), "{row} missing: {table}");
    }
    assert!(stdout(&output).contains("NOT MEASURED"), "the 56-layer claims: {}", stdout(&output));

    let out = dir.path().join("blocks");
    let output = reslab(&[
        "reproduce",
        "blocks",
        "--iters",
        "2",
        "--eval-every",
        "2",
        "--jobs",
        "2",
        "--precision",
        "fp32",
        "--kernels",
        "exact",
        "--set",
        "batch_size=16",
        "--set",
        "eval_set=holdout",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = std::fs::read_to_string(out.join("table_blocks.csv")).unwrap();
    for (row, paper) in [
        ("resnet-110,", "6.61"),
        ("resnet-110-pre,", "6.37"),
        ("resnet-110-bn-after-add,", "13.56"),
        ("resnet-110-no-relu-after-add,", "6.32"),
    ] {
        let line = table.lines().find(|l| l.starts_with(row)).unwrap_or_else(|| panic!("{row} missing: {table}"));
        assert!(line.contains(paper), "{line}");
    }
}
