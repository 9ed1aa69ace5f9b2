//! Running a project's tests in the process sandbox, with its own toolchain,
//! and reading what failed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use selfrepair_sandbox::Limits;
use selfrepair_sandbox::process::{
    CommandSpec, DiskCap, ProcessConfig, ProcessSandbox, default_python, interpreter_prefix,
    others_can_reach,
};

use super::FixError;
use super::detect::{RunnerKind, TestCommand};
use super::failures::{Failure, TestReport};
use super::{junit, textparse};

/// Scratch space inside the work copy (and so inside the jail's one
/// writable directory): reports, caches, build output. Never committed.
pub(crate) const SCRATCH_DIR: &str = ".selfrepair";

#[derive(Clone, Debug)]
pub struct RunnerOptions {
    /// Python for pytest (default: the sandbox's, `SELFREPAIR_PYTHON` or /usr/bin/python3).
    pub python: Option<PathBuf>,
    /// What that interpreter needs, from [`super::interpreter`]: read-only
    /// paths, `PYTHONPATH` entries (the provided pytest), and a bin dir put
    /// first on `PATH`.
    pub python_ro: Vec<PathBuf>,
    pub python_path: Vec<PathBuf>,
    pub python_bin: Option<PathBuf>,
    pub timeout: Duration,
    pub allow_network: bool,
    pub memory_mb: u64,
    /// The most the work copy may hold while the tests run (their build
    /// output and caches included): bytes and inodes.
    pub disk: DiskCap,
    /// The user's directories the work copy links to (`node_modules`),
    /// exposed read-only.
    pub linked_ro: Vec<PathBuf>,
}

/// The work copy's default cap: room for a large project's build output.
pub const DISK_MB: u64 = 10 << 10;
const DISK_INODES: u64 = 1_000_000;

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            python: None,
            python_ro: Vec::new(),
            python_path: Vec::new(),
            python_bin: None,
            timeout: Duration::from_secs(300),
            allow_network: false,
            memory_mb: 8192,
            disk: DiskCap {
                bytes: DISK_MB << 20,
                inodes: DISK_INODES,
            },
            linked_ro: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Passed,
    Failed,
    TimedOut,
    Cancelled,
    /// The runner found no tests to run.
    NoTests,
    /// The shell could not find or run the command (exit 127 or 126), or
    /// pytest is not installed for the python in use.
    CommandNotFound,
}

/// One run of the tests.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TestRun {
    pub command: String,
    pub status: RunStatus,
    pub exit_code: Option<i32>,
    pub report: TestReport,
    /// The end of stdout and stderr together.
    pub output: String,
    pub duration_ms: u64,
}

const OUTPUT_TAIL: usize = 16 << 10;

pub struct TestRunner {
    sandbox: ProcessSandbox,
    command: TestCommand,
    /// The sandbox's work dir: the whole work copy.
    root: PathBuf,
    /// The project inside it (where the command runs).
    project_rel: PathBuf,
    python: PathBuf,
    env: Vec<(String, String)>,
    limits: Limits,
    /// Tests left out of full runs (a baseline test that hung).
    deselect: Vec<String>,
    /// The JUnit report's file name in the scratch dir, new per runner.
    junit_name: String,
    /// Our coverage plugin for pytest, outside the work copy and read-only
    /// in the jail (see [`super::localise`]); `None` for other runners.
    cover_plugin: Option<tempfile::TempDir>,
}

