//! Errors of the sandbox layer itself (not of the programs it runs).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{0}")]
    Config(String),
    #[error("runtime {path} is unusable: {reason}")]
    Runtime { path: PathBuf, reason: String },
    #[error("cannot build the fast runtime: {0}")]
    Build(String),
    #[error(
        "sandbox layer '{layer}' is not available here: {reason} (run without --strict to accept this)"
    )]
    MissingLayer { layer: String, reason: String },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("wasmtime: {0}")]
    Wasmtime(String),
    #[error(transparent)]
    Store(#[from] selfrepair_store::StoreError),
}

impl SandboxError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SandboxError::Io {
            path: path.into(),
            source,
        }
    }
}
