//! The `reslab` command line: parses arguments and hands each command to its stage.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use reslab::data::download::{self, Checksum, OFFICIAL_MD5, OFFICIAL_URL};
use reslab::data::folder::{BadImages, TestCrops};
use reslab::data::sample::make_sample;
use reslab::data::{Cifar10, DataConfig, DataSource, EvalSet, Normalization};
use reslab::experiment::plan::Overrides;
use reslab::experiment::spec::SlurmSettings;
use reslab::experiment::{launch, paper, runner, slurm, Experiment};
use reslab::model::{weights, BlockVariant, BottleneckStride, ModelSpec, Shortcut};
use reslab::report::table;
use reslab::run::config::{Preset, RunConfig, TrainOptions};
use reslab::run::RunDir;
use reslab::train::bench;
use reslab::train::distributed::{World, DEFAULT_TIMEOUT};
use reslab::train::evaluate::evaluate_weights;
use reslab::train::runtime::{self, PrecisionChoice};
use reslab::train::{train_distributed, train_recording, Recording};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "reslab", version, about = "Plain vs residual networks: He et al. (2015) on tch-rs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reproduce a figure or table of the paper (fig1, fig6, table6, fig7, abc, abc-imagenet), a
    /// comparison beyond it (shortcuts, blocks, width-vs-paths), all of the
    /// CIFAR-10 ones in one report (paper), or an experiment file.
    Reproduce(ReproduceArgs),
    /// Print every run of a study: its directory, its state and its cost (MACs, estimated hours here).
    Plan(StudyArgs),
    /// Where a study stands: each run's state (and Slurm's, for a submitted study), and a summary.
    Status(StudyArgs),
    /// Write a study's tables, charts and report.html from its run directories as they are.
    Aggregate(StudyArgs),
    /// Train one network and write metrics.csv, config.toml and the final weights to --out.
    Train(TrainArgs),
    /// Train one run on N local processes together (data parallel over Gloo or NCCL): reslab launch --nproc N -- train ...
    Launch(LaunchArgs),
    /// Print the test error of a model's weights (safetensors).
    Eval(EvalArgs),
    /// Write a model's weights as safetensors with PyTorch's names (fresh from a seed, or a run's).
    Export(ExportArgs),
    /// Images per second of a model here (training step, training loop, or evaluation), beside the PyTorch reference.
    Bench(BenchArgs),
    /// Look inside networks: layer responses (Figure 7), recorded gradient norms, shattered gradients.
    #[command(subcommand)]
    Analyze(AnalyzeCommand),
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

/// Which study, at which length, with which seeds: shared by reproduce and plan.
#[derive(clap::Args)]
struct StudyArgs {
    /// A built-in experiment (fig1, fig6, table6, fig7, abc, abc-imagenet, shortcuts, blocks,
    /// width-vs-paths), `paper` (fig1, fig6, table6
    /// and abc in one report) or the path of an experiment file (TOML).
    experiment: String,
    /// Schedule length; default the experiment's shortest (demo for fig1, smoke for fig6, quick for abc).
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    /// Only the runs at these depths (e.g. --depths 20).
    #[arg(long, value_delimiter = ',')]
    depths: Option<Vec<i64>>,
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
    /// Train every run with this one seed instead of the experiment's seeds.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Train every run with seeds 0..N instead of the experiment's seeds.
    #[arg(long, value_name = "N")]
    seeds: Option<u64>,
    /// CPU threads per run; 0: the machine's cores, split between the jobs.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Arithmetic of new runs: bf16 (mixed precision) or fp32; auto: bf16 where it is faster (a CPU with AMX-BF16, a GPU of compute capability 8.0+).
    #[arg(long, value_enum, default_value_t = PrecisionChoice::Auto)]
    precision: PrecisionChoice,
}

impl StudyArgs {
    fn is_paper(&self) -> bool {
        self.experiment == paper::PAPER
    }

    fn load(&self) -> Result<(Experiment, Preset, PathBuf, Overrides)> {
        let experiment = Experiment::load(&self.experiment)?;
        let preset = match self.preset {
            Some(preset) => preset,
            None => experiment.default_preset()?,
        };
        let out = self.out.clone().unwrap_or_else(|| runner::default_out(&experiment.name, preset));
        Ok((experiment, preset, out, self.overrides()))
    }

