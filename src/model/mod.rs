//! Model access: every capability talks to a model through [`Model`].
//!
//! Chat messages go in; completion text, finish reason and usage come out.
//! Providers ([`openai`], [`anthropic`], [`replay`]) make one attempt each;
//! [`Client`] wraps any of them with bounded concurrency, timeouts,
//! retries, cancellation, budgets, pricing and the transcript. Build one from
//! settings with [`open`].

pub mod anthropic;
pub mod budget;
pub mod client;
pub mod error;
pub mod factory;
pub mod http;
pub mod local;
pub mod openai;
pub mod pricing;
pub mod replay;
pub mod retry;
pub mod secret;
pub mod spec;
pub mod tokens;
pub mod transcript;
pub mod types;

use async_trait::async_trait;

pub use budget::{BudgetExceeded, BudgetKind, BudgetTracker, Budgets, Limits, Scope, Spent};
pub use client::{Client, ClientOptions};
pub use error::ModelError;
pub use factory::{ModelSettings, open, open_with_env};
pub use pricing::{Price, PriceTable};
pub use retry::RetryPolicy;
pub use secret::ApiKey;
pub use spec::{ModelSpec, ModelSpecError, Preset};
pub use types::{
    ChatRequest, Choice, Completion, FinishReason, Message, Role, SamplingParams, Timing, Usage,
};

/// Something that answers chat requests.
#[async_trait]
pub trait Model: Send + Sync {
    /// Provider name recorded with every call (`openai`, `anthropic`, …).
    fn provider(&self) -> &str;
    /// Model name as the provider knows it; part of the request fingerprint.
    fn model(&self) -> &str;
    async fn complete(&self, req: &ChatRequest) -> Result<Completion, ModelError>;
    /// Runs in this process (no network, so no per-attempt timeout).
    fn in_process(&self) -> bool {
        false
    }
}

/// Ask `one` for a single choice `n` times concurrently and merge the
/// answers, for servers that ignore `n`.
pub(crate) async fn fan_out<F, Fut>(req: &ChatRequest, one: F) -> Result<Completion, ModelError>
where
    F: Fn(ChatRequest) -> Fut,
    Fut: std::future::Future<Output = Result<Completion, ModelError>>,
{
    let n = req.params.n.max(1);
    let mut single = req.clone();
    single.params.n = 1;
    let results = futures_util::future::join_all((0..n).map(|_| one(single.clone()))).await;
    let mut merged: Option<Completion> = None;
    for r in results {
        let c = r?;
        match merged.as_mut() {
            None => merged = Some(c),
            Some(m) => {
                m.choices.extend(c.choices);
                m.usage.prompt_tokens += c.usage.prompt_tokens;
                m.usage.completion_tokens += c.usage.completion_tokens;
                m.usage.estimated |= c.usage.estimated;
                m.latency = m.latency.max(c.latency);
            }
        }
    }
    merged.ok_or_else(|| ModelError::Unsupported("n must be at least 1".into()))
}
