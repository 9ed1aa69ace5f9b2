//! What the model sees of the repository: the functions and classes around
//! traceback frames, the failing tests' bodies, and a compact repo map, all
//! cut with tree-sitter and kept within a token budget.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::Path;

use tree_sitter::{Node, Tree};

use super::failures::Failure;
use super::patch::is_test_file;
use crate::model::tokens;

const DEF_KINDS: [&str; 10] = [
    "function_definition",
    "class_definition",
    "function_item",
    "impl_item",
    "function_declaration",
    "method_definition",
    "class_declaration",
    "method_declaration",
    "decorated_definition",
    "mod_item",
];

/// A function, method or class in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Def {
    pub name: String,
    /// 1-based, inclusive.
    pub start_line: usize,
    pub end_line: usize,
    pub start_byte: usize,
    pub end_byte: usize,
    /// Nesting depth (0 = top level).
    pub depth: usize,
}

/// Every definition in a parsed file, outer before inner.
pub(crate) fn defs(tree: &Tree, text: &str) -> Vec<Def> {
    fn walk(n: Node, text: &str, depth: usize, out: &mut Vec<Def>) {
        let mut d = depth;
        if DEF_KINDS.contains(&n.kind()) && n.kind() != "decorated_definition" {
            let name = n
                .child_by_field_name("name")
                .or_else(|| n.child_by_field_name("type"))
                .and_then(|x| x.utf8_text(text.as_bytes()).ok())
                .unwrap_or("?")
                .to_string();
            out.push(Def {
                name,
                start_line: n.start_position().row + 1,
                end_line: n.end_position().row + 1,
                start_byte: n.start_byte(),
                end_byte: n.end_byte(),
                depth,
            });
            d += 1;
        }
        let mut c = n.walk();
        for ch in n.children(&mut c) {
            walk(ch, text, d, out);
        }
    }
    let mut out = Vec::new();
    walk(tree.root_node(), text, 0, &mut out);
    out
}

/// The innermost function (else class) around `line`.
pub(crate) fn enclosing(defs: &[Def], line: usize) -> Option<&Def> {
    defs.iter()
        .filter(|d| d.start_line <= line && line <= d.end_line)
        .max_by_key(|d| d.depth)
}

/// Source files of the project in languages we parse, relative, sorted.
pub(crate) fn source_files(project: &Path) -> Vec<String> {
    fn walk(dir: &Path, project: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.')
                || [
                    "target",
                    "node_modules",
                    "venv",
                    "__pycache__",
                    "dist",
                    "build",
                    "vendor",
                ]
                .contains(&name.as_str())
            {
                continue;
            }
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                walk(&p, project, out);
            } else if ft.is_file()
                && let Ok(rel) = p.strip_prefix(project)
            {
                let rel = rel.to_string_lossy().into_owned();
                if crate::syntax::Lang::for_path(&rel).is_some() {
                    out.push(rel);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(project, project, &mut out);
    out.sort();
    out
}

/// The last segment of a test id: `tests/t.py::TestA::test_b` → `test_b`.
pub(crate) fn test_name(id: &str) -> &str {
    let tail = id.rsplit("::").next().unwrap_or(id);
    let tail = tail.split('[').next().unwrap_or(tail);
    tail.rsplit(['.', '/']).next().unwrap_or(tail)
}

/// A snippet of a file with line numbers.
fn numbered(text: &str, from: usize, to: usize) -> String {
    let mut s = String::new();
    for (i, l) in text.lines().enumerate().skip(from - 1).take(to + 1 - from) {
        let _ = writeln!(s, "{:>4} | {l}", i + 1);
    }
    s
}

/// One piece of context, ready for the prompt.
#[derive(Clone, Debug)]
pub(crate) struct Snippet {
    pub file: String,
    pub name: String,
    pub start_line: usize,
    pub end_line: usize,
    pub text: String,
}

/// What the failing tests touch: frame functions, test bodies, and the
/// functions the test bodies call, in that order of importance.
pub(crate) struct Focus {
    pub snippets: Vec<Snippet>,
    /// Names called from the failing tests (used to rank mutations).
    pub called: BTreeSet<String>,
    /// Non-test frames: (file, line).
    pub frames: Vec<(String, usize)>,
}

pub(crate) fn focus(project: &Path, failures: &[Failure]) -> Focus {
    let files = source_files(project);
    let parsed: Vec<(String, String, Vec<Def>)> = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(project.join(f)).ok()?;
            let tree = crate::syntax::parse_path(f, &text)?;
            let d = defs(&tree, &text);
            Some((f.clone(), text, d))
        })
        .collect();
    let mut seen: BTreeSet<(String, usize)> = BTreeSet::new();
    let mut snippets = Vec::new();
    let mut add = |file: &str, text: &str, d: &Def, snippets: &mut Vec<Snippet>| {
        if seen.insert((file.to_string(), d.start_line)) {
            snippets.push(Snippet {
                file: file.to_string(),
                name: d.name.clone(),
                start_line: d.start_line,
                end_line: d.end_line,
                text: numbered(text, d.start_line, d.end_line),
            });
        }
    };
    let mut frames = Vec::new();
    // 1. Functions around frames, innermost frames first.
    for f in failures {
        for fr in f.frames.iter().rev() {
            if let Some((file, text, ds)) = parsed.iter().find(|(p, ..)| *p == fr.file) {
                if !is_test_file(file) {
                    frames.push((file.clone(), fr.line));
                }
                if let Some(d) = enclosing(ds, fr.line) {
                    add(file, text, d, &mut snippets);
                }
            }
        }
    }
    // 2. The failing tests' bodies, and 3. what they call.
    let mut called = BTreeSet::new();
    let names: BTreeSet<&str> = failures.iter().map(|f| test_name(&f.id)).collect();
    let mut bodies = String::new();
    for (file, text, ds) in &parsed {
        for d in ds.iter().filter(|d| names.contains(d.name.as_str())) {
            add(file, text, d, &mut snippets);
            bodies.push_str(&text[d.start_byte..d.end_byte]);
        }
    }
    let words: BTreeSet<&str> = bodies
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    for (file, text, ds) in &parsed {
        if is_test_file(file) {
            continue;
        }
        for d in ds.iter().filter(|d| words.contains(d.name.as_str())) {
            called.insert(d.name.clone());
            if d.end_line - d.start_line < 80 {
                add(file, text, d, &mut snippets);
            }
        }
    }
    Focus {
        snippets,
        called,
        frames,
    }
}

