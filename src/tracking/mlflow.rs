//! MLflow: a run directory mirrored into an MLflow run (its configuration as parameters, each
//! `metrics.csv` row as metrics at its iteration, its end as the run's status), read from the
//! files the run writes, never from the training loop. So a tracker that is down or slow cannot
//! fail or slow training: [`LiveSync`] sends what is new from a thread of its own, and
//! `mlflow.toml` beside the run remembers, per server, which MLflow run it is and the last row the
//! server has, so that a resumed run continues its MLflow run and a later sync (`reslab aggregate
//! --mlflow URI`) sends exactly what is missing.
//!
//! What the server has is the truth: after any failed call (which may have reached the server
//! all the same) the last step it holds is asked again before more rows are sent, and a run is
//! found by a tag of its own before one is made, so no row and no run appears twice.

pub use super::client::{Client, CreatedRun, Status};

use super::client::Metric;
use crate::run::attempts;
use crate::run::identity::Leeway;
use crate::run::lock::{self, LockOwner};
use crate::run::metrics::{self, MetricsRow};
use crate::run::{RunConfig, RunState, CONFIG_FILE};
use crate::util::fs::write_file;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What each MLflow server has of the run beside it: a table per server.
pub const STATE_FILE: &str = "mlflow.toml";
/// Seconds the end of the work waits for a server that is down before it says what was not sent.
pub const FLUSH_ENV: &str = "RESLAB_MLFLOW_FLUSH_S";
const FLUSH_DEFAULT: Duration = Duration::from_secs(10);
/// The tag that finds a run again on its server (its creation may have timed out).
const SYNC_KEY_TAG: &str = "reslab.sync_key";
/// The metric every row has; its last step is the last row the server has.
const ROW_KEY: &str = "train_err";
const METRICS_PER_ROW: usize = 6;
const ROWS_PER_BATCH: usize = 1000 / METRICS_PER_ROW;

/// One server's copy of a run (or of a study's parent run), as `mlflow.toml` records it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Mirror {
    /// The value of the run's `reslab.sync_key` tag.
    pub sync_key: String,
    /// The attempt (`attempts.csv`) that started the run from scratch: a later start from
    /// scratch is another MLflow run. None for a study's parent run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_attempt: Option<usize>,
    /// The MLflow experiment the run is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment_id: Option<String>,
    /// The MLflow run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Where the run's artifacts go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_uri: Option<String>,
    /// When the MLflow run was made (ms since 1970); its points are stamped from it by `wall_s`.
    #[serde(default)]
    pub start_ms: u64,
    /// The last iteration whose row the server has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_through: Option<usize>,
    /// Whether the server has the run's configuration as parameters.
    #[serde(default)]
    pub params_sent: bool,
    /// The status last set on the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct MirrorFile {
    #[serde(default)]
    servers: BTreeMap<String, Mirror>,
}

/// The copy of the run recorded in `path` on the server `uri` (empty if there is none).
pub fn load_mirror(path: &Path, uri: &str) -> Mirror {
    read_mirrors(path).servers.remove(uri).unwrap_or_default()
}

fn read_mirrors(path: &Path) -> MirrorFile {
    std::fs::read_to_string(path).ok().and_then(|text| toml::from_str(&text).ok()).unwrap_or_default()
}

/// Records `mirror` as the copy on `uri` in `path`, keeping the other servers'.
pub fn save_mirror(path: &Path, uri: &str, mirror: &Mirror) -> Result<()> {
    let mut file = read_mirrors(path);
    file.servers.insert(uri.to_string(), mirror.clone());
    let text = "# What each MLflow server has of this run (written by reslab; remove it to start over).\n".to_string()
        + &toml::to_string(&file).context("writing mlflow.toml")?;
    write_file(path, text.as_bytes())
}

/// A run directory and how it appears in MLflow.
#[derive(Debug, Clone)]
pub struct RunTarget {
    /// The run directory.
    pub dir: PathBuf,
    /// The MLflow experiment (by name, created if missing).
    pub experiment: String,
    /// The run's name in MLflow.
    pub name: String,
    /// Tags set when the MLflow run is made.
    pub tags: Vec<(String, String)>,
    /// A study's run: the configuration it plans there and what may differ. A directory holding
    /// another configuration's run, or one modified after it completed, is not this run and is
    /// never sent. `None`: the directory's own run (`train --mlflow`).
    pub expected: Option<(RunConfig, Leeway)>,
}

impl RunTarget {
    /// What its directory holds, judged against the run the study plans there (where it plans one).
    fn state(&self) -> RunState {
        match &self.expected {
            Some((config, leeway)) => RunState::read_as(&self.dir, config, *leeway),
            None => RunState::read(&self.dir),
        }
    }
}

