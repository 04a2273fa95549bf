//! A small client of MLflow's tracking REST API (`/api/2.0/mlflow/...`): the calls reslab needs
//! and nothing else. Every call has short timeouts, so a server that is down or hangs costs the
//! caller (a background thread) seconds, never training time.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::time::Duration;

/// A metric point: `key` at `step`, logged at `timestamp_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// The metric's name (a `metrics.csv` column).
    pub key: &'static str,
    /// Its value.
    pub value: f64,
    /// The iteration.
    pub step: usize,
    /// When it was measured, ms since 1970.
    pub timestamp_ms: u64,
}

/// Ends of an MLflow run as its API spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Being trained.
    Running,
    /// Complete, or diverged (a result too).
    Finished,
    /// Stopped by an error.
    Failed,
    /// Stopped before it was complete (interrupted, or its process gone).
    Killed,
}

impl Status {
    /// As the API spells it.
    pub fn name(self) -> &'static str {
        match self {
            Status::Running => "RUNNING",
            Status::Finished => "FINISHED",
            Status::Failed => "FAILED",
            Status::Killed => "KILLED",
        }
    }
}

/// MLflow's limits on one `runs/log-batch` request.
const METRICS_PER_BATCH: usize = 1000;
const PARAMS_PER_BATCH: usize = 100;
/// MLflow keeps a parameter's value up to this many characters.
const PARAM_VALUE_LIMIT: usize = 6000;

/// A call that failed: the server's answer (HTTP status and message), or none at all.
#[derive(Debug)]
pub struct CallError {
    /// The HTTP status of an answer; `None` when there was none (refused, timed out).
    pub status: Option<u16>,
    /// The server's message, or what went wrong on the way.
    pub message: String,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(code) => write!(f, "HTTP {code}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for CallError {}

/// An MLflow tracking server, by its address (`http://HOST:PORT`).
pub struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    /// A client of the server at `uri`; an error unless it is an `http(s)://` address.
    pub fn new(uri: &str) -> Result<Client> {
        let base = uri.trim_end_matches('/').to_string();
        let host = base.strip_prefix("http://").or_else(|| base.strip_prefix("https://")).unwrap_or_default();
        if host.is_empty() || host.contains(char::is_whitespace) {
            bail!(
                "MLflow tracking URI '{uri}': expected a tracking server's address, http://HOST:PORT \
                 (start one with `mlflow server`; file stores and databricks are not supported)"
            );
        }
        let agent =
            ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(2)).timeout(Duration::from_secs(5)).build();
        Ok(Client { base, agent })
    }

    /// The address, as given without a trailing slash.
    pub fn uri(&self) -> &str {
        &self.base
    }

    /// The answer to a call of `endpoint` (at `url`), as JSON; an error in one short line.
    fn answer(endpoint: &str, response: Result<ureq::Response, ureq::Error>) -> Result<Value, CallError> {
        match response {
            Ok(response) => {
                let text = response
                    .into_string()
                    .map_err(|e| CallError { status: None, message: format!("{endpoint}: reading the answer: {e}") })?;
                Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            Err(ureq::Error::Status(code, response)) => {
                let text = response.into_string().unwrap_or_default();
                let message = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v["message"].as_str().map(String::from))
                    .unwrap_or(text);
                let first_line = message.lines().next().unwrap_or_default();
                Err(CallError { status: Some(code), message: format!("{endpoint}: {first_line}") })
            }
            Err(ureq::Error::Transport(transport)) => {
                use std::error::Error;
                // The kind says little ("Connect error"); the cause says why ("Connection refused").
                let mut why: Vec<String> = transport.message().map(String::from).into_iter().collect();
                why.extend(transport.source().map(|cause| cause.to_string()));
                if why.is_empty() {
                    why.push(transport.kind().to_string());
                }
                let why = why.join(": ");
                Err(CallError { status: None, message: format!("{endpoint}: {why}") })
            }
        }
    }

    fn post(&self, endpoint: &str, body: Value) -> Result<Value, CallError> {
        let url = format!("{}/api/2.0/mlflow/{endpoint}", self.base);
        let response = self.agent.post(&url).set("Content-Type", "application/json").send_string(&body.to_string());
        Self::answer(endpoint, response)
    }

