//! The OpenAI-compatible client against the scripted server: happy path,
//! request shape, and every fault.

use super::model_common;

use std::time::{Duration, Instant};

use model_common::*;
use selfrepair::model::{
    ChatRequest, Client, FinishReason, Message, Model, ModelError, SamplingParams,
};
use selfrepair_testkit::{Reply, TestServer};

async fn server() -> TestServer {
    TestServer::start().await.expect("server")
}

#[tokio::test]
async fn completes_and_sends_the_right_request() {
    let s = server().await;
    s.on_contains("fix", Reply::text("fixed code").with_usage(42, 7));
    let c = openai_client(&s, fast_opts(), None);
    let req = ask("please fix this").with_params(SamplingParams {
        temperature: Some(0.3),
        top_p: Some(0.9),
        max_tokens: Some(256),
        stop: vec!["```".into()],
        seed: Some(11),
        n: 1,
    });
    let out = c.complete(&req).await.unwrap();
    assert_eq!(out.text(), "fixed code");
    assert_eq!(out.choices[0].finish_reason, FinishReason::Stop);
    assert_eq!(out.usage.prompt_tokens, 42);
    assert_eq!(out.usage.completion_tokens, 7);
    assert!(!out.usage.estimated);
    assert_eq!(out.provider, "openai");
    assert_eq!(out.model, "gpt-4o-mini");
    // gpt-4o-mini: $0.15 in, $0.60 out per million.
    assert!(out.priced);
    assert!((out.cost_usd - (42.0 * 0.15 + 7.0 * 0.60) / 1e6).abs() < 1e-12);

    let reqs = s.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {FAKE_KEY}").as_str())
    );
    let body = r.json().unwrap();
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["temperature"], 0.3);
    assert_eq!(body["top_p"], 0.9);
    assert_eq!(body["max_tokens"], 256);
    assert_eq!(body["stop"][0], "```");
    assert_eq!(body["seed"], 11);
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["messages"][1]["content"], "please fix this");
}

#[tokio::test]
async fn n_choices_and_length_finish() {
    let s = server().await;
    s.enqueue(Reply::text("candidate").with_finish_reason("length"));
    let c = openai_client(&s, fast_opts(), None);
    let mut req = ask("x");
    req.params.n = 3;
    let out = c.complete(&req).await.unwrap();
    assert_eq!(out.choices.len(), 3);
    assert!(
        out.choices
            .iter()
            .all(|c| c.finish_reason == FinishReason::Length)
    );
    assert_eq!(s.requests()[0].json().unwrap()["n"], 3);
}

#[tokio::test]
async fn config_defaults_fill_unset_params() {
    let s = server().await;
    let mut opts = fast_opts();
    opts.defaults.temperature = Some(0.7);
    opts.defaults.max_tokens = Some(99);
    let c = openai_client(&s, opts, None);
    let mut req = ask("x");
    req.params.temperature = Some(0.0);
    c.complete(&req).await.unwrap();
    let body = s.requests()[0].json().unwrap();
    assert_eq!(body["temperature"], 0.0, "caller's value wins");
    assert_eq!(body["max_tokens"], 99, "default fills the gap");
}

#[tokio::test]
async fn rate_limit_honours_retry_after() {
    let s = server().await;
    s.enqueue(Reply::rate_limited(0.4));
    s.enqueue(Reply::text("after wait"));
    let c = openai_client(&s, fast_opts(), None);
    let t = Instant::now();
    let out = c.complete(&ask("x")).await.unwrap();
    let waited = t.elapsed();
    assert_eq!(out.text(), "after wait");
    assert_eq!(s.request_count(), 2);
    // Our own backoff would be 5-10 ms; the server asked for 400 ms.
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let s = server().await;
    s.enqueue(Reply::server_error());
    s.enqueue(Reply::status(503, "overloaded"));
    s.enqueue(Reply::text("third time lucky"));
    let c = openai_client(&s, fast_opts(), None);
    let out = c.complete(&ask("x")).await.unwrap();
    assert_eq!(out.text(), "third time lucky");
    assert_eq!(s.request_count(), 3);
}

