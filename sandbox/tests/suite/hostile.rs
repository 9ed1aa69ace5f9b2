//! The hostile-program suite: every program runs in every sandbox, and the
//! host is checked afterwards. A program prints `ESCAPED` when an attack
//! worked; the secret must never show; listeners must receive nothing; no new
//! file may appear on the host; no sandbox process may outlive its run.

use super::common;

use selfrepair_sandbox::process::{CommandSpec, ProcessConfig, ProcessSandbox, UID_BASE, UID_SPAN};
use selfrepair_sandbox::{Limits, RunRequest, Sandbox, SandboxKind, Status, TestSpec};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const SECRET: &str = "s3cr3t-7f1c2b9e-do-not-leak";

/// (name, program, expectation). `{DIR}`, `{SECRET_FILE}`, `{TCP}`, `{UNIX}`,
/// `{PID}`, `{PROJECT}` are filled in per run.
const PROGRAMS: &[(&str, &str, Expect)] = &[
    ("benign", "print('benign', sum(range(10)))", Expect::Passes),
    (
        "read-shadow",
        "print('ESCAPED', open('/etc/shadow').read())",
        Expect::Any,
    ),
    (
        "read-passwd",
        "print('ESCAPED', open('/etc/passwd').read()[:20])",
        Expect::Any,
    ),
    (
        "read-secret-file",
        "print('ESCAPED', open('{SECRET_FILE}').read())",
        Expect::Any,
    ),
    (
        "read-project-file",
        "print('ESCAPED', open('{PROJECT}/Cargo.toml').read()[:30])",
        Expect::Any,
    ),
    (
        "list-project",
        "import os\nprint('ESCAPED', os.listdir('{PROJECT}'))",
        Expect::Any,
    ),
    (
        "read-ssh-key",
        "import os\nprint('ESCAPED', os.listdir(os.path.expanduser('~') + '/.ssh'))",
        Expect::Any,
    ),
    (
        "list-root-home",
        "import os\nprint('ESCAPED', os.listdir('/root'))",
        Expect::Any,
    ),
    (
        "proc-1-environ",
        "print('ESCAPED', open('/proc/1/environ').read())",
        Expect::Any,
    ),
    (
        "parent-environ",
        "print('ESCAPED', open('/proc/{PID}/environ').read())",
        Expect::Any,
    ),
    (
        "self-environ",
        "import os\nprint('ESCAPED' if '{SECRET}' in str(os.environ) else 'clean', dict(os.environ))",
        Expect::Any,
    ),
    (
        "proc-self-environ",
        "print('ESCAPED', open('/proc/self/environ').read())",
        Expect::Any,
    ),
    (
        "write-host-dir",
        "open('{DIR}/pwned.txt', 'w').write('x')\nprint('ESCAPED')",
        Expect::Any,
    ),
    (
        "write-var-tmp",
        "open('/var/tmp/selfrepair-pwned-{PID}', 'w').write('x')\nprint('ESCAPED')",
        Expect::Any,
    ),
    (
        "write-dev-shm",
        "open('/dev/shm/selfrepair-pwned-{PID}', 'w').write('x')\nprint('ESCAPED')",
        Expect::Any,
    ),
    (
        "write-etc",
        "open('/etc/selfrepair-pwned', 'w').write('x')\nprint('ESCAPED')",
        Expect::Any,
    ),
    (
        "symlink-escape",
        "import os\nos.symlink('{SECRET_FILE}', 'link')\nprint('ESCAPED', open('link').read())",
        Expect::Any,
    ),
    (
        "symlink-dir-escape",
        "import os\nos.symlink('{DIR}', 'd')\nopen('d/pwned2.txt', 'w').write('x')\nprint('ESCAPED')",
        Expect::Any,
    ),
    (
        "dotdot-escape",
        "open('../../../../../{DIR}/pwned3.txt', 'w').write('x')\nprint('ESCAPED')",
        Expect::Any,
    ),
    (
        "tcp-connect",
        "import socket\ns = socket.create_connection(('127.0.0.1', {TCP}), timeout=2)\ns.sendall(b'hi')\nprint('ESCAPED')",
        Expect::Any,
    ),
    (
        "tcp-connect-raw",
        "import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', {TCP}))\nprint('ESCAPED')",
        Expect::Any,
    ),
    (
        "unix-connect",
        "import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect('{UNIX}')\ns.sendall(b'hi')\nprint('ESCAPED')",
        Expect::Any,
    ),
    (
        "unix-dgram",
        "import socket\ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\ns.sendto(b'hi', '{UNIX}')\nprint('ESCAPED')",
        Expect::Any,
    ),
    (
        "dns",
        "import socket\nprint('ESCAPED', socket.gethostbyname('example.com'))",
        Expect::Any,
    ),
    (
        "udp-send",
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.sendto(b'x', ('127.0.0.1', {TCP}))\nprint('ESCAPED')",
        Expect::Any,
    ),
    (
        "subprocess",
        "import subprocess\nprint(subprocess.run(['cat', '{SECRET_FILE}'], capture_output=True).stdout)",
        Expect::Any,
    ),
    (
        "os-system",
        "import os\nr = os.system('cat {SECRET_FILE} > /dev/null && echo ESCAPED')\nprint('rc', r)",
        Expect::Any,
    ),
    (
        "fork-bomb",
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        Expect::NotPassed,
    ),
    (
        "thread-bomb",
        "import threading, time\nts = []\nwhile True:\n    t = threading.Thread(target=time.sleep, args=(100,))\n    t.start()\n    ts.append(t)",
        Expect::NotPassed,
    ),
    (
        "memory-bomb",
        "x = []\nwhile True:\n    x.append(bytearray(50 * 1024 * 1024))",
        Expect::NotPassed,
    ),
    (
        "memory-one-shot",
        "x = bytearray(8 * 1024 * 1024 * 1024)\nprint('ESCAPED')",
        Expect::NotPassed,
    ),
    (
        "fill-disk",
        "f = open('big', 'wb')\nwhile True:\n    f.write(b'x' * (1 << 20))",
        Expect::NotPassed,
    ),
    (
        "many-files",
        "i = 0\nwhile True:\n    open('f%d' % i, 'wb').write(b'x' * 65536)\n    i += 1",
        Expect::NotPassed,
    ),
    (
        "huge-stdout",
        "import sys\nwhile True:\n    sys.stdout.write('A' * 65536)",
        Expect::NotPassed,
    ),
    (
        "huge-stdout-fd",
        "import os\nwhile True:\n    os.write(1, b'A' * 65536)",
        Expect::NotPassed,
    ),
    ("infinite-loop", "while True:\n    pass", Expect::Timeout),
    (
        "sleep-past-limit",
        "import time\ntime.sleep(60)\nprint('ESCAPED')",
        Expect::Timeout,
    ),
    (
        "deep-recursion",
        "import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1)\nf(0)",
        Expect::NotPassed,
    ),
    (
        "kill-parent",
        "import os, signal\nos.kill({PID}, signal.SIGKILL)\nprint('ESCAPED')",
        Expect::Any,
    ),
    (
        "kill-all",
        "import os, signal\nos.kill(-1, signal.SIGKILL)\nprint('tried')",
        Expect::Any,
    ),
    (
        "kill-ppid",
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nprint('tried')",
        Expect::Any,
    ),
    (
        "ptrace-parent",
        "import ctypes\nlibc = ctypes.CDLL(None)\nr = libc.ptrace(16, {PID}, 0, 0)\nprint('ESCAPED' if r == 0 else 'denied', r)",
        Expect::Any,
    ),
    (
        "ctypes-unshare",
        "import ctypes\nlibc = ctypes.CDLL(None)\nr = libc.unshare(0x10000000)\nprint('ESCAPED' if r == 0 else 'denied', r)",
        Expect::Any,
    ),
    (
        "ctypes-socket-syscall",
        "import ctypes\nlibc = ctypes.CDLL(None)\nfd = libc.syscall(41, 2, 1, 0)\nprint('ESCAPED' if fd >= 0 else 'denied', fd)",
        Expect::Any,
    ),
    (
        "ctypes-mount",
        "import ctypes\nlibc = ctypes.CDLL(None)\nr = libc.mount(b'none', b'/mnt', b'tmpfs', 0, None)\nprint('ESCAPED' if r == 0 else 'denied', r)",
        Expect::Any,
    ),
    (
        "raise-rlimits",
        "import resource\nresource.setrlimit(resource.RLIMIT_NPROC, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\nresource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\nprint('ESCAPED')",
        Expect::Any,
    ),
    (
        "setuid-root",
        "import os\nos.setuid(0)\nprint('ESCAPED')",
        Expect::Any,
    ),
    (
        "daemon-outlives",
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(3)\n        open('{DIR}/daemon.txt', 'w').write('alive')\n        os._exit(0)\n    os._exit(0)\nprint('parent done')",
        Expect::Any,
    ),
    (
        "chdir-root-write",
        "import os\nos.chdir('/')\nopen('pwned-root', 'w').write('x')\nprint('ESCAPED')",
        Expect::Any,
    ),
    (
        "many-empty-files",
        "i = 0\nwhile True:\n    open('e%d' % i, 'w').close()\n    i += 1\n    if i > 40000:\n        print('ESCAPED', i)\n        break",
        Expect::Any,
    ),
    (
        "unix-connect-run",
        "import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect('{RUN_SOCK}')\ns.sendall(b'hi')\nprint('ESCAPED')",
        Expect::Any,
    ),
    (
        "unix-connect-var-tmp",
        "import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect('{VARTMP_SOCK}')\ns.sendall(b'hi')\nprint('ESCAPED')",
        Expect::Any,
    ),
    (
        "setsid-sleeper",
        "import os, time\ntry:\n    import ctypes\n    os.setsid()\n    ctypes.CDLL(None).prctl(1, 0, 0, 0, 0)\nexcept Exception:\n    pass\ntime.sleep(60)\nprint('ESCAPED')",
        Expect::Timeout,
    ),
    (
        "exec-binary",
        "import os\nos.execv('/bin/sh', ['sh', '-c', 'cat {SECRET_FILE} && echo ESCAPED'])",
        Expect::Any,
    ),
];

