//! Model patches: search/replace blocks (or unified diffs, turned into the
//! same edits) applied exactly first, then ignoring whitespace.

use std::collections::BTreeMap;
use std::path::{Component, Path};

/// Replace `search` with `replace` in `file`. An empty `search` creates the
/// file (or appends to it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edit {
    pub file: String,
    pub search: String,
    pub replace: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error(
        "the reply holds no edit: expected SEARCH/REPLACE blocks (a path line, <<<<<<< SEARCH, =======, >>>>>>> REPLACE) or a unified diff"
    )]
    NoEdits,
    #[error(
        "edit for {file}: the SEARCH text does not match the file; first line that did not match: {line:?}"
    )]
    NoMatch { file: String, line: String },
    #[error(
        "edit for {file}: the SEARCH text matches {count} places; include more lines to make it unique"
    )]
    Ambiguous { file: String, count: usize },
    #[error("edit for {file}: no such file (an edit with an empty SEARCH creates one)")]
    NoFile { file: String },
    #[error("edit for {file}: the path must be relative and stay inside the project")]
    BadPath { file: String },
    #[error(
        "edit for {file}: it is a test file, and test files are read-only without --allow-test-edits"
    )]
    TestFile { file: String },
    #[error(
        "edit for {file}: it changes how the tests are collected or run ({what}), and test configuration is read-only without --allow-test-edits"
    )]
    TestConfig { file: String, what: String },
    #[error("malformed edit block near line {line}: {reason}")]
    Malformed { line: usize, reason: String },
}

/// Every edit in a model reply: search/replace blocks if there are any,
/// else unified diff hunks.
pub fn parse(reply: &str) -> Result<Vec<Edit>, PatchError> {
    let edits = parse_blocks(reply)?;
    if !edits.is_empty() {
        return Ok(edits);
    }
    let edits = parse_unified(reply);
    if edits.is_empty() {
        return Err(PatchError::NoEdits);
    }
    Ok(edits)
}

fn clean_path(line: &str) -> String {
    let t = line.trim().trim_matches('`').trim_matches('*').trim();
    let t = t
        .strip_prefix("File:")
        .or_else(|| t.strip_prefix("file:"))
        .unwrap_or(t)
        .trim();
    t.trim_matches('`').to_string()
}

fn parse_blocks(reply: &str) -> Result<Vec<Edit>, PatchError> {
    let lines: Vec<&str> = reply.lines().collect();
    let mut edits = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if !lines[i].trim_start().starts_with("<<<<<<< SEARCH") {
            i += 1;
            continue;
        }
        // The path is the closest non-fence line above.
        let file = lines[..i]
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| !l.is_empty() && !l.starts_with("```"))
            .map(clean_path)
            .ok_or_else(|| PatchError::Malformed {
                line: i + 1,
                reason: "no file path before <<<<<<< SEARCH".into(),
            })?;
        let start = i + 1;
        let sep = (start..lines.len())
            .find(|&j| lines[j].trim_end() == "=======")
            .ok_or_else(|| PatchError::Malformed {
                line: i + 1,
                reason: "<<<<<<< SEARCH without =======".into(),
            })?;
        let end = (sep + 1..lines.len())
            .find(|&j| lines[j].trim_start().starts_with(">>>>>>> REPLACE"))
            .ok_or_else(|| PatchError::Malformed {
                line: sep + 1,
                reason: "======= without >>>>>>> REPLACE".into(),
            })?;
        edits.push(Edit {
            file,
            search: join_lines(&lines[start..sep]),
            replace: join_lines(&lines[sep + 1..end]),
        });
        i = end + 1;
    }
    Ok(edits)
}

fn join_lines(lines: &[&str]) -> String {
    let mut s = lines.join("\n");
    if !lines.is_empty() {
        s.push('\n');
    }
    s
}

