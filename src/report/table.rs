//! The summary table of an experiment: one row per run, from plain values (the report stage
//! knows nothing of experiments or run directories).

use super::verdict::Verdict;
use crate::model::Precision;
use crate::util::stats::mean_sd;
use anyhow::Result;

/// One run's line in the summary table.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    /// The run directory's name.
    pub run: String,
    /// The network's name as `reslab models` gives it (`resnet-20`, `plain-20`).
    pub model: String,
    /// "plain" or the shortcut option.
    pub variant: String,
    /// Trainable parameters.
    pub params: i64,
    /// Forward multiply-accumulates per image.
    pub macs: u64,
    /// Iterations trained.
    pub iters: usize,
    /// Training error (%) at the last evaluation.
    pub final_train_err: f64,
    /// Test error (%) at the last evaluation.
    pub final_test_err: f64,
    /// Training error (%) averaged over the run's evaluations.
    pub mean_train_err: f64,
    /// Test error (%) averaged over the run's evaluations.
    pub mean_test_err: f64,
    /// The paper's error for this run, where it reports one.
    pub paper_err: Option<f64>,
    /// The seed it was trained with.
    pub seed: u64,
    /// The precision it was trained in.
    pub precision: Precision,
    /// Mean training throughput, images per second.
    pub img_per_s: f64,
    /// Wall-clock seconds of the run.
    pub wall_s: f64,
    /// The device its last session computed on (`cpu`, `cuda:0`); empty where unrecorded.
    pub device: String,
}

/// What the Markdown table is about.
#[derive(Debug, Clone, PartialEq)]
pub struct TableHeading {
    /// The table's heading.
    pub title: String,
    /// A paragraph under the heading.
    pub description: String,
    /// Where `paper_err` comes from.
    pub paper_source: Option<String>,
}

/// The wall-clock columns (`img_per_s`, `wall_s`) come last: a comparison of two studies drops them.
const COLUMNS: [&str; 16] = [
    "run",
    "model",
    "shortcut",
    "params",
    "macs",
    "iters",
    "final_train_err",
    "final_test_err",
    "mean_train_err",
    "mean_test_err",
    "paper_err",
    "seed",
    "precision",
    "img_per_s",
    "wall_s",
    "device",
];

fn cells(row: &RunRow) -> [String; 16] {
    [
        row.run.clone(),
        row.model.clone(),
        row.variant.clone(),
        row.params.to_string(),
        row.macs.to_string(),
        row.iters.to_string(),
        format!("{:.2}", row.final_train_err),
        format!("{:.2}", row.final_test_err),
        format!("{:.2}", row.mean_train_err),
        format!("{:.2}", row.mean_test_err),
        row.paper_err.map(|e| format!("{e:.2}")).unwrap_or_default(),
        row.seed.to_string(),
        row.precision.to_string(),
        format!("{:.1}", row.img_per_s),
        format!("{:.1}", row.wall_s),
        row.device.clone(),
    ]
}

/// The per-run table as CSV, with a header row.
pub fn summary_csv(rows: &[RunRow]) -> Result<String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(COLUMNS)?;
    for row in rows {
        writer.write_record(cells(row))?;
    }
    Ok(String::from_utf8(writer.into_inner()?)?)
}

/// The per-run table as a grid (for Markdown and HTML).
pub fn summary_grid(rows: &[RunRow]) -> Grid {
    Grid {
        header: COLUMNS.iter().map(|c| c.to_string()).collect(),
        rows: rows.iter().map(|r| cells(r).to_vec()).collect(),
        left: 3,
    }
}

/// The table in Markdown under `heading`, followed by `checks` (one sentence each) as a list.
pub fn summary_markdown(heading: &TableHeading, rows: &[RunRow], checks: &[String]) -> String {
    let mut md = format!("# {}\n\n{}\n\nErrors in percent", heading.title, heading.description);
    if let Some(source) = &heading.paper_source {
        md += &format!("; `paper_err`: {source}");
    }
    md += ".\n\n";
    md += &summary_grid(rows).markdown();
    md += &check_list(checks);
    md
}

