//! `selfrepair acp` end to end, driven by the official ACP TypeScript SDK
//! (`tests/acp/client.mjs`, installed on first use with `npm ci`): a repair
//! of an example repo with the permission request, the diff and the final
//! file; a declined write; cancellation mid test run; protocol errors;
//! two sessions at once; malformed JSON and a client that disconnects.

use super::fix_common;

use selfrepair_testkit::{Reply, TestServer};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The example repo, copied into a fresh git repository, with `extra` files.
fn repo(dir: &Path, name: &str, extra: &[(&str, &str)]) -> PathBuf {
    let dst = dir.join(name);
    fix_common::copy_tree(&fix_common::example("py-inventory"), &dst);
    for (rel, text) in extra {
        std::fs::write(dst.join(rel), text).expect("write extra file");
    }
    git2::Repository::init(&dst).expect("git init");
    fix_common::commit_all(&dst, "init");
    dst
}

fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A scripted OpenAI-compatible model: an explanation for the explain
/// prompt, a SEARCH/REPLACE patch for the patch prompt.
async fn model() -> TestServer {
    let s = TestServer::start().await.expect("server");
    s.respond_with(|msg, _| {
        Some(if msg.contains("SEARCH/REPLACE") {
            Reply::text(format!("```\n{PATCH}```\n")).with_usage(900, 40)
        } else {
            Reply::text(EXPLANATION).with_usage(800, 30)
        })
    });
    s
}

const EXPLANATION: &str =
    "needs_reorder compares with < but an item exactly at the reorder level must be reordered.";
const PATCH: &str = "inventory/stock.py\n<<<<<<< SEARCH\n        return self.count(sku) < self.reorder_level\n=======\n        return self.count(sku) <= self.reorder_level\n>>>>>>> REPLACE\n";

fn model_env(s: &TestServer) -> Vec<(&'static str, String)> {
    vec![
        ("SELFREPAIR_MODEL", "vllm:scripted".to_string()),
        ("SELFREPAIR_BASE_URL", s.openai_base()),
    ]
}

/// [`client`] on a blocking thread, so a scripted server on this runtime keeps serving.
async fn client_async(
    repo: &Path,
    scenario: &'static str,
    env: Vec<(&'static str, String)>,
) -> Value {
    let repo = repo.to_path_buf();
    tokio::task::spawn_blocking(move || client(&repo, scenario, &env))
        .await
        .expect("client thread")
}

/// The SDK pinned in `tests/acp/package-lock.json`, installed with `npm ci`
/// (npm on PATH) the first time a test needs it: once per `cargo test`, and
/// once across test processes (a lock file serialises them).
fn install_sdk(dir: &Path) {
    static ONCE: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut done = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    let sdk = dir.join("node_modules/@agentclientprotocol/sdk");
    if *done || sdk.is_dir() {
        *done = true;
        return;
    }
    let lock = std::fs::File::create(std::env::temp_dir().join("selfrepair-npm-ci.lock"))
        .expect("lock file");
    lock.lock().expect("lock");
    if !sdk.is_dir() {
        let o = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(dir)
            .output()
            .expect("npm (with Node.js 20+) must be on PATH to install the ACP SDK");
        assert!(
            o.status.success(),
            "npm ci --prefix tests/acp failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    *done = true;
}

/// Run the SDK client for `scenario` against a fresh `selfrepair acp`.
fn client(repo: &Path, scenario: &str, env: &[(&str, String)]) -> Value {
    let dir = root().join("tests/acp");
    install_sdk(&dir);
    let mut c = Command::new("node");
    c.arg(dir.join("client.mjs"))
        .arg(env!("CARGO_BIN_EXE_selfrepair"))
        .arg(repo)
        .arg(scenario)
        .current_dir(&dir)
        .env_remove("SELFREPAIR_MODEL")
        .env_remove("SELFREPAIR_BASE_URL");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("node (Node.js 20+) must be installed");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "client failed:\n{stderr}");
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "client output is not JSON ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&o.stdout)
        )
    })
}

fn kinds(updates: &Value) -> Vec<String> {
    updates
        .as_array()
        .expect("updates")
        .iter()
        .map(|u| {
            let k = u["sessionUpdate"].as_str().unwrap_or("?");
            match u["kind"].as_str() {
                Some(kind) => format!("{k}:{kind}"),
                None => k.to_string(),
            }
        })
        .collect()
}

