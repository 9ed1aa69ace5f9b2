//! `selfrepair fix`, and `log`, `diff`, `apply`, `undo`, `prune` for its sessions.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::model_args::ModelArgs;
use anyhow::Context;
use clap::Args;
use selfrepair::fix::runner::{RunStatus, RunnerOptions};
use selfrepair::fix::workspace;
use selfrepair::fix::{
    FixError, FixEvent, FixOptions, Outcome, Repairer, Session, Summary, cap_list,
};
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
    #[arg(long, value_parser = super::choice::<selfrepair::fix::EditFormat>())]
    pub edit_format: Option<selfrepair::fix::EditFormat>,
    /// Load the prompt templates from DIR (`fix/explain.txt`, `fix/patch.txt`,
    /// `fix/patch-function.txt`, as in prompts/) instead of the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub prompts: Option<std::path::PathBuf>,
    /// Let the tests use the network (off by default).
    #[arg(long)]
    pub allow_network: bool,
    /// Seconds the baseline test run may take; later runs stop at ten times
    /// the baseline plus 3 s, when that is shorter.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout: u64,
    /// The most the work copy may hold while the tests run, build output and
    /// caches included; a run that writes past it is stopped.
    #[arg(long, value_name = "MB", default_value_t = selfrepair::fix::runner::DISK_MB)]
    pub disk_mb: u64,
    /// Keep the work tree afterwards (it is removed by default; commits stay).
    #[arg(long)]
    pub keep_worktree: bool,
    /// Keep the branch and attempt refs of a session that finds no fix
    /// (removed by default; its log stays for `selfrepair log`).
    #[arg(long)]
    pub keep: bool,
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

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// The project whose sessions to remove.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Only sessions older than this: 30d, 12h, 2w, 45m (default: every
    /// finished session).
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub older_than: Option<Duration>,
    /// Say what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

/// `30d`, `12h`, `2w`, `45m`, `90s`.
fn parse_age(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("'{s}': expected a number and a unit, like 30d, 12h or 2w"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        _ => {
            return Err(format!(
                "'{s}': the unit is one of s, m, h, d, w (like 30d)"
            ));
        }
    };
    n.checked_mul(secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("'{s}' is too long"))
}

