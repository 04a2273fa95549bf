//! Checkpoints: everything a run depends on, so a killed run resumes to the same result.
//!
//! One safetensors file holding the model's variables (`model/<name>`: weights and BN running
//! statistics), the SGD momentum buffers (`momentum/<name>`), and a `state` tensor with the
//! loop's state as TOML: the iteration, the warm-up switch, the running statistics of the current
//! metrics row, and the run's configuration. The data order and augmentation are functions of
//! (seed, iteration), so the iteration is their position; torch's generator is only used to
//! initialise the weights, which the checkpoint replaces. A SHA-256 over every tensor (`checksum`)
//! catches corruption. Written atomically: a temporary file, fsync, then the previous checkpoint
//! is kept as `checkpoint.prev.safetensors` and the new one renamed into place.

use super::config::RunConfig;
use super::identity::Leeway;
use crate::model::weights::{self, WeightsMetadata};
use crate::util::fs::write_atomically;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::{nn, Kind, Tensor};

/// The newest checkpoint in a run directory.
pub const FILE: &str = "checkpoint.safetensors";
/// The checkpoint before it, kept in case the newest is corrupt.
pub const PREVIOUS: &str = "checkpoint.prev.safetensors";
const FORMAT: u32 = 1;

/// The training loop's state besides weights and momentum.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// Iterations completed.
    pub iteration: usize,
    /// The iteration at which the warm-up learning rate ended, once it has.
    pub warmup_ended_at: Option<usize>,
    /// Running training statistics since the last metrics row.
    pub row_loss_sum: f64,
    /// Batches since the last metrics row.
    pub row_batches: usize,
    /// Misclassified training images since the last metrics row.
    pub row_wrong: i64,
    /// Training images seen since the last metrics row.
    pub row_seen: i64,
    /// Seconds spent on training steps since the last metrics row.
    pub row_seconds: f64,
    /// Running training error since the last warm-up check.
    pub warmup_wrong: i64,
    /// Training images seen since the last warm-up check.
    pub warmup_seen: i64,
    /// Batches since the last warm-up check (counted by the schedule).
    pub warmup_batches: i64,
    /// Seconds the run has taken so far (across resumptions).
    pub elapsed_s: f64,
}

impl LoopState {
    /// Adds one batch's loss, errors, images and step time to the running statistics.
    pub fn record_batch(&mut self, loss: f64, wrong: i64, seen: i64, seconds: f64) {
        self.row_loss_sum += loss;
        self.row_batches += 1;
        self.row_wrong += wrong;
        self.row_seen += seen;
        self.row_seconds += seconds;
        self.warmup_wrong += wrong;
        self.warmup_seen += seen;
    }

    /// Resets the metrics row's running statistics (not the warm-up's).
    pub fn start_row(&mut self) {
        (self.row_loss_sum, self.row_batches, self.row_wrong, self.row_seen, self.row_seconds) = (0.0, 0, 0, 0, 0.0);
    }

    /// Mean training loss per batch since the last row.
    pub fn row_loss(&self) -> f64 {
        self.row_loss_sum / self.row_batches.max(1) as f64
    }

    /// Training error (%) since the last row.
    pub fn row_error(&self) -> f64 {
        100.0 * self.row_wrong as f64 / self.row_seen.max(1) as f64
    }