    /// `paper`: its preset (default smoke) and folder.
    fn load_paper(&self) -> (Preset, PathBuf, Overrides) {
        let preset = self.preset.unwrap_or(Preset::Smoke);
        let out = self.out.clone().unwrap_or_else(|| runner::default_out(paper::PAPER, preset));
        (preset, out, self.overrides())
    }

    fn overrides(&self) -> Overrides {
        Overrides {
            data: self.data.clone(),
            iters: self.iters,
            eval_every: self.eval_every,
            seed: self.seed,
            seeds: self.seeds,
            threads: self.threads,
            precision: self.precision,
            depths: self.depths.clone(),
        }
    }
}

#[derive(clap::Args)]
struct ReproduceArgs {
    #[command(flatten)]
    study: StudyArgs,
    /// Runs at a time, each a child process with the machine's cores split between them; default
    /// one per GPU, or on a CPU one per core (the fastest here: see the README).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    jobs: Option<u64>,
    /// Where the runs run: here, or as a Slurm array job (one task per run) and a job that aggregates after it.
    #[arg(long, value_enum, default_value_t = Backend::Local)]
    backend: Backend,
    #[command(flatten)]
    slurm: SlurmArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Local,
    Slurm,
}

/// `--backend slurm`: each overrides the experiment file's `[slurm]` table.
#[derive(clap::Args)]
struct SlurmArgs {
    /// Slurm partition.
    #[arg(long)]
    partition: Option<String>,
    /// Each task's time limit, as sbatch takes it (04:00:00, 2-00:00:00); a run longer than this requeues itself.
    #[arg(long)]
    time: Option<String>,
    /// CPUs per task (also the run's threads); default 1.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    cpus_per_task: Option<u32>,
    #[arg(long)]
    gpus_per_task: Option<u32>,
    /// Seconds before the time limit at which a task checkpoints and requeues itself; default 120.
    #[arg(long)]
    grace: Option<u32>,
    /// Processes per run (data parallel, started by srun; --batch-size stays the global batch); default 1.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    tasks_per_run: Option<u32>,
    /// A further sbatch option, e.g. --sbatch=--account=proj42 (repeat for more).
    #[arg(long = "sbatch", value_name = "OPTION", allow_hyphen_values = true)]
    sbatch: Vec<String>,
    /// Print the batch scripts; submit nothing.
    #[arg(long)]
    dry_run: bool,
}

impl SlurmArgs {
    fn settings(&self, file: &SlurmSettings) -> SlurmSettings {
        let mut settings = file.clone();
        settings.partition = self.partition.clone().or(settings.partition);
        settings.time = self.time.clone().or(settings.time);
        settings.cpus_per_task = self.cpus_per_task.unwrap_or(settings.cpus_per_task);
        settings.gpus_per_task = self.gpus_per_task.or(settings.gpus_per_task);
        settings.grace_s = self.grace.or(settings.grace_s);
        settings.tasks_per_run = self.tasks_per_run.or(settings.tasks_per_run);
        settings.sbatch.extend(self.sbatch.iter().cloned());
        settings
    }
}

/// Which network: shared by train, eval and export.
#[derive(clap::Args)]
struct ModelArgs {
    /// plain-N or resnet-N: N = 6n+2 for CIFAR (20, 56, 110, ...; 9n+2 bottlenecks: 164, 1001),
    /// 18/34/50/101/152 for ImageNet (prefix cifar- or imagenet- to choose the family explicitly,
    /// e.g. cifar-resnet-50); resnext-29-8x64d, resnext-29-16x64d, resnext-50-32x4d, resnext-101-32x8d.
    #[arg(long)]
    model: Option<ModelSpec>,
    /// Shortcut option of a residual net (A, B, C, or highway); default A for CIFAR, B for ImageNet and bottleneck CIFAR nets.
    #[arg(long, value_enum)]
    shortcut: Option<Shortcut>,
    /// Bottleneck nets: stride on the first 1x1 conv (`reduce`, the paper's) or on the 3x3 (`spatial`, torchvision's v1.5).
    #[arg(long, value_enum)]
    bottleneck_stride: Option<BottleneckStride>,
    /// CIFAR nets: where BN and ReLU sit in each block (He et al. 2016): post (the 2015 paper's),
    /// pre (full pre-activation), bn-after-add, no-relu-after-add.
    #[arg(long, value_enum)]
    block: Option<BlockVariant>,
    /// --shortcut highway: the gates' initial bias (negative: the gate first carries the input).
    #[arg(long, allow_hyphen_values = true)]
    gate_bias: Option<f64>,
}

