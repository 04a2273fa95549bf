//! The command line's grammar (clap): every command, option and default a user can type. Each
//! group maps its flags onto the library's request types, field for field; what they mean is
//! decided in the library.

use clap::{Parser, Subcommand, ValueEnum};
use reslab::data::download::OFFICIAL_URL;
use reslab::data::folder::{BadImages, TestCrops};
use reslab::data::{DataConfig, DataSource, EvalSet, Normalization};
use reslab::experiment::on_demand::{Budget, OnDemand, DEFAULT_MAX_SEEDS, FIRST_SEEDS};
use reslab::experiment::overrides::Overrides;
use reslab::experiment::sbatch::{MemorySize, SbatchOption, SlurmName, TimeLimit};
use reslab::experiment::slurm::{
    SlurmOverrides, DEFAULT_AGGREGATE_CPUS, DEFAULT_AGGREGATE_TIME, DEFAULT_CPUS_PER_TASK, DEFAULT_GRACE_S,
};
use reslab::experiment::spec::{ErrorRange, Seeds, YScale};
use reslab::experiment::study::{Backend, Execution, StudyRequest};
use reslab::experiment::Preset;
use reslab::model::{BlockVariant, BottleneckStride, ModelOptions, ModelSpec, Shortcut};
use reslab::run::config::{check_lr_steps, DeviceChoice, KernelsChoice, PrecisionChoice, TrainOptions};
use reslab::run::settings::Axis;
use reslab::train::distributed::DEFAULT_TIMEOUT;
use reslab::train::probe;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "reslab", version, about = "Plain vs residual networks: He et al. (2015) on tch-rs")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Reproduce a built-in experiment (a figure or table of the paper, or a comparison beyond it;
    /// `reslab reproduce --help` lists them), the paper's CIFAR-10 studies in one report (paper), or
    /// an experiment file.
    Reproduce(ReproduceArgs),
    /// Print every run of a study: its directory, its state and its cost (MACs, estimated hours here).
    Plan(StudyArgs),
    /// Where a study stands: each run's state (and Slurm's, for a submitted study), and a summary.
    Status(StudyArgs),
    /// Write a study's tables, charts and report.html from its run directories as they are.
    Aggregate(AggregateArgs),
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
    /// List every key `--set` and an experiment's [grid] can change, with its type and default.
    Keys {
        /// An aligned table, or CSV.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// List the model zoo with parameter counts and multiply-accumulates.
    Models {
        /// An aligned table, or CSV.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Data utilities.
    #[command(subcommand)]
    Data(DataCommand),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Csv,
}

/// Which study, at which length, with which seeds: shared by reproduce and plan.
#[derive(clap::Args)]
pub struct StudyArgs {
    /// A built-in experiment (listed below), `paper` (the paper's CIFAR-10 studies in one report) or
    /// the path of an experiment file (TOML).
    pub experiment: String,
    /// Schedule length; default the experiment's default preset (each experiment's presets, their
    /// lengths and its default are listed below).
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Only the runs at these depths (e.g. --depths 20).
    #[arg(long, value_parser = positive::<i64>, allow_negative_numbers = true, value_delimiter = ',')]
    pub depths: Option<Vec<i64>>,
    /// CIFAR-10 binary version (folder or .tar.gz); default: the preset's (the embedded sample for demo).
    #[arg(long)]
    pub data: Option<DataSource>,
    /// Output folder; default results/<experiment>-<preset>.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override the preset's number of iterations (the schedule keeps its shape).
    #[arg(long, value_parser = whole::<usize>, allow_negative_numbers = true)]
    pub iters: Option<usize>,
    /// Override the preset's iterations between evaluations (the rows of each run's metrics.csv).
    #[arg(long, value_parser = whole::<usize>, allow_negative_numbers = true)]
    pub eval_every: Option<usize>,
    /// Train every run with this one seed instead of the experiment's seeds.
    #[arg(long, value_parser = whole::<u64>, allow_negative_numbers = true, conflicts_with = "seeds")]
    pub seed: Option<u64>,
    /// Train every run with these seeds instead of the experiment's: N (N seeds: 0 to N-1), a range
    /// (3-5) or a list (3,4,5); or auto: seeds on demand, a round at a time until each claim is
    /// settled, with sequential intervals (docs/experiments.md#seeds-on-demand).
    #[arg(long, allow_negative_numbers = true, value_name = "auto|N|A-B|A,B,..")]
    pub seeds: Option<SeedsArg>,
    /// With --seeds auto: the most seeds a network gets (at least 3).
    #[arg(long, value_parser = positive::<usize>, allow_negative_numbers = true,
          help = format!("With --seeds auto: the most seeds a network gets; default {DEFAULT_MAX_SEEDS}, at least {FIRST_SEEDS}."))]
    pub max_seeds: Option<usize>,
    /// With --seeds auto: no round starts that would end past this much wall time (2h, 90m, 1h30m).
    #[arg(long, value_name = "DURATION")]
    pub budget: Option<Budget>,
    /// CPU threads per run; 0: the machine's cores, split between the jobs.
    #[arg(long, value_parser = threads, allow_negative_numbers = true, default_value_t = TrainOptions::default().threads)]
    pub threads: usize,
    /// Arithmetic of new runs: bf16 (mixed precision) or fp32; auto: bf16 where a short probe measured it at least 10% faster for this net, batch size and thread count (cached per machine under RESLAB_CACHE_DIR).
    #[arg(long, value_enum, default_value_t = TrainOptions::default().precision)]
    pub precision: PrecisionChoice,
    /// The training step's BN, ReLU and additions in new runs: exact (libtorch's ops, PyTorch's step bit for bit) or fused (CPU, channels-last); auto: fused where the same probe measured it at least 5% faster.
    #[arg(long, value_enum, default_value_t = TrainOptions::default().kernels)]
    pub kernels: KernelsChoice,
    /// Where the runs compute: auto (the first GPU where there is one, else the CPU), cpu, cuda or cuda:N; never part of what a run is.
    #[arg(long, default_value_t = DeviceChoice::Auto, value_name = "auto|cpu|cuda|cuda:N")]
    pub device: DeviceChoice,
    /// Set any key of every run's configuration (repeatable): KEY=VALUE, or KEY=V1,V2 for a grid
    /// axis (each run at each value, named by it; with the file's [grid]). `reslab keys` lists the keys.
    #[arg(long = "set", value_name = "KEY=VALUE[,V2..]", value_parser = axis)]
    pub set: Vec<Axis>,
}

