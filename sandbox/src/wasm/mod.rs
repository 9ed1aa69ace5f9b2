//! The wasm sandboxes: one shared engine, a compile cache, memory and time limits.
//!
//! Every run gets a fresh Store and a fresh instance from an `InstancePre`;
//! nothing is shared between runs but the compiled code. Wall time is bounded
//! twice: epoch interruption traps running wasm, and an async timeout drops a
//! guest that is blocked in a host call (e.g. `time.sleep`).

pub mod fast;
pub mod full;
mod tmpfs;

use crate::error::SandboxError;
use crate::outcome::Layer;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances; deadlines are counted in these ticks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);
/// The largest linear memory a run may ask for (the pool reserves this much address space).
pub(crate) const MAX_MEMORY: usize = 4 << 30;

fn config() -> Config {
    let mut c = Config::new();
    c.epoch_interruption(true);
    c.cranelift_opt_level(wasmtime::OptLevel::Speed);
    // Guest recursion traps (StackOverflow) well before the fiber's own stack,
    // which must also hold host calls made from the guest.
    c.max_wasm_stack(2 << 20);
    c.async_stack_size(8 << 20);
    let mut pool = PoolingAllocationConfig::default();
    // Enough slots for many concurrent runs of a multi-module component.
    pool.total_component_instances(256)
        .total_core_instances(2048)
        .total_memories(1024)
        .total_tables(2048)
        .total_stacks(256)
        .max_core_instances_per_component(64)
        .max_memories_per_component(16)
        .max_tables_per_component(64)
        .max_memory_size(MAX_MEMORY)
        .table_elements(100_000)
        .max_core_instance_size(4 << 20)
        // Reused slots keep their first 16 MiB resident (zeroed/reset, not
        // unmapped): this avoids copy-on-write faults and TLB shootdowns on
        // every run. 64 MiB was no faster (docs/performance.md).
        .linear_memory_keep_resident(16 << 20)
        .table_keep_resident(1 << 20);
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    c
}

/// The process-wide engine, and the thread that advances its epoch.
pub fn engine() -> Result<&'static Engine, SandboxError> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    let e = ENGINE.get_or_init(|| {
        let mut cfg = config();
        let engine = match Engine::new(&cfg) {
            Ok(e) => e,
            // A machine that cannot reserve the pool's address space still runs, slower.
            Err(_) => {
                cfg.allocation_strategy(InstanceAllocationStrategy::OnDemand);
                Engine::new(&cfg).map_err(|e| e.to_string())?
            }
        };
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("selfrepair-epoch".into())
            .spawn(move || {
                while let Some(e) = ticker.upgrade() {
                    e.increment_epoch();
                    drop(e);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(engine)
    });
    e.as_ref().map_err(|m| SandboxError::Wasmtime(m.clone()))
}

