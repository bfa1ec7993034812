//! The shape of the code, checked: which top-level modules import each other in a cycle, and which files hold SQL
//! on `solicitudes_notificacion`. Both start as the code is and are tightened as it is restructured: a test fails
//! when a cycle or a file is added, and also when one goes away, so the lists below always say where things stand.
//! Only production code counts (a file's `#[cfg(test)]` module and `tests.rs` files are left out); comments too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Groups of top-level modules that reach each other through `crate::` paths (strongly connected components):
/// none. A module that needs another's type or check while that one needs it back is a sign that the shared piece
/// belongs lower (`domain`, `config`, `present`) or that one of the two should hand a value in.
const CYCLES: &[&[&str]] = &[];

/// Files outside `src/requests/` with SQL naming `solicitudes_notificacion` (the goal: none).
const TABLE_SQL_OUTSIDE_REQUESTS: &[&str] = &["migrate.rs"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, as a path relative to `src/`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("src is readable").flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path.strip_prefix(src()).expect("under src").to_path_buf());
        }
    }
}

/// The production code of a file: without its `#[cfg(test)]` module (they come last) and without `//` comments.
fn production_code(rel: &Path) -> String {
    if rel.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let text = std::fs::read_to_string(src().join(rel)).expect("source file is readable");
    // An inline test module (`mod tests {`), not a declaration of a sibling file (`mod tests;`).
    let inline_tests = text.match_indices("#[cfg(test)]\nmod ").map(|(i, _)| i).find(|&i| {
        let rest = &text[i + "#[cfg(test)]\nmod ".len()..];
        rest[ident_at(rest).len()..].trim_start().starts_with('{')
    });
    let text = match inline_tests {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines().map(|l| l.split_once("//").map_or(l, |(code, _)| code)).collect::<Vec<_>>().join("\n")
}

/// The top-level module a file belongs to (`dispatch/store.rs` → `dispatch`, `alerts.rs` → `alerts`).
fn top_module(rel: &Path) -> String {
    let first = rel.components().next().expect("non-empty path").as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_string()
}

fn ident_at(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules named after `crate::` in `code`, including each item of `crate::{a, b::c}`.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        out.insert(ident_at(&group[j..]).to_string());
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident_at(rest).to_string());
        }
    }
    out
}

fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| top_module(f)).filter(|m| m != "lib" && m != "main").collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = modules.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    for f in &files {
        let from = top_module(f);
        let Some(edges) = graph.get_mut(&from) else { continue };
        for to in crate_paths(&production_code(f)) {
            if to != from && modules.contains(&to) {
                edges.insert(to);
            }
        }
    }
    graph
}

fn reachable(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_string()];
    while let Some(m) = stack.pop() {
        for next in graph.get(&m).into_iter().flatten() {
            if seen.insert(next.clone()) {
                stack.push(next.clone());
            }
        }
    }
    seen
}

/// Strongly connected components with more than one module, each sorted, in order.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reach: BTreeMap<&String, BTreeSet<String>> = graph.keys().map(|m| (m, reachable(graph, m))).collect();
    let mut out: BTreeSet<Vec<String>> = BTreeSet::new();
    for m in graph.keys() {
        let component: Vec<String> =
            graph.keys().filter(|n| *n == m || (reach[m].contains(*n) && reach[n].contains(m))).cloned().collect();
        if component.len() > 1 {
            out.insert(component);
        }
    }
    out.into_iter().collect()
}

#[test]
fn module_cycles_are_the_known_ones() {
    let found = cycles(&module_graph());
    let known: Vec<Vec<String>> = CYCLES.iter().map(|c| c.iter().map(|s| s.to_string()).collect()).collect();
    assert_eq!(found, known, "an import cycle between top-level modules; never add one");
}

/// `table` after an SQL keyword that reads or writes it (not in a log message or a metric's help text).
fn names_table_in_sql(code: &str, table: &str) -> bool {
    code.match_indices(table).any(|(i, _)| {
        let before = code[..i].trim_end();
        let word = before.rsplit(|c: char| c.is_whitespace() || c == '(').next().unwrap_or("");
        ["FROM", "UPDATE", "INTO", "JOIN", "TABLE", "'"]
            .iter()
            .any(|k| word.eq_ignore_ascii_case(k) || word.ends_with(k))
    })
}

#[test]
fn table_sql_lives_where_it_is_known_to() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let found: Vec<String> = files
        .iter()
        .filter(|f| !f.starts_with("requests"))
        .filter(|f| names_table_in_sql(&production_code(f), "solicitudes_notificacion"))
        .map(|f| f.to_string_lossy().into_owned())
        .collect();
    assert_eq!(found, TABLE_SQL_OUTSIDE_REQUESTS, "SQL on solicitudes_notificacion belongs in src/requests/");
}

/// The scanner itself: grouped imports, nested groups, comments.
#[test]
fn crate_paths_reads_plain_and_grouped_imports() {
    let code = "use crate::db::DbError;\nuse crate::{alerts, domain::{ChannelKind, Email}, ops::mask};\nlet x = crate::metrics::M;";
    let found: Vec<String> = crate_paths(code).into_iter().collect();
    assert_eq!(found, ["alerts", "db", "domain", "metrics", "ops"]);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e"), ("e", "d")] {
        g.entry(a.into()).or_default().insert(b.into());
        g.entry(b.into()).or_default();
    }
    assert_eq!(cycles(&g), [vec!["a", "b", "c"], vec!["d", "e"]]);
    assert!(names_table_in_sql("SELECT 1 FROM\n    solicitudes_notificacion s", "solicitudes_notificacion"));
    assert!(names_table_in_sql("to_regclass('solicitudes_notificacion')", "solicitudes_notificacion"));
    assert!(!names_table_in_sql("\"requests in solicitudes_notificacion\"", "solicitudes_notificacion"));
}
