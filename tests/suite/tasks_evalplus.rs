//! HumanEval+ and MBPP+: every canonical solution passes base and plus, with
//! expected outputs computed from it (ground truth, cached by dataset sha256).

use super::common;
use common::*;

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
    let t = tasks
        .iter()
        .find(|t| t.id == "HumanEval/32")
        .expect("HumanEval/32");
    match &t.suites[1].tests {
        selfrepair::sandbox::TestSpec::Call(c) => {
            assert_eq!(c.oracle.as_deref(), Some("poly_root"));
            assert!(
                c.time_limits.iter().all(|&l| l >= 4.0),
                "max(4 s, 4x ground truth)"
            );
        }
        other => panic!("expected a Call spec, got {other:?}"),
    }
}

/// evalplus' float rule on HumanEval/2 (atol 1e-6, rtol 1e-7): an answer
/// off by 1e-8 passes base and plus, one off by 1e-3 is wrong in both.
#[tokio::test(flavor = "multi_thread")]
async fn float_answers_are_judged_by_the_tolerance() {
    let tasks = load("humaneval+mini").await;
    let t = tasks
        .iter()
        .find(|t| t.id == "HumanEval/2")
        .expect("HumanEval/2");
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
