//! Judged runs: a verdict comes from an interpreter the program never ran in.
//!
//! A test run in one interpreter can be talked into "passed": the program
//! shares it with the harness and the tests, so it can reach the comparison,
//! the recorder or the expected values (frames, `gc`, rebinding builtins,
//! `__eq__` that always holds, exiting early with a forged result). So every
//! run with tests is split in two, each in a fresh instance or process:
//!
//! 1. **compute**: the program runs on the tests' inputs only. The request
//!    holds no test code and no expected value. Its answers come back as
//!    marshal data of exact builtin types (or an exception, or a timeout).
//! 2. **judge**: the tests run without the program; each call into it is
//!    answered from those answers, rebuilt and checked as plain data.
//!
//! Whatever the program does to its own interpreter, it can only choose its
//! answers. For code tests (check/asserts) the calls are found by walking the
//! tests once (cached per suite, trusted code only); a call whose arguments
//! depend on an earlier answer is found when the judge reaches it, answered
//! in a further compute run, and judged again, up to [`MAX_ROUNDS`].
//!
//! Where every call of a suite is the whole left side of an `f(...) ==
//! expected` assert and nothing else in it can fail, the walk also notes
//! each call's expected value. A run whose answers all equal those, as data
//! ([`crate::answers::canonical`]), passes on the host without a judge run:
//! the judge would run the same asserts on the same values. Every other run
//! (an answer that differs, even one Python would call equal) is judged.

use crate::Sandbox;
use crate::outcome::{Layer, Outcome, Status, TestRecord};
use crate::request::{CallCase, CallSpec, ComputeSpec, JudgeSpec, Limits, RunRequest, TestSpec};
use crate::semantics::Guard;
use serde::Deserialize as _;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

/// Compute-then-judge rounds before a run is given up as undecidable.
pub(crate) const MAX_ROUNDS: usize = 8;

/// Walks of each suite, per sandbox kind and suite.
static WALKED: LazyLock<Mutex<HashMap<String, Arc<Walk>>>> = LazyLock::new(Mutex::default);

/// What walking a suite found: its calls, and for a suite that can fail
/// only by a wrong answer, the answers that pass it.
#[derive(Debug)]
struct Walk {
    calls: Vec<serde_json::Value>,
    expected: Option<Expected>,
}

/// A walk as the harness reported it, and as it is kept on disk.
#[derive(serde::Serialize, serde::Deserialize)]
struct WalkFile {
    calls: Vec<serde_json::Value>,
    /// One expected answer per call, with the records and passes of a run
    /// that gives them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expect: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tests: Vec<TestRecord>,
    #[serde(default)]
    passed: u32,
}

/// The answers that pass a suite (their forms), and the judge's outcome
/// when they are given.
#[derive(Debug)]
struct Expected {
    forms: Vec<Vec<u8>>,
    tests: Vec<TestRecord>,
    passed: u32,
}

/// Largest form of an expected answer: a suite expecting more is judged.
const MAX_EXPECTED: usize = 16 << 20;

impl WalkFile {
    /// The walk a judge run in `collect` mode reported; `ended`, if it ran
    /// to its end (one cut short expects nothing).
    fn found(out: Outcome, ended: bool) -> WalkFile {
        let expect = out.exchange.expect.filter(|_| ended);
        // The judge's records when every answer is as expected.
        let tests = match expect {
            Some(_) => out
                .tests
                .into_iter()
                .map(|t| TestRecord {
                    status: "passed".into(),
                    call: None,
                    actual: None,
                    expected: None,
                    message: None,
                    error: None,
                    ..t
                })
                .collect(),
            None => Vec::new(),
        };
        WalkFile {
            calls: out.exchange.needed,
            expect,
            tests,
            passed: out.passed + out.failed,
        }
    }
}

impl From<WalkFile> for Walk {
    fn from(f: WalkFile) -> Walk {
        let expected = f.expect.and_then(|answers| {
            let forms = answers
                .iter()
                .map(|a| crate::answers::canonical(a, MAX_EXPECTED))
                .collect::<Option<Vec<_>>>()?;
            (forms.len() == f.calls.len() && !forms.is_empty()).then_some(Expected {
                forms,
                tests: f.tests,
                passed: f.passed,
            })
        });
        Walk {
            calls: f.calls,
            expected,
        }
    }
}

impl Expected {
    /// Whether every answer (checked plain data, or null) is the expected one.
    fn met_by(&self, answers: &[serde_json::Value]) -> bool {
        answers.len() == self.forms.len()
            && answers.iter().zip(&self.forms).all(|(a, form)| {
                a.as_str()
                    .and_then(|a| crate::answers::canonical(a, form.len()))
                    .is_some_and(|f| f == *form)
            })
    }
}