impl ModelArgs {
    fn spec(&self) -> Result<ModelSpec> {
        let mut spec = self.model.clone().context("--model is required")?;
        if let Some(shortcut) = self.shortcut {
            spec.shortcut = shortcut;
        }
        if let Some(stride) = self.bottleneck_stride {
            spec.bottleneck_stride = stride;
        }
        if let Some(block) = self.block {
            spec.block = block;
        }
        if let Some(bias) = self.gate_bias {
            anyhow::ensure!(
                spec.shortcut == Shortcut::Highway,
                "--gate-bias is for highway shortcuts; expected --shortcut highway with it"
            );
            spec.gate_bias = Some(bias);
        }
        spec.validate().with_context(|| format!("model {spec}"))?;
        Ok(spec)
    }
}

/// Which data and how it is prepared: shared by train and eval.
#[derive(clap::Args)]
struct DataArgs {
    /// CIFAR-10's binary version (cifar-10-batches-bin/, its parent, or the .tar.gz), `embedded`
    /// for the built-in sample, or an image folder (ROOT/train/<class>/*.jpg, ROOT/val/<class>/...).
    #[arg(long, default_value = "embedded")]
    data: DataSource,
    /// `pixel-mean` (the paper's) or `imagenet` (torchvision's; the public pretrained CIFAR ResNets').
    #[arg(long, value_enum, default_value_t = Normalization::PixelMean)]
    normalization: Normalization,
    /// `holdout`: the paper's 45k/5k split (evaluate on the last tenth of the training set).
    #[arg(long, value_enum, default_value_t = EvalSet::Test)]
    eval_set: EvalSet,
    /// Image folders: network input size in pixels (the paper's 224; 64 or 32 train on a CPU).
    #[arg(long, default_value_t = 224)]
    input_size: u32,
    /// Image folders: `skip` unreadable files (counted in a warning) or stop with an `error`.
    #[arg(long, value_enum, default_value_t = BadImages::Skip)]
    bad_images: BadImages,
    /// Image folders: `center` crop, or the paper's `ten-crop` testing.
    #[arg(long, value_enum, default_value_t = TestCrops::Center)]
    test_crops: TestCrops,
}

impl DataArgs {
    fn config(&self) -> DataConfig {
        DataConfig {
            normalization: self.normalization,
            eval_set: self.eval_set,
            input_size: self.input_size,
            bad_images: self.bad_images,
            test_crops: self.test_crops,
            ..DataConfig::new(self.data.clone())
        }
    }
}

/// The options that define a run are not allowed with --config or --resume, which bring their
/// own: `RunOptionArgs` says so as a group; the model and data options, which eval and export
/// share, are named here by their groups (each flattened struct is a clap group of its name).
const MODEL_AND_DATA: [&str; 2] = ["ModelArgs", "DataArgs"];

#[derive(clap::Args)]
struct TrainArgs {
    /// Re-run the configuration of an earlier run (its config.toml); other training options are then not allowed.
    #[arg(long, conflicts_with_all = MODEL_AND_DATA)]
    config: Option<PathBuf>,
    /// Continue the run in DIR from its last checkpoint (the same as re-running its command).
    #[arg(long, value_name = "DIR", conflicts_with_all = MODEL_AND_DATA, conflicts_with_all = ["config", "out"])]
    resume: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    run: RunOptionArgs,
    /// Run directory; default results/train-<model>.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write the initial weights, the first K augmented batches with their losses, and the
    /// weights after step K to DIR/steps/ (for step-for-step comparisons with other implementations).
    #[arg(long, value_name = "K", default_value_t = 0, conflicts_with = "resume")]
    dump_steps: usize,
    /// Every K iterations (and at the first), write every conv and fc layer's gradient norm and
    /// weight norm to DIR/grad_norms.csv; changes nothing in the training.
    #[arg(long, value_name = "K", conflicts_with = "resume")]
    log_grads: Option<usize>,
    /// Be one rank of a data parallel run: rank, world size and rendezvous from the environment
    /// (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT as reslab launch or torchrun set them, or
    /// Slurm's SLURM_PROCID, SLURM_NTASKS, SLURM_JOB_NODELIST under srun). --batch-size is the global batch.
    #[arg(long)]
    distributed: bool,
    /// With --distributed: seconds a rank waits for the others (rendezvous, every collective) before failing.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_TIMEOUT.as_secs(), requires = "distributed")]
    dist_timeout: u64,
}

