//! Transcripts and replay: record against the server, replay offline with
//! the server gone, get identical outputs; a miss is an error.

use super::model_common;

use std::sync::Arc;

use model_common::*;
use selfrepair::model::transcript::read_entries;
use selfrepair::model::{ChatRequest, Client, Model, ModelError, ModelSettings, open_with_env};
use selfrepair_testkit::{Reply, TestServer};

fn requests() -> Vec<ChatRequest> {
    let mut v = vec![
        ask("repair add()").with_key("task-1/node-1"),
        ask("repair sub()").with_key("task-2/node-1"),
    ];
    // The same prompt sampled three times: distinct keys, distinct entries.
    for i in 0..3 {
        let mut r = ask("repair mul()").with_key(format!("task-3/sample-{i}"));
        r.params.temperature = Some(0.8);
        v.push(r);
    }
    v
}

#[tokio::test]
async fn record_then_replay_offline() {
    let s = TestServer::start().await.unwrap();
    s.on_contains(
        "add",
        Reply::text("def add(a, b): return a + b").with_usage(30, 12),
    );
    s.on_contains(
        "sub",
        Reply::text_without_usage("def sub(a, b): return a - b"),
    );
    for i in 0..3 {
        s.enqueue(Reply::text(format!("def mul(a, b): return a * b  # v{i}")));
    }
    let dir = tempfile::tempdir().unwrap();
    let c = openai_client(&s, fast_opts(), Some(dir.path()));
    let reqs = requests();
    // The queue answers first, so the mul requests go first to take it.
    let mut recorded = Vec::new();
    for r in reqs[2..].iter().chain(reqs[..2].iter()) {
        recorded.push(c.complete(r).await.unwrap());
    }
    s.stop().await;

    let entries = read_entries(&dir.path().join("transcript.jsonl")).unwrap();
    assert_eq!(entries.len(), 5);
    let fps: std::collections::HashSet<_> = entries.iter().map(|e| e.fingerprint.clone()).collect();
    assert_eq!(fps.len(), 5, "n samples must get distinct fingerprints");
    let e = &entries[0];
    assert_eq!(e.provider, "openai");
    assert_eq!(e.model, "gpt-4o-mini");
    assert_eq!(e.attempts, 1);
    assert!(e.error.is_none());
    assert_eq!(e.request.params.temperature, Some(0.8));

    // Offline: replay in a different order, through the factory as --model would.
    let settings = ModelSettings::new(format!("replay:{}", dir.path().display()).parse().unwrap());
    let replay_dir = tempfile::tempdir().unwrap();
    let r = open_with_env(&settings, Some(replay_dir.path()), &|_| None).unwrap();
    let mut replayed = Vec::new();
    for req in reqs[..2].iter().chain(reqs[2..].iter()) {
        replayed.push(r.complete(req).await.unwrap());
    }
    replayed.rotate_left(2);
    for (a, b) in recorded.iter().zip(&replayed) {
        assert_eq!(a.choices, b.choices);
        assert_eq!(a.usage, b.usage);
        assert_eq!(a.cost_usd, b.cost_usd, "same model, same price");
        assert_eq!(b.provider, "replay");
        assert_eq!(b.model, "gpt-4o-mini");
    }
    assert!(
        replayed[4].usage.estimated,
        "estimated usage survives replay"
    );

    // The replay run keeps its own transcript, with the same fingerprints.
    let again = read_entries(&replay_dir.path().join("transcript.jsonl")).unwrap();
    let fps2: std::collections::HashSet<_> = again.iter().map(|e| e.fingerprint.clone()).collect();
    assert_eq!(fps, fps2);

    // Strict: an unrecorded request, or one asked more often than recorded, misses.
    let e = r.complete(&ask("something never asked")).await.unwrap_err();
    match &e {
        ModelError::ReplayMiss {
            preview,
            fingerprint,
        } => {
            assert_eq!(preview, "something never asked");
            assert_eq!(fingerprint.len(), 64);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(e.to_string().contains("something never asked"));
    let e = r.complete(&reqs[0]).await.unwrap_err();
    assert!(matches!(e, ModelError::ReplayMiss { .. }), "{e:?}");
}

#[tokio::test]
async fn miss_preview_is_the_first_80_chars() {
    let s = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let c = openai_client(&s, fast_opts(), Some(dir.path()));
    c.complete(&ask("recorded")).await.unwrap();
    let replay: Arc<dyn Model> = Arc::new(
        selfrepair::model::replay::Replay::open(&dir.path().join("transcript.jsonl")).unwrap(),
    );
    let r = Client::new(replay, fast_opts(), None).unwrap();
    let long = "é".repeat(200);
    let ModelError::ReplayMiss { preview, .. } = r.complete(&ask(&long)).await.unwrap_err() else {
        panic!("expected a miss")
    };
    assert_eq!(preview.chars().count(), 80);
}

#[tokio::test]
async fn failed_calls_are_recorded_but_not_replayed() {
    let s = TestServer::start().await.unwrap();
    s.enqueue(Reply::status(400, "bad request"));
    let dir = tempfile::tempdir().unwrap();
    let c = openai_client(&s, fast_opts(), Some(dir.path()));
    assert!(c.complete(&ask("x")).await.is_err());
    let entries = read_entries(&dir.path().join("transcript.jsonl")).unwrap();
    assert_eq!(entries.len(), 1);
    assert!(
        entries[0]
            .error
            .as_deref()
            .unwrap()
            .contains("HTTP 400: bad request")
    );
    assert!(entries[0].response.is_none());
    let r = selfrepair::model::replay::Replay::open(dir.path()).unwrap();
    assert_eq!(r.remaining(), 0);
}

#[tokio::test]
async fn a_crash_cut_final_line_is_skipped_but_other_damage_is_an_error() {
    let s = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let c = openai_client(&s, fast_opts(), Some(dir.path()));
    c.complete(&ask("x")).await.unwrap();
    let path = dir.path().join("transcript.jsonl");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"ts_ms\": 1, \"finger");
    std::fs::write(&path, &text).unwrap();
    assert_eq!(read_entries(&path).unwrap().len(), 1);
    text.push('\n');
    std::fs::write(&path, &text).unwrap();
    assert!(matches!(
        read_entries(&path),
        Err(ModelError::Transcript { .. })
    ));
}

/// A client built without a transcript records into a dir named later (a
/// fix session's): its own transcript, the same budget and cancel token.
#[tokio::test]
async fn a_recording_client_shares_budget_and_cancel_but_writes_its_own_transcript() {
    let s = TestServer::start().await.unwrap();
    s.set_default(Reply::text("ok").with_usage(10, 5));
    let base = openai_client(&s, fast_opts(), None);
    let dir = tempfile::tempdir().unwrap();
    let rec = base.recording_into(dir.path()).unwrap();
    assert_eq!(base.transcript_path(), None);
    assert_eq!(
        rec.transcript_path(),
        Some(dir.path().join("transcript.jsonl").as_path())
    );
    rec.complete(&ask("one").with_task("s1")).await.unwrap();
    rec.complete(&ask("two").with_task("s1")).await.unwrap();
    base.complete(&ask("not recorded")).await.unwrap();

    let entries = read_entries(&dir.path().join("transcript.jsonl")).unwrap();
    let asked: Vec<&str> = entries
        .iter()
        .map(|e| e.request.messages[1].content.as_str())
        .collect();
    assert_eq!(asked, ["one", "two"]);
    assert_eq!(entries[0].task.as_deref(), Some("s1"));
    // One budget: the recording client's spend is the base client's too.
    assert_eq!(base.budget().run_spent().tokens, 45);
    assert_eq!(base.budget().task_spent("s1").tokens, 30);
    // One cancel token: cancelling the base ends the recording client's calls.
    base.cancel_token().cancel();
    let e = rec.complete(&ask("three")).await.unwrap_err();
    assert!(matches!(e, ModelError::Cancelled), "{e:?}");
}
