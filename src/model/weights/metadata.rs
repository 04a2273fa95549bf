//! What a weights file says about itself: the safetensors header's `__metadata__`, a map of
//! strings that PyTorch and the safetensors library carry along and ignore. Tensor names and
//! shapes cannot tell plain-20 from resnet-20 (option A adds no parameters); this can.
//!
//! | key | value |
//! | --- | --- |
//! | `format` | `pt`, safetensors' mark of PyTorch tensors |
//! | `model` | the network as `reslab models` and the run's messages name it: `plain-20`, `resnet-20 (A)`, `resnet-110-pre (B)` |
//! | `model_spec` | the same network exactly, as JSON: what loaders compare |
//! | `classes` | outputs of the classifier |
//! | `input_size` | side of the square images it trained on (weights no run made: its family's, 32 or 224) |
//! | `precision` | what its run trained in, `fp32` or `bf16`; absent for weights no run made (`export` of a fresh net) |
//! | `config_digest` | its run's configuration digest (`RunConfig::identity_digest`); absent likewise |
//! | `reslab_version` | the reslab that wrote the file; a file without it has no reslab metadata |

use crate::model::{Model, ModelSpec, Precision};
use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use std::collections::BTreeMap;
use std::path::Path;

const FORMAT: &str = "format";
const MODEL: &str = "model";
const MODEL_SPEC: &str = "model_spec";
const CLASSES: &str = "classes";
const INPUT_SIZE: &str = "input_size";
const PRECISION: &str = "precision";
const CONFIG_DIGEST: &str = "config_digest";
const RESLAB_VERSION: &str = "reslab_version";

/// The metadata reslab writes into every weights file (module docs: the keys).
#[derive(Debug, Clone, PartialEq)]
pub struct WeightsMetadata {
    /// The network, its classifier sized (`num_classes` is always set).
    pub model: ModelSpec,
    /// Side of the square images it trained on, in pixels.
    pub input_size: u32,
    /// The run that made the weights; `None` for weights no run made.
    pub run: Option<RunOrigin>,
    /// The reslab version that wrote the file.
    pub reslab_version: String,
}

/// The run a weights file comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOrigin {
    /// What the run trained in (its test errors were measured in it too).
    pub precision: Precision,
    /// The run's configuration digest (`RunConfig::identity_digest`).
    pub config_digest: String,
}

/// Which network a loader expects, for the line that refuses another's weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected<'a> {
    /// The one `--model` and its options name (`eval`).
    Flags,
    /// The one a run's configuration names (the path of its `config.toml`).
    Run(&'a Path),
    /// The one of the run being trained (a checkpoint it would continue from).
    Training,
}

