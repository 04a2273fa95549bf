//! A study mirrored into a real MLflow tracking server (`mlflow server` from PyPI, installed into
//! the project's venv by `./run test`), read back through MLflow's own Python client: interrupted
//! and resumed (one MLflow run per run, no row twice), trained on while the server is stopped
//! (SIGSTOP: it hangs, the hardest outage), and caught up by `reslab aggregate --mlflow`.

mod common;
use common::*;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A tracking server on 127.0.0.1 in a process group of its own, killed with it at the end.
struct Server {
    child: Child,
    uri: String,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let mlflow = project_root().join(".venv/bin/mlflow");
        assert!(mlflow.is_file(), "{} is missing: ./run test installs MLflow into the venv", mlflow.display());
        // An empty, migrated database made once by ./run test: a fresh one costs ~15 s of migrations.
        let template = project_root().join(".venv/mlflow-empty.db");
        if !template.is_file() {
            let status = Command::new(&mlflow)
                .args(["db", "upgrade", &format!("sqlite:///{}", template.display())])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "mlflow db upgrade failed");
        }
        std::fs::copy(&template, dir.join("mlflow.db")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let child = Command::new(&mlflow)
            .args(["server", "--host", "127.0.0.1", "--port", &port.to_string(), "--workers", "1"])
            .arg("--backend-store-uri")
            .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
            .arg("--artifacts-destination")
            .arg(dir.join("artifacts"))
            .current_dir(dir)
            // Its seven job runners poll at ~5 % of a core each; the test uses no jobs.
            .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        let server = Server { child, uri: format!("http://127.0.0.1:{port}") };
        let health = format!("{}/health", server.uri);
        wait_for("the MLflow server to answer", Duration::from_secs(90), || {
            ureq::get(&health).timeout(Duration::from_secs(2)).call().is_ok()
        });
        server
    }

    /// Sends `signal` to the server and its workers.
    fn signal(&self, signal: i32) {
        // SAFETY: signalling the process group this test started.
        assert_eq!(unsafe { libc::kill(-(self.child.id() as i32), signal) }, 0);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

fn rows_of(run: &Path) -> Vec<usize> {
    let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap_or_default();
    text.lines().skip(1).filter_map(|l| l.split(',').next()?.parse().ok()).collect()
}

fn reproduce(study: &Path, out: &Path, uri: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_reslab"));
    command
        .arg("reproduce")
        .arg(study)
        .args(["--jobs", "1", "--threads", "2", "--precision", "fp32", "--kernels", "exact", "--mlflow", uri, "--out"])
        .arg(out)
        .env("RESLAB_MLFLOW_FLUSH_S", "2");
    command
}

/// What the server has, through MLflow's Python client, as JSON.
fn read_back(uri: &str, experiment: &str) -> serde_json::Value {
    let script = r#"
import json, sys
from mlflow.tracking import MlflowClient
client = MlflowClient(sys.argv[1])
experiment = client.get_experiment_by_name(sys.argv[2])
runs = []
for run in client.search_runs([experiment.experiment_id]):
    history = {key: sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
               for key in ("train_err", "test_err", "lr")}
    runs.append({"id": run.info.run_id, "name": run.info.run_name, "status": run.info.status,
                 "params": run.data.params, "tags": run.data.tags, "steps": history,
                 "artifacts": sorted(a.path for a in client.list_artifacts(run.info.run_id))})
print(json.dumps(runs))
"#;
    let output = python().args(["-c", script, uri, experiment]).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn a_study_in_mlflow_survives_an_interruption_and_a_hung_server_with_no_row_twice() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let study = dir.path().join("tracked.toml");
    std::fs::write(&study, small_study("tracked", &["plain-8", "resnet-8"], 1, 60)).unwrap();
    let out = dir.path().join("study");
    let first: PathBuf = out.join("plain-8-seed0");

    // Interrupted once the first run has rows on the server, held after its second row (it
    // cannot end first): it ends KILLED, and its re-run continues the same MLflow run.
    let holds = Holds::new(dir.path(), 20);
    let (key, value) = holds.env();
    let mut running =
        Children(vec![reproduce(&study, &out, &server.uri).env(key, value).stderr(Stdio::piped()).spawn().unwrap()]);
    holds.wait_held("plain-8-seed0", None);
    wait_for("rows of the first run on the server", Duration::from_secs(60), || {
        std::fs::read_to_string(first.join("mlflow.toml")).is_ok_and(|state| state.contains("sent_through"))
    });
    assert_running(&mut running[0], "the study");
    // SAFETY: signalling the study this test started.
    unsafe { libc::kill(running[0].id() as i32, libc::SIGINT) };
    let interrupted = running.pop().unwrap().wait_with_output().unwrap();
    assert!(!interrupted.status.success(), "the interrupted study succeeded");
    let mirror = std::fs::read_to_string(first.join("mlflow.toml")).unwrap();
    assert!(mirror.contains("run_id = ") && mirror.contains("status = \"KILLED\""), "{mirror}");

    // The server hangs (SIGSTOP) while the study trains to its end: the runs complete, a
    // warning says what was not sent and how to send it.
    server.signal(libc::SIGSTOP);
    let output = reproduce(&study, &out, &server.uri).output().unwrap();
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(err.contains(&format!("warning: MLflow at {}", server.uri)), "{err}");
    assert!(err.contains("not sent") && err.contains("`aggregate` in place of `reproduce`"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for run in ["plain-8-seed0", "resnet-8-seed0"] {
        assert!(out.join(run).join("summary.toml").is_file(), "{run} did not complete");
    }

    // Aggregating into a server that is not there writes the report and says nothing was lost.
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let aggregate = |uri: &str| {
        reslab(&["aggregate", &study.display().to_string(), "--out", &out.display().to_string(), "--mlflow", uri])
    };
    let refused = aggregate(&format!("http://127.0.0.1:{nowhere}"));
    assert_clean_error(&refused, &["sending the study to MLflow", "nothing is lost: run the same command again"]);
    assert!(out.join("report.html").is_file());

    // Back again: aggregate sends what it lacks, and the study's files to the parent run.
    server.signal(libc::SIGCONT);
    let sent = aggregate(&server.uri);
    assert!(sent.status.success(), "{}", stderr(&sent));

    let runs = read_back(&server.uri, "tracked");
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 3, "one MLflow run per run and the parent: {runs:#?}");
    let parent = runs.iter().find(|r| r["name"] == "tracked (smoke)").expect("the parent run");
    assert_eq!(parent["status"], "FINISHED");
    let artifacts: Vec<&str> = parent["artifacts"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    for file in ["report.html", "tracked.png", "summary.csv"] {
        assert!(artifacts.contains(&file), "{file} missing from the parent's artifacts: {artifacts:?}");
    }
    assert!(parent["tags"]["reslab.runs"].as_str().unwrap().starts_with("2 complete"), "{parent:#?}");
    for name in ["plain-8-seed0", "resnet-8-seed0"] {
        let run = runs.iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(run["status"], "FINISHED", "{run:#?}");
        assert_eq!(run["tags"]["mlflow.parentRunId"], parent["id"]);
        assert_eq!(run["tags"]["reslab.study"], "tracked");
        assert_eq!(run["tags"]["reslab.preset"], "smoke");
        assert_eq!(run["params"]["optim.lr"], "0.1");
        assert_eq!(run["params"]["optim.batch_size"], "32", "{:#?}", run["params"]);
        // Every row once, at its iteration: the steps are the file's.
        let expected: Vec<usize> = rows_of(&out.join(name));
        assert_eq!(expected.len(), 6, "{name}: {expected:?}");
        for key in ["train_err", "test_err", "lr"] {
            let steps: Vec<usize> =
                run["steps"][key].as_array().unwrap().iter().map(|s| s.as_u64().unwrap() as usize).collect();
            assert_eq!(steps, expected, "{name} {key}");
        }
    }

    // Started again from scratch (its checkpoint and summary gone), a run is a new MLflow run,
    // and the one it replaces is marked killed, saying why.
    for stale in ["summary.toml", "checkpoint.safetensors", "checkpoint.prev.safetensors"] {
        let _ = std::fs::remove_file(first.join(stale));
    }
    let again = reproduce(&study, &out, &server.uri).output().unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    let runs = read_back(&server.uri, "tracked");
    let plain: Vec<&serde_json::Value> =
        runs.as_array().unwrap().iter().filter(|r| r["name"] == "plain-8-seed0").collect();
    assert_eq!(plain.len(), 2, "the old and the new MLflow run: {plain:#?}");
    let replaced = plain.iter().find(|r| r["status"] == "KILLED").unwrap_or_else(|| panic!("{plain:#?}"));
    assert_eq!(replaced["tags"]["reslab.state"], "replaced: the run started again from scratch");
    let fresh = plain.iter().find(|r| r["status"] == "FINISHED").unwrap_or_else(|| panic!("{plain:#?}"));
    let steps: Vec<usize> =
        fresh["steps"]["train_err"].as_array().unwrap().iter().map(|s| s.as_u64().unwrap() as usize).collect();
    assert_eq!(steps, rows_of(&first), "the new run has every row of the new attempt");
}