#[derive(clap::Args)]
struct LaunchArgs {
    /// Processes (ranks) on this machine.
    #[arg(long)]
    nproc: usize,
    /// Port rank 0 listens on (127.0.0.1); default a free one.
    #[arg(long)]
    master_port: Option<u16>,
    /// Seconds the other ranks may take to stop once one has failed, before they are killed.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    grace: u64,
    /// The command every rank runs: train and its options (after --).
    #[arg(last = true, required = true, value_name = "train [OPTIONS]")]
    command: Vec<std::ffi::OsString>,
}

/// Optimiser, schedule and runtime options of `train`.
#[derive(clap::Args)]
#[group(multiple = true, conflicts_with_all = ["config", "resume"])]
struct RunOptionArgs {
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
    /// Train without augmentation.
    #[arg(long)]
    no_augment: bool,
    /// Keep tensors in the default NCHW layout instead of channels-last.
    #[arg(long)]
    contiguous: bool,
    /// bf16 (mixed precision) or fp32; auto: bf16 where it is faster (a CPU with AMX-BF16, a GPU of compute capability 8.0+).
    #[arg(long, value_enum, default_value_t = PrecisionChoice::Auto)]
    precision: PrecisionChoice,
    /// The paper's warm-up for very deep nets: lr 0.01 until the training error is below 80%.
    #[arg(long)]
    warmup: bool,
    /// Write a checkpoint every K iterations and at the end; default at every metrics row.
    #[arg(long, value_name = "K", default_value_t = 0)]
    checkpoint_every: usize,
}

impl RunOptionArgs {
    fn options(&self) -> TrainOptions {
        TrainOptions {
            iters: self.iters,
            lr: self.lr,
            lr_steps: self.lr_steps.clone(),
            batch_size: self.batch_size,
            eval_every: self.eval_every,
            seed: self.seed,
            threads: self.threads,
            channels_last: !self.contiguous,
            precision: self.precision.resolve(runtime::device()).0,
            warmup: self.warmup,
            checkpoint_every: self.checkpoint_every,
            log_grads: 0,
            world_size: 1,
        }
    }
}

#[derive(clap::Args)]
struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// safetensors file with PyTorch-style names (a run's model.safetensors, the CIFAR reproductions', torchvision's).
    #[arg(long)]
    weights: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// The forward passes' arithmetic; fp32 by default, for an exact check of the weights.
    #[arg(long, value_enum, default_value_t = PrecisionChoice::Fp32)]
    precision: PrecisionChoice,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// A zoo model, e.g. resnet-20, plain-56.
    #[arg(long)]
    model: ModelSpec,
    /// step: the training step on a fixed batch; train: the training loop (data, augmentation,
    /// step, metrics); eval: evaluation forward passes (no gradients, BN folded).
    #[arg(long, value_enum, default_value_t = bench::Mode::Step)]
    mode: bench::Mode,
    #[arg(long, value_enum, default_value_t = PrecisionChoice::Auto)]
    precision: PrecisionChoice,
    /// NCHW instead of channels-last.
    #[arg(long)]
    contiguous: bool,
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[arg(long, default_value_t = 128)]
    batch_size: i64,
    /// Timed iterations per round.
    #[arg(long, default_value_t = 30)]
    iters: usize,
    /// Untimed iterations first (oneDNN chooses its kernels on the first).
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Rounds, alternating with the reference; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// --mode train: the data (the reference's pipeline reads the same training images).
    #[arg(long, default_value = "embedded")]
    data: DataSource,
    /// --mode train: without augmentation (to measure its share).
    #[arg(long)]
    no_augment: bool,
    /// Also run the PyTorch reference (its step or pipeline mode) beside each round and print the ratio.
    #[arg(long)]
    reference: bool,
    /// The reference script; default ../shared/bench/torch_reference.py beside the project.
    #[arg(long, value_name = "PATH", requires = "reference")]
    reference_script: Option<PathBuf>,
    /// The reference's precision; default reslab's.
    #[arg(long, value_enum, requires = "reference")]
    reference_precision: Option<PrecisionChoice>,
    /// Print the achieved GFLOP/s as a share of this peak (e.g. 333 for 2 Zen 5 cores in fp32).
    #[arg(long)]
    peak_gflops: Option<f64>,
}