fn check_list(checks: &[String]) -> String {
    if checks.is_empty() {
        return String::new();
    }
    let mut md = "\n".to_string();
    for check in checks {
        md += &format!("- {check}\n");
    }
    md
}

/// A table as plain cells: the header, the rows, and how many leading columns hold names
/// (left-aligned; the others are numbers, right-aligned).
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// Column names.
    pub header: Vec<String>,
    /// Each row's cells, as many as the header.
    pub rows: Vec<Vec<String>>,
    /// Leading columns that hold names (left-aligned).
    pub left: usize,
}

impl Grid {
    /// The grid as a Markdown table, numbers right-aligned.
    pub fn markdown(&self) -> String {
        let align: Vec<&str> = (0..self.header.len()).map(|i| if i < self.left { "---" } else { "---:" }).collect();
        let mut md = format!("| {} |\n| {} |\n", self.header.join(" | "), align.join(" | "));
        for row in &self.rows {
            md += &format!("| {} |\n", row.join(" | "));
        }
        md
    }
}

/// Mean, sample standard deviation and count of a value over seeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanStd {
    /// The mean (NaN for no values).
    pub mean: f64,
    /// Sample standard deviation (n - 1); 0 for a single value (and no cell in a CSV: one value
    /// has no spread to estimate).
    pub std: f64,
    /// Number of values.
    pub n: usize,
}

impl MeanStd {
    /// The statistics of `values` (NaN mean and std for none).
    pub fn of(values: &[f64]) -> MeanStd {
        let n = values.len();
        if n == 0 {
            return MeanStd { mean: f64::NAN, std: f64::NAN, n };
        }
        let (mean, sd) = mean_sd(values);
        MeanStd { mean, std: if n > 1 { sd } else { 0.0 }, n }
    }

    /// `8.75 ± 0.12` (or `8.75` for one value).
    pub fn text(&self) -> String {
        if self.n > 1 {
            format!("{:.2} ± {:.2}", self.mean, self.std)
        } else {
            format!("{:.2}", self.mean)
        }
    }
}

/// A network's line in a study table: its runs over seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    /// The run name without seed (`resnet-20`, `resnet-20-B`).
    pub run: String,
    /// The network's name as `reslab models` gives it (`resnet-20`, `plain-20`).
    pub model: String,
    /// "plain" or the shortcut option.
    pub variant: String,
    /// Trainable parameters.
    pub params: i64,
    /// Training error (%) at the end, over seeds.
    pub final_train_err: MeanStd,
    /// Test error (%) at the end, over seeds.
    pub final_test_err: MeanStd,
    /// Training error (%) averaged over each run, over seeds.
    pub mean_train_err: MeanStd,
    /// The paper's error (%) for this network, where it reports one.
    pub paper_err: Option<f64>,
    /// The paper's number in full where it says more, e.g. "6.43 (6.61±0.16)".
    pub paper_note: Option<String>,
    /// In a study with a grid: the keys it varies and this row's values (`lr`, `0.05`).
    pub point: Vec<(String, String)>,
}

/// Another method's published result, for context.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextRow {
    /// The method's name as published.
    pub method: String,
    /// Its test error (%) as published.
    pub err: f64,
    /// E.g. the paper's "(mean±std)" where it gives one.
    pub note: Option<String>,
}

/// A claim as the study table lists it under its networks.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimLine {
    /// Its number and words (`1. The deeper plain net has higher training error`).
    pub claim: String,
    /// Held, did not hold, inconclusive or not measured.
    pub verdict: Verdict,
    /// The numbers that decided it, in words, and its caveat.
    pub evidence: String,
}

