//! One writer per run directory: a lock file naming the owner's host and PID.
//!
//! Run directories may live on a file system shared between hosts (a cluster), where another
//! host's PID cannot be checked. So the owner refreshes the lock file's modification time every
//! tenth of the staleness; a lock of another host is taken over only when it has not been
//! refreshed for the staleness, [`STALE_AFTER`] or `RESLAB_LOCK_STALE_S` seconds (its owner died
//! with its host, or lost the file system). A lock of this host is taken over as soon as its
//! process is gone.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The lock file in a run directory, holding its owner's `host pid`.
pub const LOCK_FILE: &str = ".lock";
/// A lock of another host not touched for this long is stale (ten refreshes missed), unless
/// [`STALE_ENV`] says otherwise.
pub const STALE_AFTER: Duration = Duration::from_secs(600);
/// The staleness in whole seconds, for clusters whose hosts come back sooner, and for tests.
pub const STALE_ENV: &str = "RESLAB_LOCK_STALE_S";

/// Set (to `1`, or any spelling of yes) where a run should wait for another host's lock to go stale instead of failing at
/// once: Slurm's array tasks, which a requeue after a node loss may start while the lost node's
/// lock is still fresh (Slurm's default SlurmdTimeout, 300 s, is below the default staleness).
pub const WAIT_ENV: &str = "RESLAB_LOCK_WAIT";

/// Whether [`WAIT_ENV`] asks to wait.
fn waits() -> bool {
    std::env::var(WAIT_ENV).ok().and_then(|v| crate::util::parse_flag(&v)) == Some(true)
}

/// How long another host's lock may go without a refresh before it is stale: [`STALE_ENV`]'s
/// seconds, else [`STALE_AFTER`].
pub fn staleness() -> Result<Duration> {
    staleness_from(std::env::var(STALE_ENV).ok().as_deref())
}

fn staleness_from(value: Option<&str>) -> Result<Duration> {
    match value {
        None => Ok(STALE_AFTER),
        Some(text) => match text.trim().parse::<u64>() {
            Ok(secs) if secs >= 1 => Ok(Duration::from_secs(secs)),
            _ => bail!("{STALE_ENV} is '{text}'; expected a whole number of seconds, at least 1"),
        },
    }
}

/// How often the owner touches its lock file: ten times within the staleness.
fn refresh_every(stale: Duration) -> Duration {
    stale / 10
}

/// Held while a process writes a run directory; removed when dropped.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    refresher: Option<std::thread::JoinHandle<()>>,
}

/// Who holds a lock, as its file says: `host pid` (a bare PID, as older versions wrote, is this host's).
#[derive(Debug, Clone, PartialEq)]
pub struct LockOwner {
    /// The host name of the owner.
    pub host: String,
    /// Its process id, on that host.
    pub pid: u32,
}

impl LockOwner {
    /// Parses a lock file's `host pid` (a bare PID is this host's); `None` if it says neither.
    pub fn parse(text: &str) -> Option<LockOwner> {
        let mut words = text.split_whitespace();
        let (first, second) = (words.next()?, words.next());
        match second {
            None => Some(LockOwner { host: hostname(), pid: first.parse().ok()? }),
            Some(pid) => Some(LockOwner { host: first.to_string(), pid: pid.parse().ok()? }),
        }
    }

    /// The lock file of `dir`, when there is one.
    pub fn read(dir: &Path) -> Option<(LockOwner, Duration)> {
        let path = dir.join(LOCK_FILE);
        let owner = LockOwner::parse(&std::fs::read_to_string(&path).ok()?)?;
        Some((owner, age(&path)))
    }

    /// Whether the owner is still at work: alive (this host) or refreshed within `stale` (another).
    pub fn is_live(&self, age: Duration, stale: Duration) -> bool {
        if self.host == hostname() {
            process_alive(self.pid)
        } else {
            age < stale
        }
    }
}