/// Suites remembered before the map starts over.
const MAX_WALKED: usize = 4096;

/// Run `req` judged: the verdict is the judge's, the output the program's.
pub async fn run<S: Sandbox + ?Sized>(sb: &S, req: &RunRequest) -> Outcome {
    let code_tests = match &req.tests {
        TestSpec::Script | TestSpec::Compute(_) | TestSpec::Judge(_) => {
            return sb.run_unjudged(req).await;
        }
        TestSpec::Check { .. } | TestSpec::Asserts { .. } => true,
        TestSpec::Call(_) | TestSpec::Io { .. } => false,
    };
    let mut calls = Vec::new();
    let mut walked = None;
    let mut spent = 0.0;
    let started = std::time::Instant::now();
    if code_tests {
        match walk(sb, req).await {
            Ok(found) => {
                calls = found.calls.clone();
                walked = Some(found);
            }
            Err(out) => return out,
        }
    }
    // For the debug line of each round (its walk is the suite's, once).
    let walk_time = started.elapsed();
    for _ in 0..MAX_ROUNDS {
        // The program gets the whole limit to compute, and stops itself at
        // it; the sandbox's hard limit comes a little later, for the report.
        let compute = RunRequest {
            tests: TestSpec::Compute(ComputeSpec {
                deadline: Some(req.limits.timeout.as_secs_f64()),
                ..compute_spec(&req.tests, &calls)
            }),
            limits: Limits {
                timeout: req.limits.timeout + report_grace(req.limits.timeout),
                ..req.limits.clone()
            },
            ..req.clone()
        };
        let round = std::time::Instant::now();
        let mut computed = sb.run_unjudged(&compute).await;
        let compute_time = round.elapsed();
        spent += computed.duration_ms;
        let answers = computed.exchange.answers.take();
        let Some(mut answers) = answers.filter(|_| computed.status != Status::OutputLimit) else {
            // The program never got to answer: it did not load, or the run
            // itself ended (timeout, memory, crash, no sandbox). No verdict
            // can come from it but its failure.
            computed.duration_ms = spent;
            computed.limits = req.limits.clone();
            return refuse_pass(computed);
        };
        crate::answers::sanitise(&mut answers);
        if let Some(expected) = walked.as_ref().and_then(|w| w.expected.as_ref())
            && calls.len() == expected.forms.len()
            && expected.met_by(&answers)
        {
            tracing::debug!(
                compute_ms = compute_time.as_secs_f64() * 1e3,
                "every answer as expected: passed on the host"
            );
            let mut judged = Outcome::new(Status::Passed, sb.kind(), &req.limits, Vec::new());
            judged.passed = expected.passed;
            judged.tests = expected.tests.clone();
            return merge(computed, judged, spent, &req.limits, HOST_VERDICT.into());
        }
        let judge = judge_request(req, keyed(code_tests, &calls, answers), false);
        let memo = code_tests.then(|| judged_key(sb.kind(), &judge)).flatten();
        let mut judged = match memo.as_deref().and_then(recall_judged) {
            Some(out) => out,
            None => {
                let out = sb.run_trusted(&judge).await;
                if let Some(key) = memo {
                    remember_judged(key, &out);
                }
                out
            }
        };
        spent += judged.duration_ms;
        tracing::debug!(
            walk_ms = walk_time.as_secs_f64() * 1e3,
            compute_ms = compute_time.as_secs_f64() * 1e3,
            judge_ms = (round.elapsed() - compute_time).as_secs_f64() * 1e3,
            "judged round"
        );
        if judged.exchange.incomplete {
            let needed = std::mem::take(&mut judged.exchange.needed);
            if !needed.is_empty() && needed.iter().all(|c| is_new(&calls, c)) {
                calls.extend(needed);
                continue;
            }
            // The judge asked again for a call the program was given: its
            // run did not answer everything it was asked (it stopped at its
            // deadline, or wrote its own report).
            let mut out = refuse_pass(computed);
            if out.status != Status::Timeout {
                out.status = Status::Failed;
                out.reason =
                    Some("the program's run did not answer every call of the tests".into());
            }
            out.duration_ms = spent;
            out.limits = req.limits.clone();
            return out;
        }
        let by = format!(
            "verdict from a separate {} run that never executed the program",
            judged.sandbox.name()
        );
        return merge(computed, judged, spent, &req.limits, by);
    }
    let mut out = Outcome::new(Status::Error, sb.kind(), &req.limits, Vec::new());
    out.duration_ms = spent;
    out.with_status(
        Status::Error,
        format!(
            "the tests' calls depend on the program's own answers more than {MAX_ROUNDS} levels deep"
        ),
    )
}