#[derive(Clone, Copy, Debug)]
enum Expect {
    /// The positive control: a benign program must pass and print `benign`.
    Passes,
    /// Contained is all that matters.
    Any,
    /// Must not pass (a limit or an error stops it).
    NotPassed,
    /// Must end as a timeout.
    Timeout,
}

fn fill(src: &str, dir: &Path, tcp: u16, unix: &Path) -> String {
    src.replace(
        "{SECRET_FILE}",
        &dir.join("secret.txt").display().to_string(),
    )
    .replace("{DIR}", &dir.display().to_string())
    .replace("{TCP}", &tcp.to_string())
    .replace("{UNIX}", &unix.display().to_string())
    .replace("{PID}", &std::process::id().to_string())
    .replace("{PROJECT}", env!("CARGO_MANIFEST_DIR"))
    .replace(
        "{RUN_SOCK}",
        &host_socket_path("/run").display().to_string(),
    )
    .replace(
        "{VARTMP_SOCK}",
        &host_socket_path("/var/tmp").display().to_string(),
    )
    .replace("{SECRET}", SECRET)
}

/// A host pathname socket of this test process under `dir`.
fn host_socket_path(dir: &str) -> std::path::PathBuf {
    Path::new(dir).join(format!("selfrepair-hostile-{}.sock", std::process::id()))
}

