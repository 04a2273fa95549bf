//! The source's folders depend on each other as docs/development.md draws them: the graph is
//! derived here from the `crate::` and `super::` paths of every file under src/, and the page's
//! drawing must be that graph, in an order where each folder comes after everything it uses (so
//! no folder is on a cycle). A re-export of another folder's item (`pub use crate::other::..`)
//! would hide an edge, so there is none.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The heading the drawing follows on docs/development.md.
const HEADING: &str = "## How the folders depend on each other";

/// The library's top-level modules that are stages: its folders, and native.rs (the C++ shims'
/// bindings). lib.rs, main.rs and cli.rs sit above them all and are not drawn.
fn stages() -> BTreeSet<String> {
    let mut stages: BTreeSet<String> = std::fs::read_dir(Path::new(ROOT).join("src"))
        .expect("reading src/")
        .map(|entry| entry.expect("an entry of src/").path())
        .filter(|path| path.is_dir())
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    stages.insert("native".into());
    stages
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The module path of a file under src/ (`src/run/config.rs`: run, config; `src/run/mod.rs`: run).
fn module_path(file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(Path::new(ROOT).join("src")).expect("a file under src/");
    let mut path: Vec<String> = relative.iter().map(|c| c.to_string_lossy().into_owned()).collect();
    let last = path.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" {
        path.push(stem.to_string());
    }
    path
}

/// The code of a file without its comments (doc links name paths that are no dependency).
fn code(text: &str) -> String {
    text.lines().map(|line| line.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// The top-level module each `crate::x` or `super::..::x` path of `text` lands in.
fn targets(text: &str, module: &[String]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let words: Vec<&str> = text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).collect();
    for word in words {
        let segments: Vec<&str> = word.split("::").collect();
        let (base, rest): (Vec<String>, &[&str]) = match segments.first() {
            Some(&"crate") => (Vec::new(), &segments[1..]),
            Some(&"super") => {
                let ups = segments.iter().take_while(|s| **s == "super").count();
                // A file's module is its path; `super` from a file's module is its parent.
                let kept = module.len().saturating_sub(ups);
                (module[..kept].to_vec(), &segments[ups..])
            }
            _ => continue,
        };
        let top = base.first().map(String::as_str).or(rest.first().copied());
        if let Some(top) = top.filter(|t| !t.is_empty()) {
            found.insert(top.to_string());
        }
    }
    found
}

/// The graph between stages that the code has, and the cross-folder re-exports it holds.
fn derived() -> (Graph, Vec<String>) {
    let stages = stages();
    let mut files = Vec::new();
    rust_files(&Path::new(ROOT).join("src"), &mut files);
    assert!(files.len() > 50, "found only {} files under src/", files.len());
    let mut graph: Graph = stages.iter().map(|s| (s.clone(), BTreeSet::new())).collect();
    let mut reexports = Vec::new();
    for file in &files {
        let module = module_path(file);
        let Some(from) = module.first().filter(|m| stages.contains(*m)) else { continue };
        let text = code(&std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display())));
        for to in targets(&text, &module).into_iter().filter(|t| stages.contains(t) && t != from) {
            graph.get_mut(from).expect("a stage").insert(to);
        }
        for line in text.lines().filter(|l| l.trim_start().starts_with("pub use ")) {
            let crossing = targets(line, &module).into_iter().any(|t| stages.contains(&t) && t != *from);
            if crossing {
                reexports.push(format!("{}: {}", file.display(), line.trim()));
            }
        }
    }
    (graph, reexports)
}

/// The drawing on docs/development.md: the first fenced block after [`HEADING`], a line per
/// folder, `folder -> a, b`, in order.
fn drawn() -> Vec<(String, BTreeSet<String>)> {
    let page = std::fs::read_to_string(Path::new(ROOT).join("docs/development.md")).expect("docs/development.md");
    let after = page.split_once(HEADING).unwrap_or_else(|| panic!("docs/development.md has no '{HEADING}'")).1;
    let block = after.split("```").nth(1).expect("a fenced block after the heading");
    let rows: Vec<(String, BTreeSet<String>)> = block
        .lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (folder, uses) = line.split_once("->").unwrap_or_else(|| panic!("'{line}': expected 'folder -> a, b'"));
            let uses = uses.split(',').map(|u| u.trim().to_string()).filter(|u| !u.is_empty()).collect();
            (folder.trim().to_string(), uses)
        })
        .collect();
    assert!(!rows.is_empty(), "the drawing has no rows");
    rows
}

#[test]
fn the_folders_depend_on_each_other_as_the_development_page_draws_them() {
    let (graph, reexports) = derived();
    let rows = drawn();
    let drawing: Graph = rows.iter().cloned().collect();
    assert_eq!(rows.len(), drawing.len(), "a folder drawn twice");
    let differences: Vec<String> = graph
        .keys()
        .chain(drawing.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|folder| graph.get(*folder) != drawing.get(*folder))
        .map(|folder| {
            format!("{folder}: the code has {:?}, the page draws {:?}", graph.get(folder), drawing.get(folder))
        })
        .collect();
    assert!(differences.is_empty(), "docs/development.md draws another graph:\n{}", differences.join("\n"));
    let mut above = BTreeSet::new();
    for (folder, uses) in &rows {
        let later: Vec<&String> = uses.iter().filter(|u| !above.contains(*u)).collect();
        assert!(later.is_empty(), "{folder} uses {later:?}, drawn below it: a cycle, or the drawing's order is wrong");
        above.insert(folder.clone());
    }
    assert!(reexports.is_empty(), "re-exports of another folder's items hide edges:\n{}", reexports.join("\n"));
}
