//! What is computed once from a dataset file and kept: where it lives
//! (named by the file's sha256), how it is written and read back, the
//! progress bar while it is computed, and the jailed run of our own script
//! that computes it. Ground truth and reference times use these.

use super::{LoadOptions, TaskError};
use crate::sandbox::Limits;
use crate::sandbox::process::{CommandSpec, ProcessSandbox};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// `<home>/<kind>/<dataset>-<sha prefix>-v<version>.json.gz`: what is
/// computed once from a dataset file and kept.
pub(crate) fn derived_path(
    home: &std::path::Path,
    kind: &str,
    dataset: &str,
    sha: &str,
    version: u32,
) -> PathBuf {
    let safe: String = dataset
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    home.join(kind).join(format!(
        "{safe}-{}-v{version}.json.gz",
        &sha[..16.min(sha.len())]
    ))
}

/// A bar for `len` steps of work on a dataset, hidden unless `opts` asks for one.
pub(crate) fn progress_bar(opts: &LoadOptions, len: usize, msg: String) -> indicatif::ProgressBar {
    let bar = if opts.progress {
        indicatif::ProgressBar::new(len as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(msg);
    bar
}

/// Keep `value` at `path`, gzipped JSON, atomically.
pub(crate) fn write_cache<T: Serialize>(
    path: &std::path::Path,
    value: &T,
) -> Result<(), TaskError> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let io = |e| TaskError::io(path, e);
    serde_json::to_writer(&mut enc, value).map_err(|e| io(e.into()))?;
    let bytes = enc.finish().map_err(io)?;
    selfrepair_store::write_atomic(path, &bytes).map_err(io)
}

/// What [`write_cache`] kept at `path`; None (with a warning if the file
/// exists) when it cannot be read back.
pub(crate) fn read_cache<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Option<T> {
    let f = std::fs::File::open(path).ok()?;
    let r = std::io::BufReader::new(flate2::read::GzDecoder::new(f));
    match serde_json::from_reader(r) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!("ignoring unreadable cache file {}: {e}", path.display());
            None
        }
    }
}

/// Run `script` (trusted, ours) with `stdin` in the process jail, with
/// `timeout_s` for the whole run; its stdout, or why there is none (it ran
/// past the limit, or failed: its last line of stderr).
pub(crate) async fn run_script(
    jail: &ProcessSandbox,
    python: &std::path::Path,
    script: &str,
    stdin: Vec<u8>,
    timeout_s: u64,
) -> Result<Result<Vec<u8>, String>, TaskError> {
    let spec = CommandSpec {
        program: python.to_path_buf(),
        args: vec![
            "-I".into(),
            "-S".into(),
            "-B".into(),
            "-c".into(),
            script.into(),
        ],
        workdir: None,
        env: vec![
            ("LANG".into(), "C.UTF-8".into()),
            ("PYTHONIOENCODING".into(), "utf-8".into()),
        ],
        stdin,
        limits: Limits {
            timeout: Duration::from_secs(timeout_s),
            memory_mb: 4096,
            max_output: 1 << 30,
            test_timeout: None,
        },
    };
    let out = jail.exec(spec).await?;
    if out.timed_out {
        return Ok(Err(format!("ran past {timeout_s} s")));
    }
    if out.code != Some(0) {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.trim().lines().last().unwrap_or("no message");
        return Ok(Err(format!("failed (exit {:?}): {last}", out.code)));
    }
    Ok(Ok(out.stdout))
}
