//! What a fix session reports: its events in order, ending with one
//! [`Summary`] on every path (schema: docs/fix-json.md), and the form the
//! session log keeps them in.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use super::runner::TestRun;
use super::workspace::{self, FinalDiff};
use super::{FixError, interpreter, localise};

/// Progress, in order. Every event is also written to the session log.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum FixEvent {
    Plan {
        session: String,
        branch: String,
        workdir: PathBuf,
        test_command: String,
        /// Why this command: the file it was detected from, or `--test`.
        reason: String,
        detected: bool,
        /// The Python the tests run with and why (None for non-Python runners).
        #[serde(skip_serializing_if = "Option::is_none")]
        python: Option<Box<PythonPlan>>,
        repairer: String,
        /// Every model call of the session, for `--model replay:<state
        /// dir>` and for audit (None without a model).
        #[serde(skip_serializing_if = "Option::is_none")]
        transcript: Option<PathBuf>,
        max_attempts: usize,
        prompts: Vec<PromptInfo>,
        /// Ignored files of the user's tree copied into the work copy.
        ignored: Box<workspace::IgnoredFiles>,
    },
    TestRunStarted {
        attempt: usize,
        scope: RunScope,
        command: String,
    },
    TestRunFinished {
        attempt: usize,
        scope: RunScope,
        run: Box<TestRun>,
    },
    Explanation {
        attempt: usize,
        text: String,
    },
    Patch {
        attempt: usize,
        description: String,
        diff: String,
        /// Each changed file's text before and after (paths relative to the
        /// user's root), for editors that show diffs.
        files: Vec<workspace::FileChange>,
    },
    Rejected {
        attempt: usize,
        reason: String,
    },
    Usage {
        tokens: u64,
        cost_usd: f64,
    },
    /// Fault localisation from a covered run of the suite: the most
    /// suspicious lines, best first (mutants are tried in this order).
    Localised {
        /// The covered run's length.
        duration_ms: u64,
        lines: Vec<localise::Suspect>,
    },
    Done(Box<Summary>),
}

/// Which tests a run covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunScope {
    /// The whole suite before any change.
    Baseline,
    /// The baseline again without a test that hung.
    Rest,
    /// The tests that failed, stopping at the first that still fails.
    Failing,
    /// The whole suite, for a candidate that passed its failing tests.
    Full,
}

impl RunScope {
    pub fn as_str(self) -> &'static str {
        match self {
            RunScope::Baseline => "baseline",
            RunScope::Rest => "rest",
            RunScope::Failing => "failing",
            RunScope::Full => "full",
        }
    }
}

impl std::fmt::Display for RunScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct PythonPlan {
    pub python: PathBuf,
    pub source: interpreter::Source,
    pub reason: String,
    /// What the jail exposes for it, read-only (beyond the system's /usr).
    pub exposed: Vec<PathBuf>,
    /// Some of that is private to the caller (a home directory), so the
    /// tests run as the caller's uid instead of a dedicated one.
    pub keeps_uid: bool,
    /// The version of selfrepair's pinned pytest, when the interpreter has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provided_pytest: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PromptInfo {
    pub name: String,
    pub version: u32,
    /// The first 12 hex digits of the file's sha256.
    pub hash: String,
}

/// How a session ended; serialised snake_case, the same words in
/// `fix --json`, `log --json`, MCP and session.json.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Fixed,
    #[serde(rename = "nothing_to_fix")]
    AlreadyGreen,
    /// Attempts, budget or ideas ran out; the reason says which.
    NotFixed,
    Cancelled,
    /// `FixMode::Explain` or `FixMode::Check` ended as asked.
    Reported,
    /// The session could not run (bad input, broken machinery); the
    /// summary's `reason_code` says which ([`FixError::reason_code`]).
    Error,
}

