//! Reading the baseline run: a suite that could not start (not a failing
//! test), a hang (a failing test), and the deadline later runs get.

use std::path::Path;
use std::time::Duration;

use super::detect::RunnerKind;
use super::failures::{Failure, Frame, frames_in};
use super::runner::{RunStatus, TestRun};

/// Later runs stop after this many times the baseline...
const DEADLINE_FACTOR: u32 = 10;
/// ...plus this, for start-up noise (as mutation-testing tools do).
const DEADLINE_SLACK: Duration = Duration::from_secs(3);

/// The limit for every run after the baseline: ten times the baseline plus
/// a few seconds, never above the user's `--timeout`. A mutant that loops
/// forever then costs seconds, not the whole timeout.
pub fn deadline(baseline: Duration, timeout: Duration) -> Duration {
    (baseline * DEADLINE_FACTOR + DEADLINE_SLACK).min(timeout)
}

/// The failure of a run cut at its deadline: the test pytest's faulthandler
/// was in when it dumped the stacks (`faulthandler_timeout`), with its
/// frames; else the suite as a whole.
pub(crate) fn hang_failure(output: &str, project: &Path, limit: Duration) -> Failure {
    let message = format!("timed out: still running after {} s", limit.as_secs());
    // The dump lists the innermost call first; frames are innermost last.
    let dump = output
        .rfind("Timeout (")
        .map(|i| &output[i..])
        .unwrap_or_default();
    let test = dump.lines().find_map(|l| {
        let rest = l.trim_start().strip_prefix("File \"")?;
        let (path, tail) = rest.split_once('"')?;
        let func = tail.rsplit_once(" in ")?.1.trim();
        let rel = Path::new(path).strip_prefix(project).ok()?;
        let name = rel.file_name()?.to_string_lossy();
        let is_test = name.starts_with("test_") || name.ends_with("_test.py");
        (is_test && func.starts_with("test")).then(|| format!("{}::{func}", rel.display()))
    });
    let mut f = Failure::new(test.unwrap_or_else(|| "suite".into()), message);
    let mut frames = frames_in(dump, project);
    frames.reverse();
    // A hang is a loop that does not end: its condition is the likeliest
    // fault, so it goes in as the innermost frame.
    if let Some(inner) = frames.last()
        && let Some(line) = enclosing_loop(&project.join(&inner.file), inner.line)
        && line != inner.line
    {
        frames.push(Frame {
            file: inner.file.clone(),
            line,
        });
    }
    f.frames = frames;
    f.output = dump.chars().take(4000).collect();
    f
}

/// The `while`/`for` line of the Python loop around `line` (1-based), by
/// indentation; the line itself when it is one.
fn enclosing_loop(file: &Path, line: usize) -> Option<usize> {
    if file.extension().is_none_or(|e| e != "py") {
        return None;
    }
    let text = std::fs::read_to_string(file).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let is_loop = |l: &str| {
        let t = l.trim_start();
        t.starts_with("while ") || t.starts_with("for ") || t.starts_with("async for ")
    };
    let here = *lines.get(line.checked_sub(1)?)?;
    if is_loop(here) {
        return Some(line);
    }
    let mut level = indent(here);
    for i in (0..line - 1).rev() {
        let l = lines[i];
        if l.trim().is_empty() || indent(l) >= level {
            continue;
        }
        if is_loop(l) {
            return Some(i + 1);
        }
        level = indent(l);
        if l.trim_start().starts_with("def ") || level == 0 {
            return None;
        }
    }
    None
}

/// Why a baseline could not start, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CannotStart {
    pub cause: String,
    pub fix: String,
}

