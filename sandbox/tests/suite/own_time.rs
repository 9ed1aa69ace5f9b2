//! Limits are on a run's own time: wall time less the time it waited for a
//! CPU. Each test loads the host past its cores with busy loops and checks
//! that a run within its limit in its own time is judged as on an idle
//! machine, and that one past it is still stopped.

use super::common;
use selfrepair_sandbox::process::{ProcessConfig, ProcessSandbox};
use selfrepair_sandbox::{RunRequest, Sandbox, SandboxKind, Status, TestSpec};
use std::time::Duration;

fn script(program: &str) -> RunRequest {
    RunRequest::new(program, TestSpec::Script)
}

/// Busy loops on the host, well more than it has cores, killed when
/// dropped; one load at a time (two would slow a run past the cap).
struct Load {
    loops: Vec<std::process::Child>,
    _one: tokio::sync::MutexGuard<'static, ()>,
}

static ONE_LOAD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Load {
    async fn start() -> Load {
        let one = ONE_LOAD.lock().await;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let loops = (0..3 * cores + 2)
            .map(|_| {
                std::process::Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .spawn()
                    .expect("a busy loop")
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        Load { loops, _one: one }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        for c in &mut self.loops {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A run's limit is on its own time, not on the time it waited for a CPU:
/// on a host loaded past its cores, a program that computes for 0.3 s under
/// a 1 s limit passes, as it does on an idle machine, though its wall time
/// is longer than the limit. One that computes for 1.6 s still times out,
/// and sleeping is the run's own time: a program that sleeps past its limit
/// is stopped at it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_counts_the_runs_own_time_not_its_wait_for_a_cpu() {
    let _one = common::PROCESS_JAIL.lock().await;
    let sb = ProcessSandbox::new(ProcessConfig {
        fork_server: true,
        ..Default::default()
    })
    .expect("process sandbox");
    let limited = |program: String| {
        let mut r = script(&program);
        r.limits.timeout = Duration::from_secs(1);
        r
    };
    let spin = |cpu: f64| {
        limited(format!(
            "import time\nt = time.process_time()\nwhile time.process_time() - t < {cpu}:\n    pass\nprint('done')\n"
        ))
    };
    // Positive control on a quiet host (the server started, the harness warm).
    let out = sb.run(&spin(0.3)).await;
    assert_eq!(out.status, Status::Passed, "{}", out.summary());

    let load = Load::start().await;
    let out = sb.run(&spin(0.3)).await;
    assert_eq!(out.status, Status::Passed, "{}", out.summary());
    assert_eq!(out.stdout.trim(), "done");
    assert!(
        out.duration_ms > 1000.0,
        "the busy loops did not slow the run past its limit ({:.0} ms), so this proves nothing",
        out.duration_ms
    );
    let out = sb.run(&spin(1.6)).await;
    assert_eq!(out.status, Status::Timeout, "{}", out.summary());
    assert!(out.duration_ms < 4000.0, "{:.0} ms", out.duration_ms);
    let out = sb
        .run(&limited(
            "import time\ntime.sleep(3)\nprint('late')\n".into(),
        ))
        .await;
    drop(load);
    assert_eq!(out.status, Status::Timeout, "{}", out.summary());
    assert!(out.duration_ms < 2500.0, "{:.0} ms", out.duration_ms);
}

/// The fast sandbox's run budget (after which eval moves a program to the
/// jail) is on the run's own time too: a program that computes for about a
/// third of its budget on an idle host is not cut on a loaded one, where
/// its wall time passes the budget; one that needs several budgets is cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fast_sandboxs_budget_counts_the_runs_own_time() {
    let sb = common::sandbox(SandboxKind::Wasm).await;
    let budgeted = |n: u64, budget: Duration| {
        let mut r = script(&format!(
            "s = 0\nfor i in range({n}):\n    s += i\nprint(s > 0)\n"
        ));
        r.budget = Some(budget);
        r
    };
    // About 150 ms of computing, measured on the host as it is (other tests
    // may be running: the fastest of five).
    let probe = 200_000u64;
    let mut quiet = f64::MAX;
    for _ in 0..5 {
        let out = sb.run(&budgeted(probe, Duration::from_secs(5))).await;
        assert_eq!(out.status, Status::Passed, "{}", out.summary());
        quiet = quiet.min(out.duration_ms);
    }
    let mut n = ((probe as f64) * 150.0 / quiet.max(1.0)) as u64;
    let budget = Duration::from_millis(450);

    let load = Load::start().await;
    // If the probe was slowed by other tests, the program is shorter than
    // meant and may still finish within the budget's wall time: then once
    // more at twice the work (at most ~300 ms of its own time).
    let mut slowed = false;
    for _ in 0..2 {
        let out = sb.run(&budgeted(n, budget)).await;
        assert_eq!(out.status, Status::Passed, "{}", out.summary());
        assert!(!out.over_budget);
        if out.duration_ms > budget.as_secs_f64() * 1e3 {
            slowed = true;
            break;
        }
        n *= 2;
    }
    assert!(
        slowed,
        "the busy loops did not slow the run past its budget, so this proves nothing"
    );
    let out = sb.run(&budgeted(n * 8, budget)).await;
    drop(load);
    assert!(out.over_budget, "{}", out.summary());
}
