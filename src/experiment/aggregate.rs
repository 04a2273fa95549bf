//! From run directories to what the report shows: each network's runs over seeds, their mean and
//! spread, the curves, and whether the paper's predictions held. Reads only run directories, so
//! it works for runs made anywhere (this machine, child processes, a cluster).

use super::plan::PlannedRun;
use super::preset::Preset;
use super::spec::{Expectation, Experiment, Prediction};
use crate::analysis::grad_norms::{self, RunGradNorms};
use crate::analysis::shattering::{self, ShatteringSettings};
use crate::analysis::{responses, Written};
use crate::data::Dataset;
use crate::report::chart::{self, Curve, ErrorChart};
use crate::report::html::{self, Claim, Figure, Page, RunDetails, Section, Table as HtmlTable, Verdict};
use crate::report::table::{self, ContextRow, GroupRow, MeanStd, RunRow, TableHeading};
use crate::run::metrics::{self, MetricsRow};
use crate::run::RunConfig;
use crate::run::{RunDir, RunState, RunSummary};
use crate::util::fs::write_file;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// One complete run (one seed) as read back from its directory.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The run directory's name (`resnet-20-seed0`).
    pub dir: String,
    /// The seed it was trained with.
    pub seed: u64,
    /// Its `summary.toml`.
    pub summary: RunSummary,
    /// Its `metrics.csv`, in order.
    pub rows: Vec<MetricsRow>,
    /// The std of each 3x3 layer's response, where the experiment analyses them.
    pub responses: Option<Vec<f64>>,
}

/// A network's complete runs over seeds.
#[derive(Debug, Clone)]
pub struct GroupResult {
    /// The run name, without seed (`resnet-20`, `resnet-20-B`).
    pub name: String,
    /// Depth in weighted layers.
    pub depth: i64,
    /// "plain" or the shortcut option.
    pub variant: String,
    /// The paper's error (%) for this network, from the experiment file.
    pub paper_err: Option<f64>,
    /// More of the paper's number (e.g. "(mean±std)"), from the experiment file.
    pub paper_note: Option<String>,
    /// The complete runs, one per seed.
    pub runs: Vec<RunResult>,
}

impl GroupResult {
    /// Each 3x3 layer's response std, averaged over the seeds; `None` where not analysed.
    pub fn responses(&self) -> Option<Vec<f64>> {
        let per_seed: Vec<&Vec<f64>> = self.runs.iter().map(|r| r.responses.as_ref()).collect::<Option<_>>()?;
        let layers = per_seed.first()?.len();
        Some((0..layers).map(|i| per_seed.iter().map(|v| v[i]).sum::<f64>() / per_seed.len() as f64).collect())
    }

    /// Mean, sample standard deviation and count over the seeds of `value`.
    pub fn stat(&self, value: impl Fn(&RunSummary) -> f64) -> MeanStd {
        MeanStd::of(&self.runs.iter().map(|r| value(&r.summary)).collect::<Vec<_>>())
    }

    /// `value` at each metrics row, averaged over the seeds (rows at the same iteration), with
    /// its smallest and largest value over the seeds: (iteration, mean, min, max).
    pub fn curve(&self, value: fn(&MetricsRow) -> f64) -> Vec<(f64, f64, f64, f64)> {
        let Some(first) = self.runs.first() else { return Vec::new() };
        first
            .rows
            .iter()
            .filter_map(|row| {
                let values: Vec<f64> = self
                    .runs
                    .iter()
                    .map(|r| r.rows.iter().find(|other| other.iter == row.iter).map(value))
                    .collect::<Option<_>>()?;
                let mean = values.iter().sum::<f64>() / values.len() as f64;
                let min = values.iter().cloned().fold(f64::INFINITY, f64::min);
                let max = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                Some((row.iter as f64, mean, min, max))
            })
            .collect()
    }

    fn table_row(&self) -> GroupRow {
        let first = &self.runs[0].summary;
        GroupRow {
            run: self.name.clone(),
            model: first.model.clone(),
            variant: self.variant.clone(),
            params: first.params,
            final_train_err: self.stat(|s| s.final_train_err),
            final_test_err: self.stat(|s| s.final_test_err),
            mean_train_err: self.stat(|s| s.mean_train_err),
            paper_err: self.paper_err,
            paper_note: self.paper_note.clone(),
        }
    }
}

/// Whether a claim held, with the numbers that decided it.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    /// Held, not held, or not measured.
    pub verdict: Verdict,
    /// The paper's claim in words.
    pub claim: String,
    /// Where the paper makes it (`Fig. 6, left`).
    pub source: String,
    /// The numbers that decided the verdict, in words.
    pub evidence: String,
}

