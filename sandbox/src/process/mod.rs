//! `process`: a locked-down host process (the system `python3 -I -S`, or any
//! command), in fresh namespaces with rlimits, a dedicated uid, Landlock and
//! seccomp. A timeout kills the whole process group and pid namespace.

mod cgroup;
mod disk;
mod forkserver;
pub(crate) mod layers;

use crate::error::SandboxError;
use crate::harness::{self, HARNESS_PY};
use crate::outcome::{Layer, Outcome, Status};
use crate::request::{Limits, RunRequest, TestSpec};
use crate::{BoxFuture, Sandbox, SandboxKind};
pub use disk::DiskCap;
use layers::{Plan, Support};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// First of the dedicated uids. Each run leases one of its own (see
/// [`lease_uid`]), across every selfrepair process on the machine, so
/// concurrent runs count their processes (RLIMIT_NPROC) and own their files
/// separately.
pub const UID_BASE: u32 = 61000;
pub const UID_SPAN: u32 = 4096;
static NEXT_UID: AtomicU32 = AtomicU32::new(0);

/// A dedicated uid held for one run: an exclusive `flock` on a file named
/// after it in a root-only runtime dir, which every selfrepair process
/// honours. Released (closed) when the run is over.
struct UidLease {
    uid: u32,
    _lock: std::fs::File,
}

/// Where the uid locks live: `/run/selfrepair/uids` (root's, 0700), else
/// under the cache home.
fn uid_lock_dir() -> Result<&'static Path, SandboxError> {
    static DIR: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        let candidates = [
            PathBuf::from("/run/selfrepair/uids"),
            selfrepair_store::home().join("uids"),
        ];
        let mut last = String::new();
        for d in candidates {
            let made = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&d);
            match (made, std::fs::symlink_metadata(&d)) {
                // Ours, a real directory, nobody else's to plant locks in.
                (Ok(()), Ok(m)) if m.is_dir() && m.uid() == 0 => {
                    let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700));
                    return Ok(d);
                }
                (r, m) => last = format!("{}: {r:?} {:?}", d.display(), m.map(|m| m.uid())),
            }
        }
        Err(format!("no directory for sandbox uid locks ({last})"))
    });
    dir.as_deref().map_err(|e| SandboxError::Config(e.clone()))
}

/// Lease a free uid of the range, starting at an offset derived from this
/// process's pid so that processes rarely probe the same uids.
fn lease_uid() -> Result<UidLease, SandboxError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = uid_lock_dir()?;
    let start = std::process::id()
        .wrapping_mul(2_654_435_761)
        .wrapping_add(NEXT_UID.fetch_add(1, Ordering::Relaxed));
    for i in 0..UID_SPAN {
        let uid = UID_BASE + start.wrapping_add(i) % UID_SPAN;
        let path = dir.join(uid.to_string());
        let Ok(f) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        else {
            continue;
        };
        if f.try_lock().is_ok() {
            return Ok(UidLease { uid, _lock: f });
        }
    }
    Err(SandboxError::Config(format!(
        "all {UID_SPAN} sandbox uids from {UID_BASE} are in use"
    )))
}

#[derive(Clone, Debug)]
pub struct ProcessConfig {
    /// The interpreter for Python runs.
    pub python: PathBuf,
    /// Fail instead of running with a missing layer.
    pub strict: bool,
    pub allow_network: bool,
    /// Extra read-only paths (toolchains).
    pub ro_paths: Vec<PathBuf>,
    /// Size of the private tmpfs work dir for fresh runs.
    pub tmpfs_mb: u64,
    /// Max processes per run.
    pub nproc: u64,
    /// Largest file a run may write.
    pub fsize_mb: u64,
    /// Run as the caller's uid even when root, instead of a dedicated uid:
    /// for toolchains in a private home (e.g. /root/.rustup) that no other
    /// uid can read. Namespaces, rlimits, Landlock and seccomp still apply.
    pub keep_uid: bool,
    /// Fork Python runs from a pre-started interpreter (see [`forkserver`])
    /// instead of starting one per run. `SELFREPAIR_FORK_SERVER=0` turns it off.
    pub fork_server: bool,
    /// A private, writable tmpfs of this size over `/dev/shm` (0: the
    /// host's stays covered by an empty read-only one), so that
    /// multiprocessing's semaphores and shared memory work as outside.
    pub shm_mb: u64,
    /// Without `allow_network`: let runs use a loopback interface of their
    /// own (inet sockets, `lo` up in the run's empty net namespace), so a
    /// test server on 127.0.0.1 works; nothing beyond it is reachable.
    pub loopback: bool,
    /// A cap on a writable work dir's bytes and inodes ([`disk`]); a run
    /// past it is stopped and says so in [`CommandOutput::disk_full`].
    pub disk: Option<DiskCap>,
    /// Where to keep what this sandbox derives from trusted code across
    /// invocations, pinned to the interpreter and the harness: the suites'
    /// walks and the harness compiled by the interpreter. None: this
    /// process only.
    pub cache_dir: Option<PathBuf>,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        ProcessConfig {
            python: default_python(),
            strict: false,
            allow_network: false,
            ro_paths: Vec::new(),
            tmpfs_mb: 64,
            nproc: 64,
            fsize_mb: 32,
            keep_uid: false,
            fork_server: std::env::var_os("SELFREPAIR_FORK_SERVER").is_none_or(|v| v != "0"),
            shm_mb: 0,
            loopback: false,
            disk: None,
            cache_dir: None,
        }
    }
}