/// The calls a suite makes, found by running it with no answers at all
/// (trusted code only: the program is not in this run).
async fn walk<S: Sandbox + ?Sized>(sb: &S, req: &RunRequest) -> Result<Arc<Walk>, Outcome> {
    let suite = serde_json::to_string(&req.tests).unwrap_or_default();
    let hash = selfrepair_store::sha256_bytes(
        format!("{suite}\0{}", top_level_defs(&req.program)).as_bytes(),
    );
    let key = format!("{}:{hash}", sb.kind());
    if let Some(found) = WALKED.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(found);
    }
    if let Some(found) = sb
        .walks()
        .and_then(|w| w.get(&hash))
        .and_then(|v| WalkFile::deserialize(v.as_ref()).ok())
        .map(Walk::from)
    {
        return Ok(remember_walk(key, found));
    }
    let out = sb.run_trusted(&judge_request(req, Vec::new(), true)).await;
    // A suite that cannot be walked (it does not parse, its context raises)
    // says so in its own outcome; a sandbox that could not run is the same.
    if out.error.is_some()
        && out.exchange.needed.is_empty()
        && !matches!(out.status, Status::Failed | Status::Passed)
    {
        return Err(refuse_pass(out));
    }
    if out.status == Status::Unavailable {
        return Ok(Arc::new(Walk {
            calls: out.exchange.needed,
            expected: None,
        }));
    }
    // Only a walk that ran to its end is kept: one cut short would cost
    // every later run a round per call it missed.
    let ended = matches!(out.status, Status::Passed | Status::Failed | Status::Error);
    let found = WalkFile::found(out, ended);
    if ended
        && let Some(w) = sb.walks()
        && let Ok(v) = serde_json::to_value(&found)
    {
        w.insert(hash, Arc::new(v));
    }
    Ok(remember_walk(key, Walk::from(found)))
}

/// Verdicts of judge runs, by their whole request: a judge runs only our
/// tests on plain data (random seeded), so the same request is the same
/// verdict. Samples that answer alike (the same program drawn twice, at
/// N = 20 often) are judged once.
static JUDGED: LazyLock<Mutex<HashMap<String, Outcome>>> = LazyLock::new(Mutex::default);

/// Judge requests remembered before the map starts over.
const MAX_JUDGED: usize = 4096;

/// The memo key of a judge request of code tests (small: the suite, the
/// program's text and its answers); `None` if it cannot be written.
fn judged_key(kind: crate::SandboxKind, judge: &RunRequest) -> Option<String> {
    let text = serde_json::to_string(judge).ok()?;
    Some(selfrepair_store::sha256_bytes(
        format!("{kind}\0{text}").as_bytes(),
    ))
}

/// A remembered verdict, as a run that took no time.
fn recall_judged(key: &str) -> Option<Outcome> {
    let mut out = JUDGED.lock().ok()?.get(key).cloned()?;
    out.duration_ms = 0.0;
    Some(out)
}

/// Remember a judge run's verdict if it is one: a run that ended on its own
/// (passed or failed), not one cut by a limit or asking for more answers.
fn remember_judged(key: String, out: &Outcome) {
    if out.exchange.incomplete || !matches!(out.status, Status::Passed | Status::Failed) {
        return;
    }
    if let Ok(mut m) = JUDGED.lock() {
        if m.len() >= MAX_JUDGED {
            m.clear();
        }
        m.insert(key, out.clone());
    }
}

/// Keep a suite's walk for this process's later runs.
fn remember_walk(key: String, found: Walk) -> Arc<Walk> {
    let found = Arc::new(found);
    if let Ok(mut m) = WALKED.lock() {
        if m.len() >= MAX_WALKED {
            m.clear();
        }
        m.insert(key, Arc::clone(&found));
    }
    found
}

