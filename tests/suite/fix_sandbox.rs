//! The process-sandbox extensions `selfrepair fix` relies on: runs in a
//! caller's directory, cancelling a run, and keeping the caller's uid.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use selfrepair::sandbox::Limits;
use selfrepair::sandbox::process::{CommandSpec, ProcessConfig, ProcessSandbox};

fn sh(script: &str, dir: &std::path::Path) -> CommandSpec {
    CommandSpec {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        workdir: Some(dir.to_path_buf()),
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        stdin: Vec::new(),
        limits: Limits {
            timeout: Duration::from_secs(30),
            ..Limits::default()
        },
    }
}

/// `script` run by python3 in a jail of `cfg`, in `dir`.
async fn python_in(
    cfg: ProcessConfig,
    script: &str,
    dir: &Path,
) -> std::io::Result<selfrepair::sandbox::process::CommandOutput> {
    std::fs::write(dir.join("run.py"), script)?;
    let sb = ProcessSandbox::new(cfg).map_err(std::io::Error::other)?;
    sb.exec(sh("/usr/bin/python3 run.py", dir))
        .await
        .map_err(std::io::Error::other)
}

/// The stdout of a run that must have exited 0 (its output shown if not).
fn succeeded(out: std::io::Result<selfrepair::sandbox::process::CommandOutput>) -> String {
    let out = out.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.code,
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The exit code of `python3 -c CODE` in a jail of the default configuration.
async fn default_jail_code(code: &str, dir: &Path) -> Option<i32> {
    let sb = ProcessSandbox::new(ProcessConfig::default()).unwrap();
    let out = sb
        .exec(sh(&format!("/usr/bin/python3 -c '{code}'"), dir))
        .await
        .unwrap();
    out.code
}

/// Our uid, as the owner of a directory we just made.
fn my_uid(dir: &std::path::Path) -> u32 {
    std::fs::metadata(dir).unwrap().uid()
}

#[tokio::test]
async fn a_lent_work_dir_comes_back_to_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let me = my_uid(dir.path());
    std::fs::write(dir.path().join("given.txt"), "mine").unwrap();
    let sb = ProcessSandbox::new(ProcessConfig::default()).unwrap();
    let out = sb
        .exec(sh("id -u; echo made > made.txt", dir.path()))
        .await
        .unwrap();
    assert_eq!(
        out.code,
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let uid_inside: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    if me == 0 {
        assert_ne!(uid_inside, 0, "root runs under a dedicated uid");
    }
    for f in ["given.txt", "made.txt"] {
        let m = std::fs::metadata(dir.path().join(f)).unwrap();
        assert_eq!(m.uid(), me, "{f} was not given back");
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("made.txt")).unwrap(),
        "made\n"
    );
}

#[tokio::test]
async fn keep_uid_runs_as_the_caller() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let sb = ProcessSandbox::new(ProcessConfig {
        keep_uid: true,
        ..ProcessConfig::default()
    })
    .unwrap();
    let out = sb.exec(sh("id -u", dir.path())).await.unwrap();
    let inside: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(inside, my_uid(dir.path()));
    // Still jailed: a file of the caller's own, which the same uid could
    // read on the host, is not there at all (file permissions cannot be
    // what stops it).
    let host = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let canary = host.path().join("canary.txt");
    std::fs::write(&canary, "host-only-7c1d\n").unwrap();
    std::fs::set_permissions(&canary, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(std::fs::metadata(&canary).unwrap().uid(), inside);
    let out = sb
        .exec(sh(
            &format!("cat '{}' 2>&1; exit 0", canary.display()),
            dir.path(),
        ))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // Out of the mount namespace, or denied by Landlock: the owner's own
    // uid is refused, so file permissions are not what stopped it.
    assert!(!text.contains("host-only-7c1d"), "{text}");
    assert!(
        text.contains("No such file") || text.contains("Permission denied"),
        "{text}"
    );
}

/// Stopping a command ends it and its whole process group, background
/// children included (judged from the host by their command lines).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_until_stops_a_run_and_kills_its_group() {
    use selfrepair_testkit::procs::{wait_for, with_cmdline};
    let dir = tempfile::tempdir().unwrap();
    let sb = ProcessSandbox::new(ProcessConfig::default()).unwrap();
    let marker = format!("30.{}2", std::process::id());
    let m = marker.clone();
    // Stop once both sleeps run, not after a guessed delay.
    let both_running = async move {
        let up = tokio::task::spawn_blocking(move || {
            wait_for(Duration::from_secs(20), || with_cmdline(&m).len() >= 2)
        })
        .await;
        assert!(matches!(up, Ok(true)), "the sleeps never started");
    };
    let started = Instant::now();
    let out = sb
        .exec_until(
            sh(
                &format!("sleep {marker} & sleep {marker}; echo never"),
                dir.path(),
            ),
            both_running,
        )
        .await
        .unwrap();
    assert!(out.stopped && !out.timed_out);
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("never"));
    let gone = tokio::task::spawn_blocking(move || {
        wait_for(Duration::from_secs(3), || with_cmdline(&marker).is_empty())
    });
    assert!(
        gone.await.unwrap(),
        "a process of the group outlived the stop"
    );
}

