//! The Python harness shared by every sandbox: request encoding, result decoding.

use crate::outcome::{ErrorInfo, Outcome, Status, TestRecord};
use crate::request::{RunRequest, TestSpec};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The harness source, embedded so the binary is self-contained: the
/// reference harnesses' rules (`python/semantics.py`), then the harness.
pub const HARNESS_PY: &str = concat!(
    include_str!("../python/semantics.py"),
    "\n\n",
    include_str!("../python/harness.py")
);

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
    /// A compute run's answers, one per call or case.
    #[serde(default)]
    pub answers: Option<Vec<serde_json::Value>>,
    /// The calls a judge run made that had no answer.
    #[serde(default)]
    pub needed: Vec<serde_json::Value>,
    /// A walk's expected answer for each of `needed`, where the tests can
    /// fail only by a wrong answer (see [`crate::judge`]).
    #[serde(default)]
    pub expect: Option<Vec<String>>,
}

/// Encode a request for the harness. `token` marks the result line on stdout.
pub(crate) fn encode_request(req: &RunRequest, token: &str) -> String {
    request_value(req, token).to_string()
}

/// A request as a JSON value, for callers that add to it.
pub(crate) fn request_value(req: &RunRequest, token: &str) -> serde_json::Value {
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

/// A request (from [`request_value`]) as a NUL byte (never the start of
/// JSON text), then CPython's `marshal` bytes, for process runs: the harness reads them with the
/// built-in `marshal.loads` instead of importing json.
pub(crate) fn marshal_request(value: &serde_json::Value) -> Vec<u8> {
    let mut out = vec![0u8];
    marshal_value(value, &mut out);
    out
}

/// One JSON value in marshal's format (see CPython's `Python/marshal.c`).
fn marshal_value(v: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    match v {
        Value::Null => out.push(b'N'),
        Value::Bool(true) => out.push(b'T'),
        Value::Bool(false) => out.push(b'F'),
        Value::Number(n) => {
            if let Some(i) = n.as_i64().and_then(|i| i32::try_from(i).ok()) {
                out.push(b'i');
                out.extend_from_slice(&i.to_le_bytes());
            } else if let Some(i) = n.as_i64().map(i128::from).or(n.as_u64().map(i128::from)) {
                // A long: base-2^15 digits, least significant first; the sign
                // goes on the digit count.
                let mut digits = Vec::new();
                let mut m = i.unsigned_abs();
                while m > 0 {
                    digits.push((m & 0x7fff) as u16);
                    m >>= 15;
                }
                let count = digits.len() as i32;
                out.push(b'l');
                out.extend_from_slice(&(if i < 0 { -count } else { count }).to_le_bytes());
                for d in digits {
                    out.extend_from_slice(&d.to_le_bytes());
                }
            } else {
                out.push(b'g');
                out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_le_bytes());
            }
        }
        Value::String(s) => {
            out.push(b'u');
            out.extend_from_slice(&len(s.len()));
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(items) => {
            out.push(b'[');
            out.extend_from_slice(&len(items.len()));
            for x in items {
                marshal_value(x, out);
            }
        }
        Value::Object(map) => {
            out.push(b'{');
            for (k, x) in map {
                marshal_value(&Value::String(k.clone()), out);
                marshal_value(x, out);
            }
            out.push(b'0');
        }
    }
}

/// What the harness derived from a suite's trusted tests alone, keyed by
/// the hash of the request that made it: instrumented tests, or the calls a
/// walk found ([`crate::judge`]).
///
/// Instrumenting a test suite (parse, rewrite the asserts, compile) is most
/// of a short run's time, and benchmarks run the same suite for many
/// programs. Each entry is made by the harness's `compile_tests` before any
/// program has run in that instance or process, so no program can shape what
/// later runs execute. Marshalled code is for one interpreter: each sandbox
/// keeps its own.
///
/// With a directory ([`CompiledTests::on_disk`]) entries also persist across
/// invocations, for a sandbox whose interpreter and harness the directory's
/// name pins (the fast component's hash): a second eval of a dataset starts
/// warm. Entries are written whole (temp file, then rename); a file that
/// does not parse is a miss.
pub struct CompiledTests {
    map: Mutex<HashMap<String, Arc<serde_json::Value>>>,
    dir: Option<std::path::PathBuf>,
    /// What a file on disk must look like to be an entry.
    valid: fn(&str) -> Option<serde_json::Value>,
}

impl Default for CompiledTests {
    fn default() -> Self {
        CompiledTests {
            map: Mutex::default(),
            dir: None,
            valid: parse_compiled,
        }
    }
}

/// Entries kept before the cache starts over (a few KiB each).
const MAX_COMPILED: usize = 4096;

impl CompiledTests {
    /// A cache of instrumented tests that also keeps its entries in `dir`.
    pub fn on_disk(dir: std::path::PathBuf) -> Self {
        CompiledTests {
            dir: Some(dir),
            ..CompiledTests::default()
        }
    }

    /// A cache of walks (each a JSON array of calls) kept in `dir`.
    pub fn walks_on_disk(dir: std::path::PathBuf) -> Self {
        CompiledTests {
            dir: Some(dir),
            valid: |text| {
                let v: serde_json::Value = serde_json::from_str(text).ok()?;
                v.get("calls")?
                    .as_array()?
                    .iter()
                    .all(|c| c.is_object())
                    .then_some(v)
            },
            ..CompiledTests::default()
        }
    }

    pub fn get(&self, key: &str) -> Option<Arc<serde_json::Value>> {
        if let Some(v) = self.map.lock().ok()?.get(key).cloned() {
            return Some(v);
        }
        let path = self.dir.as_ref()?.join(format!("{key}.json"));
        let v = Arc::new((self.valid)(&std::fs::read_to_string(path).ok()?)?);
        self.remember(key.to_string(), v.clone());
        Some(v)
    }

    pub fn insert(&self, key: String, value: Arc<serde_json::Value>) {
        if let Some(dir) = &self.dir
            && let Err(e) = write_whole(dir, &key, &value)
        {
            tracing::debug!(
                "instrumented tests not kept on disk in {}: {e}",
                dir.display()
            );
        }
        self.remember(key, value);
    }

    fn remember(&self, key: String, value: Arc<serde_json::Value>) {
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= MAX_COMPILED {
                map.clear();
            }
            map.insert(key, value);
        }
    }
}

