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
pub mod runner;
pub mod textparse;
pub mod workspace;

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

/// What one model call gave: an answer, or why there is none. Typed so
/// that a budget stop is never taken for a cancel, nor either for an answer.
enum Asked {
    Answer(String),
    Stopped(Stop),
}

/// Why a model step stopped the session without an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// A budget is spent (the `rejected` event says which).
    Budget,
    Cancelled,
}

/// A test-run result with the session's bookkeeping.
enum Verdict {
    Accepted,
    Rejected(String, Option<TestReport>),
    Cancelled,
}

/// Extra mutants of the first passing one's line tried after it, to prefer
/// the smallest plausible fix there and show the others.
const RUNNERS_UP: usize = 3;

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

struct Progress<'a> {
    ws: &'a mut Workspace,
    runner: TestRunner,
    on_event: &'a (dyn Fn(&FixEvent) + Send + Sync),
    attempt: usize,
    winner: Option<usize>,
    /// Candidates that passed but were not chosen.
    runners_up: Vec<String>,
    passed_before: BTreeSet<String>,
    /// Every test id the baseline run collected: a fix may not shrink it.
    collected_before: BTreeSet<String>,
    /// Baseline failures outside `--focus`: they may stay red.
    tolerated: BTreeSet<String>,
    failing: Vec<String>,
    tokens: u64,
    cost: f64,
    prompts: prompts::FixPrompts,
}

impl Progress<'_> {
    fn emit(&self, e: FixEvent) {
        self.ws.log(&log_entry(&e));
        (self.on_event)(&e);
    }

    async fn run_tests(
        &self,
        scope: RunScope,
        only: &[String],
        cancel: &CancellationToken,
    ) -> Result<TestRun, FixError> {
        // The failing tests alone stop at the first that still fails.
        let until_failure = scope == RunScope::Failing;
        self.emit(FixEvent::TestRunStarted {
            attempt: self.attempt,
            scope,
            command: if until_failure {
                self.runner.command_line_until_failure(only)
            } else {
                self.runner.command_line(only)
            },
        });
        let run = if until_failure {
            self.runner.run_until_failure(only, cancel).await?
        } else {
            self.runner.run(only, cancel).await?
        };
        self.emit(FixEvent::TestRunFinished {
            attempt: self.attempt,
            scope,
            run: Box::new(run.clone()),
        });
        Ok(run)
    }

    /// Write a candidate, commit it as an attempt, and test it: the failing
    /// tests first, then the whole suite. The work copy is back at the
    /// base afterwards. The verdict, and the attempt's commit if it was made.
    async fn try_candidate(
        &mut self,
        files: &BTreeMap<String, String>,
        description: &str,
        cancel: &CancellationToken,
    ) -> Result<(Verdict, Option<git2::Oid>), FixError> {
        if let Err(e) = self.ws.write(files) {
            self.ws.reset()?;
            let reason = e.to_string();
            self.emit(FixEvent::Rejected {
                attempt: self.attempt,
                reason: reason.clone(),
            });
            return Ok((Verdict::Rejected(reason, None), None));
        }
        let oid = self.ws.commit(
            &format!("attempt {}: {description}", self.attempt),
            Some(self.attempt),
            false,
        )?;
        let diff = self.ws.diff_to(oid)?;
        self.emit(FixEvent::Patch {
            attempt: self.attempt,
            description: description.to_string(),
            diff: diff.unified,
            files: diff.files,
        });
        let verdict = self.validate(cancel).await;
        // Anything the tests changed in tracked files is discarded with the attempt.
        let tampered = self.ws.modified_tracked()?;
        self.ws.reset()?;
        let verdict = match verdict? {
            Verdict::Accepted if !tampered.is_empty() => Verdict::Rejected(
                format!(
                    "the test run modified tracked files: {}",
                    tampered.join(", ")
                ),
                None,
            ),
            v => v,
        };
        match &verdict {
            // The first to pass wins unless the caller prefers another.
            Verdict::Accepted if self.winner.is_none() => {
                self.ws.set_winner(oid)?;
                self.winner = Some(self.attempt);
            }
            Verdict::Accepted => {}
            Verdict::Rejected(reason, _) => self.emit(FixEvent::Rejected {
                attempt: self.attempt,
                reason: reason.clone(),
            }),
            Verdict::Cancelled => {}
        }
        Ok((verdict, Some(oid)))
    }

    async fn validate(&mut self, cancel: &CancellationToken) -> Result<Verdict, FixError> {
        let failing = self.failing.clone();
        // Only worth a separate run when the runner can select tests.
        if self.runner.command_line(&failing) != self.runner.command_line(&[]) {
            let quick = self.run_tests(RunScope::Failing, &failing, cancel).await?;
            match quick.status {
                RunStatus::Cancelled => return Ok(Verdict::Cancelled),
                RunStatus::Passed | RunStatus::NoTests => {}
                _ => {
                    return Ok(Verdict::Rejected(still_failing(&quick), Some(quick.report)));
                }
            }
        }
        let full = self.run_tests(RunScope::Full, &[], cancel).await?;
        let only_tolerated = full.status == RunStatus::Failed
            && !self.tolerated.is_empty()
            && full
                .report
                .failed_ids()
                .iter()
                .all(|id| self.tolerated.contains(id));
        if full.status == RunStatus::Cancelled {
            return Ok(Verdict::Cancelled);
        }
        // --focus: the other tests that failed before may still fail.
        if full.status == RunStatus::Passed || only_tolerated {
            // Green is not enough: the tests that passed must pass again, by
            // id, and no test may have gone missing (deselected, skipped,
            // no longer collected).
            return Ok(match self.lost_tests(&full.report) {
                Some(reason) => Verdict::Rejected(reason, Some(full.report)),
                None => Verdict::Accepted,
            });
        }
        let broken: Vec<String> = full
            .report
            .failed_ids()
            .into_iter()
            .filter(|id| self.passed_before.contains(id))
            .collect();
        let reason = if broken.is_empty() {
            still_failing(&full)
        } else {
            format!(
                "breaks tests that passed before: {}",
                cap_list(&broken, IDS_SHOWN)
            )
        };
        Ok(Verdict::Rejected(reason, Some(full.report)))
    }
}

