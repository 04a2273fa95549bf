//! He et al. (2015), Figure 7: "standard deviations (std) of layer responses on CIFAR-10. The
//! responses are the outputs of each 3x3 layer, after BN and before nonlinearity" (the ReLU, or in
//! a residual block the addition). The paper's argument: residual functions are closer to zero
//! than the unreferenced functions of plain nets, and deeper ResNets have smaller responses.
//!
//! The std is over every element of a layer's response (images, channels, positions) on the
//! evaluation set, in evaluation mode.

use super::{run_label, Written};
use crate::data::{DataConfig, Dataset};
use crate::model::{Model, Taps};
use crate::report::chart::{Colours, Curve, ErrorChart, Scale};
use crate::report::table::csv_text;
use crate::run::{RunConfig, RunDir};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// One 3x3 layer's response.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerResponse {
    /// 1-based position among the network's 3x3 layers.
    pub layer: usize,
    /// The convolution's name (`layer2.0.conv1`).
    pub name: String,
    /// 0 for the stem, 1.. for the stages.
    pub stage: usize,
    /// The standard deviation of the response, over images, channels and positions.
    pub std: f64,
}

/// The responses of one run's network.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResponses {
    /// The run directory's name.
    pub run: String,
    /// The model's name (`resnet-20`).
    pub model: String,
    /// Every 3x3 layer's response, in network order.
    pub layers: Vec<LayerResponse>,
}

impl RunResponses {
    /// The mean of the layers' response std (0 without layers), for comparing depths.
    pub fn mean_std(&self) -> f64 {
        self.layers.iter().map(|l| l.std).sum::<f64>() / self.layers.len().max(1) as f64
    }
}

/// Images per forward pass.
const BATCH: usize = 250;

/// The response std of every 3x3 layer of `model` (main path: the shortcut projections are 1x1)
/// over the first `images` images of `data`'s evaluation set, in evaluation mode.
pub fn layer_responses(model: &Model, data: &Dataset, images: usize) -> Result<Vec<LayerResponse>> {
    let layers: Vec<_> =
        model.conv_layers().into_iter().filter(|l| l.conv.kernel == 3 && !l.on_shortcut && l.bn.is_some()).collect();
    if layers.is_empty() {
        bail!("{} has no 3x3 layers", model.spec);
    }
    let n = images.min(data.num_eval());
    if n == 0 {
        bail!("the evaluation set is empty");
    }
    let taps = Taps::new(layers.iter().map(|l| l.conv.name.as_str()));
    let device = model.vs.device();
    // Per layer: sum, sum of squares and count, in f64 on the device until the end.
    let zeros = || Tensor::zeros([3], (Kind::Double, device));
    let mut moments: Vec<Tensor> = layers.iter().map(|_| zeros()).collect();
    tch::no_grad(|| -> Result<()> {
        for start in (0..n).step_by(BATCH) {
            let (images, _) = data.eval_batch(start, BATCH.min(n - start), device);
            let _ = model.forward_tapped(&images.to_device(device), &taps);
            for (layer, m) in layers.iter().zip(&mut moments) {
                let r = taps.take(&layer.conv.name).context("a tapped layer kept no response")?.to_kind(Kind::Double);
                let count = Tensor::full([], r.numel() as f64, (Kind::Double, device));
                *m += Tensor::stack(&[r.sum(Kind::Double), r.square().sum(Kind::Double), count], 0);
            }
        }
        Ok(())
    })?;
    layers
        .iter()
        .zip(&moments)
        .enumerate()
        .map(|(i, (layer, m))| {
            let v = Vec::<f64>::try_from(m)?;
            let mean = v[0] / v[2];
            let variance = (v[1] / v[2] - mean * mean).max(0.0);
            Ok(LayerResponse { layer: i + 1, name: layer.conv.name.clone(), stage: layer.stage, std: variance.sqrt() })
        })
        .collect()
}

/// The responses of complete runs' final weights, each on its own evaluation set (or `data`); a
/// data set several runs share is opened once.
pub fn of_runs(dirs: &[PathBuf], data: Option<&DataConfig>, images: usize) -> Result<Vec<RunResponses>> {
    let mut opened: Vec<(DataConfig, Dataset)> = Vec::new();
    let mut results = Vec::new();
    for dir in dirs {
        let run = RunDir::new(dir);
        let config = match data {
            Some(data) => data.clone(),
            None => RunConfig::load(&run.config())?.data,
        };
        let model = run.load_model().with_context(|| format!("run {}", dir.display()))?;
        let index = match opened.iter().position(|(c, _)| *c == config) {
            Some(index) => index,
            None => {
                let dataset = Dataset::open(&config, Device::Cpu)?;
                opened.push((config, dataset));
                opened.len() - 1
            }
        };
        let layers = layer_responses(&model, &opened[index].1, images)?;
        results.push(RunResponses { run: run_label(dir), model: model.spec.to_string(), layers });
    }
    Ok(results)
}

