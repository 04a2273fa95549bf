//! Evaluate a pretrained checkpoint: a third-party CIFAR-10 resnet-20 (akamaster's PyTorch
//! reproduction, in ../shared/data/pretrained) loaded by its PyTorch tensor names, with BN folded
//! into the convolutions, on a CIFAR-10 test set.
//!
//!     cargo run --release --example evaluate_pretrained -- WEIGHTS.safetensors [CIFAR-10]
//!
//! CIFAR-10 is the binary version (a folder or the .tar.gz); default: the sample built in. These
//! weights were trained with torchvision's normalisation, not the paper's per-pixel mean.

use reslab::data::{DataConfig, DataSource, Normalization};
use reslab::model::Precision;
use reslab::train::evaluate::evaluate_weights;
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(weights) = args.next().map(PathBuf::from) else {
        anyhow::bail!("usage: evaluate_pretrained WEIGHTS.safetensors [CIFAR-10]");
    };
    let source: DataSource = args.next().as_deref().unwrap_or("embedded").parse()?;
    let data = DataConfig { normalization: Normalization::Imagenet, ..DataConfig::new(source) };
    let model = "resnet-20".parse()?;
    let result = evaluate_weights(&model, &weights, &data, 0, Precision::Fp32, Default::default())?;
    println!("{}: test error {:.2}% on {} images", result.spec, result.error, result.images);
    Ok(())
}
