//! What a run produced: a status, per-test records and the context it ran in.

use crate::SandboxKind;
use crate::request::Limits;
use serde::{Deserialize, Serialize};

/// The distinct outcomes of a run.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Passed,
    /// The tests ran and at least one failed or raised.
    Failed,
    /// The program could not be loaded (syntax error, exception at import).
    Error,
    Timeout,
    MemoryLimit,
    OutputLimit,
    /// The interpreter itself died (signal, trap, no result).
    Crashed,
    /// The sandbox could not run this program (runtime missing, module not preloaded).
    Unavailable,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Error => "error",
            Status::Timeout => "timeout",
            Status::MemoryLimit => "memory_limit",
            Status::OutputLimit => "output_limit",
            Status::Crashed => "crashed",
            Status::Unavailable => "unavailable",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct Frame {
    pub file: String,
    pub line: u32,
    pub function: String,
    #[serde(default)]
    pub code: String,
}

/// An exception: type, message, the line in the solution, a trimmed traceback.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct ErrorInfo {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    #[serde(default)]
    pub line: Option<u32>,
    #[serde(default)]
    pub traceback: Vec<Frame>,
}

/// One assertion site or test case.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct TestRecord {
    pub id: String,
    #[serde(default)]
    pub line: Option<u32>,
    #[serde(default)]
    pub source: String,
    /// passed, failed, error or timeout.
    pub status: String,
    #[serde(default)]
    pub runs: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
}

/// An isolation layer and whether it was active for the run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Layer {
    pub name: String,
    pub active: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl Layer {
    pub fn on(name: &str, detail: impl Into<String>) -> Self {
        Layer {
            name: name.into(),
            active: true,
            detail: detail.into(),
        }
    }
    pub fn off(name: &str, why: impl Into<String>) -> Self {
        Layer {
            name: name.into(),
            active: false,
            detail: why.into(),
        }
    }
}

/// The result of one run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Outcome {
    pub status: Status,
    pub sandbox: SandboxKind,
    #[serde(default)]
    pub passed: u32,
    #[serde(default)]
    pub failed: u32,
    #[serde(default)]
    pub tests: Vec<TestRecord>,
    #[serde(default)]
    pub error: Option<ErrorInfo>,
    /// Why the sandbox stopped or could not run the program, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
    pub duration_ms: f64,
    pub limits: Limits,
    pub layers: Vec<Layer>,
    /// Cut at the request's budget ([`crate::RunRequest::budget`]), so
    /// `Unavailable`: no verdict, another sandbox should judge the program.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub over_budget: bool,
    /// What a half of a judged run handed back (see [`crate::judge`]).
    #[serde(skip)]
    pub(crate) exchange: Exchange,
}

/// A compute run's answers, or the calls a judge run found unanswered.
#[derive(Clone, Debug, PartialEq, Default)]
pub(crate) struct Exchange {
    pub answers: Option<Vec<serde_json::Value>>,
    pub needed: Vec<serde_json::Value>,
    pub expect: Option<Vec<String>>,
    pub incomplete: bool,
}

impl Outcome {
    pub fn new(status: Status, sandbox: SandboxKind, limits: &Limits, layers: Vec<Layer>) -> Self {
        Outcome {
            status,
            sandbox,
            passed: 0,
            failed: 0,
            tests: Vec::new(),
            error: None,
            reason: None,
            stdout: String::new(),
            stderr: String::new(),
            duration_ms: 0.0,
            limits: limits.clone(),
            layers,
            over_budget: false,
            exchange: Exchange::default(),
        }
    }

    pub fn with_status(mut self, status: Status, reason: impl Into<String>) -> Self {
        self.status = status;
        self.reason = Some(reason.into());
        self
    }

    pub fn passed(&self) -> bool {
        self.status == Status::Passed
    }

    /// The first failing test record, if any.
    pub fn first_failure(&self) -> Option<&TestRecord> {
        self.tests.iter().find(|t| t.status != "passed")
    }

    /// A one-line summary a person (or a model) can act on.
    pub fn summary(&self) -> String {
        if let Some(t) = self.first_failure()
            && let Some(m) = &t.message
        {
            return format!("{}: {}", self.status, m);
        }
        if let Some(e) = &self.error {
            let at = e.line.map(|l| format!(" at line {l}")).unwrap_or_default();
            return format!("{}: {}{}: {}", self.status, e.kind, at, e.message);
        }
        match &self.reason {
            Some(r) => format!("{}: {}", self.status, r),
            None => self.status.to_string(),
        }
    }
}