/// `Some` when the baseline never reached the project's tests: the runner
/// or interpreter is missing or may not run, pytest refused its options, or
/// collection failed on a module that is not the project's. A collection
/// error in the project's own code (a syntax error, a bad import of its own
/// module) is something to repair, so `None`.
pub fn cannot_start(
    run: &TestRun,
    kind: RunnerKind,
    project: &Path,
    python: &Path,
) -> Option<CannotStart> {
    let last = || {
        run.output
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("---"))
            .unwrap_or("no output")
            .to_string()
    };
    if run.status == RunStatus::CommandNotFound {
        let denied = run.exit_code == Some(126) || run.output.contains("Permission denied");
        return Some(CannotStart {
            cause: if denied {
                format!("permission denied: {}", last())
            } else {
                format!("the test runner was not found: {}", last())
            },
            fix: if denied {
                "make the test command runnable by others (the sandbox runs it as a dedicated user, with only the interpreter's own folders visible), or pass --python PATH".into()
            } else {
                format!(
                    "install it for {} (or pass --python PATH to an interpreter that has it, or --test CMD)",
                    python.display()
                )
            },
        });
    }
    if kind != RunnerKind::Pytest || run.status != RunStatus::Failed {
        return None;
    }
    // argparse's own line (`pytest: error: unrecognized arguments: --cov`)
    // says more than the usage line before it.
    let error_line = || {
        let lines = || run.output.lines().map(str::trim);
        lines()
            .find(|l| l.contains(": error: "))
            .or_else(|| {
                lines().rfind(|l| l.starts_with("ERROR:") || l.starts_with("INTERNALERROR>"))
            })
            .unwrap_or("")
            .to_string()
    };
    match run.exit_code {
        // Usage error: unknown options in the config, a plugin that is not installed.
        Some(4) => {
            return Some(CannotStart {
                cause: format!("pytest refused to start: {}", nonempty(error_line(), last)),
                fix: format!(
                    "install the plugins the project's pytest configuration needs for {} (or fix its addopts), or pass --python PATH to an interpreter that has them",
                    python.display()
                ),
            });
        }
        Some(3) => {
            return Some(CannotStart {
                cause: format!("pytest failed internally: {}", nonempty(error_line(), last)),
                fix: "run the tests once by hand to see the whole error".into(),
            });
        }
        _ => {}
    }
    if !(run.output.contains("during collection") || run.output.contains("ERROR collecting")) {
        return None;
    }
    // The modules the collection could not import that the project does not have.
    let missing: Vec<String> = run
        .output
        .match_indices("No module named '")
        .filter_map(|(i, m)| {
            let rest = &run.output[i + m.len()..];
            let name = &rest[..rest.find('\'')?];
            let top = name.split('.').next()?;
            (!top.is_empty() && !project_has_module(project, top)).then(|| top.to_string())
        })
        .collect();
    let mut missing = missing;
    missing.sort();
    missing.dedup();
    if missing.is_empty() {
        return None;
    }
    Some(CannotStart {
        cause: format!(
            "the tests import {}, which {} does not have",
            missing
                .iter()
                .map(|m| format!("'{m}'"))
                .collect::<Vec<_>>()
                .join(", "),
            python.display()
        ),
        fix: format!(
            "install the project's dependencies for that interpreter (`{} -m pip install {}`), or pass --python PATH to one that has them",
            python.display(),
            missing.join(" ")
        ),
    })
}

fn nonempty(s: String, or: impl Fn() -> String) -> String {
    if s.is_empty() { or() } else { s }
}

