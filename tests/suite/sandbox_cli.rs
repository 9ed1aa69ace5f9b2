//! The `selfrepair run` command over the sandboxes: bad files are named,
//! the exit code follows the verdict, and a host killed with SIGKILL leaves
//! no run behind.

use selfrepair_testkit::procs::descendants;
use std::process::Command;

fn selfrepair(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_selfrepair"))
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn cli_names_bad_files() {
    let dir = tempfile::tempdir().expect("dir");
    let bad = dir.path().join("latin1.py");
    std::fs::write(&bad, b"print('caf\xe9')\n").expect("write");
    let out = selfrepair(&[
        "run",
        bad.to_str().expect("utf-8 path"),
        "--sandbox",
        "process",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("latin1.py") && err.contains("not UTF-8"),
        "{err}"
    );

    let out = selfrepair(&["run", "/nonexistent/x.py"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.py"));

    let out = selfrepair(&["run", bad.to_str().expect("path"), "--sandbox", "nope"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

#[test]
fn cli_run_reports_and_exits_by_verdict() {
    let dir = tempfile::tempdir().expect("dir");
    let prog = dir.path().join("p.py");
    std::fs::write(&prog, "def inc(x):\n    return x + 2\n").expect("write");
    let tests = dir.path().join("t.py");
    std::fs::write(
        &tests,
        "def check(candidate):\n    assert candidate(1) == 2\n",
    )
    .expect("write");
    let args = [
        "run",
        prog.to_str().expect("p"),
        "--tests",
        tests.to_str().expect("t"),
        "--entry-point",
        "inc",
        "--sandbox",
        "process",
    ];
    let out = selfrepair(&args);
    assert_eq!(out.status.code(), Some(1), "a failing run exits 1");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("candidate(1) returned 3, expected 2"),
        "{text}"
    );
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = selfrepair(&json_args);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(v["status"], "failed");
    assert_eq!(v["tests"][0]["actual"], "3");
    assert!(v["layers"].as_array().is_some_and(|l| !l.is_empty()));
}

/// A host killed with SIGKILL runs no cleanup code; the server sees its
/// socket close and exits, and its runs die with it.
#[test]
fn runs_end_when_the_host_is_killed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let program = dir.path().join("sleeper.py");
    std::fs::write(&program, "import time\ntime.sleep(60)\n").expect("program");
    let mut host = std::process::Command::new(env!("CARGO_BIN_EXE_selfrepair"))
        .args(["run", "--sandbox", "process", "--timeout", "60"])
        .arg(&program)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("selfrepair run");
    let start = std::time::Instant::now();
    let run = loop {
        // host -> fork server -> intermediate -> the run's pid 1
        let jailed: Vec<u32> = descendants(host.id())
            .into_iter()
            .filter(|&(_, depth)| depth >= 3)
            .map(|(pid, _)| pid)
            .collect();
        if !jailed.is_empty() {
            break jailed;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "the run never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let family: Vec<u32> = descendants(host.id()).iter().map(|d| d.0).collect();
    host.kill().expect("kill -9 the host");
    host.wait().expect("reap the host");
    let start = std::time::Instant::now();
    loop {
        let alive: Vec<u32> = family
            .iter()
            .copied()
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
                    !s.lines()
                        .any(|l| l.starts_with("State:") && l.contains('Z'))
                })
            })
            .collect();
        if alive.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "still running 5 s after the host was killed: {alive:?} (the run: {run:?})"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `run --strict` (process sandbox) refuses to run where an isolation layer
/// is missing, naming it, and otherwise runs as without it. Which case
/// applies is read from the layers a non-strict run reports on this machine.
#[test]
fn strict_refuses_exactly_when_a_layer_is_missing() {
    let dir = tempfile::tempdir().expect("dir");
    let prog = dir.path().join("p.py");
    std::fs::write(&prog, "print('hi')\n").expect("write");
    let p = prog.to_str().expect("p");
    let out = selfrepair(&["run", p, "--sandbox", "process", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let layers = v["layers"].as_array().expect("layers");
    assert!(!layers.is_empty());
    let missing: Vec<&str> = layers
        .iter()
        .filter(|l| l["active"] == false)
        .filter_map(|l| l["name"].as_str())
        .collect();
    let out = selfrepair(&["run", p, "--sandbox", "process", "--json", "--strict"]);
    let err = String::from_utf8_lossy(&out.stderr);
    if missing.is_empty() {
        assert_eq!(out.status.code(), Some(0), "all layers are active: {err}");
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(s["status"], v["status"]);
    } else {
        assert_ne!(
            out.status.code(),
            Some(0),
            "{missing:?} missing, yet it ran"
        );
        assert!(
            missing
                .iter()
                .any(|m| err.contains(&format!("sandbox layer '{m}' is not available"))),
            "names a missing layer of {missing:?}: {err}"
        );
        assert!(err.contains("--strict"), "{err}");
    }
}
