//! Networks: plain and residual, the CIFAR family of He et al. (2015), Section 4.2, and the
//! ImageNet family (Table 1).
//!
//! A model is described by a [`ModelSpec`] (family, kind, depth, shortcut option) and built into a
//! [`Model`] that owns its `VarStore`; parameter names follow the PyTorch reproductions so
//! checkpoints move between the two.
//!
//! The files import downwards only: `spec` (the descriptions) and `zoo` (the list of them);
//! `layers` (conv3x3, conv1x1, conv + BN) and `taps` (what a pass keeps); `blocks`; `net` (stem,
//! stages built by `make_layer`, head); `cifar` and `imagenet` (what each family puts in);
//! `folded` (the evaluation form); this file.

pub mod blocks;
pub mod cifar;
pub mod folded;
pub mod imagenet;
pub mod kernels;
pub mod layers;
pub mod net;
pub mod options;
pub mod precision;
pub mod spec;
pub mod taps;
pub mod weights;
pub mod zoo;

pub use folded::Folded;
pub use kernels::Kernels;
pub use options::{ModelOptions, Spelling};
pub use precision::Precision;
pub use spec::{BlockVariant, BottleneckStride, Family, Groups, Kind, ModelSpec, Shortcut};
pub use taps::Taps;

use anyhow::Result;
use layers::Conv;
use net::Net;
use taps::Pass;
use tch::nn;
use tch::{Device, Tensor};

/// A convolution of a built model, placed in the network: what the layer analyses need.
#[derive(Debug)]
pub struct ConvLayer<'a> {
    /// The convolution.
    pub conv: &'a Conv,
    /// The BN that normalises its output: right after it, or after the shortcut's addition (the
    /// "BN after addition" ablation); none for the last convolution of a pre-activation block.
    /// Its output is the layer's response (see [`Model::forward_tapped`]).
    pub bn: Option<&'a nn::BatchNorm>,
    /// A shortcut's projection (options B and C), not a layer of the main path.
    pub on_shortcut: bool,
    /// 1-based position among the weighted layers of the main path (the stem convolution is 1); a
    /// shortcut's projection gets the depth of the layer whose output it is added to.
    pub depth: usize,
    /// 0 for the stem, 1.. for the stages (`layer1`, `layer2`, ...).
    pub stage: usize,
}

/// A weight matrix or kernel of a built model: every convolution and the classifier.
#[derive(Debug)]
pub struct WeightLayer {
    /// The module's name (`layer1.0.conv1`, `linear`).
    pub name: String,
    /// As in [`ConvLayer::depth`]; the classifier is the last.
    pub depth: usize,
    /// The weight itself (shares storage with the model's variable).
    pub weight: Tensor,
}

/// A built model: its description, its variables and its forward pass.
#[derive(Debug)]
pub struct Model {
    /// What the network is: family, kind, depth and options.
    pub spec: ModelSpec,
    /// Its variables, named as PyTorch names the modules (`layer1.0.conv1.weight`).
    pub vs: nn::VarStore,
    net: Net,
    channels_last: bool,
    kernels: Kernels,
}

