//! `transcript.jsonl`: one fsync'd JSON line per model call (an
//! [`AppendLog`]), and the request fingerprint that replay looks entries up by.
//!
//! Entries hold what was asked and answered, never credentials: auth lives
//! only in the HTTP layer and [`super::secret::ApiKey`] cannot be serialised.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::error::ModelError;
use super::types::{ChatRequest, Choice, Completion, Message, SamplingParams, Usage};
use crate::append_log::{self, AppendLog};

pub const TRANSCRIPT_FILE: &str = "transcript.jsonl";

/// The provider-independent part of a request, as recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub messages: Vec<Message>,
    pub params: SamplingParams,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedResponse {
    pub choices: Vec<Choice>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TranscriptEntry {
    /// Unix time in milliseconds when the call finished.
    pub ts_ms: u64,
    pub fingerprint: String,
    pub key: String,
    pub task: Option<String>,
    pub provider: String,
    pub model: String,
    pub request: RecordedRequest,
    pub response: Option<RecordedResponse>,
    pub usage: Option<Usage>,
    pub cost_usd: f64,
    pub priced: bool,
    pub latency_ms: f64,
    /// HTTP attempts made, retries included.
    pub attempts: u32,
    pub error: Option<String>,
}

impl TranscriptEntry {
    /// The answer as it was recorded; None for a failed call.
    pub fn into_completion(self) -> Option<Completion> {
        let resp = self.response?;
        Some(Completion {
            choices: resp.choices,
            usage: self.usage.unwrap_or_default(),
            cost_usd: self.cost_usd,
            priced: self.priced,
            latency: std::time::Duration::from_secs_f64(self.latency_ms / 1000.0),
            provider: self.provider,
            model: self.model,
        })
    }
}

/// sha256 (hex) of the canonical JSON of model + messages + params + key.
/// Provider and base URL are left out so a run recorded against one server
/// replays for the same model name served anywhere.
pub fn fingerprint(model: &str, req: &ChatRequest) -> String {
    let v = json!({
        "model": model,
        "messages": req.messages,
        "params": req.params,
        "key": req.key,
    });
    let mut s = String::new();
    canonical(&v, &mut s);
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// JSON with object keys sorted and no whitespace, independent of how
/// serde_json orders maps.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Appends entries to `<run dir>/transcript.jsonl`. Calls finishing
/// together share one fsync; each `append` returns once its line is on disk.
#[derive(Clone, Debug)]
pub(crate) struct TranscriptWriter {
    log: AppendLog<TranscriptEntry>,
}

impl TranscriptWriter {
    /// Open (creating the run dir and file) for appending; a torn last line
    /// from a killed run is cut off first.
    pub fn open(run_dir: &Path) -> Result<Self, ModelError> {
        let path = run_dir.join(TRANSCRIPT_FILE);
        std::fs::create_dir_all(run_dir).map_err(|source| {
            ModelError::Transcript(append_log::AppendLogError::Io {
                path: run_dir.to_path_buf(),
                source,
            })
        })?;
        let (log, _) = AppendLog::open(&path)?;
        Ok(TranscriptWriter { log })
    }

    pub fn path(&self) -> &Path {
        self.log.path()
    }

    /// Write one line; returns once it has been fsync'd.
    pub async fn append(&self, entry: &TranscriptEntry) -> Result<(), ModelError> {
        Ok(self.log.append(entry).await?)
    }
}

/// Every entry of a transcript. A final line without its newline (a write
/// cut short by a crash) is skipped; any other unreadable line is an error.
pub fn read_entries(path: &Path) -> Result<Vec<TranscriptEntry>, ModelError> {
    Ok(append_log::read_entries(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_depends_on_model_messages_params_and_key() {
        let req = ChatRequest::new(vec![Message::user("hi")]);
        let base = fingerprint("m", &req);
        assert_eq!(base, fingerprint("m", &req.clone()));
        assert_eq!(base.len(), 64);
        assert_ne!(base, fingerprint("m2", &req));
        assert_ne!(base, fingerprint("m", &req.clone().with_key("sample-2")));
        let mut p = req.clone();
        p.params.temperature = Some(0.5);
        assert_ne!(base, fingerprint("m", &p));
        // The task is accounting, not identity.
        assert_eq!(base, fingerprint("m", &req.clone().with_task("t")));
    }

    #[test]
    fn canonical_sorts_keys() {
        let mut s = String::new();
        canonical(&json!({"b": 1, "a": [true, null, "x"]}), &mut s);
        assert_eq!(s, r#"{"a":[true,null,"x"],"b":1}"#);
    }
}

/// The successful calls of a transcript by request fingerprint, each served
/// once, in recorded order (a run that asked the same question twice gets
/// both answers back). Replay answers from it; a resumed run reuses it.
#[derive(Debug, Default)]
pub(crate) struct RecordedCalls {
    entries: Mutex<HashMap<String, VecDeque<TranscriptEntry>>>,
}

impl RecordedCalls {
    pub fn new(entries: impl IntoIterator<Item = TranscriptEntry>) -> Self {
        let mut map: HashMap<String, VecDeque<TranscriptEntry>> = HashMap::new();
        for e in entries {
            if e.error.is_none() && e.response.is_some() {
                map.entry(e.fingerprint.clone()).or_default().push_back(e);
            }
        }
        RecordedCalls {
            entries: Mutex::new(map),
        }
    }

    /// The next unserved answer to the request with fingerprint `fp`.
    pub fn take(&self, fp: &str) -> Option<TranscriptEntry> {
        self.lock().get_mut(fp).and_then(VecDeque::pop_front)
    }

    /// Recorded answers not yet served.
    pub fn remaining(&self) -> usize {
        self.lock().values().map(VecDeque::len).sum()
    }

    /// The models the recorded answers came from.
    pub fn models(&self) -> BTreeSet<String> {
        self.lock()
            .values()
            .flatten()
            .map(|e| e.model.clone())
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, VecDeque<TranscriptEntry>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}
