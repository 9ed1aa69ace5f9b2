//! Which Python the user means for their tests, and what the jail must
//! expose, read-only, for it to run there.
//!
//! The sources, first match wins: `--python` / `SELFREPAIR_PYTHON`; an
//! explicit `--test` whose first word is an interpreter (or a script whose
//! shebang names one); `VIRTUAL_ENV`; the project's `.venv`, `venv` or
//! `env`; what uv, poetry, pdm or hatch uses for the project when its lock or
//! config names the tool (asked, never guessed); the `pytest` first on `PATH`,
//! via its shebang; the system python3.
//!
//! Everything in the repository is hostile input: a venv there, its
//! `pyvenv.cfg` and its symlinks are validated, and such an interpreter only
//! ever runs inside the jail. Interpreters outside the repository are the
//! user's own; only those have their `sys.path` exposed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use selfrepair_sandbox::Limits;
use selfrepair_sandbox::process::{CommandSpec, ProcessConfig, ProcessSandbox};

#[derive(Debug, thiserror::Error)]
pub enum InterpreterError {
    #[error("{source_name} names {}, which {reason}; pass --python PATH to an interpreter that exists", path.display())]
    Missing {
        source_name: String,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "the Python interpreter {} ({reason}) could not start in the sandbox: {detail}. Fix it, or pass --python PATH (or SELFREPAIR_PYTHON) to one that runs",
        path.display()
    )]
    Unstartable {
        path: PathBuf,
        reason: String,
        detail: String,
    },
    #[error(
        "{} is Python {major}.{minor} and has no pytest; the pytest selfrepair provides needs Python {}.{}+. Install pytest for it (`{} -m pip install pytest`) or pass --python PATH",
        path.display(),
        selfrepair_sandbox::runtime::PROVIDED_PYTEST_MIN_PYTHON.0,
        selfrepair_sandbox::runtime::PROVIDED_PYTEST_MIN_PYTHON.1,
        path.display()
    )]
    TooOldForProvidedPytest {
        path: PathBuf,
        major: u32,
        minor: u32,
    },
    #[error(
        "cannot fetch the provided pytest: {0} (install pytest for the interpreter, or run `selfrepair setup` once with network)"
    )]
    Provide(selfrepair_sandbox::SandboxError),
    #[error("sandbox: {0}")]
    Sandbox(selfrepair_sandbox::SandboxError),
}

/// Where the interpreter came from, in the order they are tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Flag,
    TestCommand,
    VirtualEnv,
    ProjectVenv,
    Tool,
    PytestOnPath,
    System,
}

/// What the process environment says (a struct, so tests need not mutate
/// the real one).
#[derive(Clone, Debug, Default)]
pub struct Env {
    /// `SELFREPAIR_PYTHON`.
    pub python: Option<OsString>,
    pub virtual_env: Option<OsString>,
    pub path: Option<OsString>,
    pub home: Option<PathBuf>,
}

impl Env {
    pub fn from_process() -> Env {
        let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        Env {
            python: nonempty("SELFREPAIR_PYTHON"),
            virtual_env: nonempty("VIRTUAL_ENV"),
            path: nonempty("PATH"),
            home: dirs::home_dir(),
        }
    }

    /// `name` on `PATH`, as the shell would find it.
    fn which(&self, name: &str) -> Option<PathBuf> {
        self.on_path(name).next()
    }

    /// The first interpreter named `name` on `PATH` that is not a shim (a
    /// script, as pyenv's are): the one the shim would run.
    fn which_interpreter(&self, name: &str) -> Option<PathBuf> {
        self.on_path(name).find(|p| !is_script(p))
    }

    fn on_path<'a>(&'a self, name: &'a str) -> impl Iterator<Item = PathBuf> + 'a {
        self.path
            .iter()
            .flat_map(std::env::split_paths)
            .filter(|d| d.is_absolute())
            .map(move |d| d.join(name))
            .filter(|p| is_executable(p))
    }
}

