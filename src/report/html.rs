//! `report.html`: one or more studies as a single self-contained page (charts inline as SVG, the
//! bundled font embedded, no script and no link that leaves the file), so it opens from disk on a
//! machine with no network and no fonts, and can be mailed or archived as one file.

use super::table::Grid;
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

/// Whether a claim held on the runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The runs agree with the paper.
    Held,
    /// The runs contradict the paper.
    NotHeld,
    /// The runs cannot tell (an interval across the line, or one seed).
    Inconclusive,
    /// A run the claim needs is missing (left out by the preset, failed or not finished).
    NotMeasured,
}

impl Verdict {
    /// In words (`held`, `did not hold`, `inconclusive`, `not measured`).
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Held => "held",
            Verdict::NotHeld => "did not hold",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotMeasured => "not measured",
        }
    }

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
const FONT_BYTES: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/fonts/DejaVuSans.ttf"));

const STYLE: &str = r#"
body { font-family: reslab-sans, sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1.5em; color: #222; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2.2em; }
.lede { color: #555; margin: 0.1em 0; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.4em 0.8em; margin: 0.4em 0; }
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
figure { margin: 1em 0; }
figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
figure svg text { font-family: reslab-sans, sans-serif; }
figcaption { color: #555; font-size: 0.92em; }
details { margin: 0.2em 0; }
summary { cursor: pointer; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
"#;

/// The page as one HTML document.
pub fn render(page: &Page) -> String {
    let font = base64::engine::general_purpose::STANDARD.encode(FONT_BYTES);
    let mut html = String::new();
    html += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
    html += &format!("<title>{}</title>\n", escape(&page.title));
    html += &format!(
        "<style>\n@font-face {{ font-family: {FONT_FAMILY}; src: url(data:font/ttf;base64,{font}) format(\"truetype\"); }}{STYLE}</style>\n"
    );
    html += "</head>\n<body>\n";
    html += &format!("<h1>{}</h1>\n", escape(&page.title));
    for line in &page.lede {
        html += &format!("<p class=\"lede\">{}</p>\n", escape(line));
    }
    html += &overview(page);
    for section in &page.sections {
        html += &render_section(section);
    }
    html += "</body>\n</html>\n";
    html
}

/// Writes the page to `path` (whole or not at all).
pub fn write(page: &Page, path: &Path) -> Result<()> {
    write_file(path, render(page).as_bytes())
}

/// Every claim of every section in one table at the top, with a count of verdicts.
fn overview(page: &Page) -> String {
    let claims: Vec<(&Section, &Claim)> =
        page.sections.iter().flat_map(|s| s.claims.iter().map(move |c| (s, c))).collect();
    if claims.is_empty() {
        return String::new();
    }
    let count = |v: Verdict| claims.iter().filter(|(_, c)| c.verdict == v).count();
    let mut html = format!(
        "<h2 id=\"claims\">The paper's claims</h2>\n<p>{} claims: {} held, {} did not hold, {} inconclusive, {} not measured.</p>\n",
        claims.len(),
        count(Verdict::Held),
        count(Verdict::NotHeld),
        count(Verdict::Inconclusive),
        count(Verdict::NotMeasured)
    );
    html += "<table class=\"claims\">\n<tr><th>study</th><th>source</th><th>claim</th><th>evidence</th><th>verdict</th></tr>\n";
    for (section, claim) in claims {
        html += &format!(
            "<tr><td><a href=\"#{}\">{}</a></td>{}</tr>\n",
            escape(&section.id),
            escape(&section.id),
            claim_cells(claim)
        );
    }
    html += "</table>\n";
    html
}

fn claim_cells(claim: &Claim) -> String {
    format!(
        "<td>{}</td><td>{}</td><td>{}</td><td><span class=\"verdict {}\">{}</span>{}</td>",
        escape(&claim.source),
        escape(&claim.claim),
        escape(&claim.evidence),
        claim.verdict.class(),
        claim.verdict.text(),
        claim.caveat.as_deref().map(|c| format!("<span class=\"caveat\">{}</span>", escape(c))).unwrap_or_default()
    )
}

fn render_section(section: &Section) -> String {
    let mut html = format!("<section id=\"{}\">\n", escape(&section.id));
    html += &format!("<h2>{}</h2>\n<p>{}</p>\n", escape(&section.title), escape(&section.description));
    for note in &section.notes {
        html += &format!("<p class=\"note\">{}</p>\n", escape(note));
    }
    if !section.claims.is_empty() {
        html += "<table class=\"claims\">\n<caption>Claims</caption>\n";
        html += "<tr><th>source</th><th>claim</th><th>evidence</th><th>verdict</th></tr>\n";
        for claim in &section.claims {
            html += &format!("<tr>{}</tr>\n", claim_cells(claim));
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
        assert!(html.contains("4 claims: 1 held, 1 did not hold, 1 inconclusive, 1 not measured."), "{html}");
        assert!(html.contains("inconclusive</span><span class=\"caveat\">measured at 40 iterations</span>"));
        assert!(html.contains("plain-56 &lt;b&gt;31%&lt;/b&gt;"), "evidence is text, not markup");
        assert!(html.contains("<figure>\n<svg viewBox"), "the SVG is inlined without its XML declaration");
        assert!(html.contains("<td class=\"num\">1</td>"));
        assert!(html.contains("name = &quot;x&quot;"));
        assert!(html.contains("data:font/ttf;base64,AAEAAA"), "the font is embedded (a TrueType header)");
        for outside in ["http://", "https://", "<script", "<link"] {
            assert!(!html.contains(outside), "the page reaches outside itself: {outside}");
        }
    }
}