impl CheckOutcome {
    /// One line, for the terminal and the Markdown table.
    pub fn text(&self) -> String {
        let verdict = match self.verdict {
            Verdict::Held => "yes, as in the paper",
            Verdict::NotHeld => "NO, unlike the paper",
            Verdict::NotMeasured => "not measured",
        };
        format!("{}: {verdict} ({})", self.claim, self.evidence)
    }
}

/// What aggregation found and wrote.
pub struct StudyReport {
    /// Each network's complete runs, in the experiment's order.
    pub groups: Vec<GroupResult>,
    /// The outcome of each `[[expect]]` claim.
    pub checks: Vec<CheckOutcome>,
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
        for check in &self.checks {
            text += &format!("{}\n", check.text());
        }
        for file in &self.files {
            text += &format!("wrote {}\n", file.display());
        }
        text
    }
}

/// Reads the planned runs' directories in `out` and writes the study's tables, charts and
/// `report.html` there.
pub fn aggregate(experiment: &Experiment, preset: Preset, runs: &[PlannedRun], out: &Path) -> Result<StudyReport> {
    let mut groups: Vec<GroupResult> = Vec::new();
    let mut incomplete = Vec::new();
    for run in runs {
        let dir = run.dir().path.clone();
        let summary = match RunState::read(&dir) {
            RunState::Complete(summary) => *summary,
            other => {
                incomplete.push((run.dir_name(), other));
                continue;
            }
        };
        let result =
            RunResult { dir: run.dir_name(), seed: run.seed, summary, rows: metrics::read(&dir)?, responses: None };
        match groups.iter_mut().find(|g| g.name == run.name) {
            Some(group) => group.runs.push(result),
            None => {
                let model = &run.config().model;
                let entry = experiment.entry(&run.name);
                groups.push(GroupResult {
                    name: run.name.clone(),
                    depth: model.depth,
                    variant: model.variant(),
                    paper_err: entry.and_then(|e| e.paper_err),
                    paper_note: entry.and_then(|e| e.paper_note.clone()),
                    runs: vec![result],
                })
            }
        }
    }
    let mut files = Vec::new();
    let mut figures = Vec::new();
    if !groups.is_empty() {
        for chart in write_charts(experiment, &groups, out)? {
            if chart.extension().is_some_and(|e| e == "svg") {
                let svg = std::fs::read_to_string(&chart).with_context(|| format!("reading {}", chart.display()))?;
                figures.push(Figure { caption: experiment.description.clone(), svg });
            }
            files.push(chart);
        }
        let analysed = analyses(experiment, &mut groups, out)?;
        files.extend(analysed.files);
        figures.extend(analysed.figures.into_iter().map(|(caption, svg)| Figure { caption, svg }));
    }
    let checks: Vec<CheckOutcome> = experiment.expect.iter().map(|e| check(e, &groups)).collect();
    files.extend(write_tables(experiment, &groups, &checks, out)?);
    let section = section(experiment, preset, runs, &groups, &checks, figures)?;
    let page = Page {
        title: experiment.title.clone(),
        lede: vec![format!(
            "Made by reslab {} from the run directories in this folder: reslab reproduce {} --preset {}.",
            env!("CARGO_PKG_VERSION"),
            experiment.name,
            preset.name()
        )],
        sections: vec![section.clone()],
    };
    let report = out.join("report.html");
    html::write(&page, &report)?;
    files.push(report);
    Ok(StudyReport { groups, checks, incomplete, section, files })
}

/// The experiment's `[analysis]` on its complete runs (responses go into the groups, for the
/// checks): their files and figures.
fn analyses(experiment: &Experiment, groups: &mut [GroupResult], out: &Path) -> Result<Written> {
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
        written.extend(responses::write(&all, out, &format!("{}-responses", experiment.name))?);
    }
    if settings.grad_norms > 0 {
        let recorded: Vec<RunGradNorms> = dirs(groups).iter().filter_map(|dir| RunGradNorms::read(dir).ok()).collect();
        if !recorded.is_empty() {
            written.extend(grad_norms::write(&recorded, out, &format!("{}-grad-norms", experiment.name))?);
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
        let shattering_out = out.join("shattering");
        written.extend(shattering::analyze(&shattering_settings, &data, &shattering_out)?.2);
    }
    Ok(written)
}

