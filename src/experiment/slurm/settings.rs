//! The `[slurm]` table, the command line's flags over it and the defaults of its fields, beside
//! the backend that reads them. A leaf: spec.rs names `SlurmSettings` from here without depending
//! on slurm.rs, which depends on spec.rs.

use crate::experiment::sbatch::{MemorySize, SbatchOption, SlurmName, TimeLimit};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// The `[slurm]` table: what `--backend slurm` asks of Slurm. The partition, account, QoS and
/// `sbatch` options go on every job of a study; the other fields are the resources of one job: each
/// run's array task (the training), or the job that aggregates the study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmSettings {
    /// The partition (`-p`) of every job; default Slurm's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<SlurmName>,
    /// The account (`-A`) every job is charged to; default the user's default account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<SlurmName>,
    /// The quality of service (`-q`) of every job; default the account's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<SlurmName>,
    /// Further `#SBATCH` options of every job (`--mail-type=FAIL`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sbatch: Vec<SbatchOption>,
    /// Each training task's time limit; default the partition's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<TimeLimit>,
    /// CPUs per training task, which are also the run's libtorch threads.
    #[serde(default = "default_cpus_per_task")]
    pub cpus_per_task: u32,
    /// GPUs per training task (`--gpus-per-task`); default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus_per_task: Option<u32>,
    /// Memory of each training task (sbatch's `--mem`: per node); default Slurm's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<MemorySize>,
    /// Seconds before the time limit at which a task checkpoints and requeues itself (default
    /// [`DEFAULT_GRACE_S`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_s: Option<u32>,
    /// Processes that train each run together (data parallel: `srun` starts them, each with
    /// `cpus_per_task` CPUs and `gpus_per_task` GPUs, on as many nodes as Slurm gives); default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks_per_run: Option<u32>,
    /// Further `#SBATCH` options of the training tasks only (`--constraint=a100`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub task_sbatch: Vec<SbatchOption>,
    /// The aggregation job's time limit (default [`DEFAULT_AGGREGATE_TIME`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate_time: Option<TimeLimit>,
    /// The aggregation job's CPUs, also its threads (default [`DEFAULT_AGGREGATE_CPUS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate_cpus: Option<u32>,
    /// The aggregation job's memory; default Slurm's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate_mem: Option<MemorySize>,
}

/// CPUs per training task where neither the file nor the command line says.
pub const DEFAULT_CPUS_PER_TASK: u32 = 1;

fn default_cpus_per_task() -> u32 {
    DEFAULT_CPUS_PER_TASK
}

/// Seconds before the time limit at which a task checkpoints and requeues itself.
pub const DEFAULT_GRACE_S: u32 = 120;
/// The aggregation job's time limit: tables, charts and the analyses of most studies take minutes;
/// a short limit lets Slurm start it soon after the array (studies that draw loss landscapes at
/// length say more in their `[slurm]` table).
pub const DEFAULT_AGGREGATE_TIME: TimeLimit = TimeLimit::Limited(Duration::from_secs(3600));
/// The aggregation job's CPUs (also its threads).
pub const DEFAULT_AGGREGATE_CPUS: u32 = 1;

/// What the command line says of the `[slurm]` table: each field, where given, replaces the
/// file's (`sbatch` and `task_sbatch` options are added to the file's).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlurmOverrides {
    /// `--partition`.
    pub partition: Option<SlurmName>,
    /// `--account`.
    pub account: Option<SlurmName>,
    /// `--qos`.
    pub qos: Option<SlurmName>,
    /// `--sbatch` (repeatable), added after the file's options.
    pub sbatch: Vec<SbatchOption>,
    /// `--time`.
    pub time: Option<TimeLimit>,
    /// `--cpus-per-task`.
    pub cpus_per_task: Option<u32>,
    /// `--gpus-per-task`.
    pub gpus_per_task: Option<u32>,
    /// `--mem`.
    pub mem: Option<MemorySize>,
    /// `--grace`, in seconds.
    pub grace_s: Option<u32>,
    /// `--tasks-per-run`.
    pub tasks_per_run: Option<u32>,
    /// `--task-sbatch` (repeatable), added after the file's options.
    pub task_sbatch: Vec<SbatchOption>,
    /// `--aggregate-time`.
    pub aggregate_time: Option<TimeLimit>,
    /// `--aggregate-cpus`.
    pub aggregate_cpus: Option<u32>,
    /// `--aggregate-mem`.
    pub aggregate_mem: Option<MemorySize>,
}

impl SlurmSettings {
    /// These settings with the command line's on top.
    pub fn overridden_by(&self, o: &SlurmOverrides) -> SlurmSettings {
        let mut settings = self.clone();
        settings.partition = o.partition.clone().or(settings.partition);
        settings.account = o.account.clone().or(settings.account);
        settings.qos = o.qos.clone().or(settings.qos);
        settings.sbatch.extend(o.sbatch.iter().cloned());
        settings.time = o.time.or(settings.time);
        settings.cpus_per_task = o.cpus_per_task.unwrap_or(settings.cpus_per_task);
        settings.gpus_per_task = o.gpus_per_task.or(settings.gpus_per_task);
        settings.mem = o.mem.or(settings.mem);
        settings.grace_s = o.grace_s.or(settings.grace_s);
        settings.tasks_per_run = o.tasks_per_run.or(settings.tasks_per_run);
        settings.task_sbatch.extend(o.task_sbatch.iter().cloned());
        settings.aggregate_time = o.aggregate_time.or(settings.aggregate_time);
        settings.aggregate_cpus = o.aggregate_cpus.or(settings.aggregate_cpus);
        settings.aggregate_mem = o.aggregate_mem.or(settings.aggregate_mem);
        settings
    }

    /// The processes that train each run: `tasks_per_run`, 1 where unset.
    pub fn processes_per_run(&self) -> u32 {
        self.tasks_per_run.unwrap_or(1).max(1)
    }
}

impl Default for SlurmSettings {
    fn default() -> Self {
        SlurmSettings {
            partition: None,
            account: None,
            qos: None,
            sbatch: vec![],
            time: None,
            cpus_per_task: DEFAULT_CPUS_PER_TASK,
            gpus_per_task: None,
            mem: None,
            grace_s: None,
            tasks_per_run: None,
            task_sbatch: vec![],
            aggregate_time: None,
            aggregate_cpus: None,
            aggregate_mem: None,
        }
    }
}

impl SlurmSettings {
    /// Seeds on demand: keeps these settings at `path` (a study's `.slurm/settings.toml`), for
    /// the jobs that submit its later rounds.
    pub fn record(&self, path: &Path) -> Result<()> {
        let text = toml::to_string(self).context("writing the study's Slurm settings")?;
        crate::util::fs::write_file(path, text.as_bytes())
    }

    /// The settings kept at `path`: one line where there are none.
    pub fn recorded(path: &Path) -> Result<SlurmSettings> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!("reading {} (written when the study's first round was submitted)", path.display())
        })?;
        toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), crate::run::config::one_line(&e.to_string())))
    }
}
