//! `selfrepair bench` / `report` / `merge` end to end: 10 HumanEval tasks
//! against the scripted OpenAI-compatible server (wrong first answers, then
//! explanations and correct repairs), again by replay, after a kill -9 and
//! resume, and split into shards then merged.

use super::common;

use selfrepair_testkit::{Reply, TestServer};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

const TASKS: usize = 10;

struct Script {
    /// (prompt, canonical solution body, entry point) of HumanEval/0..9.
    tasks: Vec<(String, String, String)>,
}

impl Script {
    fn load() -> Script {
        let he = common::humaneval();
        Script {
            tasks: he
                .iter()
                .take(TASKS)
                .map(|r| {
                    (
                        r["prompt"].as_str().expect("prompt").to_string(),
                        r["canonical_solution"]
                            .as_str()
                            .expect("solution")
                            .to_string(),
                        r["entry_point"].as_str().expect("entry").to_string(),
                    )
                })
                .collect(),
        }
    }

    /// Tasks 0-4: a wrong program, then a correct repair. 5-6: right at once.
    /// 7: wrong, and the repair is wrong too. 8: no code at all. 9: a
    /// program that redefines the tests' `check`.
    fn reply(&self, msg: &str) -> Option<Reply> {
        let i = self
            .tasks
            .iter()
            .position(|(p, _, _)| msg.contains(p.trim_end()))?;
        let (prompt, body, entry) = &self.tasks[i];
        let right = format!("```python\n{prompt}{body}```");
        let wrong = format!("```python\n{prompt}    return None\n```");
        if msg.contains("### INCORRECT CODE") {
            let why =
                format!("The function `{entry}` returns None instead of computing the result.");
            return Some(Reply::text(match i {
                7 => format!("{why}\n{wrong}"),
                _ => format!("{why}\n{right}"),
            }));
        }
        Some(Reply::text(match i {
            5 | 6 => right,
            8 => "I am not able to write this function.".to_string(),
            9 => format!("```python\n{prompt}{body}\ndef check(candidate):\n    pass\n```"),
            _ => wrong,
        }))
    }
}

async fn server(delay: Option<Duration>) -> TestServer {
    let s = TestServer::start().await.expect("server");
    let script = Script::load();
    s.respond_with(move |msg, _| {
        let r = script.reply(msg)?;
        Some(match delay {
            Some(d) => Reply::slow(d, r),
            None => r,
        })
    });
    s
}

fn bench_cmd(base: &str, out: &Path, extra: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_selfrepair"));
    c.args([
        "bench",
        "humaneval",
        "--model",
        "vllm:scripted",
        "--base-url",
        base,
    ])
    .args([
        "--np", "2", "--nfr", "1", "--tasks", "0-9", "--quiet", "--out",
    ])
    .arg(out)
    .args(extra)
    .env("SELFREPAIR_DATA_DIR", common::data_dir())
    .kill_on_drop(true);
    c
}

async fn bench(base: &str, out: &Path, extra: &[&str]) -> Output {
    bench_cmd(base, out, extra)
        .output()
        .await
        .expect("run selfrepair bench")
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn results(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("results.json")).expect("results.json");
    serde_json::from_str(&text).expect("results.json is JSON")
}

fn nodes(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("nodes.jsonl"))
        .expect("nodes.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("node line is JSON"))
        .collect()
}