/// `aggregate`: the study, and how its charts draw the error axis.
#[derive(clap::Args)]
pub struct AggregateArgs {
    #[command(flatten)]
    pub study: StudyArgs,
    /// Send the study to the MLflow tracking server at URI (http://HOST:PORT): what it lacks of
    /// each run (see reproduce --mlflow), then the tables, charts and report to the study's parent run.
    #[arg(long, value_name = "URI")]
    pub mlflow: Option<String>,
    /// Fix the error axis, in percent (e.g. 5:60); default the experiment file's `[chart] y_range`,
    /// else 0:20 where every run reached the paper's schedule, else fitted to the runs.
    #[arg(long, value_name = "LOW:HIGH")]
    pub y_range: Option<ErrorRange>,
    /// The error axis: linear, or log (ticks at 1, 2, 5 x 10^k); default the file's `[chart] y_scale`, else linear.
    #[arg(long, value_enum)]
    pub y_scale: Option<YScale>,
}

#[derive(clap::Args)]
pub struct ReproduceArgs {
    #[command(flatten)]
    pub study: StudyArgs,
    /// Mirror the runs into the MLflow tracking server at URI (http://HOST:PORT) as they train:
    /// an MLflow run each, in an experiment named after the study, under a parent run that gets
    /// the charts and report; overrides the file's [tracking] mlflow. A server that is down never
    /// stops training (see docs/tracking.md).
    #[arg(long, value_name = "URI")]
    pub mlflow: Option<String>,
    /// Runs at a time, each a child process with the machine's cores split between them; default
    /// one per GPU, or on a CPU what a probe measured fastest here, 1 or one per core (cached; see docs/performance.md).
    #[arg(long, allow_negative_numbers = true, value_name = "N", value_parser = positive::<u64>)]
    pub jobs: Option<u64>,
    /// Where the runs run: here, or as a Slurm array job (one task per run) and a job that aggregates after it.
    #[arg(long, value_enum, default_value_t = Backend::Local)]
    pub backend: Backend,
    #[command(flatten)]
    pub slurm: SlurmArgs,
    /// Seeds on demand on Slurm: the aggregation job of round N takes its look and submits the next.
    #[arg(long, hide = true, value_name = "N")]
    pub after_round: Option<usize>,
}

/// `--backend slurm`: each overrides the experiment file's `[slurm]` table. Partition, account,
/// QoS and --sbatch go on every job; the other options are one job's resources.
#[derive(clap::Args)]
#[command(next_help_heading = "Slurm (--backend slurm)")]
pub struct SlurmArgs {
    /// Partition of every job (a list: gpu,gpu-long).
    #[arg(long, value_name = "NAME")]
    pub partition: Option<SlurmName>,
    /// Account every job is charged to.
    #[arg(long, value_name = "NAME")]
    pub account: Option<SlurmName>,
    /// Quality of service of every job.
    #[arg(long, value_name = "NAME")]
    pub qos: Option<SlurmName>,
    /// A further sbatch option of every job, e.g. --sbatch=--mail-type=FAIL (repeat for more).
    #[arg(long = "sbatch", value_name = "OPTION", allow_hyphen_values = true)]
    pub sbatch: Vec<SbatchOption>,
    /// Each training task's time limit, as sbatch takes it (04:00:00, 2-00:00:00); a run longer than this requeues
    /// itself; default the partition's.
    #[arg(long)]
    pub time: Option<TimeLimit>,
    #[arg(long, allow_negative_numbers = true, value_parser = positive::<u32>,
          help = format!("CPUs per training task (also the run's threads); default {DEFAULT_CPUS_PER_TASK}."))]
    pub cpus_per_task: Option<u32>,
    /// GPUs per training task; default none.
    #[arg(long, value_parser = whole::<u32>, allow_negative_numbers = true)]
    pub gpus_per_task: Option<u32>,
    /// Memory of each training task, as sbatch --mem takes it (16G; per node); default the cluster's.
    #[arg(long, value_name = "SIZE")]
    pub mem: Option<MemorySize>,
    #[arg(long, value_parser = whole::<u32>, allow_negative_numbers = true,
          help = format!("Seconds before the time limit at which a task checkpoints and requeues itself; default {DEFAULT_GRACE_S}."))]
    pub grace: Option<u32>,
    /// Processes per run (data parallel, started by srun; --batch-size stays the global batch); default 1.
    #[arg(long, allow_negative_numbers = true, value_parser = positive::<u32>)]
    pub tasks_per_run: Option<u32>,
    /// A further sbatch option of the training tasks only, e.g. --task-sbatch=--constraint=a100 (repeat for more).
    #[arg(long = "task-sbatch", value_name = "OPTION", allow_hyphen_values = true)]
    pub task_sbatch: Vec<SbatchOption>,
    #[arg(long, value_name = "TIME",
          help = format!("The aggregation job's time limit, as --time takes it; default {DEFAULT_AGGREGATE_TIME}."))]
    pub aggregate_time: Option<TimeLimit>,
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = positive::<u32>,
          help = format!("The aggregation job's CPUs (also its threads); default {DEFAULT_AGGREGATE_CPUS}."))]
    pub aggregate_cpus: Option<u32>,
    /// The aggregation job's memory, as --mem takes it; default the cluster's.
    #[arg(long, value_name = "SIZE")]
    pub aggregate_mem: Option<MemorySize>,
    /// Print the batch scripts; submit nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Which network: shared by train, eval and export.