impl TestRunner {
    pub fn new(
        command: TestCommand,
        root: &Path,
        project_rel: &Path,
        opts: &RunnerOptions,
    ) -> Result<Self, FixError> {
        let scratch = root.join(SCRATCH_DIR);
        // The work copy is the repository's: a `.selfrepair` it ships (a
        // symlink to /etc, say) must not steer where the host writes.
        real_dir(&scratch).map_err(|e| FixError::io(&scratch, e))?;
        for d in ["home", "tmp", "cargo-home", "target", "go-cache", "go"] {
            let d = scratch.join(d);
            real_dir(&d).map_err(|e| FixError::io(&d, e))?;
        }
        let python = opts.python.clone().unwrap_or_else(default_python);
        let mut ro_paths: Vec<PathBuf> = Vec::new();
        let mut path_dirs: Vec<String> = Vec::new();
        let s = |p: &Path| p.to_string_lossy().into_owned();
        let mut env: Vec<(String, String)> = vec![
            ("LANG".into(), "C.UTF-8".into()),
            ("HOME".into(), s(&scratch.join("home"))),
            ("TMPDIR".into(), s(&scratch.join("tmp"))),
            ("CI".into(), "true".into()),
            ("NO_COLOR".into(), "1".into()),
            ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
            ("PYTHONIOENCODING".into(), "utf-8".into()),
        ];
        // Only the toolchains the command may use; a `--test` command may use any.
        let wants = |k: RunnerKind| {
            command.kind == k || matches!(command.kind, RunnerKind::Make | RunnerKind::Custom)
        };
        // A virtualenv (or any python outside /usr) needs its own prefix.
        if let Some(prefix) = python.parent().and_then(Path::parent)
            && !prefix.starts_with("/usr")
            && wants(RunnerKind::Pytest)
            && interpreter_prefix(prefix)
        {
            ro_paths.push(prefix.to_path_buf());
        }
        if wants(RunnerKind::Pytest) {
            ro_paths.extend(opts.python_ro.iter().cloned());
            path_dirs.extend(opts.python_bin.as_deref().map(s));
            if let Ok(pp) = std::env::join_paths(&opts.python_path)
                && !pp.is_empty()
            {
                env.push(("PYTHONPATH".into(), pp.to_string_lossy().into_owned()));
            }
        }
        // Nothing of the repository may run on the host: toolchains are
        // located from a neutral directory, pinned by us (see HostProbe).
        let probe = HostProbe::new();
        if wants(RunnerKind::Cargo)
            && let Some(sysroot) = probe.rust_sysroot()
        {
            let sysroot = PathBuf::from(sysroot);
            path_dirs.push(s(&sysroot.join("bin")));
            ro_paths.push(sysroot);
            let cargo_home = scratch.join("cargo-home");
            // Crates already downloaded on the host can be read, offline.
            if let Some(registry) = dirs::home_dir().map(|h| h.join(".cargo/registry"))
                && registry.is_dir()
            {
                let link = cargo_home.join("registry");
                if !link.exists() {
                    let _ = std::os::unix::fs::symlink(&registry, &link);
                }
                ro_paths.push(registry);
            }
            env.extend([
                ("CARGO_HOME".into(), s(&cargo_home)),
                ("CARGO_TARGET_DIR".into(), s(&scratch.join("target"))),
                ("CARGO_NET_OFFLINE".into(), "true".into()),
                ("CARGO_TERM_COLOR".into(), "never".into()),
                ("RUST_BACKTRACE".into(), "0".into()),
            ]);
        }
        if wants(RunnerKind::Go)
            && let Some(goroot) = probe.go_root()
        {
            let goroot = PathBuf::from(goroot);
            path_dirs.push(s(&goroot.join("bin")));
            ro_paths.push(goroot);
            env.extend([
                ("GOCACHE".into(), s(&scratch.join("go-cache"))),
                ("GOPATH".into(), s(&scratch.join("go"))),
                ("GOFLAGS".into(), "-buildvcs=false".into()),
                ("GOTOOLCHAIN".into(), "local".into()),
                ("GOPROXY".into(), "off".into()),
            ]);
        }
        if wants(RunnerKind::Node)
            && let Some(node) = probe.node_path()
            && let Some(bin) = Path::new(&node).parent()
        {
            path_dirs.push(s(bin));
            if let Some(prefix) = bin.parent().filter(|p| !p.starts_with("/usr")) {
                ro_paths.push(prefix.to_path_buf());
            }
            // Node reads its OpenSSL configuration at start-up.
            ro_paths.push("/etc/ssl".into());
        }
        ro_paths.extend(opts.linked_ro.iter().cloned());
        path_dirs.extend(["/usr/local/bin", "/usr/bin", "/bin"].map(String::from));
        env.push(("PATH".into(), path_dirs.join(":")));
        // A dedicated uid reaches a toolchain in a private home (root's
        // rustup in /root) through the jail's covering mounts; where it
        // cannot, run as ourselves, with no capabilities, still jailed.
        let keep_uid = ro_paths.iter().any(|p| !others_can_reach(p));
        let cover_plugin = if command.detected && command.kind == RunnerKind::Pytest {
            let dir = super::localise::write_plugin()
                .map_err(|e| FixError::io(&std::env::temp_dir(), e))?;
            ro_paths.push(dir.path().to_path_buf());
            Some(dir)
        } else {
            None
        };
        let cfg = ProcessConfig {
            python: python.clone(),
            allow_network: opts.allow_network,
            ro_paths,
            nproc: 512,
            fsize_mb: 1024,
            keep_uid,
            // multiprocessing needs a /dev/shm (SemLock); 64 MiB as Docker gives.
            shm_mb: 64,
            // Tests that serve and call 127.0.0.1 work; nothing else is reachable.
            loopback: true,
            disk: Some(opts.disk),
            ..ProcessConfig::default()
        };
        let sandbox = ProcessSandbox::new(cfg).map_err(FixError::Sandbox)?;
        Ok(TestRunner {
            sandbox,
            command,
            root: root.to_path_buf(),
            project_rel: project_rel.to_path_buf(),
            python,
            env,
            junit_name: format!("junit-{:016x}.xml", rand::random::<u64>()),
            limits: Limits {
                timeout: opts.timeout,
                memory_mb: opts.memory_mb,
                max_output: 8 << 20,
                test_timeout: None,
            },
            deselect: Vec::new(),
            cover_plugin,
        })
    }

