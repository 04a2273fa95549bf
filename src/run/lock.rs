//! One writer per run directory: a lock file holding the owner's PID.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = ".lock";

/// Held while a process writes a run directory; removed when dropped. A lock whose process is
/// gone (killed) is taken over with a warning.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

impl RunLock {
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        let path = dir.join(LOCK_FILE);
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    write!(file, "{}", std::process::id()).with_context(|| format!("writing {}", path.display()))?;
                    return Ok(RunLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&path).unwrap_or_default();
                    match owner.trim().parse::<u32>() {
                        Ok(pid) if process_alive(pid) => bail!(
                            "run directory {} is in use by process {pid} (lock file {}); wait for it to finish or stop it",
                            dir.display(),
                            path.display()
                        ),
                        _ => {
                            eprintln!(
                                "warning: taking over the stale lock of process {} in {} (it is no longer running)",
                                owner.trim(),
                                dir.display()
                            );
                            std::fs::remove_file(&path).with_context(|| format!("removing stale {}", path.display()))?;
                        }
                    }
                }
                Err(e) => return Err(e).with_context(|| format!("creating lock file {}", path.display())),
            }
        }
        bail!("could not take the lock {}: another process keeps taking it", path.display())
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn process_alive(pid: u32) -> bool {
    // Signal 0 checks existence; EPERM means it exists under another user.
    let result = unsafe { libc::kill(pid as libc::pid_t, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_owner_is_refused_and_a_dead_one_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let lock = RunLock::acquire(dir.path()).unwrap();
        let err = RunLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&format!("in use by process {}", std::process::id())), "{err}");
        drop(lock);
        assert!(!dir.path().join(LOCK_FILE).exists());
        // A PID that cannot be running (above the kernel's maximum).
        std::fs::write(dir.path().join(LOCK_FILE), "4194999").unwrap();
        let _lock = RunLock::acquire(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap(), std::process::id().to_string());
    }
}