#[derive(clap::Args)]
pub struct ModelArgs {
    /// plain-N or resnet-N: N = 6n+2 for CIFAR (20, 56, 110, ...; 9n+2 bottlenecks: 164, 1001),
    /// 18/34/50/101/152 for ImageNet (prefix cifar- or imagenet- to choose the family explicitly,
    /// e.g. cifar-resnet-50); resnext-29-8x64d, resnext-29-16x64d, resnext-50-32x4d, resnext-101-32x8d.
    #[arg(long)]
    pub model: Option<ModelSpec>,
    /// Shortcut option of a residual net (A, B, C, or highway); default A for CIFAR, B for ImageNet and bottleneck CIFAR nets.
    #[arg(long, value_enum)]
    pub shortcut: Option<Shortcut>,
    /// Bottleneck nets: stride on the first 1x1 conv (`reduce`, the paper's) or on the 3x3 (`spatial`, torchvision's v1.5).
    #[arg(long, value_enum)]
    pub bottleneck_stride: Option<BottleneckStride>,
    /// CIFAR nets: where BN and ReLU sit in each block (He et al. 2016): post (the 2015 paper's),
    /// pre (full pre-activation), bn-after-add, no-relu-after-add.
    #[arg(long, value_enum)]
    pub block: Option<BlockVariant>,
    /// --shortcut highway: the gates' initial bias (negative: the gate first carries the input).
    #[arg(long, allow_hyphen_values = true)]
    pub gate_bias: Option<f64>,
}

/// Which data and how it is prepared: shared by train and eval.
#[derive(clap::Args)]
pub struct DataArgs {
    /// CIFAR-10's binary version (cifar-10-batches-bin/, its parent, or the .tar.gz), `embedded`
    /// for the built-in sample, or an image folder (ROOT/train/<class>/*.jpg, ROOT/val/<class>/...).
    #[arg(long, default_value = "embedded")]
    pub data: DataSource,
    /// `pixel-mean` (the paper's) or `imagenet` (torchvision's; the public pretrained CIFAR ResNets').
    #[arg(long, value_enum, default_value_t = Normalization::PixelMean)]
    pub normalization: Normalization,
    /// `holdout`: the paper's 45k/5k split (evaluate on the last tenth of the training set).
    #[arg(long, value_enum, default_value_t = EvalSet::Test)]
    pub eval_set: EvalSet,
    /// Image folders: network input size in pixels (the paper's 224; 64 or 32 train on a CPU).
    #[arg(long, value_parser = whole::<u32>, allow_negative_numbers = true, default_value_t = 224)]
    pub input_size: u32,
    /// Image folders: `skip` unreadable files (counted in a warning) or stop with an `error`.
    #[arg(long, value_enum, default_value_t = BadImages::Skip)]
    pub bad_images: BadImages,
    /// Image folders: `center` crop, or the paper's `ten-crop` testing.
    #[arg(long, value_enum, default_value_t = TestCrops::Center)]
    pub test_crops: TestCrops,
}

