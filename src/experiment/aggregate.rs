//! From run directories to what the report shows: each network's runs over seeds, their mean and
//! spread, the curves, and whether the paper's predictions held, as tables, charts and a report.

use super::claim_outputs::{claim_line, claim_rows, forest_caption, forest_chart};
use super::claims::{self, CheckOutcome};
use super::judging::Judging;
use super::on_demand::FIRST_SEEDS;
use super::output_set;
use super::plan::PlannedRun;
use super::preset::Preset;
use super::results::{read_groups, Band, GroupResult, LandscapeNumbers, RunResult};
use super::spec::{ChartSettings, Curves, Experiment, YScale};
use super::study_dir::StudyDir;
use crate::analysis::grad_norms::{self, RunGradNorms};
use crate::analysis::landscape;
use crate::analysis::shattering::{self, ShatteringSettings};
use crate::analysis::{responses, Written};
use crate::data::{DataSource, Dataset};
use crate::report::chart::{self, Colours, Curve, ErrorChart};
use crate::report::forest;
use crate::report::html::{self, Claim, Figure, Page, RunDetails, Section, Table as HtmlTable};
use crate::report::table::{self, ClaimLine, ClaimRow, ContextRow, GroupRow, MeanStd, RunRow, TableHeading};
use crate::report::verdict::Verdict;
use crate::run::config::{DeviceChoice, PAPER_ITERS};
use crate::run::metrics::MetricsRow;
use crate::run::{RunConfig, RunSummary};
use crate::run::{RunDir, RunState};
use crate::util::fs::write_file;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// What aggregation found and wrote.
pub struct StudyReport {
    /// Each network's complete runs, in the experiment's order.
    pub groups: Vec<GroupResult>,
    /// The outcome of each `[[expect]]` claim.
    pub checks: Vec<CheckOutcome>,
    /// How the claims were judged (as the study's folder records it).
    pub judging: Judging,
    /// Planned runs whose directory holds no complete run, with their state.
    pub incomplete: Vec<(String, RunState)>,
    /// The study as a section of an HTML report (its own `report.html`, or the paper's).
    pub section: Section,
    /// Every file written (tables, charts, analyses, the report).
    pub files: Vec<PathBuf>,
}

impl StudyReport {
    /// What `reslab reproduce` prints: a line per network (mean over seeds), the checks, the files.
    pub fn text(&self, experiment: &Experiment) -> String {
        let mut text = format!("\n{}: {}\n", experiment.name, experiment.title);
        let w = self.groups.iter().map(|g| g.name.len()).max().unwrap_or(0).max(16);
        text += &format!(
            "{:<w$} {:>5} {:>18} {:>18} {:>18}\n",
            "run", "seeds", "final train err", "final test err", "mean train err"
        );
        for g in &self.groups {
            let cell = |s: MeanStd| format!("{}%", s.text());
            text += &format!(
                "{:<w$} {:>5} {:>18} {:>18} {:>18}\n",
                g.name,
                g.runs.len(),
                cell(g.stat(|s| s.final_train_err)),
                cell(g.stat(|s| s.final_test_err)),
                cell(g.stat(|s| s.mean_train_err))
            );
        }
        for (dir, state) in &self.incomplete {
            text += &format!("{dir}: {state}, not in the tables\n");
        }
        if !self.checks.is_empty() {
            text += &format!("claims ({}; docs/experiments.md#claims-and-verdicts):\n", self.judging.text());
        }
        for check in &self.checks {
            text += &check.lines();
        }
        if !self.checks.is_empty() {
            let count = |v: Verdict| self.checks.iter().filter(|c| c.verdict == v).count();
            text += &format!(
                "claims: {} held, {} did not hold, {} inconclusive, {} not measured\n",
                count(Verdict::Held),
                count(Verdict::NotHeld),
                count(Verdict::Inconclusive),
                count(Verdict::NotMeasured)
            );
        }
        for file in &self.files {
            text += &format!("wrote {}\n", file.display());
        }
        text
    }
}

/// Reads the planned runs' directories in `out` and writes the study's tables, charts and
/// `report.html` there, as one set: what an earlier aggregation wrote that no longer applies is
/// removed, and a failure leaves the earlier set whole.
pub fn aggregate(experiment: &Experiment, preset: Preset, runs: &[PlannedRun], out: &Path) -> Result<StudyReport> {
    let (mut report, files) =
        output_set::write_as_one_set(&StudyDir::new(out), |to| write_set(experiment, preset, runs, out, to))?;
    report.files = files;
    Ok(report)
}

