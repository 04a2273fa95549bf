//! How busy the rest of the machine was while this process measured something. A probe that
//! times the training step (`--precision auto`, the job layout) measures the machine as it is at
//! that moment; when other processes (a build, a test suite, another study) held the cores, the
//! numbers say nothing about the machine and must not be cached. Linux only (`/proc`); elsewhere
//! the load is unknown and probes are trusted as before.

/// Cores other processes may keep busy beyond the ones a probe leaves free before the probe's
/// result is not trusted: a shell, a daemon or an editor never quite idles.
pub const SLACK_CORES: f64 = 0.5;

/// CPU time counters at the start of a measurement.
#[derive(Debug, Clone, Copy)]
pub struct Meter {
    machine: MachineTicks,
    own: u64,
}

/// The machine's CPU ticks since boot (all cores): busy and in total.
#[derive(Debug, Clone, Copy)]
struct MachineTicks {
    busy: u64,
    total: u64,
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
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        Some(others as f64 / total as f64 * cores)
    }
}

/// Whether `others_cores` busy elsewhere leave too little of `cores` for a probe that needs
/// `threads` of them.
pub fn too_busy(others_cores: f64, cores: usize, threads: usize) -> bool {
    others_cores > cores.saturating_sub(threads) as f64 + SLACK_CORES
}

/// The first line of `/proc/stat`: `cpu user nice system idle iowait irq softirq steal ...`.
fn machine_ticks() -> Option<MachineTicks> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_machine_ticks(stat.lines().next()?)
}

fn parse_machine_ticks(line: &str) -> Option<MachineTicks> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let values: Vec<u64> = fields.take(8).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    let [user, nice, system, idle, iowait, irq, softirq, steal] = values[..] else { return None };
    let busy = user + nice + system + irq + softirq + steal;
    Some(MachineTicks { busy, total: busy + idle + iowait })
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
        let machine = parse_machine_ticks("cpu  100 5 50 1000 20 3 2 0 0 0").unwrap();
        assert_eq!((machine.busy, machine.total), (160, 1180));
        assert!(parse_machine_ticks("cpu0 1 2 3 4 5 6 7 8").is_none(), "the total line only");
        let own = parse_own_ticks("4242 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 70 30 0 0 20 0").unwrap();
        assert_eq!(own, 100);
        // Two runs side by side on 2 cores: the sibling's core is its own, not a busy machine.
        assert!(!too_busy(1.0, 2, 1));
        assert!(too_busy(1.6, 2, 1), "a test suite beside the two runs");
        assert!(too_busy(0.8, 2, 2), "a probe on both cores while a build holds one");
        assert!(!too_busy(0.2, 2, 2));
        let meter = Meter::start().expect("/proc on Linux");
        std::thread::sleep(std::time::Duration::from_millis(200));
        let cores = std::thread::available_parallelism().unwrap().get() as f64;
        let others = meter.others_cores().expect("200 ms of ticks");
        assert!((0.0..=cores).contains(&others), "{others} of {cores} cores");
    }
}
