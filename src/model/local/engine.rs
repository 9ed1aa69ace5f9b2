//! One loaded GGUF model: its weights, its own tokenizer and chat template,
//! and generation with sampling, stop strings and a token cap.
//!
//! `n` samples of one prompt share its prefill: the prompt runs once, its
//! cache is widened to `n` rows, and the samples decode as one batch (a decode
//! step reads every weight once whatever the batch, so `n` samples cost little
//! more than one).

use std::path::Path;
use std::time::{Duration, Instant};

use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use candle_core::{D, Device, Tensor};
use rand::rngs::Xoshiro256PlusPlus as Xoshiro;
use rand::{RngExt, SeedableRng};
use tokenizers::Tokenizer;

use super::transformer::{Cache, Weights};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{path}: {message}")]
    Load { path: String, message: String },
    #[error("chat template: {0}")]
    Template(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("inference: {0}")]
    Inference(candle_core::Error),
    #[error("generation cancelled")]
    Cancelled,
}

/// Why a sample ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// End of turn, or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct Generate {
    /// `(role, content)` in order.
    pub messages: Vec<(String, String)>,
    /// 0 (or none) is greedy.
    pub temperature: f64,
    pub top_p: f64,
    pub max_tokens: usize,
    pub stop: Vec<String>,
    pub seed: Option<u64>,
    pub n: usize,
}

#[derive(Clone, Debug)]
pub struct Generated {
    pub samples: Vec<(String, Finish)>,
    pub prompt_tokens: usize,
    /// Tokens produced over all samples (the end-of-turn token excluded).
    pub completion_tokens: usize,
    pub prefill: Duration,
    pub decode: Duration,
    /// Decode steps run (one token for every live sample each).
    pub steps: usize,
}

impl From<candle_core::Error> for EngineError {
    fn from(e: candle_core::Error) -> Self {
        EngineError::Inference(e)
    }
}

pub struct Engine {
    weights: Weights,
    tokenizer: Tokenizer,
    template: minijinja::Environment<'static>,
    /// Tokens that end a turn.
    end: Vec<u32>,
    pub name: String,
}

const MAX_TOKENS_DEFAULT: usize = 1024;

