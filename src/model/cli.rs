//! `ModelArgs`: the model flags, for any subcommand to `#[command(flatten)]`.
//!
//! Every field is optional: unset flags fall through to env, config files
//! and defaults (see [`crate::config`]). There is deliberately no flag for a
//! key itself: keys are read from env vars only, so they never sit in argv.

use clap::Args;

#[derive(Args, Clone, Debug, Default, PartialEq)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        model: ModelArgs,
    }

    #[test]
    fn parses_flags() {
        let c = Cli::try_parse_from([
            "x",
            "--model",
            "openai:Qwen/Qwen2.5-Coder-32B-Instruct",
            "--base-url",
            "http://gpu-box:8000/v1",
            "--budget-usd",
            "2.5",
            "--task-budget-calls",
            "10",
        ])
        .unwrap();
        assert_eq!(
            c.model.model.as_deref(),
            Some("openai:Qwen/Qwen2.5-Coder-32B-Instruct")
        );
        assert_eq!(c.model.base_url.as_deref(), Some("http://gpu-box:8000/v1"));
        assert_eq!(c.model.budget_usd, Some(2.5));
        assert_eq!(c.model.task_budget_calls, Some(10));
        assert!(Cli::try_parse_from(["x", "--api-key", "sk-1"]).is_err());
    }
}