/// Sends run directories to one server, remembering what it asked of it in this process.
pub struct Syncer {
    client: Client,
    experiments: HashMap<String, String>,
    /// Run directories whose last step on the server is known since the last failure.
    checked: HashSet<PathBuf>,
}

impl Syncer {
    /// A syncer for the server at `uri`; an error unless `uri` is a server's address.
    pub fn new(uri: &str) -> Result<Syncer> {
        Ok(Syncer { client: Client::new(uri)?, experiments: HashMap::new(), checked: HashSet::new() })
    }

    /// The server's client, for calls beyond a run's rows.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The server's address.
    pub fn uri(&self) -> &str {
        self.client.uri()
    }

    /// After a failure: what the server has is asked again before anything more is sent.
    pub fn forget_checks(&mut self) {
        self.checked.clear();
    }

    fn experiment_id(&mut self, name: &str) -> Result<String> {
        if let Some(id) = self.experiments.get(name) {
            return Ok(id.clone());
        }
        let id = self.client.experiment_id(name)?;
        self.experiments.insert(name.to_string(), id.clone());
        Ok(id)
    }

    /// The MLflow run recorded in `state` on this server: found again by its key, or made.
    /// `from_attempt`: the attempt that started the run from scratch (None for a study's
    /// parent); a recorded run of an earlier one is marked killed and a new one made.
    pub fn ensure_run(
        &mut self,
        state: &Path,
        from_attempt: Option<usize>,
        experiment: &str,
        name: &str,
        tags: &[(String, String)],
    ) -> Result<Mirror> {
        let uri = self.uri().to_string();
        let mut mirror = load_mirror(state, &uri);
        if mirror.from_attempt != from_attempt && !mirror.sync_key.is_empty() {
            if let Some(replaced) = &mirror.run_id {
                let why = ("reslab.state".to_string(), "replaced: the run started again from scratch".to_string());
                self.client.log_params(replaced, &[], &[why])?;
                self.client.set_status(replaced, Status::Killed, now_ms())?;
            }
            mirror = Mirror::default();
        }
        if mirror.run_id.is_some() {
            return Ok(mirror);
        }
        if mirror.sync_key.is_empty() {
            mirror.sync_key = format!("{:016x}", rand::random::<u64>());
            mirror.from_attempt = from_attempt;
            mirror.start_ms = now_ms();
            save_mirror(state, &uri, &mirror)?;
        }
        let experiment_id = self.experiment_id(experiment)?;
        let run = match self.client.find_run(&experiment_id, SYNC_KEY_TAG, &mirror.sync_key)? {
            Some(run) => run,
            None => {
                let mut tags = tags.to_vec();
                tags.push((SYNC_KEY_TAG.into(), mirror.sync_key.clone()));
                self.client.create_run(&experiment_id, name, mirror.start_ms, &tags)?
            }
        };
        mirror.experiment_id = Some(experiment_id);
        mirror.run_id = Some(run.run_id);
        mirror.artifact_uri = Some(run.artifact_uri);
        save_mirror(state, &uri, &mirror)?;
        Ok(mirror)
    }

