//! A small client of MLflow's tracking REST API (`/api/2.0/mlflow/...`): the calls reslab needs
//! and nothing else. Every call has short timeouts, so a server that is down or hangs costs the
//! caller (a background thread) seconds, never training time.

use anyhow::{bail, Context, Result};
use base64::Engine;
use serde_json::{json, Value};
use std::time::Duration;

/// The user name for a server with basic authentication, as MLflow's own client reads it.
pub const USERNAME_ENV: &str = "MLFLOW_TRACKING_USERNAME";
/// That user's password.
pub const PASSWORD_ENV: &str = "MLFLOW_TRACKING_PASSWORD";
/// A bearer token, for a server (or proxy) that takes one.
pub const TOKEN_ENV: &str = "MLFLOW_TRACKING_TOKEN";

/// Who the calls come from, as MLflow's client says it: HTTP basic authentication when a user
/// name and password are set (`mlflow server --app-name basic-auth`), else a bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// No `Authorization` header.
    Anonymous,
    /// `Authorization: Basic ...`, from a user name and password.
    Basic {
        /// Who calls, for the messages.
        username: String,
        /// The header's value.
        header: String,
    },
    /// `Authorization: Bearer ...`.
    Bearer {
        /// The header's value.
        header: String,
    },
}

impl Auth {
    /// From [`USERNAME_ENV`], [`PASSWORD_ENV`] and [`TOKEN_ENV`] (an empty value is unset).
    pub fn from_env() -> Result<Auth> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Auth::from_values(var(USERNAME_ENV), var(PASSWORD_ENV), var(TOKEN_ENV))
    }

    /// The precedence of MLflow's client: basic authentication over a token.
    pub fn from_values(username: Option<String>, password: Option<String>, token: Option<String>) -> Result<Auth> {
        Ok(match (username, password, token) {
            (Some(username), Some(password), _) => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
                Auth::Basic { username, header: format!("Basic {encoded}") }
            }
            (Some(_), None, _) | (None, Some(_), _) => bail!(
                "{USERNAME_ENV} and {PASSWORD_ENV}: only one of them is set; expected both (a server with basic \
                 authentication) or neither"
            ),
            (None, None, Some(token)) => Auth::Bearer { header: format!("Bearer {token}") },
            (None, None, None) => Auth::Anonymous,
        })
    }

    fn header(&self) -> Option<&str> {
        match self {
            Auth::Anonymous => None,
            Auth::Basic { header, .. } | Auth::Bearer { header } => Some(header),
        }
    }

    /// What to do about a server that answered 401 (unauthenticated) or 403 (not allowed).
    fn hint(&self, status: u16) -> String {
        match (self, status) {
            (Auth::Anonymous, _) => {
                format!("the server asks who calls: set {USERNAME_ENV} and {PASSWORD_ENV}, or {TOKEN_ENV}")
            }
            (Auth::Basic { username, .. }, 401) => {
                format!("the server did not accept user '{username}' with the password in {PASSWORD_ENV}")
            }
            (Auth::Bearer { .. }, 401) => format!("the server did not accept the token in {TOKEN_ENV}"),
            (Auth::Basic { username, .. }, _) => format!("user '{username}' may not do this on the server"),
            (Auth::Bearer { .. }, _) => format!("the token in {TOKEN_ENV} may not do this on the server"),
        }
    }
}

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
    auth: Auth,
}

impl Client {
    /// A client of the server at `uri`, authenticated as the environment says ([`Auth::from_env`]);
    /// an error unless `uri` is an `http(s)://` address and the environment is consistent.
    pub fn new(uri: &str) -> Result<Client> {
        Client::with_auth(uri, Auth::from_env()?)
    }

    /// A client of the server at `uri` calling as `auth`.
    pub fn with_auth(uri: &str, auth: Auth) -> Result<Client> {
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
        Ok(Client { base, agent, auth })
    }

    /// The address, as given without a trailing slash.
    pub fn uri(&self) -> &str {
        &self.base
    }

    /// A request of `method` to `url`, saying who calls.
    fn request(&self, method: &str, url: &str) -> ureq::Request {
        let request = self.agent.request(method, url);
        match self.auth.header() {
            Some(header) => request.set("Authorization", header),
            None => request,
        }
    }

    /// The answer to a call of `endpoint` (at `url`), as JSON; an error in one short line.
    fn answer(&self, endpoint: &str, response: Result<ureq::Response, ureq::Error>) -> Result<Value, CallError> {
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
                let hint = match code {
                    401 | 403 => format!(" ({})", self.auth.hint(code)),
                    _ => String::new(),
                };
                Err(CallError { status: Some(code), message: format!("{endpoint}: {first_line}{hint}") })
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
        let response =
            self.request("POST", &url).set("Content-Type", "application/json").send_string(&body.to_string());
        self.answer(endpoint, response)
    }

    fn get(&self, endpoint: &str, query: &[(&str, &str)]) -> Result<Value, CallError> {
        let url = format!("{}/api/2.0/mlflow/{endpoint}", self.base);
        let mut request = self.request("GET", &url);
        for (key, value) in query {
            request = request.query(key, value);
        }
        self.answer(endpoint, request.call())
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
        let request = self.request("PUT", &url).timeout(Duration::from_secs(60));
        let response = request.set("Content-Type", "application/octet-stream").send_bytes(&bytes);
        self.answer("mlflow-artifacts", response).with_context(|| format!("uploading {name}"))?;
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

    /// A server that answers one call 401 and hands over the request it got.
    fn refusing_server() -> (String, std::sync::mpsc::Receiver<String>) {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let uri = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            while reader.read_line(&mut request).unwrap() > 0 && !request.ends_with("\r\n\r\n") {}
            let body = "You are not authenticated. Please see the docs.";
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 401 UNAUTHORIZED\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            tx.send(request).unwrap();
        });
        (uri, rx)
    }

    #[test]
    fn credentials_go_as_mlflow_sends_them_and_a_refusal_says_which() {
        let auth = Auth::from_values(Some("ana".into()), Some("s3cret".into()), Some("ignored".into())).unwrap();
        let (uri, request) = refusing_server();
        let error = format!("{:#}", Client::with_auth(&uri, auth).unwrap().experiment_id("x").unwrap_err());
        let request = request.recv_timeout(Duration::from_secs(10)).unwrap();
        // base64("ana:s3cret"), the header MLflow's Python client sends for these variables.
        assert!(request.contains("Authorization: Basic YW5hOnMzY3JldA==\r\n"), "{request}");
        assert!(error.contains("HTTP 401") && error.contains("did not accept user 'ana'"), "{error}");

        let (uri, request) = refusing_server();
        let bearer = Auth::from_values(None, None, Some("tok".into())).unwrap();
        let error = format!("{:#}", Client::with_auth(&uri, bearer).unwrap().experiment_id("x").unwrap_err());
        assert!(request.recv_timeout(Duration::from_secs(10)).unwrap().contains("Authorization: Bearer tok\r\n"));
        assert!(error.contains(TOKEN_ENV), "{error}");

        let (uri, request) = refusing_server();
        let error = format!("{:#}", Client::with_auth(&uri, Auth::Anonymous).unwrap().experiment_id("x").unwrap_err());
        assert!(!request.recv_timeout(Duration::from_secs(10)).unwrap().contains("Authorization"));
        assert!(error.contains(USERNAME_ENV) && error.contains(PASSWORD_ENV), "{error}");

        let half = Auth::from_values(Some("ana".into()), None, None).unwrap_err().to_string();
        assert!(half.contains(USERNAME_ENV) && half.contains("expected both"), "{half}");
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
