//! Weights as safetensors, named as in PyTorch's `state_dict()`.

use crate::util::fs::write_atomically;
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use tch::{nn, Kind, Tensor};

/// PyTorch's BatchNorm keeps a counter that tch does not; it is written so PyTorch can load the
/// file with `strict=True`, and ignored when loading.
const BN_COUNTER: &str = "num_batches_tracked";

/// Every variable of `vs` (weights and BN running statistics) by its dotted name, in name order,
/// plus a `num_batches_tracked` entry per BatchNorm set to `batches_tracked`.
pub fn state_dict(vs: &nn::VarStore, batches_tracked: i64) -> BTreeMap<String, Tensor> {
    let mut tensors: BTreeMap<String, Tensor> = vs
        .variables()
        .into_iter()
        .map(|(name, t)| (name, t.detach().to_device(tch::Device::Cpu).contiguous()))
        .collect();
    let bn_prefixes: Vec<String> =
        tensors.keys().filter_map(|name| name.strip_suffix("running_mean").map(str::to_string)).collect();
    for prefix in bn_prefixes {
        tensors.insert(format!("{prefix}{BN_COUNTER}"), Tensor::from(batches_tracked));
    }
    tensors
}

/// Writes `vs` to `path` as safetensors, atomically (a temporary file renamed into place).
pub fn save(vs: &nn::VarStore, batches_tracked: i64, path: &Path) -> Result<()> {
    let tensors: Vec<(String, Tensor)> = state_dict(vs, batches_tracked).into_iter().collect();
    write_atomically(path, |tmp| Tensor::write_safetensors(&tensors, tmp).map_err(|e| anyhow::anyhow!("{e}")))
}

/// Checked before slower work that would otherwise fail only at the end.
pub fn ensure_exists(path: &Path) -> Result<()> {
    if !path.is_file() {
        bail!("weights file {} does not exist", path.display());
    }
    Ok(())
}

/// The number of classes a classifier in `path` was saved with (the rows of `fc.weight` or
/// `linear.weight`).
pub fn classes_in(path: &Path) -> Result<i64> {
    let stored = Tensor::read_safetensors(path)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("reading weights {}", path.display()))?;
    stored
        .iter()
        .find(|(name, t)| (name == "fc.weight" || name == "linear.weight") && t.dim() == 2)
        .map(|(_, t)| t.size()[0])
        .with_context(|| format!("weights {}: no classifier (fc.weight or linear.weight)", path.display()))
}

/// Loads every variable of `vs` from the safetensors file `path`. Strict: a missing tensor, a
/// tensor of the wrong shape, or a tensor the model does not have is an error naming it.
pub fn load(vs: &mut nn::VarStore, path: &Path) -> Result<()> {
    ensure_exists(path)?;
    let stored = Tensor::read_safetensors(path)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("reading weights {}: expected a safetensors file", path.display()))?;
    let stored: BTreeMap<String, Tensor> = stored.into_iter().collect();
    let variables = vs.variables();
    let known: HashSet<&String> = variables.keys().collect();
    if let Some(extra) = stored.keys().find(|name| !known.contains(name) && !name.ends_with(BN_COUNTER)) {
        bail!("weights {}: tensor '{extra}' does not belong to this model (wrong model or depth?)", path.display());
    }
    tch::no_grad(|| -> Result<()> {
        for (name, mut var) in variables {
            let Some(value) = stored.get(&name) else {
                bail!("weights {}: tensor '{name}' is missing (wrong model or depth?)", path.display());
            };
            if value.size() != var.size() {
                bail!(
                    "weights {}: tensor '{name}' has shape {:?}, the model expects {:?}",
                    path.display(),
                    value.size(),
                    var.size()
                );
            }
            var.copy_(&value.to_kind(Kind::Float));
        }
        Ok(())
    })
}
