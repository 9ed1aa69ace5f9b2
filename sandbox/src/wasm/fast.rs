//! `wasm`: the pre-initialised runner component (CPython 3.14 via componentize-py).
//!
//! Instantiating the snapshot is a copy-on-write map of an already-initialised
//! interpreter, so a run costs about a millisecond, not CPython's start-up.

use super::full::tail;
use super::{MemoryCap, TRAP_GRACE, compile_cached, failure, ticks, wasm_layers};
use crate::error::SandboxError;
use crate::harness::{self, CompiledTests};
use crate::outcome::{Outcome, Status};
use crate::request::RunRequest;
use crate::runtime::RuntimeOptions;
use crate::{BoxFuture, Sandbox, SandboxKind};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::Store;
use wasmtime::component::{Component, InstancePre, Linker, ResourceTable, TypedFunc};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe, SinkOutputStream};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

struct FastState {
    ctx: WasiCtx,
    table: ResourceTable,
    cap: MemoryCap,
}

impl WasiView for FastState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

pub(crate) struct FastSandbox {
    pre: InstancePre<FastState>,
    compiled: Arc<CompiledTests>,
    walks: Arc<CompiledTests>,
    warm: Arc<Mutex<Vec<Warm>>>,
}

/// An instance kept for trusted runs (judges and walks) only: it never runs
/// a program, so reusing it saves an instantiation and the tests' loading
/// per sample without letting one sample reach another's verdict.
struct Warm {
    store: Store<FastState>,
    run: TypedFunc<(String,), (String,)>,
    used: u32,
}

/// Trusted runs served by one warm instance before it is replaced, which
/// bounds what trusted code can leave behind in it.
const WARM_USES: u32 = 500;

/// Idle warm instances kept: one per core.
fn max_idle() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// A warm instance whose linear memory has grown past this is not kept.
const WARM_MAX_MEMORY: usize = 256 << 20;