/// `--- a/x` / `+++ b/x` / `@@` hunks, each turned into one edit whose
/// search is its context and removed lines.
fn parse_unified(reply: &str) -> Vec<Edit> {
    let mut edits = Vec::new();
    let mut file: Option<String> = None;
    let mut hunk: Option<(Vec<String>, Vec<String>)> = None;
    let flush = |hunk: &mut Option<(Vec<String>, Vec<String>)>,
                 file: &Option<String>,
                 edits: &mut Vec<Edit>| {
        if let (Some((old, new)), Some(f)) = (hunk.take(), file) {
            edits.push(Edit {
                file: f.clone(),
                search: old.concat(),
                replace: new.concat(),
            });
        }
    };
    for l in reply.lines() {
        if let Some(p) = l.strip_prefix("+++ ") {
            flush(&mut hunk, &file, &mut edits);
            let p = p.split('\t').next().unwrap_or(p).trim();
            let p = p.strip_prefix("b/").unwrap_or(p);
            file = (p != "/dev/null").then(|| p.to_string());
        } else if l.starts_with("--- ") {
            flush(&mut hunk, &file, &mut edits);
        } else if l.starts_with("@@") {
            flush(&mut hunk, &file, &mut edits);
            hunk = Some((Vec::new(), Vec::new()));
        } else if let Some((old, new)) = hunk.as_mut() {
            if let Some(t) = l.strip_prefix('-') {
                old.push(format!("{t}\n"));
            } else if let Some(t) = l.strip_prefix('+') {
                new.push(format!("{t}\n"));
            } else if let Some(t) = l.strip_prefix(' ') {
                old.push(format!("{t}\n"));
                new.push(format!("{t}\n"));
            } else if l.is_empty() {
                old.push("\n".into());
                new.push("\n".into());
            } else if l.starts_with('\\') {
                // "\ No newline at end of file"
            } else {
                flush(&mut hunk, &file, &mut edits);
            }
        }
    }
    flush(&mut hunk, &file, &mut edits);
    edits
}

/// Whether a path looks like a test file (read-only unless allowed).
pub(crate) fn is_test_file(path: &str) -> bool {
    let p = Path::new(path);
    let in_test_dir = p.parent().is_some_and(|d| {
        d.components().any(|c| {
            matches!(
                c.as_os_str().to_str(),
                Some("tests" | "test" | "__tests__" | "testing")
            )
        })
    });
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    in_test_dir
        || name.starts_with("test_")
        || name == "conftest.py"
        // A test script named just so (`node test.js`, `python tests.py`).
        || p.file_stem().is_some_and(|s| s == "test" || s == "tests")
        || ["_test.py", "_test.go", "_test.rs"]
            .iter()
            .any(|s| name.ends_with(s))
        || [".test.", ".spec."].iter().any(|s| name.contains(s))
}

/// Files that are test configuration as a whole.
const TEST_CONFIG_FILES: &[&str] = &[
    "pytest.ini",
    ".pytest.ini",
    "pytest.toml",
    ".pytest.toml",
    "conftest.py",
    ".mocharc.js",
    ".mocharc.cjs",
    ".mocharc.json",
    ".mocharc.yml",
    ".mocharc.yaml",
    "karma.conf.js",
];

