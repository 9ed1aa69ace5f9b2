//! `replay:PATH`: answer from a recorded transcript, strictly by fingerprint.
//!
//! Successful entries are served in the order they were recorded, once each,
//! so a run that asked the same question twice gets both answers back in the
//! same order. Anything not in the transcript is a [`ModelError::ReplayMiss`]
//! naming the request; nothing falls through to a real provider.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::Model;
use super::error::ModelError;
use super::transcript::{TRANSCRIPT_FILE, TranscriptEntry, fingerprint, read_entries};
use super::types::{ChatRequest, Completion, Usage};

pub struct Replay {
    path: PathBuf,
    /// Model name for fingerprints: the recorded one when the transcript has
    /// a single model, else `replay`.
    model: String,
    models: Vec<String>,
    entries: Mutex<HashMap<String, VecDeque<TranscriptEntry>>>,
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
        let mut entries: HashMap<String, VecDeque<TranscriptEntry>> = HashMap::new();
        let mut models = BTreeSet::new();
        for e in read_entries(&path)? {
            if e.error.is_some() || e.response.is_none() {
                continue;
            }
            models.insert(e.model.clone());
            entries
                .entry(e.fingerprint.clone())
                .or_default()
                .push_back(e);
        }
        let models: Vec<String> = models.into_iter().collect();
        let model = match models.as_slice() {
            [only] => only.clone(),
            _ => "replay".to_string(),
        };
        Ok(Replay {
            path,
            model,
            models,
            entries: Mutex::new(entries),
        })
    }

    /// Recorded answers not yet served.
    pub fn remaining(&self) -> usize {
        self.lock().values().map(VecDeque::len).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<TranscriptEntry>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
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
        let mut entries = self.lock();
        for m in &self.models {
            let fp = fingerprint(m, req);
            if let Some(e) = entries.get_mut(&fp).and_then(VecDeque::pop_front) {
                let choices = e.response.map(|r| r.choices).unwrap_or_default();
                return Ok(Completion {
                    choices,
                    usage: e.usage.unwrap_or(Usage::default()),
                    cost_usd: 0.0,
                    priced: false,
                    latency: Duration::ZERO,
                    provider: "replay".into(),
                    model: e.model,
                });
            }
        }
        Err(ModelError::ReplayMiss {
            preview: req.last_content().chars().take(80).collect(),
            fingerprint: fingerprint(&self.model, req),
        })
    }
}
