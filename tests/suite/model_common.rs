//! Helpers shared by the tests/model_*.rs suites.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use selfrepair::model::anthropic::Anthropic;
use selfrepair::model::openai::OpenAiCompatible;
use selfrepair::model::{ApiKey, ChatRequest, Client, ClientOptions, Message, Model, RetryPolicy};
use selfrepair_testkit::TestServer;

pub const FAKE_KEY: &str = "sk-test-FAKE-0123456789abcdef";

/// Short waits so fault tests run in milliseconds.
pub fn fast_opts() -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_secs(3),
        },
        ..ClientOptions::default()
    }
}

pub fn openai_provider(server: &TestServer, model: &str) -> Arc<dyn Model> {
    Arc::new(
        OpenAiCompatible::new(
            "openai",
            model,
            &server.openai_base(),
            Some(ApiKey::new(FAKE_KEY)),
            true,
        )
        .expect("provider"),
    )
}

pub fn anthropic_provider(server: &TestServer, model: &str) -> Arc<dyn Model> {
    Arc::new(Anthropic::new(model, &server.url(), Some(ApiKey::new(FAKE_KEY))).expect("provider"))
}

pub fn openai_client(server: &TestServer, opts: ClientOptions, run_dir: Option<&Path>) -> Client {
    Client::new(openai_provider(server, "gpt-4o-mini"), opts, run_dir).expect("client")
}

pub fn ask(text: &str) -> ChatRequest {
    ChatRequest::new(vec![
        Message::system("You repair code."),
        Message::user(text),
    ])
}