impl WeightsMetadata {
    /// The metadata of weights of `model` for images of `input_size` pixels, written by this reslab.
    pub fn new(model: &ModelSpec, input_size: u32, run: Option<RunOrigin>) -> WeightsMetadata {
        WeightsMetadata {
            model: ModelSpec { num_classes: Some(model.classes()), ..model.clone() },
            input_size,
            run,
            reslab_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// The metadata of a net no run made (a fresh initialisation): its family's image size.
    pub fn untrained(model: &Model) -> WeightsMetadata {
        let size = u32::try_from(model.image_size()).expect("a family's image size fits");
        WeightsMetadata::new(&model.spec, size, None)
    }

    /// As the header's `__metadata__` map.
    pub fn to_header(&self) -> BTreeMap<String, String> {
        let spec = serde_json::to_string(&self.model).expect("a model spec always serialises");
        let mut header: BTreeMap<String, String> = [
            (FORMAT, "pt".to_string()),
            (MODEL, self.model.to_string()),
            (MODEL_SPEC, spec),
            (CLASSES, self.model.classes().to_string()),
            (INPUT_SIZE, self.input_size.to_string()),
            (RESLAB_VERSION, self.reslab_version.clone()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect();
        if let Some(run) = &self.run {
            header.insert(PRECISION.into(), run.precision.to_string());
            header.insert(CONFIG_DIGEST.into(), run.config_digest.clone());
        }
        header
    }

    /// Read back from a header's `__metadata__`; `None` where reslab did not write it (no
    /// `reslab_version`: a third party's file, or one of a reslab before metadata).
    pub fn from_header(header: &BTreeMap<String, String>) -> Result<Option<WeightsMetadata>> {
        let Some(version) = header.get(RESLAB_VERSION) else {
            return Ok(None);
        };
        let value = |key: &str| header.get(key).with_context(|| format!("its reslab metadata has no {key}"));
        let model: ModelSpec = serde_json::from_str(value(MODEL_SPEC)?)
            .map_err(|e| anyhow::anyhow!("its reslab metadata's {MODEL_SPEC} is unreadable ({e})"))?;
        let model = ModelSpec { num_classes: Some(model.classes()), ..model };
        let input_size = value(INPUT_SIZE)?
            .parse()
            .map_err(|_| anyhow::anyhow!("its reslab metadata's {INPUT_SIZE} is not a number of pixels"))?;
        let run = match (header.get(PRECISION), header.get(CONFIG_DIGEST)) {
            (Some(precision), Some(digest)) => Some(RunOrigin {
                precision: precision.parse().context("its reslab metadata's precision")?,
                config_digest: digest.clone(),
            }),
            (None, None) => None,
            _ => bail!("its reslab metadata has one of {PRECISION} and {CONFIG_DIGEST} without the other"),
        };
        Ok(Some(WeightsMetadata { model, input_size, run, reslab_version: version.clone() }))
    }

    /// Refuses weights of another network than `expected` in one line naming both: another
    /// architecture, or, where `expected` fixes them, another number of classes.
    pub fn ensure_network(&self, file: &Path, expected: &ModelSpec, by: Expected) -> Result<()> {
        let held = &self.model;
        let other_classes = expected.num_classes.is_some_and(|n| n != held.classes());
        if held.architecture() == expected.architecture() && !other_classes {
            return Ok(());
        }
        let stride_differs = held.bottleneck_stride != expected.bottleneck_stride;
        let describe = |spec: &ModelSpec, weights: &str| {
            let mut text = format!("{spec}{weights}");
            if stride_differs && held.architecture() != expected.architecture() {
                let stride = spec.bottleneck_stride.to_possible_value().expect("no skipped values");
                text += &format!(" (bottleneck stride {})", stride.get_name());
            }
            if other_classes {
                text += &format!(" for {} classes", spec.classes());
            }
            text
        };
        let (held, expected) = (describe(held, " weights"), describe(expected, ""));
        let file = file.display();
        match by {
            Expected::Flags => bail!(
                "{file} holds {held}; expected {expected} (--model): name their network with --model and its \
                 options, or give weights of {expected}"
            ),
            Expected::Run(config) => bail!(
                "{file} holds {held}; expected {expected}, as {} says: the weights or the configuration come from \
                 another run",
                config.display()
            ),
            Expected::Training => bail!(
                "{file} holds {held}; expected {expected}, the network being trained: continue the run with its own \
                 configuration, or train into another --out"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Shortcut;

    fn spec(name: &str) -> ModelSpec {
        name.parse().unwrap()
    }

    fn trained(name: &str) -> WeightsMetadata {
        let origin = RunOrigin { precision: Precision::Bf16, config_digest: "ab12".into() };
        WeightsMetadata::new(&spec(name), 32, Some(origin))
    }

    #[test]
    fn metadata_round_trips_through_the_header_map() {
        for metadata in [
            trained("resnet-110-pre"),
            trained("plain-20"),
            WeightsMetadata::new(&spec("resnet-50").with_shortcut(Shortcut::C), 224, None),
        ] {
            assert_eq!(WeightsMetadata::from_header(&metadata.to_header()).unwrap(), Some(metadata));
        }
        let header = trained("resnet-20").to_header();
        assert_eq!(header["model"], "resnet-20 (A)");
        assert_eq!((header["classes"].as_str(), header["input_size"].as_str()), ("10", "32"));
        assert_eq!((header["precision"].as_str(), header["format"].as_str()), ("bf16", "pt"));
        assert_eq!(header["reslab_version"], env!("CARGO_PKG_VERSION"));
        let untrained = WeightsMetadata::new(&spec("plain-20"), 32, None).to_header();
        assert!(!untrained.contains_key("precision") && !untrained.contains_key("config_digest"));
    }

    #[test]
    fn a_header_without_reslab_version_has_no_metadata_and_a_damaged_one_is_an_error() {
        let third_party: BTreeMap<String, String> = [("source".to_string(), "akamaster".to_string())].into();
        assert_eq!(WeightsMetadata::from_header(&third_party).unwrap(), None);
        let mut header = trained("resnet-20").to_header();
        header.insert("precision".into(), "fp8".into());
        let err = format!("{:#}", WeightsMetadata::from_header(&header).unwrap_err());
        assert!(err.contains("precision") && err.contains("fp8"), "{err}");
        header.remove("precision");
        assert!(WeightsMetadata::from_header(&header).is_err());
        let mut header = trained("resnet-20").to_header();
        header.insert("model_spec".into(), "{".into());
        assert!(WeightsMetadata::from_header(&header).is_err());
    }

    #[test]
    fn another_network_is_refused_in_one_line_naming_both() {
        let file = Path::new("plain-20-seed0/model.safetensors");
        let plain = trained("plain-20");
        let err = plain.ensure_network(file, &spec("resnet-20"), Expected::Flags).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "plain-20-seed0/model.safetensors holds plain-20 weights; expected resnet-20 (A) (--model)"
            ),
            "{err}"
        );
        let config = Path::new("run/config.toml");
        let err = plain.ensure_network(file, &spec("resnet-20"), Expected::Run(config)).unwrap_err().to_string();
        assert!(err.contains("expected resnet-20 (A), as run/config.toml says") && !err.contains('\n'), "{err}");
        let b = spec("resnet-20").with_shortcut(Shortcut::B);
        assert!(trained("resnet-20").ensure_network(file, &b, Expected::Training).is_err());
        // What only initialises or goes unused is the same network; unsized classes are not compared.
        plain.ensure_network(file, &spec("plain-20").with_shortcut(Shortcut::B), Expected::Flags).unwrap();
        let mut highway = trained("resnet-20");
        highway.model.shortcut = Shortcut::Highway;
        let mut other_bias = highway.model.clone();
        (other_bias.gate_bias, other_bias.num_classes) = (Some(-4.0), None);
        highway.ensure_network(file, &other_bias, Expected::Flags).unwrap();
        let hundred = ModelSpec { num_classes: Some(100), ..spec("plain-20") };
        let err = plain.ensure_network(file, &hundred, Expected::Flags).unwrap_err().to_string();
        assert!(err.contains("holds plain-20 weights for 10 classes; expected plain-20 for 100 classes"), "{err}");
    }
}
