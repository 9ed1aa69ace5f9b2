//! `transcript.jsonl`: one fsync'd JSON line per model call, and the request
//! fingerprint that replay looks entries up by.
//!
//! Entries hold what was asked and answered, never credentials: auth lives
//! only in the HTTP layer and [`super::secret::ApiKey`] cannot be serialised.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, mpsc};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::error::ModelError;
use super::types::{ChatRequest, Choice, Completion, Message, SamplingParams, Usage};

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

/// Appends entries to `<run dir>/transcript.jsonl`.
///
/// A dedicated thread does the writing with group commit: lines that arrive
/// while an fsync is in progress are written together and share the next
/// fsync. Every call still returns only once its own line is on disk.
#[derive(Clone)]
pub struct TranscriptWriter {
    path: PathBuf,
    tx: mpsc::Sender<Job>,
}

struct Job {
    line: String,
    done: oneshot::Sender<Result<(), String>>,
}

impl std::fmt::Debug for TranscriptWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TranscriptWriter")
            .field("path", &self.path)
            .finish()
    }
}

impl TranscriptWriter {
    /// Open (creating the run dir and file) for appending.
    pub fn open(run_dir: &Path) -> Result<Self, ModelError> {
        let path = run_dir.join(TRANSCRIPT_FILE);
        let err = |e: std::io::Error| ModelError::Transcript {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(run_dir).map_err(err)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(err)?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("transcript-writer".into())
            .spawn(move || write_loop(file, rx))
            .map_err(err)?;
        Ok(TranscriptWriter { path, tx })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write one line; returns once it has been fsync'd.
    pub async fn append(&self, entry: &TranscriptEntry) -> Result<(), ModelError> {
        let mut line = serde_json::to_string(entry).map_err(|e| self.error(e.to_string()))?;
        line.push('\n');
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job { line, done })
            .map_err(|_| self.error("writer thread has stopped".into()))?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.error(e)),
            Err(_) => Err(self.error("writer thread has stopped".into())),
        }
    }

    fn error(&self, message: String) -> ModelError {
        ModelError::Transcript {
            path: self.path.display().to_string(),
            message,
        }
    }
}

/// Runs until every writer handle is dropped.
fn write_loop(mut file: File, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 4096 {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let buf: String = batch.iter().map(|j| j.line.as_str()).collect();
        let res = file
            .write_all(buf.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| e.to_string());
        for j in batch {
            let _ = j.done.send(res.clone());
        }
    }
}

/// Read every entry. A final line without a newline is a write cut short by
/// a crash and is skipped; any other unreadable line is an error.
pub fn read_entries(path: &Path) -> Result<Vec<TranscriptEntry>, ModelError> {
    let err = |message: String| ModelError::Transcript {
        path: path.display().to_string(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|_| err("not valid UTF-8".into()))?;
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<TranscriptEntry>(line) {
            Ok(e) => out.push(e),
            Err(_) if i + 1 == lines.len() && !complete => break,
            Err(e) => return Err(err(format!("line {}: {e}", i + 1))),
        }
    }
    Ok(out)
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
pub struct RecordedCalls {
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