/// The study in `out`, aggregated into the folder `to`.
fn write_set(
    experiment: &Experiment,
    preset: Preset,
    runs: &[PlannedRun],
    out: &Path,
    to: &Path,
) -> Result<StudyReport> {
    let (mut groups, incomplete) = read_groups(experiment, runs)?;
    let mut files = Vec::new();
    let mut figures = Vec::new();
    if !groups.is_empty() {
        let caption = chart_caption(experiment, &groups);
        for chart in write_charts(experiment, &groups, to)? {
            if chart.extension().is_some_and(|e| e == "svg") {
                figures.push(Figure { caption: caption.clone(), svg: read_svg(&chart)? });
            }
            files.push(chart);
        }
        let analysed = analyses(experiment, preset, &mut groups, (out, to))?;
        files.extend(analysed.files);
        figures.extend(analysed.figures.into_iter().map(|(caption, svg)| Figure { caption, svg }));
    }
    let judging = Judging::of_study(&StudyDir::new(out))?;
    let checks = judging.check_all(&experiment.expect, &groups, paper_iters(experiment));
    if let Some(forest) = forest_chart(experiment, &checks, &judging) {
        let [png, svg] = StudyDir::new(to).claims_chart(&experiment.name);
        forest::render(&forest, &png, &svg)?;
        figures.push(Figure { caption: forest_caption(&judging), svg: read_svg(&svg)? });
        files.extend([png, svg]);
    }
    files.extend(write_tables(experiment, &groups, &checks, to)?);
    // What the report says of the study comes from its record where it has one.
    let (preset, command) = match StudyDir::new(out).recorded_study() {
        Ok((record, _)) => (record.preset, record.command_line(&experiment.name, out)),
        Err(_) => {
            (preset, format!("reslab reproduce {} --preset {} --out {}", experiment.name, preset.name(), out.display()))
        }
    };
    let section = section(experiment, preset, runs, (&groups, &checks, &judging), figures)?;
    let mut lede = vec![format!(
        "Made by reslab {} from the run directories in this folder, as this command runs it: {command}.",
        env!("CARGO_PKG_VERSION"),
    )];
    lede.extend(devices_line(&groups));
    let page = Page { title: experiment.title.clone(), lede, sections: vec![section.clone()] };
    let report = StudyDir::new(to).report();
    html::write(&page, &report)?;
    files.push(report);
    Ok(StudyReport { groups, checks, judging, incomplete, section, files })
}

/// The experiment's `[analysis]` on its complete runs (responses go into the groups, for the
/// checks): their files and figures.
/// Reads the runs in `out`, writes into `to`.
fn analyses(
    experiment: &Experiment,
    preset: Preset,
    groups: &mut [GroupResult],
    (out, to): (&Path, &Path),
) -> Result<Written> {
    let settings = &experiment.analysis;
    let mut written = Written::default();
    let dirs = |groups: &[GroupResult]| -> Vec<PathBuf> {
        groups.iter().flat_map(|g| g.runs.iter().map(|r| out.join(&r.dir))).collect()
    };
    if settings.responses {
        let all = responses::of_runs(&dirs(groups), None, usize::MAX)?;
        for (run, result) in groups.iter_mut().flat_map(|g| g.runs.iter_mut()).zip(&all) {
            run.responses = Some(result.layers.iter().map(|l| l.std).collect());
        }
        written.extend(responses::write(&all, to, &StudyDir::analysis_stem(&experiment.name, "responses"))?);
    }
    if settings.grad_norms > 0 {
        let recorded: Vec<RunGradNorms> = dirs(groups).iter().filter_map(|dir| RunGradNorms::read(dir).ok()).collect();
        if !recorded.is_empty() {
            written.extend(grad_norms::write(&recorded, to, &StudyDir::analysis_stem(&experiment.name, "grad-norms"))?);
        }
    }
    if settings.shattering {
        let first_runs: Vec<PathBuf> = groups.iter().filter_map(|g| g.runs.first()).map(|r| out.join(&r.dir)).collect();
        let mut depths: Vec<i64> = groups.iter().map(|g| g.depth).collect();
        depths.sort_unstable();
        depths.dedup();
        let data_config = RunConfig::load(&RunDir::new(&first_runs[0]).config())?.data;
        let data = Dataset::open(&data_config, tch::Device::Cpu)?;
        let shattering_settings = ShatteringSettings { cifar_depths: depths, runs: first_runs, ..Default::default() };
        let shattering_out = StudyDir::new(to).shattering();
        written.extend(shattering::analyze(&shattering_settings, &data, &shattering_out)?.2);
    }
    if let Some(base) = &settings.landscape {
        let own = experiment.preset(preset)?.landscape.clone().unwrap_or_default();
        let landscape_settings = own.over(base).settings().context("[analysis.landscape]")?;
        let all = dirs(groups);
        let (previous, stage) = (StudyDir::new(out).landscape(), StudyDir::new(to).landscape());
        landscape::carry_finished(&all, &previous, &stage)?;
        let (results, files) = landscape::analyze(&all, &landscape_settings, None, None, &stage, "landscape")?;
        for (run, result) in groups.iter_mut().flat_map(|g| g.runs.iter_mut()).zip(&results) {
            run.landscape = Some(LandscapeNumbers {
                sharpness: result.summary.sharpness,
                convex_share: result.summary.convex_share,
            });
        }
        written.extend(files);
    }
    Ok(written)
}