/// `responses.csv` and the Figure 7 chart (`<stem>.png`, `.svg`) of `runs` in `out`.
pub fn write(runs: &[RunResponses], out: &Path, stem: &str) -> Result<Written> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut written = Written::default();
    let rows: Vec<Vec<String>> = runs
        .iter()
        .flat_map(|r| {
            r.layers.iter().map(move |l| {
                vec![
                    r.run.clone(),
                    r.model.clone(),
                    l.layer.to_string(),
                    l.name.clone(),
                    l.stage.to_string(),
                    format!("{:.6}", l.std),
                ]
            })
        })
        .collect();
    let csv = csv_text(&["run", "model", "layer", "name", "stage", "std"], &rows)?;
    written.csv(out.join(format!("{stem}.csv")), &csv)?;
    // A study's colours: the same network (its seeds, its plain twin) one colour, as in the error charts.
    let colours = Colours::of(runs.iter().map(|r| r.model.as_str()));
    let panel = |title: &str, x_label: &str, sorted: bool| ErrorChart {
        title: title.into(),
        x_label: x_label.into(),
        y_label: "std of the response".into(),
        curves: runs
            .iter()
            .map(|r| {
                let mut stds: Vec<f64> = r.layers.iter().map(|l| l.std).collect();
                if sorted {
                    stds.sort_by(|a, b| b.total_cmp(a));
                }
                Curve {
                    label: r.run.clone(),
                    series: colours.of_network(&r.model),
                    dashed: r.model.starts_with("plain"),
                    points: stds.iter().enumerate().map(|(i, &s)| ((i + 1) as f64, s)).collect(),
                    marker: r.model.starts_with("plain"),
                    band: vec![],
                }
            })
            .collect(),
        y_range: None,
        y_scale: Scale::Linear,
        band_label: None,
    };
    let panels = [
        panel("Layer responses (He et al. 2015, Fig. 7, top)", "layer index (original)", false),
        panel("Sorted by magnitude (Fig. 7, bottom)", "layer index (sorted by magnitude)", true),
    ];
    let caption = "Std of each 3x3 layer's response (after BN, before ReLU or addition) on the test set; \
                   one colour per depth, plain nets dashed with markers, residual nets solid.";
    written.chart(out, stem, caption, &panels)?;
    Ok(written)
}

/// `reslab analyze responses`: every run's responses, their CSV and chart, and a line per run.
pub fn analyze(
    runs: &[PathBuf],
    data: Option<&DataConfig>,
    images: usize,
    out: &Path,
) -> Result<(Vec<RunResponses>, Written)> {
    let results = of_runs(runs, data, images)?;
    let written = write(&results, out, "responses")?;
    Ok((results, written))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::DataSource;

    fn sample() -> Dataset {
        Dataset::open(&DataConfig::new(DataSource::Embedded), Device::Cpu).unwrap()
    }

    #[test]
    fn finds_exactly_the_3x3_layers_and_a_zero_bn_weight_gives_zero_std() {
        let data = sample();
        for (name, layers) in [("resnet-20", 19), ("plain-20", 19), ("resnet-8", 7)] {
            let spec: crate::model::ModelSpec = name.parse().unwrap();
            let model = Model::new(&spec.with_shortcut(crate::model::Shortcut::B), Device::Cpu).unwrap();
            // A layer whose BN has weight 0 (and bias 0) responds with exactly 0.
            tch::no_grad(|| {
                let _ = model.vs.variables()["layer2.0.bn2.weight"].shallow_clone().zero_();
            });
            let responses = layer_responses(&model, &data, 40).unwrap();
            assert_eq!(responses.len(), layers, "{name}");
            assert_eq!(responses[0].name, "conv1");
            assert_eq!(responses[0].stage, 0);
            assert_eq!(responses.last().unwrap().stage, 3);
            let zeroed = responses.iter().position(|r| r.name == "layer2.0.conv2").unwrap();
            assert_eq!(responses[zeroed].std, 0.0, "{name}");
            assert!(responses[..zeroed].iter().all(|r| r.std > 0.0), "{responses:?}");
            // After it a residual net still carries its input; a plain net carries nothing.
            let after = &responses[zeroed + 1..];
            assert!(!after.is_empty());
            match model.spec.kind {
                crate::model::Kind::Residual => assert!(after.iter().all(|r| r.std > 0.0), "{responses:?}"),
                crate::model::Kind::Plain => assert!(after.iter().all(|r| r.std == 0.0), "{responses:?}"),
            }
        }
    }

    #[test]
    fn the_csv_has_a_row_per_layer_and_the_promised_columns() {
        let dir = tempfile::tempdir().unwrap();
        let layers = |s: f64| {
            (1..=3).map(|i| LayerResponse { layer: i, name: format!("c{i}"), stage: i, std: s * i as f64 }).collect()
        };
        let runs = [
            RunResponses { run: "plain-8-seed0".into(), model: "plain-8".into(), layers: layers(1.0) },
            RunResponses { run: "resnet-8-seed0".into(), model: "resnet-8".into(), layers: layers(0.5) },
        ];
        let written = write(&runs, dir.path(), "responses").unwrap();
        let text = std::fs::read_to_string(dir.path().join("responses.csv")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "run,model,layer,name,stage,std");
        assert_eq!(lines.len(), 7);
        assert_eq!(lines[6], "resnet-8-seed0,resnet-8,3,c3,3,1.500000");
        assert_eq!(written.files.len(), 3);
        assert!(dir.path().join("responses.png").is_file() && written.figures[0].1.contains("<svg"));
    }
}
