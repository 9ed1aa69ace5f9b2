//! Budgets stop a run cleanly, and nothing already paid for is lost.

use super::model_common;

use model_common::*;
use selfrepair::model::{BudgetKind, Budgets, Limits, Model, ModelError, Scope};
use selfrepair_testkit::{Reply, TestServer};

fn budgets(run: Limits, task: Limits) -> Budgets {
    Budgets { run, task }
}

#[tokio::test]
async fn token_budget_stops_the_next_call_after_recording_usage() {
    let s = TestServer::start().await.unwrap();
    s.set_default(Reply::text("x").with_usage(60, 10));
    let dir = tempfile::tempdir().unwrap();
    let mut opts = fast_opts();
    opts.budgets = budgets(
        Limits {
            tokens: Some(100),
            ..Limits::default()
        },
        Limits::default(),
    );
    let c = openai_client(&s, opts, Some(dir.path()));
    c.complete(&ask("1")).await.unwrap();
    // 70 < 100: allowed, and takes the run to 140.
    c.complete(&ask("2")).await.unwrap();
    let e = c.complete(&ask("3")).await.unwrap_err();
    let ModelError::BudgetExceeded(b) = &e else {
        panic!("unexpected {e:?}")
    };
    assert!(e.is_budget_exceeded());
    assert_eq!(b.kind, BudgetKind::Tokens);
    assert_eq!(b.scope, Scope::Run);
    assert_eq!(
        e.to_string(),
        "run budget reached: 140 tokens used of 100 allowed"
    );
    // Both paid calls are accounted for and recorded; the refused one never left.
    assert_eq!(c.budget().run_spent().tokens, 140);
    assert_eq!(s.request_count(), 2);
    let lines = std::fs::read_to_string(dir.path().join("transcript.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 2);
}

#[tokio::test]
async fn dollar_budget_uses_the_price_table() {
    let s = TestServer::start().await.unwrap();
    // gpt-4o-mini: 1M prompt tokens = $0.15.
    s.set_default(Reply::text("x").with_usage(1_000_000, 0));
    let mut opts = fast_opts();
    opts.budgets = budgets(
        Limits {
            usd: Some(0.25),
            ..Limits::default()
        },
        Limits::default(),
    );
    let c = openai_client(&s, opts, None);
    c.complete(&ask("1")).await.unwrap();
    c.complete(&ask("2")).await.unwrap();
    let e = c.complete(&ask("3")).await.unwrap_err();
    let ModelError::BudgetExceeded(b) = e else {
        panic!("unexpected {e:?}")
    };
    assert_eq!(b.kind, BudgetKind::Dollars);
    assert!((c.budget().run_spent().usd - 0.30).abs() < 1e-9);
}

#[tokio::test]
async fn call_budgets_per_task_and_per_run() {
    let s = TestServer::start().await.unwrap();
    let mut opts = fast_opts();
    opts.budgets = budgets(
        Limits {
            calls: Some(5),
            ..Limits::default()
        },
        Limits {
            calls: Some(2),
            ..Limits::default()
        },
    );
    let c = openai_client(&s, opts, None);
    c.complete(&ask("a").with_task("t1")).await.unwrap();
    c.complete(&ask("a").with_task("t1")).await.unwrap();
    let e = c.complete(&ask("a").with_task("t1")).await.unwrap_err();
    let ModelError::BudgetExceeded(b) = e else {
        panic!("unexpected {e:?}")
    };
    assert_eq!(b.scope, Scope::Task("t1".into()));
    assert_eq!(b.kind, BudgetKind::Calls);
    // Another task still has room, until the run limit.
    c.complete(&ask("b").with_task("t2")).await.unwrap();
    c.complete(&ask("b").with_task("t2")).await.unwrap();
    c.complete(&ask("c").with_task("t3")).await.unwrap();
    let e = c.complete(&ask("c").with_task("t3")).await.unwrap_err();
    let ModelError::BudgetExceeded(b) = e else {
        panic!("unexpected {e:?}")
    };
    assert_eq!(b.scope, Scope::Run);
    assert_eq!(s.request_count(), 5);
    assert_eq!(c.budget().task_spent("t1").calls, 2);
}

#[tokio::test]
async fn call_budget_is_exact_under_concurrency() {
    let s = TestServer::start().await.unwrap();
    let mut opts = fast_opts();
    opts.concurrency = 16;
    opts.budgets.run.calls = Some(10);
    let c = std::sync::Arc::new(openai_client(&s, opts, None));
    let mut handles = Vec::new();
    for i in 0..40 {
        let c = c.clone();
        handles.push(tokio::spawn(async move {
            c.complete(&ask(&i.to_string())).await
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) if e.is_budget_exceeded() => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((ok, refused), (10, 30));
    assert_eq!(s.request_count(), 10);
}