/// The study as a report section: caveats, claims with their evidence, the figure, the tables,
/// and every planned run with its state and configuration.
fn section(
    experiment: &Experiment,
    preset: Preset,
    runs: &[PlannedRun],
    (groups, checks, judging): (&[GroupResult], &[CheckOutcome], &Judging),
    figures: Vec<Figure>,
) -> Result<Section> {
    // What ran and for how long is in the summary; the notes are the caveats.
    let mut notes = Vec::new();
    if preset != Preset::Paper && !runs.is_empty() {
        notes.push(format!(
            "Preset {}: shorter than the paper's schedule, so the verdicts say what these runs show, not whether \
             the paper's numbers hold.",
            preset.name()
        ));
    }
    if let Some(note) = &experiment.preset(preset)?.note {
        notes.push(format!("Note: {note}."));
    }
    let mut details = Vec::new();
    for run in runs {
        let dir = run.dir().clone();
        let state = run.run.state();
        if !state.is_complete() {
            notes.push(format!("{} is {state}: not in the tables, charts or claims.", run.dir_name()));
        }
        let config = std::fs::read_to_string(dir.config()).unwrap_or_default();
        details.push(RunDetails {
            dir: run.dir_name(),
            complete: state.is_complete(),
            state: state.to_string(),
            config,
        });
    }
    let paper = experiment.paper_source.as_deref().map(|s| format!("; paper: {s}")).unwrap_or_default();
    let run_rows: Vec<RunRow> = groups.iter().flat_map(|g| g.runs.iter().map(move |r| run_row(g, r))).collect();
    let group_rows: Vec<GroupRow> = groups.iter().map(GroupResult::table_row).collect();
    let tables = vec![
        HtmlTable {
            caption: format!("Errors in percent, mean ± std over seeds{paper}"),
            grid: table::study_grid(&group_rows, &context_rows(experiment)),
        },
        HtmlTable { caption: "Every run (errors in percent)".into(), grid: table::summary_grid(&run_rows) },
    ];
    let claims = checks
        .iter()
        .map(|c| Claim {
            source: c.source.clone(),
            claim: format!("{}. {}", c.number, c.claim),
            evidence: c.evidence(),
            verdict: c.verdict,
            caveat: c.caveat.clone(),
        })
        .collect();
    Ok(Section {
        id: experiment.name.clone(),
        title: experiment.title.clone(),
        description: experiment.description.clone(),
        summary: summary(experiment, runs, groups, checks, judging),
        notes,
        claims,
        figures,
        tables,
        runs: details,
    })
}

