//! The Slurm backend: a study's runs that are not complete as one `sbatch --array` job (a task per
//! run, each `reslab train --config ... --out DIR`), and a job that aggregates the study when the
//! array has ended (`--dependency=afterany`). Slurm schedules; reslab only writes the scripts.
//!
//! A task is signalled before its time limit (`--signal=B:USR1@GRACE`): its script stops the
//! run, which writes a checkpoint, and requeues the task (`scontrol requeue`), so a run longer than
//! the partition's limit finishes over several allocations. A preempted or killed task is requeued
//! by Slurm (`--requeue`) and resumes from its last checkpoint like any run.
//!
//! The run directories (on a file system every host sees) stay the only contract: aggregation and
//! `reslab status` read them; `.slurm/jobs.toml` only adds Slurm's view of the tasks.

pub mod settings;

pub use settings::{
    SlurmOverrides, SlurmSettings, DEFAULT_AGGREGATE_CPUS, DEFAULT_AGGREGATE_TIME, DEFAULT_CPUS_PER_TASK,
    DEFAULT_GRACE_S,
};

use super::overrides::Overrides;
use super::plan::{pending, plan, PlannedRun};
use super::preset::Preset;
use super::spec::Experiment;
use super::study_dir::StudyDir;
use crate::util::fs::write_file;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;

const JOBS_FILE: &str = "jobs.toml";

/// The jobs a submission makes, each from a batch script under `.slurm/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// The array job: a task per run that is not complete, each training it.
    Training,
    /// The job that aggregates the study once the array has ended.
    Aggregation,
}

impl Job {
    /// Every job of a submission, in the order it is submitted.
    pub const ALL: [Job; 2] = [Job::Training, Job::Aggregation];

    /// Its batch script's file name under `.slurm/`.
    pub fn script_name(self) -> &'static str {
        match self {
            Job::Training => "array.sh",
            Job::Aggregation => "aggregate.sh",
        }
    }
}

/// What `reproduce --backend slurm` submitted, kept in `.slurm/jobs.toml` for `reslab status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    /// Slurm's id of the array job (a task per run).
    pub array_job: String,
    /// Slurm's id of the job that aggregates after the array.
    pub aggregate_job: String,
    /// The run directory of each array task, by task index.
    pub runs: Vec<String>,
}

impl Submission {
    /// The submission recorded in study folder `out`; `None` if none is, or it does not parse.
    pub fn load(out: &Path) -> Option<Submission> {
        toml::from_str(&std::fs::read_to_string(StudyDir::new(out).slurm().join(JOBS_FILE)).ok()?).ok()
    }

    fn save(&self, out: &Path) -> Result<()> {
        let text = toml::to_string(self).expect("a submission always serialises");
        write_file(&StudyDir::new(out).slurm().join(JOBS_FILE), text.as_bytes())
    }
}

/// The batch scripts of one submission.
#[derive(Debug, Clone, PartialEq)]
pub struct Scripts {
    /// The array job's batch script.
    pub array: String,
    /// The aggregation job's batch script.
    pub aggregate: String,
    /// The pending runs, in task order.
    pub runs: Vec<PlannedRun>,
}

impl Scripts {
    /// The batch script of `job`.
    pub fn script(&self, job: Job) -> &str {
        match job {
            Job::Training => &self.array,
            Job::Aggregation => &self.aggregate,
        }
    }
}

/// How to invoke reslab again on the cluster: the binary, and the study's options as they were
/// asked for.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The reslab binary the jobs run.
    pub exe: PathBuf,
    /// The preset the study is run at.
    pub preset: Preset,
    /// The command line's overrides, passed on to the jobs.
    pub overrides: Overrides,
    /// The MLflow server the aggregating job sends the study to.
    pub mlflow: Option<String>,
    /// Seeds on demand: the round this submission trains. Its aggregation job takes the round's
    /// look (`reproduce FOLDER --backend slurm --after-round N`) and submits the next round with
    /// the same Slurm settings (`.slurm/settings.toml`).
    pub round: Option<usize>,
}

/// Shell-quotes `word` for a bash script.
fn quote(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c)) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}

