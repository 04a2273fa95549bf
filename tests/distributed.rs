//! Data parallel training on libtorch's c10d, with Gloo on 127.0.0.1: the collectives across
//! processes, N ranks against one process with the whole batch, and `reslab launch` end to end
//! (a run, a killed rank, a rank that stops answering, bad input).
//!
//! The library-level tests start copies of this test binary as their ranks: each runs one of the
//! ignored `*_rank` tests below, told its place by the environment as `reslab launch` tells a
//! trainer (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT).

mod common;
use common::*;
use reslab::data::batches::{rng, BatchOrder, Stream};
use reslab::data::dataset::Dataset;
use reslab::data::{DataConfig, DataSource};
use reslab::model::Model;
use reslab::train::c10d::{Backend, ProcessGroup, Store};
use reslab::train::distributed::{hand_over_listener, DataParallel, World};
use reslab::train::evaluate::model_for_data;
use reslab::train::sgd::Sgd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use tch::{Device, Kind, Tensor};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Ranks started by hand, as a launcher starts them: rank 0 inherits the rendezvous socket this
/// process bound (so no other test's process can take the port first).
fn spawn_ranks(size: usize, command: impl Fn(usize) -> Command) -> Children {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let children = (0..size)
        .map(|rank| {
            let mut command = command(rank);
            command
                .env("RANK", rank.to_string())
                .env("WORLD_SIZE", size.to_string())
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", &port);
            if rank == 0 {
                hand_over_listener(&mut command, &listener);
            }
            command.spawn().unwrap()
        })
        .collect();
    Children(children)
}

