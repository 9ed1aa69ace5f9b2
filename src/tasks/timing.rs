//! Reference times for datasets whose tests are code (HumanEval's `check`,
//! MBPP's asserts): each canonical solution run on its own tests once,
//! natively in the process jail, and cached by the dataset file's sha256, as
//! evalplus' ground truth records its times. A scorer routes by them (a suite
//! too heavy for the fast sandbox goes to the jail first, heavy samples start
//! first); no verdict depends on them.

use super::derived::{derived_path, progress_bar, read_cache, run_script, write_cache};
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
const LIMIT_S: f64 = if cfg!(test) { 1.0 } else { 10.0 };
/// The most one timing run (a share of the tasks) may take.
const RUN_LIMIT_S: u64 = 120;

#[derive(Debug, Serialize, Deserialize)]
struct Timing {
    version: u32,
    sha256: String,
    /// Seconds per task id; None where the canonical solution failed.
    seconds: BTreeMap<String, Option<f64>>,
}

/// The code-test suite of `task` that has no reference time yet, if any
/// (its first: HumanEval and MBPP have one).
fn untimed(task: &Task) -> Option<&super::Suite> {
    task.suites.first().filter(|s| {
        s.reference_time.is_none()
            && matches!(s.tests, TestSpec::Check { .. } | TestSpec::Asserts { .. })
    })
}

/// Give the code-test suites of `tasks` their canonical solution's time,
/// from the cache or measured now. Routing information only: when it cannot
/// be measured (no jail here, the script failed), the tasks stay untimed and
/// a warning says why.
pub async fn annotate(ds: &Dataset, tasks: &mut [Task], opts: &LoadOptions) {
    if !tasks.iter().any(|t| untimed(t).is_some()) {
        return;
    }
    match get(ds, tasks, opts).await {
        Ok(t) => {
            for task in tasks.iter_mut() {
                let s = t.seconds.get(&task.id).copied().flatten();
                if let Some(s) = s.filter(|_| untimed(task).is_some()) {
                    task.suites[0].reference_time =
                        Some(Duration::from_secs_f64(s.clamp(0.0, LIMIT_S)));
                }
            }
        }
        Err(e) => tracing::warn!("no reference times for {}: {e}", ds.name),
    }
}

async fn get(ds: &Dataset, tasks: &[Task], opts: &LoadOptions) -> Result<Timing, TaskError> {
    // `tasks::load` has located and checked the file: no second check here.
    let sha = data::dataset_sha256(ds, &opts.source.root().join(ds.rel_path()))?;
    let path = derived_path(&opts.source.cache, "timing", &ds.name, &sha, VERSION);
    if let Some(t) = read_cache::<Timing>(&path)
        && t.version == VERSION
        && t.sha256 == sha
    {
        return Ok(t);
    }
    let mut requests = Vec::new();
    for task in tasks {
        let (Some(program), Some(suite)) = (task.canonical.first(), untimed(task)) else {
            continue;
        };
        let (setup, tests, entry_point) = match &suite.tests {
            TestSpec::Check {
                code, entry_point, ..
            } => ("", code.clone(), entry_point.as_deref()),
            TestSpec::Asserts { setup, asserts } => (setup.as_str(), asserts.join("\n"), None),
            _ => continue,
        };
        requests.push(serde_json::json!({
            "id": task.id, "program": program, "setup": setup, "tests": tests, "entry_point": entry_point,
        }));
    }
    let cfg = ProcessConfig::default();
    let python = cfg.python.clone();
    let jail = ProcessSandbox::new(cfg)?;
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
                // A dataset whose solutions swallow the per-task alarm must
                // not hold an eval for long: routing goes on without times.
                let timeout = ((part.len() as f64 * LIMIT_S) as u64 + 10).min(RUN_LIMIT_S);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Times come from the jail for solutions that pass; one that never
    /// ends or fails its tests has none, and the rest are still timed.
    #[tokio::test]
    async fn canonical_solutions_are_timed_in_the_jail_and_kept() {
        let data = tempfile::tempdir().expect("tempdir");
        let cache = tempfile::tempdir().expect("tempdir");
        let mut ds = crate::tasks::Manifest::builtin()
            .expect("manifest")
            .get("humaneval")
            .expect("humaneval")
            .clone();
        ds.sha256 = None;
        let line = |id: &str, body: &str, test: &str| {
            serde_json::json!({"task_id": id, "prompt": "def f(x):\n", "canonical_solution": body,
                "test": test, "entry_point": "f"})
            .to_string()
        };
        let check = "def check(c):\n    assert c(3) == 3\n";
        let lines = [
            line("T/0", "    return x\n", check),
            line("T/1", "    return x\nwhile True:\n    pass\n", check),
            line("T/2", "    return x + 1\n", check),
            line("T/3", "    return sum(range(x * 100000)) and x\n", check),
        ];
        let path = data.path().join(ds.rel_path());
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, (lines.join("\n") + "\n").as_bytes()).expect("gzip");
        std::fs::write(&path, gz.finish().expect("gzip")).expect("write");
        let opts = LoadOptions::new(
            crate::tasks::DataSource {
                data_dir: Some(data.path().to_path_buf()),
                cache: cache.path().to_path_buf(),
            },
            2,
            false,
        );
        let mut tasks = crate::tasks::load(&ds, &opts).await.expect("load");
        annotate(&ds, &mut tasks, &opts).await;
        let times: Vec<Option<Duration>> =
            tasks.iter().map(|t| t.suites[0].reference_time).collect();
        assert!(
            times[0].is_some_and(|t| t < Duration::from_millis(100)),
            "{times:?}"
        );
        assert_eq!(times[1], None, "a solution that never ends");
        assert_eq!(times[2], None, "a solution that fails its tests");
        assert!(
            times[3].is_some_and(|t| t > times[0].unwrap_or_default()),
            "{times:?}"
        );
        let kept = std::fs::read_dir(cache.path().join("timing"))
            .expect("timing dir")
            .count();
        assert_eq!(kept, 1);
    }
}
