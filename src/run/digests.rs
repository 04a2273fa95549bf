//! What a run was when it completed: SHA-256 digests of its `config.toml`, `metrics.csv` and final
//! weights, recorded in `summary.toml`. A file changed afterwards (a depth edited in the
//! configuration, a row deleted, other weights copied in) makes the run "modified after
//! completion" ([`super::RunState::Modified`]), never a complete result of something else.

use super::{RunDir, CONFIG_FILE, WEIGHTS_FILE};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The digests a summary records, hex SHA-256 of each file's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digests {
    /// Of `config.toml`.
    pub config_sha256: String,
    /// Of `metrics.csv`.
    pub metrics_sha256: String,
    /// Of `model.safetensors`; `None` for a run that ended without final weights (diverged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_sha256: Option<String>,
}

impl Digests {
    /// The digests of the files in `dir` now (the weights only where they exist).
    pub fn of(dir: &RunDir) -> anyhow::Result<Digests> {
        let weights = dir.weights();
        Ok(Digests {
            config_sha256: file_digest(&dir.config())?,
            metrics_sha256: file_digest(&dir.metrics())?,
            weights_sha256: if weights.is_file() { Some(file_digest(&weights)?) } else { None },
        })
    }

    /// The first file of `dir` that is not as recorded, in words; `None` when all are.
    pub fn first_change(&self, dir: &RunDir) -> Option<String> {
        let weights = self.weights_sha256.as_ref().map(|digest| (WEIGHTS_FILE, dir.weights(), digest));
        let files = [
            Some((CONFIG_FILE, dir.config(), &self.config_sha256)),
            Some((super::metrics::FILE_NAME, dir.metrics(), &self.metrics_sha256)),
            weights,
        ];
        files.into_iter().flatten().find_map(|(name, path, recorded)| match file_digest(&path) {
            Ok(now) if now == *recorded => None,
            Ok(_) => Some(format!("{name} changed after the run completed")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(format!("{name} is missing")),
            Err(e) => Some(format!("{name} cannot be read ({e})")),
        })
    }
}

/// Hex SHA-256 of a file's bytes.
pub fn file_digest(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(format!("{:x}", hasher.finalize()))
}
