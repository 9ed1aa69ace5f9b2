//! Provider-independent request and response types.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Message {
            role: Role::System,
            content: content.into(),
        }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            content: content.into(),
        }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Message {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// Sampling knobs. `None` means "the provider's default" and is not sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub stop: Vec<String>,
    #[serde(default)]
    pub seed: Option<u64>,
    /// Number of choices wanted; 1 unless sampling several candidates.
    #[serde(default = "one")]
    pub n: u32,
}

fn one() -> u32 {
    1
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: None,
            top_p: None,
            max_tokens: None,
            stop: Vec::new(),
            seed: None,
            n: 1,
        }
    }
}

/// One chat call.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    pub params: SamplingParams,
    /// Caller-chosen identity of this call (e.g. `task-3/node-7/sample-2`).
    /// Never sent to a provider; it is part of the transcript fingerprint so
    /// identical prompts sampled several times get distinct replay entries.
    #[serde(default)]
    pub key: String,
    /// Task this call is charged to, for per-task budgets.
    #[serde(default)]
    pub task: Option<String>,
}

impl ChatRequest {
    pub fn new(messages: Vec<Message>) -> Self {
        ChatRequest {
            messages,
            ..ChatRequest::default()
        }
    }
    pub fn with_params(mut self, params: SamplingParams) -> Self {
        self.params = params;
        self
    }
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
        self
    }
    pub fn with_task(mut self, task: impl Into<String>) -> Self {
        self.task = Some(task.into());
        self
    }
    /// The last message's content (used to name a request in errors).
    pub fn last_content(&self) -> &str {
        self.messages.last().map_or("", |m| m.content.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// Natural end or a stop sequence.
    Stop,
    /// Hit `max_tokens`.
    Length,
    ContentFilter,
    ToolCalls,
    /// Anything else the provider said, verbatim.
    Other(String),
}

impl FinishReason {
    /// Map OpenAI and Anthropic spellings onto one vocabulary.
    pub fn parse(raw: Option<&str>) -> FinishReason {
        match raw {
            Some("stop" | "end_turn" | "stop_sequence") => FinishReason::Stop,
            Some("length" | "max_tokens") => FinishReason::Length,
            Some("content_filter" | "refusal") => FinishReason::ContentFilter,
            Some("tool_calls" | "function_call" | "tool_use") => FinishReason::ToolCalls,
            Some(other) => FinishReason::Other(other.to_string()),
            None => FinishReason::Other("unknown".into()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub text: String,
    pub finish_reason: FinishReason,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// True when the provider sent no usage and we counted with a tokenizer.
    pub estimated: bool,
    /// Where the time went, for in-process models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
}

/// Time spent reading the prompt (prefill) and generating (decode).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    pub prefill_ms: u64,
    pub decode_ms: u64,
    /// Decode steps; each produced one token for every sample still going.
    pub decode_steps: u64,
    /// Prompt tokens reused from an earlier prompt's cache (not read again).
    #[serde(default)]
    pub cached_tokens: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }

    /// Prompt tokens read per second (those reused from a cache left out),
    /// when timed.
    pub fn prefill_tokens_per_s(&self) -> Option<f64> {
        let t = self.timing?;
        let read = self.prompt_tokens.saturating_sub(t.cached_tokens);
        (t.prefill_ms > 0).then(|| read as f64 * 1000.0 / t.prefill_ms as f64)
    }

    /// Tokens generated per second over all samples, when timed.
    pub fn decode_tokens_per_s(&self) -> Option<f64> {
        let t = self.timing?;
        (t.decode_ms > 0).then(|| self.completion_tokens as f64 * 1000.0 / t.decode_ms as f64)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub choices: Vec<Choice>,
    pub usage: Usage,
    /// Dollars charged for this call by the price table (0 when unpriced).
    pub cost_usd: f64,
    /// False for local or unknown models, whose cost is reported as 0.
    pub priced: bool,
    /// Wall time of the call as the caller saw it, including retries.
    pub latency: Duration,
    pub provider: String,
    pub model: String,
}

impl Completion {
    /// Text of the first choice (empty if the provider sent none).
    pub fn text(&self) -> &str {
        self.choices.first().map_or("", |c| c.text.as_str())
    }
}