impl FastSandbox {
    pub async fn open(opts: &RuntimeOptions) -> Result<Self, SandboxError> {
        let rt = opts.fast_component().await?;
        let (engine, component) = compile_cached(
            &opts.home,
            &rt,
            "fast-runner",
            // SAFETY: the file is our own cache entry, written by `serialize`
            // for this engine configuration (the key includes its hash).
            |e, p| unsafe { Component::deserialize_file(e, p) },
            |e, p| Component::from_file(e, p),
            |m| m.serialize(),
        )
        .await?;
        let mut linker: Linker<FastState> = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| SandboxError::Wasmtime(e.to_string()))?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| SandboxError::Runtime {
                path: rt.path.clone(),
                reason: format!("{e:#}"),
            })?;
        // Instrumented suites persist per component: its hash pins the
        // interpreter and the harness that made them.
        let pinned = |what: &str| {
            opts.home
                .join("compiled")
                .join(format!("{what}-{}", &rt.sha256[..rt.sha256.len().min(16)]))
        };
        warm_slots(&pre).await;
        Ok(FastSandbox {
            pre,
            compiled: Arc::new(CompiledTests::on_disk(pinned("tests"))),
            walks: Arc::new(CompiledTests::walks_on_disk(pinned("walks"))),
            warm: Arc::default(),
        })
    }

    /// The instrumented tests for `req`, compiled by `f` in `store` (an
    /// instance no program has run in) the first time they are seen.
    async fn compiled_tests(
        &self,
        req: &RunRequest,
        store: &mut Store<FastState>,
        f: &TypedFunc<(String,), (String,)>,
    ) -> wasmtime::Result<Option<Arc<serde_json::Value>>> {
        let Some((key, compile)) = harness::compile_request(&req.tests) else {
            return Ok(None);
        };
        if let Some(c) = self.compiled.get(&key) {
            return Ok(Some(c));
        }
        let (text,) = f.call_async(&mut *store, (compile,)).await?;
        let c = harness::parse_compiled(&text).map(Arc::new);
        if let Some(c) = &c {
            self.compiled.insert(key, c.clone());
        }
        Ok(c)
    }

    /// A trusted run in a warm instance (a new one if none is idle).
    async fn run_warm(&self, req: &RunRequest) -> Outcome {
        let started = Instant::now();
        let limits = &req.limits;
        let out = Outcome::new(
            Status::Crashed,
            SandboxKind::Wasm,
            limits,
            wasm_layers(limits.memory_mb),
        );
        let idle = self.warm.lock().ok().and_then(|mut w| w.pop());
        let mut warm = match idle {
            Some(w) => w,
            None => {
                let mut store = new_store(
                    &self.pre,
                    WasiCtxBuilder::new()
                        .stdout(SinkOutputStream)
                        .stderr(SinkOutputStream)
                        .build(),
                    (limits.memory_mb as usize) << 20,
                    limits.timeout,
                );
                let made = async {
                    let inst = self.pre.instantiate_async(&mut store).await?;
                    inst.get_typed_func::<(String,), (String,)>(&mut store, "run")
                };
                match made.await {
                    Ok(run) => Warm {
                        store,
                        run,
                        used: 0,
                    },
                    Err(e) => {
                        let (status, reason) = failure(&e, false, limits);
                        return out.with_status(status, reason);
                    }
                }
            }
        };
        warm.store.data_mut().cap.max_bytes = (limits.memory_mb as usize) << 20;
        warm.store.set_epoch_deadline(ticks(limits.timeout));
        let mut request = harness::request_value(req, "");
        let run = async {
            if let Some(c) = self.compiled_tests(req, &mut warm.store, &warm.run).await? {
                request["tests_compiled"] = (*c).clone();
            }
            Ok(warm
                .run
                .call_async(&mut warm.store, (request.to_string(),))
                .await?
                .0)
        };
        let ended = tokio::time::timeout(limits.timeout + TRAP_GRACE, run).await;
        let hit = warm.store.data().cap.hit;
        warm.used += 1;
        let keep = matches!(ended, Ok(Ok(_)))
            && !hit
            && warm.used < WARM_USES
            && warm.store.data().cap.grown <= WARM_MAX_MEMORY;
        // One idle instance per core is enough to keep every worker warm;
        // more would only hold memory.
        if keep
            && let Ok(mut idle) = self.warm.lock()
            && idle.len() < max_idle()
        {
            idle.push(warm);
        }
        let mut out = finish(out, ended, hit, String::new);
        out.duration_ms = started.elapsed().as_secs_f64() * 1e3;
        out
    }

    async fn run_inner(&self, req: &RunRequest) -> Outcome {
        let started = Instant::now();
        let limits = &req.limits;
        let mut out = Outcome::new(
            Status::Crashed,
            SandboxKind::Wasm,
            limits,
            wasm_layers(limits.memory_mb),
        );
        let stdout = MemoryOutputPipe::new(limits.max_output);
        let stderr = MemoryOutputPipe::new(limits.max_output);
        let tmp = match super::RunTmp::new() {
            Ok(t) => t,
            Err(e) => {
                return out.with_status(
                    Status::Unavailable,
                    format!("cannot create a temp dir: {e}"),
                );
            }
        };
        let mut b = WasiCtxBuilder::new();
        b.stdin(MemoryInputPipe::new(Vec::<u8>::new()))
            .stdout(stdout.clone())
            .stderr(stderr.clone());
        if let Err(e) = b.preopened_dir(tmp.path(), "/tmp", FsPerms::ReadWrite) {
            return out.with_status(
                Status::Unavailable,
                format!("cannot preopen the temp dir: {e}"),
            );
        }
        let mut store = new_store(
            &self.pre,
            b.build(),
            (limits.memory_mb as usize) << 20,
            limits.timeout,
        );
        let mut request = harness::request_value(req, "");
        // Below the run's own limit, the budget cuts only the program's run.
        let budget = req.budget.filter(|b| *b < limits.timeout);
        // With the wall time it may take.
        let budgeted = budget.map(|b| (b, budget_wall(b)));
        let mut made = None;
        let ended = {
            let run = async {
                let inst = self.pre.instantiate_async(&mut store).await?;
                made = Some(started.elapsed());
                let f = inst.get_typed_func::<(String,), (String,)>(&mut store, "run")?;
                // Still pristine: no program has run in this instance.
                if let Some(c) = self.compiled_tests(req, &mut store, &f).await? {
                    request["tests_compiled"] = (*c).clone();
                }
                let request = (request.to_string(),);
                let Some((budget, wall)) = budgeted else {
                    return Ok(f.call_async(&mut store, request).await?.0);
                };
                budget_in_own_time(&mut store, budget);
                // The wall-clock bound covers a guest blocked in a host call.
                let call = f.call_async(&mut store, request);
                match tokio::time::timeout(wall, call).await {
                    Ok(Ok((result,))) => Ok(result),
                    Ok(Err(e)) if e.downcast_ref() != Some(&wasmtime::Trap::Interrupt) => Err(e),
                    _ => Err(wasmtime::Error::new(OverBudget)),
                }
            };
            // The limit is wall time (a guest parked in a host call, such as
            // a sleep, is on no thread's clock), and outlasts the budget's.
            let wall = budgeted.map_or(limits.timeout, |(_, w)| limits.timeout.max(w));
            tokio::time::timeout(wall + TRAP_GRACE, run).await
        };
        let hit = store.data().cap.hit;
        let called = started.elapsed();
        drop(store);
        out.duration_ms = started.elapsed().as_secs_f64() * 1e3;
        // Dropping the store resets its pooled memory slot (a copy back of
        // every private page the slot holds), so it is timed on its own.
        tracing::debug!(
            setup_ms = made.unwrap_or_default().as_secs_f64() * 1e3,
            run_ms = called
                .saturating_sub(made.unwrap_or_default())
                .as_secs_f64()
                * 1e3,
            reset_ms = out.duration_ms - called.as_secs_f64() * 1e3,
            "fast run"
        );
        let cut = matches!(&ended, Ok(Err(e)) if e.is::<OverBudget>());
        if let Some(budget) = budget.filter(|_| cut && !hit) {
            out.over_budget = true;
            return out.with_status(
                Status::Unavailable,
                format!(
                    "still running after the fast sandbox's {} ms budget",
                    budget.as_millis()
                ),
            );
        }
        finish(out, ended, hit, || {
            tail(&String::from_utf8_lossy(&stderr.contents()), 4000)
        })
    }
}

