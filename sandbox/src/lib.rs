//! Run untrusted Python, contained and bounded, and get structured test results.
//!
//! Three sandboxes share one interface ([`Sandbox`]):
//! - `wasm`: a pre-initialised CPython component (WASI preview 2), fastest;
//! - `wasm-full`: CPython 3.12 for WASI preview 1 with the whole stdlib;
//! - `process`: `python3 -I -S` in namespaces, rlimits, Landlock and seccomp.
//!
//! Every run goes through the same Python harness (`python/harness.py`), so
//! results look the same whichever sandbox produced them. Verdicts are
//! decided inside the sandbox, so this crate also carries the reference
//! harnesses' rules for a pass (comparisons, guards, oracles: [`semantics`]
//! and `python/semantics.py`). It knows nothing of models, prompts or
//! datasets; the tasks layer picks the rule for each benchmark.

pub mod answers;
pub mod error;
pub mod harness;
pub mod judge;
pub mod outcome;
mod own_time;
pub mod process;
pub mod request;
pub mod runtime;
pub mod semantics;
pub mod wasm;

pub use error::SandboxError;
pub use outcome::{ErrorInfo, Frame, Layer, Outcome, Status, TestRecord};
pub use request::{Limits, RunRequest, TestSpec};
pub use semantics::Guard;

use std::future::Future;
use std::pin::Pin;

/// A boxed future, so sandboxes can be used as trait objects.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which sandbox runs the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxKind {
    /// The pre-initialised CPython component (fast start, preloaded modules only).
    Wasm,
    /// CPython 3.12 on WASI preview 1, full stdlib.
    WasmFull,
    /// A locked-down host process running the system `python3`.
    Process,
}

impl SandboxKind {
    pub const ALL: [SandboxKind; 3] = [
        SandboxKind::Wasm,
        SandboxKind::WasmFull,
        SandboxKind::Process,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SandboxKind::Wasm => "wasm",
            SandboxKind::WasmFull => "wasm-full",
            SandboxKind::Process => "process",
        }
    }
}

impl std::fmt::Display for SandboxKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SandboxKind {
    type Err = SandboxError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "wasm" | "wasm-fast" => Ok(SandboxKind::Wasm),
            "wasm-full" => Ok(SandboxKind::WasmFull),
            "process" => Ok(SandboxKind::Process),
            other => Err(SandboxError::Config(format!(
                "unknown sandbox '{other}': expected wasm, wasm-full or process"
            ))),
        }
    }
}

/// One interface for every sandbox. A run never fails as a Rust error: what
/// the program did, including "the sandbox could not run it", is an [`Outcome`].
pub trait Sandbox: Send + Sync {
    fn kind(&self) -> SandboxKind;
    /// Run `req` and judge it: for a request with tests, the program and the
    /// tests run apart, and the verdict comes from the run the program never
    /// reached ([`judge`]).
    fn run<'a>(&'a self, req: &'a RunRequest) -> BoxFuture<'a, Outcome> {
        Box::pin(judge::run(self, req))
    }
    /// One run in one fresh instance or process, as the request says. The
    /// harness gives a verdict here only for a script's exit; tests are
    /// judged by [`Sandbox::run`].
    fn run_unjudged<'a>(&'a self, req: &'a RunRequest) -> BoxFuture<'a, Outcome>;
    /// A judge run or a walk: our tests, answers the host has checked
    /// ([`answers`]), and the program as text the harness parses but never
    /// runs. A sandbox may serve it from a warm interpreter that has only
    /// ever run such requests; any other request runs as
    /// [`Sandbox::run_unjudged`].
    fn run_trusted<'a>(&'a self, req: &'a RunRequest) -> BoxFuture<'a, Outcome> {
        self.run_unjudged(req)
    }
    /// Start what the first run would otherwise wait for (the process
    /// sandbox's fork server), so that a caller expecting runs can overlap it
    /// with other work. Runs never depend on it.
    fn warm_up(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    /// Where this sandbox keeps its suites' walks across invocations, if it
    /// does (the directory is pinned to its interpreter and harness).
    fn walks(&self) -> Option<&harness::CompiledTests> {
        None
    }
}

/// Build a sandbox of the given kind, fetching or compiling its runtime if needed.
pub async fn open(
    kind: SandboxKind,
    opts: &runtime::RuntimeOptions,
) -> Result<Box<dyn Sandbox>, SandboxError> {
    Ok(match kind {
        SandboxKind::Wasm => Box::new(wasm::fast::FastSandbox::open(opts).await?),
        SandboxKind::WasmFull => Box::new(wasm::full::FullSandbox::open(opts).await?),
        SandboxKind::Process => Box::new(process::ProcessSandbox::new(process::ProcessConfig {
            cache_dir: Some(opts.home.join("compiled")),
            ..process::ProcessConfig::default()
        })?),
    })
}
