//! `selfrepair fix`, and `log`, `diff`, `undo` for its sessions.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use selfrepair::fix::runner::{RunStatus, RunnerOptions};
use selfrepair::fix::workspace;
use selfrepair::fix::{
    FixError, FixEvent, FixOptions, Outcome, Repairer, Session, Summary, cap_list,
};
use selfrepair::model::cli::ModelArgs;
use tokio_util::sync::CancellationToken;

#[derive(Args, Debug)]
pub struct FixArgs {
    /// The project to fix (a git repository or a subdirectory of one, or any directory).
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Test command, run in PATH (default: detected: pytest, cargo test, go test, npm/yarn/pnpm test, make test).
    #[arg(long, value_name = "CMD")]
    pub test: Option<String>,
    /// The Python for the tests (also SELFREPAIR_PYTHON). Default: the first
    /// of a --test command's interpreter, VIRTUAL_ENV, the project's .venv,
    /// venv or env, what uv/poetry/pdm/hatch use, the pytest on PATH, python3.
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// Patches asked of the model, or mutants validated with `--model mutate`.
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<usize>,
    /// Stop after this many dollars of model calls (same as --budget-usd).
    #[arg(long, value_name = "USD")]
    pub budget: Option<f64>,
    /// With a model, try the mutation repairer first (no tokens).
    #[arg(long)]
    pub mutate_first: bool,
    /// Apply the winning diff to your working tree (your other uncommitted changes stay).
    #[arg(long)]
    pub apply: bool,
    /// Let patches edit test files (read-only by default).
    #[arg(long)]
    pub allow_test_edits: bool,
    /// How the model writes patches (default: whole functions for local
    /// models, SEARCH/REPLACE for the others).
    #[arg(long, value_enum)]
    pub edit_format: Option<selfrepair::fix::EditFormat>,
    /// Let the tests use the network (off by default).
    #[arg(long)]
    pub allow_network: bool,
    /// Seconds the baseline test run may take; later runs stop at ten times
    /// the baseline plus 3 s, when that is shorter.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout: u64,
    /// Keep the work tree afterwards (it is removed by default; commits stay).
    #[arg(long)]
    pub keep_worktree: bool,
    /// Print events as JSON lines and the summary as the last line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(Args, Debug)]
pub struct SessionArgs {
    /// The project the session ran on.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Session id (default: the latest).
    #[arg(long)]
    pub session: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    #[command(flatten)]
    pub s: SessionArgs,
    /// Show attempt N instead of the winner.
    #[arg(long, value_name = "N")]
    pub attempt: Option<usize>,
}

/// Build the repairer: `mutate` when asked or when no model is configured.
fn repairer(a: &FixArgs) -> anyhow::Result<Repairer> {
    let mut flags = a.model.clone();
    if a.budget.is_some() {
        flags.budget_usd = a.budget;
    }
    Ok(selfrepair::fix::choose::configured(
        &a.path,
        &flags,
        a.mutate_first,
    )?)
}

fn print_event(e: &FixEvent) {
    match e {
        FixEvent::Plan {
            session,
            branch,
            workdir,
            test_command,
            reason,
            detected,
            python,
            repairer,
            ignored,
            ..
        } => {
            eprintln!(
                "session {session}: work copy {} on {branch}",
                workdir.display()
            );
            let why = if *detected {
                format!("detected from {reason}")
            } else {
                reason.clone()
            };
            eprintln!("tests:   {test_command}   ({why})");
            if let Some(py) = python {
                eprintln!("python:  {}   ({})", py.python.display(), py.reason);
                if py.keeps_uid {
                    eprintln!(
                        "         runs as your uid: another uid cannot read {}",
                        py.exposed
                            .iter()
                            .filter(|p| !selfrepair::fix::interpreter::others_can_read(p))
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
            }
            if !ignored.copied.is_empty() {
                eprintln!(
                    "ignored: copied {} ignored file(s) the tests may need: {}",
                    ignored.copied.len(),
                    cap_list(&ignored.copied, 5)
                );
            }
            if !ignored.left_out.is_empty() {
                eprintln!(
                    "         left out (used in place or not needed): {}",
                    cap_list(&ignored.left_out, 5)
                );
            }
            eprintln!("repair:  {repairer}");
        }
        FixEvent::TestRunStarted { .. } => {}
        FixEvent::TestRunFinished {
            attempt,
            scope,
            run,
        } => {
            let failed = run.report.failed.len();
            let status = match run.status {
                RunStatus::Passed => "passed".to_string(),
                RunStatus::Failed => format!("{failed} failing"),
                s => format!("{s:?}"),
            };
            eprintln!(
                "  [{attempt}] {scope:<8} {status} ({:.1} s)",
                run.duration_ms as f64 / 1000.0
            );
            if scope == "baseline" {
                const SHOWN: usize = 10;
                for f in run.report.failed.iter().take(SHOWN) {
                    let msg = f.message.lines().next().unwrap_or_default();
                    eprintln!("      {}  {msg}", f.id);
                }
                if failed > SHOWN {
                    eprintln!(
                        "      … and {} more (all of them: --json, or `selfrepair log`)",
                        failed - SHOWN
                    );
                }
            }
        }
        FixEvent::Explanation { attempt, text } => {
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or_default();
            eprintln!("  [{attempt}] explain  {first}");
        }
        FixEvent::Patch {
            attempt,
            description,
            ..
        } => eprintln!("  [{attempt}] try      {description}"),
        FixEvent::Rejected { attempt, reason } => eprintln!("  [{attempt}] rejected {reason}"),
        FixEvent::Localised { duration_ms, lines } => {
            let top: Vec<String> = lines
                .iter()
                .take(5)
                .map(|l| format!("{}:{} ({:.2})", l.file, l.line, l.score))
                .collect();
            eprintln!(
                "      locate   {} ({:.1} s, Ochiai over per-test coverage)",
                top.join(", "),
                *duration_ms as f64 / 1000.0
            );
        }
        FixEvent::Usage { .. } | FixEvent::Done(_) => {}
    }
}

fn print_summary(s: &Summary) {
    println!(
        "{}: {} ({} attempts, {} tokens, ${:.4}, {:.1} s)",
        match s.outcome {
            Outcome::Fixed => "fixed",
            Outcome::AlreadyGreen => "nothing to fix",
            Outcome::NotFixed => "not fixed",
            Outcome::Cancelled => "cancelled",
            Outcome::Reported => "reported",
            Outcome::Error => "error",
        },
        s.reason,
        s.attempts,
        s.tokens,
        s.cost_usd,
        s.duration_ms as f64 / 1000.0
    );
    if s.outcome == Outcome::Fixed {
        print!("{}", s.diff.unified);
        println!(
            "The fix is on branch {} (selfrepair diff / selfrepair fix --apply / git merge).",
            s.branch
        );
    }
}

/// A progress bar only where a person watches stderr.
fn json_quiet(a: &FixArgs) -> bool {
    a.json || !std::io::IsTerminal::is_terminal(&std::io::stderr())
}

pub async fn fix(a: FixArgs) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let done_printed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let json = a.json;
    let result = fix_session(a, done_printed.clone()).await;
    if let Err(e) = &result
        && json
        && !done_printed.load(std::sync::atomic::Ordering::SeqCst)
    {
        // The stream ends with one summary whatever happened: errors
        // before the session (flags, configuration) get one here.
        let code = e
            .chain()
            .find_map(|c| {
                c.downcast_ref::<FixError>()
                    .map(FixError::reason_code)
                    .or_else(|| {
                        c.is::<selfrepair::fix::choose::ChooseError>()
                            .then_some("config")
                    })
            })
            .unwrap_or("invalid_arguments");
        let s = Summary::error(code, format!("{e:#}"), started.elapsed().as_millis() as u64);
        if let Ok(line) = serde_json::to_string(&FixEvent::Done(Box::new(s))) {
            println!("{line}");
        }
    }
    result
}

async fn fix_session(
    a: FixArgs,
    done_printed: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<ExitCode> {
    let repairer = repairer(&a)?;
    let mut opts = FixOptions::new(&a.path);
    opts.test = a.test.clone();
    if let Some(n) = a.max_attempts {
        anyhow::ensure!(n > 0, "--max-attempts must be at least 1");
        opts.max_attempts = n;
    } else if matches!(repairer, Repairer::Mutate) {
        opts.max_attempts = opts.mutate_cap;
    }
    opts.allow_test_edits = a.allow_test_edits;
    opts.edit_format = a.edit_format;
    opts.keep_worktree = a.keep_worktree;
    opts.runtime.progress = !json_quiet(&a);
    opts.runner = RunnerOptions {
        python: a.python.clone(),
        timeout: Duration::from_secs(a.timeout.max(1)),
        allow_network: a.allow_network,
        ..RunnerOptions::default()
    };
    let cancel = CancellationToken::new();
    let on_ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.cancel();
        }
    });
    let json = a.json;
    let on_event = move |e: &FixEvent| {
        if json {
            if let Ok(line) = serde_json::to_string(e) {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
            }
            if matches!(e, FixEvent::Done(_)) {
                done_printed.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        } else {
            print_event(e);
        }
    };
    let session = Session::new(opts, repairer, cancel);
    let summary = session
        .run(&on_event)
        .await
        .with_context(|| format!("fixing {}", a.path.display()))?;
    if !json {
        print_summary(&summary);
    }
    if a.apply && summary.outcome == Outcome::Fixed {
        let info = workspace::session(&a.path, Some(&summary.session))?;
        let files = workspace::apply(&a.path, &info, &summary.diff)?;
        if !json {
            println!(
                "applied to {}: {} (undo with `selfrepair undo`)",
                info.user_root.display(),
                files.join(", ")
            );
        }
    }
    Ok(ExitCode::from(match summary.outcome {
        Outcome::Fixed => 0,
        Outcome::NotFixed | Outcome::Cancelled => 1,
        Outcome::Error => 2,
        Outcome::AlreadyGreen | Outcome::Reported => 3,
    }))
}

pub async fn log(a: SessionArgs) -> anyhow::Result<ExitCode> {
    if let Some(id) = &a.session {
        let s = workspace::session(&a.path, Some(id))?;
        let attempts = workspace::attempts(&a.path, &s)?;
        if a.json {
            println!(
                "{}",
                serde_json::json!({"session": s, "attempts": attempts})
            );
        } else {
            println!("session {} ({}) on {}", s.id, s.created, s.branch);
            println!("  {}", outcome_line(&s));
            for t in attempts {
                let mark = if s.winner.as_deref() == Some(&t.commit) {
                    "*"
                } else {
                    " "
                };
                println!("{mark} {:>3} {} {}", t.n, &t.commit[..10], t.message);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let all = workspace::sessions(&a.path)?;
    if a.json {
        println!("{}", serde_json::to_string(&all)?);
    } else if all.is_empty() {
        println!("no selfrepair sessions for {}", a.path.display());
    } else {
        for s in all {
            println!("{}  {:<30} {}", s.id, s.branch, outcome_line(&s));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn diff(a: DiffArgs) -> anyhow::Result<ExitCode> {
    let s = workspace::session(&a.s.path, a.s.session.as_deref())?;
    let d = workspace::session_diff(&a.s.path, &s, a.attempt)?;
    if a.s.json {
        println!("{}", serde_json::to_string(&d)?);
    } else {
        print!("{}", d.unified);
    }
    Ok(ExitCode::SUCCESS)
}

/// `not_fixed: no mutant passes …`, or `unfinished`.
fn outcome_line(s: &workspace::SessionInfo) -> String {
    match (&s.outcome, &s.reason) {
        (Some(o), Some(r)) => format!("{o}: {r}"),
        (Some(o), None) => o.clone(),
        (None, _) => "unfinished".into(),
    }
}

pub async fn undo(a: SessionArgs) -> anyhow::Result<ExitCode> {
    let s = workspace::session(&a.path, a.session.as_deref())?;
    let files = workspace::undo(&a.path, &s)?;
    println!("restored {} as before session {}", files.join(", "), s.id);
    Ok(ExitCode::SUCCESS)
}