/// The chosen interpreter and what it needs in the jail.
#[derive(Clone, Debug, Serialize)]
pub struct Interpreter {
    /// Absolute, not resolved: a venv's `bin/python` link is what makes it
    /// the venv's.
    pub python: PathBuf,
    pub source: Source,
    /// Why this one, for the plan line.
    pub reason: String,
    /// Read-only in the jail: the venv prefix, the base interpreter's
    /// prefix, `sys.path` entries outside the project.
    pub ro_paths: Vec<PathBuf>,
    /// First on the jail's `PATH`, so `python` and `pytest` in a `--test`
    /// command are this interpreter's (as an activated venv has it).
    pub bin_dir: Option<PathBuf>,
    /// On `PYTHONPATH`: the provided pytest, when the interpreter has none.
    pub python_path: Vec<PathBuf>,
    /// `Some(version)` when selfrepair's pinned pytest is used.
    pub provided_pytest: Option<String>,
    /// Inside the user's repository, so hostile: never run on the host.
    #[serde(skip)]
    pub in_repo: bool,
}

impl Interpreter {
    /// The plan line's text.
    pub fn describe(&self) -> String {
        match &self.provided_pytest {
            Some(v) => format!(
                "{}; it has no pytest, so selfrepair's pinned pytest {v} is on its path for the run",
                self.reason
            ),
            None => self.reason.clone(),
        }
    }
}

/// Pick the interpreter for `project` (inside the repository `repo_root`).
/// `explicit` is `--python`; `test` is a `--test` command.
pub async fn find(
    project: &Path,
    repo_root: &Path,
    explicit: Option<&Path>,
    test: Option<&str>,
    env: &Env,
) -> Result<Interpreter, InterpreterError> {
    let project = std::path::absolute(project).unwrap_or_else(|_| project.to_path_buf());
    let repo_root = std::path::absolute(repo_root).unwrap_or_else(|_| repo_root.to_path_buf());
    let (python, source, reason) = choose(&project, &repo_root, explicit, test, env).await?;
    let python = std::path::absolute(&python).unwrap_or(python);
    let in_repo = inside(&python, &repo_root)
        || std::fs::canonicalize(&python)
            .is_ok_and(|c| std::fs::canonicalize(&repo_root).is_ok_and(|r| c.starts_with(r)));
    let mut it = Interpreter {
        bin_dir: python.parent().map(Path::to_path_buf),
        ro_paths: Vec::new(),
        python_path: Vec::new(),
        provided_pytest: None,
        python,
        source,
        reason,
        in_repo,
    };
    it.ro_paths = prefixes(&it.python, env).map_err(|why| InterpreterError::Missing {
        source_name: it.reason.clone(),
        path: it.python.clone(),
        reason: why,
    })?;
    Ok(it)
}

