//! Cancellation (token and dropped future) and bounded concurrency.

use super::model_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use model_common::*;
use selfrepair::model::{Model, ModelError};
use selfrepair_testkit::{Reply, TestServer};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn a_token_cancels_a_call_in_flight() {
    let s = TestServer::start().await.unwrap();
    s.set_default(Reply::slow(Duration::from_secs(30), Reply::text("late")));
    let dir = tempfile::tempdir().unwrap();
    let c = openai_client(&s, fast_opts(), Some(dir.path()));
    let token = CancellationToken::new();
    // Cancel once the request is at the server: mid-call, not before it.
    let cancel_when_sent = async {
        while s.request_count() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        token.cancel();
        Instant::now()
    };
    let req = ask("x");
    let (r, cancelled_at) = tokio::join!(c.complete_with_cancel(&req, &token), cancel_when_sent);
    let e = r.unwrap_err();
    assert!(matches!(e, ModelError::Cancelled), "{e:?}");
    assert!(cancelled_at.elapsed() < Duration::from_secs(2));
    // The cancelled call is on the record, marked as such.
    let log = std::fs::read_to_string(dir.path().join("transcript.jsonl")).unwrap();
    assert!(log.contains("\"error\":\"model call cancelled\""), "{log}");
}

#[tokio::test]
async fn the_client_token_cancels_everything() {
    let s = TestServer::start().await.unwrap();
    s.set_default(Reply::slow(Duration::from_secs(30), Reply::text("late")));
    let c = Arc::new(openai_client(&s, fast_opts(), None));
    let calls: Vec<_> = (0..4)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move { c.complete(&ask(&i.to_string())).await })
        })
        .collect();
    // Cancel once all four are at the server.
    while s.request_count() < 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    c.cancel_token().cancel();
    for h in calls {
        let r = tokio::time::timeout(Duration::from_secs(2), h)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(r, Err(ModelError::Cancelled)));
    }
}

#[tokio::test]
async fn dropping_the_future_frees_the_slot() {
    let s = TestServer::start().await.unwrap();
    s.enqueue(Reply::slow(Duration::from_secs(30), Reply::text("late")));
    s.set_default(Reply::text("second"));
    let mut opts = fast_opts();
    opts.concurrency = 1;
    let c = openai_client(&s, opts, None);
    // Give up on the slow call by dropping it.
    let r = tokio::time::timeout(Duration::from_millis(150), c.complete(&ask("slow"))).await;
    assert!(r.is_err(), "the slow call should still be pending");
    // With one slot, this only runs if the dropped call released it.
    let out = tokio::time::timeout(Duration::from_secs(2), c.complete(&ask("fast")))
        .await
        .expect("slot was not released")
        .unwrap();
    assert_eq!(out.text(), "second");
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let s = TestServer::start().await.unwrap();
    s.set_default(Reply::slow(Duration::from_millis(200), Reply::text("x")));
    let mut opts = fast_opts();
    opts.concurrency = 2;
    let c = Arc::new(openai_client(&s, opts, None));
    let t = Instant::now();
    let calls: Vec<_> = (0..6)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move { c.complete(&ask(&i.to_string())).await })
        })
        .collect();
    for h in calls {
        h.await.unwrap().unwrap();
    }
    // 6 calls, 2 at a time, 200 ms each: at least 3 rounds.
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(600), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}
