//! A key in the environment never reaches the run dir, the transcript,
//! errors, Debug output or `config show`.
//!
//! The keys must be in the process environment, and setting variables is
//! only sound where no other thread reads them: the check runs in a child
//! process of this test binary that starts with them set.

use super::model_common;

use model_common::FAKE_KEY;
use selfrepair::config::ModelFlags;
use selfrepair::config::{ConfigInputs, render_config_show, resolve};
use selfrepair::model::{ChatRequest, Message, Model, ModelSettings, open};
use selfrepair_testkit::{Reply, TestServer};

#[test]
fn keys_never_leak() {
    selfrepair_testkit::procs::run_ignored_in_child(
        "suite::model_redaction::keys_never_leak_with_keys_set",
        &[
            ("SELFREPAIR_TEST_KEY", FAKE_KEY),
            ("OPENAI_API_KEY", FAKE_KEY),
            ("ANTHROPIC_API_KEY", FAKE_KEY),
        ],
    );
}

#[test]
#[ignore = "run by keys_never_leak in a child process with the keys in its environment"]
fn keys_never_leak_with_keys_set() {
    for var in ["SELFREPAIR_TEST_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"] {
        assert_eq!(std::env::var(var).as_deref(), Ok(FAKE_KEY), "{var}");
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = TestServer::start().await.unwrap();
        // A server that echoes the key back in its error (some do, partly).
        s.enqueue(Reply::status(
            401,
            format!("Incorrect API key provided: {FAKE_KEY}"),
        ));
        s.set_default(Reply::text("fine"));
        let run = tempfile::tempdir().unwrap();

        let mut outputs = Vec::new();
        for spec in ["openai:gpt-4o-mini", "anthropic:claude-3-5-haiku-latest"] {
            let mut settings = ModelSettings::new(spec.parse().unwrap());
            settings.base_url = Some(if spec.starts_with("openai") {
                s.openai_base()
            } else {
                s.url()
            });
            settings.api_key_env = Some("SELFREPAIR_TEST_KEY".into());
            let c = open(&settings, Some(run.path())).unwrap();
            outputs.push(format!("{c:?}"));
            outputs.push(format!("{settings:?}"));
            let req = ChatRequest::new(vec![Message::user("hi")]);
            match c.complete(&req).await {
                Ok(done) => outputs.push(format!("{done:?}")),
                Err(e) => {
                    outputs.push(e.to_string());
                    outputs.push(format!("{e:?}"));
                }
            }
            let done = c.complete(&req).await.unwrap();
            outputs.push(format!("{done:?}"));
        }
        // The key did reach the server, as auth and nowhere else.
        let reqs = s.requests();
        assert_eq!(
            reqs[0].header("authorization"),
            Some(format!("Bearer {FAKE_KEY}").as_str())
        );
        assert!(
            reqs.iter()
                .all(|r| !String::from_utf8_lossy(&r.body).contains(FAKE_KEY))
        );
        assert!(outputs[2].contains("[REDACTED]"), "{}", outputs[2]);

        // config show, with the key's var set.
        let flags = ModelFlags {
            model: Some("openai:gpt-4o".into()),
            ..ModelFlags::default()
        };
        let env = |k: &str| std::env::var(k).ok();
        let cfg = resolve(&ConfigInputs {
            project_dir: run.path(),
            user_config_dir: None,
            env: &env,
            flags: &flags,
        })
        .unwrap();
        let shown = render_config_show(&cfg);
        assert!(shown.contains("OPENAI_API_KEY (set)"), "{shown}");
        outputs.push(shown);
        outputs.push(format!("{cfg:?}"));

        for o in &outputs {
            assert!(!o.contains(FAKE_KEY), "key leaked: {o}");
        }
        let mut files = 0;
        for entry in std::fs::read_dir(run.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(!String::from_utf8_lossy(&bytes).contains(FAKE_KEY));
            files += 1;
        }
        assert_eq!(files, 1, "only transcript.jsonl");
        let log = std::fs::read_to_string(run.path().join("transcript.jsonl")).unwrap();
        assert_eq!(log.lines().count(), 4);
        assert!(log.contains("[REDACTED]"));
    });
}