/// What part of the test configuration an edit of `path` from `old` to
/// `new` changes, if any: pytest's sections (pytest.ini, pyproject's
/// `[tool.pytest...]`, setup.cfg's `[tool:pytest]`, tox.ini's `[pytest]`),
/// conftest.py, Cargo's test targets (`[[test]]`, `test`/`harness` of
/// `[lib]`/`[[bin]]`, `autotests`, workspace members, profiles), a
/// package.json's test scripts and runner settings, jest/vitest/mocha
/// configs, a Makefile's `test` rule. A file that no longer parses counts
/// as changed.
pub(crate) fn test_config_change(path: &str, old: Option<&str>, new: &str) -> Option<String> {
    let name = Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if old == Some(new) {
        return None;
    }
    let whole = TEST_CONFIG_FILES.contains(&name)
        || ["jest.config.", "vitest.config.", "vitest.workspace."]
            .iter()
            .any(|p| name.starts_with(p));
    if whole {
        return Some(name.to_string());
    }
    let differs = |what: &str, f: &dyn Fn(&str) -> Option<String>| {
        let before = old.map(f).unwrap_or(Some(String::new()));
        let after = f(new);
        (after.is_none() || before != after).then(|| what.to_string())
    };
    match name {
        "pyproject.toml" => differs("[tool.pytest]", &|t| toml_part(t, &[&["tool", "pytest"]])),
        "setup.cfg" => differs("[tool:pytest]", &|t| Some(ini_section(t, &["tool:pytest"]))),
        "tox.ini" => differs("[pytest]", &|t| {
            Some(ini_section(t, &["pytest", "tool:pytest"]))
        }),
        "Cargo.toml" => differs("test targets", &|t| {
            toml_part(
                t,
                &[
                    &["test"],
                    &["lib"],
                    &["bin"],
                    &["package", "autotests"],
                    &["package", "autolib"],
                    &["workspace", "members"],
                    &["workspace", "default-members"],
                    &["workspace", "exclude"],
                    &["profile"],
                ],
            )
        }),
        "package.json" => differs("test scripts", &|t| {
            let v: serde_json::Value = serde_json::from_str(t).ok()?;
            let keys = [
                &v["scripts"]["test"],
                &v["scripts"]["pretest"],
                &v["scripts"]["posttest"],
                &v["jest"],
                &v["mocha"],
                &v["ava"],
                &v["vitest"],
            ];
            Some(serde_json::to_string(&keys).unwrap_or_default())
        }),
        "Makefile" | "makefile" | "GNUmakefile" => {
            differs("the test rule", &|t| Some(make_rule(t, "test")))
        }
        _ => None,
    }
}

/// The values at `paths` in a TOML document, as text; `None` if it does not parse.
fn toml_part(text: &str, paths: &[&[&str]]) -> Option<String> {
    let doc: toml::Value = toml::from_str(text).ok()?;
    let parts: Vec<String> = paths
        .iter()
        .map(|p| {
            let mut v = Some(&doc);
            for k in *p {
                v = v.and_then(|v| v.get(k));
            }
            v.map(|v| v.to_string()).unwrap_or_default()
        })
        .collect();
    Some(parts.join("\n"))
}

/// The lines of an INI file's sections named `names`, trimmed, comments out.
fn ini_section(text: &str, names: &[&str]) -> String {
    let mut out = String::new();
    let mut inside = false;
    for l in text.lines() {
        let t = l.trim();
        if let Some(h) = t.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            inside = names.contains(&h.trim());
            if inside {
                out.push_str(t);
                out.push('\n');
            }
            continue;
        }
        if inside && !t.is_empty() && !t.starts_with('#') && !t.starts_with(';') {
            out.push_str(t);
            out.push('\n');
        }
    }
    out
}