/// The options that define a run are not allowed with --config or --resume, which bring their
/// own: `RunOptionArgs` says so as a group; the model and data options, which eval and export
/// share, are named here by their groups (each flattened struct is a clap group of its name).
pub const MODEL_AND_DATA: [&str; 2] = ["ModelArgs", "DataArgs"];

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Re-run the configuration of an earlier run (its config.toml); other training options are then not allowed.
    #[arg(long, conflicts_with_all = MODEL_AND_DATA)]
    pub config: Option<PathBuf>,
    /// Continue the run in DIR from its last checkpoint (the same as re-running its command).
    #[arg(long, value_name = "DIR", conflicts_with_all = MODEL_AND_DATA, conflicts_with_all = ["config", "out"])]
    pub resume: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub run: RunOptionArgs,
    /// Run directory; default results/train-<model>.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where the run computes: auto (the first GPU where there is one, else the CPU), cpu, cuda or cuda:N; a resumed run may change it.
    #[arg(long, value_name = "auto|cpu|cuda|cuda:N")]
    pub device: Option<DeviceChoice>,
    /// Set any key of the run's configuration, after the options above (repeatable): lr=0.05,
    /// weight_decay=0, lr_steps=[0.5,0.75], shortcut=B, ... `reslab keys` lists every key with
    /// its type and default.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = axis, conflicts_with = "resume")]
    pub set: Vec<Axis>,
    /// Mirror the run into the MLflow tracking server at URI (http://HOST:PORT) as it trains;
    /// a server that is down never stops training, and the same command sends what it missed.
    #[arg(long, value_name = "URI")]
    pub mlflow: Option<String>,
    /// The MLflow experiment of --mlflow.
    #[arg(long, value_name = "NAME", default_value = "reslab", requires = "mlflow")]
    pub mlflow_experiment: String,
    /// Also write the initial weights, the first K augmented batches with their losses, and the
    /// weights after step K to DIR/steps/ (for step-for-step comparisons with other implementations).
    #[arg(long, value_parser = whole::<usize>, allow_negative_numbers = true, value_name = "K", default_value_t = 0, conflicts_with = "resume")]
    pub dump_steps: usize,
    /// Every K iterations (and at the first), write every conv and fc layer's gradient norm and
    /// weight norm to DIR/grad_norms.csv; changes nothing in the training.
    #[arg(long, value_parser = whole::<usize>, allow_negative_numbers = true, value_name = "K", conflicts_with = "resume")]
    pub log_grads: Option<usize>,
    /// Be one rank of a data parallel run: rank, world size and rendezvous from the environment
    /// (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT as reslab launch or torchrun set them, or
    /// Slurm's SLURM_PROCID, SLURM_NTASKS, SLURM_JOB_NODELIST under srun). --batch-size is the global batch.
    #[arg(long)]
    pub distributed: bool,
    /// With --distributed: seconds a rank waits for the others (rendezvous, every collective) before failing
    /// (RESLAB_DIST_TIMEOUT_S sets it for every rank of a cluster job; a run of one process ignores it).
    #[arg(long, allow_negative_numbers = true, value_name = "SECS", env = "RESLAB_DIST_TIMEOUT_S", default_value_t = DEFAULT_TIMEOUT.as_secs(), value_parser = timeout_secs)]
    pub dist_timeout: u64,
}

#[derive(clap::Args)]
pub struct LaunchArgs {
    /// Processes (ranks) on this machine.
    #[arg(long, value_parser = whole::<usize>, allow_negative_numbers = true)]
    pub nproc: usize,
    /// Port rank 0 listens on (127.0.0.1); default a free one.
    #[arg(long, value_parser = whole::<u16>, allow_negative_numbers = true)]
    pub master_port: Option<u16>,
    /// Seconds the other ranks may take to stop once one has failed, before they are killed.
    #[arg(long, value_parser = whole::<u64>, allow_negative_numbers = true, value_name = "SECS", default_value_t = 60)]
    pub grace: u64,
    /// The command every rank runs: train and its options (after --).
    #[arg(last = true, required = true, value_name = "train [OPTIONS]")]
    pub command: Vec<std::ffi::OsString>,
}

