//! What a study reports is what ran: a study is addressed by its folder, a run of another
//! configuration is never counted, a run changed after it completed is never complete, and an
//! aggregation is one set of files.

mod common;

use common::{assert_clean_error, reslab, small_study, stderr, stdout};
use std::path::Path;

/// A study of plain-8 and resnet-8 (one seed, 4 iterations at `smoke`, 6 at `demo`) trained into
/// `dir/study`; the experiment file's path.
fn trained_study(dir: &Path) -> String {
    let file = dir.join("small.toml");
    let text = small_study("small", &["plain-8", "resnet-8"], 1, 4)
        + "\n[presets.demo]\ndata = \"embedded\"\niters = 6\neval_every = 10\nbatch_size = 32\n";
    std::fs::write(&file, text).unwrap();
    let file = file.to_str().unwrap().to_string();
    let out = dir.join("study");
    let output =
        reslab(&["reproduce", &file, "--precision", "fp32", "--kernels", "exact", "--out", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    file
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_study_is_addressed_by_its_folder_and_a_copy_under_another_preset_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = trained_study(dir.path());
    let study = dir.path().join("study");
    let record = read(&study.join("experiment.toml"));
    assert!(record.contains("[study]") && record.contains("preset = \"smoke\"") && record.contains("seeds = [0]"));
    assert!(record.contains("precision = \"fp32\"") && record.contains("[experiment]"), "{record}");

    // `status DIR` and `aggregate DIR` read the study from its folder.
    let output = reslab(&["status", study.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("2 runs: 2 done"), "{}", stdout(&output));
    let output = reslab(&["aggregate", study.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report = read(&study.join("report.html"));
    assert!(
        report.contains("--preset smoke") && report.contains("--precision fp32"),
        "the report's command is the record's"
    );
    let manifest = read(&study.join(".aggregated"));
    assert!(manifest.lines().any(|l| l == "report.html") && !study.join(".aggregating").exists(), "{manifest}");
    // A study's own options with its folder are refused: the folder has them.
    let output = reslab(&["status", study.to_str().unwrap(), "--preset", "demo"]);
    assert_clean_error(&output, &["--preset with the study folder", "experiment.toml"]);
    // A folder that holds no study says so.
    let typo = dir.path().join("typo");
    let output = reslab(&["aggregate", &file, "--out", typo.to_str().unwrap()]);
    assert_clean_error(&output, &["typo holds no study (it does not exist)"]);
    assert!(!typo.exists());
    std::fs::create_dir(&typo).unwrap();
    assert_clean_error(&reslab(&["status", typo.to_str().unwrap()]), &["holds no study (it has no experiment.toml)"]);

    // A copy aggregated under another preset: its runs are another configuration's.
    let copy = dir.path().join("copy");
    assert!(std::process::Command::new("cp").args(["-r"]).arg(&study).arg(&copy).status().unwrap().success());
    let before = read(&copy.join("summary.csv"));
    let demo = ["--preset", "demo", "--precision", "fp32", "--kernels", "exact", "--out", copy.to_str().unwrap()];
    let output = reslab(&[&["aggregate", &file][..], &demo].concat());
    let err = assert_clean_error(&output, &["copy/plain-8-seed0", "schedule.iters is 4 there, expected 6"]);
    assert!(err.contains("choose another --out, or remove the directory"), "{err}");
    assert_eq!(read(&copy.join("summary.csv")), before, "the earlier set is left whole");
    assert!(!copy.join(".aggregating").exists());
    // `status` and `plan` list them as another configuration's, with the difference; `reproduce` refuses.
    for command in ["status", "plan"] {
        let output = reslab(&[&[command, &file][..], &demo].concat());
        assert!(output.status.success(), "{command}: {}", stderr(&output));
        let text = stdout(&output);
        assert!(
            text.contains("another configuration's run (schedule.iters is 4 there, expected 6"),
            "{command}: {text}"
        );
    }
    assert_clean_error(&reslab(&[&["reproduce", &file][..], &demo].concat()), &["schedule.iters is 4 there"]);
    assert_eq!(read(&copy.join("plain-8-seed0/metrics.csv")), read(&study.join("plain-8-seed0/metrics.csv")));
}

#[test]
fn a_run_changed_after_it_completed_is_never_counted_by_any_command() {
    let dir = tempfile::tempdir().unwrap();
    let file = trained_study(dir.path());
    let study = dir.path().join("study");
    let run = study.join("plain-8-seed0");
    let config = read(&run.join("config.toml"));
    std::fs::write(run.join("config.toml"), config.replace("depth = 8", "depth = 14")).unwrap();
    let changed = "config.toml changed after the run completed";

    let output = reslab(&["status", study.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains(&format!("modified after completion: {changed}")) && text.contains("1 modified"), "{text}");
    let err = assert_clean_error(&reslab(&["reproduce", study.to_str().unwrap()]), &["plain-8-seed0", changed]);
    assert!(err.contains("restore the file, or remove the directory"), "{err}");
    let output = reslab(&["aggregate", study.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("plain-8-seed0: modified after completion"), "{}", stdout(&output));
    let summary = read(&study.join("summary.csv"));
    assert!(summary.contains("resnet-8-seed0") && !summary.contains("plain-8-seed0"), "{summary}");

    let weights = dir.path().join("w.safetensors");
    let output = reslab(&["export", "--run", run.to_str().unwrap(), "--out", weights.to_str().unwrap()]);
    assert_clean_error(&output, &["plain-8-seed0", changed]);
    assert!(!weights.exists());
    let analysis = dir.path().join("analysis");
    let output = reslab(&["analyze", "responses", run.to_str().unwrap(), "--out", analysis.to_str().unwrap()]);
    assert_clean_error(&output, &["plain-8-seed0", changed]);
    assert!(!analysis.join("responses.csv").exists());

    // A truncated summary: not "partial", but modified.
    let other = study.join("resnet-8-seed0");
    let text = read(&other.join("summary.toml"));
    std::fs::write(other.join("summary.toml"), &text[..text.len() / 2]).unwrap();
    let output =
        reslab(&["status", &file, "--precision", "fp32", "--kernels", "exact", "--out", study.to_str().unwrap()]);
    assert!(stdout(&output).contains("its summary.toml cannot be read"), "{}", stdout(&output));
    let output =
        reslab(&["train", "--config", other.join("config.toml").to_str().unwrap(), "--out", other.to_str().unwrap()]);
    assert_clean_error(&output, &["resnet-8-seed0", "summary.toml cannot be read"]);
}

/// Aggregation writes one set: a claim that stops being measured takes its forest plot with it,
/// and an aggregation that fails after writing some of its files leaves the previous set whole.
#[test]
fn a_claim_no_longer_measured_leaves_no_stale_figure_and_a_failed_aggregation_leaves_the_set_whole() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("claim.toml");
    let text = small_study("claim", &["plain-8", "plain-14"], 1, 4)
        + "\n[analysis]\nresponses = true\n\n[[expect]]\nhigher_train_error = \"plain-14\"\nthan = \"plain-8\"\n";
    std::fs::write(&file, text).unwrap();
    let (file, study) = (file.to_str().unwrap(), dir.path().join("study"));
    let out = study.to_str().unwrap();
    let output = reslab(&["reproduce", file, "--precision", "fp32", "--kernels", "exact", "--out", out]);
    assert!(output.status.success(), "{}", stderr(&output));
    let forest = study.join("claim-claims.png");
    assert!(forest.is_file() && study.join("claim-claims.svg").is_file(), "the claim is measured: its forest plot");

    // Only the 8-layer net: the claim is not measured, and its figure goes with the rest of the set.
    let output =
        reslab(&["aggregate", file, "--depths", "8", "--precision", "fp32", "--kernels", "exact", "--out", out]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!forest.exists() && !study.join("claim-claims.svg").exists(), "no stale forest plot");
    assert!(read(&study.join("claims.csv")).contains("not measured"), "{}", read(&study.join("claims.csv")));
    let set: Vec<String> = read(&study.join(".aggregated")).lines().map(String::from).collect();
    assert!(!set.iter().any(|f| f.starts_with("claim-claims")), "{set:?}");

    // A run of a reslab before digests ("complete, unverified") whose weights were cut short: the
    // aggregation writes its tables and charts, then fails reading the weights for the responses.
    let run = study.join("plain-8-seed0");
    let summary: String = read(&run.join("summary.toml"))
        .lines()
        .filter(|l| !l.contains("_sha256 = "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(run.join("summary.toml"), summary).unwrap();
    let weights = std::fs::read(run.join("model.safetensors")).unwrap();
    std::fs::write(run.join("model.safetensors"), &weights[..weights.len() / 2]).unwrap();
    let before: Vec<(String, Vec<u8>)> =
        set.iter().map(|f| (f.clone(), std::fs::read(study.join(f)).unwrap())).collect();
    let output =
        reslab(&["aggregate", file, "--depths", "8", "--precision", "fp32", "--kernels", "exact", "--out", out]);
    assert_clean_error(&output, &["model.safetensors"]);
    for (file, bytes) in &before {
        assert!(std::fs::read(study.join(file)).unwrap() == *bytes, "{file} is the previous set's");
    }
    assert_eq!(read(&study.join(".aggregated")).lines().count(), set.len());
    assert!(!study.join(".aggregating").exists(), "no half-written set left beside it");
}
