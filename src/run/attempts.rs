//! `attempts.csv`: a row for every time a run was started or resumed, so a run directory says
//! how it came to be (on which host, from which iteration) after any number of kills, requeues and
//! moves between nodes.

use super::config::DeviceChoice;
use super::lock::hostname;
use crate::util::fs::write_file;
use crate::util::time::now_unix_s;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The file in a run directory.
pub const FILE: &str = "attempts.csv";

/// One start of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1 for the first start, counting every start since the directory was made.
    pub attempt: usize,
    /// When it started, seconds since the Unix epoch.
    pub started_unix_s: u64,
    /// The host it ran on.
    pub host: String,
    /// The process (rank 0's) on that host.
    pub pid: u32,
    /// Processes training the run together.
    pub world_size: usize,
    /// libtorch threads per process.
    pub threads: usize,
    /// The iteration it started from: 0, or its checkpoint's.
    pub start_iteration: usize,
    /// The device it computed on (rank 0's); empty in files written before reslab recorded it.
    #[serde(default)]
    pub device: String,
}

/// The attempts recorded in `dir` (none where there is no file yet).
pub fn read(dir: &Path) -> Result<Vec<Attempt>> {
    let path = dir.join(FILE);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut reader = csv::Reader::from_path(&path).with_context(|| format!("reading {}", path.display()))?;
    reader.deserialize().collect::<Result<_, _>>().with_context(|| format!("reading {}", path.display()))
}

/// Records a start of the run in `dir` at `start_iteration` by this process on `device`; the
/// attempt, and the device of the attempt before it where that was another (a run resumed on
/// another device says so).
pub fn record(
    dir: &Path,
    world_size: usize,
    threads: usize,
    device: DeviceChoice,
    start_iteration: usize,
) -> Result<(Attempt, Option<String>)> {
    // A file that cannot be read (a hand edit, an older layout) is started afresh, not fatal.
    let mut attempts = read(dir).unwrap_or_default();
    let device = device.to_string();
    let moved = attempts.last().map(|a| a.device.clone()).filter(|before| !before.is_empty() && *before != device);
    let attempt = Attempt {
        attempt: attempts.len() + 1,
        started_unix_s: now_unix_s(),
        host: hostname(),
        pid: std::process::id(),
        world_size,
        threads,
        start_iteration,
        device,
    };
    attempts.push(attempt.clone());
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in &attempts {
        writer.serialize(row).expect("an attempt always serialises");
    }
    write_file(&dir.join(FILE), &writer.into_inner().expect("writing to memory"))?;
    Ok((attempt, moved))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_start_is_a_row_counted_from_one() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_empty());
        let (_, moved) = record(dir.path(), 1, 2, DeviceChoice::Cpu, 0).unwrap();
        assert_eq!(moved, None);
        let (second, moved) = record(dir.path(), 2, 1, DeviceChoice::Cuda(Some(1)), 30).unwrap();
        assert_eq!(moved.as_deref(), Some("cpu"), "resumed on another device");
        assert_eq!(second.device, "cuda:1");
        assert_eq!((second.attempt, second.start_iteration, second.world_size), (2, 30, 2));
        let rows = read(dir.path()).unwrap();
        assert_eq!(rows.iter().map(|a| (a.attempt, a.start_iteration)).collect::<Vec<_>>(), [(1, 0), (2, 30)]);
        assert_eq!(rows[1].host, hostname());
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(
            text.starts_with("attempt,started_unix_s,host,pid,world_size,threads,start_iteration,device\n"),
            "{text}"
        );
        // A file written before the device was recorded still reads, its attempts' device unknown.
        std::fs::write(
            dir.path().join(FILE),
            "attempt,started_unix_s,host,pid,world_size,threads,start_iteration\n1,5,h,7,1,2,0\n",
        )
        .unwrap();
        assert_eq!(read(dir.path()).unwrap()[0].device, "");
        let (_, moved) = record(dir.path(), 1, 2, DeviceChoice::Cpu, 40).unwrap();
        assert_eq!(moved, None, "an unknown device is not called another");
    }
}
