//! Host-side views of processes, for tests that judge a jail from outside:
//! a process tree read from `/proc`, and a test run in a child process of
//! its own (for a test that must set environment variables, which is only
//! sound in a process where no other thread reads them).

// For tests: a panic is the failure report.
#![allow(clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

/// Pids descending from `root`, with their depth below it.
pub fn descendants(root: u32) -> Vec<(u32, usize)> {
    let mut procs = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let field = |name: &str| -> Option<u32> {
            status
                .lines()
                .find(|l| l.starts_with(name))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        };
        let zombie = status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'));
        if let (Some(ppid), false) = (field("PPid:"), zombie) {
            procs.push((pid, ppid));
        }
    }
    let mut found = vec![(root, 0)];
    let mut i = 0;
    while i < found.len() {
        let (parent, depth) = found[i];
        for &(pid, ppid) in &procs {
            if ppid == parent {
                found.push((pid, depth + 1));
            }
        }
        i += 1;
    }
    found.split_off(1)
}

/// Live (not zombie) processes whose command line holds `marker`, as
/// `pid: cmdline`.
pub fn with_cmdline(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let (Ok(cmd), Ok(status)) = (
            std::fs::read(entry.path().join("cmdline")),
            std::fs::read_to_string(entry.path().join("status")),
        ) else {
            continue;
        };
        let zombie = status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'));
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if !zombie && cmd.contains(marker) {
            found.push(format!("{}: {cmd}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

/// Polls `probe` every 20 ms until it returns true or `limit` passes;
/// whether it did.
pub fn wait_for(limit: std::time::Duration, mut probe: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    loop {
        if probe() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Run the `#[ignore]`d test `name` (its full path in the test binary,
/// e.g. `suite::hostile::suite_in_a_child`) in a child process of this
/// test binary with `env` added, and panic with its output unless exactly
/// that one test ran and passed.
pub fn run_ignored_in_child(name: &str, env: &[(&str, &str)]) {
    let exe: PathBuf = std::env::current_exe().expect("the test binary's path");
    let out = Command::new(exe)
        .args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(env.iter().copied())
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{name} in a child process: {}\n{stdout}\n{stderr}",
        out.status
    );
}