/// The same (N, C, H, W) tensor with NHWC strides.
fn to_channels_last(x: &Tensor) -> Tensor {
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

impl Model {
    /// Builds `spec` on `device`, initialised from torch's generator (seed it first with
    /// `tch::manual_seed` for a reproducible initialisation).
    pub fn new(spec: &ModelSpec, device: Device) -> Result<Model> {
        let vs = nn::VarStore::new(device);
        let net = match spec.family {
            Family::Cifar => cifar::build(&vs.root(), spec)?,
            Family::Imagenet => imagenet::build(&vs.root(), spec)?,
        };
        Ok(Model { spec: spec.clone(), vs, net, channels_last: false, kernels: Kernels::Exact })
    }

    /// `spec`'s layers with zero weights, built in a fraction of the time: for its parameter
    /// count and MACs, never to be trained or evaluated.
    pub fn shapes_only(spec: &ModelSpec) -> Result<Model> {
        layers::shapes_only(|| Model::new(spec, Device::Cpu))
    }

    /// Stores 4-d weights, and passes inputs, channels-last (NHWC strides, NCHW shape): oneDNN
    /// then keeps activations in that layout, about 10% faster on CPUs. Numbers differ from the
    /// default layout only by float rounding.
    pub fn use_channels_last(&mut self) {
        self.channels_last = true;
        tch::no_grad(|| {
            for (_, mut var) in self.vs.variables() {
                if var.dim() == 4 {
                    var.set_data(&to_channels_last(&var));
                }
            }
        });
    }

    /// Computes training passes' BN, ReLU and additions with `kernels` (exact until set).
    pub fn use_kernels(&mut self, kernels: Kernels) {
        self.kernels = kernels;
    }

    /// The kernels of its training passes.
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    fn input(&self, images: &Tensor) -> Tensor {
        if self.channels_last {
            to_channels_last(images)
        } else {
            images.shallow_clone()
        }
    }

    /// Logits (N, classes) of images (N, 3, H, W), in training or evaluation mode.
    pub fn forward_t(&self, images: &Tensor, train: bool) -> Tensor {
        let pass = if train { Pass::training(self.kernels) } else { Pass::new(false) };
        self.net.forward(&self.input(images), pass)
    }

    /// An evaluation-mode forward pass that keeps the responses of the layers `taps` names (by
    /// [`Conv::name`]) for [`Taps::take`]: each one's BN output, before the ReLU or the addition.
    pub fn forward_tapped(&self, images: &Tensor, taps: &Taps) -> Tensor {
        self.net.forward(&self.input(images), Pass::tapped(taps))
    }

    /// Multiply-accumulates of one forward pass of one image at the family's image size
    /// (convolutions and fully-connected layers; BN, ReLU, additions and pooling are not counted,
    /// as in the paper's FLOPs).
    pub fn macs(&self) -> u64 {
        self.net.macs()
    }

    /// Every convolution in network order (a block's shortcut projection after the block's own
    /// convolutions), with its depth and stage.
    pub fn conv_layers(&self) -> Vec<ConvLayer<'_>> {
        let mut depth = 0;
        self.net
            .convs()
            .into_iter()
            .map(|layer| {
                if !layer.on_shortcut {
                    depth += 1;
                }
                let stage = layer
                    .conv
                    .name
                    .strip_prefix("layer")
                    .and_then(|rest| rest.split('.').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                ConvLayer { conv: layer.conv, bn: layer.bn, on_shortcut: layer.on_shortcut, depth, stage }
            })
            .collect()
    }

    /// The weights of every convolution and of the classifier, in network order (shared with
    /// the model: their `.grad` is the training step's gradient).
    pub fn weight_layers(&self) -> Vec<WeightLayer> {
        let convs = self.conv_layers();
        let depth = convs.iter().map(|c| c.depth).max().unwrap_or(0) + 1;
        let head = &self.net.head;
        let mut layers: Vec<WeightLayer> = convs
            .into_iter()
            .map(|c| WeightLayer { name: c.conv.name.clone(), depth: c.depth, weight: c.conv.conv.ws.shallow_clone() })
            .collect();
        layers.push(WeightLayer { name: head.name.to_string(), depth, weight: head.fc.ws.shallow_clone() });
        layers
    }

    /// The model for evaluation-mode forward passes with every BN folded into its convolution:
    /// the same outputs up to float rounding, faster. The folding is computed from the weights
    /// as they are now. With `fuse`, fp32 CPU passes also fuse each convolution with the addition
    /// and ReLU after it (oneDNN); give `false` under bf16 autocast, which the fused convolution
    /// does not follow.
    pub fn fold_batch_norm(&self, fuse: bool) -> Folded<'_> {
        Folded::new(&self.net, fuse, self.channels_last)
    }

    /// Number of trainable parameters (conv weights, BN weight and bias, fc weight and bias).
    pub fn num_params(&self) -> i64 {
        self.vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
    }

    /// The side of the square images its family is made for (32 for CIFAR, 224 for ImageNet).
    pub fn image_size(&self) -> i64 {
        self.net.image_size
    }
}