/// What a walk or a harness compiled by `python` depends on: the interpreter file (its real
/// path, size, inode and change time, so an upgrade in place is a new pin)
/// and the harness. None if the interpreter cannot be found.
fn interpreter_pin(python: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let real = std::fs::canonicalize(python).ok()?;
    let m = std::fs::metadata(&real).ok()?;
    let id = format!(
        "{}\0{}\0{}\0{}.{}\0{HARNESS_PY}",
        real.display(),
        m.len(),
        m.ino(),
        m.ctime(),
        m.ctime_nsec()
    );
    Some(selfrepair_store::sha256_bytes(id.as_bytes())[..16].to_string())
}

/// `bytes` and their sha256, written atomically, so a reader sees a whole
/// file or none.
fn write_sealed(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let seal = selfrepair_store::sha256_bytes(bytes);
    selfrepair_store::write_atomic(path, &[bytes, seal.as_bytes()].concat())
}

/// What [`write_sealed`] wrote, if the file is whole and unchanged.
fn read_sealed(path: &Path) -> Option<Vec<u8>> {
    let mut data = std::fs::read(path).ok()?;
    let body = data.len().checked_sub(64)?;
    let seal = std::str::from_utf8(&data[body..]).ok()?;
    if body == 0 || seal != selfrepair_store::sha256_bytes(&data[..body]) {
        return None;
    }
    data.truncate(body);
    Some(data)
}

/// `SELFREPAIR_PYTHON`, else the system python3 (not a shim in $HOME).
pub fn default_python() -> PathBuf {
    if let Some(p) = std::env::var_os("SELFREPAIR_PYTHON") {
        return PathBuf::from(p);
    }
    for p in ["/usr/bin/python3", "/usr/local/bin/python3"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("python3")
}

/// Whether `dir` is a real Python installation prefix: a `bin/python*`
/// and either a `pyvenv.cfg` (a virtualenv) or a `lib/python3*` directory.
/// Only such a directory (resolved) is added to a jail's read set for an
/// interpreter; a link named `.venv` or `bin/python` cannot widen it to
/// anything else.
pub fn interpreter_prefix(dir: &Path) -> bool {
    let has = |sub: &str, prefix: &str, want_dir: bool| {
        std::fs::read_dir(dir.join(sub)).is_ok_and(|rd| {
            rd.flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with(prefix)
                    && (!want_dir || e.path().is_dir())
            })
        })
    };
    let python = has("bin", "python", false);
    let venv = dir.join("pyvenv.cfg").is_file();
    python && (venv || has("lib", "python3", true))
}

/// Whether a dedicated uid can reach `p` in the jail (so a toolchain there
/// needs no kept uid). A path under a directory the jail covers (`/root`,
/// `/home`, `/tmp`, … see [`layers::HIDDEN_DIRS`]) is bound back into a
/// tmpfs whose directories are world-searchable: then only the path itself
/// and the directories above the covered one count, not a private home
/// between them.
pub fn others_can_reach(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let open = |a: &Path| {
        std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 != 0 || !m.is_dir())
    };
    let covered = layers::support()
        .namespaces
        .is_ok()
        .then(|| {
            layers::HIDDEN_DIRS.iter().map(Path::new).find(|h| {
                p.starts_with(h)
                    && p != *h
                    && std::fs::symlink_metadata(h).is_ok_and(|m| m.is_dir())
            })
        })
        .flatten();
    match covered {
        Some(h) => open(p) && h.ancestors().skip(1).all(open),
        None => p.ancestors().all(open),
    }
}

/// A command to run in the jail.
#[derive(Clone, Debug)]
pub struct CommandSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Run in this directory (read-write); None: a fresh private tmpfs.
    pub workdir: Option<PathBuf>,
    /// The whole environment (nothing is inherited).
    pub env: Vec<(String, String)>,
    pub stdin: Vec<u8>,
    pub limits: Limits,
}

/// What a jailed command did.
#[derive(Debug)]
pub struct CommandOutput {
    pub code: Option<i32>,
    pub timed_out: bool,
    pub output_overflow: bool,
    /// Ended by the caller's `stop` future ([`ProcessSandbox::exec_until`]).
    pub stopped: bool,
    /// Stopped because its work dir grew past [`ProcessConfig::disk`]: why.
    pub disk_full: Option<String>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub duration: Duration,
    pub layers: Vec<Layer>,
}

pub struct ProcessSandbox {
    cfg: ProcessConfig,
    seccomp: Result<(seccompiler::BpfProgram, seccompiler::BpfProgram), String>,
    support: &'static Support,
    /// The harness compiled once by `cfg.python` (marshalled code object), so
    /// a run does not recompile it; None: compiling failed, send the source.
    harness_code: tokio::sync::OnceCell<Option<Vec<u8>>>,
    /// Instrumented tests by suite (see [`crate::harness::CompiledTests`]).
    compiled: crate::harness::CompiledTests,
    /// The fork server for Python runs, started on first use.
    server: tokio::sync::Mutex<Server>,
    /// The suites' walks on disk, if [`ProcessConfig::cache_dir`] is set.
    walks: Option<crate::harness::CompiledTests>,
    /// Where the compiled harness is kept, if [`ProcessConfig::cache_dir`]
    /// is set.
    harness_file: Option<PathBuf>,
}