/// Write `dir/<key>.json` so that a reader sees all of it or none.
fn write_whole(dir: &std::path::Path, key: &str, value: &serde_json::Value) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(value.to_string().as_bytes())?;
    tmp.persist(dir.join(format!("{key}.json")))
        .map(drop)
        .map_err(|e| e.error)
}

/// A request that only instruments `tests` (the harness's `compile_tests`),
/// for the kinds whose tests are code; `None` for the others. Returns
/// `(key, request)`: the key is the request's sha256, as [`CompiledTests`]
/// files the answer.
pub(crate) fn compile_request(tests: &TestSpec) -> Option<(String, String)> {
    if let TestSpec::Judge(j) = tests {
        return compile_request(&j.tests);
    }
    matches!(tests, TestSpec::Check { .. } | TestSpec::Asserts { .. }).then(|| {
        let request = serde_json::json!({"compile_tests": true, "tests": tests}).to_string();
        (selfrepair_store::sha256_bytes(request.as_bytes()), request)
    })
}

/// The instrumented tests a process run wrote before its program ran (the
/// first line marked `<token>compiled:`; the harness always writes one when
/// asked, so a later one, the program's, is never read).
pub(crate) fn find_compiled(stdout: &str, token: &str) -> Option<serde_json::Value> {
    let mark = format!("{token}compiled:");
    let at = stdout.find(&mark)?;
    parse_compiled(stdout[at + mark.len()..].lines().next()?)
}

/// The answer to a compile request, if it is one: marshalled code and the
/// assertion sites, passed back as a later request's `tests_compiled`.
pub(crate) fn parse_compiled(text: &str) -> Option<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    (v["code"].is_string() && v["sites"].is_array()).then_some(v)
}

