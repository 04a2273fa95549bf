//! A study as a user names it: an experiment (built-in, a file, or `paper` for the paper's
//! CIFAR-10 studies together), a preset, an output folder and the command line's overrides;
//! resolved to each experiment with its preset and folder, and reproduced here or on Slurm.

use super::overrides::Overrides;
use super::preset::Preset;
use super::rounds::Rounds;
use super::slurm::SlurmOverrides;
use super::spec::{Experiment, PAPER};
use super::study_dir::StudyDir;
use super::{cost, layout, paper, plan, runner, seeds_on_demand, slurm};
use crate::run::config::{KernelsChoice, PrecisionChoice};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// A study before it is resolved: what `reproduce`, `plan`, `status` and `aggregate` are given.
#[derive(Debug, Clone)]
pub struct StudyRequest {
    /// A built-in experiment, `paper`, or the path of an experiment file.
    pub experiment: String,
    /// Default: the experiment's default preset (`paper`: [`paper::DEFAULT_PRESET`]).
    pub preset: Option<Preset>,
    /// Default: `results/<experiment>-<preset>`.
    pub out: Option<PathBuf>,
    /// The command line's overrides of the preset.
    pub overrides: Overrides,
    /// `--mlflow URI`: the tracking server instead of the file's `[tracking] mlflow`.
    pub mlflow: Option<String>,
}

/// One experiment at one preset, with its folder.
#[derive(Debug, Clone)]
pub struct Study {
    /// The experiment, loaded and validated.
    pub experiment: Experiment,
    /// The preset it runs at.
    pub preset: Preset,
    /// The study's folder.
    pub out: PathBuf,
    /// The command line's overrides of the preset.
    pub overrides: Overrides,
}

/// Where `reproduce` runs the runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// Here, `jobs` runs at a time.
    Local,
    /// As a Slurm array job (a task per run) and a job that aggregates after it.
    Slurm,
}

/// How `reproduce` runs a study.
#[derive(Debug, Clone)]
pub struct Execution {
    /// Runs at a time here; default one per GPU, or on a CPU one per core.
    pub jobs: Option<usize>,
    /// Here or on Slurm.
    pub backend: Backend,
    /// `--backend slurm`: the command line's resources on top of the file's `[slurm]`.
    pub slurm: SlurmOverrides,
    /// `--backend slurm`: print the batch scripts, submit nothing.
    pub dry_run: bool,
    /// Seeds on demand on Slurm: the round whose array has ended (its aggregation job's look).
    pub after_round: Option<usize>,
}

/// What `reproduce` did: the text for the user, and whether every run succeeded.
pub struct Reproduced {
    /// What was done, for the user.
    pub text: String,
    /// `Ok` if every run succeeded, else an error naming the runs that failed.
    pub outcome: Result<()>,
}

impl StudyRequest {
    /// Whether it names the whole paper (`paper`), not one experiment.
    pub fn is_paper(&self) -> bool {
        self.experiment == PAPER
    }

    /// The one experiment it names (not `paper`), with its preset and folder.
    pub fn study(&self) -> Result<Study> {
        let named = Path::new(&self.experiment);
        if named.is_dir() {
            return self.recorded_study(named);
        }
        if self.is_paper() {
            let (_, out) = self.paper();
            bail!(
                "'{}' is several studies ({}); expected one of them here, with --out {}/<study>",
                PAPER,
                paper::STUDIES.join(", "),
                out.display()
            );
        }
        let mut experiment = Experiment::load(&self.experiment)?.with_grid(&self.overrides.settings)?;
        experiment.tracking = experiment.tracking.overridden_by(self.mlflow.as_deref());
        let preset = match self.preset {
            Some(preset) => preset,
            None => experiment.default_preset()?,
        };
        plan::check_some_run_fits(std::slice::from_ref(&experiment), preset, &self.overrides)?;
        let out = self.out.clone().unwrap_or_else(|| default_out(&experiment.name, preset));
        let mut overrides = self.overrides.clone();
        if overrides.seeds.is_none() && overrides.seed.is_none() && overrides.on_demand.is_none() {
            overrides.on_demand = experiment.preset(preset)?.seeds_on_demand.clone();
        }
        let overrides = seeds_as_recorded(overrides, &out)?;
        Ok(Study { experiment, preset, out, overrides })
    }

