//! `reslab reproduce paper` end to end on tiny runs, and its report.html rendered by headless
//! Chromium (Debian's `chromium`, installed by scripts/install-chromium.sh, which `./run test`
//! calls): the page opens from disk, and its charts, tables and claims are on screen.

#[macro_use]
mod common;
use common::harness::{self};
use common::*;
use std::path::Path;
use std::process::Command;

fn chromium(args: &[&str], profile: &Path) -> std::process::Output {
    Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium is not installed: run scripts/install-chromium.sh (./run test does)")
}

/// Pixels within a small distance of `colour`.
fn count_near(image: &image::RgbImage, colour: [u8; 3]) -> usize {
    image.pixels().filter(|p| p.0.iter().zip(colour).all(|(a, b)| (*a as i32 - b as i32).abs() <= 12)).count()
}

fn reproduce_paper_reuses_shared_runs_and_its_report_renders_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("paper");
    let output = reslab(&[
        "reproduce",
        "paper",
        "--kernels",
        "exact",
        "--preset",
        "smoke",
        "--depths",
        "20",
        "--seeds",
        "1",
        "--iters",
        "4",
        "--eval-every",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));

    // Every study has its folder and report; shared networks were trained once and linked.
    for study in ["fig1", "fig6", "table6", "abc"] {
        assert!(out.join(study).join("report.html").is_file(), "{study}");
    }
    let linked = out.join("table6/resnet-20-seed0");
    assert!(linked.is_symlink(), "table6 reuses fig6's resnet-20");
    assert_eq!(std::fs::read_link(&linked).unwrap(), Path::new("../fig6/resnet-20-seed0"));
    assert!(out.join("fig6/plain-20-seed0").is_symlink(), "fig6 reuses fig1's plain-20");
    assert!(!out.join("fig6/resnet-20-seed0").is_symlink());
    let table6 = std::fs::read_to_string(out.join("table6/table6.csv")).unwrap();
    assert!(table6.lines().nth(1).unwrap().starts_with("resnet-20,resnet-20,A,269722,1,"), "{table6}");
    assert!(stderr(&output).contains("table6/resnet-20-seed0: the same run is complete in fig6; reusing it"));

    let report = out.join("report.html");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(stdout(&output).contains("report.html (every study and claim in one page)"), "{}", stdout(&output));
    // The claims of all four studies, the 56-layer ones not measured at --depths 20.
    assert!(html.contains("claims:") && html.contains("not measured"), "claims table");
    for source in ["Fig. 1", "Fig. 6, left", "Table 6", "Table 3, Sec. 3.3"] {
        assert!(html.contains(&format!("<td>{source}</td>")), "a claim from {source}");
    }

    // Chromium, from disk: the DOM it built has the four studies' charts and tables.
    let profile = dir.path().join("chromium-profile");
    let url = format!("file://{}", report.display());
    let dom = chromium(&["--dump-dom", &url], &profile);
    assert!(dom.status.success(), "{}", stderr(&dom));
    let dom = stdout(&dom);
    assert_eq!(dom.matches("<section").count(), 4, "one section per study");
    assert!(dom.matches("<svg").count() >= 4, "a chart per study");
    assert!(dom.matches("<table").count() >= 9, "claims, plus two tables per study");
    assert!(dom.contains("resnet-20-B") && dom.contains("Highway (published)"));
    // One pass: a table of contents of the four studies, each study's claims table once.
    assert!(dom.contains("<nav class=\"contents\">"), "a table of contents");
    for study in ["fig1", "fig6", "table6", "abc"] {
        assert!(dom.contains(&format!("<li><a href=\"#{study}\">")), "{study} in the contents");
    }
    assert_eq!(dom.matches("<table class=\"claims\">").count(), 4, "each study's claims once");
    assert_eq!(dom.matches("<p class=\"summary\">").count(), 5, "the page's summary and each study's");

    // Print to PDF: one study per page at least (sections break before a new page).
    let pdf = dir.path().join("report.pdf");
    let printed = chromium(&["--no-pdf-header-footer", &format!("--print-to-pdf={}", pdf.display()), &url], &profile);
    assert!(printed.status.success(), "{}", stderr(&printed));
    let bytes = std::fs::read(&pdf).unwrap();
    assert!(bytes.starts_with(b"%PDF"), "a PDF");
    let count = |needle: &[u8]| bytes.windows(needle.len()).filter(|w| *w == needle).count();
    let pages = count(b"/Type /Page") - count(b"/Type /Pages");
    assert!(pages >= 4, "one study per printed page at least: {pages} pages");

    // And on screen: the charts' orange and blue curves, and the verdict badges (green held, red
    // did not hold, amber inconclusive).
    let shot = dir.path().join("report.png");
    let rendered = chromium(&[&format!("--screenshot={}", shot.display()), "--window-size=1400,14000", &url], &profile);
    assert!(rendered.status.success(), "{}", stderr(&rendered));
    if let Ok(keep) = std::env::var("RESLAB_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    let image = image::open(&shot).unwrap().to_rgb8();
    assert_eq!(image.dimensions(), (1400, 14000));
    let orange = count_near(&image, [255, 127, 14]);
    let blue = count_near(&image, [31, 119, 180]);
    let held_badge = count_near(&image, [0xdf, 0xf3, 0xdf])
        + count_near(&image, [0xfb, 0xe0, 0xe0])
        + count_near(&image, [0xff, 0xf1, 0xc2]);
    assert!(orange > 500 && blue > 200, "chart curves on screen: {orange} orange, {blue} blue pixels");
    assert!(held_badge > 100, "verdict badges on screen: {held_badge} pixels");
}

fn main() -> std::process::ExitCode {
    harness::run(vec![trial!(
        reproduce_paper_reuses_shared_runs_and_its_report_renders_in_chromium,
        harness::tools(&["chromium"], "scripts/install-chromium.sh")
    )])
}