/// The study as a report section: caveats, claims with their evidence, the figure, the tables,
/// and every planned run with its state and configuration.
fn section(
    experiment: &Experiment,
    preset: Preset,
    runs: &[PlannedRun],
    groups: &[GroupResult],
    checks: &[CheckOutcome],
    figures: Vec<Figure>,
) -> Result<Section> {
    let mut notes = Vec::new();
    if let Some(first) = runs.first() {
        let mut seeds: Vec<u64> = runs.iter().map(|r| r.seed).collect();
        seeds.sort_unstable();
        seeds.dedup();
        notes.push(format!(
            "Preset {}: {} iterations per run on {}, seeds {:?}; the paper trains 64k iterations on all of CIFAR-10.",
            preset.name(),
            first.config().schedule.iters,
            first.config().data.source,
            seeds
        ));
        if preset != Preset::Paper {
            notes.push(
                "Shorter than the paper's schedule: the verdicts say what these runs show, not whether the paper's \
                 numbers hold."
                    .into(),
            );
        }
    }
    if let Some(note) = &experiment.preset(preset)?.note {
        notes.push(format!("Note: {note}."));
    }
    let mut details = Vec::new();
    for run in runs {
        let dir = run.dir().clone();
        let state = RunState::read(&dir.path);
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
            claim: c.claim.clone(),
            evidence: c.evidence.clone(),
            verdict: c.verdict,
        })
        .collect();
    Ok(Section {
        id: experiment.name.clone(),
        title: experiment.title.clone(),
        description: experiment.description.clone(),
        notes,
        claims,
        figures,
        tables,
        runs: details,
    })
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
    let stem = experiment.table.clone().unwrap_or_else(|| "table".into());
    let files = [
        (out.join("summary.csv"), table::summary_csv(&run_rows)?),
        (out.join("summary.md"), table::summary_markdown(&heading, &run_rows, &[])),
        (out.join(format!("{stem}.csv")), table::study_csv(&group_rows, &context)?),
        (out.join(format!("{stem}.md")), table::study_markdown(&heading, &group_rows, &context, &check_texts)),
    ];
    for (path, text) in &files {
        write_file(path, text.as_bytes())?;
    }
    Ok(files.into_iter().map(|(path, _)| path).collect())
}

fn run_row(group: &GroupResult, run: &RunResult) -> RunRow {
    let s = &run.summary;
    RunRow {
        run: run.dir.clone(),
        model: s.model.clone(),
        variant: group.variant.clone(),
        params: s.params,
        macs: s.macs,
        iters: s.iters_done,
        final_train_err: s.final_train_err,
        final_test_err: s.final_test_err,
        mean_train_err: s.mean_train_err,
        mean_test_err: s.mean_test_err,
        paper_err: group.paper_err,
        img_per_s: s.mean_img_per_s,
        wall_s: s.wall_s,
    }
}

/// The paper's axes (error 0-20%) for runs of the paper's full schedule; shorter runs sit far
/// above 20% and get an axis that fits them.
fn y_range(groups: &[&GroupResult]) -> Option<(f64, f64)> {
    let full = groups.iter().flat_map(|g| &g.runs).all(|r| r.summary.iters_done >= 64_000);
    full.then_some((0.0, 20.0))
}

/// The figure (PNG and SVG): the experiment's panels side by side, or one chart (one per depth
/// where the experiment asks and the runs span several).
fn write_charts(experiment: &Experiment, groups: &[GroupResult], out: &Path) -> Result<Vec<PathBuf>> {
    if !experiment.panels.is_empty() {
        let charts: Vec<ErrorChart> = experiment
            .panels
            .iter()
            .map(|panel| {
                let members: Vec<&GroupResult> =
                    panel.runs.iter().filter_map(|name| groups.iter().find(|g| &g.name == name)).collect();
                error_chart(&panel.title, &members)
            })
            .filter(|chart| !chart.curves.is_empty())
            .collect();
        let (png, svg) = (out.join(format!("{}.png", experiment.name)), out.join(format!("{}.svg", experiment.name)));
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
        let (png, svg) = (out.join(format!("{stem}.png")), out.join(format!("{stem}.svg")));
        chart::render(&error_chart(&title, &members), &png, &svg)?;
        files.extend([png, svg]);
    }
    Ok(files)
}

