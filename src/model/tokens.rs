//! Token estimates for responses that carry no usage.
//!
//! Uses tiktoken's cl100k_base (its BPE ranks are embedded in the crate, so
//! this works offline). It is exact for GPT-4-era OpenAI models and a fair
//! estimate for others; figures from here are always marked `estimated`.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

use super::types::{Choice, Message, Usage};

fn bpe() -> Option<&'static CoreBPE> {
    static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::cl100k_base().ok()).as_ref()
}

/// Tokens in `text` (falls back to ~4 bytes per token if the tokenizer
/// could not be built, which the embedded data makes unlikely).
pub fn count(text: &str) -> u64 {
    match bpe() {
        Some(b) => b.encode_ordinary(text).len() as u64,
        None => (text.len() as u64).div_ceil(4),
    }
}

/// Prompt tokens as OpenAI counts chat input: per message 3 framing tokens
/// plus role and content, plus 3 to prime the reply.
pub fn count_prompt(messages: &[Message]) -> u64 {
    messages
        .iter()
        .map(|m| 3 + count(m.role.as_str()) + count(&m.content))
        .sum::<u64>()
        + 3
}

pub fn estimate_usage(messages: &[Message], choices: &[Choice]) -> Usage {
    Usage {
        prompt_tokens: count_prompt(messages),
        completion_tokens: choices.iter().map(|c| count(&c.text)).sum(),
        estimated: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cl100k_counts_known_strings() {
        // Counts published for cl100k_base (OpenAI cookbook).
        assert_eq!(count("hello world"), 2);
        assert_eq!(count("tiktoken is great!"), 6);
        assert_eq!(count(""), 0);
    }

    #[test]
    fn prompt_framing() {
        let m = vec![Message::user("hello world")];
        // 3 framing + 1 ("user") + 2 + 3 reply priming.
        assert_eq!(count_prompt(&m), 9);
    }
}
