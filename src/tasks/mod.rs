//! Benchmark tasks: one type for every dataset, and a loader per dataset.
//!
//! A [`Task`] carries what a model sees (prompt, visible tests), what scores it
//! (hidden test suites with their comparison rule and limits) and where it came
//! from. Loaders turn each upstream file into tasks faithfully to the reference
//! harness of that dataset (see `../shared/reference/harnesses.md`); a
//! malformed record is a [`TaskError`] naming file and line, never a panic.

pub mod apps;
pub mod data;
mod derived;
pub mod evalplus;
pub mod groundtruth;
pub mod humaneval;
pub mod manifest;
pub mod mbpp;
pub mod select;
pub mod timing;

use crate::sandbox::{Guard, Limits, RunRequest, SandboxKind, TestSpec};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use data::DataSource;
pub use manifest::{Dataset, Format, Manifest};

/// Why tasks could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("{file}:{line}: {reason}")]
    Malformed {
        file: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unknown dataset '{0}' (see `selfrepair tasks list`)")]
    UnknownDataset(String),
    #[error("the task manifest is invalid: {0}")]
    Manifest(String),
    #[error(
        "dataset {dataset}: {path} not found; run `selfrepair tasks fetch {dataset}` or point --data-dir / SELFREPAIR_DATA_DIR at a folder holding {rel}"
    )]
    Missing {
        dataset: String,
        path: PathBuf,
        rel: String,
    },
    #[error("{path}: sha256 is {actual}, expected {expected} (not the pinned upstream file)")]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("ground truth for {task}: {reason}")]
    GroundTruth { task: String, reason: String },
    #[error("reference times: {0}")]
    Timing(String),
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::SandboxError),
    #[error(transparent)]
    Store(selfrepair_store::StoreError),
}

impl TaskError {
    pub fn malformed(file: &Path, line: usize, reason: impl Into<String>) -> Self {
        TaskError::Malformed {
            file: file.to_path_buf(),
            line,
            reason: reason.into(),
        }
    }
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        TaskError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A scored (or informational) group of tests run as one sandbox run.
#[derive(Clone, Debug, Serialize)]
pub struct Suite {
    /// `tests` (the whole hidden set), or evalplus' `base` / `plus`, or MBPP's `challenge`.
    pub name: String,
    pub tests: TestSpec,
    /// Limits as the reference harness sets them, for a native CPython;
    /// [`Suite::request`] scales them for slower sandboxes.
    pub limits: Limits,
    pub guard: Guard,
    /// The sandbox whose CPython the expected outputs and time limits are
    /// for (evalplus ground truth runs in `process`; APPS' limits assume a
    /// native CPython). A call that finished past its limit elsewhere, or (for
    /// evalplus) a wrong answer, may come from the runtime (libm's last ulp,
    /// `sys.getsizeof`, a slower interpreter), so such verdicts are confirmed there.
    pub confirm_in: Option<SandboxKind>,
    /// The comparison rule, in words, for reports.
    pub rule: String,
    /// How long the reference solution computes on these tests natively,
    /// where it was measured (evalplus' ground truth): a suite that would
    /// run past the fast sandbox's budget goes straight to the process jail.
    pub reference_time: Option<Duration>,
}

/// How much slower than a native CPython a sandbox runs Python code, measured
/// on loops, dicts and sorting (wasm ~2.5x, wasm-full ~7x), rounded up so a
/// correct but slow solution is not judged a timeout only for the sandbox.
pub(crate) fn slowdown(kind: SandboxKind) -> f64 {
    match kind {
        SandboxKind::Process => 1.0,
        SandboxKind::Wasm => 3.0,
        SandboxKind::WasmFull => 8.0,
    }
}

impl Suite {
    /// The run for `program` in sandbox `kind`, limits scaled by [`slowdown`].
    pub fn request(&self, program: String, kind: SandboxKind) -> RunRequest {
        let f = slowdown(kind);
        let mut tests = self.tests.clone();
        if let TestSpec::Call(c) = &mut tests {
            for t in &mut c.time_limits {
                *t *= f;
            }
        }
        let limits = Limits {
            timeout: Duration::from_secs_f64(self.limits.timeout.as_secs_f64() * f),
            test_timeout: self.limits.test_timeout.map(|t| t * f),
            ..self.limits.clone()
        };
        RunRequest {
            program,
            tests,
            stdin: String::new(),
            limits,
            fast_fail: true,
            guard: self.guard,
            budget: None,
        }
    }

