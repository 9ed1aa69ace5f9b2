//! The one error type every model call returns.

use std::time::Duration;

use super::budget::BudgetExceeded;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The server answered with an error status.
    #[error("{provider} returned HTTP {status}: {message}")]
    Http {
        provider: String,
        status: u16,
        message: String,
        /// Server-requested wait before retrying (429/503).
        retry_after: Option<Duration>,
    },
    /// The request never got an answer (refused, reset, DNS, body cut off).
    #[error("{provider}: connection failed: {message}")]
    Connection { provider: String, message: String },
    #[error("{provider}: no response within {after:?}")]
    Timeout { provider: String, after: Duration },
    /// 200 with a body that is not UTF-8.
    #[error("{provider}: response body is not valid UTF-8")]
    InvalidUtf8 { provider: String },
    /// 200 with a JSON body that ends early.
    #[error("{provider}: response body is truncated: {detail}")]
    Truncated { provider: String, detail: String },
    /// 200 with a body that is not the JSON we expect.
    #[error("{provider}: malformed response: {detail}")]
    Malformed { provider: String, detail: String },
    #[error("giving up after {attempts} attempts: {last}")]
    RetriesExhausted {
        attempts: u32,
        last: Box<ModelError>,
    },
    #[error(transparent)]
    BudgetExceeded(#[from] BudgetExceeded),
    #[error("model call cancelled")]
    Cancelled,
    /// `replay:` has no recorded answer for this request.
    #[error(
        "replay miss: no recorded response for request {fingerprint} (last message: {preview:?})"
    )]
    ReplayMiss {
        preview: String,
        fingerprint: String,
    },
    #[error("transcript {0}")]
    Transcript(#[from] crate::append_log::AppendLogError),
    /// The in-process model could not be fetched, loaded or run.
    #[error("local model: {0}")]
    Local(String),
    /// Bad settings: unknown provider, missing key, invalid URL…
    #[error("model configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Unsupported(String),
}

impl ModelError {
    /// Worth trying again: rate limits, server errors, network trouble.
    /// 4xx other than 408/409/429 are the caller's fault and never retried.
    pub fn is_retryable(&self) -> bool {
        match self {
            ModelError::Http { status, .. } => {
                matches!(*status, 408 | 409 | 429) || (500..=599).contains(status)
            }
            ModelError::Connection { .. } | ModelError::Timeout { .. } => true,
            _ => false,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ModelError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// HTTP status, looking through [`ModelError::RetriesExhausted`].
    pub fn status(&self) -> Option<u16> {
        match self {
            ModelError::Http { status, .. } => Some(*status),
            ModelError::RetriesExhausted { last, .. } => last.status(),
            _ => None,
        }
    }

    /// True when the run should stop cleanly rather than report a failure.
    pub fn is_budget_exceeded(&self) -> bool {
        matches!(self, ModelError::BudgetExceeded(_))
    }
}
