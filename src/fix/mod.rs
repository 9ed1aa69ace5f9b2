//! `selfrepair fix`: repair a repository's failing tests on a work copy,
//! with a model (explain, then patch) or with the mutation repairer.
//!
//! [`Session::run`] is the library API: it reports progress as
//! [`FixEvent`]s through a callback, honours a cancellation token (which
//! also kills a running test's process group), and ends with a
//! [`Summary`] whose diff carries the unified text and every changed
//! file's new contents; an error ends with a summary too (outcome
//! `error`). The CLI and the editor agent are its consumers. The JSON
//! form of the events is documented in docs/fix-json.md.

pub mod baseline;
mod blocking;
pub mod choose;
pub mod context;
pub mod detect;
mod error;
mod events;
pub mod failures;
pub mod function_edit;
pub mod interpreter;
pub mod junit;
pub mod localise;
pub mod mutate;
mod node_output;
mod options;
pub mod patch;
pub mod prompts;
mod propose;
pub mod runner;
pub mod textparse;
mod validate;
pub mod workspace;

use validate::{Progress, Verdict};

pub use error::FixError;
pub use events::{
    FixEvent, Outcome, PromptInfo, PythonPlan, RunScope, Summary, cap_list, log_entry,
};
pub use options::{EditFormat, FixMode, FixOptions, Repairer};

use events::{IDS_SHOWN, error_summary};

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::model::{ChatRequest, Client, Message, ModelError};
use detect::TestCommand;
use failures::TestReport;
use localise::Suspicion;
use runner::{RunStatus, RunnerOptions, TestRun, TestRunner};
use workspace::{FinalDiff, Workspace};

/// One fix session. Construct with [`Session::new`], then [`Session::run`].
pub struct Session {
    opts: FixOptions,
    repairer: Repairer,
    cancel: CancellationToken,
}

/// What a session settled before its work copy existed.
struct Setup {
    command: TestCommand,
    python: Option<PythonPlan>,
    prompts: prompts::FixPrompts,
}

fn session_id() -> String {
    format!("{}-{:04x}", workspace::now_stamp(), rand::random::<u16>())
}

impl Session {
    pub fn new(opts: FixOptions, repairer: Repairer, cancel: CancellationToken) -> Self {
        Session {
            opts,
            repairer,
            cancel,
        }
    }

    /// Run the session to its end. Errors are bad input or broken
    /// machinery; a fix that was not found is an `Ok` summary. Either way
    /// the last event is [`FixEvent::Done`]: on an error its outcome is
    /// [`Outcome::Error`] with the error's `reason_code`.
    pub async fn run(
        &self,
        on_event: &(dyn Fn(&FixEvent) + Send + Sync),
    ) -> Result<Summary, FixError> {
        self.run_reporting(on_event).await.map_err(|(e, _)| e)
    }

    /// [`Session::run`], with an error's summary too: the one its `done`
    /// event carried, naming the session, failures, attempts and spend as
    /// far as they got (front ends report every ending from a summary).
    pub async fn run_reporting(
        &self,
        on_event: &(dyn Fn(&FixEvent) + Send + Sync),
    ) -> Result<Summary, (FixError, Box<Summary>)> {
        let started = Instant::now();
        let seen = std::sync::Mutex::new(Summary::error("", "", 0));
        let observed = |e: &FixEvent| {
            if let Ok(mut s) = seen.lock() {
                s.observe(e);
            }
            on_event(e);
        };
        match self.run_to_end(&observed, &seen, started).await {
            Ok(s) => Ok(s),
            Err(e) => {
                let s = Box::new(error_summary(&seen, &e, started));
                on_event(&FixEvent::Done(s.clone()));
                Err((e, s))
            }
        }
    }

