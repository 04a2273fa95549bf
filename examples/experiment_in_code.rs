//! An experiment built in code rather than read from a file: plain-8 against resnet-8 on the
//! embedded sample, two seeds each, with the degradation claim checked, then the study's
//! tables, charts and report.html, as `reslab reproduce` makes them.
//!
//!     cargo run --release --example experiment_in_code
//!
//! Every field is the experiment file's (see docs/experiments.md); `Experiment::load` reads the
//! same from TOML.

use reslab::data::DataSource;
use reslab::experiment::layout;
use reslab::experiment::overrides::Overrides;
use reslab::experiment::runner::{self, Parallelism};
use reslab::experiment::spec::{ClaimTime, Expectation, Prediction, PresetSpec, RunEntry, Seeds};
use reslab::experiment::{Experiment, Preset};
use std::path::Path;

fn main() -> anyhow::Result<()> {
    let run = |model: &str| RunEntry { model: model.into(), ..RunEntry::default() };
    let smoke = PresetSpec { data: Some(DataSource::Embedded), iters: 60, eval_every: 20, ..PresetSpec::default() };
    let experiment = Experiment {
        name: "plain-vs-resnet-8".into(),
        title: "plain-8 and resnet-8 on the embedded sample".into(),
        runs: vec![run("plain-8"), run("resnet-8")],
        presets: [(Preset::Smoke.name().to_string(), smoke)].into(),
        seeds: Some(Seeds::Count(2)),
        expect: vec![Expectation {
            prediction: Prediction::HigherTrainError { worse: "plain-8".into(), better: "resnet-8".into() },
            claim: Some("the plain net trains no better than the residual one".into()),
            source: None,
            at: ClaimTime::End,
            point: Default::default(),
        }],
        ..Experiment::default()
    };
    experiment.validate()?;
    let out = Path::new("results/example-experiment-in-code");
    let parallelism = Parallelism { jobs: layout::default_jobs() };
    let report = runner::run(&experiment, Preset::Smoke, &Overrides::default(), parallelism, out)?;
    print!("{}", report.text(&experiment));
    Ok(())
}
