//! `selfrepair mcp` end to end with rmcp's client over stdio: the three
//! tools listed with schemas, `run_tests` and `repair` on a real example
//! repo, `eval_sample` on HumanEval, and a bad argument as a tool error.

use super::common;
use super::fix_common;

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn repo(dir: &Path) -> PathBuf {
    let dst = dir.join("inv");
    fix_common::copy_tree(&fix_common::example("py-inventory"), &dst);
    git2::Repository::init(&dst).expect("git init");
    fix_common::commit_all(&dst, "init");
    dst
}

fn args(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().cloned().expect("object")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_run_tests_repair_and_eval_sample() {
    let tmp = tempfile::tempdir().expect("tmp");
    let r = repo(tmp.path());
    let transport = TokioChildProcess::new(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_selfrepair")).configure(|c| {
            c.arg("mcp")
                .env("SELFREPAIR_DATA_DIR", common::data_dir())
                .env_remove("SELFREPAIR_MODEL");
        }),
    )
    .expect("spawn selfrepair mcp");
    let client = ().serve(transport).await.expect("MCP handshake");

    let tools = client.list_all_tools().await.expect("tools/list");
    let names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    for want in ["run_tests", "repair", "eval_sample"] {
        assert!(names.contains(&want.to_string()), "{names:?}");
    }
    assert!(
        tools.iter().all(|t| t.output_schema.is_some()),
        "structured results need output schemas"
    );

    let call = |name: &'static str, a: Value| {
        let client = &client;
        async move {
            client
                .call_tool(CallToolRequestParams::new(name).with_arguments(args(a)))
                .await
        }
    };

    let res = call("run_tests", json!({"path": r.to_string_lossy()}))
        .await
        .expect("run_tests");
    let s = res.structured_content.expect("structured");
    assert_eq!(s["status"], "failed", "{s}");
    let failing: Vec<&str> = s["failing"]
        .as_array()
        .expect("failing")
        .iter()
        .filter_map(|f| f["id"].as_str())
        .collect();
    assert_eq!(failing.len(), 2, "{failing:?}");
    assert!(failing.iter().any(|f| f.ends_with("test_reorder_at_level")));

    let res = call(
        "repair",
        json!({"path": r.to_string_lossy(), "apply": true}),
    )
    .await
    .expect("repair");
    let s = res.structured_content.expect("structured");
    assert_eq!(s["outcome"], "fixed", "{s}");
    assert!(
        s["diff"]
            .as_str()
            .unwrap_or("")
            .contains("<= self.reorder_level")
    );
    assert_eq!(s["applied"], json!(["inventory/stock.py"]));
    let text = std::fs::read_to_string(r.join("inventory/stock.py")).expect("read");
    assert!(text.contains("return self.count(sku) <= self.reorder_level"));

    let he = common::humaneval();
    let canon = he[0]["canonical_solution"].as_str().expect("solution");
    let res = call(
        "eval_sample",
        json!({"dataset": "humaneval", "task_id": "HumanEval/0", "completion": canon}),
    )
    .await
    .expect("eval_sample");
    let s = res.structured_content.expect("structured");
    assert_eq!(s["passed"], true, "{s}");
    let res = call("eval_sample", json!({"dataset": "humaneval", "task_id": "HumanEval/0", "completion": "    return None\n"}))
        .await
        .expect("eval_sample");
    let s = res.structured_content.expect("structured");
    assert_eq!(s["passed"], false);
    assert!(
        s["result"].as_str().unwrap_or("").starts_with("failed"),
        "{s}"
    );

    // Bad arguments are errors naming the problem; the server keeps serving.
    let err = call("run_tests", json!({"path": "relative/dir"})).await;
    let msg = format!("{err:?}");
    assert!(msg.contains("not an absolute path"), "{msg}");
    let err = call(
        "eval_sample",
        json!({"dataset": "nope", "task_id": "x", "completion": "y"}),
    )
    .await;
    assert!(format!("{err:?}").contains("unknown dataset"), "{err:?}");
    assert_eq!(
        client.list_all_tools().await.expect("still serving").len(),
        tools.len()
    );
    client.cancel().await.expect("close");
}