/// The study in one paragraph of plain words: what ran, for how long, on what; how many runs are
/// complete; how many claims held, which could not be told, which were not measured.
fn summary(
    experiment: &Experiment,
    runs: &[PlannedRun],
    groups: &[GroupResult],
    checks: &[CheckOutcome],
    judging: &Judging,
) -> String {
    let Some(first) = runs.first() else {
        return "No runs planned.".into();
    };
    let mut networks: Vec<&str> = Vec::new();
    let mut seeds: Vec<u64> = Vec::new();
    for run in runs {
        if !networks.contains(&run.name.as_str()) {
            networks.push(&run.name);
        }
        if !seeds.contains(&run.seed) {
            seeds.push(run.seed);
        }
    }
    seeds.sort_unstable();
    let seeds = match (judging, seeds.as_slice()) {
        (Judging::Sequential { cap, rounds }, _) => {
            let each: Vec<String> =
                networks.iter().map(|n| format!("{n} {}", runs.iter().filter(|r| r.name == *n).count())).collect();
            let rounds_text = match rounds.current() {
                1 => "1 round".to_string(),
                n => format!("{n} rounds"),
            };
            format!(
                "seeds on demand over {rounds_text} ({}; {FIRST_SEEDS} to {cap} per network{})",
                each.join(", "),
                rounds.stopped.map(|s| format!("; stopped: {}", s.text())).unwrap_or_default()
            )
        }
        (_, [one]) => format!("one seed ({one})"),
        (_, many) => {
            format!("{} seeds each ({})", many.len(), many.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))
        }
    };
    let iters = first.config().schedule.iters;
    let paper = paper_iters(experiment);
    let length = if iters >= paper {
        format!("{} iterations, the paper's full schedule", thousands(iters))
    } else {
        let share = claims::schedule_share(iters, paper);
        format!("{} iterations ({share} of the paper's {})", thousands(iters), thousands(paper))
    };
    let data = match &first.config().data.source {
        DataSource::Embedded => "the embedded CIFAR-10 sample".to_string(),
        source => source.to_string(),
    };
    let nets = match networks.as_slice() {
        [one] => one.to_string(),
        many => format!("{} networks ({})", many.len(), many.join(", ")),
    };
    let mut text = format!("Trained {nets}, {seeds}, for {length} on {data}.");
    let complete: usize = groups.iter().map(|g| g.runs.len()).sum();
    if complete == runs.len() {
        text += &format!(" All {} runs are complete.", runs.len());
    } else {
        text +=
            &format!(" {complete} of {} runs are complete; the others are left out of everything below.", runs.len());
    }
    if checks.is_empty() {
        return text;
    }
    let numbers = |v: Verdict| -> Vec<String> {
        checks.iter().filter(|c| c.verdict == v).map(|c| c.number.to_string()).collect()
    };
    let listed = |v: Verdict, what: &str| {
        let numbers = numbers(v);
        match numbers.len() {
            0 => None,
            1 => Some(format!("claim {} {what}", numbers[0])),
            _ => Some(format!("claims {} {what}", numbers.join(", "))),
        }
    };
    let held = numbers(Verdict::Held).len();
    let mut parts = vec![match held {
        0 => format!("none of its {} claims held", checks.len()),
        n if n == checks.len() => format!("every one of its {n} claims held"),
        n => format!("{n} of its {} claims held", checks.len()),
    }];
    parts.extend(listed(Verdict::NotHeld, "did not hold (the runs contradict it)"));
    parts.extend(listed(Verdict::Inconclusive, "could not be told (too few seeds, or an interval across the line)"));
    parts.extend(listed(Verdict::NotMeasured, "were not measured (a run they need is missing)"));
    let last = parts.pop().unwrap_or_default();
    let parts = if parts.is_empty() { last } else { format!("{}, and {last}", parts.join(", ")) };
    let confidence = match judging {
        Judging::Fixed => "At 95% confidence".to_string(),
        Judging::Sequential { .. } => {
            let settled: Vec<String> = checks
                .iter()
                .filter_map(|c| c.settled_at.map(|n| format!("claim {} at {n} seeds per network", c.number)))
                .collect();
            let settled = if settled.is_empty() { String::new() } else { format!("; settled: {}", settled.join(", ")) };
            format!(
                "With sequential intervals (at most 5% chance per claim of a false verdict at any of its looks{settled})"
            )
        }
    };
    text += &format!(" {confidence}, {parts}.");
    if checks.iter().any(|c| c.caveat.is_some()) {
        text += " The runs are far shorter than the paper's, so a claim about the end of training says so beside its verdict.";
    }
    text
}

/// `64000` as `64,000`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The length of the paper's schedule for this experiment: its `paper` preset's.
pub fn paper_iters(experiment: &Experiment) -> usize {
    experiment.preset(Preset::Paper).map(|p| p.iters).unwrap_or(PAPER_ITERS)
}

fn context_rows(experiment: &Experiment) -> Vec<ContextRow> {
    experiment
        .context
        .iter()
        .map(|c| ContextRow { method: c.method.clone(), err: c.err, note: c.note.clone() })
        .collect()
}

fn write_tables(
    experiment: &Experiment,
    groups: &[GroupResult],
    checks: &[CheckOutcome],
    out: &Path,
) -> Result<Vec<PathBuf>> {
    let heading = TableHeading {
        title: experiment.title.clone(),
        description: experiment.description.clone(),
        paper_source: experiment.paper_source.clone(),
    };
    let run_rows: Vec<RunRow> = groups.iter().flat_map(|g| g.runs.iter().map(move |r| run_row(g, r))).collect();
    let group_rows: Vec<GroupRow> = groups.iter().map(GroupResult::table_row).collect();
    let context = context_rows(experiment);
    let check_texts: Vec<String> = checks.iter().map(CheckOutcome::text).collect();
    let claim_lines: Vec<ClaimLine> = checks.iter().map(claim_line).collect();
    let stem = experiment.table.clone().unwrap_or_else(|| "table".into());
    let claim_rows: Vec<ClaimRow> = checks.iter().flat_map(claim_rows).collect();
    let folder = StudyDir::new(out);
    let ([summary_csv, summary_md], [study_csv, study_md]) = (folder.summary_tables(), folder.study_tables(&stem));
    let files = [
        (folder.claims_csv(), table::claims_csv(&claim_rows)?),
        (summary_csv, table::summary_csv(&run_rows)?),
        (summary_md, table::summary_markdown(&heading, &run_rows, &[])),
        (study_csv, table::study_csv(&group_rows, &context, &claim_lines)?),
        (study_md, table::study_markdown(&heading, &group_rows, &context, &check_texts)),
    ];
    for (path, text) in &files {
        write_file(path, text.as_bytes())?;
    }
    Ok(files.into_iter().map(|(path, _)| path).collect())
}