    /// Sends what the server lacks of the run in `target.dir` (nothing before it has started):
    /// its parameters once, its new rows, its status. `ended`: no process writes the run any
    /// more, so an incomplete one is marked killed (and running again when it resumes).
    pub fn sync_run(&mut self, target: &RunTarget, ended: bool) -> Result<()> {
        let dir = &target.dir;
        if !dir.join(CONFIG_FILE).is_file() {
            return Ok(());
        }
        if let RunState::Foreign { .. } | RunState::Modified { .. } = target.state() {
            // Not the study's run (status and aggregate say which and why): nothing of it is sent.
            return Ok(());
        }
        let (state, uri) = (dir.join(STATE_FILE), self.uri().to_string());
        let from_attempt = started_from_scratch(dir);
        let mut mirror = self.ensure_run(&state, from_attempt, &target.experiment, &target.name, &target.tags)?;
        let run_id = mirror.run_id.clone().expect("ensured");
        if !mirror.params_sent {
            self.client.log_params(&run_id, &config_params(dir)?, &[])?;
            mirror.params_sent = true;
            save_mirror(&state, &uri, &mirror)?;
        }
        if !self.checked.contains(dir) {
            let on_server = self.client.last_step(&run_id, ROW_KEY)?;
            if on_server > mirror.sent_through {
                mirror.sent_through = on_server;
                save_mirror(&state, &uri, &mirror)?;
            }
            self.checked.insert(dir.clone());
        }
        let rows = metrics::read_written(dir)?;
        if started_from_scratch(dir) != from_attempt {
            // The run started again from scratch while this looked: the next sync sends it.
            return Ok(());
        }
        let new: Vec<&MetricsRow> = rows.iter().filter(|r| mirror.sent_through.is_none_or(|s| r.iter > s)).collect();
        for batch in new.chunks(ROWS_PER_BATCH) {
            let points: Vec<Metric> = batch.iter().flat_map(|row| row_metrics(row, mirror.start_ms)).collect();
            self.client.log_metrics(&run_id, &points)?;
            mirror.sent_through = batch.last().map(|r| r.iter);
            save_mirror(&state, &uri, &mirror)?;
        }
        let run_state = target.state();
        let status = match &run_state {
            RunState::Complete(_) | RunState::Diverged(_) => Status::Finished,
            RunState::Failed { .. } => Status::Failed,
            _ if ended && !written_elsewhere(dir) => Status::Killed,
            _ => Status::Running,
        };
        if mirror.status.as_deref() != Some(status.name()) {
            self.client.log_params(&run_id, &[], &[("reslab.state".into(), run_state.to_string())])?;
            self.client.set_status(&run_id, status, now_ms())?;
            mirror.status = Some(status.name().into());
            save_mirror(&state, &uri, &mirror)?;
        }
        Ok(())
    }
}

/// Whether another live process holds the run's lock (this one's own lock does not count: it
/// is ending).
fn written_elsewhere(dir: &Path) -> bool {
    let stale = lock::staleness().unwrap_or(Duration::from_secs(3600));
    LockOwner::read(dir).is_some_and(|(owner, age)| {
        owner.is_live(age, stale) && !(owner.host == lock::hostname() && owner.pid == std::process::id())
    })
}

/// The attempt that started the run in `dir` from scratch (its last start at iteration 0), as
/// `attempts.csv` says; None before the run has started (or where it cannot be read).
fn started_from_scratch(dir: &Path) -> Option<usize> {
    let attempts = attempts::read(dir).ok()?;
    attempts.iter().rev().find(|a| a.start_iteration == 0).map(|a| a.attempt)
}

/// The rows of the run in `dir` that the server `uri` does not have, as far as `mlflow.toml` knows.
pub fn unsent_rows(dir: &Path, uri: &str) -> usize {
    let mirror = load_mirror(&dir.join(STATE_FILE), uri.trim_end_matches('/'));
    let sent = mirror.sent_through.filter(|_| mirror.from_attempt == started_from_scratch(dir));
    let rows = metrics::read_written(dir).unwrap_or_default();
    rows.iter().filter(|r| sent.is_none_or(|s| r.iter > s)).count()
}

/// A metrics row as MLflow points at its iteration.
fn row_metrics(row: &MetricsRow, start_ms: u64) -> [Metric; METRICS_PER_ROW] {
    let timestamp_ms = start_ms + (row.wall_s.max(0.0) * 1000.0) as u64;
    let point = |key, value| Metric { key, value, step: row.iter, timestamp_ms };
    [
        point("train_loss", row.train_loss),
        point(ROW_KEY, row.train_err),
        point("test_err", row.test_err),
        point("lr", row.lr),
        point("epoch", row.epoch),
        point("img_per_s", row.img_per_s),
    ]
}

/// The run's configuration (`config.toml`) as MLflow parameters: every value by its dotted path
/// (`optim.lr`, `model.depth`, `data.augment`).
pub fn config_params(dir: &Path) -> Result<Vec<(String, String)>> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let table: toml::Table = toml::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    let mut params = Vec::new();
    flatten("", &toml::Value::Table(table), &mut params);
    Ok(params)
}

fn flatten(prefix: &str, value: &toml::Value, into: &mut Vec<(String, String)>) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                flatten(&path, value, into);
            }
        }
        toml::Value::String(text) => into.push((prefix.to_string(), text.clone())),
        other => into.push((prefix.to_string(), other.to_string())),
    }
}

/// Now, in MLflow's unit (ms since 1970).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// What a [`LiveSync`] keeps in step with the server: one run, or a study's runs and its parent.
pub trait Mirrored: Send + 'static {
    /// Sends what the server lacks; `ended`: the work is over (no run is being written).
    fn sync(&mut self, syncer: &mut Syncer, ended: bool) -> Result<()>;
    /// What can be said of it without the server, for the warning that something was not sent.
    fn leftover(&self) -> Leftover;
}

