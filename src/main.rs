//! The `reslab` command line: parses arguments and hands each command to its stage.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use reslab::data::sample::make_sample;
use reslab::data::{Cifar10, DataSource, EvalSet, Normalization, Prepared};
use reslab::experiment::plan::Overrides;
use reslab::experiment::{runner, Experiment};
use reslab::model::{weights, Model, ModelSpec, Shortcut};
use reslab::train::config::{DataConfig, OptimConfig, RunConfig, ScheduleConfig};
use reslab::train::trainer::set_threads;
use reslab::train::{evaluate, train, Preset};
use std::path::PathBuf;
use tch::Device;

#[derive(Parser)]
#[command(
    name = "reslab",
    version,
    about = "Plain vs residual networks: He et al. (2015) on tch-rs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reproduce a figure or table of the paper: `fig1` (plain-20 vs plain-56), or an experiment file.
    Reproduce(ReproduceArgs),
    /// Train one network and write metrics.csv, config.toml and the final weights to --out.
    Train(TrainArgs),
    /// Print the test error of a model's weights (safetensors).
    Eval(EvalArgs),
    /// List the model zoo with parameter counts and multiply-accumulates.
    Models {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Data utilities.
    #[command(subcommand)]
    Data(DataCommand),
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Csv,
}

#[derive(clap::Args)]
struct ReproduceArgs {
    /// A built-in experiment (fig1) or the path of an experiment file (TOML).
    experiment: String,
    #[arg(long, value_enum, default_value_t = Preset::Demo)]
    preset: Preset,
    /// CIFAR-10 binary version (folder or .tar.gz); default: the preset's (the embedded sample for demo).
    #[arg(long)]
    data: Option<DataSource>,
    /// Output folder; default results/<experiment>-<preset>.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Override the preset's number of iterations (the schedule keeps its shape).
    #[arg(long)]
    iters: Option<usize>,
    #[arg(long)]
    eval_every: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// CPU threads; 0: one per core.
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Re-run the configuration of an earlier run (its config.toml); other training options are then not allowed.
    #[arg(long, conflicts_with_all = ["model", "shortcut", "data", "iters", "lr", "lr_steps", "batch_size", "eval_every", "seed", "threads", "normalization", "eval_set", "no_augment"])]
    config: Option<PathBuf>,
    /// plain-N or resnet-N, N = 6n+2.
    #[arg(long, required_unless_present = "config")]
    model: Option<ModelSpec>,
    #[arg(long, value_enum)]
    shortcut: Option<Shortcut>,
    /// CIFAR-10 binary version (folder or .tar.gz), or `embedded` for the built-in sample.
    #[arg(long, default_value = "embedded")]
    data: DataSource,
    /// Iterations (mini-batches); the paper's 64k by default.
    #[arg(long, default_value_t = 64_000)]
    iters: usize,
    #[arg(long, default_value_t = 0.1)]
    lr: f64,
    /// Iterations at which the learning rate is divided by 10; default 1/2 and 3/4 of --iters.
    #[arg(long, value_delimiter = ',')]
    lr_steps: Option<Vec<usize>>,
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Evaluate and write a metrics row every this many iterations; default iters/64.
    #[arg(long)]
    eval_every: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// CPU threads; 0: one per core.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[arg(long, value_enum, default_value_t = Normalization::PixelMean)]
    normalization: Normalization,
    /// `holdout`: the paper's 45k/5k split (evaluate on the last tenth of the training set).
    #[arg(long, value_enum, default_value_t = EvalSet::Test)]
    eval_set: EvalSet,
    /// Train without padding, cropping and flipping.
    #[arg(long)]
    no_augment: bool,
    /// Run directory; default results/train-<model>.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(clap::Args)]
struct EvalArgs {
    #[arg(long)]
    model: ModelSpec,
    #[arg(long, value_enum)]
    shortcut: Option<Shortcut>,
    /// safetensors file with PyTorch-style names (a run's model.safetensors, or the CIFAR reproductions').
    #[arg(long)]
    weights: PathBuf,
    #[arg(long, default_value = "embedded")]
    data: DataSource,
    /// `imagenet` for the public pretrained CIFAR ResNets.
    #[arg(long, value_enum, default_value_t = Normalization::PixelMean)]
    normalization: Normalization,
    #[arg(long, value_enum, default_value_t = EvalSet::Test)]
    eval_set: EvalSet,
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Write a small balanced sample of CIFAR-10 in the binary layout (how data/cifar10-sample.tar.gz was made).
    Sample {
        #[arg(long)]
        from: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 250)]
        train_per_class: usize,
        #[arg(long, default_value_t = 50)]
        test_per_class: usize,
    },
}

fn main() {
    // A panic is a bug; the user still gets one line, not a trace.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        let first_line = message.lines().next().unwrap_or_default();
        eprintln!(
            "error: internal error: {first_line} (this is a bug in reslab; please report it)"
        );
    }));
    let cli = Cli::parse();
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
        Err(_) => std::process::exit(101),
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Reproduce(args) => reproduce(args),
        Command::Train(args) => train_command(args),
        Command::Eval(args) => eval(args),
        Command::Models { format } => models(format),
        Command::Data(DataCommand::Sample {
            from,
            out,
            train_per_class,
            test_per_class,
        }) => {
            let data = Cifar10::from_path(&from)?;
            make_sample(&data, train_per_class, test_per_class, &out)?;
            println!("wrote {}", out.display());
            Ok(())
        }
    }
}

