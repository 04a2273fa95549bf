//! The `reslab` command line: parses arguments (the grammar is in `cli.rs`), hands each command
//! to its stage, and prints what comes back.

mod cli;

use anyhow::{Context, Result};
use cli::*;
use reslab::data::download::{self, Checksum};
use reslab::data::sample::make_sample;
use reslab::data::{Cifar10, DataConfig, Dataset};
use reslab::experiment::study::{reproduce, StudyRequest};
use reslab::experiment::{launch, plan, runner, seeds_on_demand, status};
use reslab::model::weights::{self, WeightsMetadata};
use reslab::model::{options::zoo_table, Spelling};
use reslab::report::table;
use reslab::run::config::PrecisionChoice;
use reslab::run::RunDir;
use reslab::tracking::mlflow::OneRun;
use reslab::train::distributed::World;
use reslab::train::evaluate::evaluate_weights;
use reslab::train::{auto_precision, bench, probe};
use reslab::train::{train_distributed, train_recording, Recording, RunRequest, RunSource};
use reslab::util::console;
use std::time::Duration;

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
        console::eprint_line(&format!(
            "error: internal error: {first_line} (this is a bug in reslab; please report it)"
        ));
    }));
    // Exceeding a file-size limit is then a write error like a full disk, not a silent kill.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let cli = cli::parse().unwrap_or_else(|e| exit_on_argument_error(e));
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            // One line, whatever a file name or a value from a file contains.
            console::eprint_line(&format!("error: {}", format!("{e:#}").replace('\n', "\\n").replace('\r', "\\r")));
            std::process::exit(1);
        }
        Err(_) => std::process::exit(101),
    }
}

/// Help and version as clap prints them; a bad argument as one line (clap's message, its lines
/// joined, without the usage block) and exit code 2.
fn exit_on_argument_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let text = e.render().to_string();
    let message = text.split("\n\nUsage:").next().unwrap_or_default();
    let message = message.split("\n\nFor more information").next().unwrap_or_default();
    let mut line = String::new();
    for part in message.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !line.is_empty() {
            line += if line.ends_with(':') { " " } else { "; " };
        }
        line += part;
    }
    console::eprint_line(&format!("{line} (see --help)"));
    std::process::exit(2);
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Reproduce(args) => {
            let request = StudyRequest { mlflow: args.mlflow.clone(), ..args.study.request()? };
            let reproduced = reproduce(&request, &args.execution())?;
            print!("{}", reproduced.text);
            reproduced.outcome
        }
        Command::Plan(args) => {
            for study in args.request()?.studies()? {
                print!("{}", study.plan_text()?);
            }
            Ok(())
        }
        Command::Status(args) => {
            let study = args.request()?.study()?;
            let runs = plan::plan(&study.experiment, study.preset, &study.overrides, &study.out)?;
            print!("{}", status::status(&runs, &study.out, study.overrides.threads)?.text(&study.out));
            print!("{}", seeds_on_demand::status_text(&study.experiment, &study.overrides, &runs, &study.out)?);
            Ok(())
        }
        Command::Aggregate(args) => {
            let mut study = StudyRequest { mlflow: args.mlflow.clone(), ..args.study.request()? }.study()?;
            study.experiment.chart = study.experiment.chart.overridden_by(args.y_range, args.y_scale)?;
            let (report, sent) = runner::aggregate_only(&study.experiment, study.preset, &study.overrides, &study.out)?;
            print!("{}", report.text(&study.experiment));
            sent
        }
        Command::Train(args) => train_command(args),
        Command::Launch(args) => launch::launch(
            &std::env::current_exe().context("finding the reslab executable")?,
            &launch::Launch {
                nproc: args.nproc,
                master_port: args.master_port,
                grace: Duration::from_secs(args.grace),
                command: args.command,
            },
        ),
        Command::Eval(args) => {
            let spec = args.model.options(None).apply(args.model.model()?, Spelling::Flags)?;
            let precision = args.precision.for_evaluation();
            let result =
                evaluate_weights(&spec, &args.weights, &args.data.config(), args.threads, precision, args.device)?;
            print!("{}", result.text(&args.data.data, &args.weights));
            Ok(())
        }
        Command::Bench(args) => bench_command(args),
        Command::Export(args) => {
            let (model, metadata) = match &args.run {
                Some(run) => RunDir::new(run).load_model_with_metadata()?,
                None => {
                    let spec = args.model.options(args.classes).apply(args.model.model()?, Spelling::Flags)?;
                    let model = reslab::model::fresh(&spec, args.seed)?;
                    let metadata = WeightsMetadata::untrained(&model);
                    (model, metadata)
                }
            };
            weights::save(&model.vs, 0, &metadata, &args.out)?;
            println!("{}: wrote {} ({} parameters)", model.spec, args.out.display(), model.num_params());
            Ok(())
        }
        Command::Analyze(command) => analyze(command),
        Command::Keys { format } => print_table(format, reslab::run::settings::keys_table(), 5),
        Command::Models { format } => print_table(format, zoo_table()?, 2),
        Command::Data(DataCommand::Fetch { url, md5, sha256, dir }) => {
            let checksum = Checksum::given_or_official(md5.as_deref(), sha256.as_deref())?;
            let folder = download::fetch(&url, &checksum, &dir)?;
            println!("CIFAR-10 is in {}; use it with --data {}", folder.display(), folder.display());
            Ok(())
        }
        Command::Data(DataCommand::Sample { from, out, train_per_class, test_per_class }) => {
            make_sample(&Cifar10::from_path(&from)?, train_per_class, test_per_class, &out)?;
            println!("wrote {}", out.display());
            Ok(())
        }
    }
}

