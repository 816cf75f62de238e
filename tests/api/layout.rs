//! The layout rules of ARCHITECTURE.md, checked on the sources: no import cycles between the
//! modules of `src/`, `aggregates/src/` and `projections/src/` at any level, no source file
//! over 600 lines (`tests.rs` files excepted), and a read layer that never imports the HTTP
//! edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

/// Every `.rs` file under `root` except `tests.rs`, as (module path, code before its first
/// `#[cfg(test)]`, with line comments removed).
fn modules(root: &Path) -> BTreeMap<Module, String> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read a source folder") {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(root, &mut files);
    let comment = regex::Regex::new(r"//.*").expect("regex");
    let mut modules = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(root).expect("under the root");
        if relative.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let mut parts: Module = relative
            .with_extension("")
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        if parts.last().is_some_and(|p| p == "mod") {
            parts.pop();
        }
        if parts == ["lib"] || parts == ["main"] {
            parts.clear();
        }
        let text = std::fs::read_to_string(&file).expect("read a source file");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        modules.insert(parts, comment.replace_all(code, "").into_owned());
    }
    modules
}

/// The module a path written in `from` names (the longest module prefix it resolves to).
fn resolve(modules: &BTreeMap<Module, String>, from: &Module, path: &str) -> Option<Module> {
    let mut segments = path.split("::");
    let mut full: Module = match segments.next()? {
        "crate" => Vec::new(),
        "self" => from.clone(),
        "super" => from[..from.len().saturating_sub(1)].to_vec(),
        _ => return None,
    };
    for segment in segments {
        match segment {
            "super" => {
                full.pop();
            }
            "self" => {}
            name => full.push(name.to_string()),
        }
    }
    (0..=full.len())
        .rev()
        .map(|n| full[..n].to_vec())
        .find(|prefix| modules.contains_key(prefix))
}

/// Edges between siblings: code in `a` naming something in sibling `b` (or below it) is an
/// edge between the two entries of their common folder. Parent-child references are not.
fn edges(modules: &BTreeMap<Module, String>) -> BTreeMap<Module, BTreeSet<Module>> {
    let path = regex::Regex::new(
        r"\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)(?:::\{([^}]*)\})?",
    )
    .expect("regex");
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, code) in modules {
        for found in path.captures_iter(code) {
            let base = &found[1];
            let mut targets = vec![base.to_string()];
            if let Some(group) = found.get(2) {
                for item in group.as_str().split(',') {
                    let first = item.trim().split("::").next().unwrap_or_default();
                    if !first.is_empty() && first != "self" {
                        targets.push(format!("{base}::{first}"));
                    }
                }
            }
            for target in targets {
                let Some(to) = resolve(modules, module, &target) else {
                    continue;
                };
                let common = module.iter().zip(&to).take_while(|(a, b)| a == b).count();
                if common >= module.len() || common >= to.len() {
                    continue;
                }
                edges
                    .entry(module[..=common].to_vec())
                    .or_default()
                    .insert(to[..=common].to_vec());
            }
        }
    }
    edges
}

/// A cycle through `start`, if there is one (depth-first search back to it).
fn cycle_through(
    edges: &BTreeMap<Module, BTreeSet<Module>>,
    start: &Module,
) -> Option<Vec<Module>> {
    let mut stack = vec![(start.clone(), vec![start.clone()])];
    let mut seen = BTreeSet::new();
    while let Some((at, trail)) = stack.pop() {
        for next in edges.get(&at).into_iter().flatten() {
            if next == start {
                return Some(trail.clone());
            }
            if seen.insert(next.clone()) {
                let mut longer = trail.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

fn roots() -> Vec<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    ["src", "aggregates/src", "projections/src"]
        .iter()
        .map(|r| here.join(r))
        .collect()
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let mut cycles = Vec::new();
    for root in roots() {
        let modules = modules(&root);
        assert!(modules.len() > 10, "read the modules of {}", root.display());
        let edges = edges(&modules);
        for start in edges.keys() {
            if let Some(cycle) = cycle_through(&edges, start) {
                let names: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
                cycles.push(format!("{}: {}", root.display(), names.join(" -> ")));
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_cycle_check_sees_a_cycle() {
    let mut modules = BTreeMap::new();
    modules.insert(vec![], String::new());
    modules.insert(vec!["a".to_string()], "use crate::b::Thing;".to_string());
    modules.insert(
        vec!["b".to_string()],
        "use super::a::{Other, more::X};".to_string(),
    );
    modules.insert(vec!["c".to_string()], "use crate::a;".to_string());
    let edges = edges(&modules);
    assert!(cycle_through(&edges, &vec!["a".to_string()]).is_some());
    assert!(cycle_through(&edges, &vec!["c".to_string()]).is_none());
}

#[test]
fn no_source_file_is_longer_than_600_lines() {
    let mut long = Vec::new();
    for root in roots() {
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("read a source folder") {
                let path = entry.expect("a folder entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && path.file_name().is_some_and(|n| n != "tests.rs")
                {
                    let lines = std::fs::read_to_string(&path)
                        .expect("read")
                        .lines()
                        .count();
                    if lines > 600 {
                        long.push(format!("{} ({lines} lines)", path.display()));
                    }
                }
            }
        }
    }
    assert!(long.is_empty(), "files over 600 lines: {long:?}");
}

#[test]
fn the_read_layer_never_imports_the_http_edge() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&root);
    let offenders: Vec<String> = modules
        .iter()
        .filter(|(module, _)| module.first().is_some_and(|m| m == "read"))
        .filter(|(_, code)| code.contains("axum") || code.contains("crate::http"))
        .map(|(module, _)| module.join("::"))
        .collect();
    assert!(
        modules
            .keys()
            .any(|m| m.first().is_some_and(|m| m == "read")),
        "found the read layer"
    );
    assert!(
        offenders.is_empty(),
        "read modules importing the edge: {offenders:?}"
    );
}