/// Runs the ignored test `worker` of this binary as `size` ranks; their outputs, by rank. Each
/// must have run exactly that one test (a name that matched nothing would pass silently).
fn run_ranks(worker: &str, size: usize, env: &[(&str, String)]) -> Vec<Output> {
    let children = spawn_ranks(size, |_| {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([worker, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    });
    let mut children = children;
    let outputs: Vec<Output> =
        std::mem::take(&mut children.0).into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for (rank, output) in outputs.iter().enumerate() {
        assert!(output.status.success(), "{worker}, rank {rank} of {size}:\n{}\n{}", stdout(output), stderr(output));
        assert!(stdout(output).contains("test result: ok. 1 passed"), "{worker} did not run:\n{}", stdout(output));
    }
    outputs
}

fn integers(n: i64, kind: Kind) -> Tensor {
    Tensor::arange(n, (kind, Device::Cpu))
}

#[test]
fn collectives_are_exact_across_2_to_4_processes() {
    for size in [2, 3, 4] {
        let dir = tempfile::tempdir().unwrap();
        run_ranks("collectives_rank", size, &[("STORE_FILE", dir.path().join("store").display().to_string())]);
    }
}

#[test]
#[ignore = "one rank of collectives_are_exact_across_2_to_4_processes"]
fn collectives_rank() {
    let world = World::from_env().unwrap();
    let (rank, size) = (world.rank, world.size);
    let store = Store::tcp(&world.master_addr, world.master_port, rank, world.master_listen_fd, size, TIMEOUT).unwrap();
    let mut group = ProcessGroup::new(Backend::Gloo, store, rank, size, Some("127.0.0.1"), TIMEOUT).unwrap();
    assert_eq!((group.rank(), group.size()), (rank, size));
    let factor = (rank + 1) as f64;
    let sizes = [1, 1000, 3_000_001];
    // Whole numbers, so every sum is exact whatever order the backend adds in.
    let mut tensors: Vec<Tensor> = sizes.iter().map(|&n| integers(n, Kind::Float).fmod(1000) * factor).collect();
    tensors.push(integers(7, Kind::Double) * factor);
    tensors.push(integers(5, Kind::Int64) * (rank as i64 + 1));
    group.all_reduce_sum(&mut tensors).unwrap();
    let triangle = (size * (size + 1) / 2) as f64;
    for (tensor, &n) in tensors.iter().zip(&sizes) {
        assert!(tensor.equal(&(integers(n, Kind::Float).fmod(1000) * triangle)), "sum of {n} floats");
    }
    assert!(tensors[3].equal(&(integers(7, Kind::Double) * triangle)));
    assert!(tensors[4].equal(&(integers(5, Kind::Int64) * triangle as i64)));

    // Broadcast from the last rank: its random values, bit for bit, everywhere.
    let root = size - 1;
    let expected = {
        tch::manual_seed(99);
        Tensor::randn([4, 3, 3, 3], (Kind::Float, Device::Cpu))
    };
    let mut received = vec![if rank == root { expected.copy() } else { expected.zeros_like() }];
    group.broadcast(&mut received, root).unwrap();
    assert!(received[0].equal(&expected));
    group.barrier().unwrap();

    // The same through a file store.
    let file = PathBuf::from(std::env::var("STORE_FILE").unwrap());
    let store = Store::file(&file, size, TIMEOUT).unwrap();
    let mut group = ProcessGroup::new(Backend::Gloo, store, rank, size, Some("127.0.0.1"), TIMEOUT).unwrap();
    let mut ones = vec![Tensor::ones([3], (Kind::Float, Device::Cpu))];
    group.all_reduce_sum(&mut ones).unwrap();
    assert!(ones[0].equal(&Tensor::full([3], size as f64, (Kind::Float, Device::Cpu))));
}

const BATCH: usize = 32;
const STEPS: usize = 3;
const SEED: u64 = 5;

/// `STEPS` steps of resnet-8 on the embedded sample's augmented batches of `BATCH` (this rank's
/// shard of each when `parallel`), BN in evaluation mode; the parameters after them.
fn train_steps(mut parallel: Option<&mut DataParallel>) -> (Tensor, Tensor) {
    tch::set_num_threads(1);
    let data = Dataset::open(&DataConfig::new(DataSource::Embedded), Device::Cpu).unwrap();
    let mut order = BatchOrder::new(data.num_train(), BATCH, SEED).unwrap();
    tch::manual_seed(SEED as i64);
    let spec = model_for_data(&"resnet-8".parse().unwrap(), &data).unwrap();
    let model = Model::new(&spec, Device::Cpu).unwrap();
    let mut sgd = Sgd::new(&model.vs, 0.9, 1e-4).unwrap();
    let initial = sgd.flat_values().copy();
    if let Some(parallel) = parallel.as_deref_mut() {
        parallel.broadcast_state(&model.vs, &mut sgd).unwrap();
    }
    for iter in 0..STEPS {
        let shard = parallel.as_ref().map_or(0..BATCH, |p| p.shard(BATCH));
        let mut augment = rng(SEED, Stream::Augment, iter as u64);
        let (images, labels) = data.train_shard(order.batch(iter), shard, true, &mut augment, Device::Cpu);
        // BN with fixed statistics: the batch's mean loss is then the mean of the shards' means.
        let loss = model.forward_t(&images, false).cross_entropy_for_logits(&labels);
        sgd.zero_grad();
        loss.backward();
        if let Some(parallel) = parallel.as_deref_mut() {
            parallel.average_gradients(&mut sgd).unwrap();
        }
        sgd.step(0.02).unwrap();
    }
    (initial, sgd.flat_values().copy())
}

/// N ranks with B/N images each take the steps one process takes with B: the same parameters
/// within float rounding (the gradients are summed in another order).
#[test]
fn n_ranks_take_the_steps_of_one_process_with_the_whole_batch() {
    let (initial, expected) = train_steps(None);
    let moved = (&expected - &initial).abs().max().double_value(&[]);
    assert!(moved > 1e-3, "the steps change the parameters ({moved})");
    for size in [2, 4] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("params.pt");
        run_ranks("data_parallel_rank", size, &[("PARAMS_FILE", file.display().to_string())]);
        let ranks: Vec<Tensor> =
            (0..size).map(|rank| Tensor::load(format!("{}.{rank}", file.display())).unwrap()).collect();
        assert!(ranks.iter().all(|params| params.equal(&ranks[0])), "every rank holds the same parameters");
        let difference = (&ranks[0] - &expected).abs().max().double_value(&[]);
        assert!(difference < 1e-5, "{size} ranks differ from one process by {difference}");
        println!("{size} ranks: parameters within {difference:e} of one process's");
    }
}

#[test]
#[ignore = "one rank of n_ranks_take_the_steps_of_one_process_with_the_whole_batch"]
fn data_parallel_rank() {
    let world = World::from_env().unwrap();
    let mut parallel = DataParallel::join(&world, Device::Cpu, TIMEOUT).unwrap();
    let (_, params) = train_steps(Some(&mut parallel));
    params.save(format!("{}.{}", std::env::var("PARAMS_FILE").unwrap(), world.rank)).unwrap();
}

fn train_args<'a>(out: &'a str, iters: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "--model",
        "resnet-8",
        "--iters",
        iters,
        "--batch-size",
        "32",
        "--precision",
        "fp32",
        "--kernels",
        "exact",
        "--threads",
        "1",
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    args
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn launch_trains_one_run_on_two_processes_and_rank_0_alone_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two, again) = (dir.path().join("one"), dir.path().join("two"), dir.path().join("again"));
    let single = reslab(&train_args(one.to_str().unwrap(), "6", &["--eval-every", "3"]));
    assert!(single.status.success(), "{}", stderr(&single));
    for out in [&two, &again] {
        let mut args = vec!["launch", "--nproc", "2", "--"];
        args.extend(train_args(out.to_str().unwrap(), "6", &["--eval-every", "3"]));
        let output = reslab(&args);
        assert!(output.status.success(), "{}\n{}", stdout(&output), stderr(&output));
        assert!(!stderr(&output).contains("rank 1:"), "rank 1 prints nothing of its own: {}", stderr(&output));
    }
    // The same files as one process writes, and no others.
    assert_eq!(files_in(&two), files_in(&one));
    let config = std::fs::read_to_string(two.join("config.toml")).unwrap();
    assert!(config.contains("world_size = 2"), "{config}");
    assert!(config.contains("reslab launch --nproc 2 -- train --config config.toml"), "{config}");
    let summary = std::fs::read_to_string(two.join("summary.toml")).unwrap();
    assert!(summary.contains("status = \"complete\"") && summary.contains("all_reduce_ms_per_step = "), "{summary}");
    let metrics = std::fs::read_to_string(two.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "{metrics}");
    // A run is a function of its configuration and world size.
    let weights = |dir: &Path| std::fs::read(dir.join("model.safetensors")).unwrap();
    assert_eq!(weights(&two), weights(&again), "two runs of the same configuration on 2 ranks");

    // One process cannot continue a 2-process run.
    let output = reslab(&["train", "--resume", two.to_str().unwrap()]);
    assert_clean_error(&output, &["this run is for 2 processes", "reslab launch --nproc 2"]);

    // Rank 0 tells the others what it found before training: the run complete (all end at once,
    // successfully), or a directory it cannot take (all end with its reason).
    let mut args = vec!["launch", "--nproc", "2", "--"];
    args.extend(train_args(two.to_str().unwrap(), "6", &["--eval-every", "3"]));
    let output = reslab(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("already holds this run, complete"), "{}", stderr(&output));
    std::fs::write(two.join(".lock"), std::process::id().to_string()).unwrap();
    let output = reslab(&args);
    let err = stderr(&output);
    assert!(!output.status.success());
    assert!(
        err.contains("is in use by process") && err.contains("rank 1: error: rank 0 stopped before training"),
        "{err}"
    );
}