/// `keys` and `models`: a table as CSV, or aligned (its first `left` columns to the left).
fn print_table(format: Format, (header, rows): (Vec<&str>, Vec<Vec<String>>), left: usize) -> Result<()> {
    match format {
        Format::Csv => print!("{}", table::csv_text(&header, &rows)?),
        Format::Table => print!("{}", table::aligned_text(&header, &rows, left)),
    }
    Ok(())
}

fn train_command(args: TrainArgs) -> Result<()> {
    let world = if args.distributed { Some(World::from_env()?) } else { None };
    let source = match (&args.resume, &args.config) {
        (Some(dir), _) => RunSource::Resume(dir.clone()),
        (None, Some(path)) => RunSource::ConfigFile(path.clone()),
        (None, None) => RunSource::New {
            model: args.model.options(None).apply(args.model.model()?, Spelling::Flags)?,
            data: DataConfig { augment: !args.run.no_augment, ..args.data.config() },
            options: args.run.options()?,
        },
    };
    let settings = args
        .set
        .iter()
        .map(|axis| {
            axis.single().with_context(|| {
                format!(
                    "--set {}: train takes one value per key; expected KEY=VALUE (a grid of values is for reproduce)",
                    axis.arg_text()
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let request = RunRequest {
        out: args.out.clone(),
        settings,
        log_grads: args.log_grads,
        world_size: world.as_ref().map(|w| w.size),
        device: args.device,
        ..RunRequest::from_source(source)
    };
    let run = request.resolve()?;
    if world.as_ref().is_none_or(|w| w.rank == 0) {
        for (what, note) in [("precision", run.precision_note()), ("kernels", run.kernels_note())] {
            if let Some(note) = note {
                println!("{what}: {note}");
            }
        }
    }
    let recording = Recording { dump_steps: args.dump_steps };
    let label = run.config().model.name();
    let writes_the_directory = world.as_ref().is_none_or(|w| w.rank == 0);
    let _mirrored = match &args.mlflow {
        Some(uri) if writes_the_directory => {
            Some(OneRun::follow(uri, &run.dir().path, &args.mlflow_experiment, &label, run.config().seed)?)
        }
        _ => None,
    };
    let summary = match world {
        Some(world) => {
            let timeout = Duration::from_secs(args.dist_timeout);
            match train_distributed(&run, &label, &recording, &world, timeout)? {
                Some(summary) => summary,
                None => return Ok(()),
            }
        }
        None => train_recording(&run, &label, &recording)?,
    };
    println!(
        "{}: {} iterations, final train error {:.2}%, test error {:.2}%, {:.0} img/s; wrote {}",
        summary.model,
        summary.iters_done,
        summary.final_train_err,
        summary.final_test_err,
        summary.mean_img_per_s,
        run.dir().path.display()
    );
    Ok(())
}

fn bench_command(args: BenchArgs) -> Result<()> {
    let device = args.device.resolve()?;
    let choice = match args.mode {
        probe::Mode::Eval => auto_precision::Choice::evaluation(args.precision.for_evaluation()),
        probe::Mode::Step | probe::Mode::Train => auto_precision::training_choice(
            args.precision,
            args.kernels,
            &args.model,
            args.batch_size as usize,
            args.threads,
            !args.contiguous,
            device,
        )?,
    };
    println!("precision: {}", choice.precision_note);
    println!("kernels: {}", choice.kernels_note);
    let precision = choice.precision;
    let bench = probe::Bench {
        spec: args.model,
        mode: args.mode,
        precision,
        kernels: choice.kernels,
        channels_last: !args.contiguous,
        threads: args.threads,
        device,
        batch: args.batch_size,
        iters: args.iters,
        warmup: args.warmup,
        data: args.data,
        augment: !args.no_augment,
    };
    let reference = if args.reference {
        let precision = match args.reference_precision {
            None | Some(PrecisionChoice::Auto) => precision,
            Some(choice) => choice.for_evaluation(),
        };
        Some(bench::Reference::locate(&bench, args.reference_script, None, precision)?)
    } else {
        None
    };
    bench::run(&bench, reference.as_ref(), args.rounds, args.peak_gflops, args.profile.as_deref())
}

fn analyze(command: AnalyzeCommand) -> Result<()> {
    use reslab::analysis::{grad_norms, landscape, responses, shattering};
    let written = match command {
        AnalyzeCommand::Responses { runs, data, images, out } => {
            let data = data.map(DataConfig::new);
            let (results, written) = responses::analyze(&runs, data.as_ref(), images, &out)?;
            for r in &results {
                println!("{}: {} 3x3 layers, mean response std {:.4}", r.run, r.layers.len(), r.mean_std());
            }
            written
        }
        AnalyzeCommand::GradNorms { runs, out } => {
            let (results, written) = grad_norms::analyze(&runs, &out)?;
            for r in &results {
                let (layers, points) = (r.profile(r.iterations()[0]).len(), r.iterations().len());
                println!("{}: {layers} layers at {points} iterations", r.run);
            }
            written
        }
        AnalyzeCommand::Landscape {
            runs,
            grid,
            span,
            images,
            dims,
            seed,
            directions,
            path_points,
            data,
            threads,
            workers,
            out,
        } => {
            let dims = landscape::Dims::from_count(dims)?;
            let settings =
                landscape::LandscapeSettings { grid, span, images, dims, seed, path_points, threads, workers };
            let data = data.map(DataConfig::new);
            let (results, written) =
                landscape::analyze(&runs, &settings, data.as_ref(), directions.as_deref(), &out, "landscape")?;
            for r in &results {
                println!("{}", r.line());
            }
            written
        }
        AnalyzeCommand::Shattering { runs, depths, inits, toy_depths, toy_inits, data, seed, out } => {
            let settings = shattering::ShatteringSettings {
                toy_depths,
                toy_inits,
                cifar_depths: depths,
                cifar_inits: inits,
                runs,
                seed,
            };
            let dataset = Dataset::open(&DataConfig::new(data), tch::Device::Cpu)?;
            let (toy, cifar, written) = shattering::analyze(&settings, &dataset, &out)?;
            for r in &toy {
                println!("toy {} L={}: r(1) = {:.3}", r.label(), r.depth, r.correlation.neighbours());
            }
            for r in &cifar {
                println!("{} {}: r(1) = {:.3}", r.model, r.state, r.correlation.neighbours());
            }
            written
        }
    };
    for file in &written.files {
        println!("wrote {}", file.display());
    }
    Ok(())
}