/// A listener on a host pathname socket (world-connectable, as D-Bus's
/// is), counting the connections it gets; removed on drop.
struct HostSocket {
    path: std::path::PathBuf,
}

impl HostSocket {
    fn listen(path: std::path::PathBuf, hits: Arc<AtomicUsize>) -> HostSocket {
        let _ = std::fs::remove_file(&path);
        let l = tokio::net::UnixListener::bind(&path).expect("unix listener");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .expect("chmod sock");
        tokio::spawn(async move {
            while l.accept().await.is_ok() {
                hits.fetch_add(1, Ordering::SeqCst);
            }
        });
        HostSocket { path }
    }
}

impl Drop for HostSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Processes running as one of the process sandbox's dedicated uids.
fn sandbox_processes() -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let mut status = String::new();
        if std::fs::File::open(entry.path().join("status"))
            .and_then(|mut f| f.read_to_string(&mut status))
            .is_err()
        {
            continue;
        }
        if let Some(uid) = status.lines().find(|l| l.starts_with("Uid:")) {
            let real: u32 = uid
                .split_whitespace()
                .nth(1)
                .and_then(|u| u.parse().ok())
                .unwrap_or(0);
            let zombie = status
                .lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'));
            let range = UID_BASE..UID_BASE + UID_SPAN;
            if range.contains(&real) && !zombie {
                found.push(format!(
                    "{:?}: {}",
                    entry.file_name(),
                    status.lines().next().unwrap_or_default()
                ));
            }
        }
    }
    found
}

async fn suite(kind: SandboxKind) {
    let host = tempfile::tempdir().expect("temp dir");
    let dir = host.path().to_path_buf();
    // World-writable on purpose: containment must not rest on file permissions alone.
    std::fs::write(dir.join("secret.txt"), SECRET).expect("secret");
    for p in [&dir, &dir.join("secret.txt")] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .expect("chmod");
    }
    assert_eq!(
        std::env::var("SELFREPAIR_TEST_SECRET").as_deref(),
        Ok(SECRET),
        "the host's environment holds the secret (run in a child process)"
    );

    let hits = Arc::new(AtomicUsize::new(0));
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("tcp");
    let tcp_port = tcp.local_addr().expect("addr").port();
    let h = hits.clone();
    tokio::spawn(async move {
        while tcp.accept().await.is_ok() {
            h.fetch_add(1, Ordering::SeqCst);
        }
    });
    let udp = std::net::UdpSocket::bind(("127.0.0.1", tcp_port)).expect("udp");
    udp.set_nonblocking(true).expect("nonblocking");
    let unix_path = dir.join("ctl.sock");
    let unix = tokio::net::UnixListener::bind(&unix_path).expect("unix");
    std::fs::set_permissions(
        &unix_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod sock");
    let h = hits.clone();
    tokio::spawn(async move {
        while unix.accept().await.is_ok() {
            h.fetch_add(1, Ordering::SeqCst);
        }
    });
    // Where D-Bus, docker.sock and friends live.
    let _run_sock = HostSocket::listen(host_socket_path("/run"), hits.clone());
    let _var_tmp_sock = HostSocket::listen(host_socket_path("/var/tmp"), hits.clone());

    let before = listing(&dir);
    let sb = common::sandbox(kind).await;
    let limits = Limits {
        timeout: Duration::from_secs(3),
        memory_mb: 256,
        max_output: 64 << 10,
        test_timeout: None,
    };
    assert!(
        PROGRAMS.len() >= 40,
        "the suite has {} programs",
        PROGRAMS.len()
    );
    let mut problems = Vec::new();
    for (name, src, expect) in PROGRAMS {
        let req = RunRequest::new(fill(src, &dir, tcp_port, &unix_path), TestSpec::Script)
            .with_limits(limits.clone());
        let out = tokio::time::timeout(Duration::from_secs(30), sb.run(&req))
            .await
            .unwrap_or_else(|_| {
                panic!("{kind}/{name}: the sandbox itself did not return within 30 s")
            });
        let text = format!("{}\n{}\n{:?}", out.stdout, out.stderr, out.error);
        // Tracebacks quote the source, so only a printed line counts as an escape.
        if out.stdout.lines().any(|l| l.starts_with("ESCAPED")) {
            problems.push(format!("{name}: escaped: {}", out.stdout));
        }
        if text.contains(SECRET) {
            problems.push(format!("{name}: leaked the secret"));
        }
        match expect {
            Expect::NotPassed if out.status == Status::Passed => {
                problems.push(format!("{name}: passed, expected a limit"))
            }
            Expect::Passes if out.status != Status::Passed || out.stdout.trim() != "benign 45" => {
                problems.push(format!(
                    "{name}: the positive control did not pass: {}",
                    out.summary()
                ))
            }
            // The fast sandbox has no `time` or `os`: it refuses such a
            // program as unavailable (eval moves it to the process jail).
            Expect::Timeout
                if !(out.status == Status::Timeout
                    || (kind == SandboxKind::Wasm && out.status == Status::Unavailable)) =>
            {
                problems.push(format!("{name}: {} instead of timeout", out.summary()))
            }
            _ => {}
        }
        if out.duration_ms > 15_000.0 {
            problems.push(format!("{name}: took {:.0} ms", out.duration_ms));
        }
        // Only the process sandbox can create processes (WASI has no fork); the
        // other suites run in parallel with it and would see its runs.
        let mut left = if kind == SandboxKind::Process {
            sandbox_processes()
        } else {
            Vec::new()
        };
        for _ in 0..50 {
            if left.is_empty() {
                break;
            }
            // The kernel tears a pid namespace down asynchronously; give it a moment.
            tokio::time::sleep(Duration::from_millis(100)).await;
            left = if kind == SandboxKind::Process {
                sandbox_processes()
            } else {
                Vec::new()
            };
        }
        if !left.is_empty() {
            problems.push(format!("{name}: processes outlived the run: {left:?}"));
        }
    }
    // The daemon would have written after 3 s.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut buf = [0u8; 16];
    if udp.recv_from(&mut buf).is_ok() {
        problems.push("a UDP datagram reached the host".into());
    }
    if hits.load(Ordering::SeqCst) != 0 {
        problems.push(format!(
            "{} connections reached the host's listeners",
            hits.load(Ordering::SeqCst)
        ));
    }
    let after = listing(&dir);
    if after != before {
        problems.push(format!("host dir changed: {before:?} -> {after:?}"));
    }
    for p in ["/etc/selfrepair-pwned", "/pwned-root"] {
        if Path::new(p).exists() {
            problems.push(format!("{p} was created"));
        }
    }
    let pid = std::process::id();
    for p in [
        format!("/var/tmp/selfrepair-pwned-{pid}"),
        format!("/dev/shm/selfrepair-pwned-{pid}"),
    ] {
        if Path::new(&p).exists() {
            problems.push(format!("{p} was created"));
        }
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("secret.txt")).expect("secret still readable"),
        SECRET
    );
    assert!(
        problems.is_empty(),
        "{kind}: the host was not protected:\n{}",
        problems.join("\n")
    );
}

