//! Weights that name their network: plain weights fed to every loader as a residual net (option
//! A adds no parameters, so names and shapes alone would let them through) are refused in one
//! line naming both networks, exit code 1, nothing written; files without reslab's metadata load
//! with one line saying their network could not be checked; `eval` says which precision it
//! evaluates in and which the weights trained in.

mod common;

use common::{reslab, stderr, stdout};
use reslab::model::weights::{self, RunOrigin, WeightsMetadata};
use reslab::model::Precision;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// A complete plain-8 run of one iteration on the embedded sample, made once for every test here.
fn plain_run() -> &'static Path {
    static RUN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    RUN.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("weights-plain-8");
        let _ = std::fs::remove_dir_all(&out);
        let output = reslab(&[
            "train",
            "--model",
            "plain-8",
            "--iters",
            "1",
            "--eval-every",
            "1",
            "--batch-size",
            "8",
            "--precision",
            "fp32",
            "--kernels",
            "exact",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        out
    })
}

/// A copy of the plain run in `dir/name` whose configuration says resnet-8: its files hold
/// another network's weights than its configuration names.
fn residual_named_copy(dir: &Path, name: &str) -> PathBuf {
    let copy = dir.join(name);
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(plain_run()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
        }
    }
    let config = std::fs::read_to_string(copy.join("config.toml")).unwrap();
    assert!(config.contains("kind = \"plain\""), "{config}");
    std::fs::write(copy.join("config.toml"), config.replace("kind = \"plain\"", "kind = \"resnet\"")).unwrap();
    // The summary's digest follows the new configuration: a directory whose files agree with each
    // other (not one modified after it completed), only its weights are another network's.
    let summary = copy.join("summary.toml");
    let recorded = reslab::run::digests::file_digest(&plain_run().join("config.toml")).unwrap();
    let digest = reslab::run::digests::file_digest(&copy.join("config.toml")).unwrap();
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(text.contains(&recorded), "{text}");
    std::fs::write(&summary, text.replace(&recorded, &digest)).unwrap();
    copy
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    if !dir.exists() {
        return files;
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(snapshot(&path));
        } else {
            files.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
    files
}

/// `reslab args` in `cwd` refused another network's weights: exit code 1, one line starting
/// with `expected`, and nothing written in `cwd` or `watched`.
fn assert_refused(args: &[&str], cwd: &Path, watched: &Path, expected: &str) {
    let before = (snapshot(cwd), snapshot(watched));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_reslab")).args(args).current_dir(cwd).output().unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{args:?}: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: expected one line: {err}");
    assert!(lines[0].starts_with(&format!("error: {expected}")), "{args:?}: {err}");
    assert_eq!((snapshot(cwd), snapshot(watched)), before, "{args:?} wrote something");
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn eval_refuses_plain_weights_as_a_residual_net_and_says_which_precision_they_trained_in() {
    let dir = tempfile::tempdir().unwrap();
    let weights = plain_run().join("model.safetensors");
    let line = format!("{} holds plain-8 weights; expected resnet-8 (A) (--model): ", weights.display());
    assert_refused(&["eval", "--model", "resnet-8", "--weights", arg(&weights)], dir.path(), plain_run(), &line);

    // Its own network: evaluated in fp32 (the default), as the run trained.
    let output = reslab(&["eval", "--model", "plain-8", "--weights", arg(&weights)]);
    assert!(output.status.success() && stderr(&output).is_empty(), "{}", stderr(&output));
    assert!(stdout(&output).starts_with("precision: fp32, as the weights were trained\n"), "{}", stdout(&output));
    // Weights of a run that trained in bf16: its test errors were measured in bf16, and eval says so.
    let model = reslab::model::fresh(&"plain-8".parse().unwrap(), 0).unwrap();
    let origin = RunOrigin { precision: Precision::Bf16, config_digest: "0".repeat(64) };
    let bf16 = dir.path().join("bf16.safetensors");
    weights::save(&model.vs, 1, &WeightsMetadata::new(&model.spec, 32, Some(origin)), &bf16).unwrap();
    let output = reslab(&["eval", "--model", "plain-8", "--weights", arg(&bf16)]);
    assert!(output.status.success() && stderr(&output).is_empty(), "{}", stderr(&output));
    let precision = "precision: fp32; the weights were trained in bf16, which their run's test errors were \
                     measured in (--precision bf16 repeats those; fp32 differs slightly)\n";
    assert!(stdout(&output).starts_with(precision), "{}", stdout(&output));
}

