//! [`Client`]: the robust layer every caller uses. Wraps one provider with
//! bounded concurrency, a per-attempt timeout, retries, cancellation,
//! budgets, pricing and the transcript.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::Model;
use super::budget::{BudgetTracker, Budgets};
use super::error::ModelError;
use super::pricing::PriceTable;
use super::retry::RetryPolicy;
use super::transcript::{
    RecordedRequest, RecordedResponse, TranscriptEntry, TranscriptWriter, fingerprint,
};
use super::types::{ChatRequest, Completion, SamplingParams};

#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Calls in flight at once (HTTP attempts, not queued callers).
    pub concurrency: usize,
    /// Limit on one attempt, from send to parsed body.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub budgets: Budgets,
    pub prices: PriceTable,
    /// Filled into a request's params where the caller left them unset.
    pub defaults: SamplingParams,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            concurrency: 8,
            timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            budgets: Budgets::default(),
            prices: PriceTable::builtin(),
            defaults: SamplingParams::default(),
        }
    }
}

pub struct Client {
    inner: Arc<dyn Model>,
    permits: Arc<Semaphore>,
    timeout: Duration,
    retry: RetryPolicy,
    budget: Arc<BudgetTracker>,
    prices: PriceTable,
    defaults: SamplingParams,
    transcript: Option<TranscriptWriter>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("provider", &self.inner.provider())
            .field("model", &self.inner.model())
            .field("concurrency", &self.permits.available_permits())
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("transcript", &self.transcript)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Wrap `inner`. With a `run_dir`, every call is appended to
    /// `run_dir/transcript.jsonl`.
    pub fn new(
        inner: Arc<dyn Model>,
        opts: ClientOptions,
        run_dir: Option<&Path>,
    ) -> Result<Self, ModelError> {
        let transcript = run_dir.map(TranscriptWriter::open).transpose()?;
        Ok(Client {
            inner,
            permits: Arc::new(Semaphore::new(opts.concurrency.max(1))),
            timeout: opts.timeout,
            retry: opts.retry,
            budget: Arc::new(BudgetTracker::new(opts.budgets)),
            prices: opts.prices,
            defaults: opts.defaults,
            transcript,
            cancel: CancellationToken::new(),
        })
    }

    /// A client for the same provider, sharing this one's concurrency
    /// slots, budget and cancel token, that records every call into
    /// `dir/transcript.jsonl` with its own writer (instead of this one's).
    /// For callers that learn where to record only after the client is
    /// built, such as a fix session, whose state dir is named by its id.
    pub fn recording_into(&self, dir: &Path) -> Result<Client, ModelError> {
        Ok(Client {
            inner: self.inner.clone(),
            permits: self.permits.clone(),
            timeout: self.timeout,
            retry: self.retry,
            budget: self.budget.clone(),
            prices: self.prices.clone(),
            defaults: self.defaults.clone(),
            transcript: Some(TranscriptWriter::open(dir)?),
            cancel: self.cancel.clone(),
        })
    }

    /// Cancelling this token ends every call in flight (and every later one)
    /// with [`ModelError::Cancelled`].
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    pub fn budget(&self) -> &BudgetTracker {
        &self.budget
    }

    pub fn transcript_path(&self) -> Option<&Path> {
        self.transcript.as_ref().map(TranscriptWriter::path)
    }

    /// [`Model::complete`], also ended early by `cancel`. Dropping the
    /// returned future cancels too (the HTTP request is aborted and its
    /// concurrency slot freed), but then nothing is written to the transcript.
    pub async fn complete_with_cancel(
        &self,
        req: &ChatRequest,
        cancel: &CancellationToken,
    ) -> Result<Completion, ModelError> {
        self.budget.reserve(req.task.as_deref())?;
        let mut sent = req.clone();
        fill_defaults(&mut sent.params, &self.defaults);

        let started = Instant::now();
        let mut attempts = 0u32;
        let result = tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(ModelError::Cancelled),
            _ = self.cancel.cancelled() => Err(ModelError::Cancelled),
            r = self.with_retries(&sent, &mut attempts) => r,
        };
        let result = result.map(|mut c| {
            (c.cost_usd, c.priced) = self.prices.cost(&c.model, &c.usage);
            c.latency = started.elapsed();
            // Charged before anything else can fail: what was paid for counts.
            self.budget
                .record(req.task.as_deref(), &c.usage, c.cost_usd);
            c
        });

