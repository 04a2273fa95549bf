//! The one supervisor of child processes (the ranks of `reslab launch`, the jobs of a local
//! study): each child in its own process group, so a Ctrl-C reaches only this process, which
//! passes one interrupt on to every child still running and waits for them to stop (a trainer
//! writes its checkpoint first); their output forwarded line by line; ended children reaped as
//! they end; every child left killed when the supervisor is dropped.

use super::interrupt;
use anyhow::{Context, Result};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Which of a child's streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The child's standard output.
    Stdout,
    /// The child's standard error.
    Stderr,
}

/// What receives a child's output, a line at a time.
pub type LineSink = Arc<dyn Fn(&str, Stream) + Send + Sync>;

/// Where a child's output goes: this process's own terminal, or each line to a function.
pub enum Output {
    /// To this process's own stdout and stderr.
    Inherit,
    /// Each line to the sink, with the stream it came from.
    Lines(LineSink),
}

/// A child that has ended.
#[derive(Debug, Clone)]
pub struct Ended {
    /// The name it was spawned as.
    pub name: String,
    /// How it exited.
    pub status: ExitStatus,
}

struct Supervised {
    name: String,
    child: Child,
    readers: Vec<JoinHandle<()>>,
}

/// The children of this process, spawned, interrupted and reaped together (see the module).
#[derive(Default)]
pub struct Supervisor {
    running: Vec<Supervised>,
    interrupted: bool,
}

impl Supervisor {
    /// Starts `command` as the child `name`, in a process group of its own.
    pub fn spawn(&mut self, name: &str, mut command: Command, output: Output) -> Result<()> {
        command.process_group(0);
        // A supervisor killed outright (SIGKILL, the OOM killer, a lost node) cannot pass an
        // interrupt on: the kernel does, so no child trains on unseen, holding its run's lock
        // (a trainer answers SIGTERM with a checkpoint).
        // A supervisor that died between fork and the prctl is caught by the parent check.
        let supervisor = std::process::id() as libc::pid_t;
        // SAFETY: prctl and getppid are async-signal-safe; the closure runs in the child before exec.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != supervisor {
                    return Err(std::io::Error::other("the supervisor ended before this child started"));
                }
                Ok(())
            });
        }
        if let Output::Lines(_) = output {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let program = std::path::PathBuf::from(command.get_program());
        let mut child = command.spawn().with_context(|| format!("starting {name} ({})", program.display()))?;
        let readers = match output {
            Output::Inherit => Vec::new(),
            Output::Lines(sink) => vec![
                forward(Box::new(child.stdout.take().expect("piped")), Stream::Stdout, sink.clone()),
                forward(Box::new(child.stderr.take().expect("piped")), Stream::Stderr, sink),
            ],
        };
        self.running.push(Supervised { name: name.to_string(), child, readers });
        Ok(())
    }

    /// The children still running, by name.
    pub fn running(&self) -> impl Iterator<Item = &str> {
        self.running.iter().map(|s| s.name.as_str())
    }

    /// How many children are still running.
    pub fn running_count(&self) -> usize {
        self.running.len()
    }

    /// Whether a Ctrl-C (or SIGTERM) reached this process and was passed on.
    pub fn interrupted(&self) -> bool {
        self.interrupted
    }

    /// One look at the children: a new interrupt passed on to each (once), and the children that
    /// have ended since the last look, reaped, their output forwarded to the last line.
    pub fn poll(&mut self) -> Result<Vec<Ended>> {
        if interrupt::requested() && !self.interrupted {
            self.interrupted = true;
            for s in &self.running {
                // SAFETY: signalling a child process we spawned and have not reaped.
                unsafe { libc::kill(s.child.id() as i32, libc::SIGINT) };
            }
        }
        let mut ended = Vec::new();
        let mut still_running = Vec::new();
        for mut s in std::mem::take(&mut self.running) {
            match s.child.try_wait() {
                Ok(None) => still_running.push(s),
                Ok(Some(status)) => {
                    for reader in s.readers.drain(..) {
                        let _ = reader.join();
                    }
                    ended.push(Ended { name: s.name, status });
                }
                Err(e) => {
                    still_running.push(s);
                    self.running = still_running;
                    return Err(e).context("waiting for a child process");
                }
            }
        }
        self.running = still_running;
        Ok(ended)
    }

    /// Kills every child still running (SIGKILL) and reaps it.
    pub fn kill_all(&mut self) -> Vec<Ended> {
        let mut ended = Vec::new();
        for mut s in std::mem::take(&mut self.running) {
            let _ = s.child.kill();
            if let Ok(status) = s.child.wait() {
                for reader in s.readers.drain(..) {
                    let _ = reader.join();
                }
                ended.push(Ended { name: s.name, status });
            }
        }
        ended
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.kill_all();
    }
}

fn forward(stream: Box<dyn Read + Send>, which: Stream, sink: LineSink) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            sink(&line, which);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    fn wait_for_all(supervisor: &mut Supervisor) -> Vec<Ended> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut ended = Vec::new();
        while supervisor.running_count() > 0 {
            assert!(Instant::now() < deadline, "children still running after 30 s");
            ended.extend(supervisor.poll().unwrap());
            std::thread::sleep(Duration::from_millis(10));
        }
        ended
    }

    #[test]
    fn children_are_reaped_with_their_status_and_every_line_forwarded() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut supervisor = Supervisor::default();
        for (name, script) in [("ok", "echo out; echo err >&2"), ("fails", "exit 3")] {
            let mut command = Command::new("sh");
            command.args(["-c", script]);
            let lines = lines.clone();
            let sink = Arc::new(move |line: &str, which: Stream| lines.lock().unwrap().push((line.to_string(), which)));
            supervisor.spawn(name, command, Output::Lines(sink)).unwrap();
        }
        let mut ended = wait_for_all(&mut supervisor);
        ended.sort_by(|a, b| a.name.cmp(&b.name));
        let statuses: Vec<(String, Option<i32>)> = ended.iter().map(|e| (e.name.clone(), e.status.code())).collect();
        assert_eq!(statuses, [("fails".to_string(), Some(3)), ("ok".to_string(), Some(0))]);
        let mut lines = lines.lock().unwrap().clone();
        lines.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(lines, [("err".to_string(), Stream::Stderr), ("out".to_string(), Stream::Stdout)]);
    }

    #[test]
    fn children_left_are_killed_when_the_supervisor_goes() {
        let mut supervisor = Supervisor::default();
        let mut command = Command::new("sleep");
        command.arg("60");
        supervisor.spawn("sleeper", command, Output::Inherit).unwrap();
        let ended = supervisor.kill_all();
        assert_eq!(ended.len(), 1);
        assert!(!ended[0].status.success());
        assert_eq!(supervisor.running_count(), 0);
    }
}