impl Engine {
    pub fn load(path: &Path) -> Result<Engine, EngineError> {
        let load_err = |message: String| EngineError::Load {
            path: path.display().to_string(),
            message,
        };
        let mut f = std::fs::File::open(path).map_err(|e| load_err(e.to_string()))?;
        let ct = gguf_file::Content::read(&mut f)
            .map_err(|e| load_err(format!("not a GGUF file: {e}")))?;
        let text = |k: &str| -> Option<String> {
            ct.metadata.get(k).and_then(|v| v.to_string().ok()).cloned()
        };
        let mut tokenizer =
            Tokenizer::from_gguf(&ct).map_err(|e| EngineError::Tokenizer(e.to_string()))?;
        if text("tokenizer.ggml.pre").as_deref() == Some("smollm") {
            // candle maps unknown pre-tokenizers to GPT-2's, which adds a
            // prefix space; SmolLM2 splits digits and adds none.
            use tokenizers::pre_tokenizers::{
                byte_level::ByteLevel, digits::Digits, sequence::Sequence,
            };
            tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
                Digits::new(true).into(),
                ByteLevel::new(false, true, true).into(),
            ])));
        }
        let source = text("tokenizer.chat_template")
            .ok_or_else(|| load_err("has no tokenizer.chat_template".into()))?;
        let mut template = minijinja::Environment::new();
        template
            .add_template_owned("chat", source)
            .map_err(|e| EngineError::Template(e.to_string()))?;
        let mut end = Vec::new();
        if let Some(eos) = ct
            .metadata
            .get("tokenizer.ggml.eos_token_id")
            .and_then(|v| v.to_u32().ok())
        {
            end.push(eos);
        }
        for t in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>"] {
            if let Some(id) = tokenizer.token_to_id(t)
                && !end.contains(&id)
            {
                end.push(id);
            }
        }
        let name = text("general.name").unwrap_or_else(|| path.display().to_string());
        let weights = Weights::load(&ct, &mut f, &Device::Cpu)?;
        Ok(Engine {
            weights,
            tokenizer,
            template,
            end,
            name,
        })
    }

    /// The chat rendered by the model's own template, ready for the reply.
    pub fn render(&self, messages: &[(String, String)]) -> Result<String, EngineError> {
        let msgs: Vec<_> = messages
            .iter()
            .map(|(role, content)| minijinja::context! { role => role, content => content })
            .collect();
        self.template
            .get_template("chat")
            .and_then(|t| {
                t.render(minijinja::context! {
                    messages => msgs,
                    add_generation_prompt => true,
                })
            })
            .map_err(|e| EngineError::Template(e.to_string()))
    }

    /// Tokens of `text` by the model's own tokenizer (special tokens parsed).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| EngineError::Tokenizer(e.to_string()))
    }

    fn decode(&self, ids: &[u32]) -> Result<String, EngineError> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| EngineError::Tokenizer(e.to_string()))
    }

    /// Generate `g.n` replies. `cancelled` is polled between tokens.
    pub fn generate(
        &self,
        g: &Generate,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Generated, EngineError> {
        let prompt = self.encode(&self.render(&g.messages)?)?;
        let n = g.n.max(1);
        let max_tokens = if g.max_tokens == 0 {
            MAX_TOKENS_DEFAULT
        } else {
            g.max_tokens
        };
        let room = self.weights.shape.context.saturating_sub(prompt.len());
        let max_tokens = max_tokens.min(room);
        let t0 = Instant::now();
        let mut cache = Cache::default();
        let logits = self.weights.forward(&prompt, 1, &mut cache)?;
        let prefill = t0.elapsed();
        let t1 = Instant::now();
        let mut rngs: Vec<Xoshiro> = (0..n)
            .map(|i| match g.seed {
                Some(s) => Xoshiro::seed_from_u64(s.wrapping_add(i as u64)),
                None => Xoshiro::from_rng(&mut rand::rng()),
            })
            .collect();
        let first = logits.squeeze(0)?;
        let mut out: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut done: Vec<Option<Finish>> = vec![None; n];
        let mut cut: Vec<Option<String>> = vec![None; n];
        // Rows of the batch, as sample indices.
        let mut live: Vec<usize> = (0..n).collect();
        let mut next: Vec<u32> = Vec::with_capacity(n);
        for rng in rngs.iter_mut() {
            next.push(self.sample(&first, g, rng)?);
        }
        let mut cache = if n > 1 { cache.widen(n)? } else { cache };
        let mut steps = 0;
        if max_tokens == 0 {
            for d in done.iter_mut() {
                *d = Some(Finish::Length);
            }
            live.clear();
        }
        while !live.is_empty() {
            if cancelled() {
                return Err(EngineError::Cancelled);
            }
            // Record this step's tokens; retire finished samples.
            let mut keep = Vec::with_capacity(live.len());
            let mut feed = Vec::with_capacity(live.len());
            for (row, &s) in live.iter().enumerate() {
                let tok = next[row];
                if self.end.contains(&tok) {
                    done[s] = Some(Finish::Stop);
                    continue;
                }
                out[s].push(tok);
                if !g.stop.is_empty() {
                    let text = self.decode(&out[s])?;
                    if let Some(at) = g.stop.iter().filter_map(|st| text.find(st.as_str())).min() {
                        cut[s] = Some(text[..at].to_string());
                        done[s] = Some(Finish::Stop);
                        continue;
                    }
                }
                if out[s].len() >= max_tokens {
                    done[s] = Some(Finish::Length);
                    continue;
                }
                keep.push(row as u32);
                feed.push(tok);
            }
            if keep.is_empty() {
                break;
            }
            if keep.len() < live.len() {
                cache = cache.keep(&keep)?;
                live = keep.iter().map(|&r| live[r as usize]).collect();
            }
            let logits = self.weights.forward(&feed, live.len(), &mut cache)?;
            steps += 1;
            next.clear();
            for (row, &s) in live.iter().enumerate() {
                next.push(self.sample(&logits.get(row)?, g, &mut rngs[s])?);
            }
        }
        let decode = t1.elapsed();
        let mut samples = Vec::with_capacity(n);
        for s in 0..n {
            let finish = done[s].unwrap_or(Finish::Length);
            let text = match cut[s].take() {
                Some(t) => t,
                None => self.decode(&out[s])?,
            };
            samples.push((text, finish));
        }
        Ok(Generated {
            samples,
            prompt_tokens: prompt.len(),
            completion_tokens: out.iter().map(Vec::len).sum(),
            prefill,
            decode,
            steps,
        })
    }

    /// Next token from one row of logits: greedy at temperature 0, else
    /// temperature and nucleus (top-p) sampling.
    fn sample(&self, logits: &Tensor, g: &Generate, rng: &mut Xoshiro) -> Result<u32, EngineError> {
        if g.temperature <= 0.0 {
            return Ok(logits.argmax(D::Minus1)?.to_scalar::<u32>()?);
        }
        let logits: Vec<f32> = (logits / g.temperature)?.to_vec1()?;
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut probs: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, (l - max).exp()))
            .collect();
        let sum: f32 = probs.iter().map(|p| p.1).sum();
        let top_p = if g.top_p > 0.0 && g.top_p < 1.0 {
            g.top_p as f32
        } else {
            1.0
        };
        // The nucleus is almost always within the top few hundred tokens:
        // sort those, not the whole vocabulary.
        let k = probs.len().min(512);
        if k < probs.len() {
            probs.select_nth_unstable_by(k, |a, b| b.1.total_cmp(&a.1));
        }
        let head = &mut probs[..k];
        head.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut cum = 0.0;
        let mut cut = head.len();
        for (i, p) in head.iter().enumerate() {
            cum += p.1 / sum;
            if cum >= top_p {
                cut = i + 1;
                break;
            }
        }
        let nucleus = &head[..cut];
        let mass: f32 = nucleus.iter().map(|p| p.1).sum();
        let mut r = rng.random::<f32>() * mass;
        for p in nucleus {
            r -= p.1;
            if r <= 0.0 {
                return Ok(p.0);
            }
        }
        Ok(nucleus.last().map_or(0, |p| p.0))
    }
}