impl RunLock {
    /// Locks run directory `dir`: an error if a live process holds it; a stale lock is taken over.
    /// With [`WAIT_ENV`], another host's fresh lock is waited for until it is stale (or freed),
    /// which takes at most the staleness; one still refreshed then is an error as without it.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        Self::acquire_with(dir, staleness()?, waits())
    }

    /// Waits while another host's lock of `dir` is fresh, up to the staleness (a lock refreshed
    /// meanwhile belongs to a live owner, and [`Self::acquire_with`] refuses it).
    fn wait_for_other_host(dir: &Path, stale: Duration) {
        let deadline = std::time::Instant::now() + stale;
        let mut said = false;
        while let Some((owner, age)) = LockOwner::read(dir) {
            if owner.host == hostname() || !owner.is_live(age, stale) || std::time::Instant::now() >= deadline {
                return;
            }
            if !said {
                crate::eprint_line!(
                    "waiting for the lock in {}: process {} on host {} refreshed it {} s ago; it is taken over \
                     after {} s without a refresh (its host lost), or refused if it is refreshed meanwhile",
                    dir.display(),
                    owner.pid,
                    owner.host,
                    age.as_secs(),
                    stale.as_secs()
                );
                said = true;
            }
            std::thread::sleep(refresh_every(stale).clamp(Duration::from_millis(100), Duration::from_secs(5)));
        }
    }

    fn acquire_with(dir: &Path, stale: Duration, wait: bool) -> Result<RunLock> {
        if wait {
            Self::wait_for_other_host(dir, stale);
        }
        let path = dir.join(LOCK_FILE);
        let me = format!("{} {}", hostname(), std::process::id());
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    write!(file, "{me}").with_context(|| format!("writing {}", path.display()))?;
                    return Ok(RunLock::hold(path, refresh_every(stale)));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    let age = age(&path);
                    match LockOwner::parse(&text) {
                        Some(owner) if owner.is_live(age, stale) && owner.host == hostname() => bail!(
                            "run directory {} is in use by process {} (lock file {}); wait for it to finish or stop it",
                            dir.display(),
                            owner.pid,
                            path.display()
                        ),
                        Some(owner) if owner.is_live(age, stale) => bail!(
                            "run directory {} is in use by process {} on host {} (lock file {}, refreshed {} s ago); \
                             a lock of another host is taken over only after {} s without a refresh",
                            dir.display(),
                            owner.pid,
                            owner.host,
                            path.display(),
                            age.as_secs(),
                            stale.as_secs()
                        ),
                        owner => {
                            let why = match &owner {
                                Some(o) if o.host == hostname() => format!("process {} is no longer running", o.pid),
                                Some(o) => format!(
                                    "process {} on host {} has not refreshed it for {} s",
                                    o.pid,
                                    o.host,
                                    age.as_secs()
                                ),
                                None => format!("it does not name an owner ({:?})", text.trim()),
                            };
                            crate::eprint_line!("warning: taking over the stale lock in {}: {why}", dir.display());
                            std::fs::remove_file(&path)
                                .with_context(|| format!("removing stale {}", path.display()))?;
                        }
                    }
                }
                Err(e) => return Err(e).with_context(|| format!("creating lock file {}", path.display())),
            }
        }
        bail!("could not take the lock {}: another process keeps taking it", path.display())
    }

    /// Keeps the lock file fresh (touched every `refresh`) from a background thread until dropped.
    fn hold(path: PathBuf, refresh: Duration) -> RunLock {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, file) = (Arc::clone(&stop), path.clone());
        let refresher = std::thread::spawn(move || {
            let tick = Duration::from_millis(100);
            let mut since = Duration::ZERO;
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                since += tick;
                if since >= refresh {
                    since = Duration::ZERO;
                    // Best effort: a missed refresh only brings staleness closer.
                    if let Ok(f) = std::fs::File::options().append(true).open(&file) {
                        let _ = f.set_modified(SystemTime::now());
                    }
                }
            }
        });
        RunLock { path, stop, refresher: Some(refresher) }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.refresher.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Removes `dir`'s lock if it names an owner that is gone: a process killed after its run was
/// complete leaves one, which no later start takes over (a complete run is not trained again).
pub fn clear_stale(dir: &Path) {
    let path = dir.join(LOCK_FILE);
    let (Ok(stale), Ok(text)) = (staleness(), std::fs::read_to_string(&path)) else {
        return;
    };
    // An empty file is a lock being taken right now: only a named, dead owner is cleared.
    let gone = LockOwner::parse(&text).is_some_and(|owner| !owner.is_live(age(&path), stale));
    if gone && std::fs::read_to_string(&path).is_ok_and(|again| again == text) {
        let _ = std::fs::remove_file(&path);
    }
}

/// Time since the file was last modified (zero if unknown or in the future).
fn age(path: &Path) -> Duration {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok())
        .unwrap_or(Duration::ZERO)
}

