//! `report.html`: one or more studies as a single self-contained page (charts inline as SVG, the
//! bundled font embedded, no script and no link that leaves the file), so it opens from disk on a
//! machine with no network and no fonts, and can be mailed or archived as one file.

use super::figure::FONT_BYTES;
use super::table::Grid;
use super::verdict::Verdict;
use crate::util::fs::write_file;
use anyhow::Result;
use base64::Engine;
use std::path::Path;

/// The whole page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The page's `<title>` and heading.
    pub title: String,
    /// Lines under the title: what made the page, the protocol.
    pub lede: Vec<String>,
    /// The studies, in order.
    pub sections: Vec<Section>,
}

/// One study.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Anchor of the section (`fig6`).
    pub id: String,
    /// The section's heading.
    pub title: String,
    /// What the study reproduces (the experiment's description).
    pub description: String,
    /// One paragraph in plain words: what ran, for how long, what held and what could not be
    /// told; the first thing a reader sees of the study.
    pub summary: String,
    /// Caveats shown above everything else (the preset, runs left out, runs not complete).
    pub notes: Vec<String>,
    /// The paper's claims and whether they held.
    pub claims: Vec<Claim>,
    /// Charts, inline.
    pub figures: Vec<Figure>,
    /// Result tables.
    pub tables: Vec<Table>,
    /// Every planned run, complete or not.
    pub runs: Vec<RunDetails>,
}

/// A claim of the paper, what the runs measured, and whether it held.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// Where the paper makes it (`Fig. 6, left`).
    pub source: String,
    /// The paper's claim in words.
    pub claim: String,
    /// The numbers that decided the verdict.
    pub evidence: String,
    /// Held, did not hold, inconclusive or not measured.
    pub verdict: Verdict,
    /// Shown beside the verdict (e.g. the runs are far shorter than the claim is about).
    pub caveat: Option<String>,
}

impl Verdict {
    fn class(self) -> &'static str {
        match self {
            Verdict::Held => "held",
            Verdict::NotHeld => "failed",
            Verdict::Inconclusive => "unsure",
            Verdict::NotMeasured => "missing",
        }
    }
}

/// A chart with its caption.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Shown under the chart.
    pub caption: String,
    /// The chart as SVG text (`<svg ...>...</svg>`), inlined as it is.
    pub svg: String,
}

/// A table with its caption.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Shown above the table.
    pub caption: String,
    /// The cells.
    pub grid: Grid,
}

/// One planned run: its directory, its state and its configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDetails {
    /// The run directory's name.
    pub dir: String,
    /// Its state in words (`new`, `partial at iteration 400`).
    pub state: String,
    /// Whether it finished (counted in the section's "n of m complete").
    pub complete: bool,
    /// `config.toml` as written in the run directory; empty when the run never started.
    pub config: String,
}

/// Font family of the embedded font; the page's text and the charts' use it.
const FONT_FAMILY: &str = "reslab-sans";

