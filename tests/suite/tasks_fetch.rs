//! `selfrepair tasks fetch`: downloads into the cache with the pinned sha256
//! checked, from a mirror on 127.0.0.1 (upstream is not reachable in tests).

use super::common;

use selfrepair_testkit::TestServer;
use std::path::Path;
use std::process::Output;

fn fetch(home: &Path, mirror: &str, dataset: &str) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_selfrepair"))
        .args(["tasks", "fetch", dataset, "--mirror", mirror])
        .env("SELFREPAIR_HOME", home)
        .env_remove("SELFREPAIR_DATA_DIR")
        .output()
        .expect("run selfrepair")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_verifies_sha256_and_refuses_a_corrupt_file() {
    let mirror = tempfile::tempdir().expect("tmp");
    let home = tempfile::tempdir().expect("tmp");
    let src = common::data_dir().join("humaneval/HumanEval.jsonl.gz");
    std::fs::create_dir_all(mirror.path().join("humaneval")).expect("mkdir");
    std::fs::copy(&src, mirror.path().join("humaneval/HumanEval.jsonl.gz")).expect("copy");
    let s = TestServer::start().await.expect("server");
    s.serve_files(mirror.path());

    let o = fetch(home.path(), &s.url(), "humaneval");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = home.path().join("datasets/humaneval/HumanEval.jsonl.gz");
    assert_eq!(
        std::fs::read(&got).expect("fetched"),
        std::fs::read(&src).expect("src")
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("sha256 ok"));
    // The fetched file is what `tasks show` and `eval` read.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_selfrepair"))
        .args(["tasks", "show", "humaneval"])
        .env("SELFREPAIR_HOME", home.path())
        .env_remove("SELFREPAIR_DATA_DIR")
        .output()
        .expect("show");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A second fetch finds it in place.
    let o = fetch(home.path(), &s.url(), "humaneval");
    assert!(String::from_utf8_lossy(&o.stdout).contains("already in"));

    // A mirror serving other bytes: a named checksum error, nothing kept.
    let home2 = tempfile::tempdir().expect("tmp");
    let mut bytes = std::fs::read(&src).expect("src");
    bytes[100] ^= 0xff;
    std::fs::write(mirror.path().join("humaneval/HumanEval.jsonl.gz"), bytes).expect("corrupt");
    let o = fetch(home2.path(), &s.url(), "humaneval");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("sha256"), "{err}");
    assert!(
        !home2
            .path()
            .join("datasets/humaneval/HumanEval.jsonl.gz")
            .exists()
    );
    // A file the mirror does not have: a named HTTP error.
    let o = fetch(home2.path(), &s.url(), "mbpp");
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("mbpp"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
