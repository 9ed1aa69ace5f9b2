//! The validator: a candidate patch is written, committed and judged by the
//! tests (the failing ones first, then the whole suite); it is accepted only
//! if every test that passed at baseline passes again, by id, and none went
//! missing. Every proposer's candidates go through here.

use super::*;

/// A test-run result with the session's bookkeeping.
pub(super) enum Verdict {
    Accepted,
    Rejected(String, Option<TestReport>),
    Cancelled,
}

pub(super) struct Progress<'a> {
    pub(super) ws: &'a mut Workspace,
    pub(super) runner: TestRunner,
    pub(super) on_event: &'a (dyn Fn(&FixEvent) + Send + Sync),
    pub(super) attempt: usize,
    pub(super) winner: Option<usize>,
    /// Candidates that passed but were not chosen.
    pub(super) runners_up: Vec<String>,
    pub(super) passed_before: BTreeSet<String>,
    /// Every test id the baseline run collected: a fix may not shrink it.
    pub(super) collected_before: BTreeSet<String>,
    /// Baseline failures outside `--focus`: they may stay red.
    pub(super) tolerated: BTreeSet<String>,
    pub(super) failing: Vec<String>,
    pub(super) tokens: u64,
    pub(super) cost: f64,
    pub(super) prompts: prompts::FixPrompts,
}

impl Progress<'_> {
    pub(super) fn emit(&self, e: FixEvent) {
        self.ws.log(&log_entry(&e));
        (self.on_event)(&e);
    }

    pub(super) async fn run_tests(
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
    pub(super) async fn try_candidate(
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

    pub(super) async fn validate(
        &mut self,
        cancel: &CancellationToken,
    ) -> Result<Verdict, FixError> {
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
    pub(super) fn lost_tests(&self, report: &TestReport) -> Option<String> {
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