/// A fresh random token, so a program cannot guess the result marker; `None`
/// when the kernel gives no randomness. There is no fallback: a guessable
/// marker would let a program forge its result, so such a run does not run.
pub(crate) fn new_token() -> Option<String> {
    let mut buf = [0u8; 16];
    getrandom::fill(&mut buf).ok()?;
    Some(format!("@@selfrepair:{}@@", hex::encode(buf)))
}

/// Why a run without a token did not start.
pub(crate) const NO_RANDOMNESS: &str =
    "no randomness from the kernel (getrandom failed): a run needs an unguessable result marker";

/// Find the harness result after `token` in captured stdout (the last one wins).
pub(crate) fn find_result(stdout: &str, token: &str) -> Option<HarnessResult> {
    let at = stdout.rfind(token)?;
    let rest = &stdout[at + token.len()..];
    let line = rest.lines().next()?;
    serde_json::from_str(line).ok()
}

/// Parse a harness result given as the whole text (the component returns it directly).
pub(crate) fn parse_result(text: &str) -> Option<HarnessResult> {
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
    out.exchange = crate::outcome::Exchange {
        answers: result.answers,
        needed: result.needed,
        expect: result.expect,
        incomplete: result.status == "incomplete",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_whole() {
        let (a, b) = (
            new_token().expect("randomness"),
            new_token().expect("randomness"),
        );
        assert_ne!(a, b);
        assert_eq!(a.len(), "@@selfrepair:@@".len() + 32);
    }

    #[test]
    fn instrumented_tests_persist_on_disk_and_bad_files_are_misses() {
        let dir = tempfile::tempdir().expect("temp dir");
        let suites = dir.path().join("tests-abc");
        let entry = serde_json::json!({"code": "YWJj", "sites": [{"line": 1}]});
        CompiledTests::on_disk(suites.clone()).insert("k1".into(), Arc::new(entry.clone()));
        // A new cache over the same directory, as in the next invocation.
        let later = CompiledTests::on_disk(suites.clone());
        assert_eq!(later.get("k1").as_deref(), Some(&entry));
        assert!(later.get("k2").is_none());
        std::fs::write(suites.join("k3.json"), "{\"code\": \"YWJj\", \"si").expect("write");
        assert!(later.get("k3").is_none(), "a cut-off file is a miss");
        std::fs::write(suites.join("k4.json"), "{\"error\": \"x\"}").expect("write");
        assert!(
            later.get("k4").is_none(),
            "an answer without code is a miss"
        );
        // Without a directory nothing outlives the cache.
        let mem = CompiledTests::default();
        mem.insert("k5".into(), Arc::new(entry));
        assert!(CompiledTests::on_disk(suites.clone()).get("k5").is_none());
        let names: Vec<_> = std::fs::read_dir(&suites)
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| n.ends_with(".json")),
            "no temp files left: {names:?}"
        );
    }

    /// What python3's `marshal.loads` makes of our bytes, as JSON.
    fn python_reads(bytes: &[u8]) -> Option<serde_json::Value> {
        use std::io::Write;
        let mut child = std::process::Command::new(crate::process::default_python())
            .args([
                "-I",
                "-S",
                "-c",
                "import sys,marshal,json;print(json.dumps(marshal.loads(sys.stdin.buffer.read())))",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        child.stdin.take()?.write_all(bytes).ok()?;
        let out = child.wait_with_output().ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    #[test]
    fn marshal_round_trips_through_python() {
        let v = serde_json::json!({
            "s": "x\"y\\ é中😀\n", "empty": "", "n": [0, -1, 2147483647, -2147483648,
            2147483648i64, -9007199254740993i64, 18446744073709551615u64],
            "f": [0.5, -1e300], "b": [true, false, null], "nested": {"a": [[], {}]}
        });
        let mut bytes = Vec::new();
        marshal_value(&v, &mut bytes);
        let Some(back) = python_reads(&bytes) else {
            panic!("python3 could not read the marshalled value");
        };
        assert_eq!(back, v);
    }
}