/// The device a run's last session computed on (`cpu`, `cuda:0`), for `summary.csv`; `None`
/// where its summary does not record it.
fn device_of(summary: &RunSummary) -> Option<String> {
    summary.provenance.as_ref()?.device.map(|device| device.to_string())
}

/// The report's line on where the runs computed: each device with its processor and how many of
/// the runs it finished, from their summaries.
fn devices_line(groups: &[GroupResult]) -> Option<String> {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for run in groups.iter().flat_map(|g| &g.runs) {
        let Some(provenance) = &run.summary.provenance else { continue };
        let Some(device) = provenance.device else { continue };
        let processor = match &provenance.gpu {
            Some(gpu) if device != DeviceChoice::Cpu => gpu.clone(),
            _ => provenance.cpu.clone(),
        };
        *counts.entry(format!("{device} ({processor})")).or_default() += 1;
    }
    let runs: usize = groups.iter().map(|g| g.runs.len()).sum();
    let recorded: usize = counts.values().sum();
    if counts.is_empty() {
        return None;
    }
    let mut line =
        counts.iter().map(|(device, n)| format!("{device}: {n} of the {runs} runs")).collect::<Vec<_>>().join("; ");
    if recorded < runs {
        line += &format!("; {} runs do not record it", runs - recorded);
    }
    Some(format!("Computed on {line}."))
}

fn run_row(group: &GroupResult, run: &RunResult) -> RunRow {
    let s = &run.summary;
    RunRow {
        run: run.dir.clone(),
        model: group.model.clone(),
        variant: group.variant.clone(),
        params: s.params,
        macs: s.macs,
        iters: s.iters_done,
        final_train_err: s.final_train_err,
        final_test_err: s.final_test_err,
        mean_train_err: s.mean_train_err,
        mean_test_err: s.mean_test_err,
        paper_err: group.paper_err,
        seed: run.seed,
        precision: run.precision,
        img_per_s: s.mean_img_per_s,
        wall_s: s.wall_s,
        device: device_of(s).unwrap_or_default(),
    }
}

/// A chart's error axis: its range (`None`: fitted to the curves by the chart stage) and scale.
pub type ErrorAxis = (Option<(f64, f64)>, chart::Scale);

/// The error axis of a chart of `groups`: the experiment's (`[chart]`, or `aggregate`'s flags)
/// where it fixes one; else the paper's 0-20% for runs of the paper's full schedule (on a linear
/// axis: a log axis has no 0), while shorter runs sit far above 20% and get an axis fitted to
/// them (`None`).
fn y_axis(settings: &ChartSettings, groups: &[&GroupResult]) -> ErrorAxis {
    let scale = match settings.y_scale {
        YScale::Linear => chart::Scale::Linear,
        YScale::Log => chart::Scale::Log,
    };
    if let Some(range) = settings.y_range {
        return (Some((range.low, range.high)), scale);
    }
    let full = groups.iter().flat_map(|g| &g.runs).all(|r| r.summary.iters_done >= PAPER_ITERS);
    ((full && scale == chart::Scale::Linear).then_some((0.0, 20.0)), scale)
}

/// The figure (PNG and SVG): the experiment's panels side by side, or one chart (one per depth
/// where the experiment asks and the runs span several).
fn write_charts(experiment: &Experiment, groups: &[GroupResult], out: &Path) -> Result<Vec<PathBuf>> {
    let colours = Colours::of(groups.iter().map(|g| g.name.as_str()));
    // One error axis for every chart of the study: fixed, the paper's 0-20% only where every
    // run reached the paper's schedule, or fitted (and shared across panels) by the chart stage.
    let axis = y_axis(&experiment.chart, &groups.iter().collect::<Vec<_>>());
    if !experiment.panels.is_empty() {
        let charts: Vec<ErrorChart> = experiment
            .panels
            .iter()
            .map(|panel| {
                let members: Vec<&GroupResult> =
                    panel.runs.iter().filter_map(|name| groups.iter().find(|g| &g.name == name)).collect();
                error_chart(&panel.title, &members, &colours, panel.show, axis)
            })
            .filter(|chart| !chart.curves.is_empty())
            .collect();
        let [png, svg] = StudyDir::new(out).chart(&experiment.name);
        chart::render_panels(&charts, &png, &svg)?;
        return Ok(vec![png, svg]);
    }
    let mut depths: Vec<i64> = groups.iter().map(|g| g.depth).collect();
    depths.dedup();
    let panels: Vec<(String, String, Vec<&GroupResult>)> = if experiment.chart_per_depth && depths.len() > 1 {
        depths
            .iter()
            .map(|&d| {
                let members = groups.iter().filter(|g| g.depth == d).collect();
                (format!("{}-{d}", experiment.name), format!("{}, {d} layers", experiment.title), members)
            })
            .collect()
    } else {
        vec![(experiment.name.clone(), experiment.title.clone(), groups.iter().collect())]
    };
    let mut files = Vec::new();
    for (stem, title, members) in panels {
        let [png, svg] = StudyDir::new(out).chart(&stem);
        chart::render(&error_chart(&title, &members, &colours, Curves::Both, axis), &png, &svg)?;
        files.extend([png, svg]);
    }
    Ok(files)
}

