//! evalplus ground truth: run each canonical solution over all its inputs once,
//! in the process sandbox, and cache the outputs (as Python literals) and
//! per-input times, keyed by the dataset file's sha256.

use super::evalplus::Record;
use super::{Format, LoadOptions, TaskError};
use crate::sandbox::Limits;
use crate::sandbox::process::{CommandSpec, ProcessConfig, ProcessSandbox};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

const SCRIPT: &str = include_str!("groundtruth.py");
/// Bump when the cached format or how it is computed changes.
const VERSION: u32 = 4;

/// One input: its arguments (base64 of CPython marshal data, made by the
/// ground-truth script from a checked literal), its expected output, and the
/// canonical solution's wall time on it (seconds).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(from = "(String, Expected, f64)", into = "(String, Expected, f64)")]
pub struct GtCase {
    pub args: String,
    pub expected: Expected,
    pub time: f64,
}

/// An expected output: marshal data as for the arguments, or, past 64 KiB, the harness's
/// `value_digest` of it (the program's run digests its answer the same way,
/// so neither the output nor the answer is shipped or held whole) and a
/// short head for reports.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Expected {
    Value(String),
    Digest { digest: String, head: String },
}

impl From<(String, Expected, f64)> for GtCase {
    fn from((args, expected, time): (String, Expected, f64)) -> Self {
        GtCase {
            args,
            expected,
            time,
        }
    }
}

impl From<GtCase> for (String, Expected, f64) {
    fn from(c: GtCase) -> Self {
        (c.args, c.expected, c.time)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GtTask {
    pub base: Vec<GtCase>,
    pub plus: Vec<GtCase>,
    /// Inputs left out because their expected output is too large to ship
    /// into a sandbox (over 8 MiB) and has no digest (it holds floats,
    /// dicts or sets, or over 2M items), with the reason.
    #[serde(default)]
    pub skipped: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroundTruth {
    pub version: u32,
    pub dataset: String,
    pub sha256: String,
    pub python: String,
    pub tasks: BTreeMap<String, GtTask>,
}

/// The cache file for a dataset file's ground truth.
fn cache_path(home: &std::path::Path, dataset: &str, sha: &str) -> PathBuf {
    derived_path(home, "groundtruth", dataset, sha, VERSION)
}

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

/// The ground truth for `records`, from the cache or computed now.
pub async fn get(
    dataset: &str,
    sha: &str,
    records: &[Record],
    opts: &LoadOptions,
) -> Result<GroundTruth, TaskError> {
    let path = cache_path(&opts.source.cache, dataset, sha);
    if let Some(gt) = read_cache::<GroundTruth>(&path)
        && gt.version == VERSION
        && gt.sha256 == sha
    {
        return Ok(gt);
    }
    let gt = compute(dataset, sha, records, opts).await?;
    write_cache(&path, &gt)?;
    Ok(gt)
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

async fn compute(
    dataset: &str,
    sha: &str,
    records: &[Record],
    opts: &LoadOptions,
) -> Result<GroundTruth, TaskError> {
    let format = if records.iter().any(|r| r.task_id.starts_with("Mbpp/")) {
        Format::EvalplusMbpp
    } else {
        Format::EvalplusHumanEval
    };
    let cfg = ProcessConfig::default();
    let python = cfg.python.display().to_string();
    let jail = ProcessSandbox::new(cfg.clone())?;
    let bar = progress_bar(opts, records.len(), format!("ground truth for {dataset}"));
    let jobs = opts.jobs.max(1);
    let results: Vec<Result<(String, GtTask), TaskError>> =
        futures_util::stream::iter(records.iter().map(|rec| {
            let jail = &jail;
            let python = &cfg.python;
            let bar = &bar;
            async move {
                let r = run_one(jail, python, rec, format).await;
                bar.inc(1);
                r.map(|t| (rec.task_id.clone(), t))
            }
        }))
        .buffer_unordered(jobs)
        .collect()
        .await;
    bar.finish_and_clear();
    let mut tasks = BTreeMap::new();
    for r in results {
        let (id, t) = r?;
        tasks.insert(id, t);
    }
    Ok(GroundTruth {
        version: VERSION,
        dataset: dataset.to_string(),
        sha256: sha.to_string(),
        python,
        tasks,
    })
}

async fn run_one(
    jail: &ProcessSandbox,
    python: &std::path::Path,
    rec: &Record,
    format: Format,
) -> Result<GtTask, TaskError> {
    let req = serde_json::json!({
        "code": rec.canonical_program(),
        "entry_point": rec.entry_point,
        "record": rec.raw,
        "mbpp_task": if format == Format::EvalplusMbpp { rec.mbpp_number() } else { None },
        "not_none": rec.not_none(format),
        "harness": crate::sandbox::harness::HARNESS_PY,
    });
    let fail = |reason: String| TaskError::GroundTruth {
        task: rec.task_id.clone(),
        reason,
    };
    let stdout = run_script(jail, python, SCRIPT, req.to_string().into_bytes(), 600)
        .await?
        .map_err(|why| fail(format!("the canonical solution {why}")))?;
    serde_json::from_slice(&stdout).map_err(|e| fail(format!("unreadable output: {e}")))
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