#[tokio::test]
async fn retries_are_bounded() {
    let s = server().await;
    s.set_default(Reply::server_error());
    let c = openai_client(&s, fast_opts(), None);
    let e = c.complete(&ask("x")).await.unwrap_err();
    match &e {
        ModelError::RetriesExhausted { attempts, last } => {
            assert_eq!(*attempts, 4);
            assert_eq!(last.status(), Some(500));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(s.request_count(), 4, "1 attempt + 3 retries");
    assert!(e.to_string().contains("HTTP 500"), "{e}");
}

#[tokio::test]
async fn client_errors_stop_at_once_with_the_servers_message() {
    for (status, msg) in [
        (400, "Unsupported parameter: 'max_tokens'"),
        (401, "Incorrect API key provided"),
        (403, "Project does not have access to model"),
        (404, "The model `nope` does not exist"),
    ] {
        let s = server().await;
        s.set_default(Reply::status(status, msg));
        let c = openai_client(&s, fast_opts(), None);
        let e = c.complete(&ask("x")).await.unwrap_err();
        assert_eq!(s.request_count(), 1, "HTTP {status} must not be retried");
        assert!(
            matches!(e, ModelError::Http { status: st, .. } if st == status),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(text.contains("openai"), "{text}");
        assert!(text.contains(&status.to_string()), "{text}");
        assert!(text.contains(msg), "{text}");
    }
}

#[tokio::test]
async fn truncated_json_is_a_typed_error() {
    let s = server().await;
    s.set_default(Reply::TruncatedJson);
    let c = openai_client(&s, fast_opts(), None);
    let e = c.complete(&ask("x")).await.unwrap_err();
    assert!(matches!(e, ModelError::Truncated { .. }), "{e:?}");
    assert_eq!(s.request_count(), 1);
}

#[tokio::test]
async fn invalid_utf8_is_a_typed_error() {
    let s = server().await;
    s.set_default(Reply::InvalidUtf8);
    let c = openai_client(&s, fast_opts(), None);
    let e = c.complete(&ask("x")).await.unwrap_err();
    assert!(matches!(e, ModelError::InvalidUtf8 { .. }), "{e:?}");
}

#[tokio::test]
async fn malformed_bodies_are_typed_errors() {
    for body in [
        &b"<html>Bad Gateway</html>"[..],
        br#"{"choices": "nope"}"#,
        br#"{"choices": []}"#,
        br#"[1, 2, 3]"#,
        b"",
    ] {
        let s = server().await;
        s.set_default(Reply::Raw {
            status: 200,
            content_type: "application/json".into(),
            body: body.to_vec(),
        });
        let c = openai_client(&s, fast_opts(), None);
        let e = c.complete(&ask("x")).await.unwrap_err();
        assert!(
            matches!(
                e,
                ModelError::Malformed { .. } | ModelError::Truncated { .. }
            ),
            "{body:?}: {e:?}"
        );
    }
}

#[tokio::test]
async fn an_error_inside_a_200_body_is_an_http_error() {
    let s = server().await;
    s.enqueue(Reply::Raw {
        status: 200,
        content_type: "application/json".into(),
        body: br#"{"error": {"code": 502, "message": "upstream provider down"}}"#.to_vec(),
    });
    s.enqueue(Reply::text("recovered"));
    let c = openai_client(&s, fast_opts(), None);
    assert_eq!(c.complete(&ask("x")).await.unwrap().text(), "recovered");
    assert_eq!(s.request_count(), 2, "a 502 is retried");
}

#[tokio::test]
async fn non_utf8_error_body_still_reports_status() {
    let s = server().await;
    s.set_default(Reply::Raw {
        status: 400,
        content_type: "text/plain".into(),
        body: vec![b'b', b'a', b'd', 0xff],
    });
    let c = openai_client(&s, fast_opts(), None);
    let e = c.complete(&ask("x")).await.unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert!(e.to_string().contains("bad"), "{e}");
}

#[tokio::test]
async fn missing_usage_is_estimated_with_a_tokenizer() {
    let s = server().await;
    s.set_default(Reply::text_without_usage("hello world"));
    let c = openai_client(&s, fast_opts(), None);
    let req = ChatRequest::new(vec![Message::user("hello world")]);
    let out = c.complete(&req).await.unwrap();
    assert!(out.usage.estimated);
    // cl100k_base: "hello world" is 2 tokens; prompt adds chat framing.
    assert_eq!(out.usage.completion_tokens, 2);
    assert_eq!(out.usage.prompt_tokens, 9);
}

#[tokio::test]
async fn slow_responses_time_out_and_are_retried() {
    let s = server().await;
    s.enqueue(Reply::slow(Duration::from_secs(5), Reply::text("too late")));
    s.enqueue(Reply::text("on time"));
    let mut opts = fast_opts();
    opts.timeout = Duration::from_millis(200);
    let c = openai_client(&s, opts, None);
    let t = Instant::now();
    let out = c.complete(&ask("x")).await.unwrap();
    assert_eq!(out.text(), "on time");
    assert!(t.elapsed() < Duration::from_secs(2));

    s.set_default(Reply::slow(Duration::from_secs(5), Reply::text("never")));
    let mut opts = fast_opts();
    opts.timeout = Duration::from_millis(100);
    opts.retry.max_retries = 1;
    let c = openai_client(&s, opts, None);
    let e = c.complete(&ask("y")).await.unwrap_err();
    match e {
        ModelError::RetriesExhausted { last, .. } => {
            assert!(matches!(*last, ModelError::Timeout { .. }), "{last:?}")
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn dropped_connections_are_retried() {
    let s = server().await;
    s.enqueue(Reply::Disconnect);
    s.enqueue(Reply::text("reconnected"));
    let c = openai_client(&s, fast_opts(), None);
    let out = c.complete(&ask("x")).await.unwrap();
    assert_eq!(out.text(), "reconnected");
    assert_eq!(s.request_count(), 2);
}

#[tokio::test]
async fn connection_refused_is_a_connection_error() {
    let s = server().await;
    let c: Client = openai_client(&s, fast_opts(), None);
    s.stop().await;
    let e = c.complete(&ask("x")).await.unwrap_err();
    match e {
        ModelError::RetriesExhausted { last, .. } => {
            assert!(matches!(*last, ModelError::Connection { .. }), "{last:?}")
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn factory_builds_a_working_client() {
    let s = server().await;
    s.set_default(Reply::text("via factory"));
    let mut settings = selfrepair::model::ModelSettings::new("vllm:qwen-coder".parse().unwrap());
    settings.base_url = Some(s.openai_base());
    settings.api_key_env = Some("TEST_VLLM_KEY".into());
    let env = |k: &str| (k == "TEST_VLLM_KEY").then(|| "vllm-secret".to_string());
    let c = selfrepair::model::open_with_env(&settings, None, &env).unwrap();
    let out = c.complete(&ask("x")).await.unwrap();
    assert_eq!(out.text(), "via factory");
    assert_eq!(out.provider, "vllm");
    assert!(!out.priced, "local models are unpriced");
    assert_eq!(out.cost_usd, 0.0);
    assert_eq!(
        s.requests()[0].header("authorization"),
        Some("Bearer vllm-secret")
    );
}