    fn get(&self, endpoint: &str, query: &[(&str, &str)]) -> Result<Value, CallError> {
        let url = format!("{}/api/2.0/mlflow/{endpoint}", self.base);
        let mut request = self.agent.get(&url);
        for (key, value) in query {
            request = request.query(key, value);
        }
        Self::answer(endpoint, request.call())
    }

    /// The id of the experiment `name`, created if there is none.
    pub fn experiment_id(&self, name: &str) -> Result<String> {
        let by_name = || self.get("experiments/get-by-name", &[("experiment_name", name)]);
        let found = match by_name() {
            Ok(found) => found,
            Err(CallError { status: Some(404), .. }) => {
                match self.post("experiments/create", json!({ "name": name })) {
                    Ok(created) => return text_field(&created, &["experiment_id"]),
                    // Created meanwhile by another process.
                    Err(_) => by_name()?,
                }
            }
            Err(e) => return Err(e).with_context(|| format!("finding MLflow experiment '{name}'")),
        };
        text_field(&found, &["experiment", "experiment_id"])
    }

    /// The run of `experiment_id` tagged `key = value`, if there is one.
    pub fn find_run(&self, experiment_id: &str, key: &str, value: &str) -> Result<Option<CreatedRun>> {
        let filter = format!("tags.`{key}` = '{value}'");
        let found =
            self.post("runs/search", json!({ "experiment_ids": [experiment_id], "filter": filter, "max_results": 1 }))?;
        found["runs"]
            .as_array()
            .and_then(|runs| runs.first())
            .map(|run| CreatedRun::from_info(&run["info"]))
            .transpose()
    }

    /// A new run of `experiment_id` named `name`, with `tags`.
    pub fn create_run(
        &self,
        experiment_id: &str,
        name: &str,
        start_ms: u64,
        tags: &[(String, String)],
    ) -> Result<CreatedRun> {
        let tags: Vec<Value> = tags.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect();
        let created = self.post(
            "runs/create",
            json!({ "experiment_id": experiment_id, "run_name": name, "start_time": start_ms, "tags": tags }),
        )?;
        CreatedRun::from_info(&created["run"]["info"])
    }

    /// Logs `params` and `tags` to `run_id`, in as many requests as MLflow's limits need.
    pub fn log_params(&self, run_id: &str, params: &[(String, String)], tags: &[(String, String)]) -> Result<()> {
        let pairs = |list: &[(String, String)]| -> Vec<Value> {
            list.iter()
                .map(|(k, v)| json!({ "key": k, "value": v.chars().take(PARAM_VALUE_LIMIT).collect::<String>() }))
                .collect()
        };
        for chunk in params.chunks(PARAMS_PER_BATCH) {
            self.post("runs/log-batch", json!({ "run_id": run_id, "params": pairs(chunk) }))?;
        }
        for chunk in tags.chunks(PARAMS_PER_BATCH) {
            self.post("runs/log-batch", json!({ "run_id": run_id, "tags": pairs(chunk) }))?;
        }
        Ok(())
    }

    /// Logs `metrics` to `run_id` in one request (at most [`METRICS_PER_BATCH`]).
    pub fn log_metrics(&self, run_id: &str, metrics: &[Metric]) -> Result<()> {
        assert!(metrics.len() <= METRICS_PER_BATCH, "a batch of {} metrics", metrics.len());
        let metrics: Vec<Value> = metrics
            .iter()
            .map(|m| json!({ "key": m.key, "value": m.value, "step": m.step, "timestamp": m.timestamp_ms }))
            .collect();
        self.post("runs/log-batch", json!({ "run_id": run_id, "metrics": metrics }))?;
        Ok(())
    }

    /// The highest step the server has of `key` in `run_id` (none if it has no point).
    pub fn last_step(&self, run_id: &str, key: &str) -> Result<Option<usize>> {
        let history = self.get("metrics/get-history", &[("run_id", run_id), ("metric_key", key)])?;
        let steps = history["metrics"].as_array().into_iter().flatten().filter_map(|m| m["step"].as_u64());
        Ok(steps.max().map(|s| s as usize))
    }