/// The functions and classes a program defines at its top level, as a
/// walk's cache key: the walk depends on them only where the program
/// shadows a builtin the tests call. A guess from the text is enough, since
/// a wrong one costs a round, never a verdict.
fn top_level_defs(program: &str) -> String {
    let mut names: Vec<&str> = program
        .lines()
        .filter_map(|l| {
            let rest = l
                .strip_prefix("def ")
                .or_else(|| l.strip_prefix("async def "))
                .or_else(|| l.strip_prefix("class "))?;
            rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names.join(",")
}

/// Whether `call` (its `n`-th occurrence of that name and arguments) is
/// one the program has not been asked yet.
fn is_new(calls: &[serde_json::Value], call: &serde_json::Value) -> bool {
    let same = |c: &&serde_json::Value| {
        c["name"] == call["name"] && c["get"] == call["get"] && c["canon"] == call["canon"]
    };
    let asked = calls.iter().filter(same).count() as u64;
    call["n"].as_u64().is_some_and(|n| n >= asked)
}

/// The compute half of `tests`: the inputs, never the expectations.
fn compute_spec(tests: &TestSpec, calls: &[serde_json::Value]) -> ComputeSpec {
    match tests {
        TestSpec::Call(c) => {
            let call = CallSpec {
                fn_name: c.fn_name.clone(),
                class_name: c.class_name.clone(),
                cases: c.cases.iter().map(CallCase::inputs_only).collect(),
                compare: c.compare,
                atol: 0.0,
                oracle: None,
                time_limits: c.time_limits.clone(),
            };
            ComputeSpec {
                call: Some(call),
                ..ComputeSpec::default()
            }
        }
        TestSpec::Io { cases, .. } => ComputeSpec {
            inputs: Some(cases.iter().map(|c| c.input.clone()).collect()),
            ..ComputeSpec::default()
        },
        TestSpec::Asserts { setup, .. } => ComputeSpec {
            calls: calls.iter().map(call_request).collect(),
            setup: setup.clone(),
            ..ComputeSpec::default()
        },
        _ => ComputeSpec {
            calls: calls.iter().map(call_request).collect(),
            ..ComputeSpec::default()
        },
    }
}

/// What the compute run needs of a call: its name and arguments.
fn call_request(call: &serde_json::Value) -> serde_json::Value {
    let mut c = call.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("canon");
    }
    c
}

/// The judge's answer table: keyed by call for code tests, else by case.
fn keyed(
    code_tests: bool,
    calls: &[serde_json::Value],
    answers: Vec<serde_json::Value>,
) -> Vec<serde_json::Value> {
    if !code_tests {
        return answers;
    }
    calls
        .iter()
        .zip(answers)
        .map(|(c, a)| serde_json::json!([c["name"], c["get"], c["canon"], a]))
        .collect()
}

/// A judge run of `req`'s tests with `answers`; `collect` walks them for
/// their calls instead, going on past every unanswered one. The judge parses
/// the program for the names it defines (a builtin it shadows is its own);
/// it never runs it.
fn judge_request(req: &RunRequest, answers: Vec<serde_json::Value>, collect: bool) -> RunRequest {
    RunRequest {
        program: req.program.clone(),
        tests: TestSpec::Judge(Box::new(JudgeSpec {
            tests: req.tests.clone(),
            answers,
            collect,
        })),
        stdin: String::new(),
        limits: judge_limits(&req.limits),
        fast_fail: req.fast_fail && !collect,
        guard: Guard::None,
        budget: None,
    }
}

/// Time past a compute run's own deadline for it to start and report.
fn report_grace(limit: Duration) -> Duration {
    (limit / 5).clamp(Duration::from_millis(300), Duration::from_secs(1))
}

/// The judge runs only the tests, so the program's limits would be wrong
/// both ways: too tight for a suite of hundreds of comparisons, and the
/// program's budget is not the judge's.
fn judge_limits(limits: &Limits) -> Limits {
    Limits {
        timeout: limits.timeout.max(Duration::from_secs(10)),
        memory_mb: limits.memory_mb.max(1024),
        max_output: limits.max_output,
        test_timeout: None,
    }
}

/// A compute run's outcome as the verdict: never "passed", since no test ran.
fn refuse_pass(mut out: Outcome) -> Outcome {
    if out.status == Status::Passed {
        out.status = Status::Error;
        out.reason = Some("the tests were not judged".into());
    }
    out
}

/// How a run whose answers were all as expected is judged.
const HOST_VERDICT: &str = "verdict on the host: every answer equal, as data, to the value its \
     test expects (found by walking the tests without the program)";

/// The verdict of `judged` (given `by` whom), with what the program printed
/// and how it ran.
fn merge(computed: Outcome, judged: Outcome, spent: f64, limits: &Limits, by: String) -> Outcome {
    let mut out = judged;
    if out.status == Status::Crashed || (out.status == Status::Error && out.tests.is_empty()) {
        // The judge itself failed: say so, with the judge's reason.
        let why = out
            .error
            .as_ref()
            .map(|e| format!("{}: {}", e.kind, e.message))
            .or(out.reason.clone())
            .unwrap_or_else(|| out.status.to_string());
        out.reason = Some(format!("the judge could not decide: {why}"));
    }
    out.stdout = computed.stdout;
    out.stderr = computed.stderr;
    out.duration_ms = spent;
    out.limits = limits.clone();
    out.over_budget = computed.over_budget;
    out.sandbox = computed.sandbox;
    out.layers = computed.layers;
    out.layers.push(Layer::on("judge", by));
    out
}
