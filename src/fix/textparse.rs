//! The fallback when there is no JUnit report: failing (and passing) tests
//! read from the runner's own text output, and `go test -json` events.

use std::collections::BTreeMap;

use super::detect::RunnerKind;
use super::failures::{Failure, TestReport};
use super::node_output;

pub fn parse(kind: RunnerKind, output: &str) -> TestReport {
    match kind {
        RunnerKind::Pytest => pytest(output),
        RunnerKind::Cargo => cargo(output),
        RunnerKind::Go => go_json(output),
        RunnerKind::Node => node_output::parse(output),
        RunnerKind::Make | RunnerKind::Custom => {
            // Unknown runner: try each format; the first that finds anything wins.
            [
                pytest(output),
                cargo(output),
                go_json(output),
                node_output::parse(output),
            ]
            .into_iter()
            .find(|r| !r.failed.is_empty() || !r.passed.is_empty())
            .unwrap_or_default()
        }
    }
}

/// `FAILED id - message` lines of the short summary (pytest `-rfE`), and
/// `id PASSED` lines of verbose output.
fn pytest(output: &str) -> TestReport {
    let mut r = TestReport::default();
    for l in output.lines() {
        let l = l.trim_end();
        for tag in ["FAILED ", "ERROR "] {
            if let Some(rest) = l.strip_prefix(tag) {
                let (id, msg) = split_summary(rest);
                if id.contains("::") || id.ends_with(".py") {
                    r.failed.push(Failure::new(id.trim(), msg.trim()));
                }
            }
        }
        if let Some(id) = l.strip_suffix(" PASSED").or_else(|| {
            l.split_once(" PASSED ")
                .map(|(a, _)| a)
                .filter(|a| a.contains("::"))
        }) && id.contains("::")
        {
            r.passed.push(id.trim().to_string());
        }
    }
    r
}

/// `id - message`, where a parametrised id may itself hold ` - `
/// (`test_p[a - b]`): the first separator outside the brackets.
fn split_summary(rest: &str) -> (&str, &str) {
    let mut depth = 0i32;
    for (i, c) in rest.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ' ' if depth <= 0 && rest[i..].starts_with(" - ") => {
                return (&rest[..i], &rest[i + 3..]);
            }
            _ => {}
        }
    }
    (rest, "")
}

/// libtest's `test name ... ok|FAILED` lines, the `---- name stdout ----`
/// sections for messages, and compile errors as one `build` failure.
fn cargo(output: &str) -> TestReport {
    let mut r = TestReport::default();
    let mut sections: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for l in output.lines() {
        if let Some(rest) = l.strip_prefix("test ") {
            if let Some(name) = rest.strip_suffix(" ... ok") {
                r.passed.push(name.to_string());
            } else if let Some(name) = rest.strip_suffix(" ... FAILED") {
                r.failed.push(Failure::new(name, ""));
            } else if let Some((name, _)) = rest.split_once(" ... ignored") {
                r.skipped.push(name.to_string());
            }
        }
        if let Some(name) = l
            .strip_prefix("---- ")
            .and_then(|s| s.strip_suffix(" stdout ----"))
        {
            current = Some(name.to_string());
            continue;
        }
        if l == "failures:" || l.starts_with("test result:") {
            current = None;
        }
        if let Some(name) = &current {
            let s = sections.entry(name.clone()).or_default();
            s.push_str(l);
            s.push('\n');
        }
    }
    for f in &mut r.failed {
        if let Some(text) = sections.remove(&f.id) {
            f.message = panic_message(&text);
            f.output = text;
        }
    }
    if r.failed.is_empty() && r.passed.is_empty() && output.contains("error[") {
        let first = output
            .lines()
            .skip_while(|l| !l.starts_with("error"))
            .take(12)
            .collect::<Vec<_>>()
            .join("\n");
        let mut f = Failure::new("build", first.clone());
        f.output = first;
        r.failed.push(f);
    }
    r
}

