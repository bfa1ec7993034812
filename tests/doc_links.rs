//! Every relative link and `#anchor` in the documentation resolves: README.md, docs/*.md and deploy/README.md.
//! A page moved or a heading renamed breaks the links that point at it; this test names each broken one.
//! Anchors follow GitHub's rule: the heading in lower case, punctuation other than `-` and `_` dropped, spaces
//! turned into `-`, and `-1`, `-2`… appended to repeated headings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The Markdown files checked, relative to the repository.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![PathBuf::from("README.md"), PathBuf::from("deploy/README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join("docs"))
        .expect("docs/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .map(|p| PathBuf::from("docs").join(p.file_name().expect("a file name")))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// Lines outside fenced code blocks, with their numbers (1-based).
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut fence: Option<&str> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(m)) => fence = Some(m),
            (Some(open), Some(m)) if open == m => fence = None,
            (None, None) => out.push((i + 1, line)),
            _ => {}
        }
    }
    out
}

/// The line without its inline code spans (`` `…` ``), which may hold brackets that are no link.
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            out.push(c);
        }
    }
    out
}

/// GitHub's anchor for a heading's text.
fn slug(heading: &str) -> String {
    without_code_marks(heading)
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

fn without_code_marks(s: &str) -> String {
    s.replace('`', "")
}

/// Every anchor a page defines: its headings (`#`…`######` outside code blocks), with GitHub's suffixes for repeats.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for (_, line) in prose_lines(text) {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(&line[hashes..]);
        let n = seen.entry(base.clone()).or_insert(0);
        out.insert(if *n == 0 { base.clone() } else { format!("{base}-{n}") });
        *n += 1;
    }
    out
}

/// `(line, target)` of every inline link `[text](target)` outside code.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in prose_lines(text) {
        let line = without_code_spans(line);
        let mut rest = line.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            let target = after[..end].split_whitespace().next().unwrap_or_default().to_string();
            out.push((n, target));
            rest = &after[end..];
        }
    }
    out
}

/// `a/b/../c` → `a/c`, without touching the file system; `None` when the path leaves the repository.
fn normalise(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            Component::Normal(c) => out.push(c),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// The broken links of the given pages, as `page:line: target: why`.
fn broken_links(root: &Path, pages: &[PathBuf]) -> Vec<String> {
    let mut problems = Vec::new();
    for page in pages {
        let text = match std::fs::read_to_string(root.join(page)) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{}: cannot read: {e}", page.display()));
                continue;
            }
        };
        for (line, target) in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let at = format!("{}:{line}: {target}", page.display());
            let file = if path.is_empty() {
                page.clone()
            } else {
                match normalise(&page.parent().unwrap_or(Path::new("")).join(path)) {
                    Some(f) => f,
                    None => {
                        problems.push(format!("{at}: points outside the repository"));
                        continue;
                    }
                }
            };
            let full = root.join(&file);
            if !full.exists() {
                problems.push(format!("{at}: {} does not exist", file.display()));
                continue;
            }
            let Some(anchor) = anchor.filter(|a| !a.is_empty()) else { continue };
            if full.extension().is_none_or(|x| x != "md") {
                problems.push(format!("{at}: an anchor into {}, which is not Markdown", file.display()));
                continue;
            }
            let target_text = std::fs::read_to_string(&full).unwrap_or_default();
            if !anchors(&target_text).contains(anchor) {
                problems.push(format!("{at}: {} has no heading with the anchor #{anchor}", file.display()));
            }
        }
    }
    problems
}

#[test]
fn every_relative_link_and_anchor_in_the_documentation_resolves() {
    let problems = broken_links(Path::new(ROOT), &pages());
    assert!(problems.is_empty(), "broken links in the documentation:\n  {}", problems.join("\n  "));
}

#[test]
fn the_checker_catches_a_missing_file_a_missing_anchor_and_a_link_outside_the_repository() {
    let dir = std::env::temp_dir().join(format!("cn-doc-links-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("docs")).expect("temporary directory");
    std::fs::write(
        dir.join("README.md"),
        "# Title\n\n## Two `commands`: here\n\nSee [ok](docs/a.md#a-heading), [self](#two-commands-here), \
         [gone](docs/missing.md), [no anchor](docs/a.md#nowhere), [outside](../shared/DESIGN.md), \
         [web](https://example.com/x#y), `[code](not/a/link.md)`.\n\n```\n[fenced](not/a/link.md)\n```\n",
    )
    .expect("write README");
    std::fs::write(
        dir.join("docs/a.md"),
        "# A heading\n\n## A heading\n\nBack to [the top](../README.md#title), \
         [the repeat](#a-heading-1).\n",
    )
    .expect("write docs/a.md");
    let problems = broken_links(&dir, &[PathBuf::from("README.md"), PathBuf::from("docs/a.md")]);
    std::fs::remove_dir_all(&dir).expect("clean up");
    let joined = problems.join("\n");
    assert_eq!(problems.len(), 3, "{joined}");
    assert!(joined.contains("README.md:5: docs/missing.md: docs/missing.md does not exist"), "{joined}");
    assert!(joined.contains("docs/a.md has no heading with the anchor #nowhere"), "{joined}");
    assert!(joined.contains("../shared/DESIGN.md: points outside the repository"), "{joined}");
}
