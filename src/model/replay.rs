//! `replay:PATH`: answer from a recorded transcript, strictly by fingerprint.
//!
//! Successful entries are served in the order they were recorded, once each,
//! so a run that asked the same question twice gets both answers back in the
//! same order. Anything not in the transcript is a [`ModelError::ReplayMiss`]
//! naming the request; nothing falls through to a real provider.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;

use super::Model;
use super::error::ModelError;
use super::transcript::{RecordedCalls, TRANSCRIPT_FILE, fingerprint, read_entries};
use super::types::{ChatRequest, Completion};

pub struct Replay {
    path: PathBuf,
    /// Model name for fingerprints: the recorded one when the transcript has
    /// a single model, else `replay`.
    model: String,
    models: Vec<String>,
    calls: RecordedCalls,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("path", &self.path)
            .field("models", &self.models)
            .finish()
    }
}

impl Replay {
    /// `path` is a transcript file or a run dir containing `transcript.jsonl`.
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let path = if path.is_dir() {
            path.join(TRANSCRIPT_FILE)
        } else {
            path.to_path_buf()
        };
        let calls = RecordedCalls::new(read_entries(&path)?);
        let models: Vec<String> = calls.models().into_iter().collect();
        let model = match models.as_slice() {
            [only] => only.clone(),
            _ => "replay".to_string(),
        };
        Ok(Replay {
            path,
            model,
            models,
            calls,
        })
    }

    /// Recorded answers not yet served.
    pub fn remaining(&self) -> usize {
        self.calls.remaining()
    }
}

#[async_trait]
impl Model for Replay {
    fn provider(&self) -> &str {
        "replay"
    }
    fn model(&self) -> &str {
        &self.model
    }
    async fn complete(&self, req: &ChatRequest) -> Result<Completion, ModelError> {
        for m in &self.models {
            if let Some(c) = self
                .calls
                .take(&fingerprint(m, req))
                .and_then(|e| e.into_completion())
            {
                // Nothing is paid or waited for on a replay.
                return Ok(Completion {
                    cost_usd: 0.0,
                    priced: false,
                    latency: Duration::ZERO,
                    provider: "replay".into(),
                    ..c
                });
            }
        }
        Err(ModelError::ReplayMiss {
            preview: req.last_content().chars().take(80).collect(),
            fingerprint: fingerprint(&self.model, req),
        })
    }
}