/// The study's options as its array tasks train the runs: with the CPUs Slurm gives each task as
/// its threads, and the processes of each run as its world size. (`auto` precision is left to
/// each task: it is decided on the node where the run first starts, by the probe and that node's
/// cache, and a requeued run keeps it: docs/clusters.md.)
fn task_overrides(invocation: &Invocation, settings: &SlurmSettings) -> Overrides {
    let mut overrides = invocation.overrides.clone();
    overrides.threads = settings.cpus_per_task as usize;
    overrides.world_size = Some(settings.processes_per_run() as usize);
    overrides
}

/// The batch scripts for the runs of `experiment` not complete in `out`.
pub fn scripts(
    experiment: &Experiment,
    invocation: &Invocation,
    settings: &SlurmSettings,
    out: &Path,
) -> Result<Scripts> {
    let overrides = task_overrides(invocation, settings);
    let tasks = settings.processes_per_run();
    let runs: Vec<PlannedRun> = pending(plan(experiment, invocation.preset, &overrides, out)?)?;
    let out = absolute(out)?;
    let slurm = StudyDir::new(&out).slurm();
    let workdir = std::env::current_dir().context("finding the current directory")?;
    let text = |path: &Path| quote(&path.display().to_string());
    let directives = |job: Job| -> String {
        sbatch_options(settings, job).into_iter().map(|option| format!("\n#SBATCH {option}")).collect()
    };
    let (version, exe, workdir) = (env!("CARGO_PKG_VERSION"), text(&invocation.exe), text(&workdir));
    let names: Vec<String> = runs.iter().map(|r| quote(&r.dir_name())).collect();
    let array = fill(
        ARRAY_TEMPLATE,
        &[
            ("experiment", &experiment.name),
            ("workdir", &workdir),
            ("last_task", &runs.len().saturating_sub(1).to_string()),
            ("log", &text(&slurm.join("logs/%A_%a.log"))),
            ("grace_s", &settings.grace_s.unwrap_or(DEFAULT_GRACE_S).to_string()),
            ("directives", &directives(Job::Training)),
            ("version", version),
            ("preset", invocation.preset.name()),
            ("runs", &names.join(" ")),
            ("out", &text(&out)),
            // Several tasks: srun starts a rank in each (the signal reaches them all through it,
            // and one failing ends the step).
            ("launcher", if tasks > 1 { "srun --kill-on-bad-exit=1 " } else { "" }),
            ("exe", &exe),
            ("distributed", if tasks > 1 { " --distributed" } else { "" }),
            ("configs", &text(&slurm.join("configs"))),
        ],
    );
    // The study by its folder: its experiment.toml (written at submission) records it as the
    // tasks train it, world size included.
    let mut args = match invocation.round {
        Some(round) => {
            ["reproduce", &out.display().to_string(), "--backend", "slurm", "--after-round", &round.to_string()]
                .map(String::from)
                .to_vec()
        }
        None => vec!["aggregate".to_string(), out.display().to_string()],
    };
    if let Some(uri) = &invocation.mlflow {
        args.extend(["--mlflow".to_string(), uri.clone()]);
    }
    let args: Vec<String> = args.iter().map(|a| quote(a)).collect();
    let aggregate = fill(
        AGGREGATE_TEMPLATE,
        &[
            ("experiment", &experiment.name),
            ("workdir", &workdir),
            ("log", &text(&slurm.join("logs/aggregate-%j.log"))),
            ("directives", &directives(Job::Aggregation)),
            ("version", version),
            ("exe", &exe),
            ("args", &args.join(" ")),
        ],
    );
    Ok(Scripts { array, aggregate, runs })
}

/// The training array's batch script: one task per run, requeued near its time limit.
const ARRAY_TEMPLATE: &str = include_str!("slurm/array.sh");
/// The aggregation job's batch script, run once the array has ended.
const AGGREGATE_TEMPLATE: &str = include_str!("slurm/aggregate.sh");

/// `template` with each `{name}` replaced by its value, in one pass (a value is never read as
/// a template: a folder may be named `{out}`). Every name is in the template: a value with
/// nowhere to go is a mistake in this file. The bash in the templates spells no lowercase
/// `{name}` of its own.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut text = String::with_capacity(template.len() * 2);
    let mut used = vec![false; values.len()];
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        text.push_str(&rest[..start]);
        rest = &rest[start..];
        let found = values.iter().position(|(name, _)| {
            rest.strip_prefix('{').and_then(|r| r.strip_prefix(name)).is_some_and(|r| r.starts_with('}'))
        });
        match found {
            Some(i) => {
                text.push_str(values[i].1);
                rest = &rest[values[i].0.len() + 2..];
                used[i] = true;
            }
            None => {
                text.push('{');
                rest = &rest[1..];
            }
        }
    }
    text.push_str(rest);
    let unused: Vec<&str> = values.iter().zip(&used).filter(|(_, used)| !**used).map(|((name, _), _)| *name).collect();
    assert!(unused.is_empty(), "the batch script template has no place for {unused:?}");
    text
}