/// Optimiser, schedule and runtime options of `train`.
#[derive(clap::Args)]
#[group(multiple = true, conflicts_with_all = ["config", "resume"])]
pub struct RunOptionArgs {
    /// Iterations (mini-batches); the paper's 64k by default.
    #[arg(long, value_parser = whole::<usize>, allow_negative_numbers = true, default_value_t = TrainOptions::default().iters)]
    pub iters: usize,
    /// Base learning rate (the paper's 0.1).
    #[arg(long, value_parser = positive_number, allow_negative_numbers = true, default_value_t = TrainOptions::default().lr)]
    pub lr: f64,
    /// Iterations at which the learning rate is divided by 10; default 1/2 and 3/4 of --iters.
    #[arg(long, value_parser = whole::<usize>, allow_negative_numbers = true, value_delimiter = ',')]
    pub lr_steps: Option<Vec<usize>>,
    /// Images per batch (the paper's 128; with --distributed, the global batch).
    #[arg(long, value_parser = whole::<usize>, allow_negative_numbers = true, default_value_t = TrainOptions::default().batch_size)]
    pub batch_size: usize,
    /// Evaluate and write a metrics row every this many iterations; default iters/64.
    #[arg(long, value_parser = whole::<usize>, allow_negative_numbers = true)]
    pub eval_every: Option<usize>,
    /// Seed of the initial weights, the batches and the augmentation.
    #[arg(long, value_parser = whole::<u64>, allow_negative_numbers = true, default_value_t = TrainOptions::default().seed)]
    pub seed: u64,
    /// CPU threads; 0: one per core.
    #[arg(long, value_parser = threads, allow_negative_numbers = true, default_value_t = TrainOptions::default().threads)]
    pub threads: usize,
    /// Train without augmentation.
    #[arg(long)]
    pub no_augment: bool,
    /// Keep tensors in the default NCHW layout instead of channels-last.
    #[arg(long)]
    pub contiguous: bool,
    /// bf16 (mixed precision) or fp32; auto: bf16 where a short probe measured it at least 10% faster for this net, batch size and thread count (cached per machine under RESLAB_CACHE_DIR).
    #[arg(long, value_enum, default_value_t = TrainOptions::default().precision)]
    pub precision: PrecisionChoice,
    /// The training step's BN, ReLU and additions: exact (libtorch's ops, PyTorch's step bit for bit) or fused (CPU, channels-last); auto: fused where the same probe measured it at least 5% faster.
    #[arg(long, value_enum, default_value_t = TrainOptions::default().kernels)]
    pub kernels: KernelsChoice,
    /// The paper's warm-up for very deep nets: lr 0.01 until the training error is below 80%.
    #[arg(long)]
    pub warmup: bool,
    /// Write a checkpoint every K iterations and at the end; default at every metrics row.
    #[arg(long, value_parser = whole::<usize>, allow_negative_numbers = true, value_name = "K", default_value_t = TrainOptions::default().checkpoint_every)]
    pub checkpoint_every: usize,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// safetensors file with PyTorch-style names (a run's model.safetensors, the CIFAR reproductions', torchvision's).
    #[arg(long)]
    pub weights: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// CPU threads; 0: one per core.
    #[arg(long, value_parser = threads, allow_negative_numbers = true, default_value_t = TrainOptions::default().threads)]
    pub threads: usize,
    /// The forward passes' arithmetic; fp32 by default, for an exact check of the weights.
    #[arg(long, value_enum, default_value_t = PrecisionChoice::Fp32)]
    pub precision: PrecisionChoice,
    /// Where it computes: auto (the first GPU where there is one, else the CPU), cpu, cuda or cuda:N.
    #[arg(long, default_value_t = DeviceChoice::Auto, value_name = "auto|cpu|cuda|cuda:N")]
    pub device: DeviceChoice,
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// A zoo model, e.g. resnet-20, plain-56.
    #[arg(long)]
    pub model: ModelSpec,
    /// step: the training step on a fixed batch; train: the training loop (data, augmentation,
    /// step, metrics); eval: evaluation forward passes (no gradients, BN folded).
    #[arg(long, value_enum, default_value_t = probe::Mode::Step)]
    pub mode: probe::Mode,
    /// bf16 (mixed precision) or fp32; auto: bf16 where a short probe measured it faster here.
    #[arg(long, value_enum, default_value_t = TrainOptions::default().precision)]
    pub precision: PrecisionChoice,
    /// The training step's BN, ReLU and additions: exact, fused, or auto (measured here with the precision).
    #[arg(long, value_enum, default_value_t = TrainOptions::default().kernels)]
    pub kernels: KernelsChoice,
    /// NCHW instead of channels-last.
    #[arg(long)]
    pub contiguous: bool,
    /// CPU threads; 0: one per core.
    #[arg(long, value_parser = threads, allow_negative_numbers = true, default_value_t = TrainOptions::default().threads)]
    pub threads: usize,
    /// Where it computes: auto (the first GPU where there is one, else the CPU), cpu, cuda or cuda:N.
    #[arg(long, default_value_t = DeviceChoice::Auto, value_name = "auto|cpu|cuda|cuda:N")]
    pub device: DeviceChoice,
    /// Images per batch.
    #[arg(long, value_parser = positive::<i64>, allow_negative_numbers = true, default_value_t = TrainOptions::default().batch_size as i64)]
    pub batch_size: i64,
    /// Timed iterations per round.
    #[arg(long, value_parser = whole::<usize>, allow_negative_numbers = true, default_value_t = 30)]
    pub iters: usize,
    /// Untimed iterations first (oneDNN chooses its kernels on the first).
    #[arg(long, value_parser = whole::<usize>, allow_negative_numbers = true, default_value_t = 5)]
    pub warmup: usize,
    /// Rounds, alternating with the reference; the median is reported.
    #[arg(long, value_parser = whole::<usize>, allow_negative_numbers = true, default_value_t = 3)]
    pub rounds: usize,
    /// --mode train: the data (the reference's pipeline reads the same training images).
    #[arg(long, default_value = "embedded")]
    pub data: DataSource,
    /// --mode train: without augmentation (to measure its share).
    #[arg(long)]
    pub no_augment: bool,
    /// Also run the PyTorch reference (its step or pipeline mode) beside each round and print the ratio.
    #[arg(long)]
    pub reference: bool,
    /// The reference script; default ../shared/bench/torch_reference.py beside the project.
    #[arg(long, value_name = "PATH", requires = "reference")]
    pub reference_script: Option<PathBuf>,
    /// The reference's precision; default reslab's.
    #[arg(long, value_enum, requires = "reference")]
    pub reference_precision: Option<PrecisionChoice>,
    /// The peak the achieved GFLOP/s are a share of; default this machine's, measured once (a large matrix product in the bench's precision and threads, cached under RESLAB_CACHE_DIR).
    #[arg(long, value_parser = positive_number, allow_negative_numbers = true)]
    pub peak_gflops: Option<f64>,
    /// --mode step: then profile --iters steps with libtorch's profiler, print where the time goes (convolutions, BN, ReLU, additions, fused BN, SGD, the rest) and write the trace (Chrome JSON) to PATH.
    #[arg(long, value_name = "PATH")]
    pub profile: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Outputs of the classifier (default 10 for CIFAR nets, 1000 for ImageNet nets).
    #[arg(long, value_parser = positive::<i64>, allow_negative_numbers = true)]
    pub classes: Option<i64>,
    /// Fresh weights initialised from this seed.
    #[arg(long, value_parser = whole::<u64>, allow_negative_numbers = true, default_value_t = 0)]
    pub seed: u64,
    /// Export a run's final weights instead (its config.toml says which model).
    #[arg(long, conflicts_with_all = ["model", "shortcut", "bottleneck_stride", "block", "gate_bias", "classes", "seed"])]
    pub run: Option<PathBuf>,
    /// The safetensors file to write.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Subcommand)]
pub enum AnalyzeCommand {
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
        #[arg(long, value_parser = whole::<usize>, allow_negative_numbers = true, default_value_t = 10_000)]
        images: usize,
        /// The folder the CSV files and charts go to.
        #[arg(long, default_value = "results/analysis")]
        out: PathBuf,
    },
    /// The gradient norms runs recorded with train --log-grads, against layer depth at points of training.
    GradNorms {
        /// Run directories trained with --log-grads.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// The folder the CSV files and charts go to.
        #[arg(long, default_value = "results/analysis")]
        out: PathBuf,
    },
    /// Li et al. (2018): the training loss and error around each run's final weights on two
    /// filter-normalised random directions (a grid over [-span, span]^2, or a line), and on the
    /// straight path from its initial weights (Goodfellow et al. 2015): landscape.csv and charts.
    Landscape {
        /// Run directories (complete runs).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Points per axis, odd (the centre is one).
        #[arg(long, value_parser = whole::<usize>, allow_negative_numbers = true, default_value_t = 21)]
        grid: usize,
        /// The grid covers [-span, span] along each direction (1: a filter's own norm).
        #[arg(long, value_parser = positive_number, allow_negative_numbers = true, default_value_t = 1.0)]
        span: f64,
        /// The first N training images (no augmentation) the loss is measured on.
        #[arg(long, value_parser = whole::<usize>, allow_negative_numbers = true, default_value_t = 1000)]
        images: usize,
        /// 2: a plane (contour plot); 1: a line.
        #[arg(long, value_parser = whole::<u8>, allow_negative_numbers = true, default_value_t = 2)]
        dims: u8,
        /// Seed of the random directions (saved beside the results as RUN-directions.safetensors).
        #[arg(long, value_parser = whole::<u64>, allow_negative_numbers = true, default_value_t = 0)]
        seed: u64,
        /// Use the directions an earlier analysis saved (filter-normalised to each run's own weights).
        #[arg(long, value_name = "FILE")]
        directions: Option<PathBuf>,
        /// Points on the path from the initial weights (t from -0.2 to 1.2); 0: no path.
        #[arg(long, value_parser = whole::<usize>, allow_negative_numbers = true, default_value_t = 15)]
        path_points: usize,
        /// Measure on this data instead of each run's own (CIFAR-10 binary, `embedded`, or an image folder).
        #[arg(long)]
        data: Option<DataSource>,
        /// libtorch threads in all; 0: the machine's cores.
        #[arg(long, value_parser = threads, allow_negative_numbers = true, default_value_t = 0)]
        threads: usize,
        /// Grid points evaluated at once, each on threads/workers threads; 0: one per thread.
        #[arg(long, value_parser = whole::<usize>, allow_negative_numbers = true, default_value_t = 0)]
        workers: usize,
        /// The folder the CSV files and charts go to.
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
        #[arg(long, value_parser = positive::<i64>, allow_negative_numbers = true, value_delimiter = ',', default_value = "8,20,32,44,56,110")]
        depths: Vec<i64>,
        /// Initialisations averaged per CIFAR net.
        #[arg(long, value_parser = whole::<usize>, allow_negative_numbers = true, default_value_t = 4)]
        inits: usize,
        /// Hidden layers of the toy networks.
        #[arg(long, value_parser = whole::<usize>, allow_negative_numbers = true, value_delimiter = ',', default_value = "1,2,3,4,6,8,12,16,24,32,50")]
        toy_depths: Vec<usize>,
        /// Initialisations averaged per toy network.
        #[arg(long, value_parser = whole::<usize>, allow_negative_numbers = true, default_value_t = 20)]
        toy_inits: usize,
        /// Where the two test images of the line come from.
        #[arg(long, default_value = "embedded")]
        data: DataSource,
        /// Seed of the fresh networks and the toy networks' inputs.
        #[arg(long, value_parser = whole::<u64>, allow_negative_numbers = true, default_value_t = 0)]
        seed: u64,
        /// The folder the CSV files and charts go to.
        #[arg(long, default_value = "results/analysis")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum DataCommand {
    /// Download CIFAR-10's binary archive (resumable), verify its checksum, extract it safely.
    Fetch {
        /// Where the archive is downloaded from.
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
        /// The full CIFAR-10 (folder or .tar.gz).
        #[arg(long)]
        from: PathBuf,
        /// The .tar.gz archive to write.
        #[arg(long)]
        out: PathBuf,
        /// Training images per class.
        #[arg(long, value_parser = whole::<usize>, allow_negative_numbers = true, default_value_t = 250)]
        train_per_class: usize,
        /// Test images per class.
        #[arg(long, value_parser = whole::<usize>, allow_negative_numbers = true, default_value_t = 50)]
        test_per_class: usize,
    },
}

/// The command line, with the built-in experiments (their presets' lengths and defaults, read from
/// the experiment files) listed under the help of each command that takes one.
/// The command line, parsed with the help that [`command`] builds.
pub fn parse() -> Result<Cli, clap::Error> {
    use clap::FromArgMatches;
    Cli::from_arg_matches(&command().try_get_matches()?)
}

pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let catalogue = reslab::experiment::catalogue::text()
        .unwrap_or_else(|e| format!("(the built-in experiments could not be listed: {e:#})"));
    let mut command = Cli::command();
    for name in STUDY_COMMANDS {
        command = command.mut_subcommand(name, |sub| sub.after_help(catalogue.clone()));
    }
    command
}

