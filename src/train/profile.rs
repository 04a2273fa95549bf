//! Where a training step's time goes: the steps of a bench under libtorch's profiler
//! ([`super::probe::profiled_steps`]), their ops grouped into what docs/performance.md's profile
//! splits: convolutions, BN, ReLU, the additions, the fused BN operations, the SGD update, the
//! rest. An op's whole time (its own and its children's) goes to the group of the outermost op
//! around it, so nothing is counted twice; autograd's backward nodes are grouped as the forward
//! ops they differentiate.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The groups, in the order they are printed.
pub const GROUPS: [&str; 8] = [
    "convolutions",
    "BatchNorm",
    "ReLU",
    "additions",
    "fused BN + ReLU (+ addition)",
    "SGD update",
    "gradient accumulation",
    "other (loss, pooling, classifier, ...)",
];

/// The group of an op, by its name as libtorch's profiler records it (`aten::conv2d`,
/// `autograd::engine::evaluate_function: ConvolutionBackward0`, `reslab::bn_relu`).
pub fn group(name: &str) -> &'static str {
    let name = name.to_ascii_lowercase();
    let op = name.rsplit([' ', ':']).next().unwrap_or(&name);
    // (The fused operations' backward nodes are autograd's `CppNode<...BnRelu>`.)
    if name.contains("reslab::bn_") || name.contains("bnrelu>") || name.contains("bnaddrelu>") {
        GROUPS[4]
    } else if name.contains("reslab::sgd_update") {
        GROUPS[5]
    } else if name.contains("conv") {
        GROUPS[0]
    } else if name.contains("batch_norm") || name.contains("batchnorm") {
        GROUPS[1]
    } else if name.contains("relu") || name.contains("threshold") {
        GROUPS[2]
    } else if op == "add" || op == "addbackward0" {
        GROUPS[3]
    } else if name.contains("accumulategrad") {
        GROUPS[6]
    } else {
        GROUPS[7]
    }
}

/// One event of the trace.
#[derive(Debug, Deserialize)]
struct Event {
    name: String,
    #[serde(default)]
    ph: String,
    #[serde(default)]
    ts: f64,
    #[serde(default)]
    dur: f64,
    #[serde(default)]
    tid: serde_json::Value,
}

/// Microseconds per group of the outermost ops of each thread of a Chrome trace's complete events.
pub fn split(trace: &str) -> Result<BTreeMap<&'static str, f64>> {
    let events: Vec<Event> = serde_json::from_str(trace.trim_end().trim_end_matches(',')).or_else(|_| {
        // libtorch leaves the array open on some versions: close it.
        serde_json::from_str(&format!("{}]", trace.trim_end().trim_end_matches(',')))
    })?;
    let mut by_thread: BTreeMap<String, Vec<&Event>> = BTreeMap::new();
    for event in events.iter().filter(|e| e.ph == "X") {
        by_thread.entry(event.tid.to_string()).or_default().push(event);
    }
    let mut totals = BTreeMap::new();
    for events in by_thread.values_mut() {
        events.sort_by(|a, b| a.ts.total_cmp(&b.ts).then(b.dur.total_cmp(&a.dur)));
        let mut covered_until = f64::NEG_INFINITY;
        for event in events.iter().filter(|e| e.dur > 0.0) {
            if event.ts >= covered_until {
                *totals.entry(group(&event.name)).or_insert(0.0) += event.dur;
                covered_until = event.ts + event.dur;
            }
        }
    }
    Ok(totals)
}

/// The split of the trace file at `path`, per step of `steps`: (group, ms per step) in
/// [`GROUPS`]'s order, groups with no time left out.
pub fn split_per_step(path: &Path, steps: usize) -> Result<Vec<(&'static str, f64)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the profile {}", path.display()))?;
    let totals = split(&text).with_context(|| format!("reading the profile {}", path.display()))?;
    let per_step = |us: f64| us / 1000.0 / steps.max(1) as f64;
    Ok(GROUPS.iter().filter_map(|g| totals.get(g).map(|us| (*g, per_step(*us)))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_are_grouped_by_what_they_compute_forward_and_backward() {
        assert_eq!(group("aten::conv2d"), "convolutions");
        assert_eq!(group("autograd::engine::evaluate_function: ConvolutionBackward0"), "convolutions");
        assert_eq!(group("aten::batch_norm"), "BatchNorm");
        assert_eq!(group("NativeBatchNormBackward0"), "BatchNorm");
        assert_eq!(group("aten::relu"), "ReLU");
        assert_eq!(group("autograd::engine::evaluate_function: ReluBackward0"), "ReLU");
        assert_eq!(group("aten::add"), "additions");
        assert_eq!(group("autograd::engine::evaluate_function: AddBackward0"), "additions");
        assert_eq!(group("aten::add_"), GROUPS[7], "in-place adds are the optimizer's or autograd's");
        assert_eq!(group("reslab::bn_add_relu_backward"), GROUPS[4]);
        let node = "autograd::engine::evaluate_function: torch::autograd::CppNode<(anonymous namespace)::BnAddRelu>";
        assert_eq!(group(node), GROUPS[4]);
        assert_eq!(group("reslab::sgd_update"), "SGD update");
        assert_eq!(group("torch::autograd::AccumulateGrad"), "gradient accumulation");
        assert_eq!(group("aten::cross_entropy_loss"), GROUPS[7]);
    }

    #[test]
    fn only_the_outermost_op_of_each_thread_counts() {
        let trace = r#"[
            {"name": "aten::batch_norm", "ph": "X", "ts": 0, "dur": 10, "tid": 1},
            {"name": "aten::native_batch_norm", "ph": "X", "ts": 1, "dur": 8, "tid": 1},
            {"name": "aten::conv2d", "ph": "X", "ts": 10, "dur": 30, "tid": 1},
            {"name": "aten::add", "ph": "X", "ts": 5, "dur": 4, "tid": 2},
            {"name": "marker", "ph": "i", "ts": 1, "tid": 1},"#;
        let totals = split(trace).unwrap();
        assert_eq!(totals["BatchNorm"], 10.0);
        assert_eq!(totals["convolutions"], 30.0);
        assert_eq!(totals["additions"], 4.0, "another thread's op is its own");
    }
}
