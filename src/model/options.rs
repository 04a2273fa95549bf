//! A network as a user names it: a model name and the variant options on top of it (the command
//! line's `--shortcut`, `--block`, ...; an experiment file's `[[runs]]` fields), made into one
//! checked [`ModelSpec`]; and the short descriptions tables give of a network.

use super::{BlockVariant, BottleneckStride, Kind, ModelSpec, Shortcut};
use anyhow::{bail, Context, Result};
use clap::ValueEnum;

/// A model and the options that change it; `None` keeps the model's default.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelOptions {
    /// The shortcut option (A, B, C or highway).
    pub shortcut: Option<Shortcut>,
    /// Bottleneck nets: where a downsampling block puts its stride.
    pub bottleneck_stride: Option<BottleneckStride>,
    /// CIFAR nets: where BN and ReLU sit in each block.
    pub block: Option<BlockVariant>,
    /// Highway shortcuts only: the gates' initial bias.
    pub gate_bias: Option<f64>,
    /// Outputs of the classifier.
    pub classes: Option<i64>,
}

/// How a rule is named to the user: by the command line's flags or an experiment file's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spelling {
    /// As command-line flags (`--gate-bias`, `--shortcut highway`).
    Flags,
    /// As experiment-file keys (`gate_bias`, `shortcut = "highway"`).
    FileKeys,
}

/// An option only some networks have: given for another, it would change nothing, so it is refused
/// (`train`) or left out for that network (a study's `--set`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartialOption {
    /// Residual nets only: a plain net has no shortcuts.
    Shortcut,
    /// Bottleneck nets only: basic blocks have no 1x1 reduction to stride.
    BottleneckStride,
}

impl PartialOption {
    /// The networks that lack it, in words.
    pub fn lacking(self) -> &'static str {
        match self {
            PartialOption::Shortcut => "plain nets have no shortcuts",
            PartialOption::BottleneckStride => "basic-block nets have no bottleneck",
        }
    }

    /// Why `spec` does not have this option, if it does not; then what would.
    pub fn missing_from(self, spec: &ModelSpec) -> Option<(String, &'static str)> {
        match self {
            PartialOption::Shortcut if spec.kind == Kind::Plain => {
                Some((format!("{} is a plain net, which has no shortcuts", spec.name()), "a residual net (resnet-N)"))
            }
            PartialOption::BottleneckStride if !spec.is_bottleneck() => Some((
                format!("{} is built of basic blocks, which have no bottleneck", spec.name()),
                "a bottleneck net (resnet-164, resnet-1001, resnet-50/101/152, resnext-...)",
            )),
            _ => None,
        }
    }

    /// An error naming `given` (the option as the user gave it) where `spec` does not have it.
    pub fn check(self, spec: &ModelSpec, given: &str) -> Result<()> {
        match self.missing_from(spec) {
            Some((why, wanted)) => bail!("{given}: {why}; expected {wanted} for it"),
            None => Ok(()),
        }
    }
}

impl ModelOptions {
    /// `model` with these options, validated; errors name the options as `spelling` spells them.
    pub fn apply(&self, mut spec: ModelSpec, spelling: Spelling) -> Result<ModelSpec> {
        if let Some(shortcut) = self.shortcut {
            let given = match spelling {
                Spelling::Flags => format!("--shortcut {shortcut}"),
                Spelling::FileKeys => format!("shortcut = \"{shortcut}\""),
            };
            PartialOption::Shortcut.check(&spec, &given)?;
            spec.shortcut = shortcut;
        }
        if let Some(stride) = self.bottleneck_stride {
            let name = stride.to_possible_value().expect("no skipped values").get_name().to_string();
            let given = match spelling {
                Spelling::Flags => format!("--bottleneck-stride {name}"),
                Spelling::FileKeys => format!("bottleneck_stride = \"{name}\""),
            };
            PartialOption::BottleneckStride.check(&spec, &given)?;
            spec.bottleneck_stride = stride;
        }
        if let Some(block) = self.block {
            spec.block = block;
        }
        if let Some(bias) = self.gate_bias {
            if spec.shortcut != Shortcut::Highway {
                match spelling {
                    Spelling::Flags => {
                        bail!("--gate-bias is for highway shortcuts; expected --shortcut highway with it")
                    }
                    Spelling::FileKeys => {
                        bail!("gate_bias is for highway shortcuts; expected shortcut = \"highway\" with it")
                    }
                }
            }
            spec.gate_bias = Some(bias);
        }
        if self.classes.is_some() {
            spec.num_classes = self.classes;
        }
        match spelling {
            // The command line names the network it built; a file's caller names its entry.
            Spelling::Flags => spec.validate().with_context(|| format!("model {spec}"))?,
            Spelling::FileKeys => spec.validate()?,
        }
        Ok(spec)
    }
}

impl ModelSpec {
    /// The network's variant in a few words: `plain`, its shortcut (`A`), and its block where
    /// it is not the paper's (`A, pre`).
    pub fn variant(&self) -> String {
        match self.kind {
            Kind::Plain => "plain".to_string(),
            Kind::Residual if self.block.is_post() => self.shortcut.to_string(),
            Kind::Residual => format!("{}, {}", self.shortcut, self.block),
        }
    }
}

/// `reslab models`: the zoo as a table (header and rows) with parameter counts and MACs.
pub fn zoo_table() -> Result<(Vec<&'static str>, Vec<Vec<String>>)> {
    let rows = super::zoo_entries()?
        .into_iter()
        .map(|entry| {
            let spec = entry.spec;
            let shortcut = match spec.kind {
                Kind::Plain => "-".to_string(),
                Kind::Residual => spec.shortcut.to_string(),
            };
            let kind = if spec.groups.is_some() { "resnext".to_string() } else { spec.kind.to_string() };
            vec![
                spec.family.to_string(),
                kind,
                spec.depth.to_string(),
                shortcut,
                spec.block.to_string(),
                spec.name(),
                entry.params.to_string(),
                entry.macs.to_string(),
            ]
        })
        .collect();
    Ok((vec!["family", "kind", "depth", "shortcut", "block", "name", "params", "macs"], rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_change_the_model_and_the_gate_bias_needs_a_highway() {
        let base: ModelSpec = "resnet-20".parse().unwrap();
        let highway = ModelOptions { shortcut: Some(Shortcut::Highway), gate_bias: Some(-3.0), ..Default::default() };
        let spec = highway.apply(base.clone(), Spelling::Flags).unwrap();
        assert_eq!((spec.shortcut, spec.gate_bias), (Shortcut::Highway, Some(-3.0)));
        let stray = ModelOptions { gate_bias: Some(-1.0), ..Default::default() };
        let flags = stray.apply(base.clone(), Spelling::Flags).unwrap_err().to_string();
        assert!(flags.contains("--gate-bias") && flags.contains("--shortcut highway"), "{flags}");
        let keys = stray.apply(base, Spelling::FileKeys).unwrap_err().to_string();
        assert!(keys.contains("gate_bias") && keys.contains("shortcut = \"highway\""), "{keys}");
    }

    #[test]
    fn variants_are_named_as_tables_show_them() {
        let named = |name: &str| name.parse::<ModelSpec>().unwrap().variant();
        assert_eq!(named("plain-20"), "plain");
        assert_eq!(named("resnet-20"), "A");
        let pre = ModelOptions { block: Some(BlockVariant::Pre), ..Default::default() };
        assert_eq!(pre.apply("resnet-20".parse().unwrap(), Spelling::Flags).unwrap().variant(), "A, pre");
    }
}