/// One line of `reslab models`: a zoo network with its size and cost.
#[derive(Debug, Clone, PartialEq)]
pub struct ZooEntry {
    /// The network.
    pub spec: ModelSpec,
    /// Trainable parameters.
    pub params: i64,
    /// Forward multiply-accumulates per image, at the family's image size.
    pub macs: u64,
}

/// Every network of the zoo, built once (on the CPU) to count its parameters and MACs.
pub fn zoo_entries() -> Result<Vec<ZooEntry>> {
    zoo::specs()
        .into_iter()
        .map(|spec| {
            let model = Model::shapes_only(&spec)?;
            Ok(ZooEntry { params: model.num_params(), macs: model.macs(), spec })
        })
        .collect()
}

/// Fresh weights of `spec` initialised from `seed`, as a built model.
pub fn fresh(spec: &ModelSpec, seed: u64) -> Result<Model> {
    tch::manual_seed(seed as i64);
    Model::new(spec, Device::Cpu)
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
    fn a_net_built_for_counting_has_the_shapes_of_the_real_one_and_drawing_resumes_after_it() {
        for name in ["resnet-20", "plain-56", "resnet-18"] {
            let spec: ModelSpec = name.parse().unwrap();
            for spec in [spec.clone(), spec.with_shortcut(Shortcut::Highway)] {
                let counted = Model::shapes_only(&spec).unwrap();
                let real = Model::new(&spec, Device::Cpu).unwrap();
                assert_eq!((counted.num_params(), counted.macs()), (real.num_params(), real.macs()), "{spec}");
                let shapes = |m: &Model| m.vs.variables().into_iter().map(|(k, v)| (k, v.size())).collect::<Vec<_>>();
                let (mut a, mut b) = (shapes(&counted), shapes(&real));
                a.sort();
                b.sort();
                assert_eq!(a, b, "{spec}");
                // Convolution and classifier weights (BN's weights are ones either way).
                let drawn_sum = |m: &Model| {
                    m.vs.variables()
                        .values()
                        .filter(|v| v.dim() >= 2)
                        .map(|v| v.abs().sum(Dtype::Float).double_value(&[]))
                        .sum::<f64>()
                };
                assert_eq!(drawn_sum(&counted), 0.0, "{spec}: nothing drawn");
                assert!(drawn_sum(&real) > 0.0, "{spec}: drawn again after counting");
            }
        }
    }

    #[test]
    fn parameter_counts_match_the_paper_architecture() {
        let option_a =
            [(20, 269_722), (32, 464_154), (44, 658_586), (56, 853_018), (110, 1_727_962), (1202, 19_421_274)];
        for (depth, params) in option_a {
            assert_eq!(build(&format!("resnet-{depth}"), Shortcut::A).num_params(), params, "resnet-{depth} A");
            assert_eq!(build(&format!("plain-{depth}"), Shortcut::A).num_params(), params, "plain-{depth}");
        }
        for (depth, params) in [(20, 269_722), (56, 853_018), (110, 1_727_962)] {
            assert_eq!(build(&format!("resnet-{depth}"), Shortcut::B).num_params(), params + 2_752, "resnet-{depth} B");
        }
        assert_eq!(build("resnet-20", Shortcut::C).num_params(), 283_962);
        assert_eq!(build("resnet-56", Shortcut::C).num_params(), 900_858);
    }

    #[test]
    fn imagenet_counts_at_1000_classes_option_b() {
        let expected = [(18, 11_689_512), (34, 21_797_672), (50, 25_557_032), (101, 44_549_160), (152, 60_192_808)];
        for (depth, params) in expected {
            let model = build(&format!("resnet-{depth}"), Shortcut::B);
            assert_eq!(model.num_params(), params, "resnet-{depth}");
        }
    }

    #[test]
    fn resnext_counts_match_torchvision_and_the_resnext_paper() {
        let count = |name: &str| Model::new(&name.parse().unwrap(), Device::Cpu).unwrap().num_params();
        assert_eq!(count("resnext-50-32x4d"), 25_028_904);
        assert_eq!(count("resnext-101-32x8d"), 88_791_336);
        // Xie et al. (2017), Table 7: 34.4M and 68.1M (ours: 34.43M and 68.16M).
        let (c8, c16) = (count("resnext-29-8x64d"), count("resnext-29-16x64d"));
        assert!((34_350_000..34_450_000).contains(&c8), "{c8}");
        assert!((68_100_000..68_200_000).contains(&c16), "{c16}");
    }

    #[test]
    fn he_2016_bottleneck_nets_have_the_papers_sizes_and_every_variant_classifies() {
        // He et al. (2016), Table 2 (CIFAR-10): 164 layers 1.7M, 1001 layers 10.2M parameters.
        let count = |name: &str| Model::new(&name.parse().unwrap(), Device::Cpu).unwrap().num_params();
        let (p164, p1001) = (count("resnet-164"), count("resnet-1001-pre"));
        assert!((1_650_000..1_750_000).contains(&p164), "{p164}");
        assert!((10_150_000..10_350_000).contains(&p1001), "{p1001}");
        let x = Tensor::randn([2, 3, 32, 32], (Dtype::Float, Device::Cpu));
        for name in [
            "resnet-8-pre",
            "resnet-8-bn-after-add",
            "resnet-8-no-relu-after-add",
            "plain-8-pre",
            "resnet-11-pre",
            "resnet-11",
        ] {
            let model = Model::new(&name.parse().unwrap(), Device::Cpu).unwrap();
            for train in [true, false] {
                assert_eq!(model.forward_t(&x, train).size(), vec![2, 10], "{name}");
            }
            let folded = tch::no_grad(|| model.fold_batch_norm(true).forward(&x));
            let plain = tch::no_grad(|| model.forward_t(&x, false));
            assert!(folded.allclose(&plain, 1e-4, 1e-4, false), "{name}: folding changed the outputs");
        }
        let highway = build("resnet-20", Shortcut::Highway);
        assert_eq!(highway.forward_t(&x, true).size(), vec![2, 10]);
        // Gates: a 1x1 conv with bias per block (9 blocks); projections where the shape changes (2).
        let gates = highway.vs.variables().keys().filter(|k| k.contains(".gate.")).count();
        assert_eq!(gates, 18);
        assert_eq!(
            highway.num_params() - build("resnet-20", Shortcut::B).num_params(),
            16 * 16 * 3 + 16 * 32 + 32 * 32 * 2 + 32 * 64 + 64 * 64 * 2 + 16 * 3 + 32 * 3 + 64 * 3
        );
    }

    #[test]
    fn imagenet_macs_match_the_papers_flops() {
        // Table 1 "FLOPs" (multiply-adds): 1.8, 3.6, 3.8, 7.6, 11.3 billion; torchvision's v1.5
        // placement of the bottleneck stride costs more: about 4.1, 7.8, 11.5 billion.
        let check = |name: &str, stride: BottleneckStride, billions: f64| {
            let mut spec: ModelSpec = name.parse().unwrap();
            spec.bottleneck_stride = stride;
            let macs = Model::new(&spec, Device::Cpu).unwrap().macs() as f64 / 1e9;
            assert!((macs / billions - 1.0).abs() < 0.02, "{name} {stride:?}: {macs:.3} G vs {billions} G");
        };
        for (name, billions) in
            [("resnet-18", 1.8), ("resnet-34", 3.6), ("resnet-50", 3.8), ("resnet-101", 7.6), ("resnet-152", 11.3)]
        {
            check(name, BottleneckStride::Reduce, billions);
        }
        for (name, billions) in [("resnet-50", 4.1), ("resnet-101", 7.8), ("resnet-152", 11.5)] {
            check(name, BottleneckStride::Spatial, billions);
        }
    }

    #[test]
    fn imagenet_nets_classify_small_inputs_too() {
        for name in ["plain-18", "resnet-50"] {
            for shortcut in [Shortcut::A, Shortcut::B, Shortcut::C] {
                let mut spec: ModelSpec = name.parse().unwrap();
                spec.num_classes = Some(7);
                let model = Model::new(&spec.with_shortcut(shortcut), Device::Cpu).unwrap();
                let x = Tensor::randn([2, 3, 64, 64], (Dtype::Float, Device::Cpu));
                assert_eq!(model.forward_t(&x, true).size(), vec![2, 7], "{name} {shortcut}");
            }
        }
    }

    #[test]
    fn imagenet_names_follow_torchvision() {
        let model = build("resnet-50", Shortcut::B);
        let vars = model.vs.variables();
        for name in [
            "conv1.weight",
            "bn1.running_mean",
            "layer1.0.conv3.weight",
            "layer1.0.downsample.0.weight",
            "layer4.2.bn3.bias",
            "fc.bias",
        ] {
            assert!(vars.contains_key(name), "{name} missing");
        }
        // Option A adds no parameters: it equals the plain net's count.
        assert_eq!(build("resnet-34", Shortcut::A).num_params(), build("plain-34", Shortcut::A).num_params());
    }

    #[test]
    fn macs_count_convolutions_and_the_classifier() {
        // resnet-20: conv1 0.44M + 3 stages of 6 convs (37.7M) + fc 640 = 40.55M MACs.
        assert_eq!(build("resnet-20", Shortcut::A).macs(), 40_551_040);
        assert_eq!(build("plain-20", Shortcut::A).macs(), 40_551_040);
        // Option B adds the two projections: 16->32 and 32->64 at 16x16 and 8x8.
        assert_eq!(build("resnet-20", Shortcut::B).macs(), 40_551_040 + 16 * 32 * 256 + 32 * 64 * 64);
        let m56 = build("resnet-56", Shortcut::A).macs();
        assert!((125_000_000..126_000_000).contains(&m56), "{m56}");
    }

    #[test]
    fn folding_batch_norm_reaches_every_convolution_and_keeps_the_outputs() {
        for (name, shortcut, size) in
            [("resnet-20", Shortcut::B), ("resnet-50", Shortcut::B), ("plain-20", Shortcut::A)]
                .map(|(n, s)| (n, s, if n == "resnet-50" { 64 } else { 32 }))
        {
            let mut model = build(name, shortcut);
            model.use_channels_last();
            let convs = model.vs.variables().values().filter(|t| t.dim() == 4).count();
            let bns = model.vs.variables().keys().filter(|k| k.ends_with("running_mean")).count();
            assert_eq!(model.net.convs().len(), convs, "{name}: every conv (all but the fc weight)");
            assert_eq!(bns, convs, "{name}: one BN per conv");
            // Trained-looking statistics, so folding has something to fold.
            tch::no_grad(|| {
                for (key, mut t) in model.vs.variables() {
                    if key.contains("bn") || key.contains("shortcut.1.") || key.contains("downsample.1.") {
                        t.copy_(&(Tensor::rand_like(&t) + 0.5));
                    }
                }
            });
            let x = Tensor::randn([4, 3, size, size], (Dtype::Float, Device::Cpu));
            let plain = tch::no_grad(|| model.forward_t(&x, false));
            for fuse in [false, true] {
                let folded = tch::no_grad(|| model.fold_batch_norm(fuse).forward(&x));
                let scale = plain.abs().max().double_value(&[]);
                let diff = (&folded - &plain).abs().max().double_value(&[]);
                assert!(
                    diff <= 1e-4 * scale.max(1.0),
                    "{name} {fuse}: folded differs by {diff} (outputs up to {scale})"
                );
            }
            assert!(tch::no_grad(|| model.forward_t(&x, false)).equal(&plain), "{name}: the model itself unchanged");
        }
    }

    #[test]
    fn a_tapped_pass_keeps_each_bn_output_and_computes_the_same_logits() {
        let mut spec: ModelSpec = "resnet-8-bn-after-add".parse().unwrap();
        spec.shortcut = Shortcut::B;
        let model = Model::new(&spec, Device::Cpu).unwrap();
        let layers = model.conv_layers();
        let taps = Taps::new(layers.iter().map(|l| l.conv.name.as_str()));
        let x = Tensor::randn([2, 3, 32, 32], (Dtype::Float, Device::Cpu));
        let logits = tch::no_grad(|| model.forward_tapped(&x, &taps));
        assert!(logits.equal(&tch::no_grad(|| model.forward_t(&x, false))));
        for layer in &layers {
            let response = taps.take(&layer.conv.name);
            assert_eq!(response.is_some(), layer.bn.is_some(), "{}", layer.conv.name);
        }
        // The BN after the addition: its response is the sum's, normalised, before the ReLU.
        let last = layers.iter().find(|l| l.conv.name == "layer3.0.conv2").unwrap();
        assert!(last.bn.is_some());
        let _ = tch::no_grad(|| model.forward_tapped(&x, &taps));
        let response = taps.take("layer3.0.conv2").unwrap();
        assert_eq!(response.size(), vec![2, 64, 8, 8]);
        assert!(response.min().double_value(&[]) < 0.0, "taken before the ReLU");
    }

    #[test]
    fn conv_layers_know_their_depth_stage_and_path() {
        let model = build("resnet-20", Shortcut::B);
        let layers = model.conv_layers();
        let main: Vec<&ConvLayer> = layers.iter().filter(|l| !l.on_shortcut).collect();
        assert_eq!(main.len(), 19);
        assert!(main.iter().all(|l| l.conv.kernel == 3));
        assert_eq!(main.iter().map(|l| l.depth).collect::<Vec<_>>(), (1..=19).collect::<Vec<_>>());
        assert_eq!((main[0].conv.name.as_str(), main[0].stage), ("conv1", 0));
        assert_eq!((main[7].conv.name.as_str(), main[7].stage), ("layer2.0.conv1", 2));
        // The projection joins the main path where its block adds: after layer2.0.conv2 (depth 9).
        let projections: Vec<(&str, usize)> =
            layers.iter().filter(|l| l.on_shortcut).map(|l| (l.conv.name.as_str(), l.depth)).collect();
        assert_eq!(projections, [("layer2.0.shortcut.0", 9), ("layer3.0.shortcut.0", 15)]);
        let weights = model.weight_layers();
        assert_eq!(weights.len(), 22);
        let fc = weights.last().unwrap();
        assert_eq!((fc.name.as_str(), fc.depth, fc.weight.size()), ("linear", 20, vec![10, 64]));
        let r50 = build("resnet-50", Shortcut::B).weight_layers();
        assert_eq!((r50.last().unwrap().name.as_str(), r50.last().unwrap().depth), ("fc", 50));
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
        for name in ["conv1.weight", "bn1.running_var", "layer3.2.bn2.bias", "layer2.0.conv1.weight", "linear.weight"] {
            assert!(a.contains(&name.to_string()), "{name} missing");
        }
        assert!(!a.iter().any(|n| n.contains("shortcut")), "option A has no shortcut parameters");
        assert_eq!(names(&build("plain-20", Shortcut::A)), a, "plain nets have the same variables as option A");
        let b = names(&build("resnet-20", Shortcut::B));
        let shortcuts: Vec<&String> = b.iter().filter(|n| n.contains("shortcut")).collect();
        assert!(shortcuts.iter().all(|n| n.starts_with("layer2.0.shortcut.") || n.starts_with("layer3.0.shortcut.")));
        assert!(
            b.contains(&"layer2.0.shortcut.0.weight".to_string())
                && b.contains(&"layer3.0.shortcut.1.running_mean".to_string())
        );
    }

    /// Every variable of `name` built from each of `seeds`, concatenated per variable.
    fn pooled_over_seeds(name: &str, shortcut: Shortcut, seeds: u64) -> std::collections::BTreeMap<String, Tensor> {
        let mut pooled: std::collections::BTreeMap<String, Vec<Tensor>> = Default::default();
        for seed in 0..seeds {
            tch::manual_seed(seed as i64);
            for (var, t) in build(name, shortcut).vs.variables() {
                pooled.entry(var).or_default().push(t.detach().flatten(0, -1));
            }
        }
        pooled.into_iter().map(|(var, ts)| (var, Tensor::cat(&ts, 0))).collect()
    }

    #[test]
    fn initialisation_is_the_papers_he_normal_with_batchnorm_ones_and_pytorchs_linear() {
        // 16 seeds pooled per variable: the smallest conv (a 16->16 1x1 shortcut, 256 weights)
        // then has 4,096 samples.
        let seeds = 16;
        for (name, shortcut) in [
            ("plain-56", Shortcut::A),
            ("resnet-56", Shortcut::A),
            ("resnet-20", Shortcut::B),
            ("resnet-20", Shortcut::C),
        ] {
            let shapes: std::collections::BTreeMap<String, Vec<i64>> =
                build(name, shortcut).vs.variables().into_iter().map(|(n, t)| (n, t.size())).collect();
            let pooled = pooled_over_seeds(name, shortcut, seeds);
            let (mut convs, mut bns) = (0, 0);
            for (var, values) in &pooled {
                let shape = &shapes[var];
                let stat = |t: &Tensor| (t.mean(Dtype::Double).double_value(&[]), t.std(true).double_value(&[]));
                if shape.len() == 4 {
                    // He et al. (2015): std sqrt(2 / fan_out), fan_out = out channels x kernel area.
                    let fan_out = (shape[0] * shape[2] * shape[3]) as f64;
                    let expected = (2.0 / fan_out).sqrt();
                    let (mean, std) = stat(values);
                    // Other tests draw from libtorch's global generator concurrently, so the pooled
                    // values differ between runs. About 180 statistics are checked, so each bound is
                    // 5.5 standard errors (a false alarm about once in 100,000 runs): of a sample
                    // std (relative 1/sqrt(2n)), at least 3%, and of a mean (std / sqrt(n)).
                    let tolerance = (5.5 / (2.0 * values.numel() as f64).sqrt()).max(0.03);
                    assert!(
                        (std / expected - 1.0).abs() < tolerance,
                        "{name} {shortcut} {var}: std {std} vs {expected} (tolerance {tolerance})"
                    );
                    let mean_tolerance = 5.5 * expected / (values.numel() as f64).sqrt();
                    assert!(mean.abs() < mean_tolerance, "{name} {shortcut} {var}: mean {mean}");
                    convs += 1;
                } else if var.ends_with("bn1.weight") || var.ends_with("bn2.weight") || var.ends_with(".1.weight") {
                    assert_eq!(values.eq(1.0).all().int64_value(&[]), 1, "{name} {var} is not all ones");
                    bns += 1;
                } else if var.ends_with("running_var") {
                    assert_eq!(values.eq(1.0).all().int64_value(&[]), 1, "{name} {var}");
                } else if var.starts_with("linear.") {
                    // nn.Linear's default: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), std bound/sqrt(3).
                    let bound = 1.0 / 64f64.sqrt();
                    let (mean, std) = stat(values);
                    let max = values.abs().max().double_value(&[]);
                    assert!(max <= bound, "{var}: |value| {max} above the bound {bound}");
                    let n = values.numel() as f64;
                    let expected_std = bound / 3f64.sqrt();
                    // The bias has only 10 values per seed (160 pooled), so both bounds are 5.5
                    // standard errors: a uniform's sample std has relative error sqrt(0.8 / 4n)
                    // (kurtosis 1.8), its mean std / sqrt(n).
                    let std_tolerance = 5.5 * (0.8 / (4.0 * n)).sqrt();
                    assert!((std / expected_std - 1.0).abs() < std_tolerance, "{var}: std {std}");
                    assert!(mean.abs() < 5.5 * expected_std / n.sqrt(), "{var}: mean {mean}");
                } else {
                    // BN biases and running means start at zero.
                    assert_eq!(values.abs().max().double_value(&[]), 0.0, "{name} {var} is not all zeros");
                }
            }
            let expected_convs = match (name, shortcut) {
                ("resnet-20", Shortcut::B) => 19 + 2,
                ("resnet-20", Shortcut::C) => 19 + 9,
                _ => 55,
            };
            assert_eq!(convs, expected_convs, "{name} {shortcut}: convolutions checked");
            assert_eq!(bns, expected_convs, "{name} {shortcut}: one BN per convolution");
        }
    }
}
