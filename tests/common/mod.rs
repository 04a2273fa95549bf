//! Helpers for the end-to-end tests: the built binary and the shared data beside the project.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// `../shared/data` (or `$RESLAB_SHARED_DATA`): the full CIFAR-10 archive and pretrained weights.
pub fn shared_data() -> PathBuf {
    let dir = std::env::var_os("RESLAB_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    assert!(
        dir.join("cifar-10-binary.tar.gz").is_file(),
        "these tests need the shared CIFAR-10 archive at {} (set RESLAB_SHARED_DATA)",
        dir.display()
    );
    dir
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

/// Whether `tool` is here; where it is not, a test that needs it is skipped with `why`, except
/// under `CI=true`, where a missing tool fails the test.
pub fn have_tool(tool: &str, why: &str) -> bool {
    let here =
        Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success());
    if !here {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{tool} is not installed under CI=true: {why}");
        eprintln!("SKIPPED: {tool} is not installed: {why}");
    }
    here
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

/// Waits until `done`, polling every 250 ms; fails naming `what` after `timeout`. How long it took.
pub fn wait_for(what: &str, timeout: std::time::Duration, mut done: impl FnMut() -> bool) -> std::time::Duration {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    started.elapsed()
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