/// A Makefile rule's header and recipe lines.
fn make_rule(text: &str, target: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for l in text.lines() {
        if !l.starts_with('\t') && !l.trim().is_empty() {
            inside = l
                .split_once(':')
                .is_some_and(|(t, _)| t.split_whitespace().any(|t| t == target));
        }
        if inside {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

fn safe_relative(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        && !p
            .components()
            .any(|c| c.as_os_str() == ".git" || c.as_os_str() == ".selfrepair")
}

/// Apply `edits` in order; `read` gives a file's current text (`None` if
/// it does not exist). Returns the new text of every touched file.
pub fn apply(
    edits: &[Edit],
    allow_test_edits: bool,
    read: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, PatchError> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for e in edits {
        if !safe_relative(&e.file) {
            return Err(PatchError::BadPath {
                file: e.file.clone(),
            });
        }
        if !allow_test_edits && is_test_file(&e.file) {
            return Err(PatchError::TestFile {
                file: e.file.clone(),
            });
        }
        let current = out.get(&e.file).cloned().or_else(|| read(&e.file));
        let new = match current {
            None if e.search.trim().is_empty() => e.replace.clone(),
            None => {
                return Err(PatchError::NoFile {
                    file: e.file.clone(),
                });
            }
            Some(text) if e.search.trim().is_empty() => text + &e.replace,
            Some(text) => replace_once(&text, e)?,
        };
        out.insert(e.file.clone(), new);
    }
    if !allow_test_edits {
        for (file, new) in &out {
            if let Some(what) = test_config_change(file, read(file).as_deref(), new) {
                return Err(PatchError::TestConfig {
                    file: file.clone(),
                    what,
                });
            }
        }
    }
    Ok(out)
}

fn replace_once(text: &str, e: &Edit) -> Result<String, PatchError> {
    let count = text.matches(e.search.as_str()).count();
    if count == 1 {
        return Ok(text.replacen(&e.search, &e.replace, 1));
    }
    if count > 1 {
        return Err(PatchError::Ambiguous {
            file: e.file.clone(),
            count,
        });
    }
    fuzzy_replace(text, e)
}

/// Match line by line ignoring surrounding whitespace; re-indent the
/// replacement by the indentation the file has and the search lacked.
fn fuzzy_replace(text: &str, e: &Edit) -> Result<String, PatchError> {
    let file_lines: Vec<&str> = text.split_inclusive('\n').collect();
    let search: Vec<&str> = e.search.lines().collect();
    let first = search
        .iter()
        .position(|l| !l.trim().is_empty())
        .unwrap_or(0);
    let last = search
        .iter()
        .rposition(|l| !l.trim().is_empty())
        .unwrap_or(0);
    let search = &search[first..=last];
    let eq = |a: &str, b: &str| a.trim() == b.trim();
    let hits: Vec<usize> = (0..file_lines.len().saturating_sub(search.len() - 1))
        .filter(|&i| {
            search
                .iter()
                .enumerate()
                .all(|(k, s)| eq(file_lines[i + k], s))
        })
        .collect();
    match hits.len() {
        1 => {}
        0 => {
            // Name the first search line no longer matched in sequence.
            let mut best = 0;
            for i in 0..file_lines.len() {
                let n = search
                    .iter()
                    .zip(&file_lines[i..])
                    .take_while(|(s, f)| eq(f, s))
                    .count();
                best = best.max(n);
            }
            return Err(PatchError::NoMatch {
                file: e.file.clone(),
                line: search.get(best).unwrap_or(&"").to_string(),
            });
        }
        n => {
            return Err(PatchError::Ambiguous {
                file: e.file.clone(),
                count: n,
            });
        }
    }
    let at = hits[0];
    let indent = |s: &str| s.len() - s.trim_start().len();
    let file_indent = &file_lines[at][..indent(file_lines[at])];
    let search_indent = indent(search[0]);
    let extra = file_indent
        .get(..file_indent.len().saturating_sub(search_indent))
        .unwrap_or("");
    let mut out: String = file_lines[..at].concat();
    for l in e.replace.lines() {
        if !l.trim().is_empty() {
            out.push_str(extra);
        }
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(&file_lines[at + search.len()..].concat());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "def f(x):\n    if x < 5:\n        return 1\n    return 2\n";

    fn read(_: &str) -> Option<String> {
        Some(SRC.to_string())
    }

    #[test]
    fn blocks_apply_exactly() {
        let reply = "Fix:\n```python\npkg/m.py\n<<<<<<< SEARCH\n    if x < 5:\n=======\n    if x <= 5:\n>>>>>>> REPLACE\n```\n";
        let edits = parse(reply).unwrap();
        assert_eq!(edits[0].file, "pkg/m.py");
        let out = apply(&edits, false, read).unwrap();
        assert_eq!(out["pkg/m.py"], SRC.replace("x < 5", "x <= 5"));
    }

    #[test]
    fn whitespace_tolerant_and_reindented() {
        let e = Edit {
            file: "m.py".into(),
            search: "if x < 5:\n    return 1\n".into(),
            replace: "if x <= 5:\n    return 1\n".into(),
        };
        let out = apply(&[e], false, read).unwrap();
        assert_eq!(out["m.py"], SRC.replace("x < 5", "x <= 5"));
    }

    #[test]
    fn mismatch_names_file_and_line() {
        let e = Edit {
            file: "m.py".into(),
            search: "def f(x):\n    if y > 2:\n".into(),
            replace: "".into(),
        };
        let err = apply(&[e], false, read).unwrap_err();
        assert_eq!(
            err,
            PatchError::NoMatch {
                file: "m.py".into(),
                line: "    if y > 2:".into()
            }
        );
        assert!(err.to_string().contains("m.py"));
    }

    #[test]
    fn unified_diffs_become_edits() {
        let reply = "```diff\n--- a/m.py\n+++ b/m.py\n@@ -1,3 +1,3 @@\n def f(x):\n-    if x < 5:\n+    if x <= 5:\n         return 1\n```\n";
        let edits = parse(reply).unwrap();
        let out = apply(&edits, false, read).unwrap();
        assert_eq!(out["m.py"], SRC.replace("x < 5", "x <= 5"));
    }

    #[test]
    fn test_files_and_escapes_are_refused() {
        let e = |f: &str| Edit {
            file: f.into(),
            search: String::new(),
            replace: "x".into(),
        };
        assert!(matches!(
            apply(&[e("tests/test_a.py")], false, |_| None),
            Err(PatchError::TestFile { .. })
        ));
        assert!(apply(&[e("tests/test_a.py")], true, |_| None).is_ok());
        for bad in ["../x.py", "/etc/passwd", ".git/config"] {
            assert!(matches!(
                apply(&[e(bad)], true, |_| None),
                Err(PatchError::BadPath { .. })
            ));
        }
        assert_eq!(parse("no edits here"), Err(PatchError::NoEdits));
    }

    #[test]
    fn test_configuration_is_a_test_edit() {
        let py = "[project]\nname = \"x\"\n\n[tool.pytest.ini_options]\ntestpaths = [\"tests\"]\n";
        // Dependencies may change; pytest's section may not.
        assert_eq!(
            test_config_change("pyproject.toml", Some(py), &py.replace("\"x\"", "\"y\"")),
            None
        );
        let deselect = py.replace(
            "testpaths",
            "addopts = \"-k 'not test_reorder_at_level'\"\ntestpaths",
        );
        assert!(test_config_change("pyproject.toml", Some(py), &deselect).is_some());
        assert!(test_config_change("pyproject.toml", Some(py), "[broken").is_some());
        let cfg = "[metadata]\nname = x\n[tool:pytest]\naddopts = -q\n";
        assert_eq!(
            test_config_change("setup.cfg", Some(cfg), &cfg.replace("name = x", "name = y")),
            None
        );
        assert!(
            test_config_change("setup.cfg", Some(cfg), &cfg.replace("-q", "-q -k 'not a'"))
                .is_some()
        );
        assert!(test_config_change("tox.ini", None, "[pytest]\naddopts = -x\n").is_some());
        assert!(test_config_change("sub/pytest.ini", None, "[pytest]\n").is_some());
        let cargo = "[package]\nname = \"t\"\nversion = \"0.1.0\"\n";
        assert_eq!(
            test_config_change("Cargo.toml", Some(cargo), &cargo.replace("0.1.0", "0.2.0")),
            None
        );
        assert!(
            test_config_change(
                "Cargo.toml",
                Some(cargo),
                &format!("{cargo}[[test]]\nname = \"it\"\nharness = false\n")
            )
            .is_some()
        );
        let pkg = r#"{"name":"x","scripts":{"test":"jest","build":"tsc"}}"#;
        assert_eq!(
            test_config_change("package.json", Some(pkg), &pkg.replace("tsc", "tsc -b")),
            None
        );
        assert!(
            test_config_change("package.json", Some(pkg), &pkg.replace("jest", "true")).is_some()
        );
        let mk = "all:\n\tcc x.c\n\ntest:\n\t./run-tests\n";
        assert_eq!(
            test_config_change("Makefile", Some(mk), &mk.replace("cc x.c", "cc -O2 x.c")),
            None
        );
        assert!(
            test_config_change("Makefile", Some(mk), &mk.replace("./run-tests", "true")).is_some()
        );
        // Through apply: refused unless test edits are allowed.
        let e = Edit {
            file: "pyproject.toml".into(),
            search: "testpaths".into(),
            replace: "addopts = \"-k 'not slow'\"\ntestpaths".into(),
        };
        let read = |_: &str| Some(py.to_string());
        assert!(matches!(
            apply(std::slice::from_ref(&e), false, read),
            Err(PatchError::TestConfig { .. })
        ));
        assert!(apply(&[e], true, read).is_ok());
    }
}
