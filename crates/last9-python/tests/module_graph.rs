//! The binding's modules import each other without a cycle: each shared piece has one home
//! (`request`, `lineage`, `render`), and the middlewares sit above the recorder, never beside it.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// Module name → the crate modules its source names through `crate::`.
type Graph = BTreeMap<String, Vec<String>>;

/// The `crate::<module>` references of one source file (`use crate::{a, b::c}` included).
fn references(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in source.match_indices("crate::") {
        let rest = &source[at + "crate::".len()..];
        let names = match rest.strip_prefix('{') {
            Some(group) => &group[..group.find('}').unwrap_or(group.len())],
            None => rest,
        };
        for item in names.split(',') {
            let name: String = item
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && !found.contains(&name) {
                found.push(name);
            }
        }
    }
    found
}

fn graph_of(dir: &Path) -> Graph {
    let mut graph = Graph::new();
    for entry in fs::read_dir(dir).expect("src directory") {
        let path = entry.expect("src entry").path();
        if path.extension().is_some_and(|ext| ext == "rs") {
            let module = path.file_stem().unwrap().to_string_lossy().into_owned();
            let source = fs::read_to_string(&path).expect("readable source");
            graph.insert(module, references(&source));
        }
    }
    let modules: Vec<String> = graph.keys().cloned().collect();
    for targets in graph.values_mut() {
        // Names that are not modules (items re-exported by lib.rs) are not edges.
        targets.retain(|t| modules.contains(t));
    }
    graph
}

/// A cycle of the graph, as the modules along it, if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.iter().any(|n| n == node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if next != node {
                if let Some(cycle) = visit(next, graph, path, done) {
                    return Some(cycle);
                }
            }
        }
        path.pop();
        done.push(node.to_owned());
        None
    }
    let mut done = Vec::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn binding_modules_import_each_other_without_a_cycle() {
    let graph = graph_of(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(graph.contains_key("wsgi") && graph["wsgi"].contains(&"recorder".to_owned()));
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle in crates/last9-python/src: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_check_finds_a_cycle_when_there_is_one() {
    let mut graph = Graph::new();
    graph.insert(
        "wsgi".into(),
        references("use crate::{recorder::Recorder, errors};"),
    );
    graph.insert("recorder".into(), references("use crate::wsgi::environ_text;"));
    graph.insert("errors".into(), vec![]);
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["recorder".into(), "wsgi".into(), "recorder".into()])
    );
    graph.insert("recorder".into(), references("use crate::errors::to_py;"));
    assert_eq!(find_cycle(&graph), None);
}