/// results.json without what legitimately differs between equal runs.
fn comparable(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("model");
        o.remove("feedback_model");
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_model_repairs_humaneval_then_replay_reproduces_it() {
    let s = server(None).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("run");
    let o = bench(&s.openai_base(), &run, &["-j", "4"]).await;
    ok(&o);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("solved 7/10"), "{stdout}");

    let r = results(&run);
    let t = &r["totals"];
    assert_eq!(t["tasks"], 10);
    assert_eq!(t["solved"], 7);
    // Task 8's two programs have no code, task 9's two are rejected.
    assert_eq!(t["no_code"], 2);
    assert_eq!(t["rejected"], 2);
    // Tasks 0-4 and 7 fail twice each: 12 joint repairs.
    assert_eq!(t["nodes"], 20 + 12);
    assert_eq!(r["per_attempt"], serde_json::json!([0.2, 0.7]));
    assert_eq!(r["pass_at_k"]["pass@1"], 0.2);
    let tr = &r["transitions"];
    assert_eq!(tr["incorrect_to_correct"], 10);
    assert_eq!(tr["incorrect_to_incorrect"], 2);
    assert_eq!(tr["correct_to_incorrect"], 0);
    assert_eq!(r["errors"]["no_code"]["programs"], 2);
    assert_eq!(r["errors"]["rejected"]["programs"], 2);
    assert!(
        r["errors"]["wrong_answer"]["programs"]
            .as_u64()
            .unwrap_or(0)
            >= 10,
        "{}",
        r["errors"]
    );
    assert!(t["generated_tokens"].as_u64().unwrap_or(0) > 0);
    for f in [
        "report.md",
        "pass_at_t.svg",
        "pass_at_t.png",
        "config.toml",
        "transcript.jsonl",
    ] {
        let p = run.join(f);
        assert!(
            p.metadata().map(|m| m.len() > 100).unwrap_or(false),
            "{} missing or empty",
            p.display()
        );
    }

    // Every node records what the issue asks, and repairs saw the exact feedback.
    let ns = nodes(&run);
    assert_eq!(ns.len(), 32);
    let repair = ns
        .iter()
        .find(|n| n["task"] == "HumanEval/0" && n["kind"] == "joint")
        .expect("a joint repair of task 0");
    for key in [
        "parent",
        "model",
        "template",
        "temperature",
        "completion",
        "code",
        "tokens",
        "cost_usd",
        "latency_ms",
        "execution",
    ] {
        assert!(!repair[key].is_null(), "node lacks {key}: {repair}");
    }
    assert_eq!(repair["template"]["name"], "joint.chat.txt");
    assert!(
        repair["tokens"]["explanation"].as_u64().unwrap_or(0) > 0,
        "{repair}"
    );
    let parent = ns
        .iter()
        .find(|n| {
            n["task"] == "HumanEval/0" && Some(n["id"].as_str()) == Some(repair["parent"].as_str())
        })
        .expect("parent");
    let fb = parent["feedback"].as_str().expect("the parent's feedback");
    assert!(fb.contains("returned None"), "{fb}");
    let sent = s
        .requests()
        .iter()
        .filter_map(|r| r.last_user_message())
        .find(|m| m.contains("### INCORRECT CODE") && m.contains(fb))
        .is_some();
    assert!(
        sent,
        "the feedback in the node is the text the model was shown"
    );

    // The same run again by replay: no server, same results.
    let replayed = tmp.path().join("replayed");
    let transcript = run.join("transcript.jsonl");
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_selfrepair"));
    c.args(["bench", "humaneval", "--model"])
        .arg(format!("replay:{}", transcript.display()))
        .args([
            "--np", "2", "--nfr", "1", "--tasks", "0-9", "-j", "4", "--quiet", "--out",
        ])
        .arg(&replayed)
        .env("SELFREPAIR_DATA_DIR", common::data_dir());
    let before = s.request_count();
    let o = c.output().await.expect("replay");
    ok(&o);
    assert_eq!(s.request_count(), before, "replay must not call the server");
    assert_eq!(comparable(results(&replayed)), comparable(results(&run)));

    // `report` recomputes the same numbers offline; a larger shape than recorded is refused.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_selfrepair"))
        .args(["report", "--json"])
        .arg(&run)
        .output()
        .expect("report");
    ok(&o);
    let again: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(again, results(&run));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_selfrepair"))
        .args(["report", "--np", "5", "--nfr", "1"])
        .arg(&run)
        .output()
        .expect("report");
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("frozen"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_tree_gives_bootstrap_estimates() {
    let s = server(None).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("frozen");
    ok(&bench(&s.openai_base(), &run, &["--frozen", "3x2", "-j", "4"]).await);
    let r = results(&run);
    assert_eq!(r["frozen"], true);
    // Every failing program is expanded, even where another program passed:
    // tasks 0-4 and 7 have 3 failing programs with 2 repairs each.
    assert_eq!(r["totals"]["nodes"], 30 + 6 * 3 * 2);
    let pts = r["pass_at_t"].as_array().expect("points");
    // Only (1, 1), in both modes: (2, 1) and the recorded (3, 2) exceed half
    // the tree, where drawing with replacement distorts, and are named.
    assert_eq!(pts.len(), 2, "{pts:?}");
    let skipped = r["skipped"].to_string();
    assert!(
        skipped.contains("(2,1)") && skipped.contains("(3,2)"),
        "{skipped}"
    );
    assert!(pts.iter().all(|p| p["estimate"] == "bootstrap"));
    let p11 = pts
        .iter()
        .find(|p| p["np"] == 1 && p["nf"] == 1 && p["mode"] == "sequential")
        .expect("the (1,1) point");
    // Deterministic script: every task's tree is the same whatever is
    // resampled, so the bootstrap is exact: 7 of 10 pass.
    let rate = p11["pass_rate"].as_f64().expect("rate");
    assert!((rate - 0.7).abs() < 1e-9, "{rate}");
    assert!(p11["pass_std"].as_f64().expect("std") < 1e-9);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_selfrepair"))
        .args(["report", "--np", "2", "--nfr", "2"])
        .arg(&run)
        .output()
        .expect("report");
    ok(&o);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("requested (2,2): n_p 2 > half the recorded 3"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // A synthetic frozen 50 x 25 tree of 30 tasks in the same run format:
    // without repair (--nfr 0) the tree is the baseline, so the ratio is 1
    // in both modes, whether the visible tests are the hidden ones or, as in
    // MBPP, a weaker subset that lets wrong programs through.
    let template = nodes(&run)
        .into_iter()
        .find(|n| n["kind"] == "initial" && n["execution"]["result"] == "ran")
        .expect("a program node to copy");
    for protocol in [false, true] {
        let dir = tmp.path().join(format!("synthetic-{protocol}"));
        synthetic_run(&run, &dir, &template, protocol);
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_selfrepair"))
            .args(["report", "--json", "--np", "25", "--nfr", "0"])
            .arg(&dir)
            .output()
            .expect("report");
        ok(&o);
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        let r: Value = serde_json::from_str(&text).expect("json");
        for mode in ["batched", "sequential"] {
            let p = r["pass_at_t"]
                .as_array()
                .expect("points")
                .iter()
                .find(|p| p["mode"] == mode && p["np"] == 25 && p["nf"] == 0)
                .expect("the (25, 0) point");
            let ratio = p["ratio"].as_f64().expect("ratio");
            assert!((ratio - 1.0).abs() <= 0.02, "{mode} {protocol}: {p}");
            let (lo, hi) = (
                p["ratio_ci"]["lo"].as_f64().expect("lo"),
                p["ratio_ci"]["hi"].as_f64().expect("hi"),
            );
            assert!(lo >= 0.98 && hi <= 1.02, "{p}");
            for key in ["pass_rate", "tokens", "pass_ci", "tokens_ci", "samples"] {
                assert!(!p[key].is_null(), "{key}: {p}");
            }
            // A repair point has a ratio with an interval, or is O.O.B.
            let q = r["pass_at_t"]
                .as_array()
                .expect("points")
                .iter()
                .find(|p| p["mode"] == mode && p["np"] == 10 && p["nf"] == 1)
                .expect("(10, 1)");
            let oob = q["ratio_oob_share"].as_f64().expect("a share");
            assert!(
                q["ratio_ci"]["lo"].is_f64() || oob > 0.05,
                "an interval unless O.O.B. too often: {q}"
            );
        }
        // pass@k keys in numeric order.
        let (k2, k10) = (text.find("\"pass@2\""), text.find("\"pass@10\""));
        assert!(k2.is_some() && k2 < k10, "pass@2 before pass@10");
        assert_eq!(r["baseline"].as_array().map(Vec::len), Some(2 * 50));
        // Beside each baseline point, unbiased pass@k: equal at k = 1; under
        // the protocol the oracle (any hidden pass among k) is far above
        // what the first visible pass gives, which is why it is no baseline.
        let b = |k: usize| {
            let p = &r["baseline"][k - 1];
            (
                p["pass_rate"].as_f64().expect("rate"),
                p["unbiased_pass_at_k"].as_f64().expect("pass@k"),
            )
        };
        assert!((b(1).0 - b(1).1).abs() < 0.03, "{:?}", b(1));
        if protocol {
            assert!(b(25).1 > b(25).0 + 0.1, "{:?}", b(25));
        }
        // The cut tree is named, counted and left out by the stated rule.
        let incomplete = r["incomplete"].as_array().expect("incomplete");
        if protocol {
            assert!(incomplete.is_empty(), "{incomplete:?}");
        } else {
            assert_eq!(incomplete.len(), 1, "{incomplete:?}");
            assert_eq!(incomplete[0]["task"], "Synth/10");
            assert_eq!(
                incomplete[0]["gaps"][0],
                "p0 failed and has 3 of 25 repairs"
            );
            assert!(
                r["incomplete_rule"]
                    .as_str()
                    .is_some_and(|s| s.contains("left out"))
            );
        }
        assert_eq!(r["totals"]["tasks"], 30);
    }
}

/// Write `dir`: `run`'s config made a frozen 50 x 25 joint tree, and 30
/// synthetic tasks copied from `template`, with initial programs passing
/// with probability 0 to 1 by task and repairs with 0.05 to 0.45; under
/// `protocol` a wrong program passes the visible test a quarter of the time,
/// else one program of Synth/10 lacks most of its repairs.
fn synthetic_run(run: &Path, dir: &Path, template: &Value, protocol: bool) {
    use rand::{RngExt, SeedableRng};
    std::fs::create_dir_all(dir).expect("mkdir");
    let cfg = std::fs::read_to_string(run.join("config.toml")).expect("config");
    let mut cfg: toml::Table = toml::from_str(&cfg).expect("toml");
    let shape = cfg
        .get_mut("shape")
        .and_then(|s| s.as_table_mut())
        .expect("[shape]");
    for (k, v) in [("np", 50), ("nf", 25), ("nr", 1), ("depth", 1)] {
        shape.insert(k.into(), toml::Value::Integer(v));
    }
    shape.insert("joint".into(), toml::Value::Boolean(true));
    shape.insert("frozen".into(), toml::Value::Boolean(true));
    cfg.insert(
        "visible".into(),
        toml::Value::String(if protocol { "protocol" } else { "hidden" }.into()),
    );
    std::fs::write(
        dir.join("config.toml"),
        toml::to_string(&cfg).expect("toml"),
    )
    .expect("write");
    let mut rng = rand::rngs::StdRng::seed_from_u64(18);
    let ps = [0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9, 1.0];
    let mut lines = String::new();
    let mut node = |task: &str,
                    id: &str,
                    parent: Option<&str>,
                    pass: f64,
                    base: u64,
                    rng: &mut rand::rngs::StdRng| {
        let hidden = rng.random_range(0.0..1.0) < pass;
        let visible = hidden || (protocol && rng.random_range(0.0..1.0) < 0.25);
        let mut n = template.clone();
        n["task"] = task.into();
        n["id"] = id.into();
        n["parent"] = parent.map_or(Value::Null, Value::from);
        n["kind"] = if parent.is_some() { "joint" } else { "initial" }.into();
        n["depth"] = u32::from(parent.is_some()).into();
        n["completion"] = "".into();
        n["tokens"]["program"] = (base + rng.random_range(0..150u64)).into();
        n["tokens"]["explanation"] = 0.into();
        n["execution"]["visible"]["passed"] = visible.into();
        n["execution"]["hidden"]["passed"] = hidden.into();
        lines.push_str(&format!("{n}\n"));
        visible
    };
    for t in 0..30 {
        let task = format!("Synth/{t}");
        let (p, q) = (ps[t % 10], 0.05 + 0.1 * (t % 5) as f64);
        for i in 0..50 {
            let id = format!("p{i}");
            if !node(&task, &id, None, p, 100, &mut rng) {
                // As after a budget stop: one failing program of one task
                // has 3 of its 25 repairs.
                let cut = !protocol && t == 10 && i == 0;
                for j in 0..if cut { 3 } else { 25 } {
                    node(&task, &format!("{id}.j{j}"), Some(&id), q, 150, &mut rng);
                }
            }
        }
    }
    std::fs::write(dir.join("nodes.jsonl"), lines).expect("write nodes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_then_resume_equals_an_uninterrupted_run() {
    let s = server(Some(Duration::from_millis(150))).await;
    let tmp = tempfile::tempdir().expect("tempdir");

    let whole = tmp.path().join("whole");
    ok(&bench(&s.openai_base(), &whole, &["-j", "2"]).await);
    let uninterrupted_calls = s.request_count();

    let killed = tmp.path().join("killed");
    let mut child = bench_cmd(&s.openai_base(), &killed, &["-j", "2"])
        .spawn()
        .expect("spawn");
    let nodes_file = killed.join("nodes.jsonl");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let n = std::fs::read_to_string(&nodes_file)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if n >= 8 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run wrote no nodes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = child.id().expect("pid") as i32;
    // SAFETY: signalling our own child.
    unsafe { libc_kill(pid) };
    let status = child.wait().await.expect("wait");
    assert!(!status.success(), "the run was killed");
    let nodes_at_kill = nodes(&killed).len();
    assert!(
        nodes_at_kill < 32,
        "killed before the end ({nodes_at_kill} nodes)"
    );
    let recorded_at_kill = std::fs::read_to_string(killed.join("transcript.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0);

    let before = s.request_count();
    let o = bench(&s.openai_base(), &killed, &["-j", "2", "--resume"]).await;
    ok(&o);
    let resumed_calls = s.request_count() - before;
    assert_eq!(
        resumed_calls,
        uninterrupted_calls - recorded_at_kill,
        "the resumed run repeats no call that had completed"
    );
    assert_eq!(nodes(&killed).len(), 32, "no node lost or repeated");
    assert_eq!(results(&killed), results(&whole));

    // Without --resume an existing run dir is refused, not overwritten.
    let o = bench(&s.openai_base(), &killed, &[]).await;
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--resume"));
}

unsafe fn libc_kill(pid: i32) {
    unsafe extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    // SAFETY: plain syscall wrapper; SIGKILL = 9.
    unsafe {
        kill(pid, 9);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_merged_equal_one_run() {
    let s = server(None).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let one = tmp.path().join("one");
    ok(&bench(&s.openai_base(), &one, &[]).await);
    let mut shard_dirs: Vec<PathBuf> = Vec::new();
    for i in 0..3 {
        let d = tmp.path().join(format!("shard{i}"));
        ok(&bench(&s.openai_base(), &d, &["--shard", &format!("{i}/3")]).await);
        shard_dirs.push(d);
    }
    let merged = tmp.path().join("merged");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_selfrepair"))
        .arg("merge")
        .arg(&merged)
        .args(&shard_dirs)
        .output()
        .expect("merge");
    ok(&o);
    assert_eq!(results(&merged), results(&one));
    // The same shard twice is refused.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_selfrepair"))
        .arg("merge")
        .arg(tmp.path().join("dup"))
        .args([&shard_dirs[0], &shard_dirs[0]])
        .output()
        .expect("merge");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("also in another shard"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_named_error() {
    let s = server(None).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = s.openai_base();
    // `bench humaneval --model vllm:x` against `url`, plus `extra`.
    let args = |dataset: &str, url: &str, extra: &[&str]| -> Vec<String> {
        ["bench", dataset, "--model", "vllm:x", "--base-url", url]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let dead = "http://127.0.0.1:9/v1";
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            args("humaneval-nope", &base, &[]),
            "unknown dataset 'humaneval-nope'",
        ),
        (args("humaneval", &base, &["--tasks", "5-3"]), "empty"),
        (
            args("humaneval", &base, &["--tasks", "170"]),
            "out of range",
        ),
        (
            args("humaneval", &base, &["--budget-calls", "0"]),
            "budget of 0",
        ),
        (
            args("humaneval", &base, &["--frozen", "0x1"]),
            "--frozen 0x1: expected NPxNFR with both at least 1",
        ),
        (
            args("humaneval", &base, &["--frozen", "fifty"]),
            "--frozen fifty: expected NPxNFR",
        ),
        (
            args(
                "humaneval",
                dead,
                &["--tasks", "0", "--max-retries", "0", "--timeout-secs", "5"],
            ),
            "model call for HumanEval/0",
        ),
    ];
    for (i, (args, needle)) in cases.into_iter().enumerate() {
        let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_selfrepair"))
            .args(&args)
            .arg("--out")
            .arg(tmp.path().join(format!("bad{i}")))
            .arg("--quiet")
            .env("SELFREPAIR_DATA_DIR", common::data_dir())
            .output()
            .await
            .expect("run");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(
            err.contains(needle),
            "{args:?}: expected '{needle}' in:\n{err}"
        );
    }
}

/// MBPP follows Self-Debugging: the prompt and the feedback show only the
/// first of the three asserts, and all three judge. A program that passes the
/// visible assert but not the others is the tree's (wrong) answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mbpp_shows_one_assert_and_judges_on_all_three() {
    let s = TestServer::start().await.expect("server");
    s.respond_with(|msg, _| {
        let code = if msg.contains("remove_Occ") {
            // Right on the visible assert only.
            "def remove_Occ(s, ch):\n    return \"heo\" if s == \"hello\" else s\n"
        } else if msg.contains("### INCORRECT CODE") {
            "def sort_matrix(M):\n    return sorted(M, key=sum)\n"
        } else {
            "def sort_matrix(M):\n    return M\n"
        };
        Some(Reply::text(format!("```python\n{code}```")))
    });
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("mbpp");
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_selfrepair"));
    c.args(["bench", "mbpp", "--model", "vllm:scripted", "--base-url"])
        .arg(s.openai_base())
        .args([
            "--tasks", "10-11", "--np", "1", "--nfr", "1", "--quiet", "--out",
        ])
        .arg(&run)
        .env("SELFREPAIR_DATA_DIR", common::data_dir());
    let o = c.output().await.expect("bench");
    ok(&o);
    let r = results(&run);
    assert_eq!(r["totals"]["tasks"], 2);
    assert_eq!(r["totals"]["solved"], 1, "{r}");

    let msgs: Vec<String> = s
        .requests()
        .iter()
        .filter_map(|q| q.last_user_message())
        .collect();
    let gen_occ = msgs
        .iter()
        .find(|m| m.contains("remove_Occ"))
        .expect("the remove_Occ prompt");
    assert!(
        gen_occ.contains(r#"assert remove_Occ("hello","l") == "heo""#),
        "{gen_occ}"
    );
    assert!(
        !gen_occ.contains("abcda"),
        "only the first assert is shown: {gen_occ}"
    );
    let repair = msgs
        .iter()
        .find(|m| m.contains("### INCORRECT CODE"))
        .expect("a repair prompt for sort_matrix");
    assert!(
        repair.contains("sort_matrix([[1, 2, 3], [2, 4, 5], [1, 1, 1]])"),
        "{repair}"
    );
    assert!(
        !repair.contains("[-2, 4, -5]"),
        "hidden asserts stay hidden: {repair}"
    );

    let ns = nodes(&run);
    let occ = ns
        .iter()
        .find(|n| n["task"] == "11")
        .expect("task 11 (remove_Occ)");
    assert_eq!(occ["execution"]["visible"]["passed"], true);
    assert_eq!(occ["execution"]["hidden"]["passed"], false);
    assert!(
        !ns.iter().any(|n| n["task"] == "11" && n["kind"] == "joint"),
        "a visible pass is not repaired"
    );
}

/// Which prompt a request is, from its last user message (chat or completion
/// templates): an explanation only, a repair after an explanation, a joint
/// explanation-plus-repair, or an initial program.
#[derive(Debug, PartialEq, Clone, Copy)]
enum Asked {
    Explain,
    Repair,
    Joint,
    Initial,
}

fn asked(msg: &str) -> Asked {
    if msg.contains("### FIXED CODE") || msg.contains("### Good solution:") {
        Asked::Repair
    } else if msg.contains("### EXPLANATION AND FIXED CODE")
        || msg.contains("What is wrong, then the good solution")
    {
        Asked::Joint
    } else if msg.contains("### EXPLANATION") || msg.contains("What is wrong (in words") {
        Asked::Explain
    } else {
        Asked::Initial
    }
}

/// HumanEval/0..9 with a wrong first answer (`return None`); explanations
/// are words; a repair is right unless `wrong_repair(message)` says so, in
/// which case it is `return None  # still wrong`.
async fn shaped_server(wrong_repair: fn(&str) -> bool) -> TestServer {
    let s = TestServer::start().await.expect("server");
    let script = Script::load();
    s.respond_with(move |msg, _| {
        let (prompt, body, _) = script
            .tasks
            .iter()
            .find(|(p, _, _)| msg.contains(p.trim_end()))?;
        let right = format!("```python\n{prompt}{body}```");
        let wrong = format!("```python\n{prompt}    return None  # still wrong\n```");
        Some(Reply::text(match asked(msg) {
            Asked::Initial => format!("```python\n{prompt}    return None\n```"),
            Asked::Explain => "The function returns None instead of the result.".to_string(),
            Asked::Repair | Asked::Joint => {
                let code = if wrong_repair(msg) { wrong } else { right };
                format!("It returned None.\n{code}")
            }
        }))
    });
    s
}

/// `bench humaneval` on `tasks` against `base`, the shape given by `args`.
async fn bench_shape(base: &str, out: &Path, tasks: &str, args: &[&str]) -> Output {
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_selfrepair"))
        .args([
            "bench",
            "humaneval",
            "--model",
            "vllm:scripted",
            "--base-url",
        ])
        .arg(base)
        .args(["--tasks", tasks, "--quiet", "-j", "2", "--out"])
        .arg(out)
        .args(args)
        .env("SELFREPAIR_DATA_DIR", common::data_dir())
        .output()
        .await
        .expect("run selfrepair bench");
    ok(&o);
    o
}

fn kind_of<'a>(ns: &'a [Value], kind: &str) -> Vec<&'a Value> {
    ns.iter().filter(|n| n["kind"] == kind).collect()
}

fn children<'a>(ns: &'a [Value], parent: &Value) -> Vec<&'a Value> {
    ns.iter()
        .filter(|n| n["task"] == parent["task"] && n["parent"] == parent["id"])
        .collect()
}

/// --nf 2 --nr 3: each failing initial program gets exactly 2 explanation
/// (feedback) nodes, each with exactly 3 repairs below it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nf_nr_give_nf_explanations_each_with_nr_repairs() {
    let s = shaped_server(|_| false).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("nfnr");
    bench_shape(
        &s.openai_base(),
        &run,
        "0-1",
        &["--np", "2", "--nf", "2", "--nr", "3"],
    )
    .await;
    let ns = nodes(&run);
    let initial = kind_of(&ns, "initial");
    assert_eq!(initial.len(), 4, "2 tasks x n_p 2");
    assert!(kind_of(&ns, "joint").is_empty(), "--nf is not joint");
    for p in &initial {
        assert_eq!(p["execution"]["hidden"]["passed"], false, "{p}");
        let fbs = children(&ns, p);
        assert_eq!(fbs.len(), 2, "n_f explanations below {}", p["id"]);
        for f in fbs {
            assert_eq!(f["kind"], "feedback", "{f}");
            assert!(f["execution"].is_null(), "an explanation runs nothing");
            assert_eq!(f["depth"], 1);
            let rs = children(&ns, f);
            assert_eq!(rs.len(), 3, "n_r repairs below {}", f["id"]);
            for r in rs {
                assert_eq!(r["kind"], "repair", "{r}");
                assert_eq!(r["execution"]["hidden"]["passed"], true, "{r}");
            }
        }
    }
    assert_eq!(ns.len(), 4 + 4 * 2 + 4 * 2 * 3);
    assert_eq!(results(&run)["totals"]["solved"], 2);
    let explains = s
        .requests()
        .iter()
        .filter_map(|r| r.last_user_message())
        .filter(|m| asked(m) == Asked::Explain)
        .count();
    assert!(explains > 0, "explanations asked for separately");
}

/// --style completion: every request is one user message in the completion
/// templates' shape (no system message), and the run still repairs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_style_sends_one_user_message_and_still_repairs() {
    let s = shaped_server(|_| false).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("completion");
    bench_shape(
        &s.openai_base(),
        &run,
        "0-1",
        &["--np", "1", "--nfr", "1", "--style", "completion"],
    )
    .await;
    let reqs = s.requests();
    assert!(!reqs.is_empty());
    let mut joint = 0;
    for r in &reqs {
        let body = r.json().expect("JSON request");
        let msgs = body["messages"].as_array().expect("messages");
        assert_eq!(msgs.len(), 1, "one message: {body}");
        assert_eq!(msgs[0]["role"], "user", "{body}");
        let text = r.last_user_message().expect("user text");
        assert!(!text.contains("### QUESTION"), "not the chat shape: {text}");
        if text.contains("### Bad Solution:") {
            assert!(
                text.contains("### What is wrong, then the good solution:"),
                "{text}"
            );
            joint += 1;
        }
    }
    assert_eq!(joint, 2, "one joint repair per task");
    let r = results(&run);
    assert_eq!(r["totals"]["solved"], 2, "{r}");
    let ns = nodes(&run);
    let j = kind_of(&ns, "joint");
    assert_eq!(j.len(), 2);
    assert_eq!(j[0]["template"]["name"], "joint.completion.txt");
}

/// --depth 2: a repair that still fails is repaired again, a depth-2 node
/// below a depth-1 node, and that one passes. At --depth 1 the task fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depth_2_repairs_a_failed_repair() {
    // The first repair is wrong; the repair of that repair is right.
    let s = shaped_server(|m| !m.contains("# still wrong")).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("depth2");
    bench_shape(
        &s.openai_base(),
        &run,
        "0",
        &["--np", "1", "--nfr", "1", "--depth", "2"],
    )
    .await;
    let ns = nodes(&run);
    assert_eq!(ns.len(), 3, "{ns:?}");
    let d1 = ns
        .iter()
        .find(|n| n["depth"] == 1)
        .expect("a depth-1 repair");
    let d2 = ns
        .iter()
        .find(|n| n["depth"] == 2)
        .expect("a depth-2 repair");
    assert_eq!(d1["execution"]["hidden"]["passed"], false);
    assert_eq!(d2["parent"], d1["id"]);
    assert_eq!(d2["kind"], "joint");
    assert_eq!(d2["execution"]["hidden"]["passed"], true);
    assert_eq!(results(&run)["totals"]["solved"], 1);

    let shallow = tmp.path().join("depth1");
    bench_shape(
        &s.openai_base(),
        &shallow,
        "0",
        &["--np", "1", "--nfr", "1", "--depth", "1"],
    )
    .await;
    assert_eq!(nodes(&shallow).len(), 2);
    assert_eq!(results(&shallow)["totals"]["solved"], 0);
}

/// --mode sequential stops at the first pass: for the same script it calls
/// the model less than batched and leaves the other initial programs unmade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_mode_stops_at_the_first_pass() {
    let s = shaped_server(|_| false).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let shape = ["--np", "3", "--nfr", "1"];
    let batched = tmp.path().join("batched");
    bench_shape(&s.openai_base(), &batched, "0", &shape).await;
    let batched_calls = s.request_count();
    let b = nodes(&batched);
    assert_eq!(b.len(), 6, "3 wrong programs, each repaired");

    let seq = tmp.path().join("sequential");
    let mut seq_args = shape.to_vec();
    seq_args.extend(["--mode", "sequential"]);
    bench_shape(&s.openai_base(), &seq, "0", &seq_args).await;
    let seq_calls = s.request_count() - batched_calls;
    let q = nodes(&seq);
    // p0 fails, its repair passes: nothing more.
    assert_eq!(q.len(), 2, "{q:?}");
    assert!(
        q.iter()
            .any(|n| n["kind"] == "joint" && n["execution"]["hidden"]["passed"] == true)
    );
    assert!(
        seq_calls < batched_calls,
        "sequential {seq_calls} calls, batched {batched_calls}"
    );
    assert_eq!(results(&seq)["totals"]["solved"], 1);
}

/// --feedback-model: explanations are asked of the feedback model, programs
/// and repairs of the main one (the request's `model`, and the node's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_model_writes_the_explanations_only() {
    let s = shaped_server(|_| false).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("critic");
    bench_shape(
        &s.openai_base(),
        &run,
        "0-1",
        &[
            "--np",
            "1",
            "--nf",
            "1",
            "--nr",
            "1",
            "--feedback-model",
            "vllm:critic",
        ],
    )
    .await;
    let mut seen = (0, 0);
    for r in s.requests() {
        let body = r.json().expect("JSON");
        let text = r.last_user_message().expect("user text");
        let model = body["model"].as_str().expect("model").to_string();
        if asked(&text) == Asked::Explain {
            assert_eq!(model, "critic", "explanations to the feedback model");
            seen.0 += 1;
        } else {
            assert_eq!(model, "scripted", "{:?} to the main model", asked(&text));
            seen.1 += 1;
        }
    }
    assert_eq!(seen, (2, 4), "2 explanations; 2 programs and 2 repairs");
    let ns = nodes(&run);
    for n in &ns {
        let m = n["model"].as_str().expect("model").to_string();
        assert_eq!(m.contains("critic"), n["kind"] == "feedback", "{n}");
    }
    assert!(
        results(&run)["feedback_model"]
            .to_string()
            .contains("critic")
    );
}
