//! `wasm-full`: CPython 3.12 (WASI preview 1, stdlib embedded) as a core module.

use super::{MemoryCap, compile_cached, failure, ticks, wasm_layers};
use crate::error::SandboxError;
use crate::harness::{self, CompiledTests, HARNESS_PY};
use crate::outcome::{Outcome, Status};
use crate::request::RunRequest;
use crate::runtime::RuntimeOptions;
use crate::{BoxFuture, Sandbox, SandboxKind};
use std::sync::Arc;
use std::time::Instant;
use wasmtime::{InstancePre, Linker, Module, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

struct FullState {
    wasi: WasiP1Ctx,
    cap: MemoryCap,
}

#[derive(Clone)]
pub(crate) struct FullSandbox {
    pre: InstancePre<FullState>,
    walks: Arc<CompiledTests>,
}

/// Room on stdout for the harness's own result line, beyond the program's cap.
const RESULT_ROOM: usize = 256 << 10;

impl FullSandbox {
    pub async fn open(opts: &RuntimeOptions) -> Result<Self, SandboxError> {
        let rt = opts.full_python().await?;
        let (engine, module) = compile_cached(
            &opts.home,
            &rt,
            "python-full",
            // SAFETY: the file is our own cache entry, written by `serialize`
            // for this engine configuration (the key includes its hash).
            |e, p| unsafe { Module::deserialize_file(e, p) },
            |e, p| Module::from_file(e, p),
            |m| m.serialize(),
        )
        .await?;
        let mut linker: Linker<FullState> = Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s| &mut s.wasi)
            .map_err(|e| SandboxError::Wasmtime(e.to_string()))?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| SandboxError::Runtime {
                path: rt.path.clone(),
                reason: format!("{e:#}"),
            })?;
        // The harness runs from source here (`-c`), so the walks' directory
        // is pinned to it as well as to the runtime.
        let pin = selfrepair_store::sha256_bytes(format!("{}\0{HARNESS_PY}", rt.sha256).as_bytes());
        let walks = CompiledTests::walks_on_disk(
            opts.home
                .join("compiled")
                .join(format!("walks-full-{}", &pin[..16])),
        );
        Ok(FullSandbox {
            pre,
            walks: Arc::new(walks),
        })
    }

    async fn run_inner(&self, req: &RunRequest) -> Outcome {
        let started = Instant::now();
        let limits = &req.limits;
        let mut out = Outcome::new(
            Status::Crashed,
            SandboxKind::WasmFull,
            limits,
            wasm_layers(limits.memory_mb),
        );
        let Some(token) = harness::new_token() else {
            return out.with_status(Status::Unavailable, harness::NO_RANDOMNESS);
        };
        let stdout = MemoryOutputPipe::new(limits.max_output + RESULT_ROOM);
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
        b.stdin(MemoryInputPipe::new(harness::encode_request(req, &token)))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .args(&["python", "-I", "-S", "-B", "-c", HARNESS_PY]);
        if let Err(e) = b.preopened_dir(tmp.path(), "/tmp", FsPerms::ReadWrite) {
            return out.with_status(
                Status::Unavailable,
                format!("cannot preopen the temp dir: {e}"),
            );
        }
        let mut store = Store::new(
            self.pre.module().engine(),
            FullState {
                wasi: b.build_p1(),
                cap: MemoryCap::new((limits.memory_mb as usize) << 20),
            },
        );
        store.limiter(|s| &mut s.cap);
        store.set_epoch_deadline(ticks(limits.timeout));
        store.epoch_deadline_trap();
        let ended = {
            let run = async {
                let inst = self.pre.instantiate_async(&mut store).await?;
                let start = inst.get_typed_func::<(), ()>(&mut store, "_start")?;
                start.call_async(&mut store, ()).await
            };
            // The epoch traps running code; this catches a guest parked in a host call.
            tokio::time::timeout(limits.timeout + super::TRAP_GRACE, run).await
        };
        let hit = store.data().cap.hit;
        drop(store);
        let text = String::from_utf8_lossy(&stdout.contents()).into_owned();
        out.duration_ms = started.elapsed().as_secs_f64() * 1e3;
        if let Some(result) = harness::find_result(&text, &token) {
            harness::apply(result, &mut out);
            if hit && out.status != Status::Passed {
                out.status = Status::MemoryLimit;
            }
            return out;
        }
        out.stderr = tail(&String::from_utf8_lossy(&stderr.contents()), 4000);
        out.stdout = tail(&text, 4000);
        let (status, reason) = match ended {
            Err(_) => (
                Status::Timeout,
                format!("ran past {:.1}s", limits.timeout.as_secs_f64()),
            ),
            Ok(Ok(())) => (
                Status::Crashed,
                "the interpreter exited without a result".into(),
            ),
            Ok(Err(e)) => failure(&e, hit, limits),
        };
        out.with_status(status, reason)
    }
}

pub(crate) fn tail(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut i = s.len() - n;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    format!("...{}", &s[i..])
}

impl Sandbox for FullSandbox {
    fn kind(&self) -> SandboxKind {
        SandboxKind::WasmFull
    }
    fn run_unjudged<'a>(&'a self, req: &'a RunRequest) -> BoxFuture<'a, Outcome> {
        let me = self.clone();
        let req = req.clone();
        let limits = req.limits.clone();
        Box::pin(super::on_own_task(
            SandboxKind::WasmFull,
            limits,
            async move { me.run_inner(&req).await },
        ))
    }
    fn walks(&self) -> Option<&CompiledTests> {
        Some(&self.walks)
    }
}
