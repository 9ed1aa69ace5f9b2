//! OpenAI-compatible chat completions (OpenAI, vLLM, Ollama, llama.cpp,
//! LM Studio, OpenRouter…). One HTTP attempt per call; see [`super::Client`]
//! for retries.

use std::time::Instant;

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

use super::error::ModelError;
use super::http::{build_client, host_is, parse_json, post_json};
use super::secret::ApiKey;
use super::tokens::estimate_usage;
use super::types::{ChatRequest, Choice, Completion, FinishReason, Usage};
use super::{Model, fan_out};

const OPENAI_HOST: &str = "api.openai.com";

#[derive(Debug)]
pub struct OpenAiCompatible {
    provider: String,
    model: String,
    url: String,
    key: Option<ApiKey>,
    /// `Bearer <key>`, built once and marked sensitive.
    auth: Option<HeaderValue>,
    http: reqwest::Client,
    supports_n: bool,
    /// api.openai.com wants `max_completion_tokens`; other servers `max_tokens`.
    official: bool,
}

impl OpenAiCompatible {
    /// `provider` is the name recorded in transcripts (the preset name).
    pub fn new(
        provider: &str,
        model: &str,
        base_url: &str,
        key: Option<ApiKey>,
        supports_n: bool,
    ) -> Result<Self, ModelError> {
        let auth = key
            .as_ref()
            .map(|k| {
                HeaderValue::from_str(&format!("Bearer {}", k.expose()))
                    .map(|mut v| {
                        v.set_sensitive(true);
                        v
                    })
                    .map_err(|_| ModelError::Config("API key contains invalid characters".into()))
            })
            .transpose()?;
        Ok(OpenAiCompatible {
            provider: provider.to_string(),
            auth,
            model: model.to_string(),
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            key,
            http: build_client(base_url)?,
            supports_n,
            official: host_is(base_url, OPENAI_HOST),
        })
    }

    fn body<'a>(&'a self, req: &'a ChatRequest) -> Body<'a> {
        let p = &req.params;
        // Reasoning models reject sampling knobs other than the defaults.
        let sampling = !is_reasoning_model(&self.model);
        Body {
            model: &self.model,
            messages: req
                .messages
                .iter()
                .map(|m| WireMessage {
                    role: m.role.as_str(),
                    content: &m.content,
                })
                .collect(),
            temperature: p.temperature.filter(|_| sampling),
            top_p: p.top_p.filter(|_| sampling),
            max_tokens: p.max_tokens.filter(|_| !self.official),
            max_completion_tokens: p.max_tokens.filter(|_| self.official),
            stop: &p.stop,
            seed: p.seed,
            n: Some(p.n).filter(|n| *n > 1),
        }
    }

