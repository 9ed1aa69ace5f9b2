//! APPS (hendrycks/apps): standard-input problems and call-based ones
//! (`fn_name`, with `class Solution` starters called on `Solution()`), the
//! permissive stdout cascade, 4 s per test and 10 s per problem. Two layouts:
//! the original one folder per problem, and MapCoder's `selected150.jsonl`.

use super::data::{jsonl, read_text};
use super::{Source, Suite, Task, TaskError};
use crate::sandbox::request::{CallCase, CallSpec, IoCase};
use crate::sandbox::semantics::{CallRule, StdoutRule};
use crate::sandbox::{Guard, Limits, TestSpec};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// The imports APPS' `testing_util` prepends to every solution (numpy left
/// out: no sandbox ships it, and `np` is unused by the solutions we run).
pub(crate) const HEADER: &str = "import sys\nimport time\nimport itertools\nfrom itertools import accumulate, product, permutations, combinations\nimport collections\nfrom collections import Counter, OrderedDict, deque, defaultdict, ChainMap\nfrom functools import lru_cache\nimport math\nfrom math import sqrt, sin, cos, tan, ceil, fabs, floor, gcd, exp, log, log2\nimport fractions\nfrom typing import List, Tuple\nimport random\nimport heapq\nfrom heapq import *\n";

pub(crate) const TEST_TIMEOUT: f64 = 4.0;
pub(crate) const PROBLEM_TIMEOUT: Duration = Duration::from_secs(10);

fn limits() -> Limits {
    Limits {
        timeout: PROBLEM_TIMEOUT,
        memory_mb: 2048,
        max_output: 16 << 20,
        test_timeout: Some(TEST_TIMEOUT),
    }
}

/// The APPS prompt (harnesses.md A4).
pub fn prompt(question: &str, starter: &str, call_based: bool) -> String {
    format!(
        "\nQUESTION:\n{question}\n{starter}\n{}\nANSWER:\n",
        if call_based {
            "Use Call-Based format"
        } else {
            "Use Standard Input format"
        }
    )
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        // Some problems store inputs/outputs as lists of lines.
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(|l| l.join("\n")),
        _ => None,
    }
}

/// The function a call-based starter defines (and its class, for `class Solution`).
fn call_target(starter: &str, fn_name: &str) -> Option<String> {
    starter
        .lines()
        .find_map(|l| l.trim().strip_prefix("class "))
        .map(|rest| {
            rest.split(|c: char| c == '(' || c == ':' || c.is_whitespace())
                .next()
                .unwrap_or("Solution")
                .to_string()
        })
        .filter(|_| !fn_name.is_empty())
}

fn suite(tests: TestSpec) -> Suite {
    let rule = match &tests {
        TestSpec::Io { .. } => {
            "APPS stdout cascade (stripped, lines, non-empty lines, floats, token sets, rounded)"
        }
        _ => "APPS call-based: ==, also against outputs[i][0], tuples as lists",
    };
    Suite {
        name: "tests".into(),
        tests,
        limits: limits(),
        guard: Guard::None,
        // The 4 s limits are for a native CPython: a call that finished past
        // its (scaled) limit in wasm is re-timed there.
        confirm_in: Some(crate::sandbox::SandboxKind::Process),
        rule: format!("{rule}; 4 s per test, 10 s per problem"),
        reference_time: None,
    }
}

