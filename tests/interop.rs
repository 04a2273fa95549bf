//! Interop with torchvision: option-B ImageNet nets saved by reslab load into
//! `torchvision.models.resnetN` with `strict=True` and (v1.5 placement for bottlenecks) give the
//! same logits. Uses the project's Python environment (.venv, torch 2.13.0, torchvision 0.28.0).

use reslab::model::{weights, BottleneckStride, Model, ModelSpec};
use std::path::Path;
use std::process::Command;
use tch::{Device, Kind, Tensor};

fn check(name: &str, arch: &str, stride: BottleneckStride) {
    let dir = tempfile::tempdir().unwrap();
    tch::manual_seed(7);
    let mut spec: ModelSpec = name.parse().unwrap();
    spec.bottleneck_stride = stride;
    spec.num_classes = Some(100);
    let model = Model::new(&spec, Device::Cpu).unwrap();
    // A few training-mode passes give the BN running statistics non-trivial values.
    for _ in 0..3 {
        let _ = model.forward_t(&(Tensor::randn([4, 3, 64, 64], (Kind::Float, Device::Cpu)) * 2.0 + 0.5), true);
    }
    let input = Tensor::randn([2, 3, 96, 96], (Kind::Float, Device::Cpu));
    let logits = tch::no_grad(|| model.forward_t(&input, false));
    let path = |f: &str| dir.path().join(f);
    weights::save(&model.vs, 3, &weights::WeightsMetadata::untrained(&model), &path("weights.safetensors")).unwrap();
    Tensor::write_safetensors(&[("input", &input)], path("input.safetensors")).unwrap();
    Tensor::write_safetensors(&[("logits", &logits)], path("logits.safetensors")).unwrap();

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/python/torchvision_check.py"))
        .arg(arch)
        .args(["weights.safetensors", "input.safetensors", "logits.safetensors"].map(path))
        .output()
        .expect("the project's Python (.venv/bin/python; run scripts/setup.sh)");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{name} vs torchvision {arch}: {text}");
    assert!(text.contains("strict=True"), "{text}");
}

#[test]
fn resnet34_loads_into_torchvision_strictly_with_the_same_logits() {
    check("resnet-34", "resnet34", BottleneckStride::Reduce);
}

#[test]
fn resnet50_v1_5_loads_into_torchvision_strictly_with_the_same_logits() {
    check("resnet-50", "resnet50", BottleneckStride::Spatial);
}

#[test]
fn resnext50_loads_into_torchvision_strictly_with_the_same_logits() {
    check("resnext-50-32x4d", "resnext50_32x4d", BottleneckStride::Spatial);
}
