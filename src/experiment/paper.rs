//! `reslab reproduce paper`: the paper's CIFAR-10 studies (Figure 1, Figure 6, Table 6 and the
//! A/B/C ablation) at one preset, each in its own folder, and one report with every claim.
//!
//! Studies share networks (Table 6's resnet-56 is Figure 6's): a run another study has already
//! completed with the same configuration is linked, not trained again ([`super::reuse`]).

use super::aggregate::StudyReport;
use super::overrides::Overrides;
use super::preset::Preset;
use super::reuse::link_finished_runs;
use super::runner::{run_study, Parallelism};
use super::spec::Experiment;
use super::study_dir::StudyDir;
use crate::report::html::{self, Page};
use crate::util::interrupt;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// The built-in studies it runs, in order (Table 6 after Figure 6, whose runs it reuses).
pub const STUDIES: [&str; 4] = ["fig1", "fig6", "table6", "abc"];

/// The preset `reproduce paper` runs when none is given.
pub const DEFAULT_PRESET: Preset = Preset::Smoke;

/// The presets every study has: those `reproduce paper` can run.
pub fn presets() -> Result<Vec<Preset>> {
    let studies: Vec<Experiment> = STUDIES.iter().map(|name| Experiment::load(name)).collect::<Result<_>>()?;
    Ok(Preset::ALL.into_iter().filter(|p| studies.iter().all(|s| s.presets.contains_key(p.name()))).collect())
}

/// The studies, each checked to have `preset`.
pub fn studies(preset: Preset) -> Result<Vec<Experiment>> {
    let studies: Vec<Experiment> = STUDIES.iter().map(|name| Experiment::load(name)).collect::<Result<_>>()?;
    let common: Vec<&str> = presets()?.into_iter().map(Preset::name).collect();
    if let Some(study) = studies.iter().find(|s| !s.presets.contains_key(preset.name())) {
        bail!(
            "reproduce paper --preset {}: {} has no such preset; expected one every study has ({})",
            preset.name(),
            study.name,
            common.join(", ")
        );
    }
    Ok(studies)
}

/// Where each study's runs and report go inside the paper's folder.
pub fn study_out(out: &Path, study: &Experiment) -> PathBuf {
    out.join(&study.name)
}

/// What `reproduce paper` made.
pub struct PaperReport {
    /// Each study and what its aggregation found, in order.
    pub studies: Vec<(Experiment, StudyReport)>,
    /// Runs that failed, as `study/run`.
    pub failures: Vec<String>,
    /// The paper's HTML report.
    pub report: PathBuf,
}

impl PaperReport {
    /// What `reproduce paper` prints: each study's lines, then where the report is.
    pub fn text(&self) -> String {
        let mut text: String = self.studies.iter().map(|(study, report)| report.text(study)).collect();
        text += &format!("\nwrote {} (every study and claim in one page)\n", self.report.display());
        text
    }

    /// An error naming the failed runs, if any.
    pub fn result(&self) -> Result<()> {
        if !self.failures.is_empty() {
            bail!(
                "{} runs failed ({}); {} shows the others",
                self.failures.len(),
                self.failures.join(", "),
                self.report.display()
            );
        }
        Ok(())
    }
}

/// Runs every study at `preset` in `out/<study>`, then writes `out/report.html`.
pub fn run(
    preset: Preset,
    overrides: &Overrides,
    mlflow: Option<&str>,
    parallelism: Parallelism,
    out: &Path,
) -> Result<PaperReport> {
    let studies = studies(preset)?;
    super::plan::check_some_run_fits(&studies, preset, overrides)?;
    let mut done = Vec::new();
    let mut failures = Vec::new();
    for mut study in studies {
        study.tracking = study.tracking.overridden_by(mlflow);
        let study_out = study_out(out, &study);
        crate::eprint_line!("== {}: {}", study.name, study.title);
        let others: Vec<String> = STUDIES.iter().map(|s| s.to_string()).collect();
        link_finished_runs(&study, preset, overrides, &study_out, &others)?;
        let (report, failed) = run_study(&study, preset, overrides, parallelism, &study_out)?;
        if interrupt::requested() {
            bail!("interrupted: run the same command again to continue");
        }
        failures.extend(failed.into_iter().map(|run| format!("{}/{run}", study.name)));
        done.push((study, report));
    }
    let mut sections = Vec::new();
    for (study, report) in &done {
        let mut section = report.section.clone();
        for run in &mut section.runs {
            run.dir = format!("{}/{}", study.name, run.dir);
        }
        sections.push(section);
    }
    let page = Page {
        title: "Deep Residual Learning for Image Recognition (He et al. 2015): the CIFAR-10 studies".into(),
        lede: vec![
            format!(
                "Made by reslab {} from the run directories in this folder: reslab reproduce paper --preset {}.",
                env!("CARGO_PKG_VERSION"),
                preset.name()
            ),
            format!("Studies: {}; each has its own folder and report.html here.", STUDIES.join(", ")),
        ],
        sections,
    };
    let report = StudyDir::new(out).report();
    html::write(&page, &report)?;
    Ok(PaperReport { studies: done, failures, report })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_study_has_the_presets_paper_offers() {
        for preset in [Preset::Smoke, Preset::Quick, Preset::Paper] {
            assert_eq!(studies(preset).unwrap().len(), STUDIES.len());
        }
        // A --set is refused only where no study's run has it: fig1's plain nets leave it to fig6's.
        let overrides = |set: &str| super::super::overrides::Overrides {
            settings: vec![crate::run::settings::Axis::parse(set).unwrap()],
            ..Default::default()
        };
        let all = studies(Preset::Smoke).unwrap();
        super::super::plan::check_some_run_fits(&all, Preset::Smoke, &overrides("shortcut=B")).unwrap();
        let err = super::super::plan::check_some_run_fits(&all[..1], Preset::Smoke, &overrides("shortcut=B"));
        assert!(format!("{:#}", err.unwrap_err()).contains("no run of experiment 'fig1' has it"));
        let err = studies(Preset::Demo).expect_err("fig6 has no demo preset").to_string();
        assert!(err.contains("--preset demo") && err.contains("smoke, quick, paper"), "{err}");
    }
}