/// The sbatch options of `job` that `settings` decide, each as `--name=value` for an `#SBATCH`
/// line, in order: where it runs and who pays (partition, account, QoS), on every job so that a
/// cluster requiring them accepts each; the job's own resources; the user's `sbatch` options (every
/// job), then `task_sbatch` (training tasks only). The user's come last: sbatch takes an option's
/// last value, so they override reslab's.
pub fn sbatch_options(settings: &SlurmSettings, job: Job) -> Vec<String> {
    let mut options = Vec::new();
    let names = [("partition", &settings.partition), ("account", &settings.account), ("qos", &settings.qos)];
    for (option, name) in names {
        if let Some(name) = name {
            options.push(format!("--{option}={name}"));
        }
    }
    let (time, mem) = match job {
        Job::Training => {
            options.push(format!("--ntasks={}", settings.processes_per_run()));
            options.push(format!("--cpus-per-task={}", settings.cpus_per_task));
            if let Some(gpus) = settings.gpus_per_task.filter(|g| *g > 0) {
                options.push(format!("--gpus-per-task={gpus}"));
            }
            (settings.time, settings.mem)
        }
        Job::Aggregation => {
            options.push("--ntasks=1".into());
            options.push(format!("--cpus-per-task={}", settings.aggregate_cpus.unwrap_or(DEFAULT_AGGREGATE_CPUS)));
            (Some(settings.aggregate_time.unwrap_or(DEFAULT_AGGREGATE_TIME)), settings.aggregate_mem)
        }
    };
    if let Some(time) = time {
        options.push(format!("--time={time}"));
    }
    if let Some(mem) = mem {
        options.push(format!("--mem={mem}"));
    }
    options.extend(settings.sbatch.iter().map(ToString::to_string));
    if job == Job::Training {
        options.extend(settings.task_sbatch.iter().map(ToString::to_string));
    }
    options
}

/// `reproduce --backend slurm`: the scripts (only printed with `dry_run`), or the submission.
pub fn reproduce(
    experiment: &Experiment,
    invocation: &Invocation,
    settings: &SlurmSettings,
    out: &Path,
    dry_run: bool,
) -> Result<Option<Submission>> {
    if !dry_run {
        super::reuse::link_reused_runs(experiment, invocation.preset, &invocation.overrides, out)?;
    }
    let scripts = scripts(experiment, invocation, settings, out)?;
    if dry_run {
        print!("{}", dry_run_text(&scripts, out));
        return Ok(None);
    }
    StudyDir::new(out).record_study(experiment, invocation.preset, &task_overrides(invocation, settings))?;
    if invocation.round.is_some() {
        std::fs::create_dir_all(StudyDir::new(out).slurm())?;
        settings.record(&StudyDir::new(out).slurm_settings())?;
    }
    submit(&scripts, out).map(Some)
}

/// Writes the scripts and each task's configuration under `out/.slurm`, submits the array and the
/// aggregation after it, and records the job ids.
pub fn submit(scripts: &Scripts, out: &Path) -> Result<Submission> {
    if scripts.runs.is_empty() {
        bail!("every run of the study is complete already; nothing to submit (reslab aggregate writes the report)");
    }
    let slurm = StudyDir::new(out).slurm();
    std::fs::create_dir_all(slurm.join("logs")).with_context(|| format!("creating {}", slurm.display()))?;
    std::fs::create_dir_all(slurm.join("configs"))?;
    for run in &scripts.runs {
        write_file(
            &slurm.join("configs").join(format!("{}.toml", run.dir_name())),
            run.run.handed_on_toml().as_bytes(),
        )?;
    }
    for job in Job::ALL {
        write_file(&script_path(out, job), scripts.script(job).as_bytes())?;
    }
    let array_job = sbatch(&array_sbatch_args(), &script_path(out, Job::Training))?;
    let aggregate_job = sbatch(&aggregate_sbatch_args(&array_job), &script_path(out, Job::Aggregation))?;
    let submission =
        Submission { array_job, aggregate_job, runs: scripts.runs.iter().map(PlannedRun::dir_name).collect() };
    submission.save(out)?;
    Ok(submission)
}