#[derive(clap::Args)]
struct ExportArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Outputs of the classifier (default 10 for CIFAR nets, 1000 for ImageNet nets).
    #[arg(long)]
    classes: Option<i64>,
    /// Fresh weights initialised from this seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Export a run's final weights instead (its config.toml says which model).
    #[arg(long, conflicts_with_all = ["model", "shortcut", "bottleneck_stride", "block", "gate_bias", "classes", "seed"])]
    run: Option<PathBuf>,
    /// The safetensors file to write.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Subcommand)]
enum AnalyzeCommand {
    /// He et al. (2015), Fig. 7: the std of every 3x3 layer's response (after BN, before ReLU or
    /// the addition) of complete runs on the test set: responses.csv and a two-panel chart.
    Responses {
        /// Run directories (complete runs).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Evaluate on this data instead of each run's own (CIFAR-10 binary, `embedded`, or an image folder).
        #[arg(long)]
        data: Option<DataSource>,
        /// Use the first N images of the evaluation set.
        #[arg(long, default_value_t = 10_000)]
        images: usize,
        #[arg(long, default_value = "results/analysis")]
        out: PathBuf,
    },
    /// The gradient norms runs recorded with train --log-grads, against layer depth at points of training.
    GradNorms {
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        #[arg(long, default_value = "results/analysis")]
        out: PathBuf,
    },
    /// Balduzzi et al. (2017): how gradients at neighbouring inputs decorrelate with depth, in their
    /// toy networks and in the CIFAR nets (fresh, and the trained runs given).
    Shattering {
        /// Trained runs to add beside the fresh nets.
        #[arg(long = "run", value_name = "DIR")]
        runs: Vec<PathBuf>,
        /// Depths of the fresh CIFAR nets (plain and residual each).
        #[arg(long, value_delimiter = ',', default_value = "8,20,32,44,56,110")]
        depths: Vec<i64>,
        /// Initialisations averaged per CIFAR net.
        #[arg(long, default_value_t = 4)]
        inits: usize,
        /// Hidden layers of the toy networks.
        #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,6,8,12,16,24,32,50")]
        toy_depths: Vec<usize>,
        /// Initialisations averaged per toy network.
        #[arg(long, default_value_t = 20)]
        toy_inits: usize,
        /// Where the two test images of the line come from.
        #[arg(long, default_value = "embedded")]
        data: DataSource,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value = "results/analysis")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// Download CIFAR-10's binary archive (resumable), verify its checksum, extract it safely.
    Fetch {
        #[arg(long, default_value = OFFICIAL_URL)]
        url: String,
        /// Expected MD5 of the archive (default: the official archive's).
        #[arg(long, conflicts_with = "sha256")]
        md5: Option<String>,
        /// Expected SHA-256 of the archive.
        #[arg(long)]
        sha256: Option<String>,
        /// Where the archive and cifar-10-batches-bin/ go.
        #[arg(long, default_value = "data/cifar10")]
        dir: PathBuf,
    },
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
        eprintln!("error: internal error: {first_line} (this is a bug in reslab; please report it)");
    }));
    // Exceeding a file-size limit is then a write error like a full disk, not a silent kill.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let cli = Cli::parse();
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            // One line, whatever a file name or a value from a file contains.
            eprintln!("error: {}", format!("{e:#}").replace('\n', "\\n").replace('\r', "\\r"));
            std::process::exit(1);
        }
        Err(_) => std::process::exit(101),
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Reproduce(args) => reproduce(args),
        Command::Plan(args) => plan_command(args),
        Command::Status(args) => status_command(args),
        Command::Aggregate(args) => aggregate_command(args),
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
        Command::Eval(args) => eval(args),
        Command::Bench(args) => bench(args),
        Command::Export(args) => export(args),
        Command::Analyze(command) => analyze(command),
        Command::Models { format } => models(format),
        Command::Data(DataCommand::Fetch { url, md5, sha256, dir }) => {
            let checksum = match (md5, sha256) {
                (_, Some(sha256)) => Checksum::sha256(&sha256)?,
                (Some(md5), None) => Checksum::md5(&md5)?,
                (None, None) => Checksum::md5(OFFICIAL_MD5)?,
            };
            let folder = download::fetch(&url, &checksum, &dir)?;
            println!("CIFAR-10 is in {}; use it with --data {}", folder.display(), folder.display());
            Ok(())
        }
        Command::Data(DataCommand::Sample { from, out, train_per_class, test_per_class }) => {
            let data = Cifar10::from_path(&from)?;
            make_sample(&data, train_per_class, test_per_class, &out)?;
            println!("wrote {}", out.display());
            Ok(())
        }
    }
}