    /// Number of test cases or assertion lines, for reports.
    pub fn len(&self) -> usize {
        match &self.tests {
            TestSpec::Script => 1,
            TestSpec::Check { code, .. } => code.matches("assert").count().max(1),
            TestSpec::Asserts { asserts, .. } => asserts.len(),
            TestSpec::Io { cases, .. } => cases.len(),
            TestSpec::Call(c) => c.cases.len(),
            TestSpec::Compute(_) | TestSpec::Judge(_) => 1,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a task came from.
#[derive(Clone, Debug, Serialize, Default)]
pub struct Source {
    pub file: PathBuf,
    /// 1-based line in `file` (0 for one-file-per-task layouts).
    pub line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub difficulty: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// One benchmark problem.
#[derive(Clone, Debug, Serialize)]
pub struct Task {
    pub id: String,
    pub dataset: String,
    /// What a model is shown (code with a docstring, or a problem statement).
    pub prompt: String,
    /// Prepended to a sample's `completion` (empty where completions are whole programs).
    pub code_prompt: String,
    /// Code the reference harness puts before every program (APPS' imports).
    pub header: String,
    pub entry_point: Option<String>,
    /// Reference solutions, each a whole program.
    pub canonical: Vec<String>,
    /// Tests a model may see (in the prompt), as text.
    pub visible: Vec<String>,
    /// Hidden tests that decide the verdict, in order (evalplus: base, plus).
    pub suites: Vec<Suite>,
    /// Tests kept apart and never scored (MBPP's challenge tests).
    pub extra: Vec<Suite>,
    /// The tests a self-repair run executes for feedback, when the protocol
    /// shows fewer than the hidden ones (MBPP: the first assert, as in
    /// Self-Debugging; APPS: the sample I/O). None: the hidden suites.
    pub visible_suite: Option<Suite>,
    /// The prompt a self-repair run shows, when it differs from `prompt`
    /// (MBPP's prompt lists every test; a repair run shows only the visible one).
    pub repair_prompt: Option<String>,
    pub source: Source,
}

impl Task {
    /// How long its reference solution computes on its hidden suites, as
    /// far as measured (zero where not).
    pub fn reference_time(&self) -> Duration {
        self.suites.iter().filter_map(|s| s.reference_time).sum()
    }

    /// The program for a sample: a `completion` goes after the code prompt,
    /// a `solution` is already whole.
    pub fn program(&self, code: &str, whole: bool) -> String {
        if whole {
            format!("{}{code}", self.header)
        } else {
            format!("{}{}{code}", self.header, self.code_prompt)
        }
    }
}

/// How many tasks to load and how ground truth is computed.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub source: DataSource,
    /// Parallel ground-truth runs.
    pub jobs: usize,
    /// Show a progress bar while computing ground truth.
    pub progress: bool,
    /// evalplus' floor on each input's time limit, in seconds.
    pub min_time_limit: f64,
}

impl LoadOptions {
    /// Options with evalplus' current floor on each input's time limit.
    pub fn new(source: DataSource, jobs: usize, progress: bool) -> Self {
        Self {
            source,
            jobs,
            progress,
            min_time_limit: evalplus::MIN_TIME_LIMIT,
        }
    }
}

/// Load every task of a dataset (computing and caching evalplus ground truth if needed).
pub async fn load(ds: &Dataset, opts: &LoadOptions) -> Result<Vec<Task>, TaskError> {
    let path = opts.source.locate(ds)?;
    match ds.format {
        Format::HumanEval => humaneval::load(&path, &ds.name),
        Format::Mbpp => mbpp::load_full(&path, &ds.name),
        Format::MbppSanitized => mbpp::load_sanitized(&path, &ds.name),
        Format::EvalplusHumanEval | Format::EvalplusMbpp => {
            let records = evalplus::read(&path, ds.format)?;
            let sha = data::dataset_sha256(ds, &path)?;
            let gt = groundtruth::get(&ds.name, &sha, &records, opts).await?;
            evalplus::build(records, gt, &ds.name, ds.format, opts.min_time_limit)
        }
        Format::Apps => apps::load_dir(&path, &ds.name),
        Format::AppsSelected => apps::load_selected(&path, &ds.name),
    }
}
