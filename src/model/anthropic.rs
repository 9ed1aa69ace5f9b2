//! Anthropic Messages API. System messages are split out into `system`;
//! `seed` is not supported by the API and is not sent; `n > 1` is served by
//! concurrent single requests.

use std::time::Instant;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ModelError;
use super::http::{build_client, parse_json, post_json};
use super::secret::ApiKey;
use super::tokens::estimate_usage;
use super::types::{ChatRequest, Choice, Completion, FinishReason, Role, Usage};
use super::{Model, fan_out};

pub(crate) const API_VERSION: &str = "2023-06-01";
/// The API requires `max_tokens`; used when the caller sets none.
pub(crate) const DEFAULT_MAX_TOKENS: u32 = 4096;

#[derive(Debug)]
pub struct Anthropic {
    model: String,
    url: String,
    key: Option<ApiKey>,
    http: reqwest::Client,
}

impl Anthropic {
    /// `base_url` is the API root (`https://api.anthropic.com`; a trailing
    /// `/v1` is accepted too).
    pub fn new(model: &str, base_url: &str, key: Option<ApiKey>) -> Result<Self, ModelError> {
        let root = base_url.trim_end_matches('/');
        let root = root.strip_suffix("/v1").unwrap_or(root);
        Ok(Anthropic {
            model: model.to_string(),
            url: format!("{root}/v1/messages"),
            key,
            http: build_client(base_url)?,
        })
    }

    fn body(&self, req: &ChatRequest) -> Value {
        let p = &req.params;
        let system: Vec<&str> = req
            .messages
            .iter()
            .filter(|m| m.role == Role::System)
            .map(|m| m.content.as_str())
            .collect();
        let messages: Vec<Value> = req
            .messages
            .iter()
            .filter(|m| m.role != Role::System)
            .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
            .collect();
        let mut body = json!({
            "model": self.model,
            "max_tokens": p.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            "messages": messages,
        });
        if !system.is_empty() {
            body["system"] = json!(system.join("\n\n"));
        }
        if let Some(t) = p.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(t) = p.top_p {
            body["top_p"] = json!(t);
        }
        if !p.stop.is_empty() {
            body["stop_sequences"] = json!(p.stop);
        }
        body
    }

    async fn once(&self, req: &ChatRequest) -> Result<Completion, ModelError> {
        let started = Instant::now();
        let mut headers = HeaderMap::new();
        headers.insert("anthropic-version", HeaderValue::from_static(API_VERSION));
        if let Some(k) = &self.key {
            let mut v = HeaderValue::from_str(k.expose())
                .map_err(|_| ModelError::Config("API key contains invalid characters".into()))?;
            v.set_sensitive(true);
            headers.insert("x-api-key", v);
        }
        let text = post_json(
            &self.http,
            "anthropic",
            &self.url,
            headers,
            &self.body(req),
            self.key.as_ref(),
        )
        .await?;
        let resp: Response = parse_json("anthropic", &text)?;
        let Some(content) = resp.content else {
            return Err(ModelError::Malformed {
                provider: "anthropic".into(),
                detail: "response has no content".into(),
            });
        };
        let text: String = content
            .iter()
            .filter(|b| b.kind == "text")
            .filter_map(|b| b.text.as_deref())
            .collect();
        let choices = vec![Choice {
            text,
            finish_reason: FinishReason::parse(resp.stop_reason.as_deref()),
        }];
        let usage = match resp.usage {
            Some(RespUsage {
                input_tokens: Some(i),
                output_tokens: Some(o),
            }) => Usage {
                prompt_tokens: i,
                completion_tokens: o,
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
            provider: "anthropic".into(),
            model: self.model.clone(),
        })
    }
}

#[async_trait]
impl Model for Anthropic {
    fn provider(&self) -> &str {
        "anthropic"
    }
    fn model(&self) -> &str {
        &self.model
    }
    async fn complete(&self, req: &ChatRequest) -> Result<Completion, ModelError> {
        if req.params.n > 1 {
            fan_out(req, |r| async move { self.once(&r).await }).await
        } else {
            self.once(req).await
        }
    }
}

#[derive(Deserialize)]
struct Response {
    content: Option<Vec<Block>>,
    stop_reason: Option<String>,
    usage: Option<RespUsage>,
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

#[derive(Deserialize)]
struct RespUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::types::Message;

    #[test]
    fn system_is_split_out() {
        let m = Anthropic::new("claude-x", "http://127.0.0.1:1/v1", None).unwrap();
        assert_eq!(m.url, "http://127.0.0.1:1/v1/messages");
        let req = ChatRequest::new(vec![
            Message::system("be brief"),
            Message::user("hi"),
            Message::assistant("hello"),
            Message::user("fix it"),
        ]);
        let b = m.body(&req);
        assert_eq!(b["system"], "be brief");
        assert_eq!(b["messages"].as_array().unwrap().len(), 3);
        assert_eq!(b["messages"][0]["role"], "user");
        assert_eq!(b["max_tokens"], DEFAULT_MAX_TOKENS);
    }
}