    /// Training throughput since the last row, images per second.
    pub fn row_images_per_second(&self) -> f64 {
        self.row_seen as f64 / self.row_seconds.max(1e-9)
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: u32,
    state: LoopState,
    /// The run's configuration as TOML (read back as a typed [`RunConfig`]).
    config: String,
}

/// Writes a checkpoint of `vs`, `momentum` and `state` into `dir` atomically, keeping the previous;
/// its header carries the weights' `metadata`.
pub fn save(
    dir: &Path,
    config: &RunConfig,
    vs: &nn::VarStore,
    momentum: Vec<(String, Tensor)>,
    state: &LoopState,
    metadata: &WeightsMetadata,
) -> Result<()> {
    let header = Header { format: FORMAT, state: state.clone(), config: config.to_toml() };
    let header = toml::to_string(&header).expect("a checkpoint header always serialises");
    let mut tensors: BTreeMap<String, Tensor> = BTreeMap::new();
    for (name, t) in vs.variables() {
        tensors.insert(format!("model/{name}"), cpu_copy(&t));
    }
    for (name, t) in momentum {
        tensors.insert(format!("momentum/{name}"), cpu_copy(&t));
    }
    tensors.insert("state".into(), Tensor::from_slice(header.as_bytes()));
    let checksum = checksum(&tensors);
    tensors.insert("checksum".into(), Tensor::from_slice(checksum.as_bytes()));
    let tensors: Vec<(String, Tensor)> = tensors.into_iter().collect();
    let path = dir.join(FILE);
    write_atomically(&path, |tmp| {
        weights::write_file(&tensors, metadata, tmp)?;
        if path.exists() {
            std::fs::rename(&path, dir.join(PREVIOUS))?;
        }
        Ok(())
    })
}

/// The checkpoint files of `dir`, newest first (either may be absent).
pub fn files(dir: &Path) -> [PathBuf; 2] {
    [dir.join(FILE), dir.join(PREVIOUS)]
}

/// The iteration of the newest readable checkpoint in `dir`, if there is one.
pub fn iteration(dir: &Path) -> Option<usize> {
    [dir.join(FILE), dir.join(PREVIOUS)].iter().find_map(|path| read(path).ok().map(|(c, _)| c.state.iteration))
}

/// A checkpoint read back and verified.
pub struct Checkpoint {
    /// The file it was read from.
    pub path: PathBuf,
    /// The loop's state.
    pub state: LoopState,
    /// The model's variables by name (weights and BN running statistics).
    pub model: BTreeMap<String, Tensor>,
    /// The SGD momentum buffers by variable name.
    pub momentum: BTreeMap<String, Tensor>,
}

/// The newest good checkpoint in `dir` for `config`: `None` if there is none; the previous one,
/// with a warning, if the newest is corrupt; an error if the checkpoint belongs to another
/// configuration or no good one is left.
pub fn latest(dir: &Path, config: &RunConfig) -> Result<Option<Checkpoint>> {
    let (newest, previous) = (dir.join(FILE), dir.join(PREVIOUS));
    if !newest.exists() && !previous.exists() {
        return Ok(None);
    }
    let mut failures = Vec::new();
    for path in [newest, previous] {
        if !path.exists() {
            continue;
        }
        match read(&path) {
            Ok((checkpoint, saved_config)) => {
                refuse_other_config(&path, &saved_config, config)?;
                if !failures.is_empty() {
                    crate::eprint_line!(
                        "warning: {}; resuming from the previous checkpoint {}",
                        failures.join("; "),
                        path.display()
                    );
                }
                return Ok(Some(checkpoint));
            }
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    bail!(
        "{}; no good checkpoint is left: remove the run directory {} to start over",
        failures.join("; "),
        dir.display()
    )
}

fn read(path: &Path) -> Result<(Checkpoint, String)> {
    let tensors = Tensor::read_safetensors(path)
        .map_err(|e| anyhow::anyhow!("checkpoint {} is truncated or corrupt ({e})", path.display()))?;
    let mut tensors: BTreeMap<String, Tensor> = tensors.into_iter().collect();
    let stored = tensors.remove("checksum").map(|t| text(&t)).transpose()?;
    if stored.as_deref() != Some(checksum(&tensors).as_str()) {
        bail!("checkpoint {} is corrupt: its checksum does not match its contents", path.display());
    }
    let header = tensors.remove("state").map(|t| text(&t)).transpose()?.unwrap_or_default();
    let header: Header =
        toml::from_str(&header).with_context(|| format!("checkpoint {}: unreadable state", path.display()))?;
    if header.format != FORMAT {
        bail!("checkpoint {} has format {}, this reslab reads format {FORMAT}", path.display(), header.format);
    }
    let (mut model, mut momentum) = (BTreeMap::new(), BTreeMap::new());
    for (name, t) in tensors {
        if let Some(n) = name.strip_prefix("model/") {
            model.insert(n.to_string(), t);
        } else if let Some(n) = name.strip_prefix("momentum/") {
            momentum.insert(n.to_string(), t);
        }
    }
    Ok((Checkpoint { path: path.to_path_buf(), state: header.state, model, momentum }, header.config))
}

/// Resuming under another configuration would silently mix two runs. The configurations are
/// compared as typed values ([`RunConfig::difference`]), so a field added to the configuration
/// after the checkpoint was written takes its default and does not stop the run from resuming.
fn refuse_other_config(path: &Path, saved: &str, config: &RunConfig) -> Result<()> {
    let saved = RunConfig::from_toml(saved, path).context("the configuration stored in the checkpoint")?;
    let Some(difference) = saved.difference(config, Leeway::NONE) else {
        return Ok(());
    };
    // The world size is compared last: the first difference only where it is the one.
    if difference.key == "world_size" {
        let processes = |n: usize| if n == 1 { "1 process".to_string() } else { format!("{n} processes") };
        bail!(
            "checkpoint {} was made by {} and this run has {}; resume it with {} \
             (reslab launch --nproc {} -- train ...), or use another --out",
            path.display(),
            processes(saved.world_size),
            processes(config.world_size),
            saved.world_size,
            saved.world_size
        );
    }
    bail!(
        "checkpoint {} was written by a run with another configuration ({difference}); use the same options, or \
         another --out",
        path.display()
    )
}

impl Checkpoint {
    /// Copies the saved variables into `vs`; every variable must be there with its shape.
    pub fn restore_model(&self, vs: &nn::VarStore) -> Result<()> {
        tch::no_grad(|| {
            for (name, mut var) in vs.variables() {
                let Some(saved) = self.model.get(&name) else {
                    bail!("checkpoint {} has no '{name}'", self.path.display());
                };
                if saved.size() != var.size() {
                    bail!(
                        "checkpoint {}: '{name}' has shape {:?}, expected {:?}",
                        self.path.display(),
                        saved.size(),
                        var.size()
                    );
                }
                var.copy_(saved);
            }
            Ok(())
        })
    }
}

fn cpu_copy(t: &Tensor) -> Tensor {
    t.detach().to_device(tch::Device::Cpu).contiguous()
}

fn text(t: &Tensor) -> Result<String> {
    Ok(String::from_utf8(Vec::<u8>::try_from(t)?)?)
}

/// SHA-256 over every tensor's name, dtype, shape and bytes, in name order.
fn checksum(tensors: &BTreeMap<String, Tensor>) -> String {
    let mut hasher = Sha256::new();
    for (name, t) in tensors {
        hasher.update(name.as_bytes());
        hasher.update(format!("{:?}{:?}", t.kind(), t.size()).as_bytes());
        hasher.update(raw_bytes(t));
    }
    format!("{:x}", hasher.finalize())
}

fn raw_bytes(t: &Tensor) -> Vec<u8> {
    let t = t.contiguous().flatten(0, -1);
    match t.kind() {
        Kind::Uint8 => Vec::<u8>::try_from(&t).unwrap_or_default(),
        Kind::Int64 => Vec::<i64>::try_from(&t).unwrap_or_default().iter().flat_map(|v| v.to_le_bytes()).collect(),
        _ => Vec::<f32>::try_from(&t.to_kind(Kind::Float))
            .unwrap_or_default()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RunConfig {
        RunConfig::example()
    }

    #[test]
    fn a_checkpoint_from_before_a_new_field_resumes_with_its_default() {
        let path = Path::new("checkpoint.safetensors");
        let saved = config().to_toml();
        assert!(saved.contains("channels_last = true") && saved.contains("checkpoint_every = 0"));
        // An older reslab did not write these fields; their defaults are the values above.
        let older: String = saved
            .lines()
            .filter(|l| !l.starts_with("channels_last") && !l.starts_with("checkpoint_every"))
            .map(|l| format!("{l}\n"))
            .collect();
        refuse_other_config(path, &older, &config()).unwrap();
        // Formatting is not configuration either.
        refuse_other_config(path, &saved.replace(" = ", "   =   "), &config()).unwrap();
        // Nor is the thread count: --jobs may split the cores differently on the next invocation.
        refuse_other_config(path, &saved, &RunConfig { threads: 1, ..config() }).unwrap();
    }

    #[test]
    fn another_configuration_is_refused_naming_the_difference() {
        let path = Path::new("checkpoint.safetensors");
        let saved = config().to_toml();
        let now = RunConfig { seed: 4, ..config() };
        let err = refuse_other_config(path, &saved, &now).unwrap_err().to_string();
        assert!(err.contains("(seed is 3 there, expected 4)"), "{err}");
        let err = format!("{:#}", refuse_other_config(path, "model = 7", &config()).unwrap_err());
        assert!(err.contains("configuration stored in the checkpoint"), "{err}");
    }
}