impl Progress<'_> {
    /// Why a run that looks green is still not a fix: a test that passed at
    /// baseline did not pass, or tests the baseline ran are gone.
    fn lost_tests(&self, report: &TestReport) -> Option<String> {
        let passed: BTreeSet<&str> = report.passed.iter().map(String::as_str).collect();
        let not_passing: Vec<&str> = self
            .passed_before
            .iter()
            .map(String::as_str)
            .filter(|id| !failures::PSEUDO_IDS.contains(id) && !passed.contains(id))
            .collect();
        let collected = report.collected();
        // Only a complete report can show that tests went missing (a
        // `--test` command's output may name just its failures).
        let gone: Vec<&str> = if self.runner.reports_every_test() {
            self.collected_before
                .difference(&collected)
                .map(String::as_str)
                .collect()
        } else {
            Vec::new()
        };
        let list = |v: &[&str]| cap_list(v, IDS_SHOWN);
        if !gone.is_empty() {
            return Some(format!(
                "the run collected fewer tests than the baseline ({} of {}); gone: {}",
                collected.len(),
                self.collected_before.len(),
                list(&gone)
            ));
        }
        if !not_passing.is_empty() {
            return Some(format!(
                "tests that passed before did not pass (skipped or not run): {}",
                list(&not_passing)
            ));
        }
        None
    }
}

fn still_failing(run: &TestRun) -> String {
    match run.status {
        RunStatus::TimedOut => "the tests ran past the timeout".into(),
        _ => {
            let ids: Vec<String> = run.report.failed_ids().into_iter().collect();
            let verb = if ids.len() == 1 { "fails" } else { "fail" };
            format!(
                "{} still {verb}: {}",
                n_tests(ids.len()),
                cap_list(&ids, IDS_SHOWN)
            )
        }
    }
}

