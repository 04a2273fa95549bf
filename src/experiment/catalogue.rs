//! The built-in experiments as the study commands' `--help` lists them: each one's name, title,
//! presets with their lengths and its default preset, read from the experiment files themselves
//! (the registry, [`super::spec::BUILTIN`]), and `paper`.

use super::paper;
use super::preset::Preset;
use super::spec::{Experiment, BUILTIN, PAPER};
use anyhow::Result;

/// The list, a few lines per experiment:
///
/// ```text
/// Built-in experiments, with the iterations of each preset ((default): without --preset):
///   fig1             Plain networks on CIFAR-10 (He et al. 2015, Fig. 1)
///                    smoke 40, demo 100 (default), quick 8000, paper 64000
/// ```
pub fn text() -> Result<String> {
    let mut text =
        String::from("Built-in experiments, with the iterations of each preset ((default): without --preset):\n");
    for (name, _) in BUILTIN {
        let experiment = Experiment::load(name)?;
        let default = experiment.default_preset()?;
        let presets: Vec<String> = Preset::ALL
            .into_iter()
            .filter_map(|preset| {
                let spec = experiment.presets.get(preset.name())?;
                let mark = if preset == default { " (default)" } else { "" };
                Some(format!("{} {}{mark}", preset.name(), spec.iters))
            })
            .collect();
        text += &format!("  {name:<16} {}\n  {:<16} {}\n", experiment.title, "", presets.join(", "));
    }
    let presets: Vec<String> = paper::presets()?
        .into_iter()
        .map(|preset| match preset == paper::DEFAULT_PRESET {
            true => format!("{} (default)", preset.name()),
            false => preset.name().to_string(),
        })
        .collect();
    text += &format!(
        "  {:<16} {} in one report\n  {:<16} {}: each study at its own length\n",
        PAPER,
        paper::STUDIES.join(", "),
        "",
        presets.join(", ")
    );
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_experiment_is_listed_with_its_default_preset() {
        let text = text().unwrap();
        assert!(text.contains("\n  fig1             Plain networks on CIFAR-10"), "{text}");
        assert!(text.contains("smoke 40, demo 100 (default), quick 8000, paper 64000\n"), "{text}");
        assert!(text.contains("  paper            fig1, fig6, table6, abc in one report\n"), "{text}");
        assert_eq!(text.lines().count(), 1 + 2 * (BUILTIN.len() + 1), "{text}");
    }
}