/// Where the batch script of `job` is written.
fn script_path(out: &Path, job: Job) -> PathBuf {
    StudyDir::new(out).slurm().join(job.script_name())
}

/// `sbatch`'s arguments for the array (the script says the rest).
fn array_sbatch_args() -> Vec<String> {
    vec![]
}

/// `sbatch`'s arguments for the aggregation: it starts once the array `array_job` has ended,
/// however its tasks ended (`status` and the report say which runs are missing).
fn aggregate_sbatch_args(array_job: &str) -> Vec<String> {
    vec![format!("--dependency=afterany:{array_job}")]
}

/// What `--dry-run` prints: the `sbatch` commands a submission would run, in order (the
/// aggregation's dependency on the array's job id, not known before it is submitted, as
/// `$array_job`), then the two scripts.
pub fn dry_run_text(scripts: &Scripts, out: &Path) -> String {
    let (array_path, aggregate_path) = (script_path(out, Job::Training), script_path(out, Job::Aggregation));
    let command = |args: Vec<String>, script: &Path| {
        let mut words = vec!["sbatch".to_string(), "--parsable".to_string()];
        words.extend(args);
        words.push(quote(&script.display().to_string()));
        words.join(" ")
    };
    let mut text = format!(
        "# reslab would write {} run configurations under {}, these two scripts, and run:\n",
        scripts.runs.len(),
        StudyDir::new(out).slurm().display()
    );
    text += &format!("array_job=$({})\n", command(array_sbatch_args(), &array_path));
    text += &format!("{}\n\n", command(aggregate_sbatch_args("$array_job"), &aggregate_path));
    text += &format!("# {}\n{}\n", array_path.display(), scripts.array);
    text += &format!("# {}\n{}\n", aggregate_path.display(), scripts.aggregate);
    text
}