    pub fn command(&self) -> &TestCommand {
        &self.command
    }

    /// The limit for later runs (a deadline derived from the baseline).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.limits.timeout = timeout;
    }

    pub fn timeout(&self) -> Duration {
        self.limits.timeout
    }

    /// Leave these tests out of the next runs (pytest only; empty: none).
    pub fn set_deselect(&mut self, ids: Vec<String>) {
        self.deselect = ids;
    }

    fn junit_path(&self) -> PathBuf {
        self.root.join(SCRATCH_DIR).join(&self.junit_name)
    }

    /// Whether a run's report names every test it collected (passed,
    /// failed and skipped): only runners we drive with our own flags.
    pub fn reports_every_test(&self) -> bool {
        self.command.detected
            && matches!(
                self.command.kind,
                RunnerKind::Pytest | RunnerKind::Cargo | RunnerKind::Go
            )
    }

    /// Whether this run's JUnit report is ours to read: only pytest as we
    /// run it writes one. Any other command's tests could leave a file there.
    fn reads_junit(&self) -> bool {
        self.command.detected && self.command.kind == RunnerKind::Pytest
    }

    /// The shell command line for a run of `only` these tests (all if
    /// empty). A `--test` command runs exactly as given, whole.
    pub fn command_line(&self, only: &[String]) -> String {
        self.command_line_with(only, "")
    }

    /// [`Self::command_line`] with `extra` pytest options (ignored by other runners).
    fn command_line_with(&self, only: &[String], extra: &str) -> String {
        let c = &self.command;
        if !c.detected {
            return c.command.clone();
        }
        let ids = only
            .iter()
            .map(|i| sh_quote(i))
            .chain(
                self.deselect
                    .iter()
                    .map(|i| format!("--deselect {}", sh_quote(i))),
            )
            .collect::<Vec<_>>()
            .join(" ");
        match c.kind {
            // A test still running two thirds into the deadline has its
            // stack dumped (the timer starts with the test, after pytest's
            // start-up and the tests before it), so a hang is a failure
            // with frames.
            RunnerKind::Pytest => format!(
                "{} -m pytest -q -rfE -p no:cacheprovider{extra} -o junit_family=xunit1 -o faulthandler_timeout={} --junitxml={} {ids}",
                sh_quote(&self.python.to_string_lossy()),
                (self.limits.timeout.as_secs() * 2 / 3).max(1),
                sh_quote(&self.junit_path().to_string_lossy())
            )
            .trim_end()
            .to_string(),
            RunnerKind::Cargo if !only.is_empty() && !only.iter().any(|i| i == "build") => {
                format!("{} -- --exact {ids}", c.command)
            }
            RunnerKind::Go if !only.is_empty() => format!(
                "go test -json ./... -run {}",
                sh_quote(&format!("^({})$", only.join("|")))
            ),
            RunnerKind::Go => "go test -json ./...".into(),
            _ => c.command.clone(),
        }
    }

    /// Run the tests (only `only` when non-empty and the runner can select).
    pub async fn run(
        &self,
        only: &[String],
        cancel: &CancellationToken,
    ) -> Result<TestRun, FixError> {
        self.run_line(self.command_line(only), Vec::new(), cancel)
            .await
    }

    /// Run `only` these tests and stop at the first failure (pytest `-x`):
    /// a candidate that still fails one of them is rejected sooner.
    pub async fn run_until_failure(
        &self,
        only: &[String],
        cancel: &CancellationToken,
    ) -> Result<TestRun, FixError> {
        self.run_line(self.command_line_until_failure(only), Vec::new(), cancel)
            .await
    }

    /// The command line of [`Self::run_until_failure`].
    pub fn command_line_until_failure(&self, only: &[String]) -> String {
        self.command_line_with(only, " -x")
    }

    /// Run the whole suite under our coverage plugin; the per-test lines it
    /// wrote, or `None` for runners other than pytest or when it wrote none.
    pub async fn run_covered(
        &self,
        cancel: &CancellationToken,
    ) -> Result<Option<(TestRun, String)>, FixError> {
        let Some(plugin) = &self.cover_plugin else {
            return Ok(None);
        };
        let scratch = self.root.join(SCRATCH_DIR);
        let out = scratch.join(format!("cover-{:016x}.json", rand::random::<u64>()));
        let s = |p: &Path| p.to_string_lossy().into_owned();
        let mut path = vec![s(plugin.path())];
        path.extend(
            self.env
                .iter()
                .find(|(k, _)| k == "PYTHONPATH")
                .map(|(_, v)| v.clone()),
        );
        let env = vec![
            ("PYTHONPATH".to_string(), path.join(":")),
            ("SELFREPAIR_COVER_OUT".to_string(), s(&out)),
            (
                "SELFREPAIR_COVER_ROOT".to_string(),
                s(&self.root.join(&self.project_rel)),
            ),
        ];
        let line = self.command_line_with(&[], " -p selfrepair_cover");
        let run = self.run_line(line, env, cancel).await?;
        let data = read_report(&scratch, &out);
        let _ = std::fs::remove_file(&out);
        Ok(data.map(|d| (run, d)))
    }

    async fn run_line(
        &self,
        line: String,
        extra_env: Vec<(String, String)>,
        cancel: &CancellationToken,
    ) -> Result<TestRun, FixError> {
        let junit = self.junit_path();
        // An earlier run may have swapped the scratch dir for a symlink.
        let scratch = self.root.join(SCRATCH_DIR);
        real_dir(&scratch).map_err(|e| FixError::io(&scratch, e))?;
        let _ = std::fs::remove_file(&junit);
        // Not `exec`: a --test command may be a compound shell command.
        let script = format!(
            "cd {} || exit 2\n{line}",
            sh_quote(&self.project_rel.to_string_lossy())
        );
        let spec = CommandSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script],
            workdir: Some(self.root.clone()),
            env: self
                .env
                .iter()
                .filter(|(k, _)| !extra_env.iter().any(|(e, _)| e == k))
                .chain(&extra_env)
                .cloned()
                .collect(),
            stdin: Vec::new(),
            limits: self.limits.clone(),
        };
        let out = self
            .sandbox
            .exec_until(spec, cancel.cancelled())
            .await
            .map_err(FixError::Sandbox)?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !stderr.trim().is_empty() {
            text.push_str("\n--- stderr\n");
            text.push_str(&stderr);
        }
        let junit_text = if self.reads_junit() {
            read_report(&scratch, &junit)
        } else {
            None
        };
        let mut report = junit_text
            .and_then(|x| junit::parse(&x))
            .unwrap_or_else(|| textparse::parse(self.command.kind, &text));
        if self.command.kind == RunnerKind::Pytest {
            module_ids_to_paths(&mut report, &self.root.join(&self.project_rel));
        }
        report.locate_frames(&text, &self.root.join(&self.project_rel));
        let mut status = if out.stopped {
            RunStatus::Cancelled
        } else if out.timed_out {
            RunStatus::TimedOut
        } else if matches!(out.code, Some(126 | 127))
            || (self.command.kind == RunnerKind::Pytest && text.contains("No module named pytest"))
        {
            RunStatus::CommandNotFound
        } else if self.command.kind == RunnerKind::Pytest
            && self.command.detected
            && out.code == Some(5)
        {
            RunStatus::NoTests
        } else if out.code == Some(0) {
            // Only our own flags make a runner's counts reliable.
            let knows_counts = self.command.detected
                && matches!(
                    self.command.kind,
                    RunnerKind::Pytest | RunnerKind::Cargo | RunnerKind::Go
                );
            if knows_counts && report.passed.is_empty() && report.failed.is_empty() {
                RunStatus::NoTests
            } else {
                RunStatus::Passed
            }
        } else {
            RunStatus::Failed
        };
        if status == RunStatus::TimedOut {
            // A hang is a failing test: the one the stack dump names.
            let project = self.root.join(&self.project_rel);
            report.failed = vec![super::baseline::hang_failure(
                &text,
                &project,
                self.limits.timeout,
            )];
        }
        if let Some(why) = &out.disk_full {
            // Whatever else it printed, the run was stopped for what it wrote.
            status = RunStatus::Failed;
            let why = format!("stopped: {why} (selfrepair fix --disk-mb)");
            text.push_str(&format!("\n--- selfrepair\n{why}\n"));
            report.failed = vec![Failure::new("suite", why)];
        }
        if status == RunStatus::Failed && report.failed.is_empty() {
            // Nothing parseable: the suite as a whole failed.
            let mut f = Failure::new("suite", tail_lines(&text, 15));
            f.output = tail(&text, 4000).to_string();
            report.failed.push(f);
            report.locate_frames(&text, &self.root.join(&self.project_rel));
        }
        Ok(TestRun {
            command: line,
            status,
            exit_code: out.code,
            report,
            output: tail(&text, OUTPUT_TAIL).to_string(),
            duration_ms: out.duration.as_millis() as u64,
        })
    }
}