/// `1 test`, `56 tests`.
fn n_tests(n: usize) -> String {
    if n == 1 {
        "1 test".into()
    } else {
        format!("{n} tests")
    }
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

    /// Propose and validate candidates until one passes or we must stop;
    /// returns why it stopped.
    /// Explain the (focused) failures: by the model's explain prompt, or,
    /// without a model, from the failures' messages and frames.
    async fn explain(
        &self,
        p: &mut Progress<'_>,
        repairer: &Repairer,
        report: &TestReport,
    ) -> Result<String, FixError> {
        p.attempt += 1;
        let text = match repairer {
            Repairer::Model { client, .. } => {
                let project = p.ws.project_dir();
                let focus = context::focus(&project, &report.failed);
                let code = context::render_snippets(&focus.snippets, self.opts.context_tokens);
                let map = context::repo_map(&project, self.opts.map_tokens);
                let messages = p.prompts.explain.render(&[
                    ("command", &p.runner.command().command),
                    ("failures", &crate::feedback::render_report(report)),
                    ("context", &code),
                    ("repo_map", &map),
                ]);
                match self.ask(p, client, &messages).await? {
                    Asked::Answer(t) => t,
                    Asked::Stopped(why) => return Ok(stop_reason(p, why)),
                }
            }
            Repairer::Mutate => format!(
                "No model is configured, so here is what the test run says:\n{}",
                crate::feedback::render_report(report)
            ),
        };
        p.emit(FixEvent::Explanation {
            attempt: p.attempt,
            text,
        });
        Ok("explained; nothing was changed".into())
    }

    async fn repair(
        &self,
        p: &mut Progress<'_>,
        repairer: &Repairer,
        baseline: &TestReport,
    ) -> Result<String, FixError> {
        let project = p.ws.project_dir();
        let focus = context::focus(&project, &baseline.failed);
        let (mutants_cap, model) = match repairer {
            Repairer::Mutate => (self.opts.max_attempts, None),
            Repairer::Model {
                client,
                mutate_first,
            } => (
                if *mutate_first {
                    self.opts.mutate_cap
                } else {
                    0
                },
                Some(client.clone()),
            ),
        };
        if mutants_cap > 0 {
            let reason = self.mutation_loop(p, &focus, mutants_cap).await?;
            if model.is_none() || p.winner.is_some() || self.cancel.is_cancelled() {
                return Ok(reason);
            }
        }
        let Some(client) = model else {
            return Ok("nothing to try".into());
        };
        self.model_loop(p, &client, baseline, &focus).await
    }

    /// Validate mutants, most suspicious first, up to `cap`. When coverage
    /// ranked them, up to [`RUNNERS_UP`] more mutants of the first passing
    /// one's line are tried after it, and the fix a reviewer would rather
    /// take wins: the most suspicious line, then the smallest change, then
    /// the first found. The others are named as runners-up.
    async fn mutation_loop(
        &self,
        p: &mut Progress<'_>,
        focus: &context::Focus,
        cap: usize,
    ) -> Result<String, FixError> {
        let project = p.ws.project_dir();
        let suspicion = self.localise(p).await?;
        let name = |m: &mutate::Mutant| format!("{}:{} {}", m.file, m.line, m.description);
        let mut passed: Vec<(mutate::Mutant, usize, git2::Oid)> = Vec::new();
        let mut tried = 0;
        let mut candidates = mutate::candidates(&project, focus, suspicion.as_ref());
        while tried < cap {
            let Some(m) = candidates.next() else { break };
            if self.cancel.is_cancelled() {
                return Ok("cancelled".into());
            }
            tried += 1;
            p.attempt += 1;
            let files = BTreeMap::from([(m.file.clone(), m.new_text.clone())]);
            let desc = name(&m);
            match p.try_candidate(&files, &desc, &self.cancel).await? {
                (Verdict::Accepted, Some(oid)) => {
                    if passed.is_empty() {
                        // Ranked by coverage: the runners-up are the next
                        // mutants of this line, at most RUNNERS_UP of them.
                        if m.score == 0.0 {
                            passed.push((m, p.attempt, oid));
                            break;
                        }
                        candidates.keep_line(&m.file, m.line, RUNNERS_UP);
                    }
                    passed.push((m, p.attempt, oid));
                }
                (Verdict::Cancelled, _) => return Ok("cancelled".into()),
                _ => {}
            }
        }
        let Some(best) = (0..passed.len()).min_by(|&a, &b| {
            let (x, y) = (&passed[a].0, &passed[b].0);
            y.score
                .total_cmp(&x.score)
                .then(x.size.cmp(&y.size))
                .then(a.cmp(&b))
        }) else {
            return Ok(if tried < cap {
                format!("no mutant of the {tried} candidates passes the tests")
            } else {
                format!("no mutant passes within the cap of {cap} (raise --max-attempts)")
            });
        };
        let (m, attempt, oid) = &passed[best];
        if p.winner != Some(*attempt) {
            p.ws.set_winner(*oid)?;
            p.winner = Some(*attempt);
        }
        p.runners_up = passed
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != best)
            .map(|(_, (m, a, _))| format!("attempt {a}: {}", name(m)))
            .collect();
        let mut reason = format!("mutant {} passes every test", name(m));
        if !p.runners_up.is_empty() {
            reason.push_str(&format!(
                "; {} other plausible fix(es) also pass (runners-up: {})",
                p.runners_up.len(),
                p.runners_up.join("; ")
            ));
        }
        Ok(reason)
    }

    /// Fault localisation: the suite once under coverage (pytest only);
    /// `None` when the runner cannot or the run gave nothing usable.
    async fn localise(&self, p: &mut Progress<'_>) -> Result<Option<Suspicion>, FixError> {
        let covered = p.runner.run_covered(&self.cancel).await;
        // Whatever the covered run did to the work copy is undone.
        p.ws.reset()?;
        let Some((run, data)) = covered? else {
            return Ok(None);
        };
        let failing: BTreeSet<String> = p.failing.iter().cloned().collect();
        let Some(s) = Suspicion::ochiai(&data, &failing, &p.passed_before) else {
            return Ok(None);
        };
        p.emit(FixEvent::Localised {
            duration_ms: run.duration_ms,
            lines: s.top(10).to_vec(),
        });
        Ok(Some(s))
    }

    async fn model_loop(
        &self,
        p: &mut Progress<'_>,
        client: &Client,
        baseline: &TestReport,
        focus: &context::Focus,
    ) -> Result<String, FixError> {
        let project = p.ws.project_dir();
        let format = self
            .opts
            .edit_format
            .unwrap_or_else(|| EditFormat::for_model(client));
        // An in-process model reads every prompt token on this CPU: give it
        // the code the tests reach and a short map, not a whole budget.
        let (context_tokens, map_tokens) = if crate::model::Model::in_process(client) {
            (
                self.opts.context_tokens.min(1500),
                self.opts.map_tokens.min(200),
            )
        } else {
            (self.opts.context_tokens, self.opts.map_tokens)
        };
        let code = context::render_snippets(&focus.snippets, context_tokens);
        let map = context::repo_map(&project, map_tokens);
        let template = match format {
            EditFormat::SearchReplace => p.prompts.patch.clone(),
            EditFormat::Function => p.prompts.patch_function.clone(),
        };
        let under_repair: Vec<(String, String)> = focus
            .snippets
            .iter()
            .map(|s| s.file.clone())
            .filter(|f| !patch::is_test_file(f))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter_map(|f| p.ws.read(&f).map(|t| (f, t)))
            .collect();
        let tests_rule = if self.opts.allow_test_edits {
            "You may edit test files if they are wrong."
        } else {
            "Test files are read-only: fix the code under test, never the tests."
        };
        let mut report = baseline.clone();
        let mut feedback = String::new();
        let mut last_signature = baseline.signature();
        let mut seen_replies: BTreeSet<String> = BTreeSet::new();
        let mut model_attempts = 0;
        while model_attempts < self.opts.max_attempts {
            if self.cancel.is_cancelled() {
                return Ok("cancelled".into());
            }
            model_attempts += 1;
            p.attempt += 1;
            let mut messages = p.prompts.explain.render(&[
                ("command", &p.runner.command().command),
                ("failures", &crate::feedback::render_report(&report)),
                ("context", &code),
                ("repo_map", &map),
            ]);
            let explanation = match self.ask(p, client, &messages).await? {
                Asked::Answer(t) => t,
                Asked::Stopped(why) => return Ok(stop_reason(p, why)),
            };
            p.emit(FixEvent::Explanation {
                attempt: p.attempt,
                text: explanation.clone(),
            });
            messages.push(Message::assistant(explanation));
            messages.push(Message::user(template.render_user(&[
                ("test_files_rule", tests_rule),
                ("feedback", &feedback),
            ])));
            let reply = match self.ask(p, client, &messages).await? {
                Asked::Answer(t) => t,
                Asked::Stopped(why) => return Ok(stop_reason(p, why)),
            };
            if !seen_replies.insert(reply.trim().to_string()) {
                p.emit(FixEvent::Rejected {
                    attempt: p.attempt,
                    reason: "the model repeated an earlier patch".into(),
                });
                return Ok("the model keeps repeating itself (the same patch twice)".into());
            }
            let edits = match format {
                EditFormat::SearchReplace => patch::parse(&reply),
                // SEARCH/REPLACE blocks in the reply are taken as they are.
                EditFormat::Function => {
                    patch::parse(&reply).or_else(|_| function_edit::parse(&reply, &under_repair))
                }
            };
            let files = edits.and_then(|edits| {
                patch::apply(&edits, self.opts.allow_test_edits, |f| p.ws.read(f))
            });
            let files = match files {
                Ok(f) => f,
                Err(e) => {
                    p.emit(FixEvent::Rejected {
                        attempt: p.attempt,
                        reason: e.to_string(),
                    });
                    feedback = format!("Your previous patch was not applied: {e}. Try again.");
                    continue;
                }
            };
            match p
                .try_candidate(&files, "model patch", &self.cancel)
                .await?
                .0
            {
                Verdict::Accepted => return Ok("the model's patch passes every test".into()),
                Verdict::Cancelled => return Ok("cancelled".into()),
                Verdict::Rejected(reason, new_report) => {
                    feedback = format!(
                        "Your previous patch was applied and tested, then rolled back: {reason}. The code is as before; try a different fix."
                    );
                    if let Some(r) = new_report {
                        let sig = r.signature();
                        if sig == last_signature && model_attempts > 1 {
                            return Ok(format!(
                                "the same failure repeats after attempt {}",
                                p.attempt
                            ));
                        }
                        last_signature = sig;
                        if !r.failed.is_empty() {
                            report = r;
                        }
                    }
                }
            }
        }
        Ok(format!("no fix within {} attempts", self.opts.max_attempts))
    }

    /// One model call: its answer, or a budget or cancel stop. The session
    /// id tags the call for per-session budgets; it is not part of the
    /// request's fingerprint, so a replay (a new session) finds it.
    async fn ask(
        &self,
        p: &mut Progress<'_>,
        client: &Client,
        messages: &[Message],
    ) -> Result<Asked, FixError> {
        let req = ChatRequest::new(messages.to_vec()).with_task(p.ws.info.id.clone());
        match client.complete_with_cancel(&req, &self.cancel).await {
            Ok(c) => {
                p.tokens += c.usage.prompt_tokens + c.usage.completion_tokens;
                p.cost += c.cost_usd;
                p.emit(FixEvent::Usage {
                    tokens: p.tokens,
                    cost_usd: p.cost,
                });
                Ok(Asked::Answer(c.text().to_string()))
            }
            Err(ModelError::Cancelled) => Ok(Asked::Stopped(Stop::Cancelled)),
            Err(e) if e.is_budget_exceeded() => {
                p.emit(FixEvent::Rejected {
                    attempt: p.attempt,
                    reason: e.to_string(),
                });
                Ok(Asked::Stopped(Stop::Budget))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The session's reason for ending at a model step that stopped.
fn stop_reason(p: &Progress<'_>, why: Stop) -> String {
    match why {
        Stop::Cancelled => "cancelled".into(),
        Stop::Budget => format!("budget reached after {} tokens (${:.4})", p.tokens, p.cost),
    }
}