enum Server {
    NotStarted,
    Up(Arc<forkserver::ForkServer>),
    /// Could not start: runs start their own interpreter, and say why.
    Failed(String),
}

/// A run's isolation plan and work dir, made ready before it starts.
struct Prepared {
    plan: Plan,
    layers: Vec<Layer>,
    /// A host temp dir when there is no private tmpfs; removed on drop.
    _tmp: Option<tempfile::TempDir>,
    workdir: PathBuf,
    /// The uid the work dir was lent to, to give it back afterwards.
    lent: Option<u32>,
    /// The run's dedicated uid, held until the run is over.
    _lease: Option<UidLease>,
    /// The run's pids cgroup (kept-uid runs as root), removed after it.
    _pids_cgroup: Option<cgroup::PidsCgroup>,
}

/// Reads the harness's code object from the head of stdin (a length line,
/// then the bytes) and runs it; the request follows on the same stdin.
const BOOTSTRAP: &str =
    "import sys,marshal;b=sys.stdin.buffer;n=int(b.readline());exec(marshal.loads(b.read(n)))";
/// Compiles the harness source on stdin into a marshalled code object.
const COMPILE: &str = "import sys,marshal;sys.stdout.buffer.write(marshal.dumps(compile(sys.stdin.read(),'<string>','exec')))";

impl ProcessSandbox {
    pub fn new(cfg: ProcessConfig) -> Result<Self, SandboxError> {
        let support = layers::support();
        let seccomp = match &support.seccomp {
            Ok(()) => layers::seccomp_filters(cfg.allow_network || cfg.loopback),
            Err(e) => Err(e.clone()),
        };
        let pinned = cfg
            .cache_dir
            .as_deref()
            .and_then(|base| Some((base, interpreter_pin(&cfg.python)?)));
        let walks = pinned.as_ref().map(|(base, pin)| {
            crate::harness::CompiledTests::walks_on_disk(base.join(format!("walks-process-{pin}")))
        });
        let harness_file =
            pinned.map(|(base, pin)| base.join(format!("harness-process-{pin}.marshal")));
        let sb = ProcessSandbox {
            cfg,
            seccomp,
            support,
            harness_code: tokio::sync::OnceCell::new(),
            compiled: Default::default(),
            server: tokio::sync::Mutex::new(Server::NotStarted),
            walks,
            harness_file,
        };
        if sb.cfg.strict {
            for layer in sb.layers_preview() {
                if !layer.active {
                    return Err(SandboxError::MissingLayer {
                        layer: layer.name,
                        reason: layer.detail,
                    });
                }
            }
        }
        Ok(sb)
    }

    /// The layers a run will have on this machine.
    pub fn layers_preview(&self) -> Vec<Layer> {
        let workdir = std::env::temp_dir();
        let uid = (self.support.root && !self.cfg.keep_uid).then_some(UID_BASE);
        match self.plan(&workdir, false, uid) {
            Ok(p) => layers::describe(&p, self.support),
            Err(e) => vec![Layer::off("plan", e.to_string())],
        }
    }