    /// Sets `run_id`'s status (and its end time, unless it is running again).
    pub fn set_status(&self, run_id: &str, status: Status, now_ms: u64) -> Result<()> {
        let mut body = json!({ "run_id": run_id, "status": status.name() });
        if status != Status::Running {
            body["end_time"] = json!(now_ms);
        }
        self.post("runs/update", body)?;
        Ok(())
    }

    /// Uploads `bytes` as the artifact `name` of the run whose artifacts are at `artifact_uri`,
    /// through the server's artifact proxy (`mlflow server --serve-artifacts`, its default).
    pub fn upload(&self, artifact_uri: &str, name: &str, bytes: Vec<u8>) -> Result<()> {
        let Some(path) = proxied_path(artifact_uri) else {
            bail!(
                "the MLflow server keeps artifacts at {artifact_uri}, which reslab cannot write to; \
                 start it with --serve-artifacts (MLflow's default)"
            );
        };
        let url = format!("{}/api/2.0/mlflow-artifacts/artifacts/{path}/{name}", self.base);
        // A report or chart may take longer than a call's 5 s on a slow link.
        let request = self.agent.put(&url).timeout(Duration::from_secs(60));
        let response = request.set("Content-Type", "application/octet-stream").send_bytes(&bytes);
        Self::answer("mlflow-artifacts", response).with_context(|| format!("uploading {name}"))?;
        Ok(())
    }
}

/// A run as the server made it.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedRun {
    /// The run's id.
    pub run_id: String,
    /// Where its artifacts go (`mlflow-artifacts:/...` through the server's proxy).
    pub artifact_uri: String,
}

impl CreatedRun {
    fn from_info(info: &Value) -> Result<CreatedRun> {
        Ok(CreatedRun {
            run_id: text_field(info, &["run_id"])?,
            artifact_uri: info["artifact_uri"].as_str().unwrap_or_default().to_string(),
        })
    }
}

/// The path under the server's artifact proxy of an `mlflow-artifacts:` URI
/// (`mlflow-artifacts:/1/RUN/artifacts`, or with a host: `mlflow-artifacts://host:5000/1/RUN/artifacts`).
fn proxied_path(artifact_uri: &str) -> Option<String> {
    let rest = artifact_uri.strip_prefix("mlflow-artifacts:")?;
    let path = match rest.strip_prefix("//") {
        Some(with_host) => with_host.split_once('/').map_or("", |(_, path)| path),
        None => rest.trim_start_matches('/'),
    };
    Some(path.trim_end_matches('/').to_string()).filter(|p| !p.is_empty())
}

fn text_field(value: &Value, path: &[&str]) -> Result<String> {
    let mut at = value;
    for key in path {
        at = &at[key];
    }
    at.as_str().map(String::from).with_context(|| format!("MLflow's answer has no {}: {value}", path.join(".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_server_address_is_accepted() {
        assert!(Client::new("http://127.0.0.1:5000/").is_ok());
        assert_eq!(Client::new("https://mlflow.example.org").unwrap().uri(), "https://mlflow.example.org");
        for bad in ["./mlruns", "file:///tmp/mlruns", "databricks", "http://", "127.0.0.1:5000"] {
            let error = Client::new(bad).err().unwrap().to_string();
            assert!(error.contains(bad) && error.contains("http://HOST:PORT"), "{error}");
        }
    }

    #[test]
    fn artifact_uris_of_the_proxy_map_to_its_paths() {
        assert_eq!(proxied_path("mlflow-artifacts:/1/abc/artifacts").as_deref(), Some("1/abc/artifacts"));
        assert_eq!(proxied_path("mlflow-artifacts://h:5000/1/abc/artifacts/").as_deref(), Some("1/abc/artifacts"));
        assert_eq!(proxied_path("file:///tmp/mlruns/1/abc/artifacts"), None);
        assert_eq!(proxied_path("s3://bucket/1"), None);
    }

    #[test]
    fn a_server_that_is_not_there_is_an_error_soon() {
        // A port nothing listens on (bound, then closed).
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let client = Client::new(&format!("http://127.0.0.1:{port}")).unwrap();
        let error = format!("{:#}", client.experiment_id("x").unwrap_err());
        assert!(error.contains("experiments/get-by-name") && error.contains("refused"), "{error}");
    }
}
