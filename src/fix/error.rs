//! Why a fix session could not run, with a stable `reason_code` for
//! JSON consumers.

use std::path::{Path, PathBuf};

use crate::model::ModelError;

use super::interpreter;

#[derive(Debug, thiserror::Error)]
pub enum FixError {
    #[error("{}: cannot fix here: {reason}", path.display())]
    NotADirectory { path: PathBuf, reason: String },
    #[error("{}: the git repository has no commits yet; commit once so the fix has a base", path.display())]
    NoCommits { path: PathBuf },
    #[error("{}: no tests found: no pytest files, Cargo.toml, go.mod, package.json test script or Makefile test target; pass --test CMD", path.display())]
    NoTestCommand { path: PathBuf },
    #[error("the tests could not start (`{command}`): {cause}. Fix: {fix}. No attempt was made")]
    CannotStart {
        command: String,
        cause: String,
        fix: String,
    },
    #[error(transparent)]
    Interpreter(#[from] interpreter::InterpreterError),
    #[error("no failing test matches '{focus}'; failing: {failing}")]
    NoMatchingTest { focus: String, failing: String },
    #[error("test command `{command}` found no tests to run")]
    NoTests { command: String },
    #[error("git: {0}")]
    Git(String),
    /// Something in the work copy (a test run) redirected its git link;
    /// host git operations stopped before following it.
    #[error(
        "the work copy {} was tampered with: {detail}; stopped before any git operation followed it (your repository, branches and index are untouched)",
        root.display()
    )]
    WorkCopyTampered { root: PathBuf, detail: String },
    // The causes below are in the message, not `#[source]`s, so that an
    // error chain printed in full does not say them twice.
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("sandbox: {0}")]
    Sandbox(selfrepair_sandbox::SandboxError),
    #[error("model: {0}")]
    Model(ModelError),
    #[error("{0}")]
    Prompts(crate::prompts::PromptError),
    #[error("{}: {detail}", path.display())]
    NoSession { path: PathBuf, detail: String },
    #[error("refusing to apply: {} has uncommitted changes that the fix conflicts with; nothing was written. The fix stays on branch {branch} (see `selfrepair diff`)", file.display())]
    ApplyConflict { file: PathBuf, branch: String },
    #[error("refusing to undo: {} changed since the fix was applied; nothing was written", file.display())]
    UndoConflict { file: PathBuf },
}

impl FixError {
    /// A stable snake_case name for the error, for JSON consumers
    /// (`reason_code` of an `error` summary).
    pub fn reason_code(&self) -> &'static str {
        match self {
            FixError::NotADirectory { .. } => "bad_path",
            FixError::NoCommits { .. } => "no_commits",
            FixError::NoTestCommand { .. } => "no_test_command",
            FixError::CannotStart { .. } => "cannot_start",
            FixError::Interpreter(_) => "no_interpreter",
            FixError::NoMatchingTest { .. } => "no_matching_test",
            FixError::NoTests { .. } => "no_tests",
            FixError::Git(_) => "git",
            FixError::WorkCopyTampered { .. } => "work_copy_tampered",
            FixError::Io { .. } => "io",
            FixError::Sandbox(_) => "sandbox",
            FixError::Model(_) => "model",
            FixError::Prompts(_) => "prompts",
            FixError::NoSession { .. } => "no_session",
            FixError::ApplyConflict { .. } => "apply_conflict",
            FixError::UndoConflict { .. } => "undo_conflict",
        }
    }

    pub fn io(path: &Path, cause: std::io::Error) -> Self {
        FixError::Io {
            path: path.to_path_buf(),
            cause,
        }
    }
}

impl From<ModelError> for FixError {
    fn from(e: ModelError) -> Self {
        FixError::Model(e)
    }
}