/// The hidden tests from an `input_output.json` object.
fn tests_from_io(io: &Value, starter: &str) -> Result<TestSpec, String> {
    let inputs = io["inputs"].as_array().ok_or("'inputs' is not a list")?;
    let outputs = io["outputs"].as_array().ok_or("'outputs' is not a list")?;
    if inputs.len() != outputs.len() {
        return Err(format!(
            "{} inputs but {} outputs",
            inputs.len(),
            outputs.len()
        ));
    }
    if inputs.is_empty() {
        return Err("no test cases".into());
    }
    match io.get("fn_name") {
        Some(Value::String(f)) => {
            let cases = inputs
                .iter()
                .zip(outputs)
                .map(|(i, o)| match i {
                    Value::Array(_) => Ok(CallCase {
                        args: Some(i.clone()),
                        expected: Some(o.clone()),
                        ..CallCase::default()
                    }),
                    _ => Err("a call-based input is not an argument list".to_string()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(TestSpec::Call(CallSpec {
                fn_name: f.clone(),
                class_name: call_target(starter, f),
                cases,
                compare: CallRule::Apps,
                atol: 0.0,
                oracle: None,
                time_limits: Vec::new(),
            }))
        }
        Some(_) => Err("'fn_name' is not a string".into()),
        None => {
            let cases = inputs
                .iter()
                .zip(outputs)
                .map(|(i, o)| match (text_of(i), text_of(o)) {
                    (Some(input), Some(output)) => Ok(IoCase { input, output }),
                    _ => Err("a standard-input case is not text".to_string()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(TestSpec::Io {
                cases,
                compare: StdoutRule::Apps,
            })
        }
    }
}

fn read_opt(path: &Path) -> Result<Option<String>, TaskError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TaskError::io(path, e)),
    }
}

fn parse_json(path: &Path, text: &str) -> Result<Value, TaskError> {
    serde_json::from_str(text)
        .map_err(|e| TaskError::malformed(path, e.line(), format!("invalid JSON: {e}")))
}

/// The original layout: `DIR/NNNN/{question.txt, input_output.json,
/// solutions.json, metadata.json, starter_code.py}`.
pub(crate) fn load_dir(dir: &Path, dataset: &str) -> Result<Vec<Task>, TaskError> {
    let mut dirs: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| TaskError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut tasks = Vec::new();
    for p in dirs {
        let id = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let io_path = p.join("input_output.json");
        let Some(io_text) = read_opt(&io_path)? else {
            // APPS has problems without tests; they cannot be scored.
            tracing::warn!("skipping APPS problem {id}: no input_output.json");
            continue;
        };
        let io = parse_json(&io_path, &io_text)?;
        let question_path = p.join("question.txt");
        let question = read_opt(&question_path)?
            .ok_or_else(|| TaskError::malformed(&question_path, 0, "missing question.txt"))?;
        let starter = read_opt(&p.join("starter_code.py"))?.unwrap_or_default();
        let sol_path = p.join("solutions.json");
        let solutions = match read_opt(&sol_path)? {
            Some(t) => match parse_json(&sol_path, &t)? {
                Value::Array(a) => a
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s),
                        _ => Err(TaskError::malformed(
                            &sol_path,
                            1,
                            "a solution is not a string",
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                _ => {
                    return Err(TaskError::malformed(
                        &sol_path,
                        1,
                        "expected a list of solutions",
                    ));
                }
            },
            None => Vec::new(),
        };
        let meta_path = p.join("metadata.json");
        let meta = match read_opt(&meta_path)? {
            Some(t) => parse_json(&meta_path, &t)?,
            None => Value::Null,
        };
        let tests =
            tests_from_io(&io, &starter).map_err(|r| TaskError::malformed(&io_path, 1, r))?;
        let call = matches!(tests, TestSpec::Call(_));
        tasks.push(Task {
            id,
            dataset: dataset.to_string(),
            prompt: prompt(&question, &starter, call),
            code_prompt: String::new(),
            header: HEADER.to_string(),
            entry_point: io
                .get("fn_name")
                .and_then(Value::as_str)
                .map(str::to_string),
            canonical: solutions,
            visible: Vec::new(),
            suites: vec![suite(tests)],
            extra: Vec::new(),
            visible_suite: None,
            repair_prompt: None,
            source: Source {
                file: p.clone(),
                line: 0,
                split: None,
                difficulty: meta
                    .get("difficulty")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                url: meta.get("url").and_then(Value::as_str).map(str::to_string),
            },
        });
    }
    Ok(tasks)
}

/// MapCoder's `selected150.jsonl`: `test_list`/`sample_io` hold
/// `{input, output}` items; call-based inputs are Python-literal argument
/// lists, evaluated by the harness.
pub(crate) fn load_selected(path: &Path, dataset: &str) -> Result<Vec<Task>, TaskError> {
    let text = read_text(path)?;
    let mut seen = std::collections::HashMap::<String, usize>::new();
    let mut tasks = Vec::new();
    for (line, m) in jsonl(path, &text)? {
        let bad = |r: &str| TaskError::malformed(path, line, r.to_string());
        let raw_id = match m.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(bad("missing field 'id'")),
        };
        // Some ids repeat in this file; later ones get a suffix.
        let n = seen.entry(raw_id.clone()).or_insert(0);
        *n += 1;
        let id = if *n == 1 {
            raw_id
        } else {
            format!("{raw_id}#{n}")
        };
        let desc = super::data::field_str(path, line, &m, "description")?;
        let starter = m.get("starter_code").and_then(Value::as_str).unwrap_or("");
        let call_fn = starter
            .lines()
            .find_map(|l| l.trim().strip_prefix("def "))
            .and_then(|r| r.split('(').next())
            .map(|s| s.trim().to_string())
            .filter(|_| !starter.trim().is_empty());
        let items = |key: &str| -> Result<Vec<(Value, Value)>, TaskError> {
            let Some(Value::Array(a)) = m.get(key) else {
                return Err(bad(&format!("field '{key}' is not a list")));
            };
            a.iter()
                .map(|it| match (it.get("input"), it.get("output")) {
                    (Some(i), Some(o)) => Ok((i.clone(), o.clone())),
                    _ => Err(bad(&format!("an item of '{key}' lacks input or output"))),
                })
                .collect()
        };
        let hidden = items("test_list")?;
        if hidden.is_empty() {
            return Err(bad("test_list is empty"));
        }
        let samples = items("sample_io")?;
        let visible = samples
            .iter()
            .map(|(i, o)| {
                format!(
                    "input: {}\noutput: {}",
                    text_of(i).unwrap_or_else(|| i.to_string()),
                    o
                )
            })
            .collect();
        let spec = |pairs: &[(Value, Value)]| -> Result<TestSpec, TaskError> {
            Ok(match &call_fn {
                Some(f) => TestSpec::Call(CallSpec {
                    fn_name: f.clone(),
                    class_name: call_target(starter, f),
                    cases: pairs
                        .iter()
                        .map(|(i, o)| match i {
                            Value::String(s) => Ok(CallCase {
                                args_py: Some(s.clone()),
                                expected: Some(o.clone()),
                                ..CallCase::default()
                            }),
                            _ => Err(bad("a call-based input is not a literal string")),
                        })
                        .collect::<Result<_, _>>()?,
                    compare: CallRule::Apps,
                    atol: 0.0,
                    oracle: None,
                    time_limits: Vec::new(),
                }),
                None => TestSpec::Io {
                    cases: pairs
                        .iter()
                        .map(|(i, o)| match (text_of(i), text_of(o)) {
                            (Some(input), Some(output)) => Ok(IoCase { input, output }),
                            _ => Err(bad("a standard-input case is not text")),
                        })
                        .collect::<Result<_, _>>()?,
                    compare: StdoutRule::Apps,
                },
            })
        };
        let tests = spec(&hidden)?;
        let visible_suite = if samples.is_empty() {
            None
        } else {
            Some(Suite {
                name: "visible".into(),
                ..suite(spec(&samples)?)
            })
        };
        tasks.push(Task {
            id,
            dataset: dataset.to_string(),
            prompt: prompt(desc, starter, call_fn.is_some()),
            code_prompt: String::new(),
            header: HEADER.to_string(),
            entry_point: call_fn,
            canonical: Vec::new(),
            visible,
            suites: vec![suite(tests)],
            extra: Vec::new(),
            visible_suite,
            repair_prompt: None,
            source: Source {
                file: path.to_path_buf(),
                line,
                difficulty: m
                    .get("difficulty")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                ..Default::default()
            },
        });
    }
    Ok(tasks)
}