#[test]
fn export_run_refuses_another_networks_weights_and_carries_the_runs_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let copy = residual_named_copy(dir.path(), "named-resnet");
    let out = dir.path().join("exported.safetensors");
    let line = format!(
        "{} holds plain-8 weights; expected resnet-8 (A), as {} says: ",
        copy.join("model.safetensors").display(),
        copy.join("config.toml").display()
    );
    assert_refused(&["export", "--run", arg(&copy), "--out", arg(&out)], dir.path(), &copy, &line);

    let output = reslab(&["export", "--run", arg(plain_run()), "--out", arg(&out)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let metadata = weights::read_metadata(&out).unwrap().expect("reslab's metadata");
    assert_eq!(Some(metadata.clone()), weights::read_metadata(&plain_run().join("model.safetensors")).unwrap());
    assert_eq!((metadata.model.to_string(), metadata.model.classes(), metadata.input_size), ("plain-8".into(), 10, 32));
    let Some(RunOrigin { precision, config_digest }) = metadata.run else { panic!("no run in {metadata:?}") };
    assert_eq!(precision, Precision::Fp32);
    let config = reslab::run::RunConfig::load(&plain_run().join("config.toml")).unwrap();
    assert_eq!(config_digest, config.identity_digest());
}

#[test]
fn the_analyses_refuse_a_run_holding_another_networks_weights_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let copy = residual_named_copy(dir.path(), "named-resnet");
    let out = dir.path().join("analysis");
    let line = format!(
        "run {}: {} holds plain-8 weights; expected resnet-8 (A), as ",
        arg(&copy),
        arg(&copy.join("model.safetensors"))
    );
    let responses = ["analyze", "responses", arg(&copy), "--images", "10", "--out", arg(&out)];
    assert_refused(&responses, dir.path(), &copy, &line);
    let landscape = ["analyze", "landscape", arg(&copy), "--grid", "3", "--images", "10", "--out", arg(&out)];
    assert_refused(&landscape, dir.path(), &copy, &line);
    let shattering = ["analyze", "shattering", "--run", arg(&copy), "--depths", "8", "--out", arg(&out)];
    assert_refused(&shattering, dir.path(), &copy, &line);
}

#[test]
fn training_refuses_another_networks_checkpoint_before_recording_anything() {
    let dir = tempfile::tempdir().unwrap();
    let copy = residual_named_copy(dir.path(), "partial");
    // A run that has not finished: it would continue from its checkpoint.
    std::fs::remove_file(copy.join("summary.toml")).unwrap();
    std::fs::remove_file(copy.join("model.safetensors")).unwrap();
    let line = format!(
        "{} holds plain-8 weights; expected resnet-8 (A), the network being trained: ",
        arg(&copy.join("checkpoint.safetensors"))
    );
    assert_refused(&["train", "--resume", arg(&copy)], dir.path(), &copy, &line);
    let config = dir.path().join("resnet-8.toml");
    std::fs::copy(copy.join("config.toml"), &config).unwrap();
    assert_refused(&["train", "--config", arg(&config), "--out", arg(&copy)], dir.path(), &copy, &line);
}

#[test]
fn weights_without_metadata_load_with_one_line_saying_their_network_was_not_checked() {
    let dir = tempfile::tempdir().unwrap();
    // The run's tensors as a third party would write them (PyTorch's save_file): no reslab metadata.
    let tensors = Tensor::read_safetensors(plain_run().join("model.safetensors")).unwrap();
    let bare = dir.path().join("bare.safetensors");
    Tensor::write_safetensors(&tensors, &bare).unwrap();
    let warning = |file: &Path| {
        format!(
            "warning: {} has no reslab metadata, so its network could not be checked; loading it as plain-8 by \
             tensor names and shapes\n",
            file.display()
        )
    };
    let output = reslab(&["eval", "--model", "plain-8", "--weights", arg(&bare)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stderr(&output), warning(&bare));
    assert!(stdout(&output).starts_with("precision: fp32; the precision the weights were trained in is not recorded\n"));

    // A run of a reslab before metadata: its configuration still says what it trained in.
    let old = dir.path().join("old");
    std::fs::create_dir(&old).unwrap();
    std::fs::copy(plain_run().join("config.toml"), old.join("config.toml")).unwrap();
    std::fs::copy(&bare, old.join("model.safetensors")).unwrap();
    let output = reslab(&["eval", "--model", "plain-8", "--weights", arg(&old.join("model.safetensors"))]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stderr(&output), warning(&old.join("model.safetensors")));
    assert!(stdout(&output).starts_with("precision: fp32, as the weights were trained\n"), "{}", stdout(&output));
}