/// `sbatch --parsable`: the job id.
fn sbatch(args: &[String], script: &Path) -> Result<String> {
    let output = Command::new("sbatch")
        .arg("--parsable")
        .args(args)
        .arg(script)
        .output()
        .context("running sbatch (is Slurm's client installed and on PATH?)")?;
    if !output.status.success() {
        bail!(
            "sbatch {} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr).trim().replace('\n', " ")
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    // `--parsable` prints `id` or `id;cluster`.
    let id = text.trim().split(';').next().unwrap_or_default().to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("sbatch {} printed no job id: {:?}", script.display(), text.trim());
    }
    Ok(id)
}

/// Slurm's state of each array task (`RUNNING`, `PENDING`, `COMPLETED`, `REQUEUED`, ...) by task
/// index, from `squeue` (tasks waiting or running), `scontrol` (tasks ended lately) and `sacct`
/// (the others, where there is accounting); empty where Slurm's commands are not available.
pub fn task_states(submission: &Submission) -> Vec<Option<String>> {
    let mut states: Vec<Option<String>> = vec![None; submission.runs.len()];
    let job = &submission.array_job;
    let lines = |program: &str, args: &[&str]| -> Vec<String> {
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect())
            .unwrap_or_default()
    };
    let mut record = |id: &str, state: &str| {
        let Some(task) = id.strip_prefix(&format!("{job}_")) else { return };
        let state = state.split_whitespace().next().unwrap_or_default().to_string();
        let mut set = |index: usize| {
            if let Some(slot) = states.get_mut(index) {
                *slot = Some(state.clone());
            }
        };
        match task.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            // A range of tasks not started yet: `[2-5%2]`, `[1,3]`.
            Some(ranges) => {
                for part in ranges.split('%').next().unwrap_or_default().split(',') {
                    let bounds: Vec<usize> = part.split('-').filter_map(|b| b.parse().ok()).collect();
                    if let (Some(&lo), Some(&hi)) = (bounds.first(), bounds.last()) {
                        (lo..=hi).for_each(&mut set);
                    }
                }
            }
            None => {
                if let Ok(index) = task.parse() {
                    set(index)
                }
            }
        }
    };
    for line in lines("sacct", &["-n", "-P", "-X", "-j", job, "-o", "JobID,State"]) {
        if let Some((id, state)) = line.split_once('|') {
            record(id, state);
        }
    }
    // Tasks slurmctld still remembers (MinJobAge), where there is no accounting database.
    for line in lines("scontrol", &["-o", "show", "job", job]) {
        let field = |name: &str| line.split_whitespace().find_map(|w| w.strip_prefix(name).map(str::to_string));
        if let (Some(task), Some(state)) = (field("ArrayTaskId="), field("JobState=")) {
            record(&format!("{job}_{task}"), &state);
        }
    }
    for line in lines("squeue", &["-h", "-r", "-j", job, "-o", "%i|%T"]) {
        if let Some((id, state)) = line.split_once('|') {
            record(id, state);
        }
    }
    states
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation() -> Invocation {
        Invocation {
            exe: PathBuf::from("/opt/reslab/bin/reslab"),
            preset: Preset::Smoke,
            overrides: Overrides {
                seeds: Some(crate::experiment::spec::Seeds::Count(2)),
                depths: Some(vec![20]),
                iters: Some(4),
                ..Overrides::default()
            },
            mlflow: None,
            round: None,
        }
    }

    /// The aggregation job addresses the study by its folder: what the submission records there
    /// plans the runs exactly as the tasks train them (several processes each included), so the
    /// job neither calls them another configuration's nor needs the study's arguments again.
    #[test]
    fn the_recorded_study_plans_the_runs_the_tasks_train() {
        let dir = tempfile::tempdir().unwrap();
        let experiment = Experiment::load("table6").unwrap();
        let settings = SlurmSettings { tasks_per_run: Some(2), cpus_per_task: 3, ..SlurmSettings::default() };
        let scripts = scripts(&experiment, &invocation(), &settings, dir.path()).unwrap();
        assert_eq!(scripts.runs.len(), 2);
        assert!(scripts.runs.iter().all(|r| r.config().world_size == 2));
        StudyDir::new(dir.path())
            .record_study(&experiment, Preset::Smoke, &task_overrides(&invocation(), &settings))
            .unwrap();
        let folder = dir.path().display().to_string();
        let request = crate::experiment::study::StudyRequest {
            experiment: folder,
            preset: None,
            out: None,
            overrides: Overrides::default(),
            mlflow: None,
        };
        let study = request.study().unwrap();
        let recorded = plan(&study.experiment, study.preset, &study.overrides, &study.out).unwrap();
        assert_eq!(recorded.len(), scripts.runs.len());
        for (recorded, task) in recorded.iter().zip(&scripts.runs) {
            assert_eq!(recorded.config().difference(task.config(), crate::run::identity::Leeway::NONE), None);
        }
    }

    #[test]
    fn the_array_has_a_task_per_pending_run_and_requeues_itself_near_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let experiment = Experiment::load("table6").unwrap();
        let settings = SlurmSettings {
            partition: Some("gpu".parse().unwrap()),
            time: Some("04:00:00".parse().unwrap()),
            cpus_per_task: 4,
            gpus_per_task: Some(1),
            sbatch: vec!["--account=proj42".parse().unwrap()],
            ..SlurmSettings::default()
        };
        let scripts = scripts(&experiment, &invocation(), &settings, dir.path()).unwrap();
        let names: Vec<String> = scripts.runs.iter().map(PlannedRun::dir_name).collect();
        assert_eq!(names, ["resnet-20-seed0", "resnet-20-seed1"]);
        assert!(scripts.runs.iter().all(|r| r.config().threads == 4), "threads = the task's CPUs");
        for line in [
            "#SBATCH --array=0-1",
            "#SBATCH --partition=gpu",
            "#SBATCH --time=04:00:00",
            "#SBATCH --cpus-per-task=4",
            "#SBATCH --gpus-per-task=1",
            "#SBATCH --signal=B:USR1@120",
            "#SBATCH --requeue",
            "#SBATCH --account=proj42",
            "runs=(resnet-20-seed0 resnet-20-seed1)",
        ] {
            assert!(scripts.array.lines().any(|l| l == line), "missing {line}:\n{}", scripts.array);
        }
        assert!(scripts.array.contains("scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\""));
        assert!(scripts.array.contains("/opt/reslab/bin/reslab train --config"));
        let aggregate = scripts.aggregate.lines().last().unwrap();
        let folder = std::path::absolute(dir.path()).unwrap();
        assert_eq!(aggregate, format!("/opt/reslab/bin/reslab aggregate {}", folder.display()), "by its folder");
        assert!(scripts.runs.iter().all(|r| r.run.precision_pending()), "auto is decided on the node");
        assert!(scripts.runs[0].run.handed_on_toml().contains("precision = \"auto\""));
    }

    /// The `#SBATCH` lines of a script, without the prefix.
    fn directives(script: &str) -> Vec<&str> {
        script.lines().filter_map(|l| l.strip_prefix("#SBATCH ")).collect()
    }

    #[test]
    fn every_job_carries_the_study_wide_options_and_only_its_own_resources() {
        let dir = tempfile::tempdir().unwrap();
        let experiment = Experiment::load("table6").unwrap();
        let file = SlurmSettings {
            partition: Some("gpu".parse().unwrap()),
            sbatch: vec!["--mail-type=FAIL".parse().unwrap()],
            ..SlurmSettings::default()
        };
        // The command line's on top of the file's, as `reproduce` does it.
        let command_line = SlurmOverrides {
            account: Some("proj42".parse().unwrap()),
            qos: Some("long".parse().unwrap()),
            sbatch: vec!["--comment=fig".parse().unwrap()],
            time: Some("2-00:00:00".parse().unwrap()),
            cpus_per_task: Some(8),
            gpus_per_task: Some(2),
            mem: Some("32G".parse().unwrap()),
            task_sbatch: vec!["--constraint=a100".parse().unwrap()],
            aggregate_time: Some("30".parse().unwrap()),
            aggregate_cpus: Some(3),
            aggregate_mem: Some("6G".parse().unwrap()),
            ..SlurmOverrides::default()
        };
        let settings = file.overridden_by(&command_line);
        let scripts = scripts(&experiment, &invocation(), &settings, dir.path()).unwrap();
        let every_job = ["--partition=gpu", "--account=proj42", "--qos=long", "--mail-type=FAIL", "--comment=fig"];
        let training =
            ["--time=2-00:00:00", "--cpus-per-task=8", "--gpus-per-task=2", "--mem=32G", "--constraint=a100"];
        let aggregation = ["--time=00:30:00", "--cpus-per-task=3", "--mem=6G"];
        for job in Job::ALL {
            let script = scripts.script(job);
            let lines = directives(script);
            // The settings' options close the script's directives, after reslab's own.
            let from_settings = sbatch_options(&settings, job);
            assert!(lines.ends_with(&from_settings.iter().map(String::as_str).collect::<Vec<_>>()), "{script}");
            let (own, others) = match job {
                Job::Training => (&training[..], &aggregation[..]),
                Job::Aggregation => (&aggregation[..], &training[..]),
            };
            for option in every_job.iter().chain(own) {
                assert!(lines.contains(option), "{} lacks {option}:\n{script}", job.script_name());
            }
            for option in others {
                assert!(!lines.contains(option), "{} has {option}, another job's:\n{script}", job.script_name());
            }
            // Each option once, and the user's own last, so sbatch (which takes the last) keeps them.
            let mut unique = lines.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), lines.len(), "{script}");
            assert_eq!(lines.last(), Some(&if job == Job::Training { "--constraint=a100" } else { "--comment=fig" }));
        }
        for training_only in ["--requeue", "--signal=B:USR1@120", "--open-mode=append", "--array=0-1"] {
            assert!(directives(&scripts.array).contains(&training_only), "{training_only}");
            assert!(!directives(&scripts.aggregate).contains(&training_only), "{training_only}");
        }
    }

    #[test]
    fn the_aggregation_job_has_its_defaults_and_no_training_resources_unless_given() {
        let dir = tempfile::tempdir().unwrap();
        let experiment = Experiment::load("table6").unwrap();
        let settings = SlurmSettings { time: Some("04:00:00".parse().unwrap()), ..SlurmSettings::default() };
        let scripts = scripts(&experiment, &invocation(), &settings, dir.path()).unwrap();
        let aggregation = directives(&scripts.aggregate);
        let default_time = format!("--time={DEFAULT_AGGREGATE_TIME}");
        let default_cpus = format!("--cpus-per-task={DEFAULT_AGGREGATE_CPUS}");
        assert!(aggregation.contains(&default_time.as_str()), "{}", scripts.aggregate);
        assert!(aggregation.contains(&default_cpus.as_str()), "{}", scripts.aggregate);
        assert!(!aggregation.iter().any(|o| o.starts_with("--mem") || o.starts_with("--partition")), "{aggregation:?}");
        let training = directives(&scripts.array);
        assert!(!training.iter().any(|o| o.starts_with("--mem") || o.starts_with("--gpus")), "{training:?}");
    }

    #[test]
    fn a_round_of_seeds_on_demand_is_followed_by_its_look_not_an_aggregation() {
        let dir = tempfile::tempdir().unwrap();
        let experiment = Experiment::load("table6").unwrap();
        let on_demand = Some(crate::experiment::on_demand::OnDemand::new(Some(5), None).unwrap());
        let overrides = Overrides { seeds: None, on_demand, ..invocation().overrides };
        let invocation = Invocation { overrides, round: Some(2), ..invocation() };
        let scripts = scripts(&experiment, &invocation, &SlurmSettings::default(), dir.path()).unwrap();
        let out = absolute(dir.path()).unwrap().display().to_string();
        let look = format!("reproduce {} --backend slurm --after-round 2", quote(&out));
        assert!(scripts.aggregate.contains(&look), "{}", scripts.aggregate);
        // The first round: 3 seeds of the one network at depth 20.
        assert_eq!(scripts.runs.iter().map(|r| r.seed).collect::<Vec<_>>(), [0, 1, 2]);
    }

    #[test]
    fn a_run_on_several_tasks_is_one_srun_of_distributed_ranks() {
        let dir = tempfile::tempdir().unwrap();
        let experiment = Experiment::load("table6").unwrap();
        let settings = SlurmSettings { tasks_per_run: Some(4), gpus_per_task: Some(1), ..SlurmSettings::default() };
        let four = scripts(&experiment, &invocation(), &settings, dir.path()).unwrap();
        assert!(four.runs.iter().all(|r| r.config().world_size == 4), "each run's config says its world size");
        assert!(four.array.lines().any(|l| l == "#SBATCH --ntasks=4"), "{}", four.array);
        assert!(four.array.lines().any(|l| l == "#SBATCH --gpus-per-task=1"), "{}", four.array);
        assert!(
            four.array.contains("srun --kill-on-bad-exit=1 /opt/reslab/bin/reslab train --distributed --config"),
            "{}",
            four.array
        );
        let uneven = SlurmSettings { tasks_per_run: Some(3), ..SlurmSettings::default() };
        let error = format!("{:#}", scripts_error(&experiment, &uneven, dir.path()));
        assert!(error.contains("does not divide among 3 processes"), "{error}");
        let one = scripts(&experiment, &invocation(), &SlurmSettings::default(), dir.path()).unwrap();
        assert!(
            one.array.contains("RESLAB_LOCK_WAIT=1 RESLAB_PROGRESS_LINES=1 /opt/reslab/bin/reslab train --config"),
            "{}",
            one.array
        );
        assert!(one.array.lines().any(|l| l == "#SBATCH --ntasks=1"));
    }

    #[test]
    fn a_dry_run_prints_both_sbatch_commands_with_the_dependency() {
        let dir = tempfile::tempdir().unwrap();
        let experiment = Experiment::load("table6").unwrap();
        let scripts = scripts(&experiment, &invocation(), &SlurmSettings::default(), dir.path()).unwrap();
        let text = dry_run_text(&scripts, dir.path());
        let slurm = StudyDir::new(dir.path()).slurm();
        let array = format!("array_job=$(sbatch --parsable {})", slurm.join("array.sh").display());
        let aggregate =
            format!("sbatch --parsable --dependency=afterany:$array_job {}", slurm.join("aggregate.sh").display());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1..3], [array.as_str(), aggregate.as_str()], "{text}");
        assert!(text.contains("#SBATCH --array=0-1") && text.contains("reslab aggregate /"), "{text}");
    }

    fn scripts_error(experiment: &Experiment, settings: &SlurmSettings, out: &Path) -> anyhow::Error {
        scripts(experiment, &invocation(), settings, out).expect_err("an error")
    }

    #[test]
    fn awkward_words_are_quoted_for_bash() {
        assert_eq!(quote("plain-20-seed0"), "plain-20-seed0");
        assert_eq!(quote("my runs/it's"), "'my runs/it'\\''s'");
        assert_eq!(quote(""), "''");
    }
}
