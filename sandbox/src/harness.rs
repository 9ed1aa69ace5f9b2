//! The Python harness shared by every sandbox: request encoding, result decoding.

use crate::outcome::{ErrorInfo, Outcome, Status, TestRecord};
use crate::request::{RunRequest, TestSpec};
use serde::Deserialize;

/// The harness source, embedded so the binary is self-contained.
pub const HARNESS_PY: &str = include_str!("../python/harness.py");

/// The harness's JSON result (see `python/harness.py`).
#[derive(Debug, Deserialize, Default)]
pub struct HarnessResult {
    pub status: String,
    #[serde(default)]
    pub passed: u32,
    #[serde(default)]
    pub failed: u32,
    #[serde(default)]
    pub tests: Vec<TestRecord>,
    #[serde(default)]
    pub error: Option<ErrorInfo>,
    #[serde(default)]
    pub missing_module: Option<String>,
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
    #[serde(default)]
    pub output_truncated: bool,
}

/// Encode a request for the harness. `token` marks the result line on stdout.
pub fn encode_request(req: &RunRequest, token: &str) -> String {
    request_value(req, token).to_string()
}

/// A request as a JSON value, for callers that add to it.
pub fn request_value(req: &RunRequest, token: &str) -> serde_json::Value {
    let mut v = serde_json::json!({
        "token": token,
        "program": req.program,
        "tests": req.tests,
        "stdin": req.stdin,
        "fast_fail": req.fast_fail,
        "max_output": req.limits.max_output,
        "guard": req.guard,
    });
    if let Some(t) = req.limits.test_timeout {
        v["test_timeout"] = serde_json::json!(t);
    }
    v
}

/// A request that only instruments `tests` (the harness's `compile_tests`),
/// for the kinds whose tests are code; `None` for the others.
pub fn encode_compile_request(tests: &TestSpec) -> Option<String> {
    matches!(tests, TestSpec::Check { .. } | TestSpec::Asserts { .. })
        .then(|| serde_json::json!({"compile_tests": true, "tests": tests}).to_string())
}

/// The answer to a compile request, if it is one: marshalled code and the
/// assertion sites, passed back as a later request's `tests_compiled`.
pub fn parse_compiled(text: &str) -> Option<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    (v["code"].is_string() && v["sites"].is_array()).then_some(v)
}

/// A fresh random token, so a program cannot guess the result marker.
pub fn new_token() -> String {
    let mut buf = [0u8; 16];
    // SAFETY: getrandom writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != buf.len() as isize {
        // Never fall back to a guessable marker: mix in time and pid instead.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        buf[..8].copy_from_slice(&(t.as_nanos() as u64).to_le_bytes());
        buf[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    }
    format!("@@selfrepair:{}@@", hex::encode(buf))
}

/// Find the harness result after `token` in captured stdout (the last one wins).
pub fn find_result(stdout: &str, token: &str) -> Option<HarnessResult> {
    let at = stdout.rfind(token)?;
    let rest = &stdout[at + token.len()..];
    let line = rest.lines().next()?;
    serde_json::from_str(line).ok()
}

/// Parse a harness result given as the whole text (the component returns it directly).
pub fn parse_result(text: &str) -> Option<HarnessResult> {
    serde_json::from_str(text).ok()
}

/// Fill an outcome from a harness result.
pub fn apply(result: HarnessResult, out: &mut Outcome) {
    out.status = match result.status.as_str() {
        "passed" => Status::Passed,
        "failed" => Status::Failed,
        "timeout" => Status::Timeout,
        "output_limit" => Status::OutputLimit,
        _ => Status::Error,
    };
    if out.status == Status::Error
        && result
            .error
            .as_ref()
            .is_some_and(|e| e.kind == "MemoryError")
    {
        out.status = Status::MemoryLimit;
    }
    if out.status != Status::Passed
        && result
            .tests
            .iter()
            .any(|t| t.error.as_ref().is_some_and(|e| e.kind == "MemoryError"))
    {
        out.status = Status::MemoryLimit;
    }
    out.passed = result.passed;
    out.failed = result.failed;
    out.tests = result.tests;
    out.error = result.error;
    out.stdout = result.stdout;
    out.stderr = result.stderr;
    if result.output_truncated && out.status == Status::OutputLimit {
        out.reason = Some(format!(
            "the program wrote more than {} bytes",
            out.limits.max_output
        ));
    }
}