/// Ticks for a wall-clock limit (at least one).
pub(crate) fn ticks(limit: Duration) -> u64 {
    (limit.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 + 1
}

/// How long past a run's deadline the host waits for its trap.
pub(crate) const TRAP_GRACE: Duration = Duration::from_millis(200);

/// The compile-cache path for a wasm file: keyed by the engine's compatibility
/// hash (which covers wasmtime's version, Config flags and target), this
/// crate's version and the wasm's sha256.
pub(crate) fn compiled_path(home: &Path, engine: &Engine, wasm_sha: &str, kind: &str) -> PathBuf {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let key = format!(
        "{}-{:016x}-{}",
        env!("CARGO_PKG_VERSION"),
        h.finish(),
        &wasm_sha[..16.min(wasm_sha.len())]
    );
    home.join("compiled").join(format!("{kind}-{key}.cwasm"))
}

/// Load serialized code from the cache, or compile and store it. A cache file
/// that fails to load (a different build, corruption) is replaced.
pub(crate) fn load_cached<T>(
    engine: &Engine,
    cached: &Path,
    deserialize: impl Fn(&Engine, &Path) -> wasmtime::Result<T>,
    compile: impl Fn(&Engine) -> wasmtime::Result<T>,
    serialize: impl Fn(&T) -> wasmtime::Result<Vec<u8>>,
) -> Result<T, SandboxError> {
    if cached.is_file() {
        match deserialize(engine, cached) {
            Ok(v) => return Ok(v),
            Err(e) => tracing::warn!(
                "recompiling: cached code {} did not load: {e}",
                cached.display()
            ),
        }
    }
    let value = compile(engine).map_err(|e| SandboxError::Wasmtime(format!("compiling: {e:#}")))?;
    match serialize(&value) {
        Ok(bytes) => {
            if let Err(e) = selfrepair_store::write_atomic(cached, &bytes) {
                tracing::warn!("cannot cache compiled code at {}: {e}", cached.display());
            }
        }
        Err(e) => tracing::warn!("cannot serialize compiled code: {e}"),
    }
    Ok(value)
}

/// Load a runtime's compiled code from the cache, or compile it, off the async threads.
pub(crate) async fn compile_cached<T: Send + 'static>(
    home: &Path,
    rt: &crate::runtime::RuntimeFile,
    kind: &str,
    deserialize: fn(&Engine, &Path) -> wasmtime::Result<T>,
    compile: fn(&Engine, &Path) -> wasmtime::Result<T>,
    serialize: fn(&T) -> wasmtime::Result<Vec<u8>>,
) -> Result<(&'static Engine, T), SandboxError> {
    let engine = engine()?;
    let cached = compiled_path(home, engine, &rt.sha256, kind);
    let path = rt.path.clone();
    let value = tokio::task::spawn_blocking(move || {
        load_cached(
            engine,
            &cached,
            deserialize,
            |e| compile(e, &path),
            serialize,
        )
    })
    .await
    .map_err(|e| SandboxError::Wasmtime(e.to_string()))??;
    Ok((engine, value))
}

/// Bytes and inodes of a wasm run's /tmp.
pub(crate) const TMP_BYTES: u64 = 64 << 20;
pub(crate) const TMP_INODES: u64 = 16 << 10;

/// A wasm run's preopened /tmp: a private tmpfs that exists only as a file
/// descriptor (see [`tmpfs`]), made by root directly and by anyone else in
/// a user namespace. Where neither can mount (Linux < 5.2, user namespaces
/// off), a host temp dir under a per-process parent that the next start
/// sweeps if this process died without removing it (no byte cap there).
pub enum RunTmp {
    Private(std::os::fd::OwnedFd),
    Host(tempfile::TempDir),
}

impl RunTmp {
    pub fn new() -> std::io::Result<RunTmp> {
        if private_tmp_works()
            && let Ok(fd) = tmpfs::make()
        {
            return Ok(RunTmp::Private(fd));
        }
        Ok(RunTmp::Host(
            tempfile::Builder::new()
                .prefix("run-")
                .tempdir_in(host_tmp_parent()?)?,
        ))
    }

    /// The path to preopen (for a private tmpfs, its descriptor's magic link).
    pub fn path(&self) -> PathBuf {
        use std::os::fd::AsRawFd;
        match self {
            RunTmp::Private(fd) => PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
            RunTmp::Host(t) => t.path().to_path_buf(),
        }
    }

    pub fn is_private(&self) -> bool {
        matches!(self, RunTmp::Private(_))
    }
}

/// Whether this process can make private tmpfs mounts (tried once).
fn private_tmp_works() -> bool {
    static PRIVATE: OnceLock<bool> = OnceLock::new();
    *PRIVATE.get_or_init(|| tmpfs::make().is_ok())
}