    async fn run_to_end(
        &self,
        on_event: &(dyn Fn(&FixEvent) + Send + Sync),
        seen: &std::sync::Mutex<Summary>,
        started: Instant,
    ) -> Result<Summary, FixError> {
        let path = &self.opts.path;
        if !path.is_dir() {
            return Err(FixError::NotADirectory {
                path: path.clone(),
                reason: if path.exists() {
                    "not a directory".into()
                } else {
                    "no such directory".into()
                },
            });
        }
        let command = match &self.opts.test {
            Some(t) => TestCommand::custom(t),
            None => detect::detect(path)
                .ok_or_else(|| FixError::NoTestCommand { path: path.clone() })?,
        };
        let mut runner_opts = self.opts.runner.clone();
        let python = self.python_for(&command, &mut runner_opts).await?;
        // A bad template stops the session before anything is made.
        let fix_prompts =
            prompts::FixPrompts::load(self.opts.prompts.as_deref()).map_err(FixError::Prompts)?;
        let id = session_id();
        let mut ws = Workspace::create(path, &id)?;
        runner_opts.linked_ro = ws.ignored.linked.clone();
        let result = self
            .run_in(
                &mut ws,
                Setup {
                    command,
                    python,
                    prompts: fix_prompts,
                },
                &runner_opts,
                on_event,
                started,
            )
            .await;
        if !self.opts.keep_worktree
            && let Err(e) = ws.remove()
        {
            // The result matters more than a leftover temp dir.
            tracing::warn!("could not remove the work tree {}: {e}", ws.root.display());
        }
        let cleanup = match &result {
            // A fix stays on its branch; so does everything with --keep, or
            // a kept work tree (it has the branch checked out).
            Ok(s) if s.attempts > 0 => {
                if s.outcome != Outcome::Fixed && !self.opts.keep && !self.opts.keep_worktree {
                    // No fix: the log and session.json stay for `selfrepair
                    // log`, but no branch piles up per failed session.
                    ws.remove_refs()
                } else {
                    Ok(())
                }
            }
            // Stopped by an error after attempts (a model that went away):
            // the log keeps them and the error, as a failed session's does.
            Err(e) if seen.lock().is_ok_and(|s| s.attempts > 0 || s.tokens > 0) => {
                let s = error_summary(seen, e, started);
                ws.log(&log_entry(&FixEvent::Done(Box::new(s.clone()))));
                ws.info.outcome = Some(s.outcome.as_str().to_string());
                ws.info.reason = Some(s.reason);
                if self.opts.keep || self.opts.keep_worktree {
                    ws.save()
                } else {
                    ws.remove_refs()
                }
            }
            // Nothing was tried: leave no trace in the user's repository
            // (and name no session or branch that is gone).
            _ => {
                if let Ok(mut s) = seen.lock() {
                    s.session.clear();
                    s.branch.clear();
                }
                ws.discard()
            }
        };
        if let Err(e) = cleanup {
            // The summary (already sent) or the session's error matters
            // more than leftover refs, which `selfrepair prune` removes.
            tracing::warn!("could not clean up session {}: {e}", ws.info.id);
        }
        result
    }

    /// The interpreter the user means, probed in the jail, with pytest
    /// provided when it has none; `None` for runners that are not Python's.
    /// A `--test` or `make` command may or may not use Python: for those an
    /// interpreter that cannot be found or started is left out, not an error.
    async fn python_for(
        &self,
        command: &TestCommand,
        runner_opts: &mut RunnerOptions,
    ) -> Result<Option<PythonPlan>, FixError> {
        use detect::RunnerKind;
        let path = &self.opts.path;
        let pytest = command.kind == RunnerKind::Pytest;
        // A `--test` command that runs pytest gets one too when it has none.
        let needs_pytest = pytest || command.command.contains("pytest");
        if !(pytest || matches!(command.kind, RunnerKind::Make | RunnerKind::Custom)) {
            return Ok(None);
        }
        let repo_root = git2::Repository::discover(path)
            .ok()
            .and_then(|r| r.workdir().map(Path::to_path_buf))
            .unwrap_or_else(|| path.clone());
        let env = interpreter::Env::from_process();
        let found = async {
            let mut it = interpreter::find(
                path,
                &repo_root,
                runner_opts.python.as_deref(),
                self.opts.test.as_deref(),
                &env,
            )
            .await?;
            interpreter::prepare(&mut it, path, needs_pytest, &self.opts.runtime).await?;
            Ok::<_, interpreter::InterpreterError>(it)
        }
        .await;
        let it = match found {
            Ok(it) => it,
            Err(e) if pytest => return Err(e.into()),
            Err(e) => {
                tracing::warn!("no Python for `{}`: {e}", command.command);
                return Ok(None);
            }
        };
        runner_opts.python = Some(it.python.clone());
        runner_opts.python_ro = it.ro_paths.clone();
        runner_opts.python_path = it.python_path.clone();
        runner_opts.python_bin = it.bin_dir.clone();
        Ok(Some(PythonPlan {
            reason: it.describe(),
            keeps_uid: it.ro_paths.iter().any(|p| !interpreter::others_can_read(p)),
            exposed: it.ro_paths,
            python: it.python,
            source: it.source,
            provided_pytest: it.provided_pytest,
        }))
    }