/// An outcome from how a call of the component's `run` ended.
fn finish(
    mut out: Outcome,
    ended: Result<wasmtime::Result<String>, tokio::time::error::Elapsed>,
    hit: bool,
    stderr: impl FnOnce() -> String,
) -> Outcome {
    let limits = out.limits.clone();
    match ended {
        Ok(Ok(text)) => match harness::parse_result(&text) {
            Some(result) => {
                if let Some(m) = result
                    .missing_module
                    .clone()
                    .filter(|_| result.status != "passed")
                {
                    return out.with_status(
                        Status::Unavailable,
                        format!("module '{m}' not available in the fast sandbox; rerun with --sandbox wasm-full or process"),
                    );
                }
                harness::apply(result, &mut out);
                if hit && out.status != Status::Passed {
                    out.status = Status::MemoryLimit;
                }
                out
            }
            None => out.with_status(
                Status::Crashed,
                format!("unreadable harness result: {}", tail(&text, 200)),
            ),
        },
        Err(_) => out.with_status(
            Status::Timeout,
            format!("ran past {:.1}s", limits.timeout.as_secs_f64()),
        ),
        Ok(Err(e)) => {
            out.stderr = stderr();
            let (status, reason) = failure(&e, hit, &limits);
            out.with_status(status, reason)
        }
    }
}

/// How long past its budget a run blocked in a host call (a sleep) may go.
const BUDGET_GRACE: Duration = Duration::from_millis(100);

/// Trap `store`'s guest once it has run for `budget` of its own time (see
/// `own_time`), measured from now on this thread, where the guest runs until
/// it yields (if it has moved to another thread by then, at `budget` of wall
/// time): a run slowed by a load on the machine is not cut and redone in the
/// jail. A guest parked in a host call (a sleep) sees no epoch and is on no
/// thread's clock, so [`budget_wall`] bounds it; for the same reason a run's
/// limit, which decides a verdict, stays wall time.
fn budget_in_own_time(store: &mut Store<FastState>, budget: Duration) {
    store.set_epoch_deadline(ticks(budget));
    if let Some(clock) = crate::own_time::ThreadClock::start() {
        store.epoch_deadline_callback(move |_| match clock.left(budget) {
            Some(left) => Ok(wasmtime::UpdateDeadline::Continue(ticks(left))),
            None => Err(wasmtime::Trap::Interrupt.into()),
        });
    }
}

