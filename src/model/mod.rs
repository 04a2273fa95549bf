//! Networks: plain and residual, the CIFAR family of He et al. (2015), Section 4.2.
//!
//! A model is described by a [`ModelSpec`] (family, kind, depth, shortcut option) and built into a
//! [`Model`] that owns its `VarStore`; parameter names follow the PyTorch reproductions so
//! checkpoints move between the two.

pub mod blocks;
pub mod cifar;
pub mod layers;
pub mod weights;
pub mod zoo;

pub use zoo::{Family, Kind, ModelSpec, Shortcut};

use anyhow::Result;
use tch::nn::{self, ModuleT};
use tch::{Device, Tensor};

/// A network: the forward pass from images (N, 3, H, W) to logits (N, classes), and its cost.
pub trait Network: ModuleT + Send {
    /// Multiply-accumulates of one forward pass of one image (convolutions and fully-connected
    /// layers; BN, ReLU, additions and pooling are not counted, as in the paper's FLOPs).
    fn macs(&self) -> u64;
}

/// A built model: its description, its variables and its forward pass.
pub struct Model {
    pub spec: ModelSpec,
    pub vs: nn::VarStore,
    net: Box<dyn Network>,
}

impl Model {
    /// Builds `spec` on `device`, initialised from torch's generator (seed it first with
    /// `tch::manual_seed` for a reproducible initialisation).
    pub fn new(spec: &ModelSpec, device: Device) -> Result<Model> {
        let vs = nn::VarStore::new(device);
        let net: Box<dyn Network> = match spec.family {
            Family::Cifar => Box::new(cifar::CifarNet::new(&vs.root(), spec)?),
        };
        Ok(Model {
            spec: spec.clone(),
            vs,
            net,
        })
    }

    pub fn forward_t(&self, images: &Tensor, train: bool) -> Tensor {
        self.net.forward_t(images, train)
    }

    pub fn macs(&self) -> u64 {
        self.net.macs()
    }

    /// Number of trainable parameters (conv weights, BN weight and bias, fc weight and bias).
    pub fn num_params(&self) -> i64 {
        self.vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind as Dtype;

    fn build(name: &str, shortcut: Shortcut) -> Model {
        let spec: ModelSpec = name.parse().unwrap();
        Model::new(&spec.with_shortcut(shortcut), Device::Cpu).unwrap()
    }

    #[test]
    fn parameter_counts_match_the_paper_architecture() {
        let option_a = [
            (20, 269_722),
            (32, 464_154),
            (44, 658_586),
            (56, 853_018),
            (110, 1_727_962),
            (1202, 19_421_274),
        ];
        for (depth, params) in option_a {
            assert_eq!(
                build(&format!("resnet-{depth}"), Shortcut::A).num_params(),
                params,
                "resnet-{depth} A"
            );
            assert_eq!(
                build(&format!("plain-{depth}"), Shortcut::A).num_params(),
                params,
                "plain-{depth}"
            );
        }
        for (depth, params) in [(20, 269_722), (56, 853_018), (110, 1_727_962)] {
            assert_eq!(
                build(&format!("resnet-{depth}"), Shortcut::B).num_params(),
                params + 2_752,
                "resnet-{depth} B"
            );
        }
        assert_eq!(build("resnet-20", Shortcut::C).num_params(), 283_962);
        assert_eq!(build("resnet-56", Shortcut::C).num_params(), 900_858);
    }

    #[test]
    fn macs_count_convolutions_and_the_classifier() {
        // resnet-20: conv1 0.44M + 3 stages of 6 convs (37.7M) + fc 640 = 40.55M MACs.
        assert_eq!(build("resnet-20", Shortcut::A).macs(), 40_551_040);
        assert_eq!(build("plain-20", Shortcut::A).macs(), 40_551_040);
        // Option B adds the two projections: 16->32 and 32->64 at 16x16 and 8x8.
        assert_eq!(
            build("resnet-20", Shortcut::B).macs(),
            40_551_040 + 16 * 32 * 256 + 32 * 64 * 64
        );
        let m56 = build("resnet-56", Shortcut::A).macs();
        assert!((125_000_000..126_000_000).contains(&m56), "{m56}");
    }

    #[test]
    fn outputs_are_logits_for_ten_classes_in_both_modes() {
        for name in ["plain-8", "resnet-8"] {
            let model = build(name, Shortcut::B);
            let x = Tensor::randn([3, 3, 32, 32], (Dtype::Float, Device::Cpu));
            assert_eq!(model.forward_t(&x, true).size(), vec![3, 10]);
            assert_eq!(model.forward_t(&x, false).size(), vec![3, 10]);
        }
    }

    #[test]
    fn names_follow_the_pytorch_cifar_reproduction() {
        let names = |m: &Model| {
            let mut v: Vec<String> = m.vs.variables().into_keys().collect();
            v.sort();
            v
        };
        let a = names(&build("resnet-20", Shortcut::A));
        for name in [
            "conv1.weight",
            "bn1.running_var",
            "layer3.2.bn2.bias",
            "layer2.0.conv1.weight",
            "linear.weight",
        ] {
            assert!(a.contains(&name.to_string()), "{name} missing");
        }
        assert!(
            !a.iter().any(|n| n.contains("shortcut")),
            "option A has no shortcut parameters"
        );
        assert_eq!(
            names(&build("plain-20", Shortcut::A)),
            a,
            "plain nets have the same variables as option A"
        );
        let b = names(&build("resnet-20", Shortcut::B));
        let shortcuts: Vec<&String> = b.iter().filter(|n| n.contains("shortcut")).collect();
        assert!(shortcuts
            .iter()
            .all(|n| n.starts_with("layer2.0.shortcut.") || n.starts_with("layer3.0.shortcut.")));
        assert!(
            b.contains(&"layer2.0.shortcut.0.weight".to_string())
                && b.contains(&"layer3.0.shortcut.1.running_mean".to_string())
        );
    }

    #[test]
    fn initialisation_is_he_normal_and_batchnorm_ones() {
        let model = build("resnet-56", Shortcut::A);
        let vars = model.vs.variables();
        let w = &vars["layer3.4.conv1.weight"];
        // He normal, fan-out: std = sqrt(2 / (3 * 3 * 64)).
        let expected = (2.0f64 / (9.0 * 64.0)).sqrt();
        let std = w.std(true).double_value(&[]);
        assert!(
            (std / expected - 1.0).abs() < 0.05,
            "std {std} vs {expected}"
        );
        assert!(w.mean(Dtype::Float).double_value(&[]).abs() < 0.01);
        assert!(vars["layer1.0.bn1.weight"].eq(1.0).all().int64_value(&[]) == 1);
        assert!(vars["layer1.0.bn1.bias"].eq(0.0).all().int64_value(&[]) == 1);
    }
}