    /// The study recorded in `folder` (`reslab status results/fig1-demo`), as it was asked for:
    /// options that would plan it otherwise are refused.
    fn recorded_study(&self, folder: &Path) -> Result<Study> {
        let o = &self.overrides;
        let given = [
            (self.preset.is_some(), "--preset"),
            (o.data.is_some(), "--data"),
            (o.iters.is_some(), "--iters"),
            (o.eval_every.is_some(), "--eval-every"),
            (o.seed.is_some(), "--seed"),
            (o.seeds.is_some(), "--seeds"),
            (o.depths.is_some(), "--depths"),
            (!o.settings.is_empty(), "--set"),
            (o.precision != PrecisionChoice::Auto, "--precision"),
            (o.kernels != KernelsChoice::Auto, "--kernels"),
            (self.out.as_deref().is_some_and(|out| out != folder), "--out"),
        ];
        if let Some((_, flag)) = given.iter().find(|(given, _)| *given) {
            bail!(
                "{flag} with the study folder {}: its study is recorded in its experiment.toml; expected the folder \
                 alone, or an experiment's name with {flag} and --out",
                folder.display()
            );
        }
        let (record, mut experiment) = StudyDir::new(folder).recorded_study()?;
        experiment.tracking = experiment.tracking.overridden_by(self.mlflow.as_deref());
        let overrides = Overrides { device: o.device, ..record.overrides(o.threads)? };
        Ok(Study {
            experiment,
            preset: record.preset,
            out: folder.to_path_buf(),
            overrides: with_round_seeds(overrides, folder)?,
        })
    }

    /// `paper`: its preset (default smoke) and folder.
    pub fn paper(&self) -> (Preset, PathBuf) {
        let preset = self.preset.unwrap_or(paper::DEFAULT_PRESET);
        (preset, self.out.clone().unwrap_or_else(|| default_out(PAPER, preset)))
    }

    /// Every study it names: the one, or each of the paper's in its folder.
    pub fn studies(&self) -> Result<Vec<Study>> {
        if !self.is_paper() {
            return Ok(vec![self.study()?]);
        }
        let (preset, out) = self.paper();
        let studies = paper::studies(preset)?;
        plan::check_some_run_fits(&studies, preset, &self.overrides)?;
        studies
            .into_iter()
            .map(|experiment| {
                let mut experiment = experiment.with_grid(&self.overrides.settings)?;
                experiment.tracking = experiment.tracking.overridden_by(self.mlflow.as_deref());
                let out = paper::study_out(&out, &experiment);
                let overrides = seeds_as_recorded(self.overrides.clone(), &out)?;
                Ok(Study { out, experiment, preset, overrides })
            })
            .collect()
    }
}

impl Study {
    /// What `reslab plan` prints for it: its runs, their cost, the notes.
    pub fn plan_text(&self) -> Result<String> {
        let (experiment, overrides) = (&self.experiment, &self.overrides);
        let mut text = format!("{} --preset {}: {}\n", experiment.name, self.preset.name(), experiment.title);
        for line in plan::left_alone(experiment, self.preset, overrides)? {
            text += &format!("note: {line}\n");
        }
        if overrides.on_demand.is_some() {
            return Ok(text + &seeds_on_demand::plan_text(experiment, self.preset, overrides, &self.out)?);
        }
        let runs = plan::plan(experiment, self.preset, overrides, &self.out)?;
        Ok(text + &cost::estimate(&runs, overrides.threads)?.text(&self.out))
    }
}

