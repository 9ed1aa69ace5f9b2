//! Shared test helpers: the three real sandboxes and the pinned datasets.
#![allow(dead_code)]

use selfrepair::sandbox::{self, Sandbox, SandboxKind};
use std::io::Read;
use std::path::PathBuf;

/// The pinned datasets: `SELFREPAIR_DATA_DIR`, else `../shared/datasets` beside the checkout.
pub fn data_dir() -> PathBuf {
    let dir = std::env::var_os("SELFREPAIR_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets"));
    assert!(
        dir.is_dir(),
        "dataset dir {} is missing: set SELFREPAIR_DATA_DIR",
        dir.display()
    );
    dir
}

/// HumanEval records as JSON values.
pub fn humaneval() -> Vec<serde_json::Value> {
    let path = data_dir().join("humaneval/HumanEval.jsonl.gz");
    let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut text = String::new();
    flate2::read::GzDecoder::new(f)
        .read_to_string(&mut text)
        .expect("HumanEval is gzip'd UTF-8");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("HumanEval line is JSON"))
        .collect()
}

/// Open a sandbox of each kind (fetching or building runtimes on first use).
pub async fn sandbox(kind: SandboxKind) -> Box<dyn Sandbox> {
    sandbox::open(kind, &sandbox::runtime::RuntimeOptions::default())
        .await
        .unwrap_or_else(|e| panic!("cannot open the {kind} sandbox: {e}"))
}
