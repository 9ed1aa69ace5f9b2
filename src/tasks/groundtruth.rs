//! evalplus ground truth: run each canonical solution over all its inputs once,
//! in the process sandbox, and cache the outputs (as Python literals) and
//! per-input times, keyed by the dataset file's sha256.

use super::derived::{derived_path, progress_bar, read_cache, run_script, write_cache};
use super::evalplus::Record;
use super::{Format, LoadOptions, TaskError};
use crate::sandbox::process::{ProcessConfig, ProcessSandbox};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

const SCRIPT: &str = include_str!("groundtruth.py");
/// Bump when the cached format or how it is computed changes.
const VERSION: u32 = 5;

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
