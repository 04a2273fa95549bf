//! How busy the rest of the machine was while this process measured something. A probe that
//! times the training step (`--precision auto`, the job layout) measures the machine as it is at
//! that moment; when other processes (a build, a test suite, another study) held the cores, the
//! numbers say nothing about the machine and must not be cached. Linux only (`/proc`); elsewhere
//! the load is unknown and probes are trusted as before.

/// Cores other processes may keep busy beyond the ones a probe leaves free before the probe's
/// result is not trusted: a shell, a daemon or an editor never quite idles.
pub const SLACK_CORES: f64 = 0.5;

/// The environment variable that replaces [`SLACK_CORES`] (e.g. a large value where processes
/// run side by side on purpose, as the test suite's do).
pub const SLACK_ENV: &str = "RESLAB_PROBE_SLACK_CORES";

/// [`SLACK_CORES`], or the value of [`SLACK_ENV`] where it is a number.
pub fn slack_cores() -> f64 {
    std::env::var(SLACK_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| *v >= 0.0)
        .unwrap_or(SLACK_CORES)
}

/// CPU time counters at the start of a measurement.
#[derive(Debug, Clone, Copy)]
pub struct Meter {
    machine: MachineTicks,
    own: u64,
}

/// CPU ticks since boot of the cores this process may run on: busy and in total.
#[derive(Debug, Clone, Copy)]
struct MachineTicks {
    busy: u64,
    total: u64,
    cores: usize,
}

impl Meter {
    /// Starts measuring; `None` where `/proc` cannot tell.
    pub fn start() -> Option<Meter> {
        Some(Meter { machine: machine_ticks()?, own: own_ticks()? })
    }

    /// Cores that other processes kept busy since the start, on average; `None` where unknown
    /// or too short to tell.
    pub fn others_cores(&self) -> Option<f64> {
        let (machine, own) = (machine_ticks()?, own_ticks()?);
        let total = machine.total.checked_sub(self.machine.total)?;
        if total == 0 {
            return None;
        }
        let busy = machine.busy.saturating_sub(self.machine.busy);
        let others = busy.saturating_sub(own.saturating_sub(self.own));
        Some(others as f64 / total as f64 * machine.cores as f64)
    }
}

/// Whether `others_cores` busy elsewhere leave too little of `cores` for a probe that needs
/// `threads` of them.
pub fn too_busy(others_cores: f64, cores: usize, threads: usize) -> bool {
    too_busy_with(others_cores, cores, threads, slack_cores())
}

fn too_busy_with(others_cores: f64, cores: usize, threads: usize, slack: f64) -> bool {
    others_cores > cores.saturating_sub(threads) as f64 + slack
}

/// The `cpuN` lines of `/proc/stat` (`cpuN user nice system idle iowait irq softirq steal ...`)
/// of the cores this process may run on (its affinity: a Slurm task's or a container's cores, not
/// the whole machine's).
fn machine_ticks() -> Option<MachineTicks> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let allowed = allowed_cores();
    let mut sum = MachineTicks { busy: 0, total: 0, cores: 0 };
    for line in stat.lines() {
        let Some((core, ticks)) = parse_core_ticks(line) else { continue };
        if allowed.as_ref().is_none_or(|cores| cores.contains(&core)) {
            sum = MachineTicks { busy: sum.busy + ticks.busy, total: sum.total + ticks.total, cores: sum.cores + 1 };
        }
    }
    (sum.cores > 0).then_some(sum)
}

/// A `cpuN` line: the core's number and its ticks (the `cpu` line of all cores is not one).
fn parse_core_ticks(line: &str) -> Option<(usize, MachineTicks)> {
    let mut fields = line.split_whitespace();
    let core: usize = fields.next()?.strip_prefix("cpu")?.parse().ok()?;
    let values: Vec<u64> = fields.take(8).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    let [user, nice, system, idle, iowait, irq, softirq, steal] = values[..] else { return None };
    let busy = user + nice + system + irq + softirq + steal;
    Some((core, MachineTicks { busy, total: busy + idle + iowait, cores: 1 }))
}

/// The cores this process may run on; `None` where the system does not say.
fn allowed_cores() -> Option<Vec<usize>> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set, and sched_getaffinity writes at most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    if unsafe { libc::sched_getaffinity(0, size, &mut set) } != 0 {
        return None;
    }
    Some((0..libc::CPU_SETSIZE as usize).filter(|&i| unsafe { libc::CPU_ISSET(i, &set) }).collect())
}

/// This process's user and system ticks (every thread), from `/proc/self/stat`.
fn own_ticks() -> Option<u64> {
    parse_own_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

fn parse_own_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the name.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counters_parse_and_a_busy_machine_is_told_from_a_shared_one() {
        let (core, ticks) = parse_core_ticks("cpu3 100 5 50 1000 20 3 2 0 0 0").unwrap();
        assert_eq!((core, ticks.busy, ticks.total), (3, 160, 1180));
        assert!(parse_core_ticks("cpu  1 2 3 4 5 6 7 8").is_none(), "the line of all cores is not a core's");
        let allowed = allowed_cores().expect("Linux says which cores");
        // The cores the scheduler may use (a CPU quota can lower the parallelism below them).
        assert!(allowed.len() >= std::thread::available_parallelism().unwrap().get(), "{allowed:?}");
        let own = parse_own_ticks("4242 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 70 30 0 0 20 0").unwrap();
        assert_eq!(own, 100);
        // Two runs side by side on 2 cores: the sibling's core is its own, not a busy machine.
        assert!(!too_busy_with(1.0, 2, 1, SLACK_CORES));
        assert!(too_busy_with(1.6, 2, 1, SLACK_CORES), "a test suite beside the two runs");
        assert!(too_busy_with(0.8, 2, 2, SLACK_CORES), "a probe on both cores while a build holds one");
        assert!(!too_busy_with(0.2, 2, 2, SLACK_CORES));
        assert!(!too_busy_with(1.6, 2, 1, 64.0), "a larger slack from the environment");
        let meter = Meter::start().expect("/proc on Linux");
        std::thread::sleep(std::time::Duration::from_millis(200));
        let cores = std::thread::available_parallelism().unwrap().get() as f64;
        let others = meter.others_cores().expect("200 ms of ticks");
        assert!((0.0..=cores).contains(&others), "{others} of {cores} cores");
    }
}
