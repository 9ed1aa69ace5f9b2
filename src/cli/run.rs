//! `selfrepair run FILE.py [--tests T.py]`: one sandboxed run, printed.

use anyhow::Context;
use selfrepair::sandbox::{self, Limits, RunRequest, SandboxKind, Status, TestSpec};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The Python program.
    pub file: PathBuf,
    /// A test file: `check(candidate)` with --entry-point, top-level asserts, or `test_*` functions.
    #[arg(long)]
    pub tests: Option<PathBuf>,
    /// The function `check` receives as `candidate`.
    #[arg(long)]
    pub entry_point: Option<String>,
    /// wasm (fast, preloaded modules), wasm-full (full stdlib) or process.
    #[arg(long, default_value = "wasm")]
    pub sandbox: SandboxKind,
    /// Wall-clock limit in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Memory limit in MiB.
    #[arg(long, default_value_t = 512)]
    pub memory: u64,
    /// Feed this file to the program's stdin.
    #[arg(long)]
    pub stdin: Option<PathBuf>,
    /// Keep running tests after the first failure.
    #[arg(long)]
    pub all_tests: bool,
    /// Fail if an isolation layer is missing (process sandbox).
    #[arg(long)]
    pub strict: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

fn read_source(path: &PathBuf) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is not UTF-8 text (byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

pub async fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    let program = read_source(&a.file)?;
    let tests = match &a.tests {
        Some(t) => TestSpec::Check {
            code: read_source(t)?,
            entry_point: a.entry_point.clone(),
            context: String::new(),
        },
        None => TestSpec::Script,
    };
    let timeout = Duration::try_from_secs_f64(a.timeout)
        .context("--timeout must be a positive number of seconds")?;
    let mut req = RunRequest::new(program, tests).with_limits(Limits {
        timeout,
        memory_mb: a.memory,
        ..Limits::default()
    });
    req.fast_fail = !a.all_tests;
    if let Some(s) = &a.stdin {
        req.stdin = read_source(s)?;
    }
    let sb: Box<dyn sandbox::Sandbox> = if a.sandbox == SandboxKind::Process {
        let cfg = sandbox::process::ProcessConfig {
            strict: a.strict,
            ..Default::default()
        };
        Box::new(sandbox::process::ProcessSandbox::new(cfg)?)
    } else {
        sandbox::open(a.sandbox, &sandbox::runtime::RuntimeOptions::default()).await?
    };
    let out = sb.run(&req).await;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{} in {} ({:.1} ms): {} passed, {} failed",
            out.status, out.sandbox, out.duration_ms, out.passed, out.failed
        );
        if out.status != Status::Passed {
            println!("  {}", out.summary());
        }
        if !out.stdout.is_empty() {
            println!("--- stdout\n{}", out.stdout.trim_end());
        }
        if !out.stderr.is_empty() {
            println!("--- stderr\n{}", out.stderr.trim_end());
        }
    }
    Ok(if out.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