/// A repository's `rust-toolchain.toml` can name a toolchain by path, and
/// rustup would run that path's `rustc` (here: a script the repository
/// ships, reached through `/proc/self/cwd`). Setting up the test runner
/// probes the host's toolchains; nothing of the repository may run there.
#[test]
fn a_repositorys_toolchain_file_never_runs_on_the_host() {
    use selfrepair::fix::detect::TestCommand;
    use selfrepair::fix::runner::{RunnerOptions, TestRunner};
    use std::os::unix::fs::PermissionsExt;
    let canary_dir = tempfile::tempdir().unwrap();
    let canary = canary_dir.path().join("CANARY");
    let work = tempfile::tempdir().unwrap();
    let root = work.path();
    std::fs::write(
        root.join("Cargo.toml"),
        "[package]\nname = \"t\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::write(
        root.join("rust-toolchain.toml"),
        "[toolchain]\npath = \"/proc/self/cwd/evil\"\n",
    )
    .unwrap();
    let bin = root.join("evil/bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["rustc", "cargo", "go", "node"] {
        let p = bin.join(tool);
        std::fs::write(
            &p,
            format!("#!/bin/sh\ntouch {}\necho /tmp\n", canary.display()),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // The attack is real where rustup is: run from the work copy, rustc is the script.
    let direct = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .current_dir(root)
        .env("RUSTUP_AUTO_INSTALL", "0")
        .env_remove("RUSTUP_TOOLCHAIN")
        .output();
    let rustup = direct.is_ok() && canary.exists();
    let _ = std::fs::remove_file(&canary);
    for command in [
        selfrepair::fix::detect::detect(root).unwrap(),
        TestCommand::custom("cargo test"),
        TestCommand::custom("./run-tests"),
    ] {
        let kind = command.kind;
        let runner = TestRunner::new(command, root, Path::new(""), &RunnerOptions::default());
        assert!(runner.is_ok(), "{kind:?}");
        assert!(
            !canary.exists(),
            "{kind:?}: the repository's toolchain ran on the host"
        );
    }
    eprintln!("rustup present (the attack works without the fix): {rustup}");
}

/// multiprocessing works in the jail as outside (a semaphore, a pool, shared
/// memory), on a /dev/shm of the run's own: what a run leaves there never
/// reaches the host's, and the host's is out of its sight.
#[tokio::test]
async fn multiprocessing_gets_a_private_dev_shm() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("selfrepair-host-shm-{}", std::process::id());
    let host_file = Path::new("/dev/shm").join(&marker);
    if !Path::new("/dev/shm").is_dir() {
        eprintln!("skipped: this host has no /dev/shm");
        return;
    }
    std::fs::write(&host_file, "host").unwrap();
    let leak = format!("selfrepair-jail-shm-{}", std::process::id());
    let script = format!(
        r#"
import multiprocessing as mp, os
from multiprocessing import shared_memory
lock = mp.Lock()
with lock:
    pass
with mp.Pool(2) as pool:
    assert pool.map(abs, [-1, -2, 3]) == [1, 2, 3]
shm = shared_memory.SharedMemory(create=True, size=4096)
shm.buf[0] = 7
other = shared_memory.SharedMemory(name=shm.name)
assert other.buf[0] == 7
other.close(); shm.close(); shm.unlink()
open('/dev/shm/{leak}', 'w').write('jail')
print('SEES_HOST' if os.path.exists('/dev/shm/{marker}') else 'PRIVATE')
"#
    );
    let cfg = ProcessConfig {
        shm_mb: 64,
        ..ProcessConfig::default()
    };
    let out = python_in(cfg, &script, dir.path()).await;
    let _ = std::fs::remove_file(&host_file);
    let stdout = succeeded(out);
    assert_eq!(stdout.trim(), "PRIVATE");
    assert!(
        !Path::new("/dev/shm").join(&leak).exists(),
        "a jailed run wrote the host's /dev/shm"
    );
    // Without it, /dev/shm stays an empty read-only cover: no semaphore.
    let code = default_jail_code("import multiprocessing as m; m.Lock()", dir.path()).await;
    assert_ne!(code, Some(0), "a semaphore without a private /dev/shm");
}

/// `loopback`: a run serves and calls 127.0.0.1 on a loopback of its own
/// (a test's local server works), but the host's loopback, where a listener
/// waits, stays out of reach, and so does every other address.
#[tokio::test]
async fn a_run_has_a_loopback_of_its_own_and_nothing_more() {
    let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    host.set_nonblocking(true).unwrap();
    let port = host.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        r#"
import socket, threading
srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(1)
def serve():
    c, _ = srv.accept(); c.sendall(c.recv(10).upper()); c.close()
threading.Thread(target=serve).start()
c = socket.create_connection(srv.getsockname(), timeout=5); c.sendall(b'ping')
print('LOCAL', c.recv(10).decode())
for addr in [('127.0.0.1', {port}), ('1.1.1.1', 53)]:
    try:
        socket.create_connection(addr, timeout=2); print('REACHED', addr)
    except OSError as e:
        print('BLOCKED', addr[0], type(e).__name__)
"#
    );
    let cfg = ProcessConfig {
        loopback: true,
        ..ProcessConfig::default()
    };
    let stdout = succeeded(python_in(cfg, &script, dir.path()).await);
    assert!(stdout.contains("LOCAL PING"), "{stdout}");
    assert!(!stdout.contains("REACHED"), "{stdout}");
    assert_eq!(stdout.matches("BLOCKED").count(), 2, "{stdout}");
    // Judged from the host: nobody connected to the host's listener.
    assert!(
        host.accept()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
        "a jailed run reached the host's loopback"
    );
    // Without it, no inet socket at all.
    let code = default_jail_code("import socket; socket.socket()", dir.path()).await;
    assert_ne!(code, Some(0), "an inet socket without loopback");
}