/// The host probes' view of the world: only where the toolchains are,
/// never the repository. Each runs from `/` (no `rust-toolchain.toml`,
/// `go.mod`, `.tool-versions`, `.nvmrc` or `package.json` of the work copy
/// or of a world-writable directory above it can be found from there) with an
/// allow-listed environment, and rustup is pinned to the host's default
/// toolchain, resolved by us.
pub(crate) struct HostProbe {
    env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    /// `RUSTUP_TOOLCHAIN` for rustc: `None` without rustup; `Some(Err)`
    /// when rustup is installed but no toolchain could be pinned (then
    /// rustc is not probed at all).
    rustup: Option<Result<String, String>>,
}

/// Variables a version manager or toolchain needs to find itself; none
/// of them can come from a repository.
const PROBE_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "RUSTUP_HOME",
    "CARGO_HOME",
    "GOROOT",
    "GOPATH",
    "VOLTA_HOME",
    "ASDF_DIR",
    "ASDF_DATA_DIR",
    "MISE_DATA_DIR",
    "MISE_CONFIG_DIR",
    "NVM_DIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
];

/// The directory host probes run in.
pub(crate) const PROBE_DIR: &str = "/";

impl HostProbe {
    pub fn new() -> Self {
        Self::from_env(std::env::vars_os())
    }

