//! `reslab launch --nproc N -- train ...`: one run on N local processes (torchrun's role on one
//! machine). Each child is `reslab train --distributed ...` with torchrun's variables (`RANK`,
//! `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`); rank 0 listens
//! on 127.0.0.1 at a free port unless one is given. This process binds that port itself and hands
//! rank 0 the listening socket, so nothing can take the port between its choice and the
//! rendezvous, and a port in use is refused before any rank starts.
//!
//! The children run in their own process group, so a Ctrl-C reaches only this process, which
//! passes one interrupt to every rank: they stop together at the same step and rank 0 writes the
//! checkpoint. When a rank fails, the others fail at their next collective (the connection to it
//! is gone) or at their timeout; any still running after `grace` are killed.

use crate::train::distributed::hand_over_listener;
use crate::util::supervisor::{Output, Stream, Supervisor};
use crate::util::{console, interrupt};
use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to launch.
#[derive(Debug, Clone)]
pub struct Launch {
    /// Processes (ranks).
    pub nproc: usize,
    /// Rank 0's port; `None`: a free one.
    pub master_port: Option<u16>,
    /// How long the other ranks may take to end once one has failed, before they are killed.
    pub grace: Duration,
    /// The reslab command each rank runs: `train` and its options.
    pub command: Vec<OsString>,
}

/// Runs `launch` with the reslab executable `exe`; an error naming the first rank that failed.
pub fn launch(exe: &Path, launch: &Launch) -> Result<()> {
    if launch.nproc == 0 {
        bail!("--nproc 0: expected at least 1 process");
    }
    let args = rank_arguments(&launch.command)?;
    let listener = rendezvous_listener(launch.master_port)?;
    let port = listener.local_addr()?.port();
    let mut listener = Some(listener);
    interrupt::install()?;
    let mut ranks = Supervisor::default();
    for rank in 0..launch.nproc {
        let mut command = Command::new(exe);
        command
            .args(&args)
            .env("RANK", rank.to_string())
            .env("WORLD_SIZE", launch.nproc.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("LOCAL_WORLD_SIZE", launch.nproc.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string());
        // The first rank spawned (rank 0) inherits the rendezvous socket; launch's copy is closed
        // once it is spawned, so connections go nowhere if rank 0 dies.
        let rendezvous = listener.take();
        if let Some(socket) = &rendezvous {
            hand_over_listener(&mut command, socket);
        }
        // Rank 0 owns the terminal (its progress bar); the others' lines say whose they are.
        let output = match rank {
            0 => Output::Inherit,
            _ => Output::Lines(Arc::new(move |line: &str, stream: Stream| match stream {
                Stream::Stdout => console::print_line(&format!("rank {rank}: {line}")),
                Stream::Stderr => console::eprint_line(&format!("rank {rank}: {line}")),
            })),
        };
        // A rank that cannot start: the others are killed as the supervisor goes.
        ranks.spawn(&format!("rank {rank}"), command, output)?;
        drop(rendezvous);
    }

    let mut first_failure: Option<(String, ExitStatus, Instant)> = None;
    while ranks.running_count() > 0 {
        for ended in ranks.poll()? {
            if !ended.status.success() && first_failure.is_none() {
                first_failure = Some((ended.name, ended.status, Instant::now()));
            }
        }
        if let Some((_, _, at)) = first_failure {
            if at.elapsed() > launch.grace {
                ranks.kill_all();
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    match first_failure {
        None => Ok(()),
        Some(_) if ranks.interrupted() => {
            bail!("interrupted: the ranks stopped together and rank 0 wrote a checkpoint; launch the same command to continue")
        }
        Some((rank, status, _)) => bail!(
            "{rank} of {} {} (its error is above); launch the same command to resume from the run's last checkpoint",
            launch.nproc,
            describe(status)
        ),
    }
}

/// The arguments of every rank: `train ...` with `--distributed` added.
fn rank_arguments(command: &[OsString]) -> Result<Vec<OsString>> {
    match command.first().and_then(|c| c.to_str()) {
        Some("train") => {}
        Some(other) => {
            bail!("reslab launch runs train, not '{other}'; expected: reslab launch --nproc N -- train [OPTIONS]")
        }
        None => bail!("reslab launch: no command; expected: reslab launch --nproc N -- train [OPTIONS]"),
    }
    let mut args = command.to_vec();
    if !args.iter().any(|a| a == "--distributed") {
        args.insert(1, "--distributed".into());
    }
    Ok(args)
}

/// The rendezvous socket on 127.0.0.1: at `port`, or at a free one (the system's choice).
fn rendezvous_listener(port: Option<u16>) -> Result<TcpListener> {
    match port {
        Some(port) => TcpListener::bind(("127.0.0.1", port)).with_context(|| {
            format!("--master-port {port}: cannot listen at 127.0.0.1:{port}; expected a free port, or leave --master-port out for one")
        }),
        None => TcpListener::bind("127.0.0.1:0").context("finding a free port on 127.0.0.1"),
    }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => "ended abnormally".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_runs_train_and_adds_distributed_once() {
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            rank_arguments(&args(&["train", "--iters", "2"])).unwrap(),
            args(&["train", "--distributed", "--iters", "2"])
        );
        assert_eq!(rank_arguments(&args(&["train", "--distributed"])).unwrap(), args(&["train", "--distributed"]));
        let error = rank_arguments(&args(&["eval"])).unwrap_err().to_string();
        assert!(error.contains("not 'eval'"), "{error}");
        assert!(rank_arguments(&[]).is_err());
    }
}
