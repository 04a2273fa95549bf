//! The zoo: every network `reslab models` lists, as descriptions (building them is
//! [`Model::new`](super::Model::new)'s).

use super::spec::{BlockVariant, Family, Groups, Kind, ModelSpec, Shortcut, CIFAR_DEPTHS, IMAGENET_DEPTHS};

/// Every model `reslab models` lists: plain and residual nets at the paper's depths, each
/// residual net with every shortcut option (the highway gate too); the block variants of He
/// et al. 2016 (110, 164 and 1001 layers); the ResNeXt nets.
pub fn specs() -> Vec<ModelSpec> {
    let mut specs = Vec::new();
    let depths = CIFAR_DEPTHS.iter().map(|&d| (Family::Cifar, d));
    let depths = depths.chain(IMAGENET_DEPTHS.iter().map(|&d| (Family::Imagenet, d)));
    for (family, depth) in depths {
        let plain = ModelSpec::new(family, Kind::Plain, depth).expect("zoo depths are valid");
        let residual = ModelSpec { kind: Kind::Residual, ..plain.clone() };
        specs.push(plain);
        for shortcut in [Shortcut::A, Shortcut::B, Shortcut::C, Shortcut::Highway] {
            specs.push(residual.clone().with_shortcut(shortcut));
        }
    }
    let variant = |depth, block| ModelSpec { block, ..ModelSpec::cifar(Kind::Residual, depth).expect("a CIFAR depth") };
    for block in [BlockVariant::Pre, BlockVariant::BnAfterAdd, BlockVariant::NoReluAfterAdd] {
        specs.push(variant(110, block));
    }
    for depth in [164, 1001] {
        specs.extend([variant(depth, BlockVariant::Post), variant(depth, BlockVariant::Pre)]);
    }
    for (family, depth, cardinality, width) in [
        (Family::Cifar, 29, 8, 64),
        (Family::Cifar, 29, 16, 64),
        (Family::Imagenet, 50, 32, 4),
        (Family::Imagenet, 101, 32, 8),
    ] {
        specs.push(ModelSpec::resnext(family, depth, Groups { cardinality, width }).expect("zoo ResNeXts are valid"));
    }
    specs
}
