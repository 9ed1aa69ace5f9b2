//! `ModelArgs`: the model flags, for any subcommand to `#[command(flatten)]`;
//! [`ModelArgs::flags`] hands them to the library's config layers.
//!
//! Every field is optional: unset flags fall through to env, config files
//! and defaults (see [`crate::config`]). There is deliberately no flag for a
//! key itself: keys are read from env vars only, so they never sit in argv.

use clap::Args;
use selfrepair::config::ModelFlags;

#[derive(Args, Clone, Debug, Default)]
pub struct ModelArgs {
    /// Model as PROVIDER:MODEL (openai:gpt-4o-mini, anthropic:claude-sonnet-4-20250514,
    /// ollama:qwen2.5-coder:7b, vllm:…, llamacpp:…, lmstudio:…, openrouter:…),
    /// replay:PATH, or mutate.
    #[arg(long, value_name = "PROVIDER:MODEL")]
    pub model: Option<String>,

    /// Base URL of an OpenAI-compatible or Anthropic server, overriding the preset.
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,

    /// Name of the env var holding the API key (default: the provider's, e.g. OPENAI_API_KEY).
    #[arg(long, value_name = "NAME")]
    pub api_key_env: Option<String>,

    #[arg(long)]
    pub temperature: Option<f64>,

    #[arg(long)]
    pub top_p: Option<f64>,

    /// Maximum completion tokens per call.
    #[arg(long)]
    pub max_tokens: Option<u32>,

    #[arg(long)]
    pub seed: Option<u64>,

    /// Model calls in flight at once.
    #[arg(long)]
    pub concurrency: Option<usize>,

    /// Seconds allowed for one attempt of one call.
    #[arg(long, value_name = "SECS")]
    pub timeout_secs: Option<u64>,

    /// Retries after a 429, 5xx, timeout or connection error.
    #[arg(long)]
    pub max_retries: Option<u32>,

    /// Stop the run after this many tokens (prompt + completion).
    #[arg(long, value_name = "TOKENS")]
    pub budget_tokens: Option<u64>,

    /// Stop the run after this many dollars.
    #[arg(long, value_name = "USD")]
    pub budget_usd: Option<f64>,

    /// Stop the run after this many model calls.
    #[arg(long, value_name = "CALLS")]
    pub budget_calls: Option<u64>,

    /// Per-task token budget.
    #[arg(long, value_name = "TOKENS")]
    pub task_budget_tokens: Option<u64>,

    /// Per-task dollar budget.
    #[arg(long, value_name = "USD")]
    pub task_budget_usd: Option<f64>,

    /// Per-task call budget.
    #[arg(long, value_name = "CALLS")]
    pub task_budget_calls: Option<u64>,
}

impl ModelArgs {
    /// The flags as the config layers read them (every field, so a flag
    /// added here and not there does not compile unread).
    pub fn flags(&self) -> ModelFlags {
        let a = self.clone();
        ModelFlags {
            model: a.model,
            base_url: a.base_url,
            api_key_env: a.api_key_env,
            temperature: a.temperature,
            top_p: a.top_p,
            max_tokens: a.max_tokens,
            seed: a.seed,
            concurrency: a.concurrency,
            timeout_secs: a.timeout_secs,
            max_retries: a.max_retries,
            budget_tokens: a.budget_tokens,
            budget_usd: a.budget_usd,
            budget_calls: a.budget_calls,
            task_budget_tokens: a.task_budget_tokens,
            task_budget_usd: a.task_budget_usd,
            task_budget_calls: a.task_budget_calls,
        }
    }
}