    async fn once(&self, req: &ChatRequest) -> Result<Completion, ModelError> {
        let started = Instant::now();
        let mut headers = HeaderMap::new();
        if let Some(v) = &self.auth {
            headers.insert(AUTHORIZATION, v.clone());
        }
        let text = post_json(
            &self.http,
            &self.provider,
            &self.url,
            headers,
            &self.body(req),
            self.key.as_ref(),
        )
        .await?;
        let resp: Response = parse_json(&self.provider, &text)?;
        // Some gateways (OpenRouter) report upstream failures in a 200 body.
        if let (true, Some(err)) = (resp.choices.is_empty(), &resp.error) {
            let status = err
                .get("code")
                .and_then(serde_json::Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .filter(|c| (400..600).contains(c))
                .unwrap_or(502);
            let message = err
                .get("message")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("error in a 200 response");
            return Err(ModelError::Http {
                provider: self.provider.clone(),
                status,
                message: self
                    .key
                    .as_ref()
                    .map_or(message.to_string(), |k| k.scrub(message)),
                retry_after: None,
            });
        }
        if resp.choices.is_empty() {
            return Err(ModelError::Malformed {
                provider: self.provider.clone(),
                detail: "response has no choices".into(),
            });
        }
        let choices: Vec<Choice> = resp
            .choices
            .into_iter()
            .map(|c| Choice {
                text: c
                    .message
                    .and_then(|m| m.content)
                    .or(c.text)
                    .unwrap_or_default(),
                finish_reason: FinishReason::parse(c.finish_reason.as_deref()),
            })
            .collect();
        let usage = match resp.usage {
            Some(RespUsage {
                prompt_tokens: Some(p),
                completion_tokens: Some(c),
            }) => Usage {
                prompt_tokens: p,
                completion_tokens: c,
                estimated: false,
                timing: None,
            },
            _ => estimate_usage(&req.messages, &choices),
        };
        Ok(Completion {
            choices,
            usage,
            cost_usd: 0.0,
            priced: false,
            latency: started.elapsed(),
            provider: self.provider.clone(),
            model: self.model.clone(),
        })
    }
}

#[async_trait]
impl Model for OpenAiCompatible {
    fn provider(&self) -> &str {
        &self.provider
    }
    fn model(&self) -> &str {
        &self.model
    }
    async fn complete(&self, req: &ChatRequest) -> Result<Completion, ModelError> {
        if req.params.n > 1 && !self.supports_n {
            fan_out(req, |r| async move { self.once(&r).await }).await
        } else {
            self.once(req).await
        }
    }
}

/// o-series and gpt-5 models accept only default temperature/top_p.
fn is_reasoning_model(model: &str) -> bool {
    let bare = model.rsplit_once('/').map_or(model, |(_, m)| m);
    ["o1", "o3", "o4", "gpt-5"]
        .iter()
        .any(|p| bare == *p || bare.starts_with(&format!("{p}-")))
}

/// The request body, borrowing from the request: nothing is copied.
#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    /// api.openai.com's name for `max_tokens`.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<u32>,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'a str,
    content: &'a str,
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    choices: Vec<RespChoice>,
    usage: Option<RespUsage>,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RespChoice {
    message: Option<RespMessage>,
    /// Legacy completions shape, still sent by some local servers.
    text: Option<String>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct RespMessage {
    content: Option<String>,
}

#[derive(Deserialize)]
struct RespUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::types::{Message, SamplingParams};
    use serde_json::json;

    fn req() -> ChatRequest {
        ChatRequest::new(vec![Message::system("s"), Message::user("u")]).with_params(
            SamplingParams {
                temperature: Some(0.2),
                top_p: Some(0.9),
                max_tokens: Some(100),
                stop: vec!["END".into()],
                seed: Some(7),
                n: 3,
            },
        )
    }

    #[test]
    fn body_for_local_server() {
        let m =
            OpenAiCompatible::new("vllm", "qwen", "http://127.0.0.1:8000/v1/", None, true).unwrap();
        assert_eq!(m.url, "http://127.0.0.1:8000/v1/chat/completions");
        let b = serde_json::to_value(m.body(&req())).unwrap();
        assert_eq!(b["max_tokens"], 100);
        assert_eq!(b["temperature"], 0.2);
        assert_eq!(b["stop"], json!(["END"]));
        assert_eq!(b["seed"], 7);
        assert_eq!(b["n"], 3);
        assert_eq!(b["messages"][0]["role"], "system");
    }

    #[test]
    fn body_for_openai_reasoning_model() {
        let m = OpenAiCompatible::new("openai", "o3-mini", "https://api.openai.com/v1", None, true)
            .unwrap();
        let b = serde_json::to_value(m.body(&req())).unwrap();
        assert_eq!(b["max_completion_tokens"], 100);
        assert!(b.get("max_tokens").is_none());
        assert!(b.get("temperature").is_none());
        assert!(is_reasoning_model("openai/o4-mini"));
        assert!(!is_reasoning_model("gpt-4o"));
    }
}
