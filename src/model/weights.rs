//! Weights as safetensors, named as in PyTorch's `state_dict()`, with reslab's metadata in the
//! header ([`metadata`]): every file reslab writes says which network it holds, and every load
//! refuses another network's weights before reading them.

pub mod metadata;

pub use metadata::{Expected, RunOrigin, WeightsMetadata};

use super::{Model, ModelSpec};
use crate::util::fs::write_atomically;
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::path::Path;
use tch::{nn, Kind, Tensor};

/// PyTorch's BatchNorm keeps a counter that tch does not; it is written so PyTorch can load the
/// file with `strict=True`, and ignored when loading.
const BN_COUNTER: &str = "num_batches_tracked";

/// The largest header the safetensors format allows (its library's limit): a larger length
/// means the file is something else.
const MAX_HEADER_BYTES: u64 = 100_000_000;

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

/// Writes `vs` to `path` as safetensors with `metadata`, atomically (a temporary file renamed
/// into place).
pub fn save(vs: &nn::VarStore, batches_tracked: i64, metadata: &WeightsMetadata, path: &Path) -> Result<()> {
    let tensors: Vec<(String, Tensor)> = state_dict(vs, batches_tracked).into_iter().collect();
    write(&tensors, metadata, path)
}

/// Writes named tensors to `path` as safetensors with `metadata` in the header, atomically.
pub fn write(tensors: &[(String, Tensor)], metadata: &WeightsMetadata, path: &Path) -> Result<()> {
    write_atomically(path, |tmp| write_file(tensors, metadata, tmp))
}

/// Writes named tensors (any holding a model's weights: a checkpoint's too) into `file` as
/// safetensors with `metadata` in the header; the caller makes it atomic. Written here rather
/// than by the safetensors library, whose metadata is a `HashMap` serialised in a random order:
/// the same weights must give the same bytes.
pub fn write_file(tensors: &[(String, Tensor)], metadata: &WeightsMetadata, file: &Path) -> Result<()> {
    let mut raw = tensors.iter().map(|(name, t)| Ok((name.as_str(), RawTensor::of(t)?))).collect::<Result<Vec<_>>>()?;
    // The widest elements first, so every tensor's offset is a multiple of its element size (as
    // the safetensors library lays them out); then by name.
    raw.sort_by(|(a, x), (b, y)| y.element_bytes.cmp(&x.element_bytes).then(a.cmp(b)));
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!(metadata.to_header()));
    let mut offset = 0;
    for (name, t) in &raw {
        let end = offset + t.data.len();
        header.insert(
            name.to_string(),
            serde_json::json!({ "dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, end] }),
        );
        offset = end;
    }
    let mut header = serde_json::to_vec(&header)?;
    // The format pads the header with spaces to a multiple of 8 bytes, so the data stays aligned.
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut out = std::io::BufWriter::new(std::fs::File::create(file)?);
    out.write_all(&(header.len() as u64).to_le_bytes())?;
    out.write_all(&header)?;
    for (_, t) in &raw {
        out.write_all(&t.data)?;
    }
    out.flush()?;
    Ok(())
}

/// A tensor's bytes on the host, with its safetensors dtype.
struct RawTensor {
    dtype: &'static str,
    element_bytes: usize,
    shape: Vec<i64>,
    data: Vec<u8>,
}

impl RawTensor {
    fn of(tensor: &Tensor) -> Result<RawTensor> {
        let tensor = tensor.detach().to_device(tch::Device::Cpu).contiguous();
        let kind = tensor.kind();
        let dtype = match kind {
            Kind::Bool => "BOOL",
            Kind::Uint8 => "U8",
            Kind::Int8 => "I8",
            Kind::Int16 => "I16",
            Kind::Int => "I32",
            Kind::Int64 => "I64",
            Kind::BFloat16 => "BF16",
            Kind::Half => "F16",
            Kind::Float => "F32",
            Kind::Double => "F64",
            other => bail!("a tensor of kind {other:?} has no safetensors dtype"),
        };
        let numel = tensor.numel();
        let mut data = vec![0u8; numel * kind.elt_size_in_bytes()];
        tensor.f_copy_data_u8(&mut data, numel).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(RawTensor { dtype, element_bytes: kind.elt_size_in_bytes(), shape: tensor.size(), data })
    }
}

/// Checked before slower work that would otherwise fail only at the end.
pub fn ensure_exists(path: &Path) -> Result<()> {
    if !path.is_file() {
        bail!("weights file {} does not exist", path.display());
    }
    Ok(())
}

/// The reslab metadata of the safetensors file at `path`, read from its header alone; `None`
/// where it has none (a third party's file, or one of a reslab before metadata).
pub fn read_metadata(path: &Path) -> Result<Option<WeightsMetadata>> {
    let header = read_header(path).with_context(|| format!("reading weights {}", path.display()))?;
    WeightsMetadata::from_header(&header).with_context(|| format!("weights {}", path.display()))
}

/// The `__metadata__` map of a safetensors header (empty where there is none).
fn read_header(path: &Path) -> Result<BTreeMap<String, String>> {
    let not_safetensors = "expected a safetensors file";
    let mut file = std::fs::File::open(path)?;
    let mut length = [0u8; 8];
    file.read_exact(&mut length).context(not_safetensors)?;
    let length = u64::from_le_bytes(length);
    if length > MAX_HEADER_BYTES {
        bail!("{not_safetensors} (its header would be {length} bytes)");
    }
    let mut header = vec![0u8; length as usize];
    file.read_exact(&mut header).context(not_safetensors)?;
    let header: serde_json::Value = serde_json::from_slice(&header).map_err(|_| anyhow::anyhow!(not_safetensors))?;
    let Some(header) = header.as_object() else {
        bail!(not_safetensors);
    };
    let metadata = header.get("__metadata__").and_then(serde_json::Value::as_object);
    Ok(metadata
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_string())))
        .collect())
}