/// The commands that take an experiment (`StudyArgs`).
pub const STUDY_COMMANDS: [&str; 4] = ["reproduce", "plan", "status", "aggregate"];

/// `--seeds`: fixed seeds, or seeds on demand.
#[derive(Clone)]
pub enum SeedsArg {
    Auto,
    Fixed(Seeds),
}

impl std::str::FromStr for SeedsArg {
    type Err = String;

    fn from_str(text: &str) -> Result<SeedsArg, String> {
        match text {
            "auto" => Ok(SeedsArg::Auto),
            _ => text.parse().map(SeedsArg::Fixed).map_err(|e| format!("{e}, or auto")),
        }
    }
}

impl StudyArgs {
    pub fn request(&self) -> anyhow::Result<StudyRequest> {
        let on_demand = match (&self.seeds, self.max_seeds, self.budget) {
            (Some(SeedsArg::Auto), max_seeds, budget) => Some(OnDemand::new(max_seeds, budget)?),
            (_, None, None) => None,
            _ => anyhow::bail!("--max-seeds and --budget are for seeds on demand; expected them with --seeds auto"),
        };
        let seeds = match &self.seeds {
            Some(SeedsArg::Fixed(seeds)) => Some(seeds.clone()),
            _ => None,
        };
        Ok(StudyRequest {
            experiment: self.experiment.clone(),
            preset: self.preset,
            out: self.out.clone(),
            overrides: Overrides {
                data: self.data.clone(),
                iters: self.iters,
                eval_every: self.eval_every,
                seed: self.seed,
                seeds,
                on_demand,
                round_seeds: Default::default(),
                threads: self.threads,
                precision: self.precision,
                kernels: self.kernels,
                depths: self.depths.clone(),
                world_size: None,
                device: self.device,
                settings: self.set.clone(),
            },
            mlflow: None,
        })
    }
}

