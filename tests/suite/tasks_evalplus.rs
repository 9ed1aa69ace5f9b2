//! HumanEval+ and MBPP+: every canonical solution passes base and plus, with
//! expected outputs computed from it (ground truth, cached by dataset sha256).

use super::common;
use common::*;
use selfrepair::tasks::Task;

async fn canonical_base_and_plus(name: &str, tasks_expected: usize) {
    let tasks = load(name).await;
    assert_eq!(tasks.len(), tasks_expected);
    for t in &tasks {
        let names: Vec<&str> = t.suites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["base", "plus"], "{}", t.id);
    }
    let r = score_all(canonical_samples(&tasks)).await;
    assert!(
        r.iter().all(|l| l.base_passed.is_some()),
        "+ sets report base separately"
    );
    assert_all_passed(name, &r, tasks_expected);
}

fn task<'a>(tasks: &'a [Task], id: &str) -> &'a Task {
    tasks
        .iter()
        .find(|t| t.id == id)
        .unwrap_or_else(|| panic!("{id} not loaded"))
}

/// A task's plus suite, which evalplus tasks hold as calls.
fn plus_call(t: &Task) -> &selfrepair::sandbox::request::CallSpec {
    match &t.suites[1].tests {
        selfrepair::sandbox::TestSpec::Call(c) => c,
        other => panic!("{}: expected a Call spec, got {other:?}", t.id),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mbpp_plus_canonical_pass_base_and_plus() {
    let _alone = common::WHOLE_DATASET.lock().await;
    canonical_base_and_plus("mbpp+", 378).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn humaneval_plus_mini_canonical_pass_base_and_plus() {
    let _alone = common::WHOLE_DATASET.lock().await;
    canonical_base_and_plus("humaneval+mini", 164).await;
}

/// The full set: 122,683 plus inputs (one sandbox run per task and suite).
/// About 75 s with cached ground truth plus ~100 s to compute it cold, so CI
/// runs the Mini variant above; run this one with `--ignored`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "slow on 2 cores: run with `cargo test --test all tasks_evalplus -- --ignored`"]
async fn humaneval_plus_full_canonical_pass_base_and_plus() {
    let _alone = common::WHOLE_DATASET.lock().await;
    canonical_base_and_plus("humaneval+", 164).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn find_zero_is_judged_by_the_poly_oracle() {
    let tasks = load("humaneval+mini").await;
    let t = task(&tasks, "HumanEval/32");
    let c = plus_call(t);
    assert_eq!(c.oracle.as_deref(), Some("poly_root"));
    assert!(
        c.time_limits.iter().all(|&l| l >= 4.0),
        "max(4 s, 4x ground truth)"
    );
}

/// Only the call is timed, as evalplus times it. With a floor below 1 s
/// (`eval --min-time-limit 0.25`), make_a_pile(1000000) gets 4x its
/// reference's ~0.1 s; writing down the digest of its million ints (most of
/// a second when it went item by item) must not count against that.
#[tokio::test(flavor = "multi_thread")]
async fn a_call_is_timed_without_writing_its_answer() {
    let tasks = load_with_floor("humaneval+mini", 0.25).await;
    let t = task(&tasks, "HumanEval/100");
    let plus = plus_call(t);
    let big = plus
        .cases
        .iter()
        .position(|c| c.expected_digest.is_some())
        .expect("a case with a digest");
    assert!(plus.time_limits[big] < 1.0, "{:?}", plus.time_limits);
    let r = score_all(vec![common::whole_sample(t, 0, t.canonical[0].clone())]).await;
    assert!(r[0].passed, "{:?}", r[0]);
}

/// evalplus' float rule on HumanEval/2 (atol 1e-6, rtol 1e-7): an answer
/// off by 1e-8 passes base and plus, one off by 1e-3 is wrong in both.
#[tokio::test(flavor = "multi_thread")]
async fn float_answers_are_judged_by_the_tolerance() {
    let tasks = load("humaneval+mini").await;
    let t = task(&tasks, "HumanEval/2");
    let sample = |index: usize, off: &str| {
        let code = format!(
            "def truncate_number(number: float) -> float:\n    return number - int(number) + {off}\n"
        );
        common::whole_sample(t, index, code)
    };
    let r = score_all(vec![sample(0, "1e-8"), sample(1, "1e-3")]).await;
    assert!(r[0].passed, "inside the tolerance: {:?}", r[0]);
    assert_eq!(r[0].base_passed, Some(true), "{:?}", r[0]);
    assert!(!r[1].passed, "outside the tolerance: {:?}", r[1]);
    assert_eq!(r[1].base_passed, Some(false), "{:?}", r[1]);
}

/// An expected output past 64 KiB is kept as the harness's digest of it
/// (HumanEval/15's strings run to megabytes), so neither it nor the program's
/// answer crosses whole: the canonical solution passes, an answer wrong only
/// on the big inputs fails with the head of what it returned, and inputs
/// that were once left out for their size are judged again.
#[tokio::test(flavor = "multi_thread")]
async fn big_outputs_are_judged_by_their_digest() {
    let tasks = load("humaneval+mini").await;
    let t = task(&tasks, "HumanEval/15");
    let plus = plus_call(t);
    let digests = plus
        .cases
        .iter()
        .filter(|c| c.expected_digest.is_some())
        .count();
    assert!(digests > 0, "no digest among {} cases", plus.cases.len());
    assert!(
        plus.cases
            .iter()
            .all(|c| c.expected_m.as_ref().is_none_or(|e| e.len() < 1 << 20)),
        "a case still carries its whole output"
    );
    // make_a_pile's 8 MiB list of ints was left out before it had a digest.
    let pile = task(&tasks, "HumanEval/100");
    assert!(
        !pile.suites[1].rule.contains("left out"),
        "{}",
        pile.suites[1].rule
    );
    let wrong_when_big = "def string_sequence(n: int) -> str:\n    return ' '.join(str(i) for i in range(n + 1 if n < 20000 else n))\n";
    let pairs = vec![
        common::whole_sample(t, 0, t.canonical[0].clone()),
        common::whole_sample(t, 1, wrong_when_big.to_string()),
    ];
    let r = score_all(pairs).await;
    assert!(r[0].passed, "canonical: {:?}", r[0]);
    assert!(!r[1].passed, "wrong on the big inputs: {:?}", r[1]);
    assert_eq!(r[1].base_passed, Some(true), "{:?}", r[1]);
    let plus = &r[1].suites[1];
    let actual = plus.actual.as_deref().unwrap_or_default();
    assert!(
        actual.starts_with("'0 1 2 3") && actual.ends_with("long)"),
        "{plus:?}"
    );
}

/// The digest stands for a value exactly as `==` would compare it with one
/// made of None, bool, int, str, bytes, lists and tuples.
#[test]
fn digests_follow_python_equality() {
    // The harness from stdin, as a module (as a script it would serve a request).
    let checks = r#"
import sys
h = {"__name__": "harness"}
exec(sys.stdin.read(), h)
d, digestible, value_head = h["value_digest"], h["digestible"], h["value_head"]
assert d(3) == d(3.0) == d(True + 2) == d(3 + 0j)
assert d(1) == d(True) and d(0) == d(-0.0) and d(2 ** 64) == d(float(2 ** 64))
assert d(10 ** 5000) == d(10 ** 5000) and d(10 ** 5000) != d(10 ** 5000 + 1)
assert d([1, "a"]) != d((1, "a")) and d([]) != d(()) and d("a") != d(b"a")
assert d(["ab", "c"]) != d(["a", "bc"]) and d(None) != d(0) and d(-128) != d(128)
assert d(3.5) != d(3) and d(float("nan")) != d(0) and d([1.0, 2]) == d([1, 2])
assert d({"a": 1}) != d(["a"]) and d("\ud800") == d("\ud800")
# A sequence of integers is written in one piece; equal ones still agree.
assert d([True, 2 + 0j, 3.0]) == d([1, 2, 3]) and d([1, 2 ** 70]) == d([1.0, float(2 ** 70)])
assert d([[1, 2]]) == d([[1.0, 2]]) and d([1, [2]]) != d([1, 2]) and d([1.5, 2]) != d([1, 2])
x = 10 ** 20
assert d([x, x]) == d([x, int("1" + "0" * 20)]) and d([]) == d([]) and d([-128]) != d([128])
assert d([1, 2]) != d([1, "2"]) and d([0]) != d([None]) and d([1j]) != d([0])
assert digestible(list(range(1999998))) and not digestible([list(range(10 ** 6)), list(range(999998))])
assert digestible([1, (2, "a"), None, b"x"]) and not digestible([1.5]) and not digestible({1})
assert value_head("x" * 1000).endswith("(1000 long)") and value_head(10 ** 10000).startswith("<an int")
print("ok")
"#;
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args(["-c", checks])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(selfrepair::sandbox::harness::HARNESS_PY.as_bytes())
            .expect("write the harness");
    }
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
