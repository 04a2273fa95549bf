//! Property tests ("fuzzing") of the parsers that read user files: CIFAR-10 batch files and
//! archives, experiment files and run configurations. Whatever the bytes, they return a value or
//! one clear error line; they never panic. `PROPTEST_CASES=100000 cargo test --release --test fuzz`
//! runs them longer.

use proptest::prelude::*;
use reslab::data::cifar::{Cifar10, Records, RECORD_BYTES};
use reslab::experiment::Experiment;
use reslab::run::RunConfig;
use std::path::Path;

const FIG1: &str = include_str!("../experiments/fig1.toml");
const ABC: &str = include_str!("../experiments/abc.toml");

fn one_line(e: &anyhow::Error) -> bool {
    !format!("{e:#}").contains('\n')
}

/// A valid run configuration, as `reslab train` writes it.
fn config_text() -> String {
    let config = reslab::experiment::plan::plan(
        &Experiment::load("fig1").unwrap(),
        reslab::experiment::Preset::Demo,
        &Default::default(),
        std::path::Path::new("no-such-dir"),
    )
    .unwrap()
    .remove(0);
    config.config().to_toml()
}

/// `text` with bytes replaced at a few positions.
fn mutate(text: &str, edits: &[(usize, u8)]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for &(at, byte) in edits {
        let at = at % bytes.len();
        bytes[at] = byte;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #[test]
    fn batch_files_parse_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..4 * RECORD_BYTES)) {
        match Records::parse("x.bin", &bytes) {
            Ok(records) => {
                prop_assert!(!bytes.is_empty() && bytes.len() % RECORD_BYTES == 0);
                prop_assert!(records.labels.iter().all(|&l| l < 10));
                prop_assert_eq!(records.to_bytes(), bytes);
            }
            Err(e) => prop_assert!(one_line(&e)),
        }
    }

    #[test]
    fn records_with_valid_labels_round_trip(labels in proptest::collection::vec(0u8..10, 1..5), fill in any::<u8>()) {
        let bytes: Vec<u8> = labels.iter().flat_map(|&l| std::iter::once(l).chain(std::iter::repeat_n(fill, RECORD_BYTES - 1))).collect();
        let records = Records::parse("x.bin", &bytes).unwrap();
        prop_assert_eq!(records.labels, labels);
    }

    #[test]
    fn archives_load_or_fail_cleanly(cut in 0usize..200_000, edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4)) {
        let sample = reslab::data::cifar::EMBEDDED_SAMPLE;
        let mut bytes = sample[..cut.min(sample.len())].to_vec();
        for (at, byte) in edits {
            if !bytes.is_empty() {
                let at = at % bytes.len();
                bytes[at] = byte;
            }
        }
        if let Err(e) = Cifar10::from_tar_gz("a.tar.gz", &bytes) {
            prop_assert!(one_line(&e), "{e:#}");
        }
    }

    #[test]
    fn experiment_files_parse_or_fail_cleanly(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), abc in any::<bool>()) {
        let text = mutate(if abc { ABC } else { FIG1 }, &edits);
        if let Err(e) = Experiment::parse(&text, "experiment file f.toml") {
            prop_assert!(one_line(&e), "{e:#}");
        }
    }

    #[test]
    fn arbitrary_text_is_never_an_experiment_that_panics(text in "\\PC{0,300}") {
        if let Err(e) = Experiment::parse(&text, "f.toml") {
            prop_assert!(one_line(&e));
        }
    }

    #[test]
    fn run_configs_parse_or_fail_cleanly(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let text = mutate(&config_text(), &edits);
        match RunConfig::from_toml(&text, Path::new("config.toml")) {
            Ok(config) => prop_assert!(config.validate().is_ok()),
            Err(e) => prop_assert!(one_line(&e), "{e:#}"),
        }
    }
}