fn reproduce(args: ReproduceArgs) -> Result<()> {
    let jobs = args.jobs.map_or_else(runner::default_jobs, |jobs| jobs as usize);
    let parallelism = runner::Parallelism { jobs };
    if args.study.is_paper() {
        if args.backend == Backend::Slurm {
            anyhow::bail!(
                "reproduce paper runs here; on Slurm submit its studies one by one (fig1, fig6, table6, abc) with --backend slurm"
            );
        }
        let (preset, out, overrides) = args.study.load_paper();
        let report = paper::run(preset, &overrides, parallelism, &out)?;
        print!("{}", report.text());
        return report.result();
    }
    let (experiment, preset, out, overrides) = args.study.load()?;
    if args.backend == Backend::Slurm {
        let invocation = slurm::Invocation {
            exe: std::env::current_exe().context("finding the reslab executable")?,
            experiment: slurm::experiment_argument(&args.study.experiment)?,
            preset,
            overrides,
        };
        let settings = args.slurm.settings(&experiment.slurm);
        if let Some(submission) = slurm::reproduce(&experiment, &invocation, &settings, &out, args.slurm.dry_run)? {
            println!(
                "submitted {} runs as array job {}; job {} aggregates the study when it ends.\n\
                 follow them with: reslab status {} --preset {} --out {}   (or squeue -j {})",
                submission.runs.len(),
                submission.array_job,
                submission.aggregate_job,
                args.study.experiment,
                preset.name(),
                out.display(),
                submission.array_job
            );
        }
        return Ok(());
    }
    let report = runner::run(&experiment, preset, &overrides, parallelism, &out)?;
    print!("{}", report.text(&experiment));
    Ok(())
}

fn status_command(args: StudyArgs) -> Result<()> {
    let (experiment, preset, out, overrides) = args.load()?;
    let runs = reslab::experiment::plan::plan(&experiment, preset, &overrides, &out)?;
    let status = reslab::experiment::status::status(&runs, &out, overrides.threads)?;
    print!("{}", status.text(&out));
    Ok(())
}

fn aggregate_command(args: StudyArgs) -> Result<()> {
    let (experiment, preset, out, overrides) = args.load()?;
    let report = runner::aggregate_only(&experiment, preset, &overrides, &out)?;
    print!("{}", report.text(&experiment));
    Ok(())
}

fn plan_command(args: StudyArgs) -> Result<()> {
    let studies = if args.is_paper() {
        let (preset, out, overrides) = args.load_paper();
        let studies = paper::studies(preset)?;
        studies.into_iter().map(|s| (paper::study_out(&out, &s), s, preset, overrides.clone())).collect()
    } else {
        let (experiment, preset, out, overrides) = args.load()?;
        vec![(out, experiment, preset, overrides)]
    };
    for (out, experiment, preset, overrides) in studies {
        let runs = reslab::experiment::plan::plan(&experiment, preset, &overrides, &out)?;
        let costs = reslab::experiment::cost::estimate(&runs, &out, overrides.threads)?;
        println!("{} --preset {}: {}", experiment.name, preset.name(), experiment.title);
        print!("{}", reslab::experiment::cost::text(&costs, &out));
    }
    Ok(())
}

