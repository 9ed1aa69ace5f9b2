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
    /// Every call was answered by an in-process model; callers that shape
    /// requests by [`Model::in_process`] (fix's edit format and context
    /// size) must ask what they asked then, or nothing would match.
    in_process: bool,
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
        let entries = read_entries(&path)?;
        let in_process =
            !entries.is_empty() && entries.iter().all(|e| e.provider == super::local::PROVIDER);
        let calls = RecordedCalls::new(entries);
        let models: Vec<String> = calls.models().into_iter().collect();
        let model = match models.as_slice() {
            [only] => only.clone(),
            _ => "replay".to_string(),
        };
        Ok(Replay {
            path,
            model,
            models,
            in_process,
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
    fn in_process(&self) -> bool {
        self.in_process
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::transcript::{RecordedRequest, RecordedResponse, TranscriptEntry};
    use crate::model::types::{Choice, FinishReason, SamplingParams};

    fn entry(provider: &str) -> String {
        let e = TranscriptEntry {
            ts_ms: 0,
            fingerprint: "f".into(),
            key: String::new(),
            task: None,
            provider: provider.into(),
            model: "m".into(),
            request: RecordedRequest {
                messages: Vec::new(),
                params: SamplingParams::default(),
            },
            response: Some(RecordedResponse {
                choices: vec![Choice {
                    text: "x".into(),
                    finish_reason: FinishReason::Stop,
                }],
            }),
            usage: None,
            cost_usd: 0.0,
            priced: false,
            latency_ms: 0.0,
            attempts: 1,
            error: None,
        };
        serde_json::to_string(&e).unwrap() + "\n"
    }

    /// A replay of an in-process model's calls is in-process too, so fix
    /// asks it in the same edit format and with the same context.
    #[test]
    fn stands_in_for_an_in_process_model_only_when_every_call_was_one() {
        let dir = tempfile::tempdir().unwrap();
        let open = |lines: &[&str]| {
            let text: String = lines.iter().map(|p| entry(p)).collect();
            std::fs::write(dir.path().join(TRANSCRIPT_FILE), text).unwrap();
            Replay::open(dir.path()).unwrap().in_process()
        };
        assert!(open(&["local", "local"]));
        assert!(!open(&["local", "openai"]));
        assert!(!open(&["openai"]));
        assert!(!open(&[]));
    }
}