const FIXED_LINE: &str = "return self.count(sku) <= self.reorder_level";

#[test]
fn repairs_a_repo_with_permission_diff_and_file_write() {
    let tmp = tempfile::tempdir().expect("tmp");
    let r = repo(tmp.path(), "inv", &[]);
    let out = client(&r, "fix", &[]);
    assert_eq!(out["response"]["stopReason"], "end_turn", "{out}");
    // The outcome in the vocabulary of `fix --json` and MCP.
    let outcome = &out["response"]["_meta"]["selfrepair"];
    assert_eq!(outcome["outcome"], "fixed", "{out}");
    assert!(outcome["reason_code"].is_null(), "{out}");
    assert!(
        !outcome["session"].as_str().unwrap_or("").is_empty(),
        "{out}"
    );
    assert_eq!(out["init"]["protocolVersion"], 1);
    assert_eq!(out["init"]["agentInfo"]["name"], "selfrepair");
    let k = kinds(&out["updates"]);
    for want in [
        "plan",
        "tool_call:execute",
        "tool_call_update",
        "tool_call:edit",
        "agent_message_chunk",
    ] {
        assert!(k.iter().any(|x| x == want), "no {want} update in {k:?}");
    }
    // The test run's update carries its status and output.
    let updates = out["updates"].as_array().expect("updates");
    assert!(
        updates
            .iter()
            .any(|u| u["sessionUpdate"] == "tool_call_update"
                && u["status"] == "failed"
                && u["content"].to_string().contains("test_reorder_at_level"))
    );
    // Every attempted patch is an edit tool call with diff content.
    let patch = updates
        .iter()
        .find(|u| {
            u["sessionUpdate"] == "tool_call"
                && u["toolCallId"]
                    .as_str()
                    .is_some_and(|i| i.starts_with("patch-"))
        })
        .expect("a patch tool call");
    assert_eq!(patch["kind"], "edit");
    assert_eq!(patch["content"][0]["type"], "diff", "{patch}");
    assert!(
        patch["content"][0]["path"]
            .as_str()
            .unwrap_or("")
            .ends_with("inventory/stock.py")
    );
    // Permission was asked for the write, with the diff.
    let perms = out["permissions"].as_array().expect("permissions");
    assert_eq!(perms.len(), 1, "{perms:?}");
    let diff = &perms[0]["toolCall"]["content"][0];
    assert_eq!(diff["type"], "diff");
    let target = r.join("inventory/stock.py");
    assert_eq!(diff["path"], target.to_string_lossy().as_ref());
    assert!(diff["newText"].as_str().unwrap_or("").contains(FIXED_LINE));
    assert!(!diff["oldText"].as_str().unwrap_or("").contains(FIXED_LINE));
    // Written through the client's fs/write_text_file, after reading the buffer.
    assert!(
        out["writes"][target.to_string_lossy().as_ref()].is_string(),
        "{}",
        out["writes"]
    );
    assert!(out["reads"].to_string().contains("stock.py"));
    let text = std::fs::read_to_string(&target).expect("read");
    assert!(text.contains(FIXED_LINE));
    // Only that file changed in the user's tree.
    assert_eq!(
        git(&r, &["status", "--porcelain"]).trim(),
        "M inventory/stock.py"
    );
}