fn train_command(args: TrainArgs) -> Result<()> {
    let world = if args.distributed { Some(World::from_env()?) } else { None };
    let leader = world.as_ref().is_none_or(|w| w.rank == 0);
    let (mut config, out) = match (&args.resume, &args.config) {
        (Some(dir), _) => (RunConfig::load(&RunDir::new(dir).config())?, Some(dir.clone())),
        (None, Some(path)) => (RunConfig::load(path)?, args.out.clone()),
        (None, None) => {
            let data = DataConfig { augment: !args.run.no_augment, ..args.data.config() };
            (RunConfig::from_options(args.model.spec()?, data, &args.run.options()), args.out.clone())
        }
    };
    let out = out.unwrap_or_else(|| PathBuf::from(format!("results/train-{}", config.model.name())));
    if let Some(every) = args.log_grads {
        anyhow::ensure!(every > 0, "--log-grads 0: expected a positive number of iterations between records");
        config.log_grads = every;
    }
    if args.resume.is_none() && args.config.is_none() {
        let (chosen, mut why) = args.run.precision.resolve(runtime::device());
        if args.run.precision == PrecisionChoice::Auto {
            config.keep_precision_of(&out);
            if config.precision != chosen {
                why = format!("{} (auto: kept from the run already in {})", config.precision, out.display());
            }
        }
        if leader {
            println!("precision: {why}");
        }
    }
    let recording = Recording { dump_steps: args.dump_steps };
    let label = config.model.name();
    let summary = if let Some(world) = world {
        config.world_size = world.size;
        let timeout = Duration::from_secs(args.dist_timeout);
        match train_distributed(&config, &out, &label, &recording, &world, timeout)? {
            Some(summary) => summary,
            None => return Ok(()),
        }
    } else {
        train_recording(&config, &out, &label, &recording)?
    };
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
    let precision = args.precision.resolve(runtime::device()).0;
    let result = evaluate_weights(&args.model.spec()?, &args.weights, &args.data.config(), args.threads, precision)?;
    println!(
        "{}: test error {:.2}% on {} images of {} ({})",
        result.spec,
        result.error,
        result.images,
        args.data.data,
        args.weights.display()
    );
    Ok(())
}

fn bench(args: BenchArgs) -> Result<()> {
    let device = runtime::device();
    let (precision, why) = args.precision.resolve(device);
    println!("precision: {why}");
    let bench = bench::Bench {
        spec: args.model,
        mode: args.mode,
        precision,
        channels_last: !args.contiguous,
        threads: args.threads,
        batch: args.batch_size,
        iters: args.iters,
        warmup: args.warmup,
        data: args.data,
        augment: !args.no_augment,
    };
    let reference = if args.reference {
        let precision = args.reference_precision.map_or(precision, |p| p.resolve(device).0);
        Some(bench::Reference::locate(&bench, args.reference_script, None, precision)?)
    } else {
        None
    };
    bench::run(&bench, reference.as_ref(), args.rounds, args.peak_gflops)
}

fn export(args: ExportArgs) -> Result<()> {
    let model = match &args.run {
        Some(run) => RunDir::new(run).load_model()?,
        None => {
            let mut spec = args.model.spec()?;
            spec.num_classes = args.classes.or(spec.num_classes);
            reslab::model::fresh(&spec, args.seed)?
        }
    };
    weights::save(&model.vs, 0, &args.out)?;
    println!("{}: wrote {} ({} parameters)", model.spec, args.out.display(), model.num_params());
    Ok(())
}

fn analyze(command: AnalyzeCommand) -> Result<()> {
    use reslab::analysis::{grad_norms, responses, shattering};
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
                println!(
                    "{}: {} layers at {} iterations",
                    r.run,
                    r.profile(r.iterations()[0]).len(),
                    r.iterations().len()
                );
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
            let dataset = reslab::data::Dataset::open(&DataConfig::new(data), tch::Device::Cpu)?;
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

fn models(format: Format) -> Result<()> {
    let rows: Vec<Vec<String>> = reslab::model::zoo_entries()?
        .into_iter()
        .map(|entry| {
            let spec = entry.spec;
            let shortcut = match spec.kind {
                reslab::model::Kind::Plain => "-".to_string(),
                reslab::model::Kind::Residual => spec.shortcut.to_string(),
            };
            let kind = if spec.groups.is_some() { "resnext".to_string() } else { spec.kind.to_string() };
            vec![
                spec.family.to_string(),
                kind,
                spec.depth.to_string(),
                shortcut,
                spec.block.to_string(),
                spec.name(),
                entry.params.to_string(),
                entry.macs.to_string(),
            ]
        })
        .collect();
    let header = ["family", "kind", "depth", "shortcut", "block", "name", "params", "macs"];
    match format {
        Format::Csv => print!("{}", table::csv_text(&header, &rows)?),
        Format::Table => print!("{}", table::aligned_text(&header, &rows, 2)),
    }
    Ok(())
}