impl Outcome {
    /// The serialised name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Fixed => "fixed",
            Outcome::AlreadyGreen => "nothing_to_fix",
            Outcome::NotFixed => "not_fixed",
            Outcome::Cancelled => "cancelled",
            Outcome::Reported => "reported",
            Outcome::Error => "error",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Empty when the session never started (an early `error`).
    pub session: String,
    pub outcome: Outcome,
    /// For `error`: a stable snake_case name of the error; otherwise null.
    pub reason_code: Option<String>,
    pub reason: String,
    pub branch: String,
    pub test_command: String,
    pub initial_failures: Vec<String>,
    pub attempts: usize,
    pub winning_attempt: Option<usize>,
    pub tokens: u64,
    pub cost_usd: f64,
    pub duration_ms: u64,
    /// Base (HEAD + uncommitted changes) to the fix, with each file's new text.
    pub diff: FinalDiff,
    /// Other candidates that also passed every test, not chosen (the
    /// mutation repairer's runners-up: less suspicious or larger changes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runners_up: Vec<String>,
}

impl Summary {
    /// The summary of a run that stopped with an error: `code` is a
    /// [`FixError::reason_code`] (or the caller's own for errors before a
    /// session, such as bad flags).
    pub fn error(code: &str, reason: impl Into<String>, duration_ms: u64) -> Summary {
        Summary {
            session: String::new(),
            outcome: Outcome::Error,
            reason_code: Some(code.to_string()),
            reason: reason.into(),
            branch: String::new(),
            test_command: String::new(),
            initial_failures: Vec::new(),
            attempts: 0,
            winning_attempt: None,
            tokens: 0,
            cost_usd: 0.0,
            duration_ms,
            diff: FinalDiff::default(),
            runners_up: Vec::new(),
        }
    }
}

impl Summary {
    /// Take in what an event says about the session, so that a session
    /// that stops with an error still names its id, branch, command,
    /// failures, attempts and spend.
    pub(super) fn observe(&mut self, e: &FixEvent) {
        match e {
            FixEvent::Plan {
                session,
                branch,
                test_command,
                ..
            } => {
                self.session.clone_from(session);
                self.branch.clone_from(branch);
                self.test_command.clone_from(test_command);
            }
            FixEvent::TestRunFinished { scope, run, .. } if *scope == RunScope::Baseline => {
                self.initial_failures = run.report.failed_ids().into_iter().collect();
            }
            FixEvent::Patch { attempt, .. } | FixEvent::Rejected { attempt, .. } => {
                self.attempts = self.attempts.max(*attempt);
            }
            FixEvent::Usage { tokens, cost_usd } => {
                self.tokens = *tokens;
                self.cost_usd = *cost_usd;
            }
            _ => {}
        }
    }
}

/// The summary of a session stopped by `e`, with what its events said.
pub(super) fn error_summary(
    seen: &std::sync::Mutex<Summary>,
    e: &FixError,
    started: Instant,
) -> Summary {
    let mut s = seen
        .lock()
        .map(|s| s.clone())
        .unwrap_or_else(|_| Summary::error("", "", 0));
    s.outcome = Outcome::Error;
    s.reason_code = Some(e.reason_code().to_string());
    s.reason = e.to_string();
    s.duration_ms = started.elapsed().as_millis() as u64;
    s
}

/// `a, b, c, … (+N)`: at most `n` items of a list, for a person to read.
pub fn cap_list<S: AsRef<str>>(items: &[S], n: usize) -> String {
    let mut s = items
        .iter()
        .take(n)
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > n {
        s.push_str(&format!(", … (+{})", items.len() - n));
    }
    s
}

/// How many ids a message names before it says how many more there are.
pub(super) const IDS_SHOWN: usize = 5;

/// An event as the session log keeps it: diffs, not whole files. The old
/// and new texts are in git (the attempt refs and the session branch,
/// which `selfrepair diff` and `apply` read); copying them into every
/// line made logs of tens of megabytes on large files.
pub fn log_entry(e: &FixEvent) -> serde_json::Value {
    let mut v = serde_json::to_value(e).unwrap_or(serde_json::Value::Null);
    match e {
        FixEvent::Patch { .. } => {
            if let Some(o) = v.as_object_mut() {
                o.remove("files");
            }
        }
        FixEvent::Done(_) => {
            if let Some(d) = v.get_mut("diff").and_then(|d| d.as_object_mut()) {
                d.remove("files");
            }
        }
        _ => {}
    }
    v
}