/// Reproduces the study `request` names as `execution` says.
pub fn reproduce(request: &StudyRequest, execution: &Execution) -> Result<Reproduced> {
    // Measured (once per machine) only where the runs train here.
    let parallelism = || runner::Parallelism { jobs: execution.jobs.unwrap_or_else(layout::default_jobs) };
    if request.is_paper() {
        if execution.backend == Backend::Slurm {
            bail!(
                "reproduce paper runs here; on Slurm submit its studies one by one (fig1, fig6, table6, abc) with --backend slurm"
            );
        }
        if request.overrides.on_demand.is_some() {
            bail!("reproduce paper --seeds auto: seeds on demand run one study at a time; expected fig1, fig6, table6 or abc with --seeds auto");
        }
        let (preset, out) = request.paper();
        let report = paper::run(preset, &request.overrides, request.mlflow.as_deref(), parallelism(), &out)?;
        return Ok(Reproduced { text: report.text(), outcome: report.result() });
    }
    let study = request.study()?;
    if execution.backend == Backend::Local {
        // A run the study cannot use (another configuration's, modified) is refused before the
        // machine is measured for `--jobs`. (On Slurm the scripts check the runs as the tasks
        // will train them: with their world size and threads.)
        study.overrides.device.resolve()?;
        plan::pending(plan::plan(&study.experiment, study.preset, &study.overrides, &study.out)?)?;
        let (experiment, overrides, out) = (&study.experiment, &study.overrides, &study.out);
        let report = match overrides.on_demand {
            Some(_) => {
                let (report, failures) =
                    seeds_on_demand::run_rounds(experiment, study.preset, overrides, parallelism(), out)?;
                runner::ended(report, failures, out)?
            }
            None => runner::run(experiment, study.preset, overrides, parallelism(), out)?,
        };
        return Ok(Reproduced { text: report.text(&study.experiment), outcome: Ok(()) });
    }
    for line in plan::left_alone(&study.experiment, study.preset, &study.overrides)? {
        crate::eprint_line!("note: {line}");
    }
    let invocation = slurm::Invocation {
        exe: std::env::current_exe().context("finding the reslab executable")?,
        preset: study.preset,
        overrides: study.overrides.clone(),
        mlflow: study.experiment.tracking.mlflow.clone(),
        round: None,
    };
    if study.overrides.on_demand.is_some() {
        // A round's look, from its aggregation job: the same settings as the first round's.
        let settings = match execution.after_round {
            Some(_) => slurm::SlurmSettings::recorded(&StudyDir::new(&study.out).slurm_settings())?
                .overridden_by(&execution.slurm),
            None => study.experiment.slurm.overridden_by(&execution.slurm),
        };
        let text = seeds_on_demand::on_slurm(
            &study.experiment,
            &invocation,
            &settings,
            &study.out,
            (execution.after_round, execution.dry_run),
        )?;
        return Ok(Reproduced { text, outcome: Ok(()) });
    }
    if execution.after_round.is_some() {
        bail!("--after-round is for the aggregation job of a study with seeds on demand; expected --seeds auto");
    }
    let settings = study.experiment.slurm.overridden_by(&execution.slurm);
    let submitted = slurm::reproduce(&study.experiment, &invocation, &settings, &study.out, execution.dry_run)?;
    let text = match submitted {
        None => String::new(),
        Some(submission) => format!(
            "submitted {} runs as array job {}; job {} aggregates the study when it ends.\n\
             follow them with: reslab status {}   (or squeue -j {})\n",
            submission.runs.len(),
            submission.array_job,
            submission.aggregate_job,
            study.out.display(),
            submission.array_job
        ),
    };
    Ok(Reproduced { text, outcome: Ok(()) })
}

/// `overrides` of a study into `out`, with the seeds on demand its folder records: a study
/// recorded with `--seeds auto` keeps them (and its cap) whatever the command gives, or refuses
/// other seeds; its rounds' seeds come from its round record.
fn seeds_as_recorded(mut overrides: Overrides, out: &Path) -> Result<Overrides> {
    let recorded = StudyDir::new(out).recorded_study().ok().and_then(|(record, _)| record.on_demand);
    match (&mut overrides.on_demand, recorded) {
        (Some(asked), Some(recorded)) => match asked.max_seeds {
            Some(cap) if cap != recorded.cap() => bail!(
                "--max-seeds {cap}: the study in {} started with --max-seeds {}, and its intervals are spent over the \
                 looks that cap allows; expected --max-seeds {} (or another --out)",
                out.display(),
                recorded.cap(),
                recorded.cap()
            ),
            _ => asked.max_seeds = recorded.max_seeds,
        },
        (None, Some(recorded)) => {
            if overrides.seeds.is_some() || overrides.seed.is_some() {
                bail!(
                    "--seeds/--seed with {}: its study adds seeds on demand (--seeds auto); expected no seeds (or \
                     --seeds auto), or another --out",
                    out.display()
                );
            }
            overrides.on_demand = Some(recorded);
        }
        (_, None) => {}
    }
    with_round_seeds(overrides, out)
}

/// `overrides` with the seeds of the current round where they ask for seeds on demand.
fn with_round_seeds(mut overrides: Overrides, out: &Path) -> Result<Overrides> {
    if overrides.on_demand.is_some() {
        overrides.round_seeds = Rounds::read(&StudyDir::new(out).rounds())?.current_seeds();
    }
    Ok(overrides)
}

/// The output folder of the study `name` at `preset` when none is given.
pub fn default_out(name: &str, preset: Preset) -> PathBuf {
    PathBuf::from(format!("results/{name}-{}", preset.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(experiment: &str) -> StudyRequest {
        StudyRequest {
            experiment: experiment.into(),
            preset: None,
            out: None,
            overrides: Overrides::default(),
            mlflow: None,
        }
    }

    #[test]
    fn a_study_defaults_to_its_shortest_preset_and_its_folder() {
        let study = request("fig1").study().unwrap();
        assert_eq!(study.preset, Preset::Demo);
        assert_eq!(study.out, PathBuf::from("results/fig1-demo"));
    }

    #[test]
    fn paper_is_its_studies_each_in_its_folder() {
        let studies = request("paper").studies().unwrap();
        let names: Vec<&str> = studies.iter().map(|s| s.experiment.name.as_str()).collect();
        assert_eq!(names, paper::STUDIES);
        assert!(studies.iter().all(|s| s.preset == Preset::Smoke));
        assert_eq!(studies[1].out, PathBuf::from("results/paper-smoke/fig6"));
    }
}
