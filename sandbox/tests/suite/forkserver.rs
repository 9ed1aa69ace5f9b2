//! The process sandbox's fork server: every run forks from one pre-started
//! interpreter, so these tests check what that must not change. A run leaves
//! nothing behind for the next (interpreter state, files, env, SysV IPC,
//! abstract sockets), holds no descriptor of the server's, gets the same
//! layers as a run that starts its own interpreter, and a server that dies
//! is replaced without a wrong verdict.

use super::common;
use selfrepair_sandbox::process::{ProcessConfig, ProcessSandbox};
use selfrepair_sandbox::{Outcome, RunRequest, Sandbox, Status, TestSpec};

fn script(program: &str) -> RunRequest {
    RunRequest::new(program, TestSpec::Script)
}

fn sandbox(fork_server: bool) -> ProcessSandbox {
    ProcessSandbox::new(ProcessConfig {
        fork_server,
        ..Default::default()
    })
    .expect("process sandbox")
}

fn fork_server_layer(o: &Outcome) -> Option<bool> {
    o.layers
        .iter()
        .find(|l| l.name == "fork-server")
        .map(|l| l.active)
}

/// Leaves every kind of trace a later run could find.
const LITTER: &str = r#"
import builtins, ctypes, os, socket, sys, json
builtins.POISON = 1
json.dumps = lambda *a, **k: "poisoned"
sys.modules["secret_module"] = type(sys)("secret_module")
os.environ["LEAK"] = "1"
open("/tmp/mark", "w").write("left behind")
libc = ctypes.CDLL(None, use_errno=True)
assert libc.shmget(0x5E1F, 4096, 0o1000 | 0o666) >= 0, "shmget"
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\0selfrepair-forkserver-leak")
s.listen(1)
if os.fork() == 0:
    os.setsid()
    import time
    time.sleep(30)
s.close()  # the daemon keeps the socket bound
"#;

/// Fails (exits non-zero) if any trace of [`LITTER`] is visible.
const CHECK_CLEAN: &str = r#"
import builtins, ctypes, os, socket, sys, json
open_fds = []
for fd in range(3, 1024):
    try:
        os.fstat(fd)
        open_fds.append(fd)
    except OSError:
        pass
assert not open_fds, "inherited descriptors: %r" % open_fds
assert not hasattr(builtins, "POISON"), "builtins poisoned"
assert json.dumps([1]) == "[1]", "json poisoned"
assert "secret_module" not in sys.modules, "sys.modules poisoned"
assert "LEAK" not in os.environ, "env leaked"
assert not os.path.exists("/tmp/mark"), "file left behind"
libc = ctypes.CDLL(None, use_errno=True)
assert libc.shmget(0x5E1F, 0, 0) == -1, "SysV shm segment left behind"
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect("\0selfrepair-forkserver-leak")
    raise AssertionError("abstract socket left behind")
except ConnectionRefusedError:
    pass