/// A run in a work dir with a disk cap: bytes and inodes past the cap stop
/// it, judged from the host (its flag, and what the dir holds afterwards);
/// a run that stays under the cap is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_work_dir_past_its_disk_cap_stops_the_run() {
    use selfrepair::sandbox::process::DiskCap;
    let cfg = ProcessConfig {
        disk: Some(DiskCap {
            bytes: 32 << 20,
            inodes: 2000,
        }),
        fsize_mb: 64,
        ..ProcessConfig::default()
    };
    let held = |dir: &Path| -> (u64, u64) {
        let mut bytes = 0;
        let mut inodes = 0;
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let m = e.as_ref().unwrap().metadata().unwrap();
                bytes += m.blocks() * 512;
                inodes += 1;
                if m.is_dir() {
                    stack.push(e.unwrap().path());
                }
            }
        }
        (bytes, inodes)
    };
    // Positive control: 4 MiB and 100 files, well under the cap.
    let dir = tempfile::tempdir().unwrap();
    let small = "import os\nfor i in range(100):\n    open(f'f{i}', 'wb').write(os.urandom(40 << 10))\nprint('done')\n";
    let out = python_in(cfg.clone(), small, dir.path()).await.unwrap();
    assert_eq!(out.disk_full, None);
    assert_eq!(
        out.code,
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.layers.iter().any(|l| l.name == "disk"),
        "{:?}",
        out.layers
    );
    // Bytes: 4 MiB files up to 1.5 GiB, unless stopped.
    let dir = tempfile::tempdir().unwrap();
    let big = "import os\nb = os.urandom(4 << 20)\nfor i in range(384):\n    with open(f'big{i}', 'wb') as f:\n        f.write(b)\n        f.flush()\n        os.fsync(f.fileno())\nprint('never stopped')\n";
    let started = Instant::now();
    let out = python_in(cfg.clone(), big, dir.path()).await.unwrap();
    let why = out.disk_full.clone().unwrap_or_default();
    assert!(
        why.contains("past its cap of 32 MiB"),
        "{why:?} after {:?}",
        started.elapsed()
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("never stopped"));
    let (bytes, _) = held(dir.path());
    assert!(
        bytes < 1 << 30,
        "the run wrote {} MiB before it was stopped",
        bytes >> 20
    );
    // Inodes: empty files, no bytes at all.
    let dir = tempfile::tempdir().unwrap();
    let many = "import os, time\nos.mkdir('d')\nfor i in range(200000):\n    open(f'd/{i}', 'wb').close()\nprint('never stopped')\n";
    let out = python_in(cfg, many, dir.path()).await.unwrap();
    let why = out.disk_full.clone().unwrap_or_default();
    assert!(
        why.contains("files and directories, past its cap of 2000"),
        "{why:?}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("never stopped"));
    let (_, inodes) = held(dir.path());
    assert!(
        inodes < 200_000,
        "the run made {inodes} files before it was stopped"
    );
}

/// What `fix` makes of a test run stopped at the work copy's disk cap: a
/// failing run whose one failure says why and names the flag that raises it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_run_past_the_disk_cap_fails_with_the_reason() {
    use selfrepair::fix::detect::TestCommand;
    use selfrepair::fix::runner::{RunStatus, RunnerOptions, TestRunner};
    use selfrepair::sandbox::process::DiskCap;
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("fill.py"),
        "import os\nb = os.urandom(4 << 20)\nfor i in range(256):\n    with open(f'f{i}', 'wb') as f:\n        f.write(b)\n        os.fsync(f.fileno())\nprint('never stopped')\n",
    )
    .unwrap();
    let opts = RunnerOptions {
        disk: DiskCap {
            bytes: 32 << 20,
            inodes: 100_000,
        },
        ..RunnerOptions::default()
    };
    let runner = TestRunner::new(
        TestCommand::custom("python3 fill.py"),
        work.path(),
        Path::new(""),
        &opts,
    )
    .unwrap();
    let run = runner
        .run(&[], &tokio_util::sync::CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Failed, "{}", run.output);
    assert!(!run.output.contains("never stopped"), "{}", run.output);
    let failed = &run.report.failed;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].id, "suite");
    assert!(
        failed[0].message.contains("past its cap of 32 MiB")
            && failed[0].message.contains("--disk-mb"),
        "{}",
        failed[0].message
    );
}