    fn plan(&self, workdir: &Path, fresh: bool, uid: Option<u32>) -> Result<Plan, SandboxError> {
        let s = self.support;
        let ns = layers::ns_flags_for(s, self.cfg.allow_network);
        let mut ro: Vec<PathBuf> = [
            "/usr",
            "/lib",
            "/lib64",
            "/lib32",
            "/bin",
            "/sbin",
            "/etc/ld.so.cache",
            "/etc/localtime",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        // A python outside /usr (a venv, pyenv) needs its own prefix, if
        // it is one (see `interpreter_prefix`).
        if let Ok(real) = std::fs::canonicalize(&self.cfg.python)
            && let Some(prefix) = real.parent().and_then(Path::parent)
            && !prefix.starts_with("/usr")
            && interpreter_prefix(prefix)
        {
            ro.push(prefix.to_path_buf());
        }
        ro.extend(self.cfg.ro_paths.iter().cloned());
        let tmpfs_bytes = (fresh && ns & libc::CLONE_NEWNS != 0).then_some(self.cfg.tmpfs_mb << 20);
        let hide = if ns & libc::CLONE_NEWNS != 0 {
            let rw = if fresh {
                Vec::new()
            } else {
                vec![workdir.to_path_buf()]
            };
            layers::hidden_dirs(&rw, &ro, tmpfs_bytes.map(|_| workdir))
        } else {
            Vec::new()
        };
        // Only with its own mount namespace, mounted over the covered host
        // /dev/shm (a runner that ignores it leaves that covered).
        let shm_bytes = (ns & libc::CLONE_NEWNS != 0
            && self.cfg.shm_mb > 0
            && Path::new(layers::SHM_DIR).is_dir())
        .then_some(self.cfg.shm_mb << 20);
        Ok(Plan {
            ns_flags: ns,
            user_ns: ns != 0 && !s.root,
            uid,
            // SAFETY: getuid/getgid cannot fail.
            real_uid: unsafe { libc::getuid() },
            real_gid: unsafe { libc::getgid() },
            workdir: CString::new(workdir.as_os_str().as_bytes()).map_err(|_| {
                SandboxError::Config(format!(
                    "work dir {} contains a NUL byte",
                    workdir.display()
                ))
            })?,
            workdir_path: workdir.to_path_buf(),
            tmpfs_bytes,
            shm_bytes,
            // 4 inodes per KiB... one per 4 KiB page: a run of empty files
            // stops where a run of full pages would.
            tmpfs_inodes: (self.cfg.tmpfs_mb << 8).max(1024),
            hide,
            kill_fd: None,
            rlimits: Vec::new(),
            pids_cgroup: None,
            landlock: s.landlock_abi.is_ok(),
            ro_paths: ro,
            rw_files: ["/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"]
                .iter()
                .map(PathBuf::from)
                .collect(),
            seccomp: self.seccomp.as_ref().ok().cloned(),
            allow_network: self.cfg.allow_network,
            loopback: self.cfg.loopback && !self.cfg.allow_network && ns & libc::CLONE_NEWNET != 0,
        })
    }

    /// The plan for one run in `workdir` (None: a fresh private work dir),
    /// with the work dir lent to the run's uid where it needs to be.
    fn prepare(&self, workdir: Option<&Path>, l: &Limits) -> Result<Prepared, SandboxError> {
        let fresh = workdir.is_none();
        // A fresh run gets a private tmpfs mounted over /tmp in its own mount
        // namespace: the host's /tmp (and everything in it) is out of sight.
        // Without a mount namespace it falls back to a host temp dir.
        let private_tmp = fresh
            && layers::ns_flags_for(self.support, self.cfg.allow_network) & libc::CLONE_NEWNS != 0;
        let tmp = if fresh && !private_tmp {
            Some(
                tempfile::Builder::new()
                    .prefix("selfrepair-")
                    .tempdir()
                    .map_err(|e| SandboxError::io(std::env::temp_dir(), e))?,
            )
        } else {
            None
        };
        let workdir = match (workdir, &tmp) {
            (Some(w), _) => w.to_path_buf(),
            (None, Some(t)) => t.path().to_path_buf(),
            (None, None) => PathBuf::from("/tmp"),
        };
        let lease = if self.support.root && !self.cfg.keep_uid {
            Some(lease_uid()?)
        } else {
            None
        };
        let mut plan = self.plan(&workdir, fresh, lease.as_ref().map(|l| l.uid))?;
        let cpu = l.timeout.as_secs() + 2;
        plan.rlimits = vec![
            (libc::RLIMIT_AS, l.memory_mb << 20),
            (libc::RLIMIT_CPU, cpu),
            (libc::RLIMIT_FSIZE, self.cfg.fsize_mb << 20),
            (libc::RLIMIT_NOFILE, 256),
            (libc::RLIMIT_CORE, 0),
        ];
        // Every caller gets a process cap: a dedicated uid counts only its
        // run; in a user namespace (Linux >= 5.14) the count is per
        // namespace. Only a caller with neither would count its own
        // processes outside the run, so it goes without. (The kernel never
        // applies RLIMIT_NPROC to uid 0 itself: a kept-uid run as root gets
        // a pids cgroup of its own instead, where the machine has one.)
        if plan.uid.is_some() || plan.user_ns || self.support.root {
            plan.rlimits.push((libc::RLIMIT_NPROC, self.cfg.nproc));
        }
        let mut layers = layers::describe(&plan, self.support);
        let pids_cgroup = if self.support.root && plan.uid.is_none() {
            // Its pid-1 supervisor is a task of the run too.
            match cgroup::PidsCgroup::new(self.cfg.nproc + 1) {
                Ok(cg) => {
                    plan.pids_cgroup = Some(cg.procs().clone());
                    Some(cg)
                }
                Err(e) => {
                    layers.retain(|l| l.name != "pids-cgroup");
                    layers.push(Layer::off("pids-cgroup", e));
                    None
                }
            }
        } else {
            None
        };
        // Without a private tmpfs the work dir itself must belong to the run's
        // uid; it is given back to the caller when the run ends.
        let lent = plan.tmpfs_bytes.is_none().then_some(plan.uid).flatten();
        if let Some(uid) = lent {
            chown_tree(&workdir, uid, uid)?;
        }
        Ok(Prepared {
            plan,
            layers,
            _tmp: tmp,
            workdir,
            lent,
            _lease: lease,
            _pids_cgroup: pids_cgroup,
        })
    }

    /// Run a command in the jail, with the limits in `spec`.
    pub async fn exec(&self, spec: CommandSpec) -> Result<CommandOutput, SandboxError> {
        self.exec_until(spec, std::future::pending()).await
    }

    /// [`Self::exec`], but when `stop` completes first the run's process
    /// group is killed as on a timeout and the output so far is returned
    /// with `stopped` set (how callers cancel a run).
    pub async fn exec_until(
        &self,
        spec: CommandSpec,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<CommandOutput, SandboxError> {
        let started = Instant::now();
        let fresh = spec.workdir.is_none();
        let Prepared {
            mut plan,
            layers,
            _tmp,
            workdir,
            lent,
            _lease,
            _pids_cgroup,
        } = self.prepare(spec.workdir.as_deref(), &spec.limits)?;
        // The intermediate kills pid 1 (and so the namespace) on a byte here.
        let (kill_r, mut kill_w) =
            std::io::pipe().map_err(|e| SandboxError::Config(format!("kill pipe: {e}")))?;
        {
            use std::os::fd::AsRawFd;
            plan.kill_fd = Some(kill_r.as_raw_fd());
        }
        let l = &spec.limits;
        let mut cmd = tokio::process::Command::new(&spec.program);
        cmd.args(&spec.args)
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(if fresh {
                Path::new("/")
            } else {
                workdir.as_path()
            })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: `apply` only makes syscalls and builds the Landlock ruleset;
        // see its documentation.
        unsafe {
            cmd.pre_exec(move || layers::apply(&plan));
        }
        let mut child = cmd.spawn().map_err(|e| {
            SandboxError::Config(format!("cannot start {}: {e}", spec.program.display()))
        })?;
        drop(kill_r);
        let pgid = child.id().map(|p| p as i32);
        let mut stdin = child.stdin.take();
        let input = spec.stdin;
        let writer = tokio::spawn(async move {
            if let Some(s) = stdin.as_mut() {
                let _ = s.write_all(&input).await;
                let _ = s.shutdown().await;
            }
        });
        let (tx, mut overflow) = tokio::sync::mpsc::channel::<()>(2);
        let out_task = tokio::spawn(read_capped(
            child.stdout.take(),
            l.max_output + RESULT_ROOM,
            tx.clone(),
        ));
        let err_task = tokio::spawn(read_capped(child.stderr.take(), l.max_output, tx));
        let mut timed_out = false;
        let mut output_overflow = false;
        let mut stopped = false;
        let mut disk_full = None;
        let cap = self.cfg.disk.filter(|_| !fresh);
        let mut layers = layers;
        if let Some(c) = cap {
            layers.push(Layer::on("disk", c.describe()));
        }
        let disk = async {
            match cap {
                Some(c) => disk::exceeded(workdir.clone(), c).await,
                None => std::future::pending().await,
            }
        };
        let status = tokio::select! {
            s = child.wait() => s.ok(),
            _ = tokio::time::sleep(l.timeout) => { timed_out = true; None }
            Some(()) = overflow.recv() => { output_overflow = true; None }
            () = stop => { stopped = true; None }
            why = disk => { disk_full = Some(why); None }
        };
        let status = match status {
            Some(s) => Some(s),
            None => {
                kill_namespace(&mut kill_w);
                if let Some(pg) = pgid {
                    kill_group(pg);
                }
                // The intermediate reaps pid 1 and exits; kill it only if it does not.
                match tokio::time::timeout(Duration::from_secs(2), child.wait()).await {
                    Ok(s) => s.ok(),
                    Err(_) => {
                        let _ = child.kill().await;
                        child.wait().await.ok()
                    }
                }
            }
        };
        if let Some(pg) = pgid {
            reap_group(pg).await;
        }
        drop(kill_w);
        give_back(&workdir, lent)?;
        writer.abort();
        let stdout = finish_read(out_task).await;
        let stderr = finish_read(err_task).await;
        Ok(CommandOutput {
            code: status.and_then(|s| s.code()),
            timed_out,
            output_overflow,
            stopped,
            disk_full,
            stdout,
            stderr,
            duration: started.elapsed(),
            layers,
        })
    }

    /// The harness as a code object for this interpreter, compiled on first use.
    async fn harness_code(&self) -> Option<&[u8]> {
        self.harness_code
            .get_or_init(|| async {
                if let Some(code) = self.harness_file.as_deref().and_then(read_sealed) {
                    return Some(code);
                }
                let code = self.compile_harness().await?;
                if let Some(f) = &self.harness_file {
                    // Only time depends on it: a cache that cannot be written
                    // costs the next invocation a compile.
                    let _ = write_sealed(f, &code);
                }
                Some(code)
            })
            .await
            .as_deref()
    }

    /// The harness compiled by this sandbox's interpreter, as marshal bytes.
    async fn compile_harness(&self) -> Option<Vec<u8>> {
        let mut child = tokio::process::Command::new(&self.cfg.python)
            .args(["-I", "-S", "-B", "-c", COMPILE])
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .ok()?;
        let mut stdin = child.stdin.take()?;
        stdin.write_all(HARNESS_PY.as_bytes()).await.ok()?;
        drop(stdin);
        let out = child.wait_with_output().await.ok()?;
        (out.status.success() && !out.stdout.is_empty()).then_some(out.stdout)
    }

    /// Run the harness on a marshalled `request`: forked from the fork server
    /// when there is one, else in an interpreter of its own.
    async fn run_python(
        &self,
        request: Vec<u8>,
        limits: &Limits,
    ) -> Result<CommandOutput, SandboxError> {
        let server = self.fork_server().await;
        // Shared with the forked run's stdin writer, kept for a fallback.
        let request: Arc<[u8]> = request.into();
        if let Ok(server) = &server {
            match self.exec_forked(server, request.clone(), limits).await {
                Err(Forked::Lost(e)) => {
                    // The server is gone (killed, or out of memory): start
                    // another for later runs; this one runs on its own.
                    tracing::warn!("fork server lost, restarting it: {e}");
                    let mut s = self.server.lock().await;
                    if matches!(&*s, Server::Up(up) if Arc::ptr_eq(up, server)) {
                        *s = Server::NotStarted;
                    }
                }
                Err(Forked::Run(e)) => return Err(e),
                Ok(r) => return Ok(r),
            }
        }
        let (code_arg, stdin) = match self.harness_code().await {
            Some(code) => {
                let mut input = format!("{}\n", code.len()).into_bytes();
                input.extend_from_slice(code);
                input.extend_from_slice(&request);
                (BOOTSTRAP, input)
            }
            None => (HARNESS_PY, request.to_vec()),
        };
        let spec = CommandSpec {
            program: self.cfg.python.clone(),
            args: vec![
                "-I".into(),
                "-S".into(),
                "-B".into(),
                "-c".into(),
                code_arg.into(),
            ],
            workdir: None,
            env: python_env(),
            stdin,
            limits: limits.clone(),
        };
        let mut r = self.exec(spec).await?;
        let why = match &server {
            Ok(_) => "the fork server was lost; this run started its own interpreter".into(),
            Err(why) => why.clone(),
        };
        r.layers.push(Layer::off("fork-server", why));
        Ok(r)
    }

    /// The running fork server, started on first use.
    async fn fork_server(&self) -> Result<Arc<forkserver::ForkServer>, String> {
        if !self.cfg.fork_server {
            return Err("off (fork_server: false): each run starts its own interpreter".into());
        }
        let mut s = self.server.lock().await;
        if let Server::NotStarted = &*s {
            let started = match self.harness_code().await {
                None => Err("the harness did not compile with this python".to_string()),
                Some(code) => {
                    let (python, code) = (self.cfg.python.clone(), code.to_vec());
                    let seccomp = self.seccomp.as_ref().ok().cloned();
                    tokio::task::spawn_blocking(move || {
                        forkserver::ForkServer::start(
                            &python,
                            &python_env(),
                            &code,
                            seccomp.as_ref(),
                        )
                    })
                    .await
                    .unwrap_or_else(|e| Err(format!("fork server start panicked: {e}")))
                }
            };
            *s = match started {
                Ok(server) => Server::Up(Arc::new(server)),
                Err(e) => {
                    tracing::warn!("{e}; runs start their own interpreter");
                    Server::Failed(e)
                }
            };
        }
        match &*s {
            Server::Up(server) => Ok(server.clone()),
            Server::Failed(e) => Err(e.clone()),
            Server::NotStarted => Err("the fork server is not running".into()),
        }
    }

    /// One harness run forked from `server`, in a fresh private work dir.
    async fn exec_forked(
        &self,
        server: &forkserver::ForkServer,
        request: Arc<[u8]>,
        l: &Limits,
    ) -> Result<CommandOutput, Forked> {
        use tokio::io::AsyncBufReadExt;
        use tokio::net::unix::pipe;
        let started = Instant::now();
        let prep = self.prepare(None, l).map_err(Forked::Run)?;
        let io = |e: std::io::Error| Forked::Run(SandboxError::Config(format!("run pipes: {e}")));
        let (in_r, in_w) = std::io::pipe().map_err(io)?;
        let (out_r, out_w) = std::io::pipe().map_err(io)?;
        let (err_r, err_w) = std::io::pipe().map_err(io)?;
        let (st_r, st_w) = std::io::pipe().map_err(io)?;
        // The intermediate kills pid 1 (and so the namespace) on a byte here.
        let (kill_r, mut kill_w) = std::io::pipe().map_err(io)?;
        {
            use std::os::fd::AsRawFd;
            let fds = [
                in_r.as_raw_fd(),
                out_w.as_raw_fd(),
                err_w.as_raw_fd(),
                st_w.as_raw_fd(),
                kill_r.as_raw_fd(),
            ];
            server
                .launch(&prep.plan, self.support, fds)
                .map_err(|e| Forked::Lost(e.to_string()))?;
        }
        // Only the run holds these ends now: EOF comes when it is gone.
        drop((in_r, out_w, err_w, st_w, kill_r));
        let rx = |r: std::io::PipeReader| pipe::Receiver::from_owned_fd(r.into()).map_err(io);
        let stdout = rx(out_r)?;
        let stderr = rx(err_r)?;
        let mut status = tokio::io::BufReader::new(rx(st_r)?).lines();
        let mut stdin = pipe::Sender::from_owned_fd(in_w.into()).map_err(io)?;
        let writer = tokio::spawn(async move {
            let _ = stdin.write_all(&request).await;
        });
        let (tx, mut overflow) = tokio::sync::mpsc::channel::<()>(2);
        let out_task = tokio::spawn(read_capped(
            Some(stdout),
            l.max_output + RESULT_ROOM,
            tx.clone(),
        ));
        let err_task = tokio::spawn(read_capped(Some(stderr), l.max_output, tx));
        // The intermediate names the run's process group first thing.
        let pgid = match tokio::time::timeout(FORK_TIMEOUT, status.next_line()).await {
            Ok(Ok(Some(line))) => line.strip_prefix('P').and_then(|p| p.parse::<i32>().ok()),
            _ => None,
        };
        let Some(pgid) = pgid else {
            writer.abort();
            return Err(Forked::Lost("no run started".into()));
        };
        let mut timed_out = false;
        let mut output_overflow = false;
        let mut end = End::default();
        // The run's deadline; once the run is killed, the time the intermediate
        // has left to report pid 1's end.
        let deadline = tokio::time::sleep(l.timeout.saturating_sub(started.elapsed()));
        tokio::pin!(deadline);
        let grace = || tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            let killed = timed_out || output_overflow;
            tokio::select! {
                line = status.next_line() => match line {
                    Ok(Some(line)) => if end.take(&line) { break },
                    _ => break,
                },
                () = &mut deadline => {
                    if killed {
                        break;
                    }
                    // The limit is on the run's own time (see `own_time`).
                    let left = end.run_pid.and_then(|pid| {
                        crate::own_time::process_left(pid, started.elapsed(), l.timeout)
                    });
                    if let Some(left) = left {
                        deadline.as_mut().reset(tokio::time::Instant::now() + left);
                        continue;
                    }
                    timed_out = true;
                    kill_namespace(&mut kill_w);
                    kill_group(pgid);
                    deadline.as_mut().reset(grace());
                }
                Some(()) = overflow.recv(), if !killed => {
                    output_overflow = true;
                    kill_namespace(&mut kill_w);
                    kill_group(pgid);
                    deadline.as_mut().reset(grace());
                }
            }
        }
        reap_group(pgid).await;
        drop(kill_w);
        give_back(&prep.workdir, prep.lent).map_err(Forked::Run)?;
        writer.abort();
        if let Some(why) = end.error {
            return Err(Forked::Run(SandboxError::Config(format!(
                "cannot apply the jail: {why}"
            ))));
        }
        let mut layers = prep.layers;
        layers.push(Layer::on(
            "fork-server",
            format!(
                "forked from a pre-started interpreter (pid {}); the layers above applied after fork",
                server.pid()
            ),
        ));
        Ok(CommandOutput {
            code: end.code,
            timed_out,
            output_overflow,
            stopped: false,
            disk_full: None,
            stdout: finish_read(out_task).await,
            stderr: finish_read(err_task).await,
            duration: started.elapsed(),
            layers,
        })
    }

    async fn run_inner(&self, req: &RunRequest) -> Outcome {
        let limits = &req.limits;
        let Some(token) = harness::new_token() else {
            return Outcome::new(
                Status::Unavailable,
                SandboxKind::Process,
                limits,
                Vec::new(),
            )
            .with_status(Status::Unavailable, harness::NO_RANDOMNESS);
        };
        // Instrumented tests are reused as in the fast sandbox; a first run
        // of a suite has the harness write them out before the program runs.
        let compile = harness::compile_request(&req.tests).map(|(key, _)| key);
        let mut value = harness::request_value(req, &token);
        let mut emit = None;
        if let Some(key) = compile {
            match self.compiled.get(&key) {
                Some(c) => value["tests_compiled"] = (*c).clone(),
                None => {
                    value["emit_compiled"] = serde_json::Value::Bool(true);
                    emit = Some(key);
                }
            }
        }
        let request = harness::marshal_request(&value);
        let mut out = Outcome::new(Status::Crashed, SandboxKind::Process, limits, Vec::new());
        // A compute run's result carries its answers, which the program's
        // output cap does not bound (HumanEval+ and MBPP+ return strings and
        // lists of megabytes): room for them on the pipe.
        let mut pipe = limits.clone();
        if matches!(req.tests, TestSpec::Compute(_)) {
            pipe.max_output += ANSWER_ROOM;
        }
        let r = match self.run_python(request, &pipe).await {
            Ok(r) => r,
            Err(e) => return out.with_status(Status::Unavailable, e.to_string()),
        };
        out.layers = r.layers;
        out.duration_ms = r.duration.as_secs_f64() * 1e3;
        let text = String::from_utf8_lossy(&r.stdout).into_owned();
        if let Some(key) = emit
            && let Some(c) = harness::find_compiled(&text, &token)
        {
            self.compiled.insert(key, Arc::new(c));
        }
        // Past the deadline nothing the run printed counts, a result line
        // included: a run that outlives its time is a timeout.
        if !r.timed_out
            && let Some(result) = harness::find_result(&text, &token)
        {
            harness::apply(result, &mut out);
            return out;
        }
        out.stdout = crate::wasm::full::tail(&text, 4000);
        out.stderr = crate::wasm::full::tail(&String::from_utf8_lossy(&r.stderr), 4000);
        let secs = limits.timeout.as_secs_f64();
        let (status, reason) = if r.timed_out {
            (Status::Timeout, format!("ran past {secs:.1}s"))
        } else if r.output_overflow {
            (
                Status::OutputLimit,
                format!("the program wrote more than {} bytes", limits.max_output),
            )
        } else {
            match r.code {
                Some(c) if c == 128 + libc::SIGXCPU || c == 128 + libc::SIGKILL => (
                    Status::Timeout,
                    format!("CPU time limit ({}s) reached", limits.timeout.as_secs() + 2),
                ),
                Some(c) if c > 128 => (
                    Status::Crashed,
                    format!("the interpreter was killed by signal {}", c - 128),
                ),
                Some(c) if out.stderr.contains("MemoryError") => (
                    Status::MemoryLimit,
                    format!(
                        "address space cap of {} MiB reached (exit {c})",
                        limits.memory_mb
                    ),
                ),
                Some(c) => (
                    Status::Crashed,
                    format!("the interpreter exited with status {c} without a result"),
                ),
                None => (
                    Status::Crashed,
                    "the interpreter ended without a status".into(),
                ),
            }
        };
        out.with_status(status, reason)
    }
}

/// Why a forked run did not happen: the server is gone (start another), or
/// the run itself could not be set up.
enum Forked {
    Lost(String),
    Run(SandboxError),
}

/// How long a fork may take before the server counts as lost.
const FORK_TIMEOUT: Duration = Duration::from_secs(10);

/// The end of a forked run, from its status pipe: `R<pid>` (pid 1's host
/// pid), then `X<code>` (pid 1's exit status, 128+signal when killed) or
/// `E<reason>` (a layer failed). Only the intermediate writes there: pid 1
/// closes it before the program runs.
#[derive(Default)]
struct End {
    code: Option<i32>,
    error: Option<String>,
    run_pid: Option<i32>,
}

impl End {
    /// Take one status line; true once the run has ended.
    fn take(&mut self, line: &str) -> bool {
        if let Some(p) = line.strip_prefix('R') {
            self.run_pid = p.parse().ok();
        } else if let Some(e) = line.strip_prefix('E') {
            self.error = Some(e.to_string());
        } else if let Some(c) = line.strip_prefix('X') {
            self.code = c.parse().ok();
            return true;
        }
        false
    }
}

/// Ask the run's intermediate to kill pid 1 of its namespace: the kernel
/// then kills everything in it, whatever group or session it moved to.
fn kill_namespace(kill_w: &mut std::io::PipeWriter) {
    use std::io::Write;
    let _ = kill_w.write_all(b"k");
}

/// The output a reader collected; once the run is over nothing may hold it
/// open for long (everything in the namespace is dead), but never wait on
/// it forever.
async fn finish_read(task: tokio::task::JoinHandle<Vec<u8>>) -> Vec<u8> {
    let abort = task.abort_handle();
    match tokio::time::timeout(Duration::from_secs(5), task).await {
        Ok(r) => r.unwrap_or_default(),
        Err(_) => {
            abort.abort();
            tracing::warn!("a run's output was still open 5 s after it ended");
            Vec::new()
        }
    }
}

fn kill_group(pgid: i32) {
    // SAFETY: signals the run's own process group (pid 1 of its namespace).
    unsafe { libc::killpg(pgid, libc::SIGKILL) };
}

/// The environment of Python runs: an allow-list, nothing inherited.
fn python_env() -> Vec<(String, String)> {
    [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("LANG", "C.UTF-8"),
        ("HOME", "/nonexistent"),
        ("PYTHONIOENCODING", "utf-8"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Room on stdout for the harness's own result line, beyond the program's cap.
const RESULT_ROOM: usize = 256 << 10;

/// Room for a compute run's answers (the fast sandbox bounds them only by
/// its memory cap).
const ANSWER_ROOM: usize = 256 << 20;

async fn read_capped<R: AsyncRead + Unpin>(
    r: Option<R>,
    cap: usize,
    overflow: tokio::sync::mpsc::Sender<()>,
) -> Vec<u8> {
    let Some(mut r) = r else { return Vec::new() };
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = cap.saturating_sub(buf.len());
                buf.extend_from_slice(&chunk[..n.min(room)]);
                if n > room {
                    let _ = overflow.send(()).await;
                    break;
                }
            }
        }
    }
    buf
}

/// Return only once the run's process group is gone: under load the kernel
/// may still be tearing a killed process down when its parent has exited.
async fn reap_group(pgid: i32) {
    for _ in 0..150 {
        // SAFETY: signal 0 only probes; SIGKILL targets the run's own group.
        let alive = unsafe { libc::killpg(pgid, 0) } == 0;
        if !alive {
            return;
        }
        unsafe { libc::killpg(pgid, libc::SIGKILL) };
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::warn!("process group {pgid} still exists 3 s after its run ended");
}

/// Give a lent work dir back to the caller's uid.
fn give_back(workdir: &Path, lent: Option<u32>) -> Result<(), SandboxError> {
    if lent.is_some() {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        chown_tree(workdir, uid, gid)?;
    }
    Ok(())
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), SandboxError> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        SandboxError::Config(format!("path {} contains a NUL byte", path.display()))
    })?;
    // SAFETY: valid C string; lchown does not follow symlinks.
    if unsafe { libc::lchown(c.as_ptr(), uid, gid) } != 0 {
        return Err(SandboxError::io(path, std::io::Error::last_os_error()));
    }
    if path.is_dir() && !path.is_symlink() {
        let rd = std::fs::read_dir(path).map_err(|e| SandboxError::io(path, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| SandboxError::io(path, e))?;
            chown_tree(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

impl Sandbox for ProcessSandbox {
    fn kind(&self) -> SandboxKind {
        SandboxKind::Process
    }
    fn warm_up(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {
            // A failed start is remembered and reported by the runs themselves.
            let _ = self.fork_server().await;
        })
    }
    fn run_unjudged<'a>(&'a self, req: &'a RunRequest) -> BoxFuture<'a, Outcome> {
        Box::pin(self.run_inner(req))
    }
    fn walks(&self) -> Option<&crate::harness::CompiledTests> {
        self.walks.as_ref()
    }
}
