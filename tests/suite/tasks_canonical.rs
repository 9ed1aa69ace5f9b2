//! Every reference solution passes its own tests, in the fast sandbox (or,
//! where it imports a module the fast sandbox lacks, in the fallback).

use super::common;
use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn humaneval_canonical_all_pass() {
    let _alone = common::WHOLE_DATASET.lock().await;
    let tasks = load("humaneval").await;
    assert_eq!(tasks.len(), 164);
    let r = score_all(canonical_samples(&tasks)).await;
    assert_all_passed("humaneval", &r, 164);
}

#[tokio::test(flavor = "multi_thread")]
async fn mbpp_full_canonical_all_pass() {
    let _alone = common::WHOLE_DATASET.lock().await;
    let tasks = load("mbpp").await;
    assert_eq!(tasks.len(), 974);
    let splits = |s: &str| {
        tasks
            .iter()
            .filter(|t| t.source.split.as_deref() == Some(s))
            .count()
    };
    assert_eq!(
        (
            splits("prompt"),
            splits("test"),
            splits("validation"),
            splits("train")
        ),
        (10, 500, 90, 374)
    );
    assert_eq!(
        tasks.iter().filter(|t| !t.extra.is_empty()).count(),
        11,
        "challenge tests kept apart"
    );
    let r = score_all(canonical_samples(&tasks)).await;
    assert_all_passed("mbpp", &r, 974);
}

#[tokio::test(flavor = "multi_thread")]
async fn mbpp_sanitized_canonical_all_pass() {
    let _alone = common::WHOLE_DATASET.lock().await;
    let tasks = load("mbpp-sanitized").await;
    assert_eq!(tasks.len(), 427);
    assert_eq!(
        tasks
            .iter()
            .filter(|t| t.source.split.as_deref() == Some("test"))
            .count(),
        257
    );
    let r = score_all(canonical_samples(&tasks)).await;
    assert_all_passed("mbpp-sanitized", &r, 427);
}

#[tokio::test(flavor = "multi_thread")]
async fn apps_original_layout_every_solution_passes() {
    let _alone = common::WHOLE_DATASET.lock().await;
    let tasks = load("apps").await;
    assert_eq!(tasks.len(), 5);
    let n: usize = tasks.iter().map(|t| t.canonical.len()).sum();
    let r = score_all(canonical_samples(&tasks)).await;
    assert_all_passed("apps", &r, n);
}

#[tokio::test(flavor = "multi_thread")]
async fn apps_selected150_loads() {
    let tasks = load("apps-selected150").await;
    assert_eq!(tasks.len(), 150);
    assert!(
        tasks.iter().any(|t| t.id.contains('#')),
        "repeated ids get a suffix"
    );
}

/// APPS' permissive stdout cascade still judges a wrong answer wrong: a
/// reference solution with an extra blank line passes, with an extra number
/// printed it fails, and a constant answer fails.
#[tokio::test(flavor = "multi_thread")]
async fn apps_wrong_stdout_is_judged_wrong() {
    let tasks = load("apps").await;
    let t = tasks
        .iter()
        .find(|t| {
            !t.canonical.is_empty()
                && matches!(t.suites[0].tests, selfrepair::sandbox::TestSpec::Io { .. })
        })
        .expect("a standard-input APPS task");
    let good = &t.canonical[0];
    let codes = [
        format!("{good}\nprint()\n"),
        format!("{good}\nprint(987654321)\n"),
        "print('selfrepair wrong answer')\n".to_string(),
    ];
    let pairs = codes
        .into_iter()
        .enumerate()
        .map(|(index, code)| common::whole_sample(t, index, code))
        .collect();
    let r = score_all(pairs).await;
    assert!(r[0].passed, "blank lines are ignored: {:?}", r[0]);
    assert!(!r[1].passed, "an extra token is wrong: {:?}", r[1]);
    assert!(!r[2].passed, "a constant answer is wrong: {:?}", r[2]);
}