/// Starts `size` trainers as ranks by hand (as srun or torchrun would), with `env`.
fn start_ranks(size: usize, args: &[&str], log_dir: &Path, env: &[(&str, String)]) -> Children {
    spawn_ranks(size, |rank| {
        let log = |name: &str| std::fs::File::create(log_dir.join(format!("rank{rank}.{name}"))).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_reslab"));
        command.args(args).arg("--distributed").stdout(log("out")).stderr(log("err"));
        command.envs(env.iter().map(|(k, v)| (k, v)));
        command
    })
}

#[test]
fn a_killed_rank_stops_the_others_and_the_run_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out_arg = out.to_str().unwrap();
    let args = train_args(out_arg, "200", &["--eval-every", "50", "--checkpoint-every", "5", "--dist-timeout", "60"]);
    // Both ranks held after the checkpoint at iteration 5; rank 1 killed; rank 0 released.
    let holds = Holds::new(dir.path(), 5);
    let mut ranks = start_ranks(2, &args, dir.path(), &[holds.env()]);
    for rank in 0..2 {
        holds.wait_held("run", Some(rank));
    }
    assert_running(&mut ranks[1], "rank 1");
    ranks[1].kill().unwrap();
    ranks[1].wait().unwrap();
    holds.release("run");
    let status = wait_exit(&mut ranks[0], "rank 0", Duration::from_secs(90));
    assert!(!status.success());
    let err = std::fs::read_to_string(dir.path().join("rank0.err")).unwrap();
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: ") && last.contains("another rank died or stopped answering"), "{err}");
    // Noticed through the lost connection (closed, reset or a broken pipe, as the kill finds
    // rank 0 reading or writing), not by waiting out the 60 s timeout.
    assert!(!last.to_lowercase().contains("timed out"), "{err}");
    assert!(!err.contains("panicked") && !err.contains("terminate called"), "{err}");
    assert!(!out.join("summary.toml").exists(), "no summary: the run is not complete");

    // Resumed on one process: refused; on two: from the checkpoint to the end.
    let output = reslab(&["launch", "--nproc", "1", "--", "train", "--resume", out_arg]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("was made by 2 processes and this run has 1 process"), "{}", stderr(&output));
    let output = reslab(&["launch", "--nproc", "2", "--", "train", "--resume", out_arg]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("resuming from"), "{}", stderr(&output));
    let summary = std::fs::read_to_string(out.join("summary.toml")).unwrap();
    assert!(summary.contains("status = \"complete\"") && summary.contains("iters_done = 200"), "{summary}");
}