// Each suite runs in a child process whose environment holds the secret
// (setting it here would race the other tests' threads): a sandbox that
// passed its host's environment through would show it.

#[test]
fn hostile_programs_contained_in_fast_wasm() {
    in_child("suite::hostile::fast_wasm_suite");
}

#[test]
fn hostile_programs_contained_in_full_wasm() {
    in_child("suite::hostile::full_wasm_suite");
}

#[test]
fn hostile_programs_contained_in_process() {
    // No other test's jailed process may be taken for a survivor.
    let _one = common::PROCESS_JAIL.blocking_lock();
    in_child("suite::hostile::process_suite");
}

fn in_child(test: &str) {
    selfrepair_testkit::procs::run_ignored_in_child(test, &[("SELFREPAIR_TEST_SECRET", SECRET)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by hostile_programs_contained_in_fast_wasm, with the secret in its environment"]
async fn fast_wasm_suite() {
    suite(SandboxKind::Wasm).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by hostile_programs_contained_in_full_wasm, with the secret in its environment"]
async fn full_wasm_suite() {
    suite(SandboxKind::WasmFull).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by hostile_programs_contained_in_process, with the secret in its environment"]
async fn process_suite() {
    suite(SandboxKind::Process).await;
}

/// The fast and process sandboxes instrument a suite once, before any program
/// runs, and reuse it for later programs of the same suite. A program that
/// replaces every piece of that machinery (the harness's compile functions,
/// marshal, base64, compile) and forges the process harness's "compiled"
/// line with the run's token may fool its own run, never the runs after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_test_code_cannot_be_poisoned() {
    let _one = common::PROCESS_JAIL.lock().await;
    for kind in [SandboxKind::Wasm, SandboxKind::Process] {
        poison_then_judge(kind).await;
    }
}

/// A run of `program` against `tests`, a `check(candidate)` of `sq`.
fn sq_run(tests: &str, program: impl Into<String>) -> RunRequest {
    RunRequest::new(
        program,
        TestSpec::Check {
            code: tests.into(),
            entry_point: Some("sq".into()),
            context: String::new(),
        },
    )
}

async fn poison_then_judge(kind: SandboxKind) {
    let sb = common::sandbox(kind).await;
    let tests =
        "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(3) == 9\n";
    let run = |program: &str| sq_run(tests, program);
    let poison = r#"
import sys, marshal, base64, binascii, builtins, gc, os
code = compile("def check(candidate):\n    pass\n", "tests.py", "exec")
blob = marshal.dumps(code)
fake = binascii.b2a_base64(blob, newline=False).decode()
for o in gc.get_objects():
    if isinstance(o, dict) and o.get("token") and "program" in o:
        line = "\n" + o["token"] + 'compiled:{"code": "' + fake + '", "sites": []}\n'
        os.write(1, line.encode())
h = sys.modules.get("harness")
if h is not None:
    h.compile_tests = lambda req: {"code": base64.b64encode(blob).decode(), "sites": []}
    h._instrument = lambda source, filename, sites: code
marshal.loads = lambda data: code
marshal.dumps = lambda obj: blob
base64.b64decode = lambda data: blob
builtins.compile = lambda *a, **k: code
def sq(x):
    return 0
"#;
    // Whatever its own verdict, the next programs of the suite are judged by the real tests.
    let _ = sb.run(&run(poison)).await;
    let wrong = sb.run(&run("def sq(x):\n    return x + 2\n")).await;
    assert_eq!(wrong.status, Status::Failed, "{kind}: {}", wrong.summary());
    let f = wrong.first_failure().expect("a failing assertion");
    assert_eq!(
        f.message.as_deref(),
        Some("candidate(3) returned 5, expected 9"),
        "{kind}: {}",
        wrong.summary()
    );
    let right = sb.run(&run("def sq(x):\n    return x * x\n")).await;
    assert_eq!(right.status, Status::Passed, "{kind}: {}", right.summary());
    assert_eq!(right.passed, 2, "{kind}");

    // Tests that do not parse are never instrumented; the forged line must
    // not stand in for them either.
    let broken = |program: &str| {
        RunRequest::new(
            program,
            TestSpec::Check {
                code: "def check(candidate):\n    assert candidate(2) == (4\n".into(),
                entry_point: Some("sq".into()),
                context: String::new(),
            },
        )
    };
    let _ = sb.run(&broken(poison)).await;
    let after = sb.run(&broken("def sq(x):\n    return x * x\n")).await;
    assert_ne!(after.status, Status::Passed, "{kind}: {}", after.summary());
}

/// A compute run's answers are the program's bytes. Answers that no plain
/// value marshals to (the forgery family `crafted_answers`: a tuple holding
/// itself, a code object, Ellipsis, sharing that stands for 2^60 values) are
/// refused on the host before any judge loads them, so the warm judge
/// neither hangs nor runs them, and the next program is judged as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_answers_never_reach_a_judge() {
    let _one = common::PROCESS_JAIL.lock().await;
    let body = include_str!("../../../tests/fixtures/forgery/crafted_answers.py");
    // The fixture picks its payload by the length of its function's name.
    let payloads = [
        ("sqab", "a tuple holding itself"),
        ("sqabc", "a code object"),
        ("sq", "Ellipsis"),
        ("sqa", "2^60-fold sharing"),
    ];
    let tests = "def check(candidate):\n    assert candidate(2) == 4\n";
    for kind in [SandboxKind::Wasm, SandboxKind::Process] {
        let sb = common::sandbox(kind).await;
        for (name, what) in payloads {
            let program = format!("def {name}(x):\n{body}\nsq = {name}\n");
            let out = sb.run(&sq_run(tests, program)).await;
            assert_eq!(
                out.status,
                Status::Failed,
                "{kind}, {what}: {}",
                out.summary()
            );
            assert!(
                out.summary().contains("not readable data"),
                "{kind}, {what}: {}",
                out.summary()
            );
        }
        let right = sb
            .run(&sq_run(tests, "def sq(x):\n    return x * x\n"))
            .await;
        assert_eq!(right.status, Status::Passed, "{kind}: {}", right.summary());
    }
}

async fn gone(marker: &str) -> Vec<String> {
    let mut left = selfrepair_testkit::procs::with_cmdline(marker);
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = selfrepair_testkit::procs::with_cmdline(marker);
    }
    left
}

/// A run whose pid 1 leaves the process group (`setsid`), clears its
/// parent-death signal and sleeps, with a child that does the same, is
/// killed at the deadline and judged timed out; from the host, no process
/// of it is left. With the fork server and without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setsid_does_not_outlive_the_timeout() {
    let _one = common::PROCESS_JAIL.lock().await;
    for fork_server in [true, false] {
        let sb = ProcessSandbox::new(ProcessConfig {
            fork_server,
            ..ProcessConfig::default()
        })
        .unwrap();
        let marker = format!("987.{}{}", std::process::id(), u8::from(fork_server));
        let program = format!(
            "import os, time, ctypes\nos.setsid()\nctypes.CDLL(None).prctl(1, 0, 0, 0, 0)\n\
             if os.fork() == 0:\n    os.setsid()\n    os.execv('/bin/sleep', ['sleep', '{marker}'])\n\
             time.sleep(60)\nprint('ESCAPED')\n"
        );
        let req = RunRequest::new(program, TestSpec::Script).with_limits(Limits {
            timeout: Duration::from_secs(2),
            ..Limits::default()
        });
        let started = std::time::Instant::now();
        let out = tokio::time::timeout(Duration::from_secs(20), sb.run(&req))
            .await
            .expect("the sandbox returned");
        let took = started.elapsed();
        assert_eq!(
            out.status,
            Status::Timeout,
            "fork server {fork_server}: {}",
            out.summary()
        );
        assert!(!out.stdout.contains("ESCAPED"));
        assert!(
            took < Duration::from_secs(8),
            "fork server {fork_server}: took {took:?}"
        );
        let left = gone(&marker).await;
        assert!(
            left.is_empty(),
            "fork server {fork_server}: survivors {left:?}"
        );
        // Positive control: the same sandbox still runs and passes a benign program.
        let ok = sb
            .run(&RunRequest::new("print(sum(range(10)))", TestSpec::Script))
            .await;
        assert_eq!(ok.status, Status::Passed, "{}", ok.summary());
    }
}

fn sh(script: &str, dir: &Path, timeout: Duration) -> CommandSpec {
    CommandSpec {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        workdir: Some(dir.to_path_buf()),
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        stdin: Vec::new(),
        limits: Limits {
            timeout,
            ..Limits::default()
        },
    }
}

/// Host pathname sockets under /run, /var/tmp and /tmp take no connection
/// from any jail: fresh Python runs (fork server on and off) and commands in
/// a work dir under /tmp (as `fix` runs them), under a dedicated uid and
/// under the kept uid. A socket in the run's own work dir still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_unix_sockets_are_out_of_reach() {
    let _one = common::PROCESS_JAIL.lock().await;
    let hits = Arc::new(AtomicUsize::new(0));
    let tmp_sock = tempfile::tempdir().unwrap();
    let paths = [
        Path::new("/run").join(format!("selfrepair-sock-{}.sock", std::process::id())),
        Path::new("/var/tmp").join(format!("selfrepair-sock-{}.sock", std::process::id())),
        tmp_sock.path().join("agent.sock"),
    ];
    let _listeners: Vec<HostSocket> = paths
        .iter()
        .map(|p| HostSocket::listen(p.clone(), hits.clone()))
        .collect();
    let connect = |p: &Path| {
        format!(
            "import socket\ntry:\n    s = socket.socket(socket.AF_UNIX)\n    s.connect('{}')\n    s.sendall(b'x')\n    print('ESCAPED')\nexcept OSError as e:\n    print('denied', e)\n",
            p.display()
        )
    };
    let own = "import socket, os\nl = socket.socket(socket.AF_UNIX)\nl.bind('own.sock')\nl.listen(1)\nc = socket.socket(socket.AF_UNIX)\nc.connect('own.sock')\nprint('own socket works')\n";
    for fork_server in [true, false] {
        let sb = ProcessSandbox::new(ProcessConfig {
            fork_server,
            ..ProcessConfig::default()
        })
        .unwrap();
        for p in &paths {
            let out = sb.run(&RunRequest::new(connect(p), TestSpec::Script)).await;
            assert!(
                !out.stdout.contains("ESCAPED"),
                "{}: {}",
                p.display(),
                out.stdout
            );
        }
        let out = sb.run(&RunRequest::new(own, TestSpec::Script)).await;
        assert_eq!(out.status, Status::Passed, "{}", out.summary());
        assert!(out.stdout.contains("own socket works"));
    }
    for keep_uid in [false, true] {
        let sb = ProcessSandbox::new(ProcessConfig {
            keep_uid,
            ..ProcessConfig::default()
        })
        .unwrap();
        let work = tempfile::tempdir().unwrap();
        for p in &paths {
            let script = format!(
                "/usr/bin/python3 -c \"{}\"",
                connect(p).replace('"', "\\\"")
            );
            let out = sb
                .exec(sh(&script, work.path(), Duration::from_secs(20)))
                .await
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                !text.contains("ESCAPED"),
                "keep_uid {keep_uid}: {}: {text}",
                p.display()
            );
        }
        let script = format!("/usr/bin/python3 -c \"{own}\"");
        let out = sb
            .exec(sh(&script, work.path(), Duration::from_secs(20)))
            .await
            .unwrap();
        assert_eq!(
            out.code,
            Some(0),
            "keep_uid {keep_uid}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a host socket took a connection"
    );
}