const STYLE: &str = r#"
body { font-family: reslab-sans, sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1.5em; color: #222; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2.2em; }
.lede { color: #555; margin: 0.1em 0; }
.summary { font-size: 1.08em; max-width: 60em; margin: 0.9em 0; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.4em 0.8em; margin: 0.4em 0; }
nav.contents ol { padding-left: 1.6em; }
nav.contents .counts { color: #555; }
table { border-collapse: collapse; margin: 0.6em 0 1.4em; font-size: 0.92em; }
caption { text-align: left; font-weight: bold; padding-bottom: 0.3em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.7em; vertical-align: top; }
th { background: #f3f3f3; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { font-weight: bold; white-space: nowrap; border-radius: 3px; padding: 0.05em 0.5em; }
.verdict.held { background: #dff3df; color: #1d6b1d; }
.verdict.failed { background: #fbe0e0; color: #a01818; }
.verdict.unsure { background: #fff1c2; color: #7a5a00; }
.verdict.missing { background: #eee; color: #555; }
.caveat { display: block; color: #7a5a00; font-size: 0.85em; margin-top: 0.3em; max-width: 16em; }
figure { margin: 1.2em 0; }
figure svg { display: block; width: 100%; height: auto; max-height: 85vh; border: 1px solid #eee; }
figure svg text { font-family: reslab-sans, sans-serif; }
figcaption { color: #555; font-size: 0.92em; margin-top: 0.4em; }
details { margin: 0.2em 0; }
summary { cursor: pointer; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
@page { size: A4 landscape; margin: 12mm; }
@media print {
  body { max-width: none; margin: 0; padding: 0; font-size: 10pt; }
  h2 { margin-top: 1.2em; break-after: avoid; }
  section + section { break-before: page; }
  figure, table, tr, .note, .summary { break-inside: avoid; }
  caption { break-after: avoid; }
  figure svg { max-height: 150mm; border: none; }
  a { color: inherit; text-decoration: none; }
  .verdict, .note, th { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  details > summary { list-style: none; }
  pre { white-space: pre-wrap; }
}
"#;

/// The page as one HTML document: the title, then one study's summary (or, for several, a
/// summary of all and a table of contents), then each study in turn, its claims table once.
pub fn render(page: &Page) -> String {
    let font = base64::engine::general_purpose::STANDARD.encode(FONT_BYTES);
    let mut html = String::new();
    html += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
    html += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
    html += &format!("<title>{}</title>\n", escape(&page.title));
    html += &format!(
        "<style>\n@font-face {{ font-family: {FONT_FAMILY}; src: url(data:font/ttf;base64,{font}) format(\"truetype\"); }}{STYLE}</style>\n"
    );
    html += "</head>\n<body>\n";
    html += &format!("<h1>{}</h1>\n", escape(&page.title));
    for line in &page.lede {
        html += &format!("<p class=\"lede\">{}</p>\n", escape(line));
    }
    match page.sections.as_slice() {
        [one] => {
            html += &format!("<p class=\"summary\">{}</p>\n", escape(&one.summary));
            html += &render_section(one, false, one.title != page.title);
        }
        sections => {
            html += &contents(sections);
            for section in sections {
                html += &render_section(section, true, true);
            }
        }
    }
    html += "</body>\n</html>\n";
    html
}

/// Writes the page to `path` (whole or not at all).
pub fn write(page: &Page, path: &Path) -> Result<()> {
    write_file(path, render(page).as_bytes())
}

/// Verdict counts in words (`3 claims: 2 held, 1 inconclusive`), zero counts left out.
fn verdict_counts(claims: &[&Claim]) -> String {
    let counts: Vec<String> = [Verdict::Held, Verdict::NotHeld, Verdict::Inconclusive, Verdict::NotMeasured]
        .into_iter()
        .map(|v| (v, claims.iter().filter(|c| c.verdict == v).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(v, n)| format!("{n} {}", v.text()))
        .collect();
    match claims.len() {
        0 => "no claims".into(),
        1 => format!("1 claim: {}", counts.join(", ")),
        n => format!("{n} claims: {}", counts.join(", ")),
    }
}

/// Several studies: a summary of every claim, and a table of contents with each study's counts.
fn contents(sections: &[Section]) -> String {
    let all: Vec<&Claim> = sections.iter().flat_map(|s| &s.claims).collect();
    let mut html = format!(
        "<p class=\"summary\">{} studies, {}. Each study below opens with what it ran and what it showed; \
         its claims follow with their evidence.</p>\n",
        sections.len(),
        verdict_counts(&all)
    );
    html += "<nav class=\"contents\">\n<h2 id=\"contents\">Contents</h2>\n<ol>\n";
    for section in sections {
        let claims: Vec<&Claim> = section.claims.iter().collect();
        html += &format!(
            "<li><a href=\"#{}\">{}</a> <span class=\"counts\">({})</span></li>\n",
            escape(&section.id),
            escape(&section.title),
            verdict_counts(&claims)
        );
    }
    html += "</ol>\n</nav>\n";
    html
}

/// The caveat several claims share word for word, said once above the table (each of those
/// claims marked) rather than in every row.
fn shared_caveat(claims: &[Claim]) -> Option<&str> {
    let mut caveats = claims.iter().filter_map(|c| c.caveat.as_deref());
    let first = caveats.next()?;
    let mut count = 1;
    for caveat in caveats {
        if caveat != first {
            return None;
        }
        count += 1;
    }
    (count > 1).then_some(first)
}

const SHARED_CAVEAT_MARK: &str = "\u{2020}";

fn claim_cells(claim: &Claim, shared: Option<&str>) -> String {
    let caveat = match claim.caveat.as_deref() {
        None => String::new(),
        Some(c) if Some(c) == shared => format!("<span class=\"caveat\">{SHARED_CAVEAT_MARK}</span>"),
        Some(c) => format!("<span class=\"caveat\">{}</span>", escape(c)),
    };
    format!(
        "<td>{}</td><td>{}</td><td>{}</td><td><span class=\"verdict {}\">{}</span>{caveat}</td>",
        escape(&claim.source),
        escape(&claim.claim),
        escape(&claim.evidence),
        claim.verdict.class(),
        claim.verdict.text(),
    )
}

/// One study; `with_summary` and `with_title` where the page's top does not already show them.
fn render_section(section: &Section, with_summary: bool, with_title: bool) -> String {
    let mut html = format!("<section id=\"{}\">\n", escape(&section.id));
    if with_title {
        html += &format!("<h2>{}</h2>\n", escape(&section.title));
    }
    if with_summary {
        html += &format!("<p class=\"summary\">{}</p>\n", escape(&section.summary));
    }
    html += &format!("<p>{}</p>\n", escape(&section.description));
    for note in &section.notes {
        html += &format!("<p class=\"note\">{}</p>\n", escape(note));
    }
    if !section.claims.is_empty() {
        let claims: Vec<&Claim> = section.claims.iter().collect();
        let shared = shared_caveat(&section.claims);
        if let Some(caveat) = shared {
            html += &format!("<p class=\"note\">{SHARED_CAVEAT_MARK} {}</p>\n", escape(caveat));
        }
        html += &format!("<table class=\"claims\">\n<caption>Claims ({})</caption>\n", verdict_counts(&claims));
        html += "<tr><th>source</th><th>claim</th><th>evidence</th><th>verdict</th></tr>\n";
        for claim in &section.claims {
            html += &format!("<tr>{}</tr>\n", claim_cells(claim, shared));
        }
        html += "</table>\n";
    }
    for figure in &section.figures {
        html += &format!(
            "<figure>\n{}\n<figcaption>{}</figcaption>\n</figure>\n",
            svg_body(&figure.svg),
            escape(&figure.caption)
        );
    }
    for table in &section.tables {
        html += &render_table(table);
    }
    if !section.runs.is_empty() {
        let complete = section.runs.iter().filter(|r| r.complete).count();
        html += &format!("<h3>Runs ({complete} of {} complete)</h3>\n", section.runs.len());
        for run in &section.runs {
            html += &format!(
                "<details><summary><a href=\"{}/\">{}</a>: {}</summary>\n<pre>{}</pre>\n</details>\n",
                escape(&run.dir),
                escape(&run.dir),
                escape(&run.state),
                if run.config.is_empty() { "(no config.toml yet)".to_string() } else { escape(&run.config) }
            );
        }
    }
    html += "</section>\n";
    html
}

fn render_table(table: &Table) -> String {
    let grid = &table.grid;
    let class = |i: usize| if i < grid.left { "" } else { " class=\"num\"" };
    let mut html = format!("<table>\n<caption>{}</caption>\n<tr>", escape(&table.caption));
    for (i, cell) in grid.header.iter().enumerate() {
        html += &format!("<th{}>{}</th>", class(i), escape(cell));
    }
    html += "</tr>\n";
    for row in &grid.rows {
        html += "<tr>";
        for (i, cell) in row.iter().enumerate() {
            html += &format!("<td{}>{}</td>", class(i), escape(cell));
        }
        html += "</tr>\n";
    }
    html += "</table>\n";
    html
}

/// The `<svg>` element of an SVG document (without any XML declaration before it).
fn svg_body(svg: &str) -> &str {
    svg.find("<svg").map_or(svg, |start| &svg[start..])
}

/// Text as HTML text or attribute value.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out += "&amp;",
            '<' => out += "&lt;",
            '>' => out += "&gt;",
            '"' => out += "&quot;",
            '\'' => out += "&#39;",
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Page {
        let claim = |verdict| Claim {
            source: "Fig. 6, left".into(),
            claim: "deeper plain nets train worse".into(),
            evidence: "plain-56 <b>31%</b> vs plain-20 20%".into(),
            verdict,
            caveat: (verdict == Verdict::Inconclusive).then(|| "measured at 40 iterations".into()),
        };
        Page {
            title: "fig6 & co".into(),
            lede: vec!["made by reslab".into()],
            sections: vec![Section {
                id: "fig6".into(),
                title: "Figure 6".into(),
                description: "d".into(),
                summary: "Trained plain-20 for 40 iterations.".into(),
                notes: vec!["preset smoke".into()],
                claims: vec![
                    claim(Verdict::Held),
                    claim(Verdict::NotHeld),
                    claim(Verdict::Inconclusive),
                    claim(Verdict::NotMeasured),
                ],
                figures: vec![Figure {
                    caption: "c".into(),
                    svg: "<?xml version=\"1.0\"?>\n<svg viewBox=\"0 0 1 1\"><text>x</text></svg>".into(),
                }],
                tables: vec![Table {
                    caption: "t".into(),
                    grid: Grid {
                        header: vec!["run".into(), "err".into()],
                        rows: vec![vec!["a".into(), "1".into()]],
                        left: 1,
                    },
                }],
                runs: vec![RunDetails {
                    dir: "plain-20-seed0".into(),
                    state: "complete".into(),
                    complete: true,
                    config: "[model]\nname = \"x\"".into(),
                }],
            }],
        }
    }

    #[test]
    fn the_page_holds_everything_escaped_and_nothing_from_outside() {
        let html = render(&page());
        assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
        assert!(html.contains("<title>fig6 &amp; co</title>"));
        assert!(
            html.contains(
                "<caption>Claims (4 claims: 1 held, 1 did not hold, 1 inconclusive, 1 not measured)</caption>"
            ),
            "{html}"
        );
        assert_eq!(html.matches("<table class=\"claims\">").count(), 1, "one study: its claims table once");
        let summary = html.find("<p class=\"summary\">Trained plain-20 for 40 iterations.</p>").expect("summary");
        assert!(summary < html.find("<section").unwrap(), "the one study's summary opens the page");
        assert!(!html.contains("<nav"), "no contents for one study");
        assert!(html.contains("@media print") && html.contains("break-inside: avoid"), "print styles");
        assert!(html.contains("inconclusive</span><span class=\"caveat\">measured at 40 iterations</span>"));
        assert!(html.contains("<h2>Figure 6</h2>"), "a study titled unlike its page keeps its title");
        let mut same = page();
        same.title = same.sections[0].title.clone();
        assert!(!render(&same).contains("<h2>"), "one study, the page's title: said once");
        assert!(html.contains("plain-56 &lt;b&gt;31%&lt;/b&gt;"), "evidence is text, not markup");
        assert!(html.contains("<figure>\n<svg viewBox"), "the SVG is inlined without its XML declaration");
        assert!(html.contains("<td class=\"num\">1</td>"));
        assert!(html.contains("name = &quot;x&quot;"));
        assert!(html.contains("data:font/ttf;base64,AAEAAA"), "the font is embedded (a TrueType header)");
        for outside in ["http://", "https://", "<script", "<link"] {
            assert!(!html.contains(outside), "the page reaches outside itself: {outside}");
        }
    }

    #[test]
    fn a_caveat_several_claims_share_is_said_once_above_the_table() {
        let mut page = page();
        for claim in &mut page.sections[0].claims[..3] {
            claim.caveat = Some("measured at 40 iterations".into());
        }
        let html = render(&page);
        assert_eq!(html.matches("measured at 40 iterations").count(), 1, "{html}");
        let note = html.find("<p class=\"note\">\u{2020} measured at 40 iterations</p>").expect("the note");
        assert!(note < html.find("<table class=\"claims\">").unwrap(), "above the table");
        assert_eq!(html.matches("<span class=\"caveat\">\u{2020}</span>").count(), 3, "each claim marked");

        page.sections[0].claims[1].caveat = Some("another".into());
        let html = render(&page);
        assert_eq!(html.matches("measured at 40 iterations</span>").count(), 2, "differing caveats stay in their rows");
        assert!(!html.contains('\u{2020}'));
    }

    #[test]
    fn several_studies_get_contents_and_each_claims_table_once() {
        let mut page = page();
        let mut second = page.sections[0].clone();
        (second.id, second.title, second.claims) = ("abc".into(), "Table 3".into(), second.claims[..1].to_vec());
        page.sections.push(second);
        let html = render(&page);
        assert!(
            html.contains("2 studies, 5 claims: 2 held, 1 did not hold, 1 inconclusive, 1 not measured."),
            "{html}"
        );
        assert!(html.contains("<li><a href=\"#fig6\">Figure 6</a> <span class=\"counts\">(4 claims:"), "{html}");
        assert!(html.contains("<li><a href=\"#abc\">Table 3</a> <span class=\"counts\">(1 claim: 1 held)</span>"));
        assert_eq!(html.matches("<table class=\"claims\">").count(), 2, "each study's claims once");
        assert!(html.contains("<h2>Figure 6</h2>") && html.contains("<h2>Table 3</h2>"), "each study titled");
        assert_eq!(
            html.matches("Trained plain-20 for 40 iterations.").count(),
            2,
            "each study's summary in its section"
        );
    }
}