/// The run directories of a mirror and how to send what they hold later.
#[derive(Debug, Clone)]
pub struct Leftover {
    /// Each run directory, with its name in MLflow.
    pub runs: Vec<(PathBuf, String)>,
    /// What else would not be sent (", and the study's charts and report").
    pub also: String,
    /// The command that sends it later.
    pub hint: String,
}

impl Leftover {
    /// "12 rows of 2 runs (plain-8-seed0, resnet-8-seed0)", from the files alone.
    fn text(&self, uri: &str) -> String {
        let behind: Vec<(usize, &str)> = self
            .runs
            .iter()
            .map(|(dir, name)| (unsent_rows(dir, uri), name.as_str()))
            .filter(|(rows, _)| *rows > 0)
            .collect();
        let rows: usize = behind.iter().map(|(rows, _)| rows).sum();
        let names: Vec<&str> = behind.iter().map(|(_, name)| *name).collect();
        format!("{rows} rows of {} runs ({}){}", names.len(), names.join(", "), self.also)
    }
}

/// A thread that keeps the server in step with run directories while they are written: every
/// second, or after a failure less often (up to every 30 s), with one warning per outage. When
/// it is finished (or dropped) it tries again for at most `RESLAB_MLFLOW_FLUSH_S` seconds
/// (default 10), however slow the server, then says what was not sent and how to send it.
pub struct LiveSync {
    stop: Arc<AtomicBool>,
    done: Option<mpsc::Receiver<Option<Syncer>>>,
    flush: Duration,
    uri: String,
    leftover: Leftover,
    failure: Arc<Mutex<Option<String>>>,
}

