//! Reference times for datasets whose tests are code (HumanEval's `check`,
//! MBPP's asserts): each canonical solution run on its own tests once,
//! natively in the process jail, and cached by the dataset file's sha256, as
//! evalplus' ground truth records its times. A scorer routes by them (a suite
//! too heavy for the fast sandbox goes to the jail first, heavy samples start
//! first); no verdict depends on them.

use super::groundtruth::{derived_path, progress_bar, read_cache, run_script, write_cache};
use super::{Dataset, LoadOptions, Task, TaskError, data};
use crate::sandbox::TestSpec;
use crate::sandbox::process::{ProcessConfig, ProcessSandbox};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

const SCRIPT: &str = include_str!("timing.py");
/// Bump when the cached format or how it is computed changes.
const VERSION: u32 = 1;
/// A canonical solution still running after this is recorded as unknown.
const LIMIT_S: f64 = 10.0;

#[derive(Debug, Serialize, Deserialize)]
struct Timing {
    version: u32,
    sha256: String,
    /// Seconds per task id; None where the canonical solution failed.
    seconds: BTreeMap<String, Option<f64>>,
}

/// The code-test suite of `task` that has no reference time yet, if any.
fn untimed(task: &mut Task) -> Option<&mut super::Suite> {
    task.suites.first_mut().filter(|s| {
        s.reference_time.is_none()
            && matches!(s.tests, TestSpec::Check { .. } | TestSpec::Asserts { .. })
    })
}

/// Give the code-test suites of `tasks` their canonical solution's time,
/// from the cache or measured now. Routing information only: when it cannot
/// be measured (no jail here, the script failed), the tasks stay untimed and
/// a warning says why.
pub async fn annotate(ds: &Dataset, tasks: &mut [Task], opts: &LoadOptions) {
    if !tasks.iter_mut().any(|t| untimed(t).is_some()) {
        return;
    }
    match get(ds, tasks, opts).await {
        Ok(t) => {
            for task in tasks.iter_mut() {
                let s = t.seconds.get(&task.id).copied().flatten();
                if let (Some(s), Some(suite)) = (s, untimed(task)) {
                    suite.reference_time = Some(Duration::from_secs_f64(s.clamp(0.0, LIMIT_S)));
                }
            }
        }
        Err(e) => tracing::warn!("no reference times for {}: {e}", ds.name),
    }
}

async fn get(ds: &Dataset, tasks: &mut [Task], opts: &LoadOptions) -> Result<Timing, TaskError> {
    let sha = data::sha256(&opts.source.locate(ds)?)?;
    let path = derived_path(&opts.source.cache, "timing", &ds.name, &sha, VERSION);
    if let Some(t) = read_cache::<Timing>(&path)
        && t.version == VERSION
        && t.sha256 == sha
    {
        return Ok(t);
    }
    let mut requests = Vec::new();
    for task in tasks.iter_mut() {
        let (Some(program), id) = (task.canonical.first().cloned(), task.id.clone()) else {
            continue;
        };
        let Some(suite) = untimed(task) else {
            continue;
        };
        let (setup, tests, entry_point) = match &suite.tests {
            TestSpec::Check {
                code, entry_point, ..
            } => (String::new(), code.clone(), entry_point.clone()),
            TestSpec::Asserts { setup, asserts } => (setup.clone(), asserts.join("\n"), None),
            _ => continue,
        };
        requests.push(serde_json::json!({
            "id": id, "program": program, "setup": setup, "tests": tests, "entry_point": entry_point,
        }));
    }
    let jail = ProcessSandbox::new(ProcessConfig::default())?;
    let python = ProcessConfig::default().python;
    let jobs = opts.jobs.max(1);
    let chunk = requests.len().div_ceil(jobs).max(1);
    let bar = progress_bar(
        opts,
        requests.len(),
        format!("reference times for {}", ds.name),
    );
    let runs: Vec<Result<BTreeMap<String, Option<f64>>, TaskError>> =
        futures_util::stream::iter(requests.chunks(chunk).map(|part| {
            let (jail, python, bar) = (&jail, &python, &bar);
            async move {
                let req = serde_json::json!({ "limit": LIMIT_S, "tasks": part });
                let timeout = (part.len() as f64 * LIMIT_S) as u64 + 60;
                let out = run_script(jail, python, SCRIPT, req.to_string().into_bytes(), timeout)
                    .await?
                    .map_err(|why| TaskError::Timing(format!("the timing run {why}")))?;
                bar.inc(part.len() as u64);
                serde_json::from_slice(&out)
                    .map_err(|e| TaskError::Timing(format!("unreadable timing output: {e}")))
            }
        }))
        .buffer_unordered(jobs)
        .collect()
        .await;
    bar.finish_and_clear();
    let mut seconds = BTreeMap::new();
    for r in runs {
        seconds.extend(r?);
    }
    let t = Timing {
        version: VERSION,
        sha256: sha,
        seconds,
    };
    if let Err(e) = write_cache(&path, &t) {
        tracing::warn!("cannot keep reference times: {e}");
    }
    Ok(t)
}