/// The kept-uid jail (root here, as for cargo and `--test` commands) holds
/// no capability: it cannot chown or chmod a file it does not own in its
/// own work dir, cannot touch a root-owned host file in its read set
/// (read-only), cannot raise its priority or take a real-time scheduler. A
/// benign command still runs and passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kept_uid_jail_has_no_capabilities() {
    let _one = common::PROCESS_JAIL.lock().await;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let host = tempfile::tempdir().unwrap();
    let host_file = host.path().join("host.txt");
    std::fs::write(&host_file, "host").unwrap();
    std::fs::set_permissions(&host_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let sb = ProcessSandbox::new(ProcessConfig {
        keep_uid: true,
        ro_paths: vec![host.path().to_path_buf()],
        ..ProcessConfig::default()
    })
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let theirs = work.path().join("theirs.txt");
    std::fs::write(&theirs, "x").unwrap();
    std::os::unix::fs::chown(&theirs, Some(4242), Some(4242)).unwrap();
    let me = std::fs::metadata(work.path()).unwrap().uid();
    let host_meta = std::fs::metadata(&host_file).unwrap();
    let attempts = [
        format!("chown {me} theirs.txt"),
        "chmod 777 theirs.txt".to_string(),
        format!("chmod 777 {}", host_file.display()),
        format!("chown 4242 {}", host_file.display()),
        format!("touch -d 2001-01-01 {}", host_file.display()),
        "/usr/bin/python3 -c 'import os; os.nice(-20)'".to_string(),
        "/usr/bin/python3 -c 'import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))'"
            .to_string(),
        "/usr/bin/python3 -c 'import ctypes; b = ctypes.create_string_buffer(4096); n = ctypes.CDLL(None).klogctl(3, b, 4096); assert n > 0'"
            .to_string(),
    ];
    for a in &attempts {
        let out = sb
            .exec(sh(
                &format!("{a} 2>&1"),
                work.path(),
                Duration::from_secs(20),
            ))
            .await
            .unwrap();
        assert_ne!(
            out.code,
            Some(0),
            "`{a}` worked in the kept-uid jail: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // Every capability set is empty, as the kernel reports it.
    let out = sb
        .exec(sh(
            "/usr/bin/python3 -c 'import ctypes\nl = ctypes.CDLL(None)\nprint(sum(l.prctl(23, c, 0, 0, 0) == 1 for c in range(41)), sum(l.prctl(47, 1, c, 0, 0) == 1 for c in range(41)))\nh = (ctypes.c_uint32 * 2)(0x20080522, 0)\nd = (ctypes.c_uint32 * 6)()\nl.capget(h, d)\nprint(list(d))'",
            work.path(),
            Duration::from_secs(20),
        ))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text,
        "0 0\n[0, 0, 0, 0, 0, 0]\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // From the host: nothing changed.
    let theirs_meta = std::fs::metadata(&theirs).unwrap();
    assert_eq!(
        (theirs_meta.uid(), theirs_meta.mode() & 0o777),
        (4242, 0o644)
    );
    let after = std::fs::metadata(&host_file).unwrap();
    assert_eq!(
        (after.uid(), after.mode(), after.mtime()),
        (host_meta.uid(), host_meta.mode(), host_meta.mtime())
    );
    // Positive control, and the process cap applies to every caller.
    let out = sb
        .exec(sh(
            "echo ok; /usr/bin/python3 -c 'import resource; print(resource.getrlimit(resource.RLIMIT_NPROC)[0])'",
            work.path(),
            Duration::from_secs(20),
        ))
        .await
        .unwrap();
    assert_eq!(out.code, Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n64\n");
}

/// The kernel never applies RLIMIT_NPROC to uid 0, so a kept-uid run as
/// root gets a pids cgroup of its own. Judged from the host: while the run
/// tries to start 200 sleepers, at most `nproc` of them exist, and none
/// outlives the run. A few do start (positive control).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kept_uid_jail_caps_its_processes() {
    let _one = common::PROCESS_JAIL.lock().await;
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the kept uid is root's only when running as root");
        return;
    }
    let sb = Arc::new(
        ProcessSandbox::new(ProcessConfig {
            keep_uid: true,
            nproc: 32,
            ..ProcessConfig::default()
        })
        .unwrap(),
    );
    let layer = sb
        .layers_preview()
        .into_iter()
        .find(|l| l.name == "pids-cgroup")
        .expect("a pids-cgroup layer for a kept-uid run as root");
    if !layer.active {
        eprintln!("skipped: {}", layer.detail);
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let script = "import subprocess, time\nn = 0\nfor i in range(200):\n    try:\n        subprocess.Popen(['/bin/sleep', '31.25'])\n        n += 1\n    except OSError:\n        pass\nopen('spawned', 'w').write(str(n))\ntime.sleep(30)\n";
    let mut spec = sh(
        "exec /usr/bin/python3 -c \"$SCRIPT\"",
        work.path(),
        Duration::from_secs(15),
    );
    spec.env.push(("SCRIPT".into(), script.into()));
    let run = tokio::spawn({
        let sb = sb.clone();
        async move { sb.exec(spec).await.unwrap() }
    });
    let sleepers = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read(e.path().join("cmdline"))
                    .is_ok_and(|c| c == b"/bin/sleep\x0031.25\x00")
            })
            .count()
    };
    let spawned = work.path().join("spawned");
    let mut most = 0;
    for _ in 0..300 {
        most = most.max(sleepers());
        if spawned.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    most = most.max(sleepers());
    assert!(spawned.exists(), "the run never finished spawning");
    assert!(most > 0, "no sleeper ever started");
    assert!(most <= 32, "{most} sleepers at once under a cap of 32");
    let out = run.await.unwrap();
    assert!(out.timed_out);
    assert!(
        out.layers
            .iter()
            .any(|l| l.name == "pids-cgroup" && l.active)
    );
    assert_eq!(sleepers(), 0, "sleepers outlived the run");
}