        if let Some(t) = &self.transcript {
            // The fingerprint covers the caller's request, before config
            // defaults, so a replay run needs no matching flags.
            let fp = fingerprint(self.inner.model(), req);
            let entry = entry(&fp, &sent, &result, self.inner.as_ref(), attempts, started);
            t.append(&entry).await?;
        }
        result
    }

    async fn with_retries(
        &self,
        req: &ChatRequest,
        attempts: &mut u32,
    ) -> Result<Completion, ModelError> {
        loop {
            *attempts += 1;
            let outcome = {
                let _permit = self
                    .permits
                    .acquire()
                    .await
                    .map_err(|_| ModelError::Cancelled)?;
                // An in-process model's request waits its turn in the
                // model's own queue; a deadline would only abandon queued
                // work and ask again.
                let limit = match self.inner.in_process() {
                    true => Duration::MAX,
                    false => self.timeout,
                };
                match tokio::time::timeout(limit, self.inner.complete(req)).await {
                    Ok(r) => r,
                    Err(_) => Err(ModelError::Timeout {
                        provider: self.inner.provider().to_string(),
                        after: self.timeout,
                    }),
                }
            };
            match outcome {
                Ok(c) => return Ok(c),
                Err(e) if !e.is_retryable() => return Err(e),
                Err(e) if *attempts > self.retry.max_retries => {
                    return Err(if *attempts == 1 {
                        e
                    } else {
                        ModelError::RetriesExhausted {
                            attempts: *attempts,
                            last: Box::new(e),
                        }
                    });
                }
                Err(e) => {
                    let wait = self.retry.delay(*attempts - 1, e.retry_after());
                    tracing::warn!(error = %e, attempt = *attempts, ?wait, "model call failed; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

#[async_trait]
impl Model for Client {
    fn provider(&self) -> &str {
        self.inner.provider()
    }
    fn model(&self) -> &str {
        self.inner.model()
    }
    fn in_process(&self) -> bool {
        self.inner.in_process()
    }
    async fn complete(&self, req: &ChatRequest) -> Result<Completion, ModelError> {
        let never = CancellationToken::new();
        self.complete_with_cancel(req, &never).await
    }
}

fn fill_defaults(p: &mut SamplingParams, d: &SamplingParams) {
    p.temperature = p.temperature.or(d.temperature);
    p.top_p = p.top_p.or(d.top_p);
    p.max_tokens = p.max_tokens.or(d.max_tokens);
    p.seed = p.seed.or(d.seed);
    if p.stop.is_empty() {
        p.stop.clone_from(&d.stop);
    }
}

fn entry(
    fp: &str,
    sent: &ChatRequest,
    result: &Result<Completion, ModelError>,
    inner: &dyn Model,
    attempts: u32,
    started: Instant,
) -> TranscriptEntry {
    let ts_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let (provider, model) = match result {
        Ok(c) => (c.provider.clone(), c.model.clone()),
        Err(_) => (inner.provider().to_string(), inner.model().to_string()),
    };
    TranscriptEntry {
        ts_ms,
        fingerprint: fp.to_string(),
        key: sent.key.clone(),
        task: sent.task.clone(),
        provider,
        model,
        request: RecordedRequest {
            messages: sent.messages.clone(),
            params: sent.params.clone(),
        },
        response: result.as_ref().ok().map(|c| RecordedResponse {
            choices: c.choices.clone(),
        }),
        usage: result.as_ref().ok().map(|c| c.usage),
        cost_usd: result.as_ref().map_or(0.0, |c| c.cost_usd),
        priced: result.as_ref().is_ok_and(|c| c.priced),
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        attempts,
        error: result.as_ref().err().map(ToString::to_string),
    }
}