const STUDY_COLUMNS: [&str; 16] = [
    "run",
    "model",
    "shortcut",
    "params",
    "seeds",
    "final_train_err_mean",
    "final_train_err_std",
    "final_test_err_mean",
    "final_test_err_std",
    "mean_train_err_mean",
    "mean_train_err_std",
    "paper_err",
    "paper_note",
    "claim",
    "verdict",
    "evidence",
];

/// The study table as CSV: a row per network (mean and std over seeds; one seed has no std),
/// then a row per method of the context (its published error in `paper_err`), then a row per
/// claim (its verdict and evidence, as the Markdown table lists them).
pub fn study_csv(rows: &[GroupRow], context: &[ContextRow], claims: &[ClaimLine]) -> Result<String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let keys: Vec<String> = rows.first().map(|r| r.point.iter().map(|(k, _)| k.clone()).collect()).unwrap_or_default();
    let mut header: Vec<String> = STUDY_COLUMNS[..3].iter().map(|c| c.to_string()).collect();
    header.extend(keys.iter().cloned());
    header.extend(STUDY_COLUMNS[3..].iter().map(|c| c.to_string()));
    writer.write_record(&header)?;
    let number = |v: f64| format!("{v:.2}");
    let std = |s: MeanStd| if s.n > 1 { number(s.std) } else { String::new() };
    let empty = |n: usize| std::iter::repeat_n(String::new(), n);
    for r in rows {
        let mut record = vec![r.run.clone(), r.model.clone(), r.variant.clone()];
        record.extend(r.point.iter().map(|(_, v)| v.clone()));
        record.extend([
            r.params.to_string(),
            r.final_test_err.n.to_string(),
            number(r.final_train_err.mean),
            std(r.final_train_err),
            number(r.final_test_err.mean),
            std(r.final_test_err),
            number(r.mean_train_err.mean),
            std(r.mean_train_err),
            r.paper_err.map(number).unwrap_or_default(),
            r.paper_note.clone().unwrap_or_default(),
        ]);
        record.extend(empty(3));
        writer.write_record(record)?;
    }
    for c in context {
        let mut record = vec![c.method.clone()];
        record.extend(empty(10 + keys.len()));
        record.extend([number(c.err), c.note.clone().unwrap_or_default()]);
        record.extend(empty(3));
        writer.write_record(record)?;
    }
    for claim in claims {
        let mut record: Vec<String> = empty(header.len() - 3).collect();
        record.extend([claim.claim.clone(), claim.verdict.text().to_string(), claim.evidence.clone()]);
        writer.write_record(record)?;
    }
    Ok(String::from_utf8(writer.into_inner()?)?)
}

/// The study table as a grid: errors as mean ± std (n seeds) beside the paper's, then the
/// context methods.
pub fn study_grid(rows: &[GroupRow], context: &[ContextRow]) -> Grid {
    let keys: Vec<String> = rows.first().map(|r| r.point.iter().map(|(k, _)| k.clone()).collect()).unwrap_or_default();
    let mut header = vec!["run".to_string()];
    header.extend(keys.iter().cloned());
    header.extend(
        ["params", "seeds", "final train err", "final test err", "mean train err", "paper"].map(str::to_string),
    );
    let mut cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let paper = r.paper_note.clone().or(r.paper_err.map(|e| format!("{e:.2}"))).unwrap_or_default();
            let mut row = vec![r.run.clone()];
            row.extend(r.point.iter().map(|(_, v)| v.clone()));
            row.extend([
                r.params.to_string(),
                r.final_test_err.n.to_string(),
                r.final_train_err.text(),
                r.final_test_err.text(),
                r.mean_train_err.text(),
                paper,
            ]);
            row
        })
        .collect();
    for c in context {
        let paper = c.note.clone().unwrap_or_else(|| format!("{:.2}", c.err));
        let mut row = vec![format!("{} (published)", c.method)];
        row.extend(std::iter::repeat_n(String::new(), 5 + keys.len()));
        row.push(paper);
        cells.push(row);
    }
    Grid { header, rows: cells, left: 1 + keys.len() }
}