/// Whether `name` is one of the project's own modules (a `name.py` or a
/// `name/` package at its root, in `src/`, or one level below).
fn project_has_module(project: &Path, name: &str) -> bool {
    let here = |d: &Path| d.join(format!("{name}.py")).is_file() || d.join(name).is_dir();
    if here(project) || here(&project.join("src")) {
        return true;
    }
    std::fs::read_dir(project).is_ok_and(|rd| {
        rd.flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .any(|e| here(&e.path()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fix::failures::TestReport;

    fn run(code: i32, output: &str) -> TestRun {
        TestRun {
            command: "pytest".into(),
            status: RunStatus::Failed,
            exit_code: Some(code),
            report: TestReport::default(),
            output: output.into(),
            duration_ms: 10,
        }
    }

    #[test]
    fn the_deadline_follows_the_baseline_under_the_timeout() {
        let t = Duration::from_secs(300);
        assert_eq!(
            deadline(Duration::from_millis(300), t),
            Duration::from_secs(6)
        );
        assert_eq!(deadline(Duration::from_secs(60), t), t);
    }

    #[test]
    fn a_missing_third_party_module_cannot_start_but_the_projects_own_can_be_repaired() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("inventory")).unwrap();
        let py = Path::new("/usr/bin/python3");
        let numpy = "ERROR collecting tests/test_a.py\nE   ModuleNotFoundError: No module named 'numpy'\nInterrupted: 1 error during collection";
        let c = cannot_start(&run(2, numpy), RunnerKind::Pytest, t.path(), py).unwrap();
        assert!(
            c.cause.contains("'numpy'") && c.fix.contains("pip install numpy"),
            "{c:?}"
        );
        let own = "ERROR collecting tests/test_a.py\nE   ModuleNotFoundError: No module named 'inventory.stok'\nInterrupted: 1 error during collection";
        assert_eq!(
            cannot_start(&run(2, own), RunnerKind::Pytest, t.path(), py),
            None
        );
        let syntax = "ERROR collecting tests/test_a.py\nE     File \"inventory/stock.py\", line 3\nE   SyntaxError: invalid syntax\nInterrupted: 1 error during collection";
        assert_eq!(
            cannot_start(&run(2, syntax), RunnerKind::Pytest, t.path(), py),
            None
        );
        let usage = "ERROR: usage: __main__.py [options] [file_or_dir] [file_or_dir] [...]\n__main__.py: error: unrecognized arguments: --cov=inventory\n  inifile: /tmp/x/pyproject.toml";
        let c = cannot_start(&run(4, usage), RunnerKind::Pytest, t.path(), py).unwrap();
        assert!(c.cause.contains("--cov"), "{c:?}");
        // Ordinary failing tests are for repair.
        assert_eq!(
            cannot_start(
                &run(1, "1 failed, 3 passed"),
                RunnerKind::Pytest,
                t.path(),
                py
            ),
            None
        );
    }

    #[test]
    fn a_hang_names_the_test_and_its_frames() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        std::fs::create_dir_all(p.join("tests")).unwrap();
        std::fs::create_dir_all(p.join("pkg")).unwrap();
        std::fs::write(p.join("tests/test_d.py"), "").unwrap();
        std::fs::write(p.join("pkg/d.py"), "").unwrap();
        let out = format!(
            "..\nTimeout (0:00:04)!\nThread 0x1 (most recent call first):\n  File \"{0}/pkg/d.py\", line 5 in digits\n  File \"{0}/tests/test_d.py\", line 4 in test_digits\n  File \"/usr/lib/python3/_pytest/python.py\", line 159 in pytest_pyfunc_call\n",
            p.display()
        );
        let f = hang_failure(&out, p, Duration::from_secs(5));
        assert_eq!(f.id, "tests/test_d.py::test_digits");
        let at = |f: &Failure| {
            f.frames
                .iter()
                .map(|f| (f.file.clone(), f.line))
                .collect::<Vec<_>>()
        };
        assert_eq!(at(&f).last(), Some(&("pkg/d.py".to_string(), 5)));
        // With the source at hand, the loop's condition is the innermost frame.
        std::fs::write(
            p.join("pkg/d.py"),
            "def digits(n):\n    c = 0\n    while n >= 0:\n        if n:\n            n //= 10\n        c += 1\n    return c\n",
        )
        .unwrap();
        let f = hang_failure(&out, p, Duration::from_secs(5));
        assert_eq!(
            at(&f)[at(&f).len() - 2..],
            [("pkg/d.py".to_string(), 5), ("pkg/d.py".to_string(), 3)]
        );
        assert_eq!(
            hang_failure("no dump", p, Duration::from_secs(5)).id,
            "suite"
        );
    }
}