    /// A probe whose environment is taken (allow-listed) from `vars`.
    pub fn from_env(
        vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    ) -> Self {
        let vars: Vec<(std::ffi::OsString, std::ffi::OsString)> = vars.into_iter().collect();
        let pinned = vars
            .iter()
            .find(|(k, _)| k == "RUSTUP_TOOLCHAIN")
            .and_then(|(_, v)| v.to_str())
            .map(str::to_string);
        let mut env: Vec<(std::ffi::OsString, std::ffi::OsString)> = vars
            .into_iter()
            .filter(|(k, _)| PROBE_ENV.iter().any(|a| k == a))
            .collect();
        env.extend(
            [
                // Never download a toolchain or switch to another one.
                ("RUSTUP_AUTO_INSTALL", "0"),
                ("GOTOOLCHAIN", "local"),
                ("GOWORK", "off"),
                ("GOFLAGS", ""),
            ]
            .map(|(k, v)| (k.into(), v.into())),
        );
        let mut probe = HostProbe { env, rustup: None };
        // The user's own pin wins; else the default toolchain, which no
        // file in any directory can change.
        probe.rustup = match pinned {
            Some(t) if !t.trim().is_empty() => Some(Ok(t)),
            _ => match probe.output_raw("rustup", &["default"], &[]) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => Some(Err(format!("rustup default: {e}"))),
                Ok(out) => match out.split_whitespace().next() {
                    Some(t) if !t.is_empty() && !out.contains("no default") => {
                        Some(Ok(t.to_string()))
                    }
                    _ => Some(Err(format!("rustup default: {out}"))),
                },
            },
        };
        probe
    }

    /// rustc's sysroot, if rustc is installed (and pinned, under rustup).
    pub fn rust_sysroot(&self) -> Option<String> {
        let pin = match &self.rustup {
            None => Vec::new(),
            Some(Ok(t)) => vec![("RUSTUP_TOOLCHAIN", t.as_str())],
            Some(Err(e)) => {
                tracing::warn!("not probing rustc: no rustup toolchain to pin ({e})");
                return None;
            }
        };
        self.output("rustc", &["--print", "sysroot"], &pin)
    }

    pub fn go_root(&self) -> Option<String> {
        self.output("go", &["env", "GOROOT"], &[])
    }

    pub fn node_path(&self) -> Option<String> {
        self.output("node", &["-p", "process.execPath"], &[])
    }

    /// Run a host tool for a toolchain location; `None` if it is not installed.
    fn output(&self, program: &str, args: &[&str], extra: &[(&str, &str)]) -> Option<String> {
        self.output_raw(program, args, extra).ok()
    }

    fn output_raw(
        &self,
        program: &str,
        args: &[&str],
        extra: &[(&str, &str)],
    ) -> std::io::Result<String> {
        let out = super::blocking::blocking(|| {
            std::process::Command::new(program)
                .args(args)
                .current_dir(PROBE_DIR)
                .env_clear()
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .envs(extra.iter().copied())
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .output()
        })?;
        let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !s.is_empty() {
            Ok(s)
        } else {
            Err(std::io::Error::other(format!("{program}: {}", out.status)))
        }
    }
}

