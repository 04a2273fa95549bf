//! Helpers for the end-to-end tests: the built binary and the shared data beside the project.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

#[macro_use]
pub mod harness;

/// `../shared/data`, or `$RESLAB_SHARED_DATA`: the full CIFAR-10 archive and pretrained weights
/// (whether it is there: [`harness::shared_data`]).
pub fn shared_data_dir() -> PathBuf {
    std::env::var_os("RESLAB_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
}

/// The shared data, which a test that uses it has declared it needs.
pub fn shared_data() -> PathBuf {
    let dir = shared_data_dir();
    assert!(
        dir.join("cifar-10-binary.tar.gz").is_file(),
        "this test needs the shared CIFAR-10 archive at {} (set RESLAB_SHARED_DATA)",
        dir.display()
    );
    dir
}

/// A run's metrics.csv rows, after checking its header.
pub fn read_rows(dir: &std::path::Path) -> Vec<csv::StringRecord> {
    let mut reader = csv::Reader::from_path(dir.join("metrics.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    assert_eq!(
        header.iter().collect::<Vec<_>>(),
        ["iter", "epoch", "lr", "train_loss", "train_err", "test_err", "img_per_s", "wall_s"]
    );
    reader.records().map(|r| r.unwrap()).collect()
}

pub fn cifar_archive() -> PathBuf {
    shared_data().join("cifar-10-binary.tar.gz")
}

pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The project's Python (`.venv`, made by scripts/setup.sh): torch 2.13.0, NumPy, safetensors.
pub fn python() -> Command {
    Command::new(project_root().join(".venv/bin/python"))
}

pub fn reslab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reslab")).args(args).output().expect("running reslab")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A user error: non-zero exit, one `error:` line on stderr naming what was wrong, no panic.
pub fn assert_clean_error(output: &Output, must_mention: &[&str]) -> String {
    let err = stderr(output);
    assert!(!output.status.success(), "expected failure, got success; stderr: {err}");
    assert_eq!(output.status.code(), Some(1), "stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
    for needle in must_mention {
        assert!(err.contains(needle), "error should mention {needle:?}: {err}");
    }
    err
}

/// Child processes a test started, stopped when the test ends, also when an assertion panics:
/// each still running is continued (if stopped), asked to end (SIGTERM, which a trainer answers
/// with a checkpoint and a launcher passes on to its ranks), and killed after 10 s.
pub struct Children(pub Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            if !matches!(child.try_wait(), Ok(None)) {
                continue;
            }
            // SAFETY: signalling a child process this test spawned and has not reaped.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGCONT);
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl std::ops::Deref for Children {
    type Target = Vec<std::process::Child>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Children {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// An experiment file's text: `models` (e.g. plain-8, resnet-8) with `seeds` seeds each, on the
/// embedded sample, `iters` iterations in batches of 32, evaluated every 10.
pub fn small_study(name: &str, models: &[&str], seeds: usize, iters: usize) -> String {
    let mut text = format!(
        "name = \"{name}\"\ntitle = \"A small study ({name})\"\ndescription = \"{}\"\n\
         default_preset = \"smoke\"\nseeds = {seeds}\n",
        models.join(", ")
    );
    for model in models {
        text += &format!("\n[[runs]]\nmodel = \"{model}\"\n");
    }
    text += &format!("\n[presets.smoke]\ndata = \"embedded\"\niters = {iters}\neval_every = 10\nbatch_size = 32\n");
    text
}

/// `program` (`reslab` is the binary under test) with `args`, against the Slurm of `conf`
/// (`SLURM_CONF`), with `env` added.
pub fn with_slurm_conf(program: &str, args: &[&str], conf: &str, env: &[(&str, &str)]) -> Output {
    let program = if program == "reslab" { env!("CARGO_BIN_EXE_reslab") } else { program };
    let mut command = Command::new(program);
    command.args(args).env("SLURM_CONF", conf);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// Waits until `done`, polling every 100 ms; fails naming `what` after `timeout` (a bound on a
/// hang, never a measure of speed). How long it took.
pub fn wait_for(what: &str, timeout: std::time::Duration, mut done: impl FnMut() -> bool) -> std::time::Duration {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    started.elapsed()
}

/// Waits for `child` to end (see [`wait_for`]): its exit status.
pub fn wait_exit(
    child: &mut std::process::Child,
    what: &str,
    timeout: std::time::Duration,
) -> std::process::ExitStatus {
    let mut status = None;
    wait_for(&format!("{what} to end"), timeout, || {
        status = child.try_wait().expect("waiting for a child");
        status.is_some()
    });
    status.expect("ended")
}

/// Fails unless `child` is still running: a test signals only a process it knows is mid-run.
pub fn assert_running(child: &mut std::process::Child, what: &str) {
    let status = child.try_wait().expect("looking at a child");
    assert!(status.is_none(), "{what} ended ({status:?}) before the test stopped it");
}

/// Whether process `pid` of this machine is running (not gone, not a zombie).
pub fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|t| t.rfind(')').map(|i| !matches!(t.as_bytes().get(i + 2), Some(b'Z' | b'X'))))
        .unwrap_or(false)
}

/// A pause point of the runs a test stops from outside (`RESLAB_TEST_HOLD`, src/train/hold.rs):
/// a run started with [`Holds::env`] waits once it has done `at` iterations, until it is
/// signalled or released, so it cannot finish before the test acts, however fast the machine.
pub struct Holds {
    dir: PathBuf,
    pub at: usize,
}

/// How long a run may take to reach its hold (a bound on a hang: start-up and a few iterations).
pub const REACH_HOLD: std::time::Duration = std::time::Duration::from_secs(300);

impl Holds {
    /// Holds at iteration `at`, their files in a new folder inside `parent`.
    pub fn new(parent: &std::path::Path, at: usize) -> Holds {
        let dir = parent.join(format!("holds-at-{at}"));
        std::fs::create_dir_all(&dir).unwrap();
        Holds { dir, at }
    }

    /// The variable to start the runs with.
    pub fn env(&self) -> (&'static str, String) {
        ("RESLAB_TEST_HOLD", format!("{}:{}", self.at, self.dir.display()))
    }

    /// Whether the run `run` (its directory's name) is held now (`rank`: one rank of it): its
    /// held file names a live process (a killed one's file stays behind).
    pub fn is_held(&self, run: &str, rank: Option<usize>) -> bool {
        let name = match rank {
            Some(rank) => format!("{run}.rank{rank}.held"),
            None => format!("{run}.held"),
        };
        let pid = std::fs::read_to_string(self.dir.join(name)).ok().and_then(|t| t.trim().parse::<u32>().ok());
        pid.is_some_and(process_alive)
    }

    /// Waits until `run` (or its rank) is held.
    pub fn wait_held(&self, run: &str, rank: Option<usize>) {
        let what = format!(
            "{run}{} to be held at iteration {}",
            rank.map(|r| format!(" rank {r}")).unwrap_or_default(),
            self.at
        );
        wait_for(&what, REACH_HOLD, || self.is_held(run, rank));
    }

    /// Lets every process of `run` go on, now and when it reaches the hold again.
    pub fn release(&self, run: &str) {
        std::fs::write(self.dir.join(format!("{run}.release")), "").unwrap();
    }
}

/// Whether the job (or array) `job` has left Slurm's queue.
pub fn squeue_empty(job: &str, conf: &str) -> bool {
    with_slurm_conf("squeue", &["-h", "-j", job], conf, &[]).stdout.iter().all(|b| b.is_ascii_whitespace())
}

/// Every batch log of a Slurm study in `out` (`.slurm/logs/`), one after the other.
pub fn slurm_logs(out: &std::path::Path) -> String {
    std::fs::read_dir(out.join(".slurm/logs"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect()
}