/// The lines after `panicked at file:line:col:` up to a blank line.
fn panic_message(section: &str) -> String {
    let mut lines = section.lines().skip_while(|l| !l.contains("panicked at"));
    let mut msg: Vec<&str> = Vec::new();
    if let Some(head) = lines.next()
        && let Some((_, tail)) = head.split_once("panicked at ")
        && let Some(inline) = tail.split_once(": ").map(|(_, m)| m)
    {
        msg.push(inline);
    }
    msg.extend(
        lines
            .take_while(|l| !l.trim().is_empty() && !l.starts_with("note:"))
            .take(8),
    );
    msg.join("\n")
}

/// `go test -json` events: per test, its output and final action.
fn go_json(output: &str) -> TestReport {
    #[derive(serde::Deserialize)]
    struct Event {
        #[serde(rename = "Action")]
        action: String,
        #[serde(rename = "Test")]
        test: Option<String>,
        #[serde(rename = "Output")]
        output: Option<String>,
    }
    let mut r = TestReport::default();
    let mut outputs: BTreeMap<String, String> = BTreeMap::new();
    for l in output.lines() {
        let Ok(e) = serde_json::from_str::<Event>(l) else {
            continue;
        };
        let Some(test) = e.test else { continue };
        match e.action.as_str() {
            "output" => outputs
                .entry(test)
                .or_default()
                .push_str(e.output.as_deref().unwrap_or_default()),
            "pass" => r.passed.push(test),
            "skip" => r.skipped.push(test),
            "fail" => {
                let text = outputs.remove(&test).unwrap_or_default();
                let msg = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("=== ") && !l.contains("--- FAIL"))
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join("\n");
                let mut f = Failure::new(test, msg);
                f.output = text;
                r.failed.push(f);
            }
            _ => {}
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pytest_summary() {
        let out = "tests/t.py::test_a PASSED\nFAILED tests/t.py::test_b - AssertionError: assert 1 == 2\nERROR tests/t.py::test_c - NameError\n";
        let r = parse(RunnerKind::Pytest, out);
        assert_eq!(r.passed, vec!["tests/t.py::test_a"]);
        assert_eq!(r.failed_ids().len(), 2);
        assert_eq!(r.failed[0].message, "AssertionError: assert 1 == 2");
        let out = "FAILED tests/t.py::test_p[a - b 1] - assert 1 == 2\nFAILED docs/index.rst::index.rst\n";
        let r = parse(RunnerKind::Pytest, out);
        let ids: Vec<&str> = r.failed.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(
            ids,
            ["tests/t.py::test_p[a - b 1]", "docs/index.rst::index.rst"]
        );
        assert_eq!(r.failed[0].message, "assert 1 == 2");
    }

    #[test]
    fn cargo_libtest() {
        let out = "running 2 tests\ntest a ... ok\ntest b ... FAILED\n\nfailures:\n\n---- b stdout ----\n\nthread 'b' panicked at tests/s.rs:17:5:\nassertion `left == right` failed\n  left: 3\n right: 2\nnote: run with `RUST_BACKTRACE=1`\n\n\nfailures:\n    b\n\ntest result: FAILED. 1 passed; 1 failed";
        let r = parse(RunnerKind::Cargo, out);
        assert_eq!(r.passed, vec!["a"]);
        assert_eq!(r.failed[0].id, "b");
        assert_eq!(
            r.failed[0].message,
            "assertion `left == right` failed\n  left: 3\n right: 2"
        );
        assert!(r.failed[0].output.contains("tests/s.rs:17:5"));
    }

    #[test]
    fn cargo_build_error_is_one_failure() {
        let out = "   Compiling x v0.1.0\nerror[E0308]: mismatched types\n --> src/lib.rs:3:5\n";
        let r = parse(RunnerKind::Cargo, out);
        assert_eq!(r.failed[0].id, "build");
        assert!(r.failed[0].message.contains("src/lib.rs:3:5"));
    }

    #[test]
    fn go_events() {
        let out = r#"{"Action":"run","Test":"TestA"}
{"Action":"output","Test":"TestA","Output":"    a_test.go:9: got 1 want 2\n"}
{"Action":"fail","Test":"TestA"}
{"Action":"pass","Test":"TestB"}"#;
        let r = parse(RunnerKind::Go, out);
        assert_eq!(r.passed, vec!["TestB"]);
        assert_eq!(r.failed[0].message, "a_test.go:9: got 1 want 2");
    }
}