impl LiveSync {
    /// Starts the thread, which keeps `mirrored` in step with `syncer`'s server.
    pub fn start(mut syncer: Syncer, mut mirrored: Box<dyn Mirrored>) -> LiveSync {
        let stop = Arc::new(AtomicBool::new(false));
        let failure = Arc::new(Mutex::new(None::<String>));
        let flush = std::env::var(FLUSH_ENV)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .map_or(FLUSH_DEFAULT, Duration::from_secs_f64);
        let (uri, leftover) = (syncer.uri().to_string(), mirrored.leftover());
        let (report, done) = mpsc::channel();
        let (stopping, failing, thread_uri) = (stop.clone(), failure.clone(), uri.clone());
        std::thread::spawn(move || {
            let uri = thread_uri;
            let (period, longest) = (Duration::from_secs(1), Duration::from_secs(30));
            let (mut wait, mut next) = (period, Instant::now());
            let mut ending: Option<Instant> = None;
            let outcome = loop {
                if ending.is_none() && stopping.load(Ordering::SeqCst) {
                    ending = Some(Instant::now());
                    next = Instant::now();
                }
                if Instant::now() >= next {
                    let synced = mirrored.sync(&mut syncer, ending.is_some());
                    let mut failure = failing.lock().unwrap_or_else(|e| e.into_inner());
                    match synced {
                        Ok(()) => {
                            if failure.take().is_some() {
                                crate::eprint_line!("MLflow at {uri} answers again; what was queued is sent");
                            }
                            wait = period;
                            if ending.is_some() {
                                break Some(syncer);
                            }
                        }
                        Err(e) => {
                            let message = format!("{e:#}").replace('\n', " ");
                            if failure.is_none() {
                                crate::eprint_line!(
                                    "warning: MLflow at {uri}: {message}; training goes on, its rows are kept and sent when the server answers"
                                );
                            }
                            *failure = Some(message);
                            syncer.forget_checks();
                            wait = (wait * 2).min(longest);
                        }
                    }
                    next = Instant::now() + if ending.is_some() { period } else { wait };
                }
                if ending.is_some_and(|since| since.elapsed() >= flush) {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            let _ = report.send(outcome);
        });
        LiveSync { stop, done: Some(done), flush, uri, leftover, failure }
    }

    /// Sends what is left, waiting at most the flush time; the syncer if everything reached the
    /// server (for more: a study's report), else a warning says what did not and how to send it.
    pub fn finish(mut self) -> Option<Syncer> {
        self.end()
    }

    fn end(&mut self) -> Option<Syncer> {
        self.stop.store(true, Ordering::SeqCst);
        let done = self.done.take()?;
        // A call in flight to a server that hangs is left behind: the work does not wait for it.
        if let Ok(Some(syncer)) = done.recv_timeout(self.flush + Duration::from_millis(500)) {
            return Some(syncer);
        }
        let failure = self.failure.lock().unwrap_or_else(|e| e.into_inner()).clone();
        crate::eprint_line!(
            "warning: MLflow at {}: {} not sent ({}); {} sends them",
            self.uri,
            self.leftover.text(&self.uri),
            failure.unwrap_or_else(|| "no answer in time".into()),
            self.leftover.hint
        );
        None
    }
}

impl Drop for LiveSync {
    fn drop(&mut self) {
        self.end();
    }
}

/// One run directory on its own (`reslab train --mlflow URI`).
pub struct OneRun {
    /// The run.
    pub target: RunTarget,
    /// The command that sends what was missed.
    pub hint: String,
}

impl OneRun {
    /// Mirrors the run in `dir` (of `model`, trained with `seed`) into `experiment` on the
    /// server at `uri` while it trains; named after its directory.
    pub fn follow(uri: &str, dir: &Path, experiment: &str, model: &str, seed: u64) -> Result<LiveSync> {
        let syncer = Syncer::new(uri).context("--mlflow")?;
        let name = dir.file_name().map_or_else(|| model.to_string(), |n| n.to_string_lossy().into_owned());
        let tags = vec![
            ("reslab.run".to_string(), model.to_string()),
            ("reslab.seed".to_string(), seed.to_string()),
            ("mlflow.source.name".to_string(), "reslab".to_string()),
        ];
        let target =
            RunTarget { dir: dir.to_path_buf(), experiment: experiment.to_string(), name, tags, expected: None };
        let hint = format!("`reslab train --resume {} --mlflow {}`", dir.display(), syncer.uri());
        Ok(LiveSync::start(syncer, Box::new(OneRun { target, hint })))
    }
}

impl Mirrored for OneRun {
    fn sync(&mut self, syncer: &mut Syncer, ended: bool) -> Result<()> {
        syncer.sync_run(&self.target, ended)
    }

    fn leftover(&self) -> Leftover {
        Leftover {
            runs: vec![(self.target.dir.clone(), self.target.name.clone())],
            also: String::new(),
            hint: self.hint.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A study's target is judged against the run the study plans there: another
    /// configuration's run is foreign (never sent), the same run complete; a lone run's target
    /// takes the directory's own run.
    #[test]
    fn a_study_target_is_its_planned_run_and_another_configuration_is_never_its() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::run::state::tests::complete_run(dir.path());
        let target = |expected| RunTarget {
            dir: dir.path().to_path_buf(),
            experiment: "e".into(),
            name: "r".into(),
            tags: vec![],
            expected,
        };
        assert!(matches!(target(None).state(), RunState::Complete(_)));
        assert!(matches!(target(Some((config.clone(), Leeway::NONE))).state(), RunState::Complete(_)));
        let mut other = config.clone();
        other.schedule.iters += 1;
        assert!(matches!(target(Some((other, Leeway::NONE))).state(), RunState::Foreign { .. }));
    }

    #[test]
    fn each_server_keeps_its_own_copy_in_the_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        assert_eq!(load_mirror(&path, "http://a:1"), Mirror::default());
        let a =
            Mirror { sync_key: "k1".into(), run_id: Some("r1".into()), sent_through: Some(40), ..Mirror::default() };
        let b = Mirror { sync_key: "k2".into(), params_sent: true, ..Mirror::default() };
        save_mirror(&path, "http://a:1", &a).unwrap();
        save_mirror(&path, "http://b:2", &b).unwrap();
        assert_eq!(load_mirror(&path, "http://a:1"), a);
        assert_eq!(load_mirror(&path, "http://b:2"), b);
    }

    #[test]
    fn the_configuration_becomes_dotted_parameters_and_a_row_six_points_at_its_iteration() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "# comment\nseed = 3\n[optim]\nlr = 0.1\nlr_steps = [2, 4]\n[model]\nshortcut = \"B\"\n",
        )
        .unwrap();
        let params = config_params(dir.path()).unwrap();
        for (key, value) in [("seed", "3"), ("optim.lr", "0.1"), ("optim.lr_steps", "[2, 4]"), ("model.shortcut", "B")]
        {
            assert!(params.contains(&(key.to_string(), value.to_string())), "{key}={value}: {params:?}");
        }
        let row = MetricsRow {
            iter: 20,
            epoch: 0.5,
            lr: 0.1,
            train_loss: 2.0,
            train_err: 70.0,
            test_err: 75.0,
            img_per_s: 300.0,
            wall_s: 1.5,
        };
        let points = row_metrics(&row, 1_000_000);
        assert!(points.iter().all(|p| p.step == 20 && p.timestamp_ms == 1_001_500));
        let test_err = points.iter().find(|p| p.key == "test_err").unwrap();
        assert_eq!(test_err.value, 75.0);
    }
}
