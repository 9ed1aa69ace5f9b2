//! Which test command a project uses, from the files at its root.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// How results are read and how a subset of tests is selected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunnerKind {
    Pytest,
    Cargo,
    Go,
    /// npm, yarn or pnpm `test` scripts.
    Node,
    Make,
    /// A `--test` command we know nothing about.
    Custom,
}

/// The command that runs a project's tests, as a shell command line run in
/// the project directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestCommand {
    pub kind: RunnerKind,
    pub command: String,
    /// Why this one was chosen, for the user.
    pub reason: String,
    /// Detected (so we may add report flags and select tests), rather than
    /// given with `--test` (run exactly as written).
    pub detected: bool,
}

impl TestCommand {
    /// A user-given `--test` command; its kind is guessed from its first word
    /// so failures are still parsed as well as possible.
    pub fn custom(command: &str) -> Self {
        let first = command.split_whitespace().collect::<Vec<_>>();
        let kind = match first.as_slice() {
            ["pytest", ..] | [_, "-m", "pytest", ..] => RunnerKind::Pytest,
            ["cargo", "test", ..] => RunnerKind::Cargo,
            ["go", "test", ..] => RunnerKind::Go,
            ["npm" | "yarn" | "pnpm" | "npx" | "jest", ..] => RunnerKind::Node,
            ["make", ..] => RunnerKind::Make,
            _ => RunnerKind::Custom,
        };
        TestCommand {
            kind,
            command: command.to_string(),
            reason: "given with --test".into(),
            detected: false,
        }
    }
}

/// Look at `dir`'s files, most specific first.
pub fn detect(dir: &Path) -> Option<TestCommand> {
    let has = |f: &str| dir.join(f).exists();
    let found = |kind, command: &str, reason: &str| {
        Some(TestCommand {
            kind,
            command: command.into(),
            reason: reason.into(),
            detected: true,
        })
    };
    if has("Cargo.toml") {
        return found(RunnerKind::Cargo, "cargo test", "Cargo.toml");
    }
    if has("go.mod") {
        return found(RunnerKind::Go, "go test ./...", "go.mod");
    }
    if let Some(py) = python_marker(dir) {
        return found(RunnerKind::Pytest, "pytest", &py);
    }
    if let Ok(pkg) = std::fs::read_to_string(dir.join("package.json"))
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(&pkg)
        && v["scripts"]["test"].is_string()
    {
        let (tool, lock) = if has("pnpm-lock.yaml") {
            ("pnpm", "pnpm-lock.yaml")
        } else if has("yarn.lock") {
            ("yarn", "yarn.lock")
        } else {
            ("npm", "package.json")
        };
        return found(
            RunnerKind::Node,
            &format!("{tool} test"),
            &format!("package.json has a test script ({lock})"),
        );
    }
    for mk in ["Makefile", "makefile", "GNUmakefile"] {
        if let Ok(text) = std::fs::read_to_string(dir.join(mk))
            && text.lines().any(|l| l.starts_with("test:"))
        {
            return found(
                RunnerKind::Make,
                "make test",
                &format!("{mk} has a test target"),
            );
        }
    }
    None
}

/// A reason to think `dir` is a pytest project.
fn python_marker(dir: &Path) -> Option<String> {
    for f in ["pytest.ini", "conftest.py", "tox.ini"] {
        if dir.join(f).is_file() {
            return Some(f.into());
        }
    }
    for f in ["pyproject.toml", "setup.cfg"] {
        if std::fs::read_to_string(dir.join(f)).is_ok_and(|t| t.contains("pytest")) {
            return Some(format!("{f} configures pytest"));
        }
    }
    let is_test_py = |p: &Path| {
        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
            n.ends_with(".py") && (n.starts_with("test_") || n.ends_with("_test.py"))
        })
    };
    let has_tests_in = |d: &Path| {
        std::fs::read_dir(d)
            .map(|rd| rd.flatten().any(|e| is_test_py(&e.path())))
            .unwrap_or(false)
    };
    if has_tests_in(dir) || has_tests_in(&dir.join("tests")) || has_tests_in(&dir.join("test")) {
        return Some("test_*.py files".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_runner() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        assert_eq!(detect(p), None);
        std::fs::write(p.join("Makefile"), "all:\n\ntest:\n\tcheck\n").unwrap();
        assert_eq!(detect(p).unwrap().command, "make test");
        std::fs::write(p.join("package.json"), r#"{"scripts":{"test":"jest"}}"#).unwrap();
        std::fs::write(p.join("yarn.lock"), "").unwrap();
        assert_eq!(detect(p).unwrap().command, "yarn test");
        std::fs::create_dir(p.join("tests")).unwrap();
        std::fs::write(p.join("tests/test_a.py"), "").unwrap();
        assert_eq!(detect(p).unwrap().kind, RunnerKind::Pytest);
        std::fs::write(p.join("go.mod"), "module x\n").unwrap();
        assert_eq!(detect(p).unwrap().command, "go test ./...");
        std::fs::write(p.join("Cargo.toml"), "[package]\n").unwrap();
        assert_eq!(detect(p).unwrap().command, "cargo test");
    }

    #[test]
    fn custom_commands_keep_a_parser() {
        assert_eq!(
            TestCommand::custom("python3 -m pytest -x").kind,
            RunnerKind::Pytest
        );
        assert_eq!(TestCommand::custom("./run-tests").kind, RunnerKind::Custom);
    }
}