/// File list with each top-level definition's first line, cut at `budget` tokens.
pub(crate) fn repo_map(project: &Path, budget: u64) -> String {
    let mut out = String::new();
    for f in source_files(project) {
        let Ok(text) = std::fs::read_to_string(project.join(&f)) else {
            continue;
        };
        let mut entry = format!("{f}\n");
        if let Some(tree) = crate::syntax::parse_path(&f, &text) {
            for d in defs(&tree, &text).iter().filter(|d| d.depth <= 1) {
                let first = text.lines().nth(d.start_line - 1).unwrap_or_default();
                let _ = writeln!(entry, "  {:>4}: {}", d.start_line, first.trim_end());
            }
        }
        if tokens::count(&out) + tokens::count(&entry) > budget {
            out.push_str("  … (map cut to fit the token budget)\n");
            break;
        }
        out.push_str(&entry);
    }
    out
}

/// The focus snippets that fit in `budget` tokens, as prompt text.
pub(crate) fn render_snippets(snippets: &[Snippet], budget: u64) -> String {
    let mut out = String::new();
    for s in snippets {
        let block = format!(
            "{} (lines {}-{}, `{}`):\n{}\n",
            s.file, s.start_line, s.end_line, s.name, s.text
        );
        if tokens::count(&out) + tokens::count(&block) > budget {
            break;
        }
        out.push_str(&block);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fix::failures::Frame;

    #[test]
    fn finds_defs_and_focus() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::create_dir_all(p.join("pkg")).unwrap();
        std::fs::create_dir_all(p.join("tests")).unwrap();
        std::fs::write(
            p.join("pkg/m.py"),
            "class A:\n    def f(self, x):\n        return x < 3\n\ndef unused():\n    pass\n",
        )
        .unwrap();
        std::fs::write(
            p.join("tests/test_m.py"),
            "from pkg.m import A\n\ndef test_f():\n    assert A().f(3)\n",
        )
        .unwrap();
        let mut fail = Failure::new("tests/test_m.py::test_f", "assert False");
        fail.frames = vec![Frame {
            file: "tests/test_m.py".into(),
            line: 4,
        }];
        let fo = focus(p, &[fail]);
        let names: Vec<&str> = fo.snippets.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["test_f", "A", "f"]);
        assert!(fo.called.contains("f"));
        let map = repo_map(p, 1000);
        assert!(
            map.contains("pkg/m.py") && map.contains("def unused"),
            "{map}"
        );
        assert!(repo_map(p, 5).contains("cut"));
        assert_eq!(test_name("tests/t.py::T::test_b[1]"), "test_b");
        assert_eq!(test_name("tests::count_above"), "count_above");
    }
}
