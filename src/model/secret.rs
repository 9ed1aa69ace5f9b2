//! API keys: read from the environment only, never printed.

use std::fmt;

/// An API key. `Debug` and `Display` are redacted, and it is deliberately
/// not `Serialize`, so it cannot reach a log, a transcript or a config dump.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }
    /// The key itself, for building an auth header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Replace any occurrence of the key in `text` (e.g. a server's error
    /// message echoing it back).
    pub fn scrub(&self, text: &str) -> String {
        if self.0.len() >= 4 && text.contains(&self.0) {
            text.replace(&self.0, "[REDACTED]")
        } else {
            text.to_string()
        }
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([REDACTED])")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Env vars that hold provider keys by default. A sandbox must remove these
/// (and any custom `--api-key-env` name) from the environment it hands to
/// untrusted code.
pub(crate) const DEFAULT_KEY_VARS: &[&str] =
    &["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENROUTER_API_KEY"];

/// Read a key from `var` via `env` (a lookup so tests need not mutate the
/// process environment). Empty values count as unset.
pub(crate) fn key_from_env(var: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<ApiKey> {
    env(var)
        .filter(|v| !v.trim().is_empty())
        .map(|v| ApiKey(v.trim().to_string()))
}

/// The process environment, as a lookup for [`key_from_env`].
pub(crate) fn process_env(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_redacted() {
        let k = ApiKey::new("sk-secret-123");
        assert!(!format!("{k:?}").contains("sk-secret"));
        assert!(!format!("{k}").contains("sk-secret"));
        assert_eq!(k.scrub("bad key sk-secret-123!"), "bad key [REDACTED]!");
    }
}