/// The study table in Markdown: errors as mean ± std (n seeds) beside the paper's, the context
/// methods, and the checks of the paper's claims.
pub fn study_markdown(heading: &TableHeading, rows: &[GroupRow], context: &[ContextRow], checks: &[String]) -> String {
    let mut md = format!("# {}\n\n{}\n\nErrors in percent, mean ± std over seeds", heading.title, heading.description);
    if let Some(source) = &heading.paper_source {
        md += &format!("; paper: {source}");
    }
    md += ".\n\n";
    md += &study_grid(rows, context).markdown();
    md += &check_list(checks);
    md
}

/// One statistic of one claim, as a row of `claims.csv` (a claim that was not measured has one
/// row with its statistic empty).
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRow {
    /// The claim in words.
    pub claim: String,
    /// Where the paper makes it.
    pub source: String,
    /// The claim's verdict (over all its statistics).
    pub verdict: Verdict,
    /// This statistic's own verdict; `None` for a claim not measured at all.
    pub statistic_verdict: Option<Verdict>,
    /// The statistic (`final training error`).
    pub statistic: String,
    /// The networks compared, as the difference taken (`plain-56 - plain-20`).
    pub compared: String,
    /// The unit of the difference (`points`, `std`).
    pub unit: String,
    /// The difference of the means (`None` where a run has no value for it).
    pub difference: Option<f64>,
    /// Its interval's lower end.
    pub low: Option<f64>,
    /// Its interval's upper end.
    pub high: Option<f64>,
    /// Which interval: `95% fixed`, or `99.69% sequential` (seeds on demand: 5% per claim over
    /// all its looks).
    pub interval: String,
    /// Seeds per network.
    pub n: Option<usize>,
    /// Seeds on demand: the seeds per network at the look that settled the claim.
    pub settled_at: Option<usize>,
    /// How the interval was computed.
    pub method: String,
    /// The margin of a `similar` claim (the difference must lie inside ±margin).
    pub margin: Option<f64>,
    /// Said beside the verdict.
    pub caveat: String,
}

/// The claims' statistics as CSV, one row per statistic: labels, then the numbers in columns of
/// their own (an empty cell where there is none: one seed has no interval).
pub fn claims_csv(rows: &[ClaimRow]) -> Result<String> {
    let header = [
        "claim",
        "source",
        "verdict",
        "statistic",
        "statistic_verdict",
        "compared",
        "unit",
        "difference",
        "low",
        "high",
        "interval",
        "n",
        "settled_at_seeds",
        "method",
        "margin",
        "caveat",
    ];
    let number = |v: Option<f64>| v.filter(|v| v.is_finite()).map(|v| format!("{v:.4}")).unwrap_or_default();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.claim.clone(),
                r.source.clone(),
                r.verdict.text().to_string(),
                r.statistic.clone(),
                r.statistic_verdict.map(|v| v.text().to_string()).unwrap_or_default(),
                r.compared.clone(),
                r.unit.clone(),
                number(r.difference),
                number(r.low),
                number(r.high),
                r.interval.clone(),
                r.n.map(|n| n.to_string()).unwrap_or_default(),
                r.settled_at.map(|n| n.to_string()).unwrap_or_default(),
                r.method.clone(),
                number(r.margin),
                r.caveat.clone(),
            ]
        })
        .collect();
    csv_text(&header, &cells)
}

/// `header` and `rows` as CSV.
pub fn csv_text(header: &[&str], rows: &[Vec<String>]) -> Result<String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(header)?;
    for row in rows {
        writer.write_record(row)?;
    }
    Ok(String::from_utf8(writer.into_inner()?)?)
}

