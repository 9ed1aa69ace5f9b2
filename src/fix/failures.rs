//! What a test run found: failing test ids, messages and the traceback
//! frames inside the repository.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// One source location from a traceback or panic message.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Frame {
    /// Relative to the project directory.
    pub file: String,
    pub line: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// As the runner names it (`tests/test_x.py::test_y`, `tests::y`, `TestY`).
    pub id: String,
    pub message: String,
    /// The runner's text for this test (traceback, panic output).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub output: String,
    /// Frames inside the project, innermost last.
    pub frames: Vec<Frame>,
}

impl Failure {
    pub fn new(id: impl Into<String>, message: impl Into<String>) -> Self {
        Failure {
            id: id.into(),
            message: message.into(),
            output: String::new(),
            frames: Vec::new(),
        }
    }
}

/// Parsed results of one run. Ids in `passed` are only as complete as the
/// runner's report (text parsing may see only failures).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TestReport {
    pub failed: Vec<Failure>,
    pub passed: Vec<String>,
    /// Tests the runner collected and skipped (pytest skips, libtest's
    /// ignored tests, go's skips).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

/// Ids a runner reports when it cannot name tests: not tests.
pub(crate) const PSEUDO_IDS: [&str; 2] = ["suite", "build"];

impl TestReport {
    pub fn failed_ids(&self) -> BTreeSet<String> {
        self.failed.iter().map(|f| f.id.clone()).collect()
    }

    /// Every test the run collected, by id: passed, failed or skipped.
    pub fn collected(&self) -> BTreeSet<String> {
        self.passed
            .iter()
            .chain(self.skipped.iter())
            .cloned()
            .chain(self.failed.iter().map(|f| f.id.clone()))
            .filter(|id| !PSEUDO_IDS.contains(&id.as_str()))
            .collect()
    }

    /// Fill each failure's frames from its own output (or, failing that,
    /// the whole run's), keeping files that exist under `project`.
    pub fn locate_frames(&mut self, whole_output: &str, project: &Path) {
        for f in &mut self.failed {
            let text = if f.output.is_empty() {
                whole_output
            } else {
                &f.output
            };
            let mut frames = frames_in(text, project);
            if frames.is_empty() && !f.output.is_empty() {
                frames = frames_in(whole_output, project);
            }
            f.frames = frames;
        }
    }

    /// A stable fingerprint of what failed and how, for "same failure again".
    pub fn signature(&self) -> String {
        let mut parts: Vec<String> = self
            .failed
            .iter()
            .map(|f| format!("{}|{}", f.id, first_line(&f.message)))
            .collect();
        parts.sort();
        parts.join("\n")
    }
}

/// `text` with CPython's object addresses masked (`<Foo object at
/// 0x7f3e26a88690>` becomes `<Foo object at 0x…>`): they change on every
/// run, tell a model nothing, and would make a prompt that carries them
/// impossible to replay from a transcript, which matches requests exactly.
pub(crate) fn mask_addresses(text: &str) -> String {
    const AT: &str = " at 0x";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(AT) {
        let after = &rest[i + AT.len()..];
        let hex = after.bytes().take_while(u8::is_ascii_hexdigit).count();
        out.push_str(&rest[..i + AT.len()]);
        if hex > 0 && after[hex..].starts_with('>') {
            out.push('…');
        } else {
            out.push_str(&after[..hex]);
        }
        rest = &after[hex..];
    }
    out.push_str(rest);
    out
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default().trim()
}

const SOURCE_EXTS: [&str; 8] = ["py", "rs", "go", "js", "ts", "jsx", "tsx", "mjs"];

