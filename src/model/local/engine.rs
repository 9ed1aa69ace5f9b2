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
pub(crate) struct Generate {
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
    /// Prompt tokens whose keys and values came from an earlier prompt.
    pub cached_tokens: usize,
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

/// The model's own tokenizer, from its GGUF metadata.
pub fn tokenizer(ct: &gguf_file::Content) -> Result<Tokenizer, EngineError> {
    let mut tokenizer =
        Tokenizer::from_gguf(ct).map_err(|e| EngineError::Tokenizer(e.to_string()))?;
    let pre = ct
        .metadata
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok());
    if pre.map(String::as_str) == Some("smollm") {
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
    Ok(tokenizer)
}

pub struct Engine {
    weights: Weights,
    tokenizer: Tokenizer,
    template: minijinja::Environment<'static>,
    /// Tokens that end a turn.
    end: Vec<u32>,
}

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
        let tokenizer = tokenizer(&ct)?;
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
        let weights = Weights::load(&ct, &mut f, &Device::Cpu)?;
        Ok(Engine {
            weights,
            tokenizer,
            template,
            end,
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
}

/// Next token from one row of logits: greedy at temperature 0, else
/// temperature and nucleus (top-p) sampling.
fn sample_token(logits: &Tensor, g: &Generate, rng: &mut Xoshiro) -> Result<u32, EngineError> {
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

/// Replies cap at this many tokens when a request sets no `max_tokens`.
const MAX_TOKENS_DEFAULT: usize = 1024;

/// One sample being generated.
struct Row {
    job: usize,
    sample: usize,
    cache: Cache,
    out: Vec<u32>,
    /// The token sampled last, not yet fed back.
    next: u32,
    rng: Xoshiro,
}

/// What reading a prompt took.
#[derive(Clone, Copy, Debug)]
struct Prefilled {
    prompt_tokens: usize,
    cached_tokens: usize,
    time: Duration,
}

/// A request in the batch: its samples finish at different times.
struct Job<T> {
    ticket: T,
    g: Generate,
    max_tokens: usize,
    samples: Vec<Option<(String, Finish)>>,
    prefill: Prefilled,
    completion_tokens: usize,
    started: Instant,
    steps: usize,
}

/// Requests decoded together (continuous batching): each decode step runs
/// one token of every live sample of every request through the model at
/// once, so concurrent requests share the cost of reading the weights.
/// `T` is whatever the caller needs back with a finished request.
pub(crate) struct Batch<'e, T> {
    engine: &'e Engine,
    rows: Vec<Row>,
    jobs: Vec<Option<Job<T>>>,
    /// Recent prompts and their caches, newest last: a prompt that starts
    /// like one of them (the patch turn after the explain turn, the next
    /// attempt of a fix) reads only what is new.
    /// A prompt asked again exactly gets the same logits back, so seeded
    /// sampling repeats itself whatever was asked in between.
    prefixes: Vec<(Vec<u32>, Cache, Tensor)>,
}

/// Prompt caches kept for reuse.
const PREFIXES_KEPT: usize = 2;
/// Shorter shared beginnings (the chat template's system line) are not
/// worth a copy of the cache.
const PREFIX_MIN: usize = 32;

impl<'e, T> Batch<'e, T> {
    pub fn new(engine: &'e Engine) -> Self {
        Batch {
            engine,
            rows: Vec::new(),
            jobs: Vec::new(),
            prefixes: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.iter().all(Option::is_none)
    }

    /// Read the prompt (prefill) and start `g.n` samples from it. On error
    /// the ticket comes back with it.
    pub fn add(&mut self, g: Generate, ticket: T) -> Result<(), (EngineError, T)> {
        match self.prefill(&g) {
            Ok((rows, prefill, max_tokens)) => {
                let n = rows.len();
                self.rows.extend(rows);
                self.jobs.push(Some(Job {
                    ticket,
                    samples: vec![None; n],
                    g,
                    max_tokens,
                    prefill,
                    completion_tokens: 0,
                    started: Instant::now(),
                    steps: 0,
                }));
                Ok(())
            }
            Err(e) => Err((e, ticket)),
        }
    }

    /// Every request still in the batch, abandoned (after an error).
    pub fn drain(&mut self) -> Vec<T> {
        self.rows.clear();
        self.jobs.drain(..).flatten().map(|j| j.ticket).collect()
    }

    #[allow(clippy::type_complexity)]
    fn prefill(&mut self, g: &Generate) -> Result<(Vec<Row>, Prefilled, usize), EngineError> {
        let e = self.engine;
        let prompt = e.encode(&e.render(&g.messages)?)?;
        let n = g.n.max(1);
        let room = e.weights.shape.context.saturating_sub(prompt.len());
        let max_tokens = match g.max_tokens {
            0 => MAX_TOKENS_DEFAULT,
            m => m,
        }
        .min(room);
        let t0 = Instant::now();
        let (logits, mut cache, start) = match self.prefixes.iter().find(|(p, _, _)| *p == prompt) {
            Some((_, c, l)) => (l.clone(), c.fork()?, prompt.len()),
            None => {
                // The longest shared beginning with a kept prompt; at
                // least the last token is run, for its logits.
                let best = self
                    .prefixes
                    .iter()
                    .enumerate()
                    .map(|(i, (p, _, _))| {
                        let common = p.iter().zip(&prompt).take_while(|(a, b)| a == b).count();
                        (i, common.min(prompt.len().saturating_sub(1)))
                    })
                    .filter(|&(_, c)| c >= PREFIX_MIN)
                    .max_by_key(|&(_, c)| c);
                let (start, start_cache) = match best {
                    Some((i, common)) => (common, self.prefixes[i].1.fork_at(common)?),
                    None => (0, Cache::default()),
                };
                let mut caches = [start_cache];
                let logits = e
                    .weights
                    .forward(&prompt[start..], &mut caches)?
                    .squeeze(0)?;
                let [cache] = caches;
                if self.prefixes.len() >= PREFIXES_KEPT {
                    self.prefixes.remove(0);
                }
                self.prefixes
                    .push((prompt.clone(), cache.fork()?, logits.clone()));
                (logits, cache, start)
            }
        };
        let prefill = Prefilled {
            prompt_tokens: prompt.len(),
            cached_tokens: start,
            time: t0.elapsed(),
        };
        let id = self.jobs.len();
        let mut rows = Vec::with_capacity(n);
        for sample in 0..n {
            let mut rng = match g.seed {
                Some(s) => Xoshiro::seed_from_u64(s.wrapping_add(sample as u64)),
                None => Xoshiro::from_rng(&mut rand::rng()),
            };
            let next = sample_token(&logits, g, &mut rng)?;
            // The last sample takes the prompt's cache itself.
            let cache = if sample + 1 == n {
                std::mem::take(&mut cache)
            } else {
                cache.fork()?
            };
            rows.push(Row {
                job: id,
                sample,
                cache,
                out: Vec::new(),
                next,
                rng,
            });
        }
        Ok((rows, prefill, max_tokens))
    }

    /// Drop the requests `gone` says were abandoned (their samples stop).
    pub fn cancel_where(&mut self, gone: impl Fn(&T) -> bool) {
        for slot in self.jobs.iter_mut() {
            if slot.as_ref().is_some_and(|j| gone(&j.ticket)) {
                *slot = None;
            }
        }
        let jobs = &self.jobs;
        self.rows.retain(|r| jobs[r.job].is_some());
    }

    /// Take each live sample's last token: finish the samples it ends, feed
    /// the others through the model together and sample their next tokens.
    /// Returns the requests whose last sample finished.
    pub fn step(&mut self) -> Result<Vec<(T, Generated)>, EngineError> {
        let e = self.engine;
        let mut live = Vec::with_capacity(self.rows.len());
        for mut row in std::mem::take(&mut self.rows) {
            let Some(job) = self.jobs[row.job].as_mut() else {
                continue;
            };
            let tok = row.next;
            let finish = if e.end.contains(&tok) {
                Some((e.decode(&row.out)?, Finish::Stop))
            } else {
                row.out.push(tok);
                let mut f = None;
                if !job.g.stop.is_empty() {
                    let text = e.decode(&row.out)?;
                    if let Some(at) = job
                        .g
                        .stop
                        .iter()
                        .filter_map(|s| text.find(s.as_str()))
                        .min()
                    {
                        f = Some((text[..at].to_string(), Finish::Stop));
                    }
                }
                if f.is_none() && row.out.len() >= job.max_tokens {
                    f = Some((e.decode(&row.out)?, Finish::Length));
                }
                f
            };
            match finish {
                Some(done) => {
                    job.completion_tokens += row.out.len();
                    job.samples[row.sample] = Some(done);
                }
                None => live.push(row),
            }
        }
        if !live.is_empty() {
            let feed: Vec<u32> = live.iter().map(|r| r.next).collect();
            let mut caches: Vec<Cache> = live
                .iter_mut()
                .map(|r| std::mem::take(&mut r.cache))
                .collect();
            let t0 = Instant::now();
            let logits = e.weights.forward(&feed, &mut caches)?;
            tracing::debug!(
                rows = feed.len(),
                ms = t0.elapsed().as_millis() as u64,
                "decode step"
            );
            for (i, (row, cache)) in live.iter_mut().zip(caches).enumerate() {
                row.cache = cache;
                if let Some(job) = self.jobs[row.job].as_ref() {
                    row.next = sample_token(&logits.get(i)?, &job.g, &mut row.rng)?;
                }
            }
            let mut stepped = vec![false; self.jobs.len()];
            for r in &live {
                stepped[r.job] = true;
            }
            for (j, s) in self.jobs.iter_mut().zip(stepped) {
                if let (Some(j), true) = (j.as_mut(), s) {
                    j.steps += 1;
                }
            }
        }
        self.rows = live;
        let mut finished = Vec::new();
        for slot in self.jobs.iter_mut() {
            if slot
                .as_ref()
                .is_some_and(|j| j.samples.iter().all(Option::is_some))
                && let Some(j) = slot.take()
            {
                finished.push((
                    j.ticket,
                    Generated {
                        samples: j.samples.into_iter().flatten().collect(),
                        prompt_tokens: j.prefill.prompt_tokens,
                        cached_tokens: j.prefill.cached_tokens,
                        completion_tokens: j.completion_tokens,
                        prefill: j.prefill.time,
                        decode: j.started.elapsed(),
                        steps: j.steps,
                    },
                ));
            }
        }
        if self.jobs.iter().all(Option::is_none) {
            self.jobs.clear();
        }
        Ok(finished)
    }
}