/// One error of a metrics row.
type ErrorOf = fn(&MetricsRow) -> f64;

/// The paper's style: one colour per network (see [`Colours`]), training error dashed, test
/// error solid (or one of them, `show`); with several seeds the mean curve over seeds in a
/// shaded band (see [`Band`]: the range of two seeds, the 95% interval of the mean of three or
/// more); on the error axis `axis` (see [`y_axis`]).
pub fn error_chart(
    title: &str,
    groups: &[&GroupResult],
    colours: &Colours,
    show: Curves,
    axis: ErrorAxis,
) -> ErrorChart {
    let mut curves = Vec::new();
    let train: ErrorOf = |r| r.train_err;
    let test: ErrorOf = |r| r.test_err;
    let which: Vec<(&str, bool, ErrorOf)> = match show {
        Curves::Both => vec![("train", true, train), ("test", false, test)],
        Curves::Train => vec![("train", false, train)],
        Curves::Test => vec![("test", false, test)],
    };
    for group in groups {
        for &(what, dashed, value) in &which {
            let curve = group.curve(value);
            let band = match Band::for_seeds(group.runs.len()) {
                Band::None => vec![],
                // An interval of an error can reach past 0 or 100; the error cannot.
                _ => curve.iter().map(|p| (p.iter, p.low.max(0.0), p.high.min(100.0))).collect(),
            };
            let label = match show {
                Curves::Both => format!("{} {what}", group.name),
                _ => group.name.clone(),
            };
            curves.push(Curve {
                label,
                series: colours.of_network(&group.name),
                dashed,
                marker: group.variant == "plain",
                points: curve.iter().map(|p| (p.iter, p.mean)).collect(),
                band,
            });
        }
    }
    let (y_range, y_scale) = axis;
    ErrorChart {
        title: title.to_string(),
        x_label: "iteration".into(),
        y_label: match show {
            Curves::Both => "error (%)",
            Curves::Train => "training error (%)",
            Curves::Test => "test error (%)",
        }
        .into(),
        curves,
        y_range,
        y_scale,
        band_label: band_label(groups),
    }
}

/// What the chart's bands show, where every network has the same number of seeds (else each
/// network's own, named).
fn band_label(groups: &[&GroupResult]) -> Option<String> {
    let seeds: Vec<usize> = groups.iter().map(|g| g.runs.len()).collect();
    let first = *seeds.first()?;
    if seeds.iter().all(|&n| n == first) {
        return Band::for_seeds(first).label(first);
    }
    let each: Vec<String> = groups
        .iter()
        .filter_map(|g| Band::for_seeds(g.runs.len()).label(g.runs.len()).map(|l| format!("{} {l}", g.name)))
        .collect();
    (!each.is_empty()).then(|| each.join("; "))
}

/// The figure's caption: the experiment's description and what its bands show.
fn chart_caption(experiment: &Experiment, groups: &[GroupResult]) -> String {
    let all: Vec<&GroupResult> = groups.iter().collect();
    match band_label(&all) {
        Some(band) => format!("{} Mean over seeds; {band}.", experiment.description),
        None => format!("{} One seed per network: no band.", experiment.description),
    }
}

