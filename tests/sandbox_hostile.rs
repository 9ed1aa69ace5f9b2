//! The hostile-program suite: every program runs in every sandbox, and the
//! host is checked afterwards. A program prints `ESCAPED` when an attack
//! worked; the secret must never show; listeners must receive nothing; no new
//! file may appear on the host; no sandbox process may outlive its run.

mod common;

use selfrepair::sandbox::{Limits, RunRequest, SandboxKind, Status, TestSpec};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const SECRET: &str = "s3cr3t-7f1c2b9e-do-not-leak";

/// (name, program, expectation). `{DIR}`, `{SECRET_FILE}`, `{TCP}`, `{UNIX}`,
/// `{PID}`, `{PROJECT}` are filled in per run.
const PROGRAMS: &[(&str, &str, Expect)] = &[
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
        "exec-binary",
        "import os\nos.execv('/bin/sh', ['sh', '-c', 'cat {SECRET_FILE} && echo ESCAPED'])",
        Expect::Any,
    ),
];

#[derive(Clone, Copy, Debug)]
enum Expect {
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
    .replace("{SECRET}", SECRET)
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
            if (61000..61512).contains(&real) && !zombie {
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
    // SAFETY: set once, before any sandbox starts; tests in this binary only read it.
    unsafe { std::env::set_var("SELFREPAIR_TEST_SECRET", SECRET) };

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
            Expect::Timeout if !matches!(out.status, Status::Timeout | Status::Unavailable) => {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_programs_contained_in_fast_wasm() {
    suite(SandboxKind::Wasm).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_programs_contained_in_full_wasm() {
    suite(SandboxKind::WasmFull).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_programs_contained_in_process() {
    suite(SandboxKind::Process).await;
}

/// The fast and process sandboxes instrument a suite once, before any program
/// runs, and reuse it for later programs of the same suite. A program that
/// replaces every piece of that machinery (the harness's compile functions,
/// marshal, base64, compile) and forges the process harness's "compiled"
/// line with the run's token may fool its own run, never the runs after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_test_code_cannot_be_poisoned() {
    for kind in [SandboxKind::Wasm, SandboxKind::Process] {
        poison_then_judge(kind).await;
    }
}

async fn poison_then_judge(kind: SandboxKind) {
    let sb = common::sandbox(kind).await;
    let tests =
        "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(3) == 9\n";
    let run = |program: &str| {
        RunRequest::new(
            program,
            TestSpec::Check {
                code: tests.into(),
                entry_point: Some("sq".into()),
                context: String::new(),
            },
        )
    };
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
