//! A small test harness (libtest-mimic) for the test binaries whose tests need something from
//! outside the project: Slurm, Chromium, root, or the shared CIFAR-10 archive. Where a need is
//! missing, its tests are counted as *ignored* in cargo's own summary, with one line saying why;
//! under `CI=true` they run and fail, naming what is missing. Everything else is as with
//! `#[test]`: names, filters, `--test-threads`, and a panic fails its test.

use libtest_mimic::{Arguments, Failed, Trial};
use std::process::{Command, ExitCode};

/// The shared archive's checksum (../shared/data/README.md), named where the archive is missing.
pub const CIFAR_SHA256: &str = "427d7be69e608a93d873c9fa639f0b206ab4ae8082a8c778ad935abb14135ae1";

/// Something a test needs: `None` where it is here, else why it is not.
#[derive(Clone)]
pub struct Need(Option<String>);

impl Need {
    fn missing(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

/// The shared data (`../shared/data` or `$RESLAB_SHARED_DATA`): the CIFAR-10 archive and the
/// pretrained weights.
pub fn shared_data() -> Need {
    let dir = super::shared_data_dir();
    Need((!dir.join("cifar-10-binary.tar.gz").is_file()).then(|| {
        format!(
            "{} holds no cifar-10-binary.tar.gz: set RESLAB_SHARED_DATA to a folder with the CIFAR-10 binary \
             archive (sha256 {CIFAR_SHA256}) and pretrained/",
            dir.display()
        )
    }))
}

/// Programs on PATH, installed by `installer`.
pub fn tools(tools: &[&str], installer: &str) -> Need {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|tool| {
            !Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success())
        })
        .collect();
    Need((!missing.is_empty()).then(|| format!("{} not installed ({installer} installs it)", missing.join(", "))))
}

/// Root (mounts, network namespaces).
pub fn root(for_what: &str) -> Need {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    Need((euid != 0).then(|| format!("not root: {for_what} needs root")))
}

/// A test: its function and what it needs.
pub struct Test {
    name: &'static str,
    body: fn(),
    needs: Vec<Need>,
}

/// `function` as a test named after it, with what it needs: `trial!(f)`, `trial!(f, shared_data())`.
#[allow(unused_macros)]
macro_rules! trial {
    ($function:ident $(, $need:expr)* $(,)?) => {
        $crate::common::harness::Test::new(stringify!($function), $function, vec![$($need),*])
    };
}

impl Test {
    pub fn new(name: &'static str, body: fn(), needs: Vec<Need>) -> Test {
        Test { name, body, needs }
    }
}

/// Runs `tests` as cargo's own harness would: each missing need said once on stderr and its tests
/// ignored, or failed under `CI=true`.
pub fn run(tests: Vec<Test>) -> ExitCode {
    let args = Arguments::from_args();
    let in_ci = std::env::var("CI").as_deref() == Ok("true");
    let mut said: Vec<String> = Vec::new();
    let trials = tests
        .into_iter()
        .map(|test| {
            let missing: Vec<String> = test.needs.iter().filter_map(|n| n.missing().map(str::to_string)).collect();
            let body = test.body;
            if missing.is_empty() {
                return Trial::test(test.name, move || {
                    body();
                    Ok(())
                });
            }
            let why = missing.join("; ");
            if in_ci {
                return Trial::test(test.name, move || Err(Failed::from(format!("under CI=true: {why}"))));
            }
            if !said.contains(&why) {
                eprintln!("ignored (needs what is missing here): {why}");
                said.push(why);
            }
            Trial::test(test.name, move || {
                body();
                Ok(())
            })
            .with_ignored_flag(true)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}
