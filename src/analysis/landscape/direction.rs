//! Directions in weight space: random Gaussian ones filter-normalised to a model's weights, and
//! their safetensors file.

use super::Dims;
use crate::model::Model;
use anyhow::{bail, Context, Result};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// A direction in weight space: one tensor per trainable parameter, in name order (zero where the
/// parameter does not move).
#[derive(Debug)]
pub struct Direction {
    /// (parameter name, direction), in name order.
    pub parts: Vec<(String, Tensor)>,
}

impl Direction {
    pub(super) fn shallow_clone(&self) -> Direction {
        Direction { parts: self.parts.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect() }
    }
}

/// The trainable parameters of `model`, in name order (shallow clones of its variables).
pub fn parameters(model: &Model) -> Vec<(String, Tensor)> {
    // The BN running statistics are variables too, but not trainable ones.
    let mut named: Vec<(String, Tensor)> =
        model.vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

/// `d` with each filter (slice along dimension 0) scaled to the norm of the same filter of `w`.
pub fn filter_normalised(d: &Tensor, w: &Tensor) -> Tensor {
    let shape: Vec<i64> = std::iter::once(-1).chain(std::iter::repeat_n(1, w.dim() - 1)).collect();
    let norm = |t: &Tensor| t.flatten(1, -1).norm_scalaropt_dim(2, [1], false).view(shape.as_slice());
    d * (norm(w) / (norm(d) + 1e-10))
}

/// A random Gaussian direction with `model`'s shapes (zero for its biases and BN parameters),
/// drawn on the CPU from torch's generator, which the caller seeds: what is saved.
pub fn raw_direction(model: &Model) -> Direction {
    let parts = parameters(model)
        .into_iter()
        .map(|(name, w)| {
            let d = if w.dim() <= 1 {
                Tensor::zeros(w.size(), (Kind::Float, Device::Cpu))
            } else {
                Tensor::randn(w.size(), (Kind::Float, Device::Cpu))
            };
            (name, d)
        })
        .collect();
    Direction { parts }
}

/// `raw` filter-normalised to `model`'s weights, its 1-d parts zero (an error naming the part where
/// `raw` was made for another network).
pub fn normalised(raw: &Direction, model: &Model) -> Result<Direction> {
    let weights = parameters(model);
    if raw.parts.len() != weights.len() {
        bail!(
            "a direction of {} parts for {} parameters of {}; expected directions of the same network",
            raw.parts.len(),
            weights.len(),
            model.spec
        );
    }
    let parts = tch::no_grad(|| {
        raw.parts
            .iter()
            .zip(weights)
            .map(|((name, d), (own, w))| {
                if *name != own || d.size() != w.size() {
                    bail!(
                        "a direction's {name} {:?} against the model's {own} {:?}; expected directions of the same network ({})",
                        d.size(),
                        w.size(),
                        model.spec
                    );
                }
                let w = w.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
                let d = if w.dim() <= 1 { w.zeros_like() } else { filter_normalised(d, &w) };
                Ok((name.clone(), d))
            })
            .collect::<Result<Vec<_>>>()
    })?;
    Ok(Direction { parts })
}

/// The raw directions of a surface, from `seed` (the first direction is the same for a line and
/// a plane of the same seed).
pub fn raw_directions(model: &Model, seed: u64, dims: Dims) -> Vec<Direction> {
    tch::manual_seed(seed as i64);
    let first = raw_direction(model);
    match dims {
        Dims::One => vec![first],
        Dims::Two => vec![first, raw_direction(model)],
    }
}

/// The filter-normalised directions of a surface, from `seed`.
pub fn directions(model: &Model, seed: u64, dims: Dims) -> Result<Vec<Direction>> {
    raw_directions(model, seed, dims).iter().map(|d| normalised(d, model)).collect()
}

/// Saves raw directions as safetensors (`x.NAME`, `y.NAME`, and `seed`).
pub fn save_directions(directions: &[Direction], seed: u64, path: &Path) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> = vec![("seed".into(), Tensor::from(seed as i64))];
    for (axis, direction) in ["x", "y"].iter().zip(directions) {
        tensors.extend(direction.parts.iter().map(|(n, t)| (format!("{axis}.{n}"), t.shallow_clone())));
    }
    crate::util::fs::write_atomically(path, |tmp| {
        Tensor::write_safetensors(&tensors, tmp).map_err(|e| anyhow::anyhow!("{e}"))
    })
    .with_context(|| format!("writing directions {}", path.display()))
}

/// Raw directions saved by [`save_directions`] for `model`'s network, and their seed.
pub fn load_directions(model: &Model, path: &Path) -> Result<(Vec<Direction>, u64)> {
    let stored = Tensor::read_safetensors(path)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("reading directions {}", path.display()))?;
    let get = |name: &str| stored.iter().find(|(n, _)| n == name).map(|(_, t)| t.shallow_clone());
    let seed = get("seed").map(|t| t.int64_value(&[]) as u64).unwrap_or(0);
    let mut loaded = Vec::new();
    for axis in ["x", "y"] {
        if !stored.iter().any(|(n, _)| n.starts_with(&format!("{axis}."))) {
            continue;
        }
        let mut parts = Vec::new();
        for (name, _) in parameters(model) {
            let Some(d) = get(&format!("{axis}.{name}")) else {
                bail!("directions {}: no {axis}.{name}; expected directions saved for {}", path.display(), model.spec);
            };
            parts.push((name, d));
        }
        loaded.push(Direction { parts });
    }
    if loaded.is_empty() {
        bail!("directions {}: no x.* tensors; expected a file `analyze landscape` saved", path.display());
    }
    Ok((loaded, seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filter_of_a_direction_has_its_weights_norm_and_bn_and_biases_stay_put() {
        let model = crate::model::fresh(&"resnet-8".parse().unwrap(), 1).unwrap();
        let [x, y]: [Direction; 2] = directions(&model, 5, Dims::Two).unwrap().try_into().unwrap();
        let weights = parameters(&model);
        assert_eq!(x.parts.len(), weights.len());
        let (mut filters, mut zeroed) = (0, 0);
        for ((name, d), (_, w)) in x.parts.iter().zip(&weights) {
            if w.dim() <= 1 {
                assert_eq!(d.abs().sum(Kind::Double).double_value(&[]), 0.0, "{name} moves");
                zeroed += 1;
                continue;
            }
            for i in 0..w.size()[0] {
                let (dn, wn) = (d.get(i).norm().double_value(&[]), w.get(i).norm().double_value(&[]));
                assert!((dn - wn).abs() <= 1e-5 * wn.max(1e-6), "{name}[{i}]: {dn} vs {wn}");
                filters += 1;
            }
        }
        assert!(filters > 100 && zeroed > 10, "{filters} filters, {zeroed} 1-d parameters");
        assert!(x.parts.iter().any(|(n, _)| n.contains(".bn") || n.contains("bn1")), "BN parameters are listed");
        // Two different directions from one seed, and the same two again.
        let conv = x.parts.iter().position(|(_, d)| d.dim() == 4).unwrap();
        assert!(!x.parts[conv].1.equal(&y.parts[conv].1));
        let again = directions(&model, 5, Dims::Two).unwrap();
        assert!(again[1].parts.iter().zip(&y.parts).all(|((_, a), (_, b))| a.equal(b)));
    }
}