/// Ctrl-C on launch: every rank stops at the same step, rank 0 writes the checkpoint, and the
/// same command continues the run.
#[test]
fn an_interrupted_launch_stops_every_rank_at_one_step_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut args = vec!["launch", "--nproc", "2", "--"];
    args.extend(train_args(out.to_str().unwrap(), "100", &["--eval-every", "50", "--checkpoint-every", "5"]));
    // Both ranks held after the checkpoint at iteration 5, then Ctrl-C.
    let holds = Holds::new(dir.path(), 5);
    let (key, value) = holds.env();
    let mut launch = Children(vec![Command::new(env!("CARGO_BIN_EXE_reslab"))
        .args(&args)
        .env(key, value)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()]);
    for rank in 0..2 {
        holds.wait_held("run", Some(rank));
    }
    assert_running(&mut launch[0], "launch");
    // SAFETY: signalling a child process we spawned and have not reaped.
    unsafe { libc::kill(launch[0].id() as i32, libc::SIGINT) };
    let output = launch.0.remove(0).wait_with_output().unwrap();
    let err = stderr(&output);
    assert!(!output.status.success());
    assert!(err.contains("interrupted at iteration") && !err.contains("another rank died"), "{err}");
    assert!(err.lines().last().unwrap().starts_with("error: interrupted: the ranks stopped together"), "{err}");
    assert!(!out.join("summary.toml").exists());
    let output = reslab(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("resuming from"), "{}", stderr(&output));
}

#[test]
fn a_rank_that_stops_answering_is_an_error_on_the_others_within_their_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    // 15 s: long enough for rank 0's slowest write (a checkpoint on a loaded disk) while rank 1
    // waits for it, short enough for the test.
    let args = train_args(out.to_str().unwrap(), "100000", &["--eval-every", "50", "--dist-timeout", "15"]);
    let mut ranks = start_ranks(2, &args, dir.path(), &[]);
    wait_for("the run's first checkpoint", REACH_HOLD, || out.join("checkpoint.safetensors").exists());
    assert_running(&mut ranks[1], "rank 1 (100000 iterations)");
    // SAFETY: signalling a child process we spawned and have not reaped.
    unsafe { libc::kill(ranks[1].id() as i32, libc::SIGSTOP) };
    let status = wait_exit(&mut ranks[0], "rank 0", Duration::from_secs(60));
    ranks[1].kill().unwrap();
    ranks[1].wait().unwrap();
    assert!(!status.success());
    let err = std::fs::read_to_string(dir.path().join("rank0.err")).unwrap();
    let last = err.lines().last().unwrap_or_default();
    // Gloo says "Timed out waiting 15000ms for recv ..." or c10d "Operation timed out!".
    assert!(last.starts_with("error: ") && last.to_lowercase().contains("timed out"), "{err}");
}

#[test]
fn bad_distributed_input_is_one_clear_line() {
    // No rank in the environment.
    let output = Command::new(env!("CARGO_BIN_EXE_reslab"))
        .args(["train", "--distributed", "--model", "resnet-8", "--iters", "1"])
        .env_remove("RANK")
        .env_remove("WORLD_SIZE")
        .env_remove("SLURM_PROCID")
        .output()
        .unwrap();
    assert_clean_error(&output, &["no rank in the environment", "reslab launch --nproc N"]);
    assert_clean_error(&reslab(&["launch", "--nproc", "2", "--", "eval"]), &["runs train, not 'eval'"]);
    assert_clean_error(&reslab(&["launch", "--nproc", "0", "--", "train"]), &["--nproc 0"]);

    // A batch that does not divide among the ranks: each says so, and launch names the first.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut args = vec!["launch", "--nproc", "3", "--"];
    args.extend(train_args(out.to_str().unwrap(), "2", &[]));
    let output = reslab(&args);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("the batch size 32 does not divide among 3 processes"), "{err}");
    assert!(err.lines().last().unwrap().starts_with("error: rank "), "{err}");

    // The rendezvous port is taken: launch refuses it before starting a rank; a rank 0 started
    // by hand (as torchrun or srun would) says so at once.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = dir.path().join("run on a taken port");
    let mut args = vec!["launch", "--nproc", "2", "--master-port", &port, "--"];
    args.extend(train_args(out.to_str().unwrap(), "2", &[]));
    assert_clean_error(&reslab(&args), &[&format!("--master-port {port}: cannot listen at 127.0.0.1:{port}")]);
    assert!(!out.exists(), "no rank started");
    let mut train = train_args(out.to_str().unwrap(), "2", &["--dist-timeout", "20"]);
    train.push("--distributed");
    let output = Command::new(env!("CARGO_BIN_EXE_reslab"))
        .args(&train)
        .env("RANK", "0")
        .env("WORLD_SIZE", "2")
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", &port)
        .output()
        .unwrap();
    assert_clean_error(&output, &[&format!("listening at 127.0.0.1:{port}"), "EADDRINUSE"]);
}