async fn choose(
    project: &Path,
    repo_root: &Path,
    explicit: Option<&Path>,
    test: Option<&str>,
    env: &Env,
) -> Result<(PathBuf, Source, String), InterpreterError> {
    // 1. --python, SELFREPAIR_PYTHON: must exist, or it is an error.
    let named = explicit.map(|p| (p.to_path_buf(), "--python")).or_else(|| {
        env.python
            .as_ref()
            .map(|p| (PathBuf::from(p), "SELFREPAIR_PYTHON"))
    });
    if let Some((p, from)) = named {
        let p = if p.components().count() == 1 && !p.is_absolute() {
            env.which_interpreter(&p.to_string_lossy()).unwrap_or(p)
        } else {
            p
        };
        if !is_executable(&p) {
            return Err(InterpreterError::Missing {
                source_name: from.into(),
                path: p,
                reason: "is not an executable file".into(),
            });
        }
        return Ok((p, Source::Flag, format!("given with {from}")));
    }
    // 2. --test: its first word, when it is an interpreter or a script of one.
    if let Some(cmd) = test
        && let Some(word) = cmd
            .split_whitespace()
            .find(|w| !w.contains('=') || w.starts_with('/') || w.starts_with('.'))
    {
        let exe = if word.contains('/') {
            Some(project.join(word))
        } else if word.starts_with("python") {
            env.which_interpreter(word)
        } else if word == "pytest" || word == "py.test" {
            env.which(word)
        } else {
            None
        };
        if let Some(exe) = exe.filter(|e| is_executable(e))
            && let Some(py) = interpreter_of(&exe, env)
        {
            let via = if py == exe {
                String::new()
            } else {
                format!(" (the interpreter of {})", exe.display())
            };
            return Ok((
                py,
                Source::TestCommand,
                format!("the first word of --test{via}"),
            ));
        }
    }
    // 3. An activated virtualenv.
    if let Some(venv) = &env.virtual_env {
        let py = PathBuf::from(venv).join("bin/python");
        if is_executable(&py) {
            return Ok((py, Source::VirtualEnv, "VIRTUAL_ENV".into()));
        }
    }
    // 4. The project's own virtualenv (at the project, then the repository root).
    let mut roots = vec![project.to_path_buf()];
    if repo_root != project {
        roots.push(repo_root.to_path_buf());
    }
    let real_root = std::fs::canonicalize(repo_root).unwrap_or_else(|_| repo_root.to_path_buf());
    for root in &roots {
        for d in [".venv", "venv", "env"] {
            let dir = root.join(d);
            // A link out of the repository counts only into a real Python
            // prefix: it must not widen the jail's read set to anything else.
            let real = std::fs::canonicalize(&dir).ok();
            let allowed = real.as_deref().is_some_and(|r| {
                r.starts_with(&real_root) || selfrepair_sandbox::process::interpreter_prefix(r)
            });
            if !allowed {
                continue;
            }
            if dir.join("pyvenv.cfg").is_file() && is_executable(&dir.join("bin/python")) {
                let rel = dir.strip_prefix(repo_root).unwrap_or(&dir);
                return Ok((
                    dir.join("bin/python"),
                    Source::ProjectVenv,
                    format!("the project's virtualenv {}", rel.display()),
                ));
            }
        }
    }
    // 5. The project's environment manager, asked.
    if let Some((py, why)) = ask_tool(project, repo_root, env).await {
        return Ok((py, Source::Tool, why));
    }
    // 6. The pytest the user would run.
    if let Some(pytest) = env.which("pytest")
        && let Some(py) = interpreter_of(&pytest, env)
    {
        return Ok((
            py,
            Source::PytestOnPath,
            format!(
                "the interpreter of {}, the pytest first on PATH",
                pytest.display()
            ),
        ));
    }
    // 7. The system's.
    for p in ["/usr/bin/python3", "/usr/local/bin/python3"] {
        if is_executable(Path::new(p)) {
            return Ok((p.into(), Source::System, "the system python3".into()));
        }
    }
    match env.which_interpreter("python3") {
        Some(p) => Ok((p, Source::System, "python3 on PATH".into())),
        None => Err(InterpreterError::Missing {
            source_name: "the system".into(),
            path: "python3".into(),
            reason: "is not installed".into(),
        }),
    }
}

/// The Python behind an executable: itself if it is one (a binary named
/// python*), else its shebang's interpreter (`#!/path/python`, or
/// `#!/usr/bin/env python3` resolved on PATH). Reads, never runs, the file.
fn interpreter_of(exe: &Path, env: &Env) -> Option<PathBuf> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(exe).ok()?.read(&mut head).ok()?;
    let head = &head[..n];
    let named_python = |p: &Path| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("python"))
    };
    if let Some(rest) = head.strip_prefix(b"#!") {
        let line = String::from_utf8_lossy(rest.split(|b| *b == b'\n').next()?).into_owned();
        let mut words = line.split_whitespace();
        let first = PathBuf::from(words.next()?);
        let py = if first.file_name().is_some_and(|n| n == "env") {
            env.which(words.find(|w| !w.starts_with('-'))?)?
        } else {
            first
        };
        // A shim (pyenv's are bash scripts named python3) is not an interpreter.
        return (named_python(&py) && is_executable(&py) && !is_script(&py)).then_some(py);
    }
    named_python(exe).then(|| exe.to_path_buf())
}

fn is_script(p: &Path) -> bool {
    use std::io::Read;
    let mut b = [0u8; 2];
    std::fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok_and(|()| &b == b"#!")
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn inside(p: &Path, root: &Path) -> bool {
    p.starts_with(root)
}

/// What the jail must expose for `python`: its venv (when it is one), the
/// base interpreter's prefix (pyvenv.cfg's `home`, or where the executable
/// really lives), each validated as a Python installation. System paths
/// (/usr) are exposed anyway.
fn prefixes(python: &Path, env: &Env) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let Some(prefix) = python.parent().and_then(Path::parent) else {
        return Err("has no prefix".into());
    };
    let cfg = prefix.join("pyvenv.cfg");
    if cfg.is_file() {
        out.push(prefix.to_path_buf());
        let text = std::fs::read_to_string(&cfg).map_err(|e| format!("pyvenv.cfg: {e}"))?;
        let home = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim() == "home")
            .map(|(_, v)| PathBuf::from(v.trim()))
            .ok_or("has a pyvenv.cfg without `home`")?;
        let base = base_prefix(&home, env).ok_or_else(|| {
            format!(
                "has a pyvenv.cfg whose home {} is not a Python installation",
                home.display()
            )
        })?;
        push_unless_system(&mut out, base);
    }
    let real = std::fs::canonicalize(python).map_err(|e| e.to_string())?;
    let bin = real.parent().ok_or("has no directory")?;
    let base = base_prefix(bin, env).ok_or_else(|| {
        format!(
            "resolves to {}, which is not in a Python installation",
            real.display()
        )
    })?;
    push_unless_system(&mut out, base);
    Ok(out)
}

