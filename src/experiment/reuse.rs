//! Runs one study shares with another: a run that a sibling study's folder already holds complete
//! with the same configuration is linked into this study's folder (a relative link, so the
//! folders can move together), not trained again. `reproduce paper` links across its studies
//! (Table 6's resnet-56 is Figure 6's); an experiment's `reuse = ["fig6"]` links from the folder
//! of that study at the same preset beside its own (`results/fig6-cpu` beside
//! `results/landscape-cpu`, or `fig6` beside it inside a paper's folder).

use super::overrides::Overrides;
use super::plan::plan;
use super::preset::Preset;
use super::spec::Experiment;
use crate::run::RunDir;
use anyhow::{Context, Result};
use std::path::Path;

/// Links each run of `study` that has no directory in `study_out` yet to a complete run of the
/// same name and configuration in one of the sibling folders `siblings` (names of folders beside
/// `study_out`), the first that has it.
pub fn link_finished_runs(
    study: &Experiment,
    preset: Preset,
    overrides: &Overrides,
    study_out: &Path,
    siblings: &[String],
) -> Result<()> {
    let parent = study_out.parent().unwrap_or(Path::new("."));
    let own = study_out.file_name().map(|n| n.to_string_lossy().into_owned());
    let siblings: Vec<&String> = siblings.iter().filter(|s| Some(*s) != own.as_ref()).collect();
    if siblings.is_empty() {
        return Ok(());
    }
    let runs = plan(study, preset, overrides, study_out)?;
    std::fs::create_dir_all(study_out).with_context(|| format!("creating {}", study_out.display()))?;
    for run in runs {
        let dir = run.dir().path.clone();
        if dir.symlink_metadata().is_ok() {
            continue;
        }
        let Some(other) = siblings.iter().find(|other| {
            let candidate = parent.join(other).join(run.dir_name());
            // A linked run is not linked again: a link always points at the run itself.
            !candidate.is_symlink() && run.run.state_in(&RunDir::new(&candidate)).is_complete()
        }) else {
            continue;
        };
        let target = Path::new("..").join(other).join(run.dir_name());
        std::os::unix::fs::symlink(&target, &dir)
            .with_context(|| format!("linking {} to {}", dir.display(), target.display()))?;
        crate::eprint_line!("{}/{}: the same run is complete in {other}; reusing it", study.name, run.dir_name());
    }
    Ok(())
}

/// The sibling folders an experiment's `reuse` names at `preset`: `<study>-<preset>` (where
/// `reproduce STUDY --preset P` writes by default) and `<study>` (inside a paper's folder).
pub fn reuse_folders(study: &Experiment, preset: Preset) -> Vec<String> {
    study.reuse.iter().flat_map(|other| [format!("{other}-{}", preset.name()), other.clone()]).collect()
}

/// Links what the experiment's `reuse` offers (nothing without one).
pub fn link_reused_runs(study: &Experiment, preset: Preset, overrides: &Overrides, study_out: &Path) -> Result<()> {
    link_finished_runs(study, preset, overrides, study_out, &reuse_folders(study, preset))
}
