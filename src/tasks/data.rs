//! Where dataset files are read from: a local data dir or the download cache.

use super::{Dataset, TaskError};
use std::io::Read;
use std::path::{Path, PathBuf};

/// A data dir given by the user (`--data-dir`, `SELFREPAIR_DATA_DIR`), else
/// the cache (`$SELFREPAIR_HOME/datasets`) that `tasks fetch` fills.
#[derive(Clone, Debug)]
pub struct DataSource {
    pub data_dir: Option<PathBuf>,
    pub cache: PathBuf,
}

impl DataSource {
    pub fn new(data_dir: Option<PathBuf>) -> Self {
        DataSource {
            data_dir,
            cache: selfrepair_store::home(),
        }
    }

    /// The root that holds `<dataset.dir>/<file>`.
    pub fn root(&self) -> PathBuf {
        match &self.data_dir {
            Some(d) => d.clone(),
            None => self.cache.join("datasets"),
        }
    }

    /// The dataset's file (or folder), checked against its pinned sha256.
    pub fn locate(&self, ds: &Dataset) -> Result<PathBuf, TaskError> {
        let path = self.root().join(ds.rel_path());
        if !path.exists() {
            return Err(TaskError::Missing {
                dataset: ds.name.clone(),
                path,
                rel: ds.rel_path(),
            });
        }
        if let Some(expected) = &ds.sha256 {
            let actual = sha256(&path)?;
            if &actual != expected {
                return Err(TaskError::Checksum {
                    path,
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        Ok(path)
    }
}

/// The sha256 of `ds`'s file at `path` (from [`DataSource::locate`]): its
/// pinned value, which `locate` checked, so a pinned file is hashed once;
/// else the file's own hash.
pub fn dataset_sha256(ds: &Dataset, path: &Path) -> Result<String, TaskError> {
    match &ds.sha256 {
        Some(pinned) => Ok(pinned.clone()),
        None => sha256(path),
    }
}

pub fn sha256(path: &Path) -> Result<String, TaskError> {
    selfrepair_store::sha256_file(path).map_err(|e| match e {
        selfrepair_store::StoreError::Io { path, source } => TaskError::Io { path, source },
        other => TaskError::Store(other),
    })
}

/// A file's text, gunzipped when it ends in `.gz`.
pub(crate) fn read_text(path: &Path) -> Result<String, TaskError> {
    let bytes = std::fs::read(path).map_err(|e| TaskError::io(path, e))?;
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|e| TaskError::malformed(path, 0, format!("not a valid gzip file: {e}")))?;
        out
    } else {
        bytes
    };
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        TaskError::malformed(path, line, "not UTF-8 text")
    })
}

/// A JSON object as parsed from one record.
pub(crate) type Object = serde_json::Map<String, serde_json::Value>;

/// Non-empty JSONL lines as (1-based line number, parsed object).
pub fn jsonl(path: &Path, text: &str) -> Result<Vec<(usize, Object)>, TaskError> {
    let mut out = Vec::new();
    for (line, record) in records(text) {
        let v: serde_json::Value = serde_json::from_str(&record)
            .map_err(|e| TaskError::malformed(path, line, format!("invalid JSON: {e}")))?;
        match v {
            serde_json::Value::Object(m) => out.push((line, m)),
            _ => return Err(TaskError::malformed(path, line, "expected a JSON object")),
        }
    }
    Ok(out)
}

/// A JSONL text's non-empty lines, 1-based, with [`nonstandard_floats`]
/// made standard; unparsed, for readers that parse only part of a line.
pub(crate) fn records(text: &str) -> impl Iterator<Item = (usize, std::borrow::Cow<'_, str>)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, nonstandard_floats(l)))
}

/// Markers for the non-standard JSON numbers Python's `json` writes
/// (`NaN`, `Infinity`, `-Infinity`, found in MBPP+ inputs). serde_json rejects
/// them, so they become these strings, which the ground-truth script turns
/// back into floats.
pub(crate) const NAN: &str = "\u{1}sr:nan";
pub(crate) const INF: &str = "\u{1}sr:inf";
pub(crate) const NEG_INF: &str = "\u{1}sr:-inf";

/// Replace bare NaN/Infinity tokens (outside strings) with marker strings.
pub(crate) fn nonstandard_floats(line: &str) -> std::borrow::Cow<'_, str> {
    if !line.contains("NaN") && !line.contains("Infinity") {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 64);
    let mut in_str = false;
    let mut escaped = false;
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let (tok, marker) = if rest.starts_with("-Infinity") {
            ("-Infinity", NEG_INF)
        } else if rest.starts_with("Infinity") {
            ("Infinity", INF)
        } else if rest.starts_with("NaN") {
            ("NaN", NAN)
        } else {
            if c == '"' {
                in_str = true;
            }
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        };
        out.push('"');
        out.push_str(&marker.replace('\u{1}', "\\u0001"));
        out.push('"');
        rest = &rest[tok.len()..];
    }
    std::borrow::Cow::Owned(out)
}

/// A required string field.
pub(crate) fn field_str<'a>(
    path: &Path,
    line: usize,
    m: &'a serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Result<&'a str, TaskError> {
    match m.get(key) {
        Some(serde_json::Value::String(s)) => Ok(s),
        Some(_) => Err(TaskError::malformed(
            path,
            line,
            format!("field '{key}' is not a string"),
        )),
        None => Err(TaskError::malformed(
            path,
            line,
            format!("missing field '{key}'"),
        )),
    }
}

/// A required list of strings.
pub(crate) fn field_strings(
    path: &Path,
    line: usize,
    m: &serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Result<Vec<String>, TaskError> {
    let bad = || {
        TaskError::malformed(
            path,
            line,
            format!("field '{key}' is not a list of strings"),
        )
    };
    match m.get(key) {
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(bad))
            .collect(),
        Some(_) => Err(bad()),
        None => Err(TaskError::malformed(
            path,
            line,
            format!("missing field '{key}'"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_infinity_and_nan_become_markers_but_strings_stay() {
        let s = r#"{"a": [-Infinity, Infinity, NaN, "NaN \" Infinity"]}"#;
        let v: serde_json::Value = serde_json::from_str(&nonstandard_floats(s)).expect("json");
        assert_eq!(v["a"][0], NEG_INF);
        assert_eq!(v["a"][1], INF);
        assert_eq!(v["a"][2], NAN);
        assert_eq!(v["a"][3], "NaN \" Infinity");
    }
}