/// `header` and `rows` as aligned text columns: the first `left` columns left-aligned, the
/// others (numbers) right-aligned.
pub fn aligned_text(header: &[&str], rows: &[Vec<String>], left: usize) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, &w))| if i < left { format!("{cell:<w$}") } else { format!("{cell:>w$}") })
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut text = line(header.to_vec());
    for row in rows {
        text += &line(row.iter().map(String::as_str).collect());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(run: &str, paper_err: Option<f64>) -> RunRow {
        RunRow {
            run: run.into(),
            model: "resnet-20".into(),
            variant: "A".into(),
            params: 269_722,
            macs: 40_551_040,
            iters: 100,
            final_train_err: 12.345,
            final_test_err: 20.0,
            mean_train_err: 30.0,
            mean_test_err: 35.0,
            paper_err,
            seed: 2,
            precision: Precision::Bf16,
            img_per_s: 300.0,
            wall_s: 42.0,
            device: "cpu".into(),
        }
    }

    #[test]
    fn mean_and_sample_std_over_seeds() {
        let s = MeanStd::of(&[6.0, 7.0, 8.0]);
        assert_eq!((s.mean, s.std, s.n), (7.0, 1.0, 3));
        assert_eq!(s.text(), "7.00 ± 1.00");
        assert_eq!(MeanStd::of(&[6.43]).text(), "6.43");
        assert!(MeanStd::of(&[]).mean.is_nan());
    }

    #[test]
    fn the_study_table_has_a_row_per_network_and_per_context_method() {
        let stat = MeanStd::of(&[6.5, 6.7]);
        let one_seed = MeanStd::of(&[7.25]);
        let network = |run: &str, stat: MeanStd| GroupRow {
            run: run.into(),
            model: run.into(),
            variant: "A".into(),
            params: 1_727_962,
            final_train_err: stat,
            final_test_err: stat,
            mean_train_err: stat,
            paper_err: Some(6.43),
            paper_note: Some("6.43 (6.61±0.16)".into()),
            point: vec![],
        };
        let rows = [network("resnet-110", stat), network("resnet-20", one_seed)];
        let context = [ContextRow { method: "Highway".into(), err: 7.54, note: Some("7.54 (7.72±0.16)".into()) }];
        let claims = [ClaimLine {
            claim: "1. Deeper is better".into(),
            verdict: Verdict::Inconclusive,
            evidence: "final test error, resnet-20 - resnet-110: +0.65 points (one seed: no interval)".into(),
        }];
        let csv = study_csv(&rows, &context, &claims).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(
            lines[0],
            "run,model,shortcut,params,seeds,final_train_err_mean,final_train_err_std,final_test_err_mean,\
             final_test_err_std,mean_train_err_mean,mean_train_err_std,paper_err,paper_note,claim,verdict,evidence"
        );
        assert_eq!(
            lines[1],
            "resnet-110,resnet-110,A,1727962,2,6.60,0.14,6.60,0.14,6.60,0.14,6.43,6.43 (6.61±0.16),,,"
        );
        assert_eq!(
            lines[2], "resnet-20,resnet-20,A,1727962,1,7.25,,7.25,,7.25,,6.43,6.43 (6.61±0.16),,,",
            "one seed: no std"
        );
        assert_eq!(lines[3], "Highway,,,,,,,,,,,7.54,7.54 (7.72±0.16),,,");
        assert_eq!(
            lines[4],
            ",,,,,,,,,,,,,1. Deeper is better,inconclusive,\
             \"final test error, resnet-20 - resnet-110: +0.65 points (one seed: no interval)\""
        );
        let heading = TableHeading { title: "Table 6".into(), description: "d".into(), paper_source: None };
        let md = study_markdown(&heading, &rows, &context, &["held".into()]);
        assert!(
            md.contains("| resnet-110 | 1727962 | 2 | 6.60 ± 0.14 | 6.60 ± 0.14 | 6.60 ± 0.14 | 6.43 (6.61±0.16) |"),
            "{md}"
        );
        assert!(md.contains("| resnet-20 | 1727962 | 1 | 7.25 | 7.25 | 7.25 | 6.43 (6.61±0.16) |"), "{md}");
        assert!(
            md.contains("| Highway (published) |  |  |  |  |  | 7.54 (7.72±0.16) |") && md.ends_with("- held\n"),
            "{md}"
        );
    }

    #[test]
    fn claims_csv_has_its_numbers_in_numeric_columns_beside_the_labels() {
        let measured = ClaimRow {
            claim: "The deeper plain net has higher training error".into(),
            source: "Fig. 1".into(),
            verdict: Verdict::Held,
            statistic_verdict: Some(Verdict::Held),
            statistic: "final training error".into(),
            compared: "plain-56 - plain-20".into(),
            unit: "points".into(),
            difference: Some(4.2125),
            low: Some(1.0),
            high: Some(7.4),
            interval: "95% fixed".into(),
            n: Some(3),
            settled_at: None,
            method: "paired by seed".into(),
            margin: None,
            caveat: String::new(),
        };
        let unmeasured = ClaimRow {
            verdict: Verdict::NotMeasured,
            statistic_verdict: None,
            statistic: String::new(),
            compared: String::new(),
            unit: String::new(),
            difference: None,
            low: None,
            high: None,
            interval: String::new(),
            n: None,
            method: String::new(),
            ..measured.clone()
        };
        let one_value = ClaimRow { difference: Some(f64::NAN), ..unmeasured.clone() };
        let csv = claims_csv(&[measured, unmeasured, one_value]).unwrap();
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
        let column = |name: &str| header.iter().position(|h| h == name).unwrap();
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let numbers: Vec<f64> =
            ["difference", "low", "high", "n"].iter().map(|c| rows[0][column(c)].parse().unwrap()).collect();
        assert_eq!(numbers, [4.2125, 1.0, 7.4, 3.0]);
        assert_eq!((&rows[0][column("compared")], &rows[0][column("unit")]), ("plain-56 - plain-20", "points"));
        for row in &rows[1..] {
            for c in ["difference", "low", "high", "n"] {
                assert_eq!(&row[column(c)], "", "{c}: nothing measured, an empty cell (not NaN)");
            }
        }
    }

    #[test]
    fn aligned_text_pads_names_left_and_numbers_right() {
        let rows = vec![vec!["cifar".to_string(), "7".to_string()], vec!["imagenet".into(), "1234".into()]];
        let text = aligned_text(&["family", "params"], &rows, 1);
        assert_eq!(text, "family    params\ncifar          7\nimagenet    1234\n");
        assert_eq!(csv_text(&["a", "b"], &rows).unwrap(), "a,b\ncifar,7\nimagenet,1234\n");
    }

    #[test]
    fn csv_and_markdown_have_a_row_per_run_and_the_checks() {
        let rows = [row("resnet-20", Some(8.75)), row("plain-20", None)];
        let csv = summary_csv(&rows).unwrap();
        assert_eq!(csv.lines().count(), 3);
        assert_eq!(
            csv.lines().next().unwrap(),
            "run,model,shortcut,params,macs,iters,final_train_err,final_test_err,mean_train_err,mean_test_err,\
             paper_err,seed,precision,img_per_s,wall_s,device"
        );
        assert_eq!(
            csv.lines().nth(1).unwrap(),
            "resnet-20,resnet-20,A,269722,40551040,100,12.35,20.00,30.00,35.00,8.75,2,bf16,300.0,42.0,cpu"
        );
        assert!(csv.lines().nth(2).unwrap().contains(",,2,bf16,300.0,"), "no paper number: an empty cell");
        let heading = TableHeading { title: "T".into(), description: "D".into(), paper_source: Some("Table 6".into()) };
        let md = summary_markdown(&heading, &rows, &["it held".into()]);
        assert!(md.starts_with("# T\n\nD\n\nErrors in percent; `paper_err`: Table 6."));
        assert_eq!(md.lines().filter(|l| l.starts_with("| ")).count(), 4, "header, alignment, two rows");
        assert!(md.ends_with("- it held\n"));
    }
}
