//! `transcript.jsonl`: one fsync'd JSON line per model call, and the request
//! fingerprint that replay looks entries up by.
//!
//! Entries hold what was asked and answered, never credentials: auth lives
//! only in the HTTP layer and [`super::secret::ApiKey`] cannot be serialised.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::error::ModelError;
use super::types::{ChatRequest, Choice, Message, SamplingParams, Usage};

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
#[derive(Clone)]
pub struct TranscriptWriter {
    path: PathBuf,
    file: Arc<Mutex<File>>,
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
        Ok(TranscriptWriter {
            path,
            file: Arc::new(Mutex::new(file)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write one line and fsync it, off the async threads.
    pub async fn append(&self, entry: &TranscriptEntry) -> Result<(), ModelError> {
        let mut line = serde_json::to_string(entry).map_err(|e| self.error(e.to_string()))?;
        line.push('\n');
        let file = self.file.clone();
        let res = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
            f.write_all(line.as_bytes())?;
            f.sync_data()
        })
        .await;
        match res {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.error(e.to_string())),
            Err(e) => Err(self.error(e.to_string())),
        }
    }

    fn error(&self, message: String) -> ModelError {
        ModelError::Transcript {
            path: self.path.display().to_string(),
            message,
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
