//! Train one network and print how it ended: a residual net of 20 layers on the CIFAR-10 sample
//! built into reslab, for 200 iterations (about a minute on two cores).
//!
//!     cargo run --release --example train_one
//!
//! The run directory (`results/example-train-one`) holds what `reslab train` writes:
//! config.toml, metrics.csv, checkpoints, the final weights and summary.toml. Run it again and it
//! finds the run complete; stop it with Ctrl-C and it resumes from its checkpoint.

use reslab::data::{DataConfig, DataSource};
use reslab::run::config::TrainOptions;
use reslab::train::{train, RunRequest};

fn main() -> anyhow::Result<()> {
    let model = "resnet-20".parse()?;
    let data = DataConfig::new(DataSource::Embedded);
    // The paper's protocol (SGD 0.1, momentum 0.9, weight decay 1e-4, batch 128, the learning
    // rate divided by 10 at 1/2 and 3/4 of the run), shortened.
    let options = TrainOptions { iters: 200, eval_every: Some(50), ..TrainOptions::default() };
    let run = RunRequest::new(model, data, options).in_dir("results/example-train-one").resolve()?;
    println!("precision: {}", run.precision_note().unwrap_or("as the run directory has it"));
    let summary = train(&run, "resnet-20")?;
    println!(
        "{}: {} iterations, final training error {:.2}%, test error {:.2}%, in {}",
        summary.model,
        summary.iters_done,
        summary.final_train_err,
        summary.final_test_err,
        run.dir().path.display()
    );
    Ok(())
}
