//! The Anthropic Messages client against the scripted server.

use super::model_common;

use model_common::*;
use selfrepair::model::{Client, FinishReason, Model, ModelError};
use selfrepair_testkit::{Reply, TestServer};

async fn setup() -> (TestServer, Client) {
    let s = TestServer::start().await.expect("server");
    let c = Client::new(
        anthropic_provider(&s, "claude-sonnet-4-20250514"),
        fast_opts(),
        None,
    )
    .unwrap();
    (s, c)
}

#[tokio::test]
async fn sends_headers_and_splits_the_system_prompt() {
    let (s, c) = setup().await;
    s.set_default(Reply::text("patched").with_usage(100, 20));
    let mut req = ask("fix the bug");
    req.params.stop = vec!["</patch>".into()];
    req.params.temperature = Some(0.2);
    let out = c.complete(&req).await.unwrap();
    assert_eq!(out.text(), "patched");
    assert_eq!(out.choices[0].finish_reason, FinishReason::Stop);
    assert_eq!(out.usage.prompt_tokens, 100);
    assert_eq!(out.usage.completion_tokens, 20);
    assert_eq!(out.provider, "anthropic");
    // Sonnet 4: $3 in, $15 out per million.
    assert!((out.cost_usd - (100.0 * 3.0 + 20.0 * 15.0) / 1e6).abs() < 1e-12);

    let r = &s.requests()[0];
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.header("x-api-key"), Some(FAKE_KEY));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(r.header("authorization"), None);
    let body = r.json().unwrap();
    assert_eq!(body["system"], "You repair code.");
    assert_eq!(body["messages"].as_array().unwrap().len(), 1);
    assert_eq!(body["messages"][0]["role"], "user");
    assert_eq!(body["stop_sequences"][0], "</patch>");
    assert_eq!(body["temperature"], 0.2);
    assert!(body["max_tokens"].as_u64().is_some(), "required by the API");
}

#[tokio::test]
async fn max_tokens_maps_to_length() {
    let (s, c) = setup().await;
    s.set_default(Reply::text("cut").with_finish_reason("length"));
    let out = c.complete(&ask("x")).await.unwrap();
    assert_eq!(out.choices[0].finish_reason, FinishReason::Length);
}

#[tokio::test]
async fn n_is_served_by_several_requests() {
    let (s, c) = setup().await;
    s.set_default(Reply::text("one").with_usage(10, 5));
    let mut req = ask("x");
    req.params.n = 3;
    let out = c.complete(&req).await.unwrap();
    assert_eq!(out.choices.len(), 3);
    assert_eq!(out.usage.completion_tokens, 15);
    assert_eq!(s.request_count(), 3);
}

#[tokio::test]
async fn unauthorized_names_provider_status_and_message() {
    let (s, c) = setup().await;
    s.set_default(Reply::status(401, "invalid x-api-key"));
    let e = c.complete(&ask("x")).await.unwrap_err();
    assert_eq!(s.request_count(), 1);
    assert_eq!(
        e.to_string(),
        "anthropic returned HTTP 401: invalid x-api-key"
    );
}

#[tokio::test]
async fn overloaded_529_is_retried() {
    let (s, c) = setup().await;
    s.enqueue(Reply::status(529, "Overloaded"));
    s.enqueue(Reply::rate_limited(0.05));
    s.enqueue(Reply::text("ok now"));
    let out = c.complete(&ask("x")).await.unwrap();
    assert_eq!(out.text(), "ok now");
    assert_eq!(s.request_count(), 3);
}

#[tokio::test]
async fn missing_usage_and_bad_bodies() {
    let (s, c) = setup().await;
    s.enqueue(Reply::text_without_usage("hello world"));
    let out = c.complete(&ask("x")).await.unwrap();
    assert!(out.usage.estimated);
    assert_eq!(out.usage.completion_tokens, 2);

    s.enqueue(Reply::TruncatedJson);
    let e = c.complete(&ask("x")).await.unwrap_err();
    assert!(matches!(e, ModelError::Truncated { .. }), "{e:?}");

    s.enqueue(Reply::InvalidUtf8);
    let e = c.complete(&ask("x")).await.unwrap_err();
    assert!(matches!(e, ModelError::InvalidUtf8 { .. }), "{e:?}");
}