impl ReproduceArgs {
    pub fn execution(&self) -> Execution {
        let s = &self.slurm;
        Execution {
            jobs: self.jobs.map(|jobs| jobs as usize),
            backend: self.backend,
            slurm: SlurmOverrides {
                partition: s.partition.clone(),
                account: s.account.clone(),
                qos: s.qos.clone(),
                sbatch: s.sbatch.clone(),
                time: s.time,
                cpus_per_task: s.cpus_per_task,
                gpus_per_task: s.gpus_per_task,
                mem: s.mem,
                grace_s: s.grace,
                tasks_per_run: s.tasks_per_run,
                task_sbatch: s.task_sbatch.clone(),
                aggregate_time: s.aggregate_time,
                aggregate_cpus: s.aggregate_cpus,
                aggregate_mem: s.aggregate_mem,
            },
            dry_run: s.dry_run,
            after_round: self.after_round,
        }
    }
}

impl ModelArgs {
    /// `--model` (required where this is called) and its variant options.
    pub fn model(&self) -> anyhow::Result<ModelSpec> {
        use anyhow::Context;
        self.model.clone().context("--model is required")
    }

    pub fn options(&self, classes: Option<i64>) -> ModelOptions {
        ModelOptions {
            shortcut: self.shortcut,
            bottleneck_stride: self.bottleneck_stride,
            block: self.block,
            gate_bias: self.gate_bias,
            classes,
        }
    }
}