/// This host's name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer outlives the call and its length is passed.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    if ok && end > 0 {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "localhost".to_string()
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

    fn set_age(dir: &Path, age: Duration) {
        let file = std::fs::File::options().append(true).open(dir.join(LOCK_FILE)).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    }

    #[test]
    fn a_live_owner_is_refused_and_a_dead_one_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let lock = RunLock::acquire(dir.path()).unwrap();
        let written = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(written, format!("{} {}", hostname(), std::process::id()), "the lock names host and PID");
        let err = RunLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&format!("in use by process {}", std::process::id())), "{err}");
        drop(lock);
        assert!(!dir.path().join(LOCK_FILE).exists());
        // A PID that cannot be running (above the kernel's maximum), as older versions wrote it.
        std::fs::write(dir.path().join(LOCK_FILE), "4194999").unwrap();
        let _lock = RunLock::acquire(dir.path()).unwrap();
        assert!(std::fs::read_to_string(dir.path().join(LOCK_FILE))
            .unwrap()
            .ends_with(&std::process::id().to_string()));
    }

    #[test]
    fn only_a_named_owner_that_is_gone_has_its_lock_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        let lock = RunLock::acquire(dir.path()).unwrap();
        clear_stale(dir.path());
        assert!(path.exists(), "this live process's lock stays");
        drop(lock);
        for (text, cleared) in
            [(format!("{} 4194999", hostname()), true), ("other-host 12".to_string(), false), (String::new(), false)]
        {
            std::fs::write(&path, &text).unwrap();
            clear_stale(dir.path());
            assert_eq!(!path.exists(), cleared, "{text:?}");
        }
        // Another host's lock, once past the staleness, is gone too.
        std::fs::write(&path, "other-host 12").unwrap();
        set_age(dir.path(), STALE_AFTER + Duration::from_secs(60));
        clear_stale(dir.path());
        assert!(!path.exists());
    }

    #[test]
    fn another_hosts_lock_is_refused_while_fresh_and_taken_over_when_stale() {
        let dir = tempfile::tempdir().unwrap();
        // PID 1 exists here, but on another host it says nothing: only the age counts.
        std::fs::write(dir.path().join(LOCK_FILE), "gpu-node-17 1").unwrap();
        set_age(dir.path(), STALE_AFTER - Duration::from_secs(30));
        let err = RunLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains("in use by process 1 on host gpu-node-17") && err.contains("after 600 s"), "{err}");
        set_age(dir.path(), STALE_AFTER + Duration::from_secs(30));
        let lock = RunLock::acquire(dir.path()).unwrap();
        assert!(std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap().starts_with(&hostname()));
        drop(lock);
        assert_eq!(LockOwner::parse("node-3 42"), Some(LockOwner { host: "node-3".into(), pid: 42 }));
        assert_eq!(LockOwner::parse("garbage"), None);
    }

    #[test]
    fn the_staleness_comes_from_the_environment_and_the_owner_refreshes_within_it() {
        assert_eq!(staleness_from(None).unwrap(), STALE_AFTER);
        assert_eq!(staleness_from(Some("3")).unwrap(), Duration::from_secs(3));
        for bad in ["0", "-1", "2.5", "soon", ""] {
            let err = staleness_from(Some(bad)).unwrap_err().to_string();
            assert!(err.contains(&format!("RESLAB_LOCK_STALE_S is '{bad}'; expected a whole number")), "{err}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), "gpu-node-17 1").unwrap();
        set_age(dir.path(), Duration::from_secs(4));
        let err = RunLock::acquire_with(dir.path(), Duration::from_secs(5), false).unwrap_err().to_string();
        assert!(err.contains("only after 5 s without a refresh"), "{err}");
        let lock = RunLock::acquire_with(dir.path(), Duration::from_secs(3), false).unwrap();
        // Held with a 3 s staleness: touched every 0.3 s, so never older than that for long.
        set_age(dir.path(), Duration::from_secs(100));
        std::thread::sleep(Duration::from_millis(800));
        assert!(age(&dir.path().join(LOCK_FILE)) < Duration::from_secs(1), "the owner refreshed its lock");
        drop(lock);
    }

    #[test]
    fn a_waiting_run_takes_another_hosts_lock_once_stale_and_refuses_one_still_refreshed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), "gpu-node-17 1").unwrap();
        // Fresh (1 s old) with a 2 s staleness: waited for, then taken over, about 1 s later.
        set_age(dir.path(), Duration::from_secs(1));
        let started = std::time::Instant::now();
        let lock = RunLock::acquire_with(dir.path(), Duration::from_secs(2), true).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(700), "waited: {:?}", started.elapsed());
        assert!(std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap().starts_with(&hostname()));
        drop(lock);
        // An owner that keeps refreshing is live: after waiting the staleness, refused.
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join(LOCK_FILE), "gpu-node-17 1").unwrap();
        let path = other.path().join(LOCK_FILE);
        let stop = Arc::new(AtomicBool::new(false));
        let refresher = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let file = std::fs::File::options().append(true).open(&path).unwrap();
                    file.set_modified(SystemTime::now()).unwrap();
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        let err = RunLock::acquire_with(other.path(), Duration::from_secs(1), true).unwrap_err().to_string();
        stop.store(true, Ordering::Relaxed);
        refresher.join().unwrap();
        assert!(err.contains("in use by process 1 on host gpu-node-17"), "{err}");
    }
}
