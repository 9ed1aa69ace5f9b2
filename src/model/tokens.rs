//! Token counts: estimates for responses that carry no usage, and the
//! per-part counts of a reply (program, explanation, rest) that pass@t uses.
//!
//! Uses tiktoken's BPEs (their ranks are embedded in the crate, so this works
//! offline). [`for_model`] picks the model's own tokenizer where it is known
//! (o200k_base for gpt-4o, gpt-4.1, gpt-5 and the o-series, cl100k_base for
//! gpt-4 and gpt-3.5) and otherwise cl100k_base, marked as an estimate.
//! Provider usage figures from here are always marked `estimated`.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use tiktoken_rs::CoreBPE;
use tiktoken_rs::tokenizer::{Tokenizer, get_tokenizer};

use super::types::{Choice, Message, Usage};

/// Counts the tokens of generated text. The seam for tokenizers this crate
/// does not embed (a local GGUF model's own vocabulary): implement it and
/// return it from [`for_model`].
pub(crate) trait TokenCounter: Send + Sync {
    fn count(&self, text: &str) -> u64;
    /// Which tokenizer, and whether it is the model's own.
    fn counted_by(&self) -> CountedBy;
}

/// The tokenizers we embed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bpe {
    O200kBase,
    Cl100kBase,
    /// A local model's own tokenizer, read from its GGUF file.
    Gguf,
}

/// How a node's token parts were counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountedBy {
    pub tokenizer: Bpe,
    /// Not the model's own tokenizer: the counts are estimates.
    pub estimate: bool,
}

/// A tiktoken BPE.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tiktoken(CountedBy);

impl TokenCounter for Tiktoken {
    fn count(&self, text: &str) -> u64 {
        let bpe = match self.0.tokenizer {
            Bpe::O200kBase => o200k(),
            Bpe::Cl100kBase | Bpe::Gguf => bpe(),
        };
        match bpe {
            Some(b) => b.encode_ordinary(text).len() as u64,
            None => (text.len() as u64).div_ceil(4),
        }
    }

    fn counted_by(&self) -> CountedBy {
        self.0
    }
}

/// The counter for `model` (`gpt-4o-2024-08-06`, `openai:gpt-4.1`,
/// `openrouter:openai/gpt-4o`, …): its own tokenizer when tiktoken knows
/// the name, else cl100k_base marked as an estimate.
pub(crate) fn for_model(model: &str) -> Tiktoken {
    let name = model.rsplit([':', '/']).next().unwrap_or(model);
    let own = match get_tokenizer(name) {
        Some(Tokenizer::O200kBase) => Some(Bpe::O200kBase),
        Some(Tokenizer::Cl100kBase) => Some(Bpe::Cl100kBase),
        _ => None,
    };
    Tiktoken(CountedBy {
        tokenizer: own.unwrap_or(Bpe::Cl100kBase),
        estimate: own.is_none(),
    })
}

/// The counter for the model a node names: a local model's own tokenizer
/// when its file is here, else [`for_model`].
pub(crate) fn counter_for(model: &str) -> std::sync::Arc<dyn TokenCounter> {
    match super::local::token_counter(model) {
        Some(c) => c,
        None => std::sync::Arc::new(for_model(model)),
    }
}

fn o200k() -> Option<&'static CoreBPE> {
    static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::o200k_base().ok()).as_ref()
}

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
pub(crate) fn count_prompt(messages: &[Message]) -> u64 {
    messages
        .iter()
        .map(|m| 3 + count(m.role.as_str()) + count(&m.content))
        .sum::<u64>()
        + 3
}

pub(crate) fn estimate_usage(messages: &[Message], choices: &[Choice]) -> Usage {
    Usage {
        prompt_tokens: count_prompt(messages),
        completion_tokens: choices.iter().map(|c| count(&c.text)).sum(),
        estimated: true,
        timing: None,
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
    fn each_model_gets_its_own_tokenizer_or_an_estimate() {
        for m in [
            "gpt-4o",
            "gpt-4o-2024-08-06",
            "openai:gpt-4.1-mini",
            "o3-mini",
            "openrouter:openai/gpt-4o",
        ] {
            let c = for_model(m).counted_by();
            assert_eq!(c.tokenizer, Bpe::O200kBase, "{m}");
            assert!(!c.estimate, "{m}");
        }
        for m in ["gpt-4-0314", "gpt-3.5-turbo-0301"] {
            let c = for_model(m).counted_by();
            assert_eq!((c.tokenizer, c.estimate), (Bpe::Cl100kBase, false), "{m}");
        }
        for m in ["vllm:qwen2.5-coder-32b", "anthropic:claude-sonnet-4"] {
            let c = for_model(m).counted_by();
            assert_eq!((c.tokenizer, c.estimate), (Bpe::Cl100kBase, true), "{m}");
        }
        // The two vocabularies split this differently (o200k merges more).
        let text = "def add(xs):\n    return sum(xs)\n";
        assert_eq!(for_model("gpt-4-0314").count(text), count(text));
        assert!(for_model("gpt-4o").count(text) > 0);
    }

    #[test]
    fn prompt_framing() {
        let m = vec![Message::user("hello world")];
        // 3 framing + 1 ("user") + 2 + 3 reply priming.
        assert_eq!(count_prompt(&m), 9);
    }
}