/// Source locations mentioned in `text`: `File "x.py", line 3`, and
/// `path.ext:LINE` (pytest, rustc panics, go, node stacks). Only files that
/// exist under `project` are kept, as paths relative to it; duplicates go.
pub(crate) fn frames_in(text: &str, project: &Path) -> Vec<Frame> {
    let mut out: Vec<Frame> = Vec::new();
    let mut push = |path: &str, line: usize| {
        if let Some(file) = relative_in(path, project) {
            let f = Frame { file, line };
            if !out.contains(&f) {
                out.push(f);
            }
        }
    };
    for l in text.lines() {
        if let Some(rest) = l.trim_start().strip_prefix("File \"")
            && let Some((path, tail)) = rest.split_once('"')
            && let Some(n) = tail.strip_prefix(", line ")
        {
            let digits: String = n.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(line) = digits.parse() {
                push(path, line);
            }
            continue;
        }
        for (path, line) in path_line_tokens(l) {
            push(path, line);
        }
    }
    out
}

/// `some/dir/file.ext:LINE` tokens in one line of text.
fn path_line_tokens(l: &str) -> Vec<(&str, usize)> {
    let bytes = l.as_bytes();
    let mut found = Vec::new();
    for ext in SOURCE_EXTS {
        let pat = format!(".{ext}:");
        let mut from = 0;
        while let Some(i) = l[from..].find(&pat) {
            let dot = from + i;
            let colon = dot + pat.len() - 1;
            from = colon + 1;
            let digits: String = l[colon + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            let Ok(line) = digits.parse::<usize>() else {
                continue;
            };
            let start = bytes[..dot]
                .iter()
                .rposition(|&b| !(b.is_ascii_alphanumeric() || b"_./-".contains(&b)))
                .map_or(0, |p| p + 1);
            if start < dot {
                found.push((&l[start..colon], line));
            }
        }
    }
    found
}

/// `path` relative to `project` if it names a file there.
fn relative_in(path: &str, project: &Path) -> Option<String> {
    let p = Path::new(path.trim_start_matches("./"));
    let rel = if p.is_absolute() {
        p.strip_prefix(project).ok()?.to_path_buf()
    } else {
        p.to_path_buf()
    };
    if rel.components().any(|c| c.as_os_str() == "..") || !project.join(&rel).is_file() {
        return None;
    }
    Some(rel.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_frames_of_every_runner() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/lib.rs"), "").unwrap();
        std::fs::write(dir.path().join("m.py"), "").unwrap();
        let abs = dir.path().join("m.py");
        let text = format!(
            "thread 'x' panicked at src/lib.rs:12:5:\n  File \"{}\", line 7, in f\nm.py:9: AssertionError\n/usr/lib/x.py:3: in g\nsrc/lib.rs:12: again",
            abs.display()
        );
        let frames = frames_in(&text, dir.path());
        let got: Vec<(String, usize)> = frames.into_iter().map(|f| (f.file, f.line)).collect();
        assert_eq!(
            got,
            vec![
                ("src/lib.rs".to_string(), 12),
                ("m.py".to_string(), 7),
                ("m.py".to_string(), 9)
            ]
        );
    }

    #[test]
    fn object_addresses_are_masked_and_nothing_else() {
        assert_eq!(
            mask_addresses(
                "where f = <bound method I.f of <inventory.stock.I object at 0x7fad426ca9d0>>"
            ),
            "where f = <bound method I.f of <inventory.stock.I object at 0x…>>"
        );
        assert_eq!(
            mask_addresses("<function g at 0xDEADbeef> and <h at 0x1>"),
            "<function g at 0x…> and <h at 0x…>"
        );
        // Not a repr: a hex literal, an address not closed by `>`, a bare `at 0x`.
        for kept in [
            "mask = 0xff",
            "jump at 0x7f00 then",
            "at 0x>",
            "look at 0x",
            "é at 0xé",
        ] {
            assert_eq!(mask_addresses(kept), kept);
        }
    }

    #[test]
    fn signature_ignores_order_and_detail() {
        let mut a = TestReport::default();
        a.failed.push(Failure::new("b", "boom\nmore"));
        a.failed.push(Failure::new("a", "x"));
        let mut b = TestReport::default();
        b.failed.push(Failure::new("a", "x"));
        b.failed.push(Failure::new("b", "boom\nother"));
        assert_eq!(a.signature(), b.signature());
    }
}