/// The metadata of the weights at `path`, after refusing them if they name another network than
/// `expected` (one line naming both); `None` where the file has no reslab metadata to check.
/// Reads the header alone: a check before a load, or before anything is written.
pub fn check(path: &Path, expected: &ModelSpec, by: Expected) -> Result<Option<WeightsMetadata>> {
    ensure_exists(path)?;
    let metadata = read_metadata(path)?;
    if let Some(metadata) = &metadata {
        metadata.ensure_network(path, expected, by)?;
    }
    Ok(metadata)
}

/// The number of classes a classifier in `path` was saved with: its metadata's, or the rows of
/// `fc.weight` or `linear.weight` in a file without.
pub fn classes_in(path: &Path) -> Result<i64> {
    if let Some(metadata) = read_metadata(path)? {
        return Ok(metadata.model.classes());
    }
    let stored = Tensor::read_safetensors(path)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("reading weights {}", path.display()))?;
    stored
        .iter()
        .find(|(name, t)| (name == "fc.weight" || name == "linear.weight") && t.dim() == 2)
        .map(|(_, t)| t.size()[0])
        .with_context(|| format!("weights {}: no classifier (fc.weight or linear.weight)", path.display()))
}

/// Loads every variable of `model` from the safetensors file `path`, and returns the file's
/// metadata. Weights whose metadata names another network are refused ([`check`]); a file
/// without reslab metadata loads with a warning that its network could not be checked. Strict
/// either way: a missing tensor, a tensor of the wrong shape, or a tensor the model does not have
/// is an error naming it.
pub fn load(model: &mut Model, path: &Path, by: Expected) -> Result<Option<WeightsMetadata>> {
    let metadata = check(path, &model.spec, by)?;
    if metadata.is_none() {
        crate::eprint_line!(
            "warning: {} has no reslab metadata, so its network could not be checked; loading it as {} by tensor \
             names and shapes",
            path.display(),
            model.spec
        );
    }
    load_tensors(&mut model.vs, path)?;
    Ok(metadata)
}

fn load_tensors(vs: &mut nn::VarStore, path: &Path) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{fresh, Precision};

    fn run_metadata(model: &Model) -> WeightsMetadata {
        let origin = RunOrigin { precision: Precision::Bf16, config_digest: "0f".repeat(32) };
        WeightsMetadata::new(&model.spec, 32, Some(origin))
    }

    #[test]
    fn saved_weights_carry_their_metadata_and_load_back_as_saved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let model = fresh(&"plain-8".parse().unwrap(), 1).unwrap();
        let metadata = run_metadata(&model);
        save(&model.vs, 5, &metadata, &path).unwrap();
        assert_eq!(read_metadata(&path).unwrap(), Some(metadata.clone()));
        assert_eq!(classes_in(&path).unwrap(), 10);
        // The same weights give the same bytes (metadata included), whatever the process.
        let again = dir.path().join("again.safetensors");
        save(&model.vs, 5, &metadata, &again).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), std::fs::read(&again).unwrap());
        // The tensors are PyTorch's state_dict as before: every variable and the BN counters.
        let stored: BTreeMap<String, Tensor> = Tensor::read_safetensors(&path).unwrap().into_iter().collect();
        assert_eq!(stored.len(), state_dict(&model.vs, 5).len());
        assert_eq!(stored["bn1.num_batches_tracked"].int64_value(&[]), 5);
        let mut again = fresh(&"plain-8".parse().unwrap(), 2).unwrap();
        assert_eq!(load(&mut again, &path, Expected::Flags).unwrap(), Some(metadata));
        assert!(again.vs.variables()["conv1.weight"].equal(&model.vs.variables()["conv1.weight"]));
    }

    #[test]
    fn another_network_is_refused_before_its_tensors_are_read_and_a_file_without_metadata_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain.safetensors");
        let plain = fresh(&"plain-8".parse().unwrap(), 1).unwrap();
        save(&plain.vs, 0, &run_metadata(&plain), &path).unwrap();
        let mut residual = fresh(&"resnet-8".parse().unwrap(), 1).unwrap();
        let before = residual.vs.variables()["conv1.weight"].copy();
        let err = load(&mut residual, &path, Expected::Flags).unwrap_err().to_string();
        assert!(err.contains("holds plain-8 weights; expected resnet-8 (A)"), "{err}");
        assert!(residual.vs.variables()["conv1.weight"].equal(&before), "nothing was loaded");
        // The same tensors without reslab's metadata (a third party's file): loaded by names and shapes.
        let bare = dir.path().join("bare.safetensors");
        let tensors: Vec<(String, Tensor)> = state_dict(&plain.vs, 0).into_iter().collect();
        Tensor::write_safetensors(&tensors, &bare).unwrap();
        assert_eq!(read_metadata(&bare).unwrap(), None);
        assert_eq!(load(&mut residual, &bare, Expected::Flags).unwrap(), None);
        assert!(residual.vs.variables()["conv1.weight"].equal(&plain.vs.variables()["conv1.weight"]));
    }

    #[test]
    fn a_file_that_is_not_safetensors_is_called_so() {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in [("short", &b"abc"[..]), ("huge", &[0xff; 16][..]), ("text", &b"\x02\0\0\0\0\0\0\0[]"[..])]
        {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let err = format!("{:#}", read_metadata(&path).unwrap_err());
            assert!(err.contains("expected a safetensors file") && err.contains(name), "{err}");
        }
    }
}