    async fn run_in(
        &self,
        ws: &mut Workspace,
        setup: Setup,
        runner_opts: &RunnerOptions,
        on_event: &(dyn Fn(&FixEvent) + Send + Sync),
        started: Instant,
    ) -> Result<Summary, FixError> {
        let Setup {
            command,
            python,
            prompts: fix_prompts,
        } = setup;
        let runner = TestRunner::new(command.clone(), &ws.root, &ws.info.project_rel, runner_opts)?;
        // The client was made before the session had an id; this session's
        // calls go to its own transcript, beside its log.
        let repairer = self.repairer.recording_into(ws.state_dir())?;
        let transcript = repairer.transcript_path();
        let repairer_name = choose::describe(&repairer);
        let mut p = Progress {
            runner,
            on_event,
            attempt: 0,
            winner: None,
            runners_up: Vec::new(),
            passed_before: BTreeSet::new(),
            collected_before: BTreeSet::new(),
            tolerated: BTreeSet::new(),
            failing: Vec::new(),
            tokens: 0,
            cost: 0.0,
            prompts: fix_prompts,
            ws,
        };
        p.emit(FixEvent::Plan {
            session: p.ws.info.id.clone(),
            branch: p.ws.info.branch.clone(),
            workdir: p.ws.root.clone(),
            test_command: command.command.clone(),
            reason: command.reason.clone(),
            detected: command.detected,
            python: python.clone().map(Box::new),
            repairer: repairer_name,
            transcript,
            max_attempts: self.opts.max_attempts,
            ignored: Box::new(p.ws.ignored.clone()),
            prompts: p
                .prompts
                .references()
                .into_iter()
                .map(|t| PromptInfo {
                    name: t.name.clone(),
                    version: t.version,
                    hash: t.sha256.chars().take(12).collect(),
                })
                .collect(),
        });
        let mut baseline = p.run_tests(RunScope::Baseline, &[], &self.cancel).await?;
        p.ws.reset()?;
        // The time the suite takes without a hang, for the deadline.
        let mut baseline_time = std::time::Duration::from_millis(baseline.duration_ms);
        let hung: Vec<String> = baseline.report.failed_ids().into_iter().collect();
        if baseline.status == RunStatus::TimedOut
            && command.detected
            && command.kind == detect::RunnerKind::Pytest
            && !hung.iter().any(|h| h == "suite")
        {
            // The rest of the suite, without the test that hung: what
            // passes, what else fails, and how long a run should take.
            p.runner.set_deselect(hung);
            let rest = p.run_tests(RunScope::Rest, &[], &self.cancel).await;
            p.runner.set_deselect(Vec::new());
            let rest = rest?;
            p.ws.reset()?;
            if matches!(rest.status, RunStatus::Passed | RunStatus::Failed) {
                baseline_time = std::time::Duration::from_millis(rest.duration_ms);
                baseline.report.passed = rest.report.passed;
                baseline.report.failed.extend(rest.report.failed);
            }
        }
        p.collected_before = baseline.report.collected();
        let mut summary = Summary {
            session: p.ws.info.id.clone(),
            outcome: Outcome::NotFixed,
            reason_code: None,
            reason: String::new(),
            branch: p.ws.info.branch.clone(),
            test_command: command.command.clone(),
            initial_failures: baseline.report.failed_ids().into_iter().collect(),
            attempts: 0,
            winning_attempt: None,
            tokens: 0,
            cost_usd: 0.0,
            duration_ms: 0,
            diff: FinalDiff::default(),
            runners_up: Vec::new(),
        };
        let project = p.ws.project_dir();
        let used_python = python.as_ref().map_or_else(
            || runner_opts.python.clone().unwrap_or_default(),
            |py| py.python.clone(),
        );
        if let Some(c) = baseline::cannot_start(&baseline, command.kind, &project, &used_python) {
            return Err(FixError::CannotStart {
                command: command.command,
                cause: c.cause,
                fix: c.fix,
            });
        }
        match baseline.status {
            // A hang is a failing test (the one the stack dump names).
            RunStatus::Failed | RunStatus::TimedOut => {
                let limit = baseline::deadline(baseline_time, p.runner.timeout());
                p.runner.set_timeout(limit);
            }
            RunStatus::Passed => {
                summary.outcome = Outcome::AlreadyGreen;
                summary.reason = "the tests already pass".into();
                return Ok(self.finish(&mut p, summary, started));
            }
            RunStatus::Cancelled => {
                summary.outcome = Outcome::Cancelled;
                summary.reason = "cancelled".into();
                return Ok(self.finish(&mut p, summary, started));
            }
            // Reported by `cannot_start` above.
            RunStatus::CommandNotFound => {
                return Err(FixError::CannotStart {
                    command: command.command,
                    cause: "the test runner was not found".into(),
                    fix: "pass --test CMD".into(),
                });
            }
            RunStatus::NoTests => {
                return Err(FixError::NoTests {
                    command: command.command,
                });
            }
        }
        summary.initial_failures = baseline.report.failed_ids().into_iter().collect();
        if let Some(f) = &self.opts.focus {
            let all = baseline.report.failed_ids();
            let (mine, others): (Vec<_>, Vec<_>) = baseline
                .report
                .failed
                .drain(..)
                .partition(|t| t.id.contains(f.as_str()));
            if mine.is_empty() {
                return Err(FixError::NoMatchingTest {
                    focus: f.clone(),
                    failing: cap_list(&all.into_iter().collect::<Vec<_>>(), 10),
                });
            }
            p.tolerated = others.iter().map(|t| t.id.clone()).collect();
            baseline.report.failed = mine;
            summary.initial_failures = baseline.report.failed_ids().into_iter().collect();
        }
        match self.opts.mode {
            FixMode::Repair => {}
            FixMode::Check => {
                summary.outcome = Outcome::Reported;
                summary.reason = format!("{} failing test(s)", summary.initial_failures.len());
                return Ok(self.finish(&mut p, summary, started));
            }
            FixMode::Explain => {
                summary.outcome = Outcome::Reported;
                summary.reason = self.explain(&mut p, &repairer, &baseline.report).await?;
                return Ok(self.finish(&mut p, summary, started));
            }
        }
        p.passed_before = baseline.report.passed.iter().cloned().collect();
        p.failing = summary.initial_failures.clone();
        if p.failing.iter().any(|f| f == "suite" || f == "build") {
            // The runner cannot select these: rerun everything.
            p.failing.clear();
        }
        let reason = self.repair(&mut p, &repairer, &baseline.report).await?;
        summary.reason = reason;
        summary.outcome = match (p.winner, self.cancel.is_cancelled()) {
            (Some(_), _) => Outcome::Fixed,
            (None, true) => Outcome::Cancelled,
            (None, false) => Outcome::NotFixed,
        };
        Ok(self.finish(&mut p, summary, started))
    }

    fn finish(&self, p: &mut Progress<'_>, mut s: Summary, started: Instant) -> Summary {
        s.attempts = p.attempt;
        s.winning_attempt = p.winner;
        s.runners_up = p.runners_up.clone();
        s.tokens = p.tokens;
        s.cost_usd = p.cost;
        s.duration_ms = started.elapsed().as_millis() as u64;
        if let Some(w) = &p.ws.info.winner
            && let Ok(oid) = git2::Oid::from_str(w)
            && let Ok(d) = p.ws.diff_to(oid)
        {
            s.diff = d;
        }
        p.ws.info.outcome = Some(s.outcome.as_str().to_string());
        p.ws.info.reason = Some(s.reason.clone());
        let _ = p.ws.save();
        p.emit(FixEvent::Done(Box::new(s.clone())));
        s
    }
}