/// Build the repairer: `mutate` when asked or when no model is configured.
fn repairer(a: &FixArgs) -> anyhow::Result<Repairer> {
    let mut flags = a.model.flags();
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
            transcript,
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
            if let Some(t) = transcript {
                // The state dir is what `replay:` is usually given.
                let dir = t.parent().unwrap_or(t);
                eprintln!(
                    "record:  {}   (replay: --model replay:{})",
                    t.display(),
                    dir.display()
                );
            }
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
            if *scope == selfrepair::fix::RunScope::Baseline {
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

fn print_summary(s: &Summary, keep: bool) {
    let what = match s.outcome {
        Outcome::Fixed => "fixed",
        Outcome::AlreadyGreen => "nothing to fix",
        Outcome::NotFixed => "not fixed",
        Outcome::Cancelled => "cancelled",
        Outcome::Reported => "reported",
        Outcome::Error => "error",
    };
    println!(
        "{what}: {} ({} attempts, {} tokens, ${:.4}, {:.1} s)",
        s.reason,
        s.attempts,
        s.tokens,
        s.cost_usd,
        s.duration_ms as f64 / 1000.0
    );
    match s.outcome {
        Outcome::Fixed => {
            print!("{}", s.diff.unified);
            println!(
                "The fix is on branch {}: `selfrepair apply` writes it to your tree (or `selfrepair diff | git apply`, or `git merge {}`).",
                s.branch, s.branch
            );
        }
        Outcome::NotFixed | Outcome::Cancelled if s.attempts > 0 => {
            if keep {
                println!(
                    "The attempts are kept under {} and refs/selfrepair/{}/ (`selfrepair log --session {}`).",
                    s.branch, s.session, s.session
                );
            } else {
                println!(
                    "Its log stays (`selfrepair log --session {}`); its attempts were not kept (--keep keeps them).",
                    s.session
                );
            }
        }
        _ => {}
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
    opts.prompts = a.prompts.clone();
    opts.keep_worktree = a.keep_worktree;
    opts.keep = a.keep;
    opts.runtime.progress = !json_quiet(&a);
    opts.runner = RunnerOptions {
        python: a.python.clone(),
        timeout: Duration::from_secs(a.timeout.max(1)),
        allow_network: a.allow_network,
        disk: selfrepair::sandbox::process::DiskCap {
            bytes: a.disk_mb.max(1) << 20,
            ..RunnerOptions::default().disk
        },
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
        print_summary(&summary, a.keep || a.keep_worktree);
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
            println!("session {} ({}) on {}", s.id, s.created, branch_name(&s));
            println!("  {}", outcome_line(&s));
            if s.refs_removed {
                println!("  (no fix: its attempts were not kept; `fix --keep` keeps them)");
            }
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
            println!("{}  {:<30} {}", s.id, branch_name(&s), outcome_line(&s));
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

/// The session's branch, or that it is gone.
fn branch_name(s: &workspace::SessionInfo) -> String {
    if s.refs_removed {
        "(no branch: no fix)".into()
    } else {
        s.branch.clone()
    }
}

/// `not_fixed: no mutant passes …`, or `unfinished`.
fn outcome_line(s: &workspace::SessionInfo) -> String {
    match (&s.outcome, &s.reason) {
        (Some(o), Some(r)) => format!("{o}: {r}"),
        (Some(o), None) => o.clone(),
        (None, _) => "unfinished".into(),
    }
}

/// `selfrepair apply`: a finished session's fix, written to the user's
/// tree without searching again (the same rules as `fix --apply`).
pub async fn apply(a: SessionArgs) -> anyhow::Result<ExitCode> {
    let s = workspace::session(&a.path, a.session.as_deref())?;
    let d = match workspace::session_diff(&a.path, &s, None) {
        Ok(d) => d,
        Err(e) => {
            // The latest session found nothing; an earlier one may have.
            let hint = match &a.session {
                None => workspace::sessions(&a.path)?
                    .into_iter()
                    .rev()
                    .find(|x| x.winner.is_some())
                    .map(|x| {
                        format!(
                            " (session {} has a fix: `selfrepair apply --session {}`)",
                            x.id, x.id
                        )
                    })
                    .unwrap_or_default(),
                Some(_) => String::new(),
            };
            anyhow::bail!("nothing to apply: {e}{hint}");
        }
    };
    let (files, already) = if workspace::is_applied(&s, &d) {
        (d.files.iter().map(|f| f.path.clone()).collect(), true)
    } else {
        (workspace::apply(&a.path, &s, &d)?, false)
    };
    if a.json {
        println!(
            "{}",
            serde_json::json!({"session": s.id, "applied": files, "already_applied": already})
        );
    } else if already {
        println!(
            "session {} is already applied to {}: {}",
            s.id,
            s.user_root.display(),
            files.join(", ")
        );
    } else {
        println!(
            "applied session {} to {}: wrote {} (undo with `selfrepair undo`)",
            s.id,
            s.user_root.display(),
            files.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn undo(a: SessionArgs) -> anyhow::Result<ExitCode> {
    let s = workspace::session(&a.path, a.session.as_deref())?;
    match workspace::undo(&a.path, &s)? {
        workspace::Undone::Already => println!("session {} is already undone", s.id),
        workspace::Undone::Restored { restored, removed } => {
            let mut did = Vec::new();
            if !restored.is_empty() {
                did.push(format!("restored {}", restored.join(", ")));
            }
            if !removed.is_empty() {
                did.push(format!("removed {}", removed.join(", ")));
            }
            println!("{} as before session {}", did.join("; "), s.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `3d`, `5h`, `12m`, `40s`: the largest whole unit.
fn age(secs: Option<u64>) -> String {
    match secs {
        None => "age unknown".into(),
        Some(s) if s >= 86400 => format!("{}d old", s / 86400),
        Some(s) if s >= 3600 => format!("{}h old", s / 3600),
        Some(s) if s >= 60 => format!("{}m old", s / 60),
        Some(s) => format!("{s}s old"),
    }
}

pub async fn prune(a: PruneArgs) -> anyhow::Result<ExitCode> {
    let r = workspace::prune(&a.path, a.older_than, a.dry_run)?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"dry_run": a.dry_run, "removed": r.removed, "kept": r.kept})
        );
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if a.dry_run { "would remove" } else { "removed" };
    for e in &r.removed {
        let what = match (e.refs, e.state_bytes) {
            (0, b) => format!("its log and state ({})", kb(b)),
            (n, 0) => format!("{n} ref(s) (no log)"),
            (n, b) => format!("branch and attempt refs ({n}), log and state ({})", kb(b)),
        };
        println!(
            "{verb} {}  {:<14} {:<10} {what}",
            e.id,
            e.outcome.as_deref().unwrap_or("unfinished"),
            age(e.age_secs)
        );
    }
    for e in &r.kept {
        println!(
            "kept {}: {}",
            e.id,
            e.kept_because.as_deref().unwrap_or_default()
        );
    }
    let freed: u64 = r.removed.iter().map(|e| e.state_bytes).sum();
    println!(
        "{verb} {} session(s) ({}), kept {}",
        r.removed.len(),
        kb(freed),
        r.kept.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn kb(bytes: u64) -> String {
    if bytes >= 10 << 20 {
        format!("{} MB", bytes >> 20)
    } else {
        format!("{} KB", bytes.div_ceil(1024))
    }
}