/// Concurrent runs each lease a uid of their own (an flock per uid, which
/// every selfrepair process honours), inside the sandbox uid range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_get_distinct_uids() {
    let _one = common::PROCESS_JAIL.lock().await;
    let sb = Arc::new(ProcessSandbox::new(ProcessConfig::default()).unwrap());
    let work: Vec<tempfile::TempDir> = (0..6).map(|_| tempfile::tempdir().unwrap()).collect();
    let runs = work.iter().map(|w| {
        let sb = sb.clone();
        let dir = w.path().to_path_buf();
        async move {
            let out = sb
                .exec(sh("id -u; sleep 1", &dir, Duration::from_secs(20)))
                .await
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        }
    });
    let uids: Vec<String> = futures_util::future::join_all(runs).await;
    let distinct: std::collections::BTreeSet<&String> = uids.iter().collect();
    assert_eq!(distinct.len(), uids.len(), "{uids:?}");
    for u in &uids {
        let u: u32 = u.parse().unwrap();
        assert!((UID_BASE..UID_BASE + UID_SPAN).contains(&u), "{u}");
    }
}

/// Files named `name` under `dir`, a few levels deep.
fn find_named(dir: &Path, name: &str, depth: usize, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if e.file_name().to_string_lossy() == name {
            out.push(p.clone());
        }
        if depth > 0 && e.file_type().is_ok_and(|t| t.is_dir()) {
            find_named(&p, name, depth - 1, out);
        }
    }
}