/// Decided on the means over seeds; not measured when a run the expectation names has no
/// complete run (left out by the preset, failed, or not finished).
pub fn check(expectation: &Expectation, groups: &[GroupResult]) -> CheckOutcome {
    let outcome = |verdict, evidence| CheckOutcome {
        verdict,
        claim: expectation.claim_text(),
        source: expectation.source.clone().unwrap_or_default(),
        evidence,
    };
    let missing: Vec<&str> =
        expectation.runs().into_iter().filter(|n| !groups.iter().any(|g| &g.name == *n)).map(String::as_str).collect();
    if !missing.is_empty() {
        return outcome(Verdict::NotMeasured, format!("no complete run of {}", missing.join(", ")));
    }
    let find = |name: &String| groups.iter().find(|g| &g.name == name).expect("checked above");
    let seeds =
        |g: &GroupResult| if g.runs.len() > 1 { format!(" (mean of {} seeds)", g.runs.len()) } else { String::new() };
    let verdict = |holds: bool| if holds { Verdict::Held } else { Verdict::NotHeld };
    match &expectation.prediction {
        Prediction::HigherTrainError { worse, better } => {
            let (worse, better) = (find(worse), find(better));
            let final_err = |g: &GroupResult| g.stat(|s| s.final_train_err).mean;
            let mean_err = |g: &GroupResult| g.stat(|s| s.mean_train_err).mean;
            let holds = final_err(worse) > final_err(better) && mean_err(worse) > mean_err(better);
            let evidence = format!(
                "training error of {}{} vs {}{}: final {:.2}% vs {:.2}%, mean over the run {:.2}% vs {:.2}%",
                worse.name,
                seeds(worse),
                better.name,
                seeds(better),
                final_err(worse),
                final_err(better),
                mean_err(worse),
                mean_err(better),
            );
            outcome(verdict(holds), evidence)
        }
        Prediction::HigherTestError { worse, better } => {
            let (worse, better) = (find(worse), find(better));
            let (w, b) = (worse.stat(|s| s.final_test_err), better.stat(|s| s.final_test_err));
            let evidence = format!(
                "final test error of {}{} vs {}{}: {}% vs {}%",
                worse.name,
                seeds(worse),
                better.name,
                seeds(better),
                w.text(),
                b.text()
            );
            outcome(verdict(w.mean > b.mean), evidence)
        }
        Prediction::SimilarTrainError { runs, within } => {
            let members: Vec<&GroupResult> = runs.iter().map(find).collect();
            let errors: Vec<f64> = members.iter().map(|g| g.stat(|s| s.final_train_err).mean).collect();
            let spread =
                errors.iter().cloned().fold(f64::MIN, f64::max) - errors.iter().cloned().fold(f64::MAX, f64::min);
            let listed: Vec<String> = members.iter().zip(&errors).map(|(g, e)| format!("{} {e:.2}%", g.name)).collect();
            let evidence =
                format!("final training error {}: spread {spread:.2} points (allowed {within})", listed.join(", "));
            outcome(verdict(spread <= *within), evidence)
        }
        Prediction::SmallerResponses { smaller, larger } => {
            let (smaller, larger) = (find(smaller), find(larger));
            let (Some(s), Some(l)) = (smaller.responses(), larger.responses()) else {
                return outcome(Verdict::NotMeasured, "the layer responses were not analysed".into());
            };
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
            let mut evidence = format!(
                "mean std of the 3x3 layers' responses of {}{} vs {}{}: {:.3} vs {:.3}",
                smaller.name,
                seeds(smaller),
                larger.name,
                seeds(larger),
                mean(&s),
                mean(&l)
            );
            if s.len() == l.len() {
                let below = s.iter().zip(&l).filter(|(a, b)| a < b).count();
                evidence += &format!("; smaller in {below} of {} layers", s.len());
            }
            outcome(verdict(mean(&s) < mean(&l)), evidence)
        }
    }
}

/// The paper's style: one colour per network, training error dashed, test error solid; with
/// several seeds the mean curve over seeds in a shaded band from their minimum to maximum.
pub fn error_chart(title: &str, groups: &[&GroupResult]) -> ErrorChart {
    let mut curves = Vec::new();
    let train: fn(&MetricsRow) -> f64 = |r| r.train_err;
    let test: fn(&MetricsRow) -> f64 = |r| r.test_err;
    for (series, group) in groups.iter().enumerate() {
        for (what, dashed, value) in [("train", true, train), ("test", false, test)] {
            let curve = group.curve(value);
            let band = match group.runs.len() {
                1 => vec![],
                _ => curve.iter().map(|&(x, _, lo, hi)| (x, lo, hi)).collect(),
            };
            curves.push(Curve {
                label: format!("{} {what}", group.name),
                series,
                dashed,
                points: curve.iter().map(|&(x, mean, _, _)| (x, mean)).collect(),
                band,
            });
        }
    }
    ErrorChart {
        title: title.to_string(),
        x_label: "iteration".into(),
        y_label: "error (%)".into(),
        curves,
        y_range: y_range(groups),
    }
}