/// The wall time a budgeted run may take: the own-time cap
/// ([`MAX_STRETCH`](crate::own_time::MAX_STRETCH) budgets) and a grace.
fn budget_wall(budget: Duration) -> Duration {
    budget.saturating_mul(crate::own_time::MAX_STRETCH) + BUDGET_GRACE
}

/// A run stopped at its [`RunRequest::budget`].
#[derive(Debug, thiserror::Error)]
#[error("still running at its budget")]
struct OverBudget;

/// A store for one instance of the component: linear memory capped at
/// `max_bytes`, wasm trapped after `timeout`.
fn new_store(
    pre: &InstancePre<FastState>,
    ctx: WasiCtx,
    max_bytes: usize,
    timeout: Duration,
) -> Store<FastState> {
    let mut store = Store::new(
        pre.engine(),
        FastState {
            ctx,
            table: ResourceTable::new(),
            cap: MemoryCap::new(max_bytes),
        },
    );
    store.limiter(|s| &mut s.cap);
    store.set_epoch_deadline(ticks(timeout));
    store.epoch_deadline_trap();
    store
}

/// Take one pooled instance slot in each of the pool's shards through a
/// whole run. A slot's first use maps the snapshot and, when its store is
/// dropped, resets every page of it and of the heap the run grew (a page
/// fault each): about 13 ms alone, and 70-90 ms when two workers' first runs
/// do it at once. The pool gives each thread a home shard (round-robin, one
/// per core) and prefers a slot there that last held the same module, so one
/// new thread per shard, one after the other, leaves a warm slot wherever the
/// runs' threads land.
async fn warm_slots(pre: &InstancePre<FastState>) {
    let shards = std::thread::available_parallelism().map_or(1, |n| n.get().min(16));
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let pre = pre.clone();
    let warm = move || {
        for _ in 0..shards {
            let (pre, handle) = (pre.clone(), handle.clone());
            let thread = std::thread::Builder::new()
                .name("selfrepair-warm".into())
                .spawn(move || handle.block_on(warm_one(&pre)));
            // Only the speed of first runs depends on it: on failure, go on.
            if thread.map(|t| t.join()).is_err() {
                break;
            }
        }
    };
    let _ = tokio::task::spawn_blocking(warm).await;
}

/// One small run, in this thread's home shard of the pool.
async fn warm_one(pre: &InstancePre<FastState>) {
    let mut store = new_store(
        pre,
        WasiCtxBuilder::new().build(),
        usize::MAX,
        Duration::from_secs(10),
    );
    // A small program grows the heap as a typical run does.
    let request = harness::request_value(
        &RunRequest::new(
            "xs = [str(i) for i in range(1000)]",
            crate::TestSpec::Script,
        ),
        "",
    );
    if let Ok(inst) = pre.instantiate_async(&mut store).await
        && let Ok(f) = inst.get_typed_func::<(String,), (String,)>(&mut store, "run")
    {
        let _ = f.call_async(&mut store, (request.to_string(),)).await;
    }
}

impl FastSandbox {
    /// Run `req` on a task of its own, in a warm instance if `warm`.
    fn spawn(&self, req: &RunRequest, warm: bool) -> BoxFuture<'static, Outcome> {
        let me = FastSandbox {
            pre: self.pre.clone(),
            compiled: self.compiled.clone(),
            walks: self.walks.clone(),
            warm: self.warm.clone(),
        };
        let req = req.clone();
        let limits = req.limits.clone();
        Box::pin(super::on_own_task(SandboxKind::Wasm, limits, async move {
            if warm {
                me.run_warm(&req).await
            } else {
                me.run_inner(&req).await
            }
        }))
    }
}

impl Sandbox for FastSandbox {
    fn kind(&self) -> SandboxKind {
        SandboxKind::Wasm
    }
    fn run_unjudged<'a>(&'a self, req: &'a RunRequest) -> BoxFuture<'a, Outcome> {
        self.spawn(req, false)
    }
    fn run_trusted<'a>(&'a self, req: &'a RunRequest) -> BoxFuture<'a, Outcome> {
        // Only a judge request may meet a warm instance.
        self.spawn(req, matches!(req.tests, crate::TestSpec::Judge(_)))
    }
    fn walks(&self) -> Option<&CompiledTests> {
        Some(&self.walks)
    }
}
