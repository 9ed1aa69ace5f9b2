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

/// This test's turn with the host: no other test here loads it meanwhile,
/// so what is measured before [`Turn::load`] is measured unloaded.
struct Turn(tokio::sync::MutexGuard<'static, ()>);

impl Turn {
    async fn take() -> Turn {
        Turn(ONE_LOAD.lock().await)
    }

    /// Start the busy loops.
    fn load(self) -> Load {
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
        Load {
            loops,
            _one: self.0,
        }
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

    let load = Turn::take().await.load();
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
    let budget = Duration::from_millis(450);
    let budgeted = |n: u64| {
        let mut r = script(&counting(n));
        r.budget = Some(budget);
        r
    };
    let turn = Turn::take().await;
    let n = iterations_for(&*sb, budget / 3).await;
    let load = turn.load();
    let n = passes_though_slowed(&*sb, budgeted, n, budget).await;
    let out = sb.run(&budgeted(n * 8)).await;
    drop(load);
    assert!(out.over_budget, "{}", out.summary());
}

/// Run `request(n)` on the loaded host, checking that it passes uncut,
/// until its wall time passes `past`: if other tests slowed the calibration,
/// the program is shorter than meant, so once more at twice the work (at
/// most ~2/3 of the budget in its own time). The work that got there.
async fn passes_though_slowed(
    sb: &dyn Sandbox,
    request: impl Fn(u64) -> RunRequest,
    mut n: u64,
    past: Duration,
) -> u64 {
    let kind = sb.kind();
    for _ in 0..2 {
        let out = sb.run(&request(n)).await;
        assert_eq!(out.status, Status::Passed, "{kind}: {}", out.summary());
        assert!(!out.over_budget, "{kind}: {}", out.summary());
        if out.duration_ms > past.as_secs_f64() * 1e3 {
            return n;
        }
        n *= 2;
    }
    panic!("{kind}: the busy loops did not slow the run past {past:?}, so this proves nothing")
}

/// The number of loop iterations for which a run in `sb` takes about
/// `target` of its own time in all (CPython's start included), from the
/// fastest of three runs of a trivial program and of a probe.
async fn iterations_for(sb: &dyn Sandbox, target: Duration) -> u64 {
    let fastest = |program: String| async move {
        let mut best = f64::MAX;
        for _ in 0..3 {
            let out = sb.run(&script(&program)).await;
            assert_eq!(out.status, Status::Passed, "{}", out.summary());
            best = best.min(out.duration_ms);
        }
        best
    };
    let probe = 200_000u64;
    let start = fastest("print(True)\n".into()).await;
    let probed = fastest(counting(probe)).await;
    let per = ((probed - start) / probe as f64).max(1e-6);
    ((target.as_secs_f64() * 1e3 - start).max(per) / per) as u64
}

/// A program that counts to `n`.
fn counting(n: u64) -> String {
    format!("s = 0\nfor i in range({n}):\n    s += i\nprint(s >= 0)\n")
}

/// A wasm run's time limit stays wall time: a guest asleep in a host call is
/// on no thread's clock, so own time would let a program that sleeps past its
/// limit (but within three limits) pass. In both wasm sandboxes, a sleep of
/// twice the limit times out at the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_sleep_past_the_limit_times_out_at_it() {
    for kind in [SandboxKind::Wasm, SandboxKind::WasmFull] {
        let sb = common::sandbox(kind).await;
        let mut r = script("import time\ntime.sleep(2)\nprint('late')\n");
        r.limits.timeout = Duration::from_secs(1);
        let out = sb.run(&r).await;
        assert_eq!(out.status, Status::Timeout, "{kind}: {}", out.summary());
        assert!(
            out.duration_ms < 1800.0,
            "{kind}: {:.0} ms",
            out.duration_ms
        );
    }
}