/// `$TMPDIR/selfrepair-wasm-<pid>`: this process's wasm temp dirs. On first
/// use, the parents of processes that no longer exist are removed.
fn host_tmp_parent() -> std::io::Result<&'static Path> {
    static PARENT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let p = PARENT.get_or_init(|| {
        let base = std::env::temp_dir();
        if let Ok(rd) = std::fs::read_dir(&base) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name
                    .strip_prefix("selfrepair-wasm-")
                    .and_then(|p| p.parse::<u32>().ok())
                    && !Path::new(&format!("/proc/{pid}")).exists()
                    && e.file_type().is_ok_and(|t| t.is_dir())
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = base.join(format!("selfrepair-wasm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        Ok(dir)
    });
    p.as_deref().map_err(|e| std::io::Error::other(e.clone()))
}

/// Caps linear memory and records that the cap was hit.
pub(crate) struct MemoryCap {
    pub max_bytes: usize,
    pub hit: bool,
    /// The largest size a memory has grown to.
    pub grown: usize,
}

impl MemoryCap {
    pub fn new(max_bytes: usize) -> Self {
        MemoryCap {
            max_bytes,
            hit: false,
            grown: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = true;
            return Ok(false);
        }
        self.grown = self.grown.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The layers every wasm run has.
pub(crate) fn wasm_layers(memory_mb: u64) -> Vec<Layer> {
    vec![
        Layer::on("wasm", "wasmtime, fresh Store and instance per run"),
        Layer::on("no-network", "no sockets are granted"),
        Layer::on(
            "filesystem",
            if private_tmp_works() {
                "one preopened temp dir, a private 64 MiB, 16384-inode tmpfs with no host path; nothing else"
            } else {
                "one preopened host temp dir (no byte cap: this kernel lets selfrepair mount no private tmpfs); nothing else"
            },
        ),
        Layer::on("env", "empty environment"),
        Layer::on("memory", format!("{memory_mb} MiB linear memory")),
        Layer::on("time", "epoch interruption + async timeout"),
        Layer::on("output", "in-memory stdout/stderr with caps"),
    ]
}

/// What a wasm error means for the run: the status and its reason in words.
/// `hit` says whether the memory cap refused a grow during the run.
pub fn failure(
    err: &wasmtime::Error,
    hit: bool,
    limits: &crate::request::Limits,
) -> (crate::Status, String) {
    use crate::Status;
    if hit {
        return (
            Status::MemoryLimit,
            format!("linear memory cap of {} MiB reached", limits.memory_mb),
        );
    }
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return (
            Status::Crashed,
            format!(
                "the interpreter exited with status {} without a result",
                exit.0
            ),
        );
    }
    if let Some(trap) = err.downcast_ref::<wasmtime::Trap>()
        && *trap == wasmtime::Trap::Interrupt
    {
        return (
            Status::Timeout,
            format!("ran past {:.1}s", limits.timeout.as_secs_f64()),
        );
    }
    let text = format!("{err:#}");
    if text.contains("beyond capacity") {
        return (
            Status::OutputLimit,
            format!("the program wrote more than {} bytes", limits.max_output),
        );
    }
    (Status::Crashed, format!("wasm trap: {text}"))
}

/// Run a wasm run on a task of its own. Between its yields a run is pure
/// CPU work, so inside the caller's task it would serialize with every other
/// run that task polls (a `buffer_unordered` stream of runs, say): the
/// runtime's other cores would stay idle. Dropping the returned future
/// aborts the run.
pub(crate) async fn on_own_task<F>(
    kind: crate::SandboxKind,
    limits: crate::request::Limits,
    run: F,
) -> crate::outcome::Outcome
where
    F: std::future::Future<Output = crate::outcome::Outcome> + Send + 'static,
{
    struct AbortOnDrop(tokio::task::JoinHandle<crate::outcome::Outcome>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let mut handle = AbortOnDrop(tokio::task::spawn(run));
    match (&mut handle.0).await {
        Ok(out) => out,
        Err(e) => crate::outcome::Outcome::new(
            crate::outcome::Status::Crashed,
            kind,
            &limits,
            wasm_layers(limits.memory_mb),
        )
        .with_status(
            crate::outcome::Status::Crashed,
            format!("the run's task failed: {e}"),
        ),
    }
}
