//! What a fix session is asked to do: who proposes fixes, the options,
//! the mode, and how a model writes a patch.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::model::{Client, ModelError};

use super::runner::RunnerOptions;

/// Who proposes fixes.
#[derive(Clone)]
pub enum Repairer {
    /// The mutation repairer alone (no model, no tokens).
    Mutate,
    /// A model; with `mutate_first`, the mutation repairer runs before it.
    Model {
        client: Arc<Client>,
        mutate_first: bool,
    },
}

impl Repairer {
    /// This repairer with its model's calls recorded into
    /// `dir/transcript.jsonl` (a session's state dir, known only once the
    /// session has an id); the mutation repairer calls no model.
    pub(super) fn recording_into(&self, dir: &Path) -> Result<Repairer, ModelError> {
        Ok(match self {
            Repairer::Mutate => Repairer::Mutate,
            Repairer::Model {
                client,
                mutate_first,
            } => Repairer::Model {
                client: Arc::new(client.recording_into(dir)?),
                mutate_first: *mutate_first,
            },
        })
    }

    /// Where the model's calls are recorded, if anywhere.
    pub(super) fn transcript_path(&self) -> Option<PathBuf> {
        match self {
            Repairer::Mutate => None,
            Repairer::Model { client, .. } => client.transcript_path().map(Path::to_path_buf),
        }
    }
}

#[derive(Clone, Debug)]
pub struct FixOptions {
    /// The project directory (in a git repository or not).
    pub path: PathBuf,
    /// `--test`: the test command; detected when `None`.
    pub test: Option<String>,
    /// Model attempts (patches), or mutants validated with `mutate`.
    pub max_attempts: usize,
    /// Mutants tried before the model with `--mutate-first`.
    pub mutate_cap: usize,
    pub runner: RunnerOptions,
    pub allow_test_edits: bool,
    /// Tokens for code context and for the repo map in prompts.
    pub context_tokens: u64,
    pub map_tokens: u64,
    /// Keep the work tree after the session (for debugging).
    pub keep_worktree: bool,
    /// Keep the branch and attempt refs of a session that found no fix
    /// (by default only a fixed session leaves them).
    pub keep: bool,
    /// Only the failing tests whose id contains this ("fix test X"); the
    /// others may stay red, but no test that passed may break.
    pub focus: Option<String>,
    pub mode: FixMode,
    /// How the model writes its patch; `None` picks by model (see
    /// [`EditFormat::for_model`]).
    pub edit_format: Option<EditFormat>,
    /// Where the provided pytest is fetched to and from.
    pub runtime: selfrepair_sandbox::runtime::RuntimeOptions,
    /// Load the prompt templates from this directory (`fix/explain.txt`,
    /// `fix/patch.txt`, `fix/patch-function.txt`) instead of the embedded ones.
    pub prompts: Option<PathBuf>,
}

/// What a session does after the baseline test run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FixMode {
    /// Explain, patch and validate until green.
    #[default]
    Repair,
    /// Explain the failure and stop; nothing is patched.
    Explain,
    /// Run the tests once and stop.
    Check,
}

/// How a model writes a patch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EditFormat {
    /// SEARCH/REPLACE blocks (or a unified diff).
    SearchReplace,
    /// Each changed function in full ([`function_edit`]).
    Function,
}

impl crate::choice::Choice for EditFormat {
    const ALL: &'static [(Self, &'static str, &'static str)] = &[
        (
            EditFormat::SearchReplace,
            "search-replace",
            "SEARCH/REPLACE blocks (or a unified diff)",
        ),
        (
            EditFormat::Function,
            "function",
            "each changed function in full",
        ),
    ];
}

impl EditFormat {
    /// Whole functions for the in-process models, which copy SEARCH text
    /// poorly (measured: docs/models.md); SEARCH/REPLACE for the others.
    pub fn for_model(client: &Client) -> EditFormat {
        if crate::model::Model::in_process(client) {
            EditFormat::Function
        } else {
            EditFormat::SearchReplace
        }
    }
}

impl FixOptions {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FixOptions {
            path: path.into(),
            test: None,
            max_attempts: 5,
            mutate_cap: 200,
            runner: RunnerOptions::default(),
            allow_test_edits: false,
            context_tokens: 6000,
            map_tokens: 1500,
            keep_worktree: false,
            keep: false,
            focus: None,
            mode: FixMode::Repair,
            edit_format: None,
            runtime: selfrepair_sandbox::runtime::RuntimeOptions::default(),
            prompts: None,
        }
    }
}
