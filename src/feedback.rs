//! What a model is shown of a failure, for both repair loops:
//! - [`render`]: a sandboxed program's failing tests (`bench`), in the shape
//!   of Olausson et al.: the first failing test(s) as call, actual and
//!   expected; or the exception's type, line and message; or the limit
//!   that was hit;
//! - [`render_report`]: a repository's failing tests (`fix`): each id, its
//!   message (object addresses masked) and its innermost frames in the
//!   project.
//!
//! Both cut what they quote to the same caps.

use crate::fix::failures::{TestReport, mask_addresses};
use crate::sandbox::{Outcome, Status, TestRecord};

/// Values longer than this are cut, as in the papers.
pub(crate) const VALUE_CAP: usize = 300;

/// Cut `s` to `VALUE_CAP` characters.
pub fn cap(s: &str) -> String {
    if s.chars().count() <= VALUE_CAP {
        return s.to_string();
    }
    let mut out: String = s.chars().take(VALUE_CAP).collect();
    out.push_str("...");
    out
}

/// Lines of one failure's message, and frames, quoted from a repository's
/// test report.
pub(crate) const MESSAGE_LINES: usize = 12;
pub(crate) const FRAMES: usize = 6;

/// A repository's failing tests: `- id`, then each one's message (at most
/// [`MESSAGE_LINES`] lines, each cut to [`VALUE_CAP`]) and innermost frames.
pub(crate) fn render_report(report: &TestReport) -> String {
    let mut s = String::new();
    for f in &report.failed {
        s.push_str(&format!("- {}\n", f.id));
        for l in f.message.lines().take(MESSAGE_LINES) {
            // Object addresses masked: the same failure reads the same on
            // every run, so a session's prompts replay from its transcript.
            s.push_str(&format!("    {}\n", cap(&mask_addresses(l))));
        }
        for fr in f.frames.iter().take(FRAMES) {
            s.push_str(&format!("    at {}:{}\n", fr.file, fr.line));
        }
    }
    s
}

/// The feedback for `out`, showing at most `show` failing tests.
pub fn render(out: &Outcome, show: usize) -> String {
    let failing: Vec<&TestRecord> = out.tests.iter().filter(|t| t.status != "passed").collect();
    if failing.is_empty() {
        return program_level(out);
    }
    let shown = failing.len().min(show.max(1));
    let mut lines = Vec::with_capacity(shown + 1);
    lines.push(if failing.len() == 1 {
        "The code above is wrong: it fails this test.".to_string()
    } else if shown == 1 {
        format!(
            "The code above is wrong: it fails {} tests; the first is shown.",
            failing.len()
        )
    } else {
        format!(
            "The code above is wrong: it fails {} tests; the first {shown} are shown.",
            failing.len()
        )
    });
    for t in failing.iter().take(shown) {
        lines.push(test_line(t, out));
    }
    lines.join("\n")
}

fn test_line(t: &TestRecord, out: &Outcome) -> String {
    let call = t.call.as_deref().map(cap);
    let stdin = call
        .as_deref()
        .and_then(|c| c.strip_prefix("stdin "))
        .map(str::to_string);
    let shown_test = if !t.source.is_empty() && !t.source.starts_with("stdin case") {
        format!("`{}`", cap(t.source.trim()))
    } else {
        t.id.clone()
    };
    match t.status.as_str() {
        "timeout" => match (&stdin, &call) {
            (Some(i), _) => format!("Given input {i}, the program timed out."),
            (None, Some(c)) => format!("{shown_test}: {c} timed out."),
            (None, None) => format!("{shown_test}: the program timed out."),
        },
        "error" => {
            let e = t.error.as_ref();
            let kind = e.map_or("an exception", |e| e.kind.as_str());
            let msg = e.map(|e| cap(&e.message)).unwrap_or_default();
            let line = e
                .and_then(|e| e.line)
                .map(|l| format!(" on line {l}"))
                .unwrap_or_default();
            match (&stdin, &call) {
                (Some(i), _) => format!("Given input {i}, the program raised {kind}{line}: {msg}"),
                (None, Some(c)) => format!("{shown_test}: {c} raised {kind}{line}: {msg}"),
                (None, None) => format!("{shown_test} raised {kind}{line}: {msg}"),
            }
        }
        _ => match (&t.actual, &t.expected) {
            (Some(a), Some(x)) => match (&stdin, &call) {
                (Some(i), _) => format!(
                    "Given input {i}, the output was {} but the expected output was {}.",
                    cap(a),
                    cap(x)
                ),
                (None, Some(c)) => format!(
                    "{shown_test}: {c} returned {} but the expected value is {}.",
                    cap(a),
                    cap(x)
                ),
                (None, None) => format!("{shown_test}: got {} but expected {}.", cap(a), cap(x)),
            },
            (Some(a), None) => match &call {
                Some(c) => format!("{shown_test}: {c} returned {}.", cap(a)),
                None => format!("{shown_test} failed; the value was {}.", cap(a)),
            },
            _ => match &t.message {
                Some(m) => format!("{shown_test} failed: {}", cap(m)),
                None => format!("{shown_test} failed."),
            },
        },
    }
    .replace("  ", " ")
    .trim_end()
    .to_string()
        + if out.status == Status::Timeout && t.status != "timeout" {
            " (the run then timed out)"
        } else {
            ""
        }
}