#[test]
fn an_editor_path_with_a_venvs_pytest_is_what_the_agent_uses() {
    // An editor started from a shell whose PATH holds a virtualenv's pytest:
    // the agent runs the tests with that venv's python and its own pytest.
    let tmp = tempfile::tempdir().expect("tmp");
    let r = repo(tmp.path(), "inv", &[]);
    let v = tmp.path().join("venv");
    let made = Command::new("/usr/bin/python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&v)
        .status()
        .expect("venv");
    assert!(made.success());
    // pytest installed into it: the pinned wheels, unpacked into its site-packages.
    let provided = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(selfrepair::sandbox::runtime::RuntimeOptions::default().provided_pytest())
        .expect("the provided pytest");
    let lib = std::fs::read_dir(v.join("lib"))
        .expect("lib")
        .next()
        .expect("lib/pythonX.Y")
        .expect("entry")
        .path();
    let site = lib.join("site-packages");
    let copied = Command::new("cp")
        .arg("-r")
        .arg(format!("{}/.", provided.display()))
        .arg(&site)
        .status()
        .expect("cp");
    assert!(copied.success());
    let pytest = v.join("bin/pytest");
    std::fs::write(
        &pytest,
        format!(
            "#!{}\nimport sys\nfrom pytest import console_main\nsys.exit(console_main())\n",
            v.join("bin/python").display()
        ),
    )
    .expect("write pytest");
    let chmod = Command::new("chmod")
        .arg("755")
        .arg(&pytest)
        .status()
        .expect("chmod");
    assert!(chmod.success());
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", v.join("bin").display());
    let out = client(&r, "fix", &[("PATH", path)]);
    assert_eq!(out["response"]["stopReason"], "end_turn", "{out}");
    let updates = out["updates"].to_string();
    assert!(
        updates.contains(&format!(
            "Python: `{}` (the interpreter of {}, the pytest first on PATH)",
            v.join("bin/python").display(),
            pytest.display()
        )),
        "{updates}"
    );
    assert!(!updates.contains("pinned pytest"), "{updates}");
    let text = std::fs::read_to_string(r.join("inventory/stock.py")).expect("read");
    assert!(text.contains(FIXED_LINE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repairs_through_the_scripted_model_with_explanation_and_usage() {
    let s = model().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let r = repo(tmp.path(), "inv", &[]);
    let out = client_async(&r, "fix", model_env(&s)).await;
    assert_eq!(out["response"]["stopReason"], "end_turn", "{out}");
    let updates = out["updates"].as_array().expect("updates");
    let said: String = updates
        .iter()
        .filter(|u| u["sessionUpdate"] == "agent_message_chunk")
        .map(|u| u["content"]["text"].as_str().unwrap_or(""))
        .collect();
    assert!(
        said.contains(EXPLANATION),
        "the explanation is streamed: {said}"
    );
    let usage = updates
        .iter()
        .rev()
        .find(|u| u["sessionUpdate"] == "usage_update")
        .expect("a usage_update");
    assert!(usage["used"].as_u64().unwrap_or(0) >= 1700, "{usage}");
    assert_eq!(usage["cost"]["currency"], "USD");
    assert_eq!(out["permissions"].as_array().map(Vec::len), Some(1));
    let text = std::fs::read_to_string(r.join("inventory/stock.py")).expect("read");
    assert!(text.contains(FIXED_LINE));
    // The model saw the explain prompt, then the patch prompt; never a key.
    let reqs = s.requests();
    assert_eq!(reqs.len(), 2, "one explain and one patch call");
    assert!(reqs.iter().all(|q| q.header("authorization").is_none()));
    // The turn's fix session recorded both calls beside its log.
    let id = out["response"]["_meta"]["selfrepair"]["session"]
        .as_str()
        .expect("session id");
    let transcript = r.join(".git/selfrepair").join(id).join("transcript.jsonl");
    let entries = selfrepair::model::transcript::read_entries(&transcript).expect("the transcript");
    assert_eq!(entries.len(), 2, "{}", transcript.display());
    assert!(entries.iter().all(|e| e.task.as_deref() == Some(id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn why_does_a_test_fail_explains_only_that_test_and_changes_nothing() {
    let s = model().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let r = repo(tmp.path(), "inv", &[]);
    let before = std::fs::read(r.join("inventory/stock.py")).expect("read");
    let out = client_async(&r, "explain", model_env(&s)).await;
    assert_eq!(out["response"]["stopReason"], "end_turn", "{out}");
    assert_eq!(
        out["response"]["_meta"]["selfrepair"]["outcome"], "reported",
        "{out}"
    );
    assert!(out.to_string().contains(EXPLANATION));
    assert_eq!(out["permissions"], serde_json::json!([]));
    assert_eq!(
        std::fs::read(r.join("inventory/stock.py")).expect("read"),
        before
    );
    assert!(git(&r, &["status", "--porcelain"]).trim().is_empty());
    let reqs = s.requests();
    assert_eq!(reqs.len(), 1, "one explain call, no patch");
    let asked = reqs[0].last_user_message().unwrap_or_default();
    assert!(asked.contains("test_reorder_at_level"), "{asked}");
}

/// Run `scenario`, in which the write must not happen: one permission was
/// asked, nothing was written and the file is unchanged. Returns the failed
/// `apply-0` update.
fn refused_write(scenario: &str) -> serde_json::Value {
    let tmp = tempfile::tempdir().expect("tmp");
    let r = repo(tmp.path(), "inv", &[]);
    let before = std::fs::read(r.join("inventory/stock.py")).expect("read");
    let out = client(&r, scenario, &[]);
    assert_eq!(out["response"]["stopReason"], "end_turn", "{out}");
    assert_eq!(out["permissions"].as_array().map(Vec::len), Some(1));
    assert_eq!(out["writes"], serde_json::json!({}), "nothing written");
    assert_eq!(
        std::fs::read(r.join("inventory/stock.py")).expect("read"),
        before
    );
    out["updates"]
        .as_array()
        .expect("updates")
        .iter()
        .find(|u| u["toolCallId"] == "apply-0" && u["status"] == "failed")
        .cloned()
        .unwrap_or_else(|| panic!("the refused edit is reported failed: {}", out["updates"]))
}

#[test]
fn an_unsaved_buffer_is_never_overwritten() {
    let refused = refused_write("dirty");
    assert!(
        refused["content"].to_string().contains("unsaved edits"),
        "the refusal names the reason: {refused}"
    );
}

#[test]
fn a_declined_write_leaves_the_file_alone() {
    refused_write("decline");
}

#[test]
fn cancel_ends_the_turn_within_a_second_and_kills_the_tests() {
    let tmp = tempfile::tempdir().expect("tmp");
    let marker = "4242.123";
    let slow = format!(
        "import subprocess\n\ndef test_slow():\n    subprocess.run(['sleep', '{marker}'])\n"
    );
    let r = repo(tmp.path(), "slow", &[("tests/test_slow.py", &slow)]);
    let started = std::time::Instant::now();
    let out = client(&r, "cancel", &[]);
    assert_eq!(out["response"]["stopReason"], "cancelled", "{out}");
    assert_eq!(
        out["response"]["_meta"]["selfrepair"]["outcome"], "cancelled",
        "{out}"
    );
    let ms = out["cancelToStopMs"].as_u64().expect("ms");
    assert!(ms < 1000, "the turn ended {ms} ms after session/cancel");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(
        selfrepair_testkit::procs::wait_for(Duration::from_secs(3), || {
            selfrepair_testkit::procs::with_cmdline(marker).is_empty()
        }),
        "a test process survived the cancel"
    );
}

#[test]
fn protocol_errors_are_json_rpc_errors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let r = repo(tmp.path(), "inv", &[]);
    let out = client(&r, "protocol", &[]);
    assert_eq!(out["unknownMethod"]["code"], -32601, "{out}");
    assert_eq!(out["badParams"]["code"], -32602, "{out}");
    assert_eq!(out["relativeCwd"]["code"], -32602, "{out}");
    assert_eq!(out["unknownSession"]["code"], -32002, "{out}");
}

#[test]
fn two_sessions_at_once_do_not_interfere() {
    let tmp = tempfile::tempdir().expect("tmp");
    let a = repo(tmp.path(), "inv", &[]);
    let b = repo(tmp.path(), "inv-b", &[]);
    let out = client(&a, "two", &[]);
    let sessions = out["sessions"].as_array().expect("sessions");
    assert_ne!(sessions[0], sessions[1]);
    for r in out["responses"].as_array().expect("responses") {
        assert_eq!(r["stopReason"], "end_turn");
    }
    for dir in [&a, &b] {
        let text = std::fs::read_to_string(dir.join("inventory/stock.py")).expect("read");
        assert!(text.contains(FIXED_LINE), "{} not fixed", dir.display());
        assert_eq!(
            git(dir, &["status", "--porcelain"]).trim(),
            "M inventory/stock.py"
        );
    }
    // Every update names its session, and both sessions streamed.
    let ids: std::collections::BTreeSet<String> = out["updates"]
        .as_array()
        .expect("updates")
        .iter()
        .map(|u| u["sessionId"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
}

#[test]
fn malformed_json_gets_a_parse_error_and_eof_ends_cleanly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_selfrepair"))
        .arg("acp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    stdin.write_all(b"{this is not json\n").expect("write");
    let line = lines.next().expect("a reply").expect("utf-8");
    let v: Value = serde_json::from_str(&line).expect("the reply is JSON");
    assert_eq!(v["error"]["code"], -32700, "{v}");
    // Still serving: a valid request after the garbage is answered.
    stdin
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":1}}\n")
        .expect("write");
    let line = lines.next().expect("a reply").expect("utf-8");
    let v: Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(v["id"], 1);
    assert_eq!(v["result"]["protocolVersion"], 1, "{v}");
    drop(stdin);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "exit {status:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "selfrepair acp did not exit after EOF"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
