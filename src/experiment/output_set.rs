//! A study's aggregated outputs as one set: written into a staging folder, then renamed into
//! place at their documented paths. What the previous aggregation wrote that this one did not (a
//! claims chart for claims no longer measured, an analysis no longer run) is removed, so nothing
//! stale looks current; an aggregation that fails half-way leaves the previous set whole.

use super::study_dir::StudyDir;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Runs `write` into a fresh staging folder of `study`, then puts what it wrote in place: the
/// result of `write` and the final path of every file written.
pub fn write_as_one_set<T>(study: &StudyDir, write: impl FnOnce(&Path) -> Result<T>) -> Result<(T, Vec<PathBuf>)> {
    let stage = study.aggregation_stage();
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(&stage).with_context(|| format!("creating {}", stage.display()))?;
    let written = write(&stage);
    let result = written.and_then(|value| Ok((value, put_in_place(study, &stage)?)));
    let _ = std::fs::remove_dir_all(&stage);
    result
}

/// Renames every file of `stage` to its place in the study's folder, removes what the previous
/// set had that this one lacks, and records this set.
fn put_in_place(study: &StudyDir, stage: &Path) -> Result<Vec<PathBuf>> {
    let mut relative = Vec::new();
    files_under(stage, Path::new(""), &mut relative)?;
    relative.sort();
    for file in &relative {
        let (from, to) = (stage.join(file), study.path.join(file));
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::rename(&from, &to).with_context(|| format!("moving {} to {}", from.display(), to.display()))?;
    }
    let manifest = study.aggregated_manifest();
    let previous = std::fs::read_to_string(&manifest).unwrap_or_default();
    for stale in previous.lines().map(PathBuf::from).filter(|p| !relative.contains(p) && is_inside(p)) {
        let _ = std::fs::remove_file(study.path.join(stale));
    }
    let text: String = relative.iter().map(|p| format!("{}\n", p.display())).collect();
    crate::util::fs::write_file(&manifest, text.as_bytes())?;
    Ok(relative.iter().map(|p| study.path.join(p)).collect())
}

/// A recorded path that stays inside the folder (a manifest edited by hand must not remove
/// anything outside it).
fn is_inside(path: &Path) -> bool {
    path.components().all(|c| matches!(c, std::path::Component::Normal(_)))
}

fn files_under(root: &Path, relative: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let dir = root.join(relative);
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = relative.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            files_under(root, &path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_replaces_the_previous_one_whole_and_a_failure_leaves_it_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let study = StudyDir::new(dir.path());
        let write = |files: &'static [&'static str]| {
            move |stage: &Path| -> Result<()> {
                for file in files {
                    std::fs::create_dir_all(stage.join(file).parent().unwrap())?;
                    std::fs::write(stage.join(file), "new")?;
                }
                Ok(())
            }
        };
        let (_, first) =
            write_as_one_set(&study, write(&["report.html", "fig1-claims.png", "landscape/a.csv"])).unwrap();
        assert_eq!(
            first,
            [dir.path().join("fig1-claims.png"), dir.path().join("landscape/a.csv"), dir.path().join("report.html")]
        );
        std::fs::write(dir.path().join("notes.txt"), "the user's").unwrap();
        // The claims chart is not written again: it goes; what reslab never wrote stays.
        write_as_one_set(&study, write(&["report.html", "landscape/a.csv"])).unwrap();
        assert!(!dir.path().join("fig1-claims.png").exists() && dir.path().join("notes.txt").exists());
        // Half-way through, an error: the previous set is whole, nothing of the new one is there.
        std::fs::write(dir.path().join("report.html"), "previous").unwrap();
        let failing = |stage: &Path| -> Result<()> {
            std::fs::write(stage.join("report.html"), "half")?;
            anyhow::bail!("the chart could not be drawn")
        };
        assert!(write_as_one_set(&study, failing).is_err());
        assert_eq!(std::fs::read_to_string(dir.path().join("report.html")).unwrap(), "previous");
        assert!(dir.path().join("landscape/a.csv").exists() && !study.aggregation_stage().exists());
    }
}
