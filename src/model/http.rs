//! HTTP plumbing shared by the providers: one POST, classified into a body
//! or a typed error. Nothing a server sends can panic here.

use std::error::Error as _;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ModelError;
use super::secret::ApiKey;

/// A client tuned for many small concurrent calls. Proxies are bypassed for
/// loopback URLs so local servers (and tests) never go through one.
pub(crate) fn build_client(base_url: &str) -> Result<reqwest::Client, ModelError> {
    let url = reqwest::Url::parse(base_url)
        .map_err(|e| ModelError::Config(format!("invalid base URL {base_url:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ModelError::Config(format!(
            "base URL {base_url:?} must be http or https"
        )));
    }
    let mut b = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true);
    if is_loopback(&url) {
        b = b.no_proxy();
    }
    b.build()
        .map_err(|e| ModelError::Config(format!("cannot build HTTP client: {e}")))
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(h) => h
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// True when `base_url` points at `host` (used to decide whether a default
/// key may be sent: a vendor's key goes only to that vendor).
pub(crate) fn host_is(base_url: &str, host: &str) -> bool {
    reqwest::Url::parse(base_url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.eq_ignore_ascii_case(host)))
        .unwrap_or(false)
}

/// POST `body` as JSON; return the response text on 2xx.
pub(crate) async fn post_json<B: serde::Serialize + ?Sized>(
    client: &reqwest::Client,
    provider: &str,
    url: &str,
    headers: HeaderMap,
    body: &B,
    key: Option<&ApiKey>,
) -> Result<String, ModelError> {
    let scrub = |s: String| key.map_or(s.clone(), |k| k.scrub(&s));
    let conn_err = |e: reqwest::Error| ModelError::Connection {
        provider: provider.to_string(),
        message: scrub(error_chain(&e)),
    };
    let resp = client
        .post(url)
        .headers(headers)
        .json(body)
        .send()
        .await
        .map_err(conn_err)?;
    let status = resp.status();
    let retry_after = retry_after(resp.headers());
    // A body cut off mid-transfer is a network fault (retryable), unlike a
    // complete body that happens to be bad JSON.
    let bytes = resp.bytes().await.map_err(conn_err)?;
    if !status.is_success() {
        return Err(ModelError::Http {
            provider: provider.to_string(),
            status: status.as_u16(),
            message: scrub(error_message(&bytes, status)),
            retry_after,
        });
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| ModelError::InvalidUtf8 {
        provider: provider.to_string(),
    })
}

/// Decode a 2xx body, telling a truncated body from a wrong one.
pub(crate) fn parse_json<T: DeserializeOwned>(provider: &str, text: &str) -> Result<T, ModelError> {
    serde_json::from_str(text).map_err(|e| {
        let detail = e.to_string();
        if e.is_eof() {
            ModelError::Truncated {
                provider: provider.to_string(),
                detail,
            }
        } else {
            ModelError::Malformed {
                provider: provider.to_string(),
                detail,
            }
        }
    })
}

/// `retry-after-ms` (OpenAI) or `retry-after` in seconds. HTTP-date forms
/// are ignored and fall back to our own backoff.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    if let Some(ms) = get("retry-after-ms") {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    get("retry-after").map(|s| Duration::from_secs_f64(s.min(86_400.0)))
}

/// The server's own words: `error.message`, `message` or `error` from a JSON
/// body, else the start of the raw body, else the status text.
fn error_message(body: &[u8], status: reqwest::StatusCode) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let found = v
            .pointer("/error/message")
            .or_else(|| v.get("message"))
            .or_else(|| v.get("error"))
            .or_else(|| v.get("detail"));
        match found {
            Some(Value::String(s)) => return truncate(s, 500),
            Some(other) if !other.is_null() => return truncate(&other.to_string(), 500),
            _ => {}
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no message")
            .to_string()
    } else {
        truncate(text, 500)
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// reqwest's Display hides the useful part ("connection refused") in the
/// source chain.
fn error_chain(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    #[test]
    fn extracts_server_messages() {
        let s = StatusCode::BAD_REQUEST;
        assert_eq!(
            error_message(br#"{"error":{"message":"bad model"}}"#, s),
            "bad model"
        );
        assert_eq!(
            error_message(br#"{"error":"model not found"}"#, s),
            "model not found"
        );
        assert_eq!(error_message(b"plain text", s), "plain text");
        assert_eq!(error_message(b"", s), "Bad Request");
        assert_eq!(error_message(&[0xff, 0xfe], s), "\u{fffd}\u{fffd}");
    }

    #[test]
    fn parses_retry_after() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "150".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn truncated_vs_malformed() {
        let e = parse_json::<Value>("p", r#"{"a": [1, 2"#).unwrap_err();
        assert!(matches!(e, ModelError::Truncated { .. }), "{e:?}");
        let e = parse_json::<Value>("p", "<html>").unwrap_err();
        assert!(matches!(e, ModelError::Malformed { .. }), "{e:?}");
    }
}
