//! Bad input gets a clear outcome or error, never a panic or a hang.

use super::common;

use selfrepair_sandbox::runtime::RuntimeOptions;
use selfrepair_sandbox::{
    self as sandbox, RunRequest, SandboxError, SandboxKind, Status, TestSpec,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_programs_get_clear_outcomes() {
    let _one = common::PROCESS_JAIL.lock().await;
    let garbage: String = (0u8..=255).cycle().take(4096).map(|b| b as char).collect();
    let big = format!("s = '{}'\nprint(len(s))\n", "a".repeat(10 << 20));
    for kind in SandboxKind::ALL {
        let sb = common::sandbox(kind).await;

        let out = sb.run(&RunRequest::new("", TestSpec::Script)).await;
        assert_eq!(
            out.status,
            Status::Passed,
            "{kind}: an empty program runs and does nothing"
        );

        let tests = TestSpec::Check {
            code: "def check(c):\n    assert c(1) == 1\n".into(),
            entry_point: Some("f".into()),
            context: String::new(),
        };
        let out = sb.run(&RunRequest::new("", tests)).await;
        assert_eq!(out.status, Status::Failed, "{kind}: {}", out.summary());
        assert!(
            out.summary().contains("NameError"),
            "{kind}: {}",
            out.summary()
        );

        let out = sb
            .run(&RunRequest::new(garbage.clone(), TestSpec::Script))
            .await;
        assert_eq!(out.status, Status::Error, "{kind}: {}", out.summary());
        assert!(out.error.is_some(), "{kind}: garbage names its error");

        let out = sb
            .run(&RunRequest::new(big.clone(), TestSpec::Script))
            .await;
        assert_eq!(out.status, Status::Passed, "{kind}: {}", out.summary());
        assert_eq!(out.stdout.trim(), "10485760", "{kind}");

        // Text JSON cannot carry (a lone surrogate) or that the harness's
        // fast encoder writes otherwise (astral characters as surrogate
        // pairs, control characters) reaches the host as the same text.
        let out = sb
            .run(&RunRequest::new(
                "print('a\\udc80b', '\\U0001F600', '\\x07\\x7f')\nraise ValueError('bad \\ud800')\n",
                TestSpec::Script,
            ))
            .await;
        assert_eq!(out.status, Status::Error, "{kind}: {}", out.summary());
        assert_eq!(
            out.stdout,
            "a\u{fffd}b \u{1F600} \u{7}\u{7f}\n",
            "{kind}: {}",
            out.summary()
        );
        let e = out.error.as_ref().expect("the raise is the run's error");
        assert_eq!(
            (e.kind.as_str(), e.message.as_str()),
            ("ValueError", "bad \u{fffd}"),
            "{kind}"
        );

        let out = sb
            .run(&RunRequest::new("def f(:\n    pass\n", TestSpec::Script))
            .await;
        assert_eq!(out.status, Status::Error, "{kind}");
        let e = out.error.expect("syntax error info");
        assert_eq!(e.kind, "SyntaxError");
        assert_eq!(e.line, Some(1));
    }
}

fn opts_in(home: &std::path::Path) -> RuntimeOptions {
    RuntimeOptions {
        home: home.to_path_buf(),
        python_wasm: None,
        fast_wasm: None,
        offline: true,
        ..RuntimeOptions::default()
    }
}

#[tokio::test]
async fn corrupt_cached_runtime_is_refused_by_checksum() {
    let home = tempfile::tempdir().expect("home");
    let path = home.path().join("runtimes/python-3.12.0-wasi.wasm");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, b"\0asm not really").expect("write");
    let err = sandbox::open(SandboxKind::WasmFull, &opts_in(home.path()))
        .await
        .err()
        .expect("must refuse");
    assert!(
        matches!(
            err,
            SandboxError::Store(selfrepair_store::StoreError::Checksum { .. })
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("python-3.12.0-wasi.wasm") && msg.contains("e5dc5a39"),
        "{msg}"
    );
}

#[tokio::test]
async fn missing_runtime_offline_is_a_clear_error() {
    let home = tempfile::tempdir().expect("home");
    let err = sandbox::open(SandboxKind::WasmFull, &opts_in(home.path()))
        .await
        .err()
        .expect("must fail");
    assert!(
        err.to_string()
            .contains("missing, and fetching is disabled"),
        "{err}"
    );
    let err = sandbox::open(SandboxKind::Wasm, &opts_in(home.path()))
        .await
        .err()
        .expect("must fail");
    assert!(err.to_string().contains("not built"), "{err}");
}

#[tokio::test]
async fn user_supplied_runtime_that_is_not_wasm_is_refused() {
    let home = tempfile::tempdir().expect("home");
    let bogus = home.path().join("my-python.wasm");
    std::fs::write(&bogus, b"definitely not wasm").expect("write");
    let mut opts = opts_in(home.path());
    opts.python_wasm = Some(bogus.clone());
    let err = sandbox::open(SandboxKind::WasmFull, &opts)
        .await
        .err()
        .expect("must refuse");
    assert!(err.to_string().contains("compiling"), "{err}");
    opts.python_wasm = Some(home.path().join("nope.wasm"));
    let err = sandbox::open(SandboxKind::WasmFull, &opts)
        .await
        .err()
        .expect("must refuse");
    assert!(
        err.to_string().contains("nope.wasm") && err.to_string().contains("no such file"),
        "{err}"
    );
    opts.python_wasm = None;
    opts.fast_wasm = Some(bogus);
    assert!(sandbox::open(SandboxKind::Wasm, &opts).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_compile_cache_is_recompiled() {
    // Make sure the pinned runtime and its compiled code are in the default
    // cache, then copy both to a fresh home (compiling CPython takes most of
    // a minute here, so it is done once, below).
    drop(common::sandbox(SandboxKind::WasmFull).await);
    let default = RuntimeOptions::default().home;
    let home = tempfile::tempdir().expect("home");
    let dest = home.path().join("runtimes/python-3.12.0-wasi.wasm");
    std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
    std::fs::copy(default.join("runtimes/python-3.12.0-wasi.wasm"), &dest).expect("copy runtime");
    std::fs::create_dir_all(home.path().join("compiled")).expect("mkdir");
    for e in std::fs::read_dir(default.join("compiled"))
        .expect("default cache")
        .flatten()
    {
        let name = e.file_name();
        if name.to_string_lossy().starts_with("python-full-") {
            std::fs::copy(e.path(), home.path().join("compiled").join(&name)).expect("copy");
        }
    }
    let full = |dir: &std::path::Path| -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(dir.join("compiled"))
            .expect("cache dir")
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("python-full-"))
            })
            .collect();
        v.sort();
        v
    };
    let copied = full(home.path());
    assert!(
        !copied.is_empty(),
        "no compiled CPython in the default cache"
    );
    let opts = opts_in(home.path());
    drop(
        sandbox::open(SandboxKind::WasmFull, &opts)
            .await
            .expect("the copied code loads"),
    );
    assert_eq!(
        full(home.path()),
        copied,
        "the copied code was used as it is"
    );
    // Damage every copy: the one this build uses is compiled again and
    // rewritten whole, the others (other builds') are left alone.
    for p in &copied {
        std::fs::write(p, b"garbage").expect("corrupt it");
    }
    let sb = sandbox::open(SandboxKind::WasmFull, &opts)
        .await
        .expect("a bad cache entry is recompiled");
    let out = sb
        .run(&RunRequest::new("print(6 * 7)", TestSpec::Script))
        .await;
    assert_eq!(out.stdout.trim(), "42");
    let rewritten = copied
        .iter()
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 1000))
        .count();
    assert_eq!(rewritten, 1, "{copied:?}");
    assert_eq!(full(home.path()), copied);
}