fn read_svg(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::DataSource;
    use crate::experiment::overrides::Overrides;
    use crate::experiment::plan::plan;
    use crate::experiment::spec::{ClaimTime, ErrorRange, Expectation, Prediction, PresetSpec, RunEntry, Seeds};
    use crate::run::metrics::MetricsWriter;
    use crate::run::{RunStatus, RunSummary};

    /// Run directories made by hand: each network's final training error per seed, reached from
    /// 90% over 4 evaluations of a 400-iteration run.
    fn constructed_study(
        out: &Path,
        errors: &[(&str, [f64; 3])],
        expect: Vec<Expectation>,
    ) -> (Experiment, Vec<PlannedRun>) {
        let smoke =
            PresetSpec { data: Some(DataSource::Embedded), iters: 400, eval_every: 100, ..PresetSpec::default() };
        let experiment = Experiment {
            name: "constructed".into(),
            title: "constructed runs".into(),
            description: "Training error (dashed) and test error (solid).".into(),
            runs: errors
                .iter()
                .map(|(name, _)| match name.strip_suffix("-B") {
                    Some(model) => RunEntry {
                        model: model.to_string(),
                        shortcut: Some(crate::model::Shortcut::B),
                        ..RunEntry::default()
                    },
                    None => RunEntry { model: name.to_string(), ..RunEntry::default() },
                })
                .collect(),
            presets: [(Preset::Smoke.name().to_string(), smoke)].into(),
            seeds: Some(Seeds::Count(3)),
            expect,
            ..Experiment::default()
        };
        experiment.validate().unwrap();
        let runs = plan(&experiment, Preset::Smoke, &Overrides::default(), out).unwrap();
        assert_eq!(runs.len(), 3 * errors.len());
        for run in &runs {
            let (_, finals) = errors.iter().find(|(m, _)| *m == run.name).unwrap();
            let end = finals[run.seed as usize];
            let dir = &run.dir().path;
            std::fs::create_dir_all(dir).unwrap();
            run.dir().write_config(run.config()).unwrap();
            let mut writer = MetricsWriter::create(dir).unwrap();
            let rows: Vec<MetricsRow> = (1..=4)
                .map(|i| {
                    let err = 90.0 + (end - 90.0) * i as f64 / 4.0;
                    MetricsRow {
                        iter: 100 * i,
                        epoch: i as f64,
                        lr: 0.1,
                        train_loss: 1.0,
                        train_err: err,
                        test_err: err + 2.0,
                        img_per_s: 100.0,
                        wall_s: i as f64,
                    }
                })
                .collect();
            for row in &rows {
                writer.write(row).unwrap();
            }
            let mean = |f: fn(&MetricsRow) -> f64| rows.iter().map(f).sum::<f64>() / rows.len() as f64;
            RunSummary {
                status: RunStatus::Complete,
                model: run.name.clone(),
                params: 1,
                macs: 1,
                iters_done: 400,
                final_train_err: end,
                final_test_err: end + 2.0,
                mean_train_err: mean(|r| r.train_err),
                mean_test_err: mean(|r| r.test_err),
                mean_img_per_s: 100.0,
                wall_s: 4.0,
                provenance: None,
                all_reduce_ms_per_step: None,
                message: None,
                digests: None,
            }
            .save(dir)
            .unwrap();
        }
        (experiment, runs)
    }

    fn higher(worse: &str, better: &str) -> Expectation {
        Expectation {
            prediction: Prediction::HigherTrainError { worse: worse.into(), better: better.into() },
            claim: None,
            source: Some("constructed".into()),
            at: ClaimTime::End,
            point: Default::default(),
        }
    }

    #[test]
    fn one_colour_per_network_in_every_panel_with_markers_on_the_plain_net() {
        let dir = tempfile::tempdir().unwrap();
        let errors = [
            ("plain-8", [40.0, 44.0, 42.0]),
            ("plain-14", [50.0, 55.0, 53.0]),
            ("resnet-8", [41.0, 44.5, 41.0]),
            ("resnet-14", [38.0, 39.0, 40.0]),
            ("resnet-8-B", [41.0, 44.5, 41.0]),
        ];
        let (experiment, runs) = constructed_study(dir.path(), &errors, vec![]);
        let (groups, _) = read_groups(&experiment, &runs).unwrap();
        let colours = Colours::of(groups.iter().map(|g| g.name.as_str()));
        let named = |n: &str| groups.iter().find(|g| g.name == n).unwrap();
        let series = |chart: &ErrorChart, label: &str| chart.curves.iter().find(|c| c.label == label).unwrap().series;
        let all: Vec<&GroupResult> = groups.iter().collect();
        let axis = y_axis(&ChartSettings::default(), &all);
        let plain = error_chart("plain", &[named("plain-8"), named("plain-14")], &colours, Curves::Both, axis);
        let residual = error_chart(
            "ResNets",
            &[named("resnet-14"), named("resnet-8-B"), named("resnet-8")],
            &colours,
            Curves::Both,
            axis,
        );
        assert_eq!(series(&plain, "plain-8 train"), series(&residual, "resnet-8 train"), "one depth, one colour");
        assert_eq!(series(&plain, "plain-14 test"), series(&residual, "resnet-14 test"));
        assert_ne!(series(&residual, "resnet-8-B train"), series(&residual, "resnet-8 train"), "option B has its own");
        assert_ne!(series(&plain, "plain-8 train"), series(&plain, "plain-14 train"));
        assert!(
            plain.curves.iter().all(|c| c.marker) && residual.curves.iter().all(|c| !c.marker),
            "plain nets marked"
        );
        let train_only = error_chart("training error", &[named("plain-8")], &colours, Curves::Train, axis);
        assert_eq!(train_only.curves.len(), 1);
        assert_eq!(
            (train_only.curves[0].label.as_str(), train_only.y_label.as_str()),
            ("plain-8", "training error (%)")
        );
        assert_eq!((plain.y_range, plain.y_scale), (None, chart::Scale::Linear), "short runs: fitted, linear");
        let fixed = ChartSettings { y_range: Some(ErrorRange { low: 5.0, high: 60.0 }), y_scale: YScale::Log };
        let log = error_chart("plain", &[named("plain-8")], &colours, Curves::Both, y_axis(&fixed, &all));
        assert_eq!((log.y_range, log.y_scale), (Some((5.0, 60.0)), chart::Scale::Log));
        let log_fitted = ChartSettings { y_range: None, y_scale: YScale::Log };
        let log = error_chart("plain", &[named("plain-8")], &colours, Curves::Both, y_axis(&log_fitted, &all));
        assert_eq!((log.y_range, log.y_scale), (None, chart::Scale::Log));
    }

    #[test]
    fn constructed_runs_give_each_verdict_with_its_interval_in_every_output() {
        let dir = tempfile::tempdir().unwrap();
        let errors =
            [("plain-8", [40.0, 44.0, 42.0]), ("plain-14", [50.0, 55.0, 53.0]), ("resnet-8", [41.0, 44.5, 41.0])];
        let expect = vec![higher("plain-14", "plain-8"), higher("plain-8", "plain-14"), higher("resnet-8", "plain-8")];
        let (experiment, runs) = constructed_study(dir.path(), &errors, expect);
        let report = aggregate(&experiment, Preset::Smoke, &runs, dir.path()).unwrap();
        let verdicts: Vec<Verdict> = report.checks.iter().map(|c| c.verdict).collect();
        assert_eq!(verdicts, [Verdict::Held, Verdict::NotHeld, Verdict::Inconclusive], "{}", report.text(&experiment));

        let text = report.text(&experiment);
        for expected in
            ["HELD", "DID NOT HOLD", "INCONCLUSIVE", "95% CI [", "paired by seed, n = 3", "seeds would settle it"]
        {
            assert!(text.contains(expected), "the terminal says {expected}: {text}");
        }
        assert!(text.contains("claims: 1 held, 1 did not hold, 1 inconclusive, 0 not measured"), "{text}");
        assert!(text.contains("caveat: measured at 400 iterations, 0.6% of the paper's 64000"), "the caveat: {text}");
        let table = std::fs::read_to_string(dir.path().join("table.md")).unwrap();
        assert!(table.contains("INCONCLUSIVE [measured at 400 iterations"), "{table}");
        assert!(table.contains("95% CI ["), "{table}");
        let column = |file: &str, name: &str| -> Vec<String> {
            let mut reader = csv::Reader::from_path(dir.path().join(file)).unwrap();
            let at = reader.headers().unwrap().iter().position(|h| h == name).unwrap();
            reader.records().map(|r| r.unwrap()[at].to_string()).collect()
        };
        assert_eq!(
            column("table.csv", "model")[..3],
            ["plain-8", "plain-14", "resnet-8"],
            "as reslab models names them"
        );
        assert_eq!(column("table.csv", "verdict")[3..], ["held", "did not hold", "inconclusive"], "a row per claim");
        assert_eq!(column("summary.csv", "model")[6..], ["resnet-8", "resnet-8", "resnet-8"]);
        assert_eq!(column("summary.csv", "seed")[..3], ["0", "1", "2"]);
        assert_eq!(column("summary.csv", "precision")[0], "fp32");
        let summary = std::fs::read_to_string(dir.path().join("summary.csv")).unwrap();
        assert!(
            summary.lines().next().unwrap().ends_with(",paper_err,seed,precision,img_per_s,wall_s,device"),
            "{summary}"
        );
        for number in ["difference", "low", "high", "n"] {
            assert!(column("claims.csv", number).iter().all(|v| v.parse::<f64>().is_ok()), "{number}: a number");
        }
        let claims = std::fs::read_to_string(dir.path().join("claims.csv")).unwrap();
        assert_eq!(claims.lines().count(), 1 + 3 * 2, "a row per statistic: {claims}");
        assert!(
            claims.lines().nth(1).unwrap().contains(",held,final training error,held,plain-14 - plain-8,"),
            "{claims}"
        );
        let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
        assert!(html.contains("verdict unsure") && html.contains("class=\"caveat\""), "the report's verdicts");
        assert!(dir.path().join("constructed-claims.png").is_file(), "the forest plot");
        assert!(
            html.contains("Each claim&#39;s statistics") && html.matches("<svg").count() == 2,
            "the forest plot is in the report"
        );
        let svg = std::fs::read_to_string(dir.path().join("constructed.svg")).unwrap();
        assert!(svg.contains("band: 95% CI of the mean over 3 seeds"), "the bands are labelled");
        assert!(html.contains("Mean over seeds; band: 95% CI of the mean over 3 seeds."), "and the caption says so");
    }
}
