//! Dollar cost of a call from a price table.
//!
//! Built-in list prices (USD per million tokens, input/output, as published
//! by OpenAI and Anthropic in 2025) can be overridden or extended from TOML.
//! A model is matched exactly, then by the longest table entry that prefixes
//! it (so dated ids like `gpt-4o-mini-2024-07-18` or
//! `claude-sonnet-4-20250514` resolve), after dropping an OpenRouter-style
//! `vendor/` prefix. Anything else is local or unknown: cost 0, unpriced.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::types::Usage;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Price {
    /// USD per million prompt tokens.
    pub input_per_mtok: f64,
    /// USD per million completion tokens.
    pub output_per_mtok: f64,
}

const BUILTIN: &[(&str, f64, f64)] = &[
    ("gpt-4o", 2.50, 10.00),
    ("gpt-4o-mini", 0.15, 0.60),
    ("gpt-4.1", 2.00, 8.00),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("gpt-4.1-nano", 0.10, 0.40),
    ("o1", 15.00, 60.00),
    ("o1-mini", 1.10, 4.40),
    ("o1-pro", 150.00, 600.00),
    ("o3", 2.00, 8.00),
    ("o3-mini", 1.10, 4.40),
    ("o3-pro", 20.00, 80.00),
    ("o4-mini", 1.10, 4.40),
    ("claude-3-haiku", 0.25, 1.25),
    ("claude-3-5-haiku", 0.80, 4.00),
    ("claude-3-5-sonnet", 3.00, 15.00),
    ("claude-3-7-sonnet", 3.00, 15.00),
    ("claude-sonnet-4", 3.00, 15.00),
    ("claude-haiku-4-5", 1.00, 5.00),
    ("claude-opus-4", 15.00, 75.00),
    ("claude-opus-4-5", 5.00, 25.00),
];

#[derive(Clone, Debug, PartialEq)]
pub struct PriceTable {
    prices: BTreeMap<String, Price>,
}

impl Default for PriceTable {
    fn default() -> Self {
        PriceTable::builtin()
    }
}

impl PriceTable {
    pub fn builtin() -> Self {
        let prices = BUILTIN
            .iter()
            .map(|&(m, i, o)| {
                (
                    m.to_string(),
                    Price {
                        input_per_mtok: i,
                        output_per_mtok: o,
                    },
                )
            })
            .collect();
        PriceTable { prices }
    }

    /// A table with no prices: every model is unpriced.
    pub fn empty() -> Self {
        PriceTable {
            prices: BTreeMap::new(),
        }
    }

    /// Add or replace entries (e.g. from `[prices."model"]` in TOML).
    pub fn with_overrides(mut self, overrides: &BTreeMap<String, Price>) -> Self {
        for (m, p) in overrides {
            self.prices.insert(m.clone(), *p);
        }
        self
    }

    pub fn lookup(&self, model: &str) -> Option<Price> {
        let bare = model.rsplit_once('/').map_or(model, |(_, m)| m);
        for name in [model, bare] {
            if let Some(p) = self.prices.get(name) {
                return Some(*p);
            }
        }
        self.prices
            .iter()
            .filter(|(k, _)| is_version_of(bare, k) || is_version_of(model, k))
            .max_by_key(|(k, _)| k.len())
            .map(|(_, p)| *p)
    }

    /// `(usd, priced)` for this usage.
    pub fn cost(&self, model: &str, usage: &Usage) -> (f64, bool) {
        match self.lookup(model) {
            Some(p) => (
                (usage.prompt_tokens as f64 * p.input_per_mtok
                    + usage.completion_tokens as f64 * p.output_per_mtok)
                    / 1_000_000.0,
                true,
            ),
            None => (0.0, false),
        }
    }
}

/// `model` is `base` or a dated/suffixed variant of it (`base-…`, `base@…`).
fn is_version_of(model: &str, base: &str) -> bool {
    model
        .strip_prefix(base)
        .is_some_and(|rest| rest.starts_with('-') || rest.starts_with('@'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage() -> Usage {
        Usage {
            prompt_tokens: 1_000_000,
            completion_tokens: 1_000_000,
            estimated: false,
            timing: None,
        }
    }

    #[test]
    fn exact_prefixed_and_vendor() {
        let t = PriceTable::builtin();
        assert_eq!(t.cost("gpt-4o-mini", &usage()), (0.75, true));
        assert_eq!(t.cost("gpt-4o-mini-2024-07-18", &usage()), (0.75, true));
        assert_eq!(t.cost("gpt-4o-2024-08-06", &usage()), (12.5, true));
        assert_eq!(t.cost("openai/gpt-4.1-mini", &usage()), (2.0, true));
        assert_eq!(t.cost("claude-sonnet-4-20250514", &usage()), (18.0, true));
        assert_eq!(t.cost("claude-opus-4-5-20251101", &usage()), (30.0, true));
        assert_eq!(t.cost("claude-3-5-haiku-latest", &usage()), (4.8, true));
    }

    #[test]
    fn unknown_is_unpriced() {
        let t = PriceTable::builtin();
        assert_eq!(
            t.cost("Qwen/Qwen2.5-Coder-32B-Instruct", &usage()),
            (0.0, false)
        );
        assert_eq!(t.cost("gpt-4omni", &usage()), (0.0, false));
        assert_eq!(t.cost("llama3.1:8b", &usage()), (0.0, false));
        assert_eq!(t.cost("o3-pro-2025-06-10", &usage()), (100.0, true));
    }

    #[test]
    fn overrides_win() {
        let mut o = BTreeMap::new();
        o.insert(
            "gpt-4o".to_string(),
            Price {
                input_per_mtok: 1.0,
                output_per_mtok: 1.0,
            },
        );
        let t = PriceTable::builtin().with_overrides(&o);
        assert_eq!(t.cost("gpt-4o", &usage()), (2.0, true));
    }
}