fn reproduce(args: ReproduceArgs) -> Result<()> {
    let experiment = Experiment::load(&args.experiment)?;
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from(format!(
            "results/{}-{}",
            experiment.name,
            args.preset.name()
        ))
    });
    let overrides = Overrides {
        data: args.data,
        iters: args.iters,
        eval_every: args.eval_every,
        seed: args.seed,
        threads: args.threads,
    };
    let report = runner::run(&experiment, args.preset, &overrides, &out)?;
    println!("\n{}: {}", experiment.name, experiment.title);
    println!(
        "{:<12} {:>16} {:>16} {:>16}",
        "run", "final train err", "final test err", "mean train err"
    );
    for r in &report.results {
        let s = &r.summary;
        println!(
            "{:<12} {:>15.2}% {:>15.2}% {:>15.2}%",
            r.name, s.final_train_err, s.final_test_err, s.mean_train_err
        );
    }
    for check in &report.checks {
        println!("{}", check.text);
    }
    for file in &report.files {
        println!("wrote {}", file.display());
    }
    Ok(())
}

fn train_command(args: TrainArgs) -> Result<()> {
    let config = match &args.config {
        Some(path) => RunConfig::load(path)?,
        None => {
            let mut model = args.model.clone().context("--model is required")?;
            if let Some(shortcut) = args.shortcut {
                model = model.with_shortcut(shortcut);
            }
            let eval_every = args
                .eval_every
                .unwrap_or(args.iters.div_ceil(64))
                .min(args.iters.max(1));
            let mut schedule = ScheduleConfig::paper_shape(args.iters, eval_every);
            if let Some(steps) = args.lr_steps.clone() {
                schedule.lr_steps = steps;
            }
            let data = DataConfig {
                normalization: args.normalization,
                eval_set: args.eval_set,
                augment: !args.no_augment,
                ..DataConfig::new(args.data.clone())
            };
            let optim = OptimConfig {
                lr: args.lr,
                batch_size: args.batch_size,
                ..OptimConfig::default()
            };
            RunConfig {
                model,
                data,
                optim,
                schedule,
                seed: args.seed,
                threads: args.threads,
            }
        }
    };
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("results/train-{}", config.model.name())));
    let summary = train(&config, &out, &config.model.name())?;
    println!(
        "{}: {} iterations, final train error {:.2}%, test error {:.2}%, {:.0} img/s; wrote {}",
        summary.model,
        summary.iters_done,
        summary.final_train_err,
        summary.final_test_err,
        summary.mean_img_per_s,
        out.display()
    );
    Ok(())
}

fn eval(args: EvalArgs) -> Result<()> {
    set_threads(args.threads);
    let spec = match args.shortcut {
        Some(shortcut) => args.model.with_shortcut(shortcut),
        None => args.model,
    };
    let device = Device::cuda_if_available();
    let mut model = Model::new(&spec, device)?;
    weights::load(&mut model.vs, &args.weights)?;
    let data = Cifar10::load(&args.data)?;
    let prepared = Prepared::new(&data, args.normalization, args.eval_set, device)?;
    let error = evaluate(&model, &prepared.eval_images, &prepared.eval_labels);
    let n = prepared.eval_labels.size()[0];
    println!(
        "{spec}: test error {error:.2}% on {n} images of {} ({})",
        args.data,
        args.weights.display()
    );
    Ok(())
}

fn models(format: Format) -> Result<()> {
    let rows: Vec<[String; 6]> = ModelSpec::zoo()
        .iter()
        .map(|spec| -> Result<[String; 6]> {
            let model = Model::new(spec, Device::Cpu)?;
            let shortcut = match spec.kind {
                reslab::model::Kind::Plain => "-".to_string(),
                reslab::model::Kind::Residual => spec.shortcut.to_string(),
            };
            Ok([
                spec.family.to_string(),
                spec.kind.to_string(),
                spec.depth.to_string(),
                shortcut,
                model.num_params().to_string(),
                model.macs().to_string(),
            ])
        })
        .collect::<Result<_>>()?;
    let header = ["family", "kind", "depth", "shortcut", "params", "macs"];
    match format {
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(std::io::stdout());
            writer.write_record(header)?;
            for row in &rows {
                writer.write_record(row)?;
            }
            writer.flush()?;
        }
        Format::Table => {
            println!(
                "{:<8} {:<7} {:>6} {:>9} {:>12} {:>15}",
                header[0], header[1], header[2], header[3], header[4], header[5]
            );
            for r in &rows {
                println!(
                    "{:<8} {:<7} {:>6} {:>9} {:>12} {:>15}",
                    r[0], r[1], r[2], r[3], r[4], r[5]
                );
            }
        }
    }
    Ok(())
}
