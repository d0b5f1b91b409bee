//! The core's layers: every file may use only its own layer and the ones below it.
//!
//! The test reads the crate's sources, maps each file to its layer, follows every `crate::` and
//! `super::` path in the code (comments and `#[cfg(test)]` modules left out: a unit test may
//! check its output with a higher layer's encoder) and fails, naming the file and line, when a
//! path reaches up. `docs/architecture.md` draws the same picture.

use std::fs;
use std::path::{Path, PathBuf};

/// The layers, bottom first: a module's index is its layer.
const LAYERS: [&[&str]; 7] = [
    &["error", "process", "Error"],
    &["values", "labels", "normalize"],
    &[
        "model",
        "histogram",
        "cells",
        "gauge",
        "registry",
        "lineage",
        "Buckets",
        "ConstLabels",
        "Limits",
        "Recorder",
        "Registry",
        "Request",
        "RouteId",
        "RouteTemplates",
    ],
    &["snapshot", "runtime"],
    &["store"],
    &["encoding", "exposition", "Format"],
    &["delivery", "access", "live", "remote_write", "scrape", "server"],
];

const LAYER_NAMES: [&str; 7] = [
    "base", "values", "model", "snapshot", "store", "encoding", "delivery",
];

/// The layer of a top-level module (or of a name the crate root re-exports).
fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|names| names.contains(&top))
}

/// The module path of a source file: `values/normalize/route.rs` → `[values, normalize, route]`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().expect("a file name");
    match file.as_str() {
        "mod.rs" | "lib.rs" => {}
        name => parts.push(name.trim_end_matches(".rs").to_string()),
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("readable source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a line, without its `//` comment (good enough: no `//` inside the crate's
/// strings on lines that also hold a path).
fn code(line: &str) -> &str {
    match line.find("//") {
        Some(at) => &line[..at],
        None => line,
    }
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The first module each `crate::`/`super::` path of a line names, resolved against `module`
/// (the file's own module path); `crate::{a, b::c}` names `a` and `b`.
fn referenced_tops(line: &str, module: &[String]) -> Vec<String> {
    let mut tops = Vec::new();
    let bytes = line.as_bytes();
    let mut at = 0;
    while at < line.len() {
        let rest = &line[at..];
        let starts_path = (rest.starts_with("crate::") || rest.starts_with("super::"))
            && (at == 0 || !is_ident(bytes[at - 1] as char) && bytes[at - 1] != b':');
        if !starts_path {
            at += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        }
        let mut base: Vec<String> = if rest.starts_with("crate::") {
            at += "crate::".len();
            Vec::new()
        } else {
            let mut base = module.to_vec();
            while line[at..].starts_with("super::") {
                base.pop();
                at += "super::".len();
            }
            base
        };
        let rest = &line[at..];
        let names: Vec<String> = if let Some(group) = rest.strip_prefix('{') {
            group
                .split([',', '}'])
                .map(|item| item.trim().chars().take_while(|c| is_ident(*c)).collect())
                .filter(|name: &String| !name.is_empty())
                .collect()
        } else {
            vec![rest.chars().take_while(|c| is_ident(*c)).collect()]
        };
        for name in names {
            if let Some(top) = base.first() {
                tops.push(top.clone());
            } else if name != "self" && !name.is_empty() {
                tops.push(name);
            }
        }
        base.clear();
    }
    tops
}

/// Every reference from a lower layer to a higher one, as `file:line: ...` lines.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let relative = file.strip_prefix(src).expect("under src");
        let module = module_path(relative);
        let Some(own) = module.first() else {
            continue; // lib.rs: the crate root re-exports every layer
        };
        let own_layer = layer_of(own).unwrap_or_else(|| {
            panic!(
                "{}: top-level module `{own}` is in no layer; add it to LAYERS",
                relative.display()
            )
        });
        let text = fs::read_to_string(&file).expect("readable source");
        let lines: Vec<&str> = text.lines().collect();
        // The closing line of the `#[cfg(test)]` module being skipped, if in one.
        let mut skip_until: Option<String> = None;
        for (n, line) in lines.iter().enumerate() {
            if let Some(end) = &skip_until {
                if line == end {
                    skip_until = None;
                }
                continue;
            }
            let trimmed = line.trim_start();
            let next = lines.get(n + 1).copied().unwrap_or("");
            if trimmed.starts_with("#[cfg(test)]")
                && next.trim_start().starts_with("mod ")
                && next.ends_with('{')
            {
                // Unit tests may check their output with a higher layer.
                let indent = &next[..next.len() - next.trim_start().len()];
                skip_until = Some(format!("{indent}}}"));
                continue;
            }
            for top in referenced_tops(code(line), &module) {
                let layer = layer_of(&top).unwrap_or_else(|| {
                    panic!(
                        "{}:{}: `{top}` is in no layer; add it to LAYERS",
                        relative.display(),
                        n + 1
                    )
                });
                if layer > own_layer {
                    found.push(format!(
                        "{}:{}: the {} layer uses `{top}` of the {} layer above it: {}",
                        relative.display(),
                        n + 1,
                        LAYER_NAMES[own_layer],
                        LAYER_NAMES[layer],
                        line.trim()
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn no_layer_uses_a_higher_one() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(found.is_empty(), "lower layers reach up:\n{}", found.join("\n"));
}

#[test]
fn paths_resolve_to_their_top_module() {
    let module = vec!["store".to_string(), "merge".to_string()];
    assert_eq!(
        referenced_tops("use crate::encoding::Format;", &module),
        ["encoding"]
    );
    assert_eq!(referenced_tops("use super::file::Fd;", &module), ["store"]);
    assert_eq!(
        referenced_tops("use crate::{model::registry, encoding::X};", &module),
        ["model", "encoding"]
    );
    let top = vec!["store".to_string()];
    assert_eq!(referenced_tops("if super::delivery::x() {", &top), ["delivery"]);
    assert_eq!(
        referenced_tops("let a = crate::server::f(crate::Error::X);", &top),
        ["server", "Error"]
    );
}