impl DataArgs {
    pub fn config(&self) -> DataConfig {
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

impl RunOptionArgs {
    /// The options, with `--lr-steps` checked against `--iters`.
    pub fn options(&self) -> anyhow::Result<TrainOptions> {
        use anyhow::Context;
        if let Some(steps) = &self.lr_steps {
            let text = steps.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
            check_lr_steps(steps, self.iters).with_context(|| format!("--lr-steps {text}"))?;
        }
        Ok(TrainOptions {
            iters: self.iters,
            lr: self.lr,
            lr_steps: self.lr_steps.clone(),
            batch_size: self.batch_size,
            eval_every: self.eval_every,
            seed: self.seed,
            threads: self.threads,
            channels_last: !self.contiguous,
            precision: self.precision,
            kernels: self.kernels,
            warmup: self.warmup,
            checkpoint_every: self.checkpoint_every,
            ..TrainOptions::default()
        })
    }
}

/// `--set KEY=VALUE[,V2...]`, parsed and checked.
fn axis(text: &str) -> Result<Axis, String> {
    Axis::parse(text).map_err(|e| format!("{e:#}"))
}

/// A whole number, 0 or more; a negative number or a fraction is named as such.
fn whole<T: TryFrom<u64>>(text: &str) -> Result<T, String> {
    at_least(text, 0)
}

/// A whole number, 1 or more.
fn positive<T: TryFrom<u64>>(text: &str) -> Result<T, String> {
    at_least(text, 1)
}

fn at_least<T: TryFrom<u64>>(text: &str, low: u64) -> Result<T, String> {
    let expected = format!("expected a whole number, {low} or more");
    match text.trim().parse::<i128>() {
        Ok(n) if n < 0 => Err(format!("a negative number; {expected}")),
        Ok(n) if n < i128::from(low) => Err(expected),
        Ok(n) => u64::try_from(n).ok().and_then(|n| T::try_from(n).ok()).ok_or(format!("too large; {expected}")),
        Err(_) if text.trim().parse::<f64>().is_ok_and(|x| x < 0.0) => Err(format!("a negative number; {expected}")),
        Err(_) => Err(format!("not a whole number; {expected}")),
    }
}

/// A number above 0 (a learning rate, a span, a peak).
fn positive_number(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        Ok(x) if x < 0.0 => Err("a negative number; expected a number above 0".into()),
        _ => Err("expected a number above 0 (e.g. 0.1)".into()),
    }
}

/// `--threads`: 0 (one per core) up to the cores this process may use. More only slows libtorch
/// down, and far more overflows its stack; a configuration file's count is capped instead
/// ([`reslab::train::runtime::thread_count`]), as a run moves between machines.
fn threads(text: &str) -> Result<usize, String> {
    let threads = whole::<usize>(text)?;
    let cores = reslab::train::runtime::cores();
    if threads > cores {
        return Err(format!("more than the {cores} cores this process may use; expected 0 (one per core) to {cores}"));
    }
    Ok(threads)
}

/// `--dist-timeout` (or `RESLAB_DIST_TIMEOUT_S`): whole seconds, at least 1.
fn timeout_secs(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(secs) if secs > 0 => Ok(secs),
        _ => Err("expected a whole number of seconds, at least 1 (--dist-timeout or RESLAB_DIST_TIMEOUT_S)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Every `reslab ...` command line of README.md and docs/*.md, with where it stands: the
    /// lines of fenced code blocks that start with `reslab ` (backslash continuations joined),
    /// and every inline code span that does.
    fn documented_commands() -> Vec<(String, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![root.join("README.md")];
        let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
            .expect("docs/ beside README.md")
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "md"))
            .collect();
        docs.sort();
        files.extend(docs);
        let mut commands = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let name = file.strip_prefix(root).unwrap().display().to_string();
            let mut fenced = false;
            let mut pending: Option<(usize, String)> = None;
            for (number, line) in text.lines().enumerate() {
                let origin = format!("{name}:{}", number + 1);
                if line.trim_start().starts_with("```") {
                    fenced = !fenced;
                    continue;
                }
                if fenced {
                    let line = line.trim();
                    let joined = match pending.take() {
                        Some((start, before)) => Some((start, format!("{before} {line}"))),
                        None if line.starts_with("reslab ") => Some((number + 1, line.to_string())),
                        None => None,
                    };
                    if let Some((start, command)) = joined {
                        match command.strip_suffix('\\') {
                            Some(open) => pending = Some((start, open.trim_end().to_string())),
                            None => commands.push((format!("{name}:{start}"), command)),
                        }
                    }
                } else {
                    for (i, span) in line.split('`').enumerate() {
                        if i % 2 == 1 && span.starts_with("reslab ") {
                            commands.push((origin.clone(), span.to_string()));
                        }
                    }
                }
            }
        }
        commands
    }

    /// The words of a command line as a shell splits them, up to a pipe, redirection, `&&` or
    /// comment.
    fn words(command: &str) -> Vec<String> {
        let mut words = Vec::new();
        let (mut word, mut quote, mut any) = (String::new(), None, false);
        for c in command.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), c) => word.push(c),
                (None, '\'' | '"') => (quote, any) = (Some(c), true),
                (None, c) if c.is_whitespace() => {
                    if any || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    any = false;
                }
                (None, c) => word.push(c),
            }
        }
        if any || !word.is_empty() {
            words.push(word);
        }
        let end = words
            .iter()
            .position(|w| ["|", "&&", ">", "2>", "#", ";", "&"].contains(&w.as_str()) || w.starts_with("2>"));
        words.truncate(end.unwrap_or(words.len()));
        words
    }

    #[test]
    fn every_command_line_of_the_documentation_parses() {
        let commands = documented_commands();
        assert!(commands.len() >= 40, "expected the README and docs/ to show many commands; found {}", commands.len());
        let failures: Vec<String> = commands
            .iter()
            .filter_map(|(origin, command)| match Cli::try_parse_from(words(command)) {
                Ok(_) => None,
                Err(e)
                    if matches!(
                        e.kind(),
                        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
                    ) =>
                {
                    None
                }
                Err(e) => Some(format!("{origin}: `{command}`: {}", e.to_string().lines().next().unwrap_or_default())),
            })
            .collect();
        assert!(failures.is_empty(), "{} documented commands do not parse:\n{}", failures.len(), failures.join("\n"));
    }

    #[test]
    fn command_lines_split_as_a_shell_splits_them() {
        assert_eq!(words("reslab train --out 'my runs' | tee log"), ["reslab", "train", "--out", "my runs"]);
        assert_eq!(words("reslab models  # the zoo"), ["reslab", "models"]);
        assert_eq!(words("reslab x --sbatch=\"--qos=long\" 2>&1"), ["reslab", "x", "--sbatch=--qos=long"]);
    }

    #[test]
    fn every_option_and_command_has_a_description() {
        fn undescribed(command: &clap::Command, path: &str, found: &mut Vec<String>) {
            let path = format!("{path} {}", command.get_name());
            if command.get_about().is_none() {
                found.push(path.clone());
            }
            for arg in command.get_arguments() {
                if arg.get_help().is_none() && !["help", "version"].contains(&arg.get_id().as_str()) {
                    found.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                undescribed(sub, &path, found);
            }
        }
        let mut found = Vec::new();
        undescribed(&command(), "", &mut found);
        assert!(found.is_empty(), "without a description: {found:?}");
        for name in STUDY_COMMANDS {
            let sub = command().find_subcommand(name).unwrap().clone();
            assert!(sub.get_after_help().is_some_and(|h| h.to_string().contains("  fig1 ")), "{name}");
        }
    }

    #[test]
    fn a_wrong_flag_fails_to_parse() {
        assert!(Cli::try_parse_from(words("reslab train --modle plain-20")).is_err());
        assert!(Cli::try_parse_from(words("reslab reproduce fig1 --preset demo")).is_ok());
    }
}