print("clean")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_forked_from_the_server_share_nothing() {
    let _one = common::PROCESS_JAIL.lock().await;
    let sb = sandbox(true);
    let first = sb.run(&script(CHECK_CLEAN)).await;
    assert_eq!(first.status, Status::Passed, "{}", first.summary());
    assert_eq!(fork_server_layer(&first), Some(true), "{:?}", first.layers);
    let litter = sb.run(&script(LITTER)).await;
    assert_eq!(litter.status, Status::Passed, "{}", litter.summary());
    // The check itself must be able to fail: in the littering run's own
    // interpreter it does.
    let own = sb.run(&script(&format!("{LITTER}\n{CHECK_CLEAN}"))).await;
    assert_ne!(own.status, Status::Passed, "{}", own.summary());
    assert!(
        own.summary().contains("builtins poisoned"),
        "the poison checks, past the descriptor scan, are what fail: {}",
        own.summary()
    );
    for _ in 0..3 {
        let after = sb.run(&script(CHECK_CLEAN)).await;
        assert_eq!(after.status, Status::Passed, "{}", after.summary());
        assert!(after.stdout.contains("clean"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forked_runs_get_the_same_layers_as_spawned_runs() {
    let _one = common::PROCESS_JAIL.lock().await;
    let forked = sandbox(true).run(&script("print(1)")).await;
    let spawned = sandbox(false).run(&script("print(1)")).await;
    assert_eq!(forked.status, Status::Passed, "{}", forked.summary());
    assert_eq!(spawned.status, Status::Passed, "{}", spawned.summary());
    assert_eq!(fork_server_layer(&forked), Some(true));
    assert_eq!(fork_server_layer(&spawned), Some(false));
    let names = |o: &Outcome| -> Vec<(String, bool)> {
        o.layers
            .iter()
            .filter(|l| l.name != "fork-server" && l.name != "uid")
            .map(|l| (l.name.clone(), l.active))
            .collect()
    };
    assert_eq!(names(&forked), names(&spawned));
    // What the program can observe of its jail is the same too.
    let probe = r#"
import os, resource
print(os.getpid(), os.getuid() != 0, os.getcwd(), sorted(os.environ))
print([resource.getrlimit(r) for r in (resource.RLIMIT_AS, resource.RLIMIT_CPU, resource.RLIMIT_NOFILE, resource.RLIMIT_NPROC)])
for p in ("/etc/passwd", "/proc/self/status", "/root"):
    try:
        os.stat(p); open(p).read(1)
        print(p, "readable")
    except OSError as e:
        print(p, type(e).__name__)
"#;
    let a = sandbox(true).run(&script(probe)).await;
    let b = sandbox(false).run(&script(probe)).await;
    assert_eq!(
        a.stdout, b.stdout,
        "forked:\n{}\nspawned:\n{}",
        a.stdout, b.stdout
    );
    let namespaces = a.layers.iter().any(|l| l.name == "namespaces" && l.active);
    assert!(
        !namespaces || a.stdout.starts_with("1 "),
        "pid 1 of its namespace: {}",
        a.stdout
    );
}

/// The fork server's pid, as the run's layer names it.
fn server_pid(o: &Outcome) -> Option<String> {
    let l = o
        .layers
        .iter()
        .find(|l| l.name == "fork-server" && l.active)?;
    let (_, rest) = l.detail.split_once("(pid ")?;
    Some(rest.split(')').next()?.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_fork_server_is_replaced() {
    let _one = common::PROCESS_JAIL.lock().await;
    let sb = sandbox(true);
    let tests = TestSpec::Check {
        code: "def check(candidate):\n    assert candidate(3) == 9\n".into(),
        entry_point: Some("sq".into()),
        context: String::new(),
    };
    let right = RunRequest::new("def sq(x):\n    return x * x\n", tests.clone());
    let wrong = RunRequest::new("def sq(x):\n    return x + 3\n", tests);
    let first = sb.run(&right).await;
    assert_eq!(first.status, Status::Passed);
    let pid = server_pid(&first).expect("a fork server pid");
    assert!(is_fork_server(&pid), "{pid} is not a running fork server");
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    // Verdicts stay right while the server is replaced.
    for _ in 0..3 {
        assert_eq!(sb.run(&right).await.status, Status::Passed);
        let w = sb.run(&wrong).await;
        assert_eq!(w.status, Status::Failed, "{}", w.summary());
    }
    let last = sb.run(&right).await;
    assert_eq!(fork_server_layer(&last), Some(true), "{:?}", last.layers);
    let now = server_pid(&last).expect("a fork server pid");
    assert_ne!(now, pid, "a new server");
}

/// `warm_up` starts the fork server ahead of the first run, which then uses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warming_up_starts_the_server_the_first_run_uses() {
    let _one = common::PROCESS_JAIL.lock().await;
    let sb = sandbox(true);
    sb.warm_up().await;
    let before: Vec<String> = selfrepair_testkit::procs::descendants(std::process::id())
        .into_iter()
        .map(|(pid, _)| pid.to_string())
        .filter(|pid| is_fork_server(pid))
        .collect();
    let first = sb.run(&script("print('hi')")).await;
    assert_eq!(first.status, Status::Passed, "{}", first.summary());
    let pid = server_pid(&first).expect("a fork server pid");
    assert!(
        before.contains(&pid),
        "the run's server {pid} was not among those up after warm_up: {before:?}"
    );

    // With the fork server off, warming up is harmless and runs start their
    // own interpreter.
    let off = sandbox(false);
    off.warm_up().await;
    let out = off.run(&script("print('hi')")).await;
    assert_eq!(out.status, Status::Passed, "{}", out.summary());
    assert_eq!(fork_server_layer(&out), Some(false), "{:?}", out.layers);
}

/// Whether `pid` is a running fork server (by its command line).
fn is_fork_server(pid: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("fork server for the process sandbox"))
}

/// With a cache dir, the harness compiled by the interpreter is kept on
/// disk (sealed with its sha256) and the next sandbox starts from it, in
/// both the fork server and a run of its own. A file that is damaged or cut
/// short is compiled again and rewritten, never run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compiled_harness_is_kept_and_a_damaged_one_is_compiled_again() {
    let _one = common::PROCESS_JAIL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let open = |fork_server: bool| {
        ProcessSandbox::new(ProcessConfig {
            fork_server,
            cache_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        })
        .expect("process sandbox")
    };
    let passes = |o: &Outcome| {
        assert_eq!(o.status, Status::Passed, "{}", o.summary());
        assert!(o.stdout.contains("hi"), "{}", o.summary());
    };
    passes(&open(true).run(&script("print('hi')")).await);
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .expect("cache dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".marshal"))
        .collect();
    assert_eq!(files.len(), 1, "one compiled harness: {files:?}");
    let file = &files[0];
    // Sealed: the compiled code, then its sha256 in hex.
    let is_sealed = |data: &[u8]| {
        data.len() > 64
            && data[data.len() - 64..]
                == *selfrepair_store::sha256_bytes(&data[..data.len() - 64]).as_bytes()
    };
    let sealed = std::fs::read(file).expect("compiled harness");
    assert!(is_sealed(&sealed), "the file ends with its body's sha256");
    let body_len = sealed.len() - 64;
    passes(&open(true).run(&script("print('hi')")).await);
    passes(&open(false).run(&script("print('hi')")).await);
    assert_eq!(
        std::fs::read(file).expect("kept"),
        sealed,
        "reused as it was"
    );

    // Damaged (a byte of code flipped) and cut short: each is compiled again.
    let mut flipped = sealed.clone();
    flipped[body_len / 2] ^= 0x55;
    for bad in [flipped, sealed[..body_len / 2].to_vec()] {
        std::fs::write(file, &bad).expect("damage");
        passes(&open(true).run(&script("print('hi')")).await);
        let now = std::fs::read(file).expect("rewritten");
        assert!(is_sealed(&now) && now != bad, "not rewritten whole");
    }
}