fn program_level(out: &Outcome) -> String {
    let limits = &out.limits;
    match out.status {
        Status::Passed => "The code above passes the tests.".into(),
        Status::Timeout => format!(
            "The code above timed out (limit {:.1} s).",
            limits.timeout.as_secs_f64()
        ),
        Status::MemoryLimit => format!(
            "The code above ran out of memory (limit {} MiB).",
            limits.memory_mb
        ),
        Status::OutputLimit => format!(
            "The code above printed more than {} bytes.",
            limits.max_output
        ),
        _ => match &out.error {
            Some(e) => {
                let line = e.line.map(|l| format!(" on line {l}")).unwrap_or_default();
                format!(
                    "The code above raised {}{line}: {}",
                    e.kind,
                    cap(&e.message)
                )
            }
            None => format!(
                "The code above did not run: {}",
                cap(out.reason.as_deref().unwrap_or(out.status.as_str()))
            ),
        },
    }
}

/// A short category for the error-type breakdown.
pub(crate) fn error_type(out: &Outcome) -> String {
    match out.status {
        Status::Passed => "passed".into(),
        Status::Timeout => "timeout".into(),
        Status::MemoryLimit => "memory_limit".into(),
        Status::OutputLimit => "output_limit".into(),
        Status::Crashed => "crashed".into(),
        Status::Unavailable => "unavailable".into(),
        Status::Error | Status::Failed => {
            if let Some(t) = out.tests.iter().find(|t| t.status != "passed") {
                match (t.status.as_str(), &t.error) {
                    ("timeout", _) => "timeout".into(),
                    (_, Some(e)) if e.kind != "AssertionError" => e.kind.clone(),
                    _ => "wrong_answer".into(),
                }
            } else if let Some(e) = &out.error {
                e.kind.clone()
            } else {
                out.status.to_string()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::{ErrorInfo, Limits, SandboxKind};

    #[test]
    fn a_report_is_quoted_within_the_caps() {
        use crate::fix::failures::{Failure, Frame};
        let mut f = Failure::new("tests/t.py::test_a", "");
        f.message = (0..20)
            .map(|i| format!("line {i} {}", "x".repeat(if i == 0 { 400 } else { 1 })))
            .collect::<Vec<_>>()
            .join("\n");
        f.frames = (1..=9)
            .map(|n| Frame {
                file: "m.py".into(),
                line: n,
            })
            .collect();
        let report = TestReport {
            failed: vec![f],
            ..TestReport::default()
        };
        let text = render_report(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "- tests/t.py::test_a");
        assert_eq!(lines.len(), 1 + MESSAGE_LINES + FRAMES, "{text}");
        assert!(
            lines[1].ends_with("..."),
            "the long line is cut: {}",
            lines[1]
        );
        assert_eq!(lines[1].chars().count(), 4 + VALUE_CAP + 3);
        assert_eq!(lines.last(), Some(&"    at m.py:6"));
    }

    fn outcome(status: Status, tests: Vec<TestRecord>) -> Outcome {
        let mut o = Outcome::new(status, SandboxKind::Process, &Limits::default(), vec![]);
        o.tests = tests;
        o
    }

    #[test]
    fn wrong_answer_shows_call_actual_expected() {
        let t = TestRecord {
            id: "assert 3".into(),
            source: "assert add(1, 2) == 3".into(),
            status: "failed".into(),
            call: Some("add(1, 2)".into()),
            actual: Some("-1".into()),
            expected: Some("3".into()),
            ..Default::default()
        };
        let f = render(&outcome(Status::Failed, vec![t]), 1);
        assert_eq!(
            f,
            "The code above is wrong: it fails this test.\n`assert add(1, 2) == 3`: add(1, 2) returned -1 but the expected value is 3."
        );
    }

    #[test]
    fn shows_the_configured_number_of_failures_and_caps_values() {
        let long = "x".repeat(1000);
        let mk = |i: u32| TestRecord {
            id: format!("case {i}"),
            status: "failed".into(),
            call: Some(format!("f({i})")),
            actual: Some(long.clone()),
            expected: Some("1".into()),
            ..Default::default()
        };
        let o = outcome(Status::Failed, vec![mk(1), mk(2), mk(3)]);
        let one = render(&o, 1);
        assert!(one.contains("fails 3 tests; the first is shown"));
        assert!(one.contains("f(1)") && !one.contains("f(2)"));
        assert!(one.len() < 500, "value not capped: {}", one.len());
        let two = render(&o, 2);
        assert!(two.contains("f(2)") && !two.contains("f(3)"));
    }

    #[test]
    fn exceptions_and_stdin_and_limits() {
        let err = TestRecord {
            id: "case 1".into(),
            source: "stdin case 1".into(),
            status: "error".into(),
            call: Some("stdin 5".into()),
            error: Some(ErrorInfo {
                kind: "ZeroDivisionError".into(),
                message: "division by zero".into(),
                line: Some(4),
                traceback: vec![],
            }),
            ..Default::default()
        };
        let f = render(&outcome(Status::Failed, vec![err]), 1);
        assert!(
            f.ends_with(
                "Given input 5, the program raised ZeroDivisionError on line 4: division by zero"
            ),
            "{f}"
        );
        let mut o = outcome(Status::Error, vec![]);
        o.error = Some(ErrorInfo {
            kind: "SyntaxError".into(),
            message: "invalid syntax".into(),
            line: Some(2),
            traceback: vec![],
        });
        assert_eq!(
            render(&o, 1),
            "The code above raised SyntaxError on line 2: invalid syntax"
        );
        assert_eq!(error_type(&o), "SyntaxError");
        let t = outcome(Status::Timeout, vec![]);
        assert!(render(&t, 1).starts_with("The code above timed out"));
        assert_eq!(error_type(&t), "timeout");
    }
}
