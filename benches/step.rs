//! Training-step throughput of reslab against the PyTorch reference on the same machine.
//!
//! `cargo bench --bench step` (after `. scripts/setup.sh`): for plain-20 and plain-56, times
//! reslab's training step (forward, cross-entropy, backward, SGD with momentum and weight decay)
//! on one fixed random batch of 128, exactly what `../shared/bench/torch_reference.py step`
//! times, then runs that script with the project's Python and prints the ratio.
//! Options through the environment: BENCH_ITERS (default 30), BENCH_DEPTHS (default "20,56").

use reslab::model::{Model, ModelSpec};
use reslab::train::sgd::Sgd;
use std::process::Command;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

const BATCH: i64 = 128;
const WARMUP: usize = 5;

fn reslab_step(depth: i64, iters: usize, channels_last: bool) -> f64 {
    tch::manual_seed(0);
    let spec: ModelSpec = format!("plain-{depth}").parse().unwrap();
    let mut model = Model::new(&spec, Device::Cpu).unwrap();
    if channels_last {
        model.use_channels_last();
    }
    let mut sgd = Sgd::new(&model.vs, 0.9, 1e-4);
    let x = Tensor::randn([BATCH, 3, 32, 32], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(10, [BATCH], (Kind::Int64, Device::Cpu));
    let mut start = Instant::now();
    for i in 0..WARMUP + iters {
        if i == WARMUP {
            start = Instant::now();
        }
        let loss = model.forward_t(&x, true).cross_entropy_for_logits(&y);
        sgd.zero_grad();
        loss.backward();
        sgd.step(0.1).unwrap();
    }
    (iters as i64 * BATCH) as f64 / start.elapsed().as_secs_f64()
}

fn reference_step(depth: i64, iters: usize, channels_last: bool) -> Option<f64> {
    let root = env!("CARGO_MANIFEST_DIR");
    let script = format!("{root}/../shared/bench/torch_reference.py");
    let python = format!("{root}/.venv/bin/python");
    let mut command = Command::new(python);
    command.args([&script, "step", "--depth", &depth.to_string(), "--plain", "--iters", &iters.to_string()]);
    if channels_last {
        command.arg("--channels-last");
    }
    let output = command.output().ok()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout.lines().find_map(|l| l.strip_prefix("img_per_s=")).and_then(|v| v.parse().ok())
}

fn main() {
    let iters: usize = std::env::var("BENCH_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let depths: Vec<i64> = std::env::var("BENCH_DEPTHS")
        .unwrap_or_else(|_| "20,56".into())
        .split(',')
        .filter_map(|d| d.trim().parse().ok())
        .collect();
    reslab::train::trainer::set_threads(0);
    println!("threads={} batch={BATCH} iters={iters} (after {WARMUP} warm-up)", tch::get_num_threads());
    println!("{:<10} {:<14} {:>12} {:>12} {:>7}", "model", "layout", "reslab img/s", "torch img/s", "ratio");
    for depth in depths {
        for channels_last in [false, true] {
            let ours = reslab_step(depth, iters, channels_last);
            let theirs = reference_step(depth, iters, channels_last);
            let layout = if channels_last { "channels-last" } else { "contiguous" };
            let (theirs_text, ratio) = match theirs {
                Some(t) => (format!("{t:.1}"), format!("{:.2}", ours / t)),
                None => ("n/a".into(), "n/a".into()),
            };
            println!("plain-{depth:<4} {layout:<14} {ours:>12.1} {theirs_text:>12} {ratio:>7}");
        }
    }
}