/// A wasm run's /tmp is a private tmpfs for every caller, not only root:
/// another uid gets one through a user namespace. Judged by the probe's
/// writes: they stop at the 64 MiB cap, and the host's temp dir holds
/// nothing of them.
#[test]
fn wasm_tmp_is_private_for_every_caller() {
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: becoming another uid needs root");
        return;
    }
    let host_tmp = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(host_tmp.path(), Some(65534), Some(65534)).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "suite::hostile::wasm_tmp_probe",
            "--ignored",
            "--nocapture",
        ])
        .args(["--test-threads", "1"])
        .env("TMPDIR", host_tmp.path())
        .uid(65534)
        .gid(65534)
        .output();
    let out = match out {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!("skipped: uid 65534 cannot run this test binary: {e}");
            return;
        }
        r => r.unwrap(),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.split_once("PROBE ").map(|(_, r)| r))
        .unwrap_or_else(|| {
            panic!(
                "no probe report: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    if line.contains("private=false") {
        // Only a machine that gives other uids no user namespace may say so.
        let userns = std::process::Command::new("unshare")
            .args(["-Urm", "true"])
            .uid(65534)
            .gid(65534)
            .status()
            .is_ok_and(|s| s.success());
        assert!(!userns, "user namespaces work, yet no private /tmp: {line}");
        eprintln!("skipped: no user namespaces for other uids here");
        return;
    }
    let wrote: u64 = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("wrote="))
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(wrote <= 64 << 20, "wrote {wrote} bytes: {line}");
    assert!(
        wrote >= 60 << 20,
        "the cap is 64 MiB, yet only {wrote} bytes: {line}"
    );
    let mut left = Vec::new();
    find_named(host_tmp.path(), "probe-big", 4, &mut left);
    assert!(left.is_empty(), "left on the host: {left:?}");
}

/// Run by `wasm_tmp_is_private_for_every_caller` as another uid.
#[test]
#[ignore = "a probe that wasm_tmp_is_private_for_every_caller runs as another uid"]
fn wasm_tmp_probe() {
    use std::io::Write;
    let tmp = selfrepair_sandbox::wasm::RunTmp::new().unwrap();
    let mut f = std::fs::File::create(tmp.path().join("probe-big")).unwrap();
    let chunk = vec![b'x'; 1 << 20];
    let mut wrote = 0u64;
    for _ in 0..100 {
        match f.write(&chunk) {
            Ok(n) if n > 0 => wrote += n as u64,
            _ => break,
        }
    }
    println!(
        "PROBE private={} wrote={wrote} path={}",
        tmp.is_private(),
        tmp.path().display()
    );
}

