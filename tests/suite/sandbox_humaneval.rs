//! Every HumanEval canonical solution passes in every sandbox, and broken
//! variants fail with the right assertion and the actual and expected values.

use super::common;

use selfrepair::sandbox::{Guard, Limits, RunRequest, SandboxKind, Status, TestSpec};
use std::time::Duration;

fn request(task: &serde_json::Value, body: &str) -> RunRequest {
    let s = |k: &str| {
        task[k]
            .as_str()
            .unwrap_or_else(|| panic!("field {k}"))
            .to_string()
    };
    let mut req = RunRequest::new(
        format!("{}{}", s("prompt"), body),
        TestSpec::Check {
            code: s("test"),
            entry_point: Some(s("entry_point")),
            context: s("prompt"),
        },
    );
    req.guard = Guard::HumanEval;
    req.limits = Limits {
        timeout: Duration::from_secs(20),
        ..Limits::default()
    };
    req
}

/// Every `step`th canonical solution passes in `kind`.
async fn canonical_all_pass(kind: SandboxKind, step: usize) {
    let sb = common::sandbox(kind).await;
    let tasks = common::humaneval();
    assert_eq!(tasks.len(), 164);
    let mut failures = Vec::new();
    for t in tasks.iter().step_by(step) {
        let out = sb
            .run(&request(
                t,
                t["canonical_solution"].as_str().unwrap_or_default(),
            ))
            .await;
        if out.status != Status::Passed {
            failures.push(format!("{}: {}", t["task_id"], out.summary()));
        }
    }
    assert!(
        failures.is_empty(),
        "{kind}: {} of {} failed:\n{}",
        failures.len(),
        tasks.len().div_ceil(step),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canonical_pass_in_fast_wasm() {
    canonical_all_pass(SandboxKind::Wasm, 1).await;
}

/// The full runtime starts CPython whole three times a task (walk, compute,
/// judge: about 0.9 s here), so every fourth task; all 164 pass there too
/// (`selfrepair eval --sandbox wasm-full` on the canonical samples).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canonical_pass_in_full_wasm() {
    canonical_all_pass(SandboxKind::WasmFull, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canonical_pass_in_process() {
    canonical_all_pass(SandboxKind::Process, 1).await;
}

/// Break the first 20 canonical solutions by returning a sentinel; the first
/// assertion must fail with the call, `actual` = the sentinel, and an expected value.
async fn broken_variants_report(kind: SandboxKind) {
    let sb = common::sandbox(kind).await;
    for t in common::humaneval().iter().take(20) {
        let entry = t["entry_point"].as_str().unwrap_or_default();
        // An early return makes the original body unreachable.
        let body = format!(
            "    return 'SENTINEL'\n{}",
            t["canonical_solution"].as_str().unwrap_or_default()
        );
        let out = sb.run(&request(t, &body)).await;
        assert_eq!(
            out.status,
            Status::Failed,
            "{kind} {}: {}",
            t["task_id"],
            out.summary()
        );
        let f = out
            .first_failure()
            .unwrap_or_else(|| panic!("{} has no failing record", t["task_id"]));
        let msg = f.message.clone().unwrap_or_default();
        assert!(
            f.source.starts_with("assert"),
            "{}: source {:?}",
            t["task_id"],
            f.source
        );
        // Either an equality (actual shown) or an exception from using the sentinel.
        if f.status == "failed" {
            assert_eq!(
                f.actual.as_deref(),
                Some("'SENTINEL'"),
                "{}: {msg}",
                t["task_id"]
            );
            assert!(f.expected.is_some(), "{}: {msg}", t["task_id"]);
            assert!(
                msg.contains(entry) || msg.contains("candidate"),
                "{}: {msg}",
                t["task_id"]
            );
        } else {
            assert_eq!(f.status, "error", "{}: {msg}", t["task_id"]);
            assert!(f.error.is_some(), "{}: {msg}", t["task_id"]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_variants_fail_with_actual_and_expected() {
    for kind in SandboxKind::ALL {
        broken_variants_report(kind).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_message_is_exact() {
    let prog = "def add(a, b):\n    return a - b\n";
    let tests = "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate([1], [2]) == [1, 2]\n";
    for kind in SandboxKind::ALL {
        let sb = common::sandbox(kind).await;
        let req = RunRequest::new(
            prog,
            TestSpec::Check {
                code: tests.into(),
                entry_point: Some("add".into()),
                context: String::new(),
            },
        );
        let out = sb.run(&req).await;
        assert_eq!(out.status, Status::Failed, "{kind}");
        let f = out.first_failure().expect("a failure");
        assert_eq!(
            f.message.as_deref(),
            Some("candidate(1, 2) returned -1, expected 3"),
            "{kind}"
        );
        assert_eq!(f.line, Some(2));
        assert_eq!(f.source, "assert candidate(1, 2) == 3");

        // Keep going: the second assertion raises, with a traceback into the solution.
        let mut req = req.clone();
        req.fast_fail = false;
        let out = sb.run(&req).await;
        assert_eq!(out.tests.len(), 2, "{kind}: {:?}", out.tests);
        let e = out.tests[1].error.as_ref().expect("an exception record");
        assert_eq!(e.kind, "TypeError");
        assert_eq!(e.line, Some(2), "{kind}: the line in the solution");
        assert!(
            e.traceback
                .iter()
                .any(|f| f.file == "solution.py" && f.code == "return a - b"),
            "{kind}: {e:?}"
        );
    }
}

/// Answers of megabytes (HumanEval+ and MBPP+ return such strings) reach
/// the judge from every sandbox: the output cap is the program's, not its
/// answers'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_of_megabytes_are_judged() {
    let req = RunRequest::new(
        "def twice(s, n):\n    return s * n\n",
        TestSpec::Check {
            code: "def check(candidate):\n    assert candidate('ab', 10**6) == 'ab' * 10**6\n    assert candidate('c', 3 * 10**6) == 'c' * (3 * 10**6)\n".into(),
            entry_point: Some("twice".into()),
            context: String::new(),
        },
    );
    for kind in [SandboxKind::Wasm, SandboxKind::Process] {
        let out = common::sandbox(kind).await.run(&req).await;
        assert_eq!(out.status, Status::Passed, "{kind}: {}", out.summary());
        assert_eq!(out.passed, 2, "{kind}");
    }
}

/// A budget cuts a long program in the fast sandbox with no verdict, leaves
/// a short one alone, and the other sandboxes ignore it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_cuts_only_long_runs_in_fast_wasm() {
    let tasks = common::humaneval();
    let t = &tasks[0];
    let canonical = t["canonical_solution"].as_str().unwrap_or_default();
    // Correct, but computes for about a second in wasm.
    let slow = format!("    sum(i * i for i in range(300_000))\n{canonical}");
    let budget = Some(Duration::from_millis(30));
    let wasm = common::sandbox(SandboxKind::Wasm).await;

    let mut req = request(t, &slow);
    req.budget = budget;
    let out = wasm.run(&req).await;
    assert_eq!(out.status, Status::Unavailable, "{}", out.summary());
    assert!(out.over_budget);
    assert!(
        out.reason.as_deref().unwrap_or("").contains("30 ms budget"),
        "{:?}",
        out.reason
    );
    assert!(out.duration_ms < 1000.0, "cut late: {} ms", out.duration_ms);

    // A program blocked in a host call is cut too.
    let mut req = request(t, &format!("    import time; time.sleep(2)\n{canonical}"));
    req.budget = budget;
    let out = wasm.run(&req).await;
    assert!(out.over_budget, "{}", out.summary());

    let mut req = request(t, canonical);
    req.budget = Some(Duration::from_secs(2));
    let out = wasm.run(&req).await;
    assert_eq!(out.status, Status::Passed, "{}", out.summary());
    assert!(!out.over_budget);

    let mut req = request(t, &slow);
    req.budget = budget;
    let out = common::sandbox(SandboxKind::Process).await.run(&req).await;
    assert_eq!(out.status, Status::Passed, "{}", out.summary());
    assert!(!out.over_budget);
}
