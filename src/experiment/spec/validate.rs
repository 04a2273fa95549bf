//! What an experiment is checked for beyond its types: runs named once, seeds, claims and panels
//! naming runs it has, presets a command can select. Separate so that the file format reads as
//! the types alone; loading a file and building an experiment in code both end here.

use super::grid::grid_axes;
use super::{Experiment, Prediction, BUILTIN};
use crate::experiment::preset::Preset;
use anyhow::{bail, Context, Result};

impl Experiment {
    /// Checks what the types cannot (runs named once, seeds, claims naming runs it has, ...):
    /// what loading a file does, for an experiment built in code.
    pub fn validate(&self) -> Result<()> {
        if self.runs.is_empty() {
            bail!("no [[runs]]; expected at least one model to train");
        }
        grid_axes(&self.grid, &[])?;
        let mut run_names: Vec<String> = Vec::new();
        for run in &self.runs {
            let name = run.run_name()?;
            if run_names.contains(&name) {
                bail!("[[runs]] has '{name}' twice (model names are canonical: resnet-20 and cifar-resnet-20 are one run)");
            }
            run_names.push(name);
        }
        let preset_seeds = self.presets.values().filter_map(|p| p.seeds.as_ref());
        for seeds in self.seeds.iter().chain(preset_seeds) {
            if seeds.list().is_empty() {
                bail!("seeds = {}; expected a positive count or a non-empty list of seeds", seeds.describe());
            }
        }
        let panel_runs = self.panels.iter().flat_map(|p| p.runs.iter());
        for name in panel_runs {
            if !run_names.contains(name) {
                bail!(
                    "[[panels]] names '{}', which is not one of the runs ({})",
                    name.escape_debug(),
                    run_names.join(", ")
                );
            }
        }
        for expectation in &self.expect {
            for name in expectation.runs() {
                if !run_names.contains(name) {
                    let runs: Vec<String> = run_names.iter().map(|n| n.escape_debug().to_string()).collect();
                    bail!(
                        "[[expect]] names '{}', which is not one of the runs ({})",
                        name.escape_debug(),
                        runs.join(", ")
                    );
                }
            }
        }
        if !self.analysis.responses
            && self.expect.iter().any(|e| matches!(e.prediction, Prediction::SmallerResponses { .. }))
        {
            bail!("an [[expect]] with smaller_responses needs responses = true in [analysis]");
        }
        if self.analysis.landscape.is_none()
            && self.expect.iter().any(|e| matches!(e.prediction, Prediction::FlatterLandscape { .. }))
        {
            bail!("an [[expect]] with flatter_landscape needs an [analysis.landscape] table");
        }
        if let Some(base) = &self.analysis.landscape {
            base.settings().context("[analysis.landscape]")?;
            for (name, preset) in &self.presets {
                if let Some(own) = &preset.landscape {
                    own.over(base).settings().with_context(|| format!("[presets.{name}.landscape]"))?;
                }
            }
        }
        if let Some(bad) = self.reuse.iter().find(|s| BUILTIN.iter().all(|(n, _)| n != s) || *s == &self.name) {
            let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).filter(|n| *n != self.name).collect();
            bail!(
                "reuse = [\"{}\"]; expected built-in studies other than this one ({})",
                bad.escape_debug(),
                names.join(", ")
            );
        }
        let selectable: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
        for (name, preset) in &self.presets {
            if !selectable.contains(&name.as_str()) {
                bail!(
                    "[presets.{}] is a preset no command can select; expected one of {}",
                    name.escape_debug(),
                    selectable.join(", ")
                );
            }
            if preset.iters == 0 || preset.eval_every == 0 {
                bail!("preset '{}': iters and eval_every must be positive", name.escape_debug());
            }
        }
        if self.presets.is_empty() {
            bail!("no [presets.*]; expected at least one of {}", selectable.join(", "));
        }
        self.chart.check().context("[chart]")?;
        if self.slurm.cpus_per_task == 0 {
            bail!("[slurm] cpus_per_task = 0; expected at least 1");
        }
        if self.slurm.aggregate_cpus == Some(0) {
            bail!("[slurm] aggregate_cpus = 0; expected at least 1");
        }
        if let Some(name) = &self.default_preset {
            if !self.presets.contains_key(name) {
                let own: Vec<&str> = self.presets.keys().map(String::as_str).collect();
                bail!(
                    "default_preset = '{}' is not one of the file's presets ({})",
                    name.escape_debug(),
                    own.join(", ")
                );
            }
        }
        Ok(())
    }
}
