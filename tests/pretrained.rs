//! The architecture is exactly the paper's: third-party pretrained CIFAR ResNets (trained with
//! PyTorch on the original CIFAR-10) give the test errors their README lists on the shared archive.

mod common;
use common::*;

/// (depth, weights file, test error % on the shared archive, from ../shared/data/pretrained/README.md)
const PRETRAINED: [(u32, &str, f64); 4] = [
    (20, "resnet20-12fca82f.safetensors", 18.97),
    (32, "resnet32-d509ac18.safetensors", 17.44),
    (44, "resnet44-014dd654.safetensors", 17.33),
    (56, "resnet56-4bfd9763.safetensors", 16.80),
];

#[test]
fn pretrained_resnets_reproduce_their_published_test_errors() {
    let archive = cifar_archive();
    for (depth, file, expected) in PRETRAINED {
        let weights = shared_data().join("pretrained").join(file);
        let model = format!("resnet-{depth}");
        let output = reslab(&[
            "eval",
            "--model",
            &model,
            "--weights",
            weights.to_str().unwrap(),
            "--data",
            archive.to_str().unwrap(),
            "--normalization",
            "imagenet",
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        let out = stdout(&output);
        let error: f64 = out
            .split("test error ")
            .nth(1)
            .and_then(|rest| rest.split('%').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no test error in {out:?}"));
        assert!(out.contains("on 10000 images"), "{out}");
        assert!((error - expected).abs() <= 0.05, "{model}: {error}% vs the published {expected}%");
    }
}

#[test]
fn weights_of_another_depth_are_refused_by_name() {
    let weights = shared_data().join("pretrained").join(PRETRAINED[0].1);
    let output = reslab(&["eval", "--model", "resnet-32", "--weights", weights.to_str().unwrap()]);
    assert_clean_error(&output, &["resnet20-12fca82f.safetensors", "missing"]);
}