impl Default for HostProbe {
    fn default() -> Self {
        Self::new()
    }
}

/// Make `dir` a real directory: a symlink or file in its place (shipped by
/// the repository, or left by a test run) is removed first, so the host
/// never writes through it. Its parent must already be checked.
fn real_dir(dir: &Path) -> std::io::Result<()> {
    match dir.symlink_metadata() {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => {
            std::fs::remove_file(dir)?;
            std::fs::create_dir(dir)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(dir),
        Err(e) => Err(e),
    }
}

/// The largest JUnit report read back.
const MAX_REPORT: u64 = 64 << 20;

/// A report the jailed run wrote, read without following a symlink the run
/// may have put there (or in place of the scratch dir), and never blocking on
/// a FIFO; `None` if it is anything but a regular file of sane size.
fn read_report(scratch: &Path, file: &Path) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    if !scratch.symlink_metadata().ok()?.is_dir() {
        return None;
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(file)
        .ok()?;
    let m = f.metadata().ok()?;
    if !m.is_file() || m.len() > MAX_REPORT {
        return None;
    }
    let mut text = String::new();
    f.take(MAX_REPORT).read_to_string(&mut text).ok()?;
    Some(text)
}

/// A collection error is reported under the module's dotted name
/// (`tests.test_x`), which pytest cannot select; its file path can.
fn module_ids_to_paths(report: &mut TestReport, project: &Path) {
    for f in &mut report.failed {
        if f.id.contains("::") || f.id.contains('/') || !f.id.contains('.') {
            continue;
        }
        let path = format!("{}.py", f.id.replace('.', "/"));
        if project.join(&path).is_file() {
            f.id = path;
        }
    }
}

pub(crate) fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

fn tail_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_collection_error_is_named_by_its_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("tests")).unwrap();
        std::fs::write(d.path().join("tests/test_x.py"), "").unwrap();
        let mut r = TestReport::default();
        for id in ["tests.test_x", "tests.test_gone", "t.py::a.b"] {
            r.failed.push(Failure::new(id, "collection failure"));
        }
        module_ids_to_paths(&mut r, d.path());
        let ids: Vec<&str> = r.failed.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["tests/test_x.py", "tests.test_gone", "t.py::a.b"]);
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
    }

    /// A version-manager shim (asdf, mise, volta) reads the directory it
    /// runs in and the environment: the probes give it `/` and an
    /// allow-listed environment, never the work copy or a secret.
    #[test]
    fn probes_run_from_a_neutral_dir_with_a_clean_env() {
        use std::os::unix::fs::PermissionsExt;
        let bin = tempfile::tempdir().unwrap();
        let log = bin.path().join("log");
        for tool in ["go", "node"] {
            let p = bin.path().join(tool);
            std::fs::write(
                &p,
                format!(
                    "#!/bin/sh\necho \"{tool} cwd=$(pwd) secret=$SELFREPAIR_PROBE_SECRET toolchain=$GOTOOLCHAIN\" >> {}\necho /opt/{tool}/bin/{tool}\n",
                    log.display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let work = tempfile::tempdir().unwrap();
        let vars = [
            ("PATH", bin.path().to_str().unwrap()),
            ("SELFREPAIR_PROBE_SECRET", "sk-leak"),
            ("PWD", work.path().to_str().unwrap()),
        ]
        .map(|(k, v)| (k.into(), v.into()));
        let probe = HostProbe::from_env(vars);
        assert_eq!(probe.go_root().as_deref(), Some("/opt/go/bin/go"));
        assert_eq!(probe.node_path().as_deref(), Some("/opt/node/bin/node"));
        let log = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            log,
            "go cwd=/ secret= toolchain=local\nnode cwd=/ secret= toolchain=local\n"
        );
    }

    #[test]
    fn tails_respect_char_boundaries() {
        assert_eq!(tail("héllo", 4), "llo");
        assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc");
    }
}