/// The installation prefix above a `bin` directory, when it looks like one
/// (an absolute `<prefix>/bin` beside `<prefix>/lib`), and is neither `/`
/// nor the home directory or one of its parents.
fn base_prefix(bin: &Path, env: &Env) -> Option<PathBuf> {
    if !bin.is_absolute() || bin.file_name()? != "bin" {
        return None;
    }
    let bin = std::fs::canonicalize(bin).ok()?;
    let prefix = bin.parent()?;
    let home_like = env
        .home
        .as_ref()
        .is_some_and(|h| std::fs::canonicalize(h).is_ok_and(|h| h.starts_with(prefix)));
    (prefix != Path::new("/") && !home_like && prefix.join("lib").is_dir())
        .then(|| prefix.to_path_buf())
}

fn push_unless_system(out: &mut Vec<PathBuf>, p: PathBuf) {
    let system = ["/usr", "/lib", "/lib64", "/bin"]
        .iter()
        .any(|s| p.starts_with(s));
    if !system && !out.contains(&p) {
        out.push(p);
    }
}

/// Ask uv, poetry, pdm or hatch which interpreter the project uses, when the
/// project's lock or config names the tool and the tool is installed. The
/// tool is the user's own and runs on the host; its answer is validated like
/// any other path.
async fn ask_tool(project: &Path, repo_root: &Path, env: &Env) -> Option<(PathBuf, String)> {
    let pyproject = std::fs::read_to_string(project.join("pyproject.toml")).unwrap_or_default();
    let has = |f: &str| project.join(f).is_file() || repo_root.join(f).is_file();
    let section = |t: &str| pyproject.contains(&format!("[tool.{t}"));
    // .python-version may name a path, which uv would run on the host to
    // query: only a version request is left to uv.
    let version_file = std::fs::read_to_string(project.join(".python-version")).unwrap_or_default();
    let uv_safe = !version_file.contains('/');
    let tools: [(&str, bool, &[&str], &str); 4] = [
        (
            "uv",
            (has("uv.lock") || section("uv")) && uv_safe,
            &["python", "find"],
            "uv.lock",
        ),
        (
            "poetry",
            has("poetry.lock") || section("poetry"),
            &["env", "info", "--executable"],
            "poetry.lock",
        ),
        (
            "pdm",
            has("pdm.lock") || section("pdm"),
            &["info", "--python"],
            "pdm.lock",
        ),
        (
            "hatch",
            has("hatch.toml") || section("hatch"),
            &["env", "find"],
            "hatch config",
        ),
    ];
    for (tool, configured, args, marker) in tools {
        if !configured {
            continue;
        }
        let Some(exe) = env.which(tool) else {
            continue;
        };
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.args(args)
            .current_dir(project)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        if tool == "uv" {
            // Neither download a Python nor read the repository's uv.toml.
            cmd.env("UV_PYTHON_DOWNLOADS", "never")
                .env("UV_NO_CONFIG", "1");
        }
        let Ok(Ok(out)) = tokio::time::timeout(Duration::from_secs(30), cmd.output()).await else {
            continue;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let Some(line) = text.lines().map(str::trim).rfind(|l| l.starts_with('/')) else {
            continue;
        };
        let mut py = PathBuf::from(line);
        if tool == "hatch" {
            py = py.join("bin/python");
        }
        if out.status.success() && is_executable(&py) {
            return Some((
                py,
                format!("what `{tool} {}` answers ({marker})", args.join(" ")),
            ));
        }
    }
    None
}

/// What a probe of the interpreter, run in the jail, found.
#[derive(Debug, serde::Deserialize)]
struct Probe {
    version: (u32, u32),
    path: Vec<String>,
    pytest: bool,
}

const PROBE: &str = "import sys, json, importlib.util\nprint(json.dumps({'version': list(sys.version_info[:2]), 'path': sys.path, 'pytest': importlib.util.find_spec('pytest') is not None}))";

/// Start the interpreter in the jail (never on the host: it may be the
/// repository's), expose the `sys.path` entries it reports outside
/// `project` (for interpreters outside the repository), and provide pytest
/// when it has none and `needs_pytest`.
pub(crate) async fn prepare(
    it: &mut Interpreter,
    project: &Path,
    needs_pytest: bool,
    runtime: &selfrepair_sandbox::runtime::RuntimeOptions,
) -> Result<(), InterpreterError> {
    let probe = probe(it).await?;
    if !it.in_repo {
        let project = std::fs::canonicalize(project).unwrap_or_else(|_| project.to_path_buf());
        for entry in probe.path.iter().map(PathBuf::from) {
            let covered = it.ro_paths.iter().any(|r| entry.starts_with(r));
            let Ok(real) = std::fs::canonicalize(&entry) else {
                continue;
            };
            if covered || real.starts_with(&project) || !real.is_absolute() {
                continue;
            }
            // Never the home directory itself (or a parent): only what is on the path.
            let home_or_above = dirs::home_dir().is_some_and(|h| h.starts_with(&real));
            if !home_or_above && real != Path::new("/") {
                push_unless_system(&mut it.ro_paths, real);
            }
        }
    }
    if needs_pytest && !probe.pytest {
        let min = selfrepair_sandbox::runtime::PROVIDED_PYTEST_MIN_PYTHON;
        if probe.version < min {
            return Err(InterpreterError::TooOldForProvidedPytest {
                path: it.python.clone(),
                major: probe.version.0,
                minor: probe.version.1,
            });
        }
        let dir = runtime
            .provided_pytest()
            .await
            .map_err(InterpreterError::Provide)?;
        it.ro_paths.push(dir.clone());
        it.python_path.push(dir);
        it.provided_pytest = Some(selfrepair_sandbox::runtime::PYTEST_WHEELS[0].version.into());
    }
    Ok(())
}

/// The absolute directories that `.pth` files in the site-packages under
/// `prefixes` name (not the home directory or above it).
fn pth_dirs(prefixes: &[PathBuf]) -> Vec<PathBuf> {
    let home = dirs::home_dir();
    let mut out = Vec::new();
    for prefix in prefixes {
        let Ok(libs) = std::fs::read_dir(prefix.join("lib")) else {
            continue;
        };
        for lib in libs.flatten() {
            let Ok(pths) = std::fs::read_dir(lib.path().join("site-packages")) else {
                continue;
            };
            for pth in pths.flatten() {
                if pth.path().extension().is_none_or(|e| e != "pth") {
                    continue;
                }
                let Ok(text) = std::fs::read_to_string(pth.path()) else {
                    continue;
                };
                for line in text.lines().map(str::trim) {
                    let dir = PathBuf::from(line);
                    let above_home = home.as_ref().is_some_and(|h| h.starts_with(&dir));
                    if dir.is_absolute() && dir.is_dir() && !above_home && dir != Path::new("/") {
                        out.push(dir);
                    }
                }
            }
        }
    }
    out
}

async fn probe(it: &Interpreter) -> Result<Probe, InterpreterError> {
    let unstartable = |detail: String| InterpreterError::Unstartable {
        path: it.python.clone(),
        reason: it.reason.clone(),
        detail,
    };
    // The jail covers /tmp, /home and the like: the directories the
    // interpreter's `.pth` files add to its path must be visible for the
    // probe to report them (a user's interpreter only; never the repository's).
    let mut ro_paths = it.ro_paths.clone();
    if !it.in_repo {
        ro_paths.extend(pth_dirs(&it.ro_paths));
    }
    let cfg = ProcessConfig {
        python: it.python.clone(),
        ro_paths,
        keep_uid: it.ro_paths.iter().any(|p| !others_can_read(p)),
        fork_server: false,
        ..ProcessConfig::default()
    };
    let sandbox = ProcessSandbox::new(cfg).map_err(InterpreterError::Sandbox)?;
    // A work dir of its own: a fresh run's private /tmp would hide
    // interpreters that live under /tmp.
    let workdir = tempfile::tempdir().map_err(|e| {
        InterpreterError::Sandbox(selfrepair_sandbox::SandboxError::io(
            std::env::temp_dir(),
            e,
        ))
    })?;
    let spec = CommandSpec {
        program: it.python.clone(),
        args: vec!["-c".into(), PROBE.into()],
        workdir: Some(workdir.path().to_path_buf()),
        env: vec![("LANG".into(), "C.UTF-8".into())],
        stdin: Vec::new(),
        limits: Limits {
            timeout: Duration::from_secs(30),
            memory_mb: 1024,
            max_output: 1 << 20,
            test_timeout: None,
        },
    };
    let out = sandbox
        .exec(spec)
        .await
        .map_err(|e| unstartable(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let parsed = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Probe>(l).ok());
    match parsed {
        Some(p) if out.code == Some(0) => Ok(p),
        _ => {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no output");
            Err(unstartable(match out.code {
                Some(126) => format!("permission denied ({last})"),
                Some(127) => format!("not found ({last})"),
                _ if out.timed_out => "it did not answer within 30 s".into(),
                c => format!("exit {c:?}: {last}"),
            }))
        }
    }
}

/// Whether every directory down to `p` lets other users in (else the jail
/// keeps the caller's uid, as it does for a toolchain in a private home).
pub fn others_can_read(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.ancestors().all(|a| {
        std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 != 0 || !m.is_dir())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exe(p: &Path, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn a_shebang_names_the_interpreter_and_a_shim_is_none() {
        let t = tempfile::tempdir().unwrap();
        let env = Env {
            path: Some("/usr/bin".into()),
            ..Env::default()
        };
        let pytest = t.path().join("bin/pytest");
        exe(&pytest, "#!/usr/bin/python3\nimport pytest\n");
        assert_eq!(
            interpreter_of(&pytest, &env),
            Some("/usr/bin/python3".into())
        );
        exe(&pytest, "#!/usr/bin/env python3\n");
        assert_eq!(
            interpreter_of(&pytest, &env),
            Some("/usr/bin/python3".into())
        );
        let shim = t.path().join("shims/python3");
        exe(
            &shim,
            "#!/usr/bin/env bash\nexec pyenv exec python3 \"$@\"\n",
        );
        assert_eq!(interpreter_of(&shim, &env), None);
        exe(&pytest, &format!("#!{}\n", shim.display()));
        assert_eq!(interpreter_of(&pytest, &env), None);
        // A bare name on PATH skips the shim for the interpreter behind it.
        let env = Env {
            path: Some(std::env::join_paths([t.path().join("shims"), "/usr/bin".into()]).unwrap()),
            ..Env::default()
        };
        assert_eq!(env.which("python3"), Some(shim.clone()));
        assert_eq!(
            env.which_interpreter("python3"),
            Some("/usr/bin/python3".into())
        );
    }

    #[test]
    fn a_hostile_pyvenv_cfg_exposes_nothing() {
        let t = tempfile::tempdir().unwrap();
        let home = t.path().join("home");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        let venv = t.path().join("repo/.venv");
        std::os::unix::fs::symlink("/usr/bin/python3", {
            std::fs::create_dir_all(venv.join("bin")).unwrap();
            venv.join("bin/python")
        })
        .unwrap();
        let env = Env {
            home: Some(home.clone()),
            ..Env::default()
        };
        for bad in [
            home.join(".ssh"),
            home.clone(),
            PathBuf::from("/"),
            "relative/bin".into(),
        ] {
            std::fs::write(
                venv.join("pyvenv.cfg"),
                format!("home = {}\n", bad.display()),
            )
            .unwrap();
            assert!(prefixes(&venv.join("bin/python"), &env).is_err(), "{bad:?}");
        }
        // The positive control: a real installation's bin.
        std::fs::write(venv.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        assert_eq!(
            prefixes(&venv.join("bin/python"), &env).unwrap(),
            vec![venv.clone()]
        );
        // A python link into the home directory is not an installation.
        std::fs::remove_file(venv.join("bin/python")).unwrap();
        exe(&home.join(".ssh/python"), "");
        std::os::unix::fs::symlink(home.join(".ssh/python"), venv.join("bin/python")).unwrap();
        assert!(prefixes(&venv.join("bin/python"), &env).is_err());
    }
}
