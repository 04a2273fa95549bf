//! The command line end to end: the model zoo, bad input, training, and Figure 1's report.

mod common;
use common::*;
use std::path::Path;

#[test]
fn models_lists_the_zoo_as_csv() {
    let output = reslab(&["models", "--format", "csv"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("family,kind,depth,shortcut,block,name,params,macs"));
    let rows: Vec<&str> = lines.collect();
    assert!(rows.contains(&"cifar,resnet,20,A,post,resnet-20,269722,40551040"), "{out}");
    assert!(rows.contains(&"cifar,plain,56,-,post,plain-56,853018,125485696"), "{out}");
    assert!(rows.contains(&"cifar,resnet,1202,A,post,resnet-1202,19421274,2829238912"), "{out}");
    assert!(rows.iter().any(|r| r.starts_with("cifar,resnet,56,C,post,resnet-56,900858,")), "{out}");
    // Every variant of He et al. (2016), the highway gate and ResNeXt, with params and MACs.
    for prefix in [
        "cifar,resnet,20,highway,post,resnet-20,",
        "cifar,resnet,110,A,pre,resnet-110-pre,",
        "cifar,resnet,110,A,bn-after-add,resnet-110-bn-after-add,",
        "cifar,resnet,110,A,no-relu-after-add,resnet-110-no-relu-after-add,",
        "cifar,resnet,164,B,pre,resnet-164-pre,",
        "cifar,resnet,1001,B,pre,resnet-1001-pre,",
        "cifar,resnext,29,B,post,resnext-29-8x64d,",
        "imagenet,resnext,50,B,post,resnext-50-32x4d,25028904,",
        "imagenet,resnext,101,B,post,resnext-101-32x8d,88791336,",
        "imagenet,resnet,34,highway,post,resnet-34,",
    ] {
        assert!(rows.iter().any(|r| r.starts_with(prefix)), "{prefix} missing: {out}");
    }
}

/// `reslab bench` in each mode, and beside the PyTorch reference (`../shared/bench`): it runs
/// and ends with the reference's `img_per_s=` line. A benchmark, not a timed test.
#[test]
fn bench_measures_each_mode_and_ends_with_its_img_per_s_line() {
    let quick = ["--model", "resnet-8", "--iters", "2", "--warmup", "1", "--rounds", "1", "--batch-size", "32"];
    let runs: [&[&str]; 4] = [
        &["--mode", "step", "--precision", "fp32", "--kernels", "exact", "--reference"],
        &[
            "--mode",
            "train",
            "--precision",
            "bf16",
            "--kernels",
            "exact",
            "--reference",
            "--reference-precision",
            "fp32",
        ],
        &["--mode", "eval", "--precision", "fp32"],
        &["--mode", "train", "--no-augment", "--contiguous", "--precision", "fp32", "--kernels", "exact"],
    ];
    for extra in runs {
        let output = reslab(&[&["bench"][..], &quick, extra].concat());
        let out = stdout(&output);
        assert!(output.status.success(), "{extra:?}: {}", stderr(&output));
        let last = out.lines().last().unwrap_or_default();
        let value: f64 = last.strip_prefix("img_per_s=").and_then(|v| v.parse().ok()).unwrap_or(-1.0);
        assert!(value > 0.0, "{extra:?}: last line {last:?} of {out}");
        assert_eq!(extra.contains(&"--reference"), out.contains("ratio="), "{extra:?}: {out}");
    }
    let output = reslab(&[&["bench"][..], &quick, &["--mode", "eval", "--reference"]].concat());
    assert_clean_error(&output, &["no evaluation mode"]);
}

#[test]
fn bad_input_gets_one_clear_line_and_a_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-data");
    let output = reslab(&["train", "--model", "plain-20", "--data", missing.to_str().unwrap(), "--iters", "1"]);
    assert_clean_error(&output, &["no-such-data", "does not exist", "cifar-10-batches-bin"]);

    // A folder whose first batch is truncated by one byte.
    let folder = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir_all(&folder).unwrap();
    let mut record = vec![1u8; 3073];
    for name in [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ] {
        std::fs::write(folder.join(name), &record).unwrap();
    }
    record.pop();
    std::fs::write(folder.join("data_batch_1.bin"), &record).unwrap();
    let output = reslab(&[
        "eval",
        "--model",
        "resnet-20",
        "--weights",
        "/nonexistent.safetensors",
        "--data",
        folder.to_str().unwrap(),
    ]);
    assert_clean_error(&output, &["/nonexistent.safetensors", "does not exist"]);
    let out = dir.path().join("run");
    let output = reslab(&[
        "train",
        "--model",
        "plain-8",
        "--data",
        folder.to_str().unwrap(),
        "--iters",
        "1",
        "--kernels",
        "exact",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_clean_error(&output, &["data_batch_1.bin", "3072 bytes", "multiple of 3,073"]);

    // A label byte above 9.
    std::fs::write(folder.join("data_batch_1.bin"), [vec![12u8], vec![0u8; 3072]].concat()).unwrap();
    let output = reslab(&[
        "train",
        "--model",
        "plain-8",
        "--data",
        folder.to_str().unwrap(),
        "--iters",
        "1",
        "--kernels",
        "exact",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_clean_error(&output, &["data_batch_1.bin", "label 12", "expected 0-9"]);

    // Unknown experiment; an experiment file with a bad model.
    assert_clean_error(&reslab(&["reproduce", "fig7x"]), &["unknown experiment 'fig7x'"]);
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\ntitle = \"x\"\n[[runs]]\nmodel = \"resnet-21\"\n[presets.demo]\niters = 1\neval_every = 1\n",
    )
    .unwrap();
    assert_clean_error(&reslab(&["reproduce", bad.to_str().unwrap()]), &["bad.toml", "resnet-21", "6n+2"]);

    // A tracker's address that is not a server's, refused before anything trains.
    let study = dir.path().join("study");
    let output = reslab(&[
        "reproduce",
        "fig1",
        "--preset",
        "smoke",
        "--jobs",
        "1",
        "--mlflow",
        "file:///tmp/mlruns",
        "--out",
        study.to_str().unwrap(),
    ]);
    assert_clean_error(&output, &["--mlflow", "'file:///tmp/mlruns'", "http://HOST:PORT"]);
    assert!(!study.join("plain-8-seed0").join("config.toml").exists(), "a run started");
}

#[test]
fn an_unknown_option_is_refused_by_the_argument_parser() {
    let output = reslab(&["train", "--model", "plain-20", "--bogus"]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.lines().next().unwrap().contains("'--bogus'"), "{err}");
}

#[test]
fn a_bad_argument_or_environment_value_is_one_line_and_the_timeout_variable_needs_no_distributed_run() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_reslab"))
        .args(["train", "--model", "plain-8", "--iters", "1", "--data", "embedded", "--distributed"])
        .env("RESLAB_DIST_TIMEOUT_S", "soon")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert_eq!(err.lines().filter(|l| !l.trim().is_empty()).count(), 1, "{err}");
    assert!(err.contains("'soon'") && err.contains("RESLAB_DIST_TIMEOUT_S") && err.contains("at least 1"), "{err}");
    let output = reslab(&["train", "--model", "plain-8", "--iter", "3"]);
    assert_eq!(stderr(&output).lines().count(), 1, "{}", stderr(&output));
    assert!(stderr(&output).contains("'--iters'"), "{}", stderr(&output));
    // A cluster job exports the variable to every task; a one-process run just ignores it.
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_reslab"))
        .args(["train", "--model", "plain-8", "--iters", "1", "--eval-every", "1", "--batch-size", "8"])
        .args([
            "--precision",
            "fp32",
            "--kernels",
            "exact",
            "--data",
            "embedded",
            "--out",
            dir.path().to_str().unwrap(),
        ])
        .env("RESLAB_DIST_TIMEOUT_S", "5")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn an_unknown_model_is_refused_by_the_argument_parser() {
    let output = reslab(&["train", "--model", "resnet-21"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.lines().next().unwrap().contains("resnet-21") && err.contains("6n+2"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A bf16 run records its precision, and its weights evaluated in bf16 give its last row's test
/// error (on the embedded sample: cheap also where bf16 is emulated, on CPUs without it natively).
#[test]
fn a_bf16_run_records_its_precision_and_evaluates_in_bf16_to_its_last_row() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plain-8-bf16");
    let output = reslab(&[
        "train",
        "--model",
        "plain-8",
        "--iters",
        "4",
        "--eval-every",
        "4",
        "--batch-size",
        "32",
        "--seed",
        "1",
        "--precision",
        "bf16",
        "--kernels",
        "exact",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("precision: bf16, as asked"), "{}", stdout(&output));
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("precision = \"bf16\"") && config.contains("device = \"cpu\""), "{config}");
    let rows = read_rows(&out);
    assert_eq!(rows.len(), 1);
    let weights = out.join("model.safetensors");
    let output = reslab(&["eval", "--model", "plain-8", "--weights", weights.to_str().unwrap(), "--precision", "bf16"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let last = rows[0][5].parse::<f64>().unwrap();
    assert!(stdout(&output).contains(&format!("test error {last:.2}%")), "{}", stdout(&output));

    // The device it ran on, in the summary and in each start's row.
    let summary = std::fs::read_to_string(out.join("summary.toml")).unwrap();
    assert!(summary.lines().any(|l| l == "device = \"cpu\""), "{summary}");
    let attempts = std::fs::read_to_string(out.join("attempts.csv")).unwrap();
    let lines: Vec<&str> = attempts.lines().collect();
    assert_eq!(lines.len(), 2, "{attempts}");
    assert!(lines[0].ends_with(",start_iteration,device") && lines[1].ends_with(",0,cpu"), "{attempts}");
    // Resumed on another device than its last start's (as if that had been a GPU): it continues
    // and says so.
    std::fs::write(out.join("attempts.csv"), format!("{}\n{}\n", lines[0], lines[1].replace(",cpu", ",cuda:0")))
        .unwrap();
    std::fs::remove_file(out.join("summary.toml")).unwrap();
    let output = reslab(&["train", "--resume", out.to_str().unwrap(), "--device", "cpu"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let note = format!("note: {} resumes on cpu at iteration 4; its previous start ran on cuda:0", out.display());
    assert!(stderr(&output).contains(&note), "{}", stderr(&output));
    assert!(std::fs::read_to_string(out.join("attempts.csv")).unwrap().ends_with(",4,cpu\n"));
}

#[test]
fn a_device_that_is_not_there_is_one_line_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    // No machine has a GPU numbered 99: refused wherever the suite runs (the line's middle says
    // whether there is any GPU).
    let train = ["train", "--model", "plain-8", "--iters", "2", "--device", "cuda:99", "--out", "run"];
    let study = ["reproduce", "fig1", "--preset", "smoke", "--iters", "2", "--device", "cuda:99", "--out", "study"];
    let eval = ["eval", "--model", "plain-8", "--weights", "w.safetensors", "--device", "cuda:99"];
    for args in [&train[..], &study[..]] {
        let output = reslab_in(dir.path(), args);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {err}");
        assert!(lines[0].starts_with("error: device cuda:99: ") && lines[0].ends_with("cpu or auto"), "{err}");
        assert_untouched(dir.path());
    }
    std::fs::write(dir.path().join("w.safetensors"), b"").unwrap();
    let output = reslab_in(dir.path(), &eval);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("device cuda:99: "), "{}", stderr(&output));
    let output = reslab_in(dir.path(), &["train", "--model", "plain-8", "--device", "gpu"]);
    assert_argument_error(&output, &["'gpu'", "--device", "expected auto, cpu, cuda or cuda:N"]);
}

#[test]
fn a_diverging_run_stops_with_a_clear_message_and_keeps_its_csv() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("diverged");
    let output = reslab(&[
        "train",
        "--model",
        "plain-8",
        "--iters",
        "50",
        "--eval-every",
        "1",
        "--lr",
        "1e12",
        "--batch-size",
        "32",
        "--kernels",
        "exact",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_clean_error(&output, &["diverged at iteration", "metrics.csv"]);
    assert!(out.join("metrics.csv").is_file());
    assert!(!out.join("model.safetensors").exists(), "no final weights for a diverged run");
    let summary = std::fs::read_to_string(out.join("summary.toml")).unwrap();
    assert!(summary.contains("status = \"diverged\""), "{summary}");
}

#[test]
fn reproduce_fig1_writes_the_chart_the_table_and_each_runs_csv() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fig1");
    let output = reslab(&[
        "reproduce",
        "fig1",
        "--seeds",
        "1",
        "--iters",
        "4",
        "--eval-every",
        "2",
        "--precision",
        "fp32",
        "--kernels",
        "exact",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    for run in ["plain-20-seed0", "plain-56-seed0"] {
        assert_eq!(read_rows(&out.join(run)).len(), 2);
    }
    let png = std::fs::read(out.join("fig1.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&png[12..16], b"IHDR");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (1280, 640), "Figure 1's two panels");
    let svg = std::fs::read_to_string(out.join("fig1.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("training error") && svg.contains("test error"), "{svg}");
    assert!(svg.contains("plain-56"));
    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert!(summary.starts_with("run,model,shortcut,params,macs,iters,final_train_err"), "{summary}");
    assert_eq!(summary.lines().count(), 3);
    // One seed each: the claim cannot be told, and the line says why and what would tell it.
    let text = stdout(&output);
    assert!(text.contains("final training error, plain-56 - plain-20: "), "{text}");
    assert!(text.contains("INCONCLUSIVE") && text.contains("--seeds 3 gives each statistic a 95% interval"), "{text}");
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("<svg") && report.contains("plain-56-seed0"), "the study's report.html");
    let opening = "<p class=\"summary\">Trained 2 networks (plain-20, plain-56), one seed (0), for 4 iterations \
                   (under 0.1% of the paper&#39;s 64,000) on the embedded CIFAR-10 sample. All 2 runs are complete.";
    assert!(report.contains(opening), "the report opens with what ran: {report}");
    assert!(out.join("experiment.toml").is_file());

    // `aggregate` redraws the figure on a log axis of a fixed range; a log axis from 0 is refused.
    let study = ["fig1", "--seeds", "1", "--iters", "4", "--eval-every", "2", "--out", out.to_str().unwrap()];
    let log = [&["aggregate"], &study[..], &["--y-scale", "log", "--y-range", "1:100"]].concat();
    let output = reslab(&log);
    assert!(output.status.success(), "{}", stderr(&output));
    let svg = std::fs::read_to_string(out.join("fig1.svg")).unwrap();
    let tick = |label: &str| svg.contains(&format!(">\n{label}\n</text>"));
    assert!(tick("50") && tick("5") && !tick("40"), "ticks at 1, 2, 5 x 10^k");
    let from_zero = [&["aggregate"], &study[..], &["--y-scale", "log", "--y-range", "0:50"]].concat();
    assert_clean_error(&reslab(&from_zero), &["--y-scale", "0:50", "a log axis has no 0"]);
}

#[test]
fn reproduce_abc_writes_the_ablation_table_for_the_chosen_depth() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("abc");
    let output = reslab(&[
        "reproduce",
        "abc",
        "--kernels",
        "exact",
        "--data",
        "embedded",
        "--depths",
        "20",
        "--iters",
        "2",
        "--eval-every",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = std::fs::read_to_string(out.join("table_abc.csv")).unwrap();
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 5 + 4, "a row per network, then per claim: {table}");
    assert!(rows[0].starts_with("run,model,shortcut,params,seeds,final_train_err_mean"), "{table}");
    assert!(rows[1].starts_with("plain-20,plain-20,plain,269722,1,"), "{table}");
    assert!(rows[2].starts_with("resnet-20,resnet-20,A,269722,1,"), "{table}");
    assert!(rows[3].starts_with("resnet-20-B,resnet-20,B,272474,1,"), "{table}");
    assert!(rows[4].starts_with("resnet-20-C,resnet-20,C,283962,1,"), "{table}");
    assert!(rows[2].contains(",8.75,"), "the paper's Table 6 number beside option A: {table}");
    let md = std::fs::read_to_string(out.join("table_abc.md")).unwrap();
    assert!(md.contains("| resnet-20-C |") && md.contains("allowed within ±3"), "{md}");
    assert!(out.join("abc.png").is_file() && out.join("abc.svg").is_file());
}

/// Seeds as a grid axis, run two at a time as child processes; aggregation gives mean ± std over
/// seeds and the context rows; a second invocation finds every run complete and trains nothing.
#[test]
fn reproduce_table6_over_two_seeds_with_two_jobs_then_skips_complete_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("table6");
    let args = [
        "reproduce",
        "table6",
        "--kernels",
        "exact",
        "--preset",
        "smoke",
        "--depths",
        "20",
        "--seeds",
        "2",
        "--jobs",
        "2",
        "--iters",
        "2",
        "--eval-every",
        "2",
        "--out",
        out.to_str().unwrap(),
    ];
    let output = reslab(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    // Not a terminal: each child's progress lines still reach the output (a log file, CI).
    for seed in [0, 1] {
        assert!(stdout(&output).contains(&format!("resnet-20-seed{seed}: resnet-20  iter 2/2")), "{}", stdout(&output));
    }
    for seed in [0, 1] {
        let run = out.join(format!("resnet-20-seed{seed}"));
        assert_eq!(read_rows(&run).len(), 1);
        let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
        // Two jobs share the cores.
        let threads = (std::thread::available_parallelism().unwrap().get() / 2).max(1);
        assert!(
            config.contains(&format!("seed = {seed}")) && config.contains(&format!("threads = {threads}")),
            "{config}"
        );
    }
    let table = std::fs::read_to_string(out.join("table6.csv")).unwrap();
    let rows: Vec<&str> = table.lines().collect();
    assert!(rows[1].starts_with("resnet-20,resnet-20,A,269722,2,"), "{table}");
    assert!(rows[1].ends_with(",8.75,,,,"), "{table}");
    assert!(rows.iter().any(|r| r.starts_with("Highway,") && r.contains("7.54 (7.72±0.16)")), "{table}");
    let md = std::fs::read_to_string(out.join("table6.md")).unwrap();
    assert!(md.contains(" ± ") && md.contains("| Highway (published) |"), "{md}");
    assert_eq!(std::fs::read_to_string(out.join("summary.csv")).unwrap().lines().count(), 3);
    assert!(stderr(&output).contains("smoke leaves resnet-1202 out"), "{}", stderr(&output));

    let again = reslab(&args);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stderr(&again).contains("2 of 2 runs are complete already"), "{}", stderr(&again));

    // plan reads the same directories: both runs complete, their speed measured by the runs.
    let plan = reslab(&[
        "plan",
        "table6",
        "--preset",
        "smoke",
        "--depths",
        "20",
        "--seeds",
        "2",
        "--iters",
        "2",
        "--eval-every",
        "2",
        "--threads",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    let text = stdout(&plan);
    for seed in [0, 1] {
        assert!(text.contains(&format!("resnet-20-seed{seed}")), "{text}");
    }
    assert!(text.contains("2 runs in") && text.contains("2 complete"), "{text}");
    assert!(text.contains("measured by a run of resnet-20"), "{text}");
}

#[test]
fn a_full_disk_is_a_clear_error_and_leaves_no_half_written_file() {
    // A file-size limit makes writes fail the way a full disk does (EFBIG instead of ENOSPC).
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let command = format!(
        "ulimit -f 300; exec {} train --model plain-8 --iters 20 --eval-every 5 --batch-size 32 --out {}",
        env!("CARGO_BIN_EXE_reslab"),
        out.display()
    );
    let output = std::process::Command::new("bash").args(["-c", &command]).output().unwrap();
    assert_clean_error(&output, &["writing", "checkpoint.safetensors", "File too large"]);
    let names: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(
        !names.iter().any(|n| n.contains("tmp") || n.starts_with("checkpoint") || n == "summary.toml"),
        "{names:?}"
    );
}

/// `--precision auto` measures once per (machine, model, batch size, threads) and reuses the
/// cached choice; a forced precision never measures; a corrupt cache is ignored with a warning.
#[test]
fn auto_precision_is_measured_once_and_cached_and_a_forced_one_never_probes() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    // The CPU taken for one with native bf16 whatever it is (RESLAB_CPU_BF16), so the probe runs
    // on every machine; where bf16 is emulated it is slower, and auto says so.
    let train_on = |cpu_bf16: &str, precision: &str, seed: &str| {
        let out = dir.path().join(format!("run-{precision}-{seed}"));
        let args = ["train", "--model", "plain-8", "--iters", "2", "--eval-every", "2", "--batch-size", "32"];
        std::process::Command::new(env!("CARGO_BIN_EXE_reslab"))
            .args(args)
            .args(["--threads", "1", "--precision", precision, "--seed", seed, "--out", out.to_str().unwrap()])
            .args(["--kernels", "exact"])
            .env("RESLAB_CPU_BF16", cpu_bf16)
            .env("RESLAB_CACHE_DIR", &cache)
            // Other tests train beside this one: the probe must be cached all the same.
            .env("RESLAB_PROBE_SLACK_CORES", "64")
            .output()
            .unwrap()
    };
    let train = |precision: &str, seed: &str| train_on("yes", precision, seed);
    // A CPU without native bf16: auto takes fp32 without measuring.
    let without = train_on("no", "auto", "9");
    assert!(without.status.success(), "{}", stderr(&without));
    assert!(stdout(&without).contains("fp32 (auto: the CPU has no native bf16)"), "{}", stdout(&without));
    assert!(!stdout(&without).contains("measuring"), "{}", stdout(&without));
    let forced = train("fp32", "0");
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(stdout(&forced).contains("precision: fp32, as asked"), "{}", stdout(&forced));
    assert!(!stdout(&forced).contains("measuring"), "a forced precision never probes: {}", stdout(&forced));
    assert!(!cache.join("precision.toml").exists());

    let first = train("auto", "0");
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stdout(&first).contains("precision: measuring fp32 against bf16 for plain-8"), "{}", stdout(&first));
    // The verdict depends on this machine's speeds (bf16 faster, about as fast, or slower): every
    // wording says it was measured now, or earlier.
    let verdict = |out: &std::process::Output| {
        stdout(out).lines().find(|line| line.starts_with("precision: ") && line.contains("(auto: ")).map(str::to_owned)
    };
    let first_verdict = verdict(&first).unwrap_or_else(|| panic!("no auto verdict: {}", stdout(&first)));
    assert!(first_verdict.contains(" measured ") && !first_verdict.contains("earlier"), "{first_verdict}");
    let cached = std::fs::read_to_string(cache.join("precision.toml")).unwrap();
    assert!(cached.contains("plain-8 | batch 32 | 1 threads") && cached.contains("bf16_img_per_s"), "{cached}");

    let second = train("auto", "1");
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(!stdout(&second).contains("measuring"), "the cached choice is reused: {}", stdout(&second));
    let second_verdict = verdict(&second).unwrap_or_else(|| panic!("no auto verdict: {}", stdout(&second)));
    assert!(second_verdict.contains(" measured earlier "), "{second_verdict}");

    std::fs::write(cache.join("precision.toml"), "[[[ not toml").unwrap();
    let corrupt = train("auto", "2");
    assert!(corrupt.status.success(), "{}", stderr(&corrupt));
    assert!(stderr(&corrupt).contains("warning: ignoring the unreadable cache"), "{}", stderr(&corrupt));
    assert!(stdout(&corrupt).contains("measuring"), "{}", stdout(&corrupt));
}

/// `--kernels auto` is measured (exact against fused, here in fp32), recorded in config.toml and
/// summary.toml, and a run resumed with `auto` keeps its kernels whatever the cache says since.
#[test]
fn auto_kernels_are_measured_recorded_and_kept_when_the_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, out) = (dir.path().join("cache"), dir.path().join("run"));
    let holds = Holds::new(dir.path(), 2);
    let command = || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_reslab"));
        command
            .args(["train", "--model", "plain-8", "--iters", "4", "--eval-every", "2", "--batch-size", "32"])
            .args(["--threads", "1", "--precision", "fp32", "--kernels", "auto", "--out", out.to_str().unwrap()])
            .env("RESLAB_CACHE_DIR", &cache)
            // Other tests train beside this one: the probe must be cached all the same.
            .env("RESLAB_PROBE_SLACK_CORES", "64");
        command
    };
    // The first attempt, held at iteration 2 (after its checkpoint) and killed there.
    let (key, value) = holds.env();
    let mut first = command();
    let mut first = Children(vec![first.env(key, value).stdout(std::process::Stdio::piped()).spawn().unwrap()]);
    holds.wait_held("run", None);
    first[0].kill().unwrap();
    let first = first.0.pop().unwrap().wait_with_output().unwrap();
    let said = stdout(&first);
    assert!(said.contains("kernels: measuring exact against fused kernels for plain-8"), "{said}");
    let verdict = said
        .lines()
        .find(|l| l.starts_with("kernels: ") && l.contains("(auto: ") && l.contains(" measured "))
        .unwrap_or_else(|| {
            panic!("no measured verdict: {said}");
        });
    let chosen = if verdict.starts_with("kernels: fused") { "fused" } else { "exact" };
    let recorded = format!("kernels = \"{chosen}\"");
    assert!(std::fs::read_to_string(out.join("config.toml")).unwrap().contains(&recorded));

    // The cache now says the other kernels are twice as fast: the run keeps its own.
    let text = std::fs::read_to_string(cache.join("precision.toml")).unwrap();
    let mut table: toml::Table = toml::from_str(&text).unwrap();
    for (_, entry) in table.iter_mut() {
        let entry = entry.as_table_mut().unwrap();
        let (fast, slow) = if chosen == "fused" {
            ("fp32_img_per_s", "fp32_fused_img_per_s")
        } else {
            ("fp32_fused_img_per_s", "fp32_img_per_s")
        };
        entry.insert(fast.into(), toml::Value::Float(200.0));
        entry.insert(slow.into(), toml::Value::Float(100.0));
    }
    std::fs::write(cache.join("precision.toml"), toml::to_string(&table).unwrap()).unwrap();
    let resumed = command().output().unwrap();
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let said = stdout(&resumed);
    assert!(said.contains(&format!("kernels: {chosen} (auto: kept from the run already in")), "{said}");
    assert!(stderr(&resumed).contains("at iteration 2"), "resumed: {}", stderr(&resumed));
    assert!(std::fs::read_to_string(out.join("config.toml")).unwrap().contains(&recorded));
    let summary = std::fs::read_to_string(out.join("summary.toml")).unwrap();
    assert!(summary.contains(&recorded), "{summary}");
}

/// `reslab args` run in `dir` (where a default output folder would go).
fn reslab_in(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_reslab")).args(args).current_dir(dir).output().unwrap()
}

/// An argument error: exit code 2 and one `error:` line (clap's message on one line, with
/// `(see --help)`) naming each of `must_mention`.
fn assert_argument_error(output: &std::process::Output, must_mention: &[&str]) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line: {err}");
    assert!(lines[0].starts_with("error: ") && lines[0].ends_with("(see --help)"), "{err}");
    for needle in must_mention {
        assert!(err.contains(needle), "error should mention {needle:?}: {err}");
    }
}

/// Nothing was written in `dir`: no run directory, no default `results/`.
fn assert_untouched(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn more_threads_than_cores_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let cores = std::thread::available_parallelism().unwrap().get();
    let expected = format!("more than the {cores} cores this process may use; expected 0 (one per core) to {cores}");
    for threads in ["100000".to_string(), (cores + 1).to_string()] {
        let output = reslab_in(dir.path(), &["train", "--model", "resnet-8", "--threads", &threads, "--iters", "1"]);
        assert_argument_error(&output, &[&format!("'{threads}'"), "--threads", &expected]);
    }
    let output = reslab_in(dir.path(), &["reproduce", "fig1", "--threads", "100000"]);
    assert_argument_error(&output, &["--threads", &expected]);
    assert_untouched(dir.path());
}

#[test]
fn a_negative_number_is_called_negative() {
    let dir = tempfile::tempdir().unwrap();
    for (args, flag) in [
        (&["train", "--model", "resnet-8", "--iters", "-5"][..], "--iters"),
        (&["train", "--model", "resnet-8", "--threads", "-1"], "--threads"),
        (&["train", "--model", "resnet-8", "--lr", "-0.1"], "--lr"),
        (&["reproduce", "fig1", "--iters", "-5"], "--iters"),
        (&["reproduce", "fig1", "--seeds", "-1"], "--seeds"),
    ] {
        let value = args[args.len() - 1];
        assert_argument_error(&reslab_in(dir.path(), args), &[&format!("'{value}'"), flag, "negative"]);
    }
    assert_untouched(dir.path());
}

#[test]
fn lr_steps_the_run_never_reaches_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let train =
        ["train", "--model", "resnet-8", "--iters", "10", "--precision", "fp32", "--kernels", "exact", "--out", "run"];
    let output = reslab_in(dir.path(), &[&train[..], &["--lr-steps", "99999"]].concat());
    let outside = "step 99999 is outside the run's 10 iterations; expected iterations from 1 to 9";
    assert_clean_error(&output, &["--lr-steps 99999: ", outside, "--set lr_steps=[]"]);
    let output = reslab_in(dir.path(), &[&train[..], &["--set", "lr_steps=[99999]"]].concat());
    assert_clean_error(&output, &["--set lr_steps=[99999]: ", outside]);
    assert_untouched(dir.path());
}

#[test]
fn train_refuses_an_option_its_network_lacks_and_a_study_leaves_those_runs_alone() {
    let dir = tempfile::tempdir().unwrap();
    let plain =
        ["train", "--model", "plain-8", "--iters", "1", "--precision", "fp32", "--kernels", "exact", "--out", "run"];
    let lacks = "plain-8 is a plain net, which has no shortcuts; expected a residual net (resnet-N)";
    let output = reslab_in(dir.path(), &[&plain[..], &["--shortcut", "B"]].concat());
    assert_clean_error(&output, &["--shortcut B: ", lacks]);
    let output = reslab_in(dir.path(), &[&plain[..], &["--set", "shortcut=B"]].concat());
    assert_clean_error(&output, &["--set shortcut=B: ", lacks]);
    let output = reslab_in(dir.path(), &["train", "--model", "resnet-20", "--bottleneck-stride", "spatial"]);
    assert_clean_error(&output, &["--bottleneck-stride spatial: ", "resnet-20 is built of basic blocks"]);
    // A study applies it to the runs that have it, says which it left alone, and is refused only
    // where no run has it (a dry run on Slurm writes nothing and trains nothing).
    let study = ["reproduce", "abc", "--iters", "2", "--backend", "slurm", "--dry-run", "--out", "study"];
    let output = reslab_in(dir.path(), &[&study[..], &["--set", "shortcut=C"]].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    let note = "note: --set shortcut=C applies to 3 of 4 runs; it leaves plain-20 alone (plain nets have no shortcuts)";
    assert!(stderr(&output).contains(note), "{}", stderr(&output));
    let output = reslab_in(dir.path(), &["reproduce", "fig1", "--set", "shortcut=B"]);
    assert_clean_error(&output, &["--set shortcut=B: no run of experiment 'fig1' has it", "plain-20, plain-56"]);
    assert_untouched(dir.path());
}

#[test]
fn a_flag_is_spelled_one_way_everywhere_in_any_case() {
    let dir = tempfile::tempdir().unwrap();
    let study = ["reproduce", "abc", "--iters", "2", "--backend", "slurm", "--dry-run", "--out", "study"];
    let flags = ["--set", "augment=False", "--set", "warmup=OFF", "--set", "channels_last=Yes", "--set", "augment=0"];
    let output = reslab_in(dir.path(), &[&study[..], &flags].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    let output = reslab_in(dir.path(), &["train", "--model", "plain-8", "--set", "augment=maybe"]);
    assert_argument_error(&output, &["augment=maybe: expected true or false (or yes/no, on/off, 1/0; any case)"]);
    assert_untouched(dir.path());
}

/// `reproduce --backend slurm --dry-run` with every kind of cluster option: the study-wide ones
/// (partition, account, QoS, --sbatch) on both scripts it prints, each job's resources on its own.
#[test]
fn a_slurm_dry_run_puts_the_study_wide_options_on_every_job_and_each_jobs_resources_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let study =
        ["reproduce", "fig1", "--seeds", "1", "--iters", "2", "--backend", "slurm", "--dry-run", "--out", "study"];
    let every_job = ["--partition", "gpu", "--account", "proj42", "--qos", "long", "--sbatch=--mail-type=FAIL"];
    let training = ["--time", "04:00:00", "--cpus-per-task", "2", "--gpus-per-task", "1", "--mem", "16G"];
    let aggregation = ["--aggregate-time", "20", "--aggregate-cpus", "1", "--aggregate-mem", "2G"];
    let output = reslab_in(dir.path(), &[&study[..], &every_job, &training, &aggregation].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    // The dry run prints the array's script, then the aggregation's, each after a `# PATH` line.
    let lines: Vec<&str> = text.lines().collect();
    let start = |name: &str| lines.iter().position(|l| l.starts_with("# ") && l.ends_with(name)).expect(name);
    let (array_start, aggregate_start) = (start("/.slurm/array.sh"), start("/.slurm/aggregate.sh"));
    assert!(array_start < aggregate_start, "{text}");
    let directives = |script: &[&str]| -> Vec<String> {
        script.iter().filter_map(|l| l.strip_prefix("#SBATCH ").map(str::to_string)).collect()
    };
    let (array, aggregate) = (directives(&lines[array_start..aggregate_start]), directives(&lines[aggregate_start..]));
    let has = |lines: &[String], option: &str| lines.iter().any(|l| l == option);
    for option in ["--partition=gpu", "--account=proj42", "--qos=long", "--mail-type=FAIL"] {
        assert!(has(&array, option) && has(&aggregate, option), "{option} on every job:\n{text}");
    }
    for option in ["--time=04:00:00", "--cpus-per-task=2", "--gpus-per-task=1", "--mem=16G"] {
        assert!(has(&array, option) && !has(&aggregate, option), "{option} on the training tasks only:\n{text}");
    }
    for option in ["--time=00:20:00", "--cpus-per-task=1", "--mem=2G"] {
        assert!(has(&aggregate, option) && !has(&array, option), "{option} on the aggregation only:\n{text}");
    }
    assert_untouched(dir.path());
}

#[test]
fn a_cluster_option_sbatch_would_refuse_is_one_line_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let study = ["reproduce", "fig1", "--backend", "slurm", "--dry-run", "--out", "study"];
    for (option, value, expected) in [
        ("--account", "", "empty; expected a Slurm name"),
        ("--qos", "two words", "expected a Slurm name"),
        ("--partition", "gpu;rm", "expected a Slurm name"),
        ("--time", "4h", "expected a time limit as sbatch takes it"),
        ("--aggregate-time", "1:2:3:4", "expected a time limit as sbatch takes it"),
        ("--mem", "16GB", "expected memory as sbatch takes it"),
        ("--aggregate-mem", "lots", "expected memory as sbatch takes it"),
        ("--aggregate-cpus", "0", "expected a whole number, 1 or more"),
        ("--sbatch", "account=proj42", "expected an option as sbatch takes it"),
        ("--task-sbatch", "", "expected an option as sbatch takes it"),
    ] {
        let output = reslab_in(dir.path(), &[&study[..], &[option, value]].concat());
        assert_argument_error(&output, &[option, &format!("'{value}'"), expected]);
    }
    assert_untouched(dir.path());
}

#[test]
fn a_folder_without_cifar_is_refused_before_the_precision_probe_and_the_run_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let output = reslab_in(
        dir.path(),
        &["train", "--model", "plain-8", "--data", data.path().to_str().unwrap(), "--precision", "auto"],
    );
    let missing = data.path().join("data_batch_1.bin");
    assert_clean_error(&output, &[&format!("{} is missing", missing.display()), "cifar-10-batches-bin"]);
    assert!(stdout(&output).is_empty(), "nothing measured: {}", stdout(&output));
    assert_untouched(dir.path());
}

#[test]
fn a_missing_experiment_file_is_called_missing_and_the_names_include_paper() {
    let dir = tempfile::tempdir().unwrap();
    let output = reslab_in(dir.path(), &["plan", "exp/missing.toml"]);
    assert_clean_error(&output, &["experiment file exp/missing.toml does not exist", ", landscape, paper)"]);
    let output = reslab_in(dir.path(), &["plan", "fig9"]);
    assert_clean_error(&output, &["unknown experiment 'fig9'", ", landscape, paper)"]);
    assert_untouched(dir.path());
}

#[test]
fn an_os_error_is_words_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("no-such-folder/x.safetensors");
    let output = reslab(&["export", "--model", "resnet-8", "--out", out.to_str().unwrap()]);
    let folder = dir.path().join("no-such-folder");
    let err = assert_clean_error(
        &output,
        &[&format!("writing {}: the folder {} does not exist", out.display(), folder.display())],
    );
    assert!(!err.contains("Os {") && !err.contains(".tmp-"), "{err}");
    assert_untouched(dir.path());
}

#[test]
fn an_unknown_key_suggests_the_key_of_its_common_name() {
    let output = reslab(&["train", "--model", "plain-8", "--set", "lerning_rate=0.1"]);
    assert_argument_error(&output, &["unknown key 'lerning_rate'; nearest: lr,"]);
    let output = reslab(&["train", "--model", "plain-8", "--set", "wd=0"]);
    assert_argument_error(&output, &["unknown key 'wd'; nearest: weight_decay,"]);
}

/// The help of the study commands lists every built-in experiment with its presets' lengths and
/// its default preset as the registry (the experiment files) has them, and `paper`.
#[test]
fn study_help_lists_every_experiment_its_presets_lengths_and_default_from_the_registry() {
    use reslab::experiment::{paper, spec::BUILTIN, spec::PAPER, Experiment, Preset};
    for command in ["reproduce", "plan"] {
        let output = reslab(&[command, "--help"]);
        assert!(output.status.success(), "{}", stderr(&output));
        let help = stdout(&output);
        let listed: Vec<&str> =
            help.split_once("Built-in experiments").expect("a list of experiments").1.lines().collect();
        // Each experiment: a line with its name and title, then its presets.
        let mut entries = Vec::new();
        for pair in listed[1..].chunks(2) {
            let name = pair[0].split_whitespace().next().unwrap_or_default().to_string();
            entries.push((name, pair[1].trim().to_string()));
        }
        let mut expected: Vec<(String, String)> = BUILTIN
            .iter()
            .map(|(name, _)| {
                let experiment = Experiment::load(name).unwrap();
                let default = experiment.default_preset().unwrap();
                let presets: Vec<String> = Preset::ALL
                    .iter()
                    .filter_map(|p| experiment.presets.get(p.name()).map(|spec| (p, spec.iters)))
                    .map(|(p, iters)| format!("{} {iters}{}", p.name(), if *p == default { " (default)" } else { "" }))
                    .collect();
                (name.to_string(), presets.join(", "))
            })
            .collect();
        let paper_presets: Vec<String> = paper::presets()
            .unwrap()
            .iter()
            .map(|p| format!("{}{}", p.name(), if *p == paper::DEFAULT_PRESET { " (default)" } else { "" }))
            .collect();
        expected.push((PAPER.into(), format!("{}: each study at its own length", paper_presets.join(", "))));
        assert_eq!(entries, expected, "{command} --help:\n{help}");
    }
}