/// The wasm sandboxes' /tmp is capped (64 MiB as root: a private tmpfs
/// with no host path) and leaves nothing on the host once the run is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_temp_dirs_are_capped_and_leave_nothing() {
    let mark = format!("MARK-{}", std::process::id());
    let program = format!(
        "n = 0\nopen('/tmp/{mark}', 'w').write('x')\ntry:\n    with open('/tmp/big', 'wb') as f:\n        while n < 512:\n            f.write(b'x' * (1 << 20))\n            f.flush()\n            n += 1\nexcept OSError as e:\n    print('stopped', e)\nprint('wrote', n)\n"
    );
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    for kind in [SandboxKind::Wasm, SandboxKind::WasmFull] {
        let sb = common::sandbox(kind).await;
        let req = RunRequest::new(program.clone(), TestSpec::Script).with_limits(Limits {
            timeout: Duration::from_secs(20),
            memory_mb: 256,
            max_output: 64 << 10,
            test_timeout: None,
        });
        let out = sb.run(&req).await;
        let wrote: u64 = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("wrote "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{kind}: {}", out.summary()));
        if root {
            assert!(wrote <= 64, "{kind}: wrote {wrote} MiB into /tmp");
        }
        let mut left = Vec::new();
        find_named(&std::env::temp_dir(), &mark, 3, &mut left);
        assert!(left.is_empty(), "{kind}: left on the host: {left:?}");
    }
}

/// A run whose answers all equal what its suite's asserts expect passes on
/// the host, without a judge run (`judge.rs`). The expected values come
/// from walking the tests, never from the program's run: a program that
/// searches its whole interpreter for them (every object `gc` tracks, every
/// frame's locals) finds nothing to copy. Anything short of answers equal as
/// data goes to a judge: a value Python calls equal in another form, a NaN,
/// and any suite with an assert that fails without the program, or a call
/// outside an `f(...) == expected` assert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_expected_answers_pass_without_a_judge() {
    let _one = common::PROCESS_JAIL.lock().await;
    let suite = "def check(candidate):\n    assert candidate(1) == 'sr-' + 'secret-9b1c'\n    assert True\n    for i in range(2):\n        assert candidate(2) == [1, (2, 3), {'a': 1.5}]\n";
    let honest = "def sq(x):\n    return 'sr-secret-9b1c' if x == 1 else [1, (2, 3), {'a': 1.5}]\n";
    let peek = r#"
import gc, sys
NEEDLE = "".join(["sr-", "secret"])
def _find(o, seen, depth=0):
    if isinstance(o, str):
        return o if NEEDLE in o and o != NEEDLE else None
    if depth > 6 or id(o) in seen:
        return None
    seen.add(id(o))
    try:
        items = list(o.values()) + list(o.keys()) if isinstance(o, dict) else list(o) if isinstance(o, (list, tuple, set, frozenset)) else []
    except Exception:
        return None
    for x in items:
        hit = _find(x, seen, depth + 1)
        if hit:
            return hit
    return None
def sq(x):
    seen = set()
    f = sys._getframe(1)
    while f is not None:
        hit = _find(dict(f.f_locals), seen) or _find(list(f.f_code.co_consts), seen)
        if hit:
            return hit
        f = f.f_back
    for o in gc.get_objects():
        hit = _find(o, seen)
        if hit:
            return hit
    return "nothing found"
"#;
    let host = |o: &selfrepair_sandbox::Outcome| {
        o.layers
            .iter()
            .any(|l| l.name == "judge" && l.detail.starts_with("verdict on the host"))
    };
    for kind in SandboxKind::ALL {
        let sb = common::sandbox(kind).await;
        let out = sb.run(&sq_run(suite, honest)).await;
        assert_eq!(out.status, Status::Passed, "{kind}: {}", out.summary());
        assert!(host(&out), "{kind}: {:?}", out.layers);
        assert_eq!((out.passed, out.failed), (4, 0), "{kind}");
        let records: Vec<_> = out
            .tests
            .iter()
            .map(|t| {
                (
                    t.id.as_str(),
                    t.status.as_str(),
                    t.runs,
                    t.message.is_none(),
                )
            })
            .collect();
        assert_eq!(
            records,
            [
                ("line 2", "passed", 1, true),
                ("line 3", "passed", 1, true),
                ("line 5", "passed", 2, true)
            ],
            "{kind}"
        );

        let out = sb.run(&sq_run(suite, peek)).await;
        assert_eq!(out.status, Status::Failed, "{kind}: {}", out.summary());
        assert!(
            out.summary().contains("nothing found"),
            "{kind}: the expected value reached the program: {}",
            out.summary()
        );

        // Equal in Python, another form as data: the judge decides.
        let one = "def check(candidate):\n    assert candidate(1) == 1\n";
        let out = sb.run(&sq_run(one, "def sq(x):\n    return True\n")).await;
        assert_eq!(out.status, Status::Passed, "{kind}: {}", out.summary());
        assert!(!host(&out), "{kind}: True is not 1 as data");
        let out = sb.run(&sq_run(one, "def sq(x):\n    return 2\n")).await;
        assert_eq!(out.status, Status::Failed, "{kind}: {}", out.summary());

        // NaN is not equal to itself.
        let nan = "def check(candidate):\n    assert candidate(1) == float('nan')\n";
        let out = sb
            .run(&sq_run(nan, "def sq(x):\n    return float('nan')\n"))
            .await;
        assert_eq!(out.status, Status::Failed, "{kind}: {}", out.summary());

        // Suites that can fail otherwise than by an answer are judged.
        for tests in [
            "def check(candidate):\n    assert candidate(1) == 1\n    assert 1 == 2\n",
            "def check(candidate):\n    r = candidate(1)\n    assert r == 1\n    assert r == 2\n",
            "def check(candidate):\n    assert candidate(1) == 1\n    assert candidate(1) + 1 == 3\n",
        ] {
            let out = sb.run(&sq_run(tests, "def sq(x):\n    return 1\n")).await;
            assert_eq!(
                out.status,
                Status::Failed,
                "{kind}, {tests}: {}",
                out.summary()
            );
            assert!(!host(&out), "{kind}, {tests}");
        }
    }
}
