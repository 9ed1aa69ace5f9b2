//! MBPP (google-research/mbpp), full and sanitized. Google ships no harness;
//! the usual practice (bigcode, evalplus' base) is code, then setup, then the
//! asserts, passing when nothing raises. Unlike bigcode we do run
//! `test_setup_code` (tasks 367 and 927 need it).

use super::data::{field_str, field_strings, read_text};
use super::{Source, Suite, Task, TaskError};
use crate::sandbox::{Guard, Limits, TestSpec};
use std::path::Path;

/// The split a task id belongs to (the MBPP README's ranges).
pub fn split(id: u64) -> &'static str {
    match id {
        1..=10 => "prompt",
        11..=510 => "test",
        511..=600 => "validation",
        _ => "train",
    }
}

/// Google ships no harness; bigcode uses 3 s per program. We allow 15 s, since
/// a reference solution (task 123) takes over 3 s natively and would time out in a slower sandbox.
fn limits() -> Limits {
    Limits {
        timeout: std::time::Duration::from_secs(15),
        ..super::humaneval::limits()
    }
}

fn suite(name: &str, setup: &str, asserts: Vec<String>) -> Suite {
    Suite {
        name: name.into(),
        tests: TestSpec::Asserts {
            setup: setup.to_string(),
            asserts,
        },
        limits: limits(),
        guard: Guard::HumanEval,
        confirm_in: None,
        rule: "every assert holds (setup code first), 15 s per program".into(),
        reference_time: None,
    }
}

/// The paper's prompt for one task.
pub fn prompt(text: &str, tests: &[String]) -> String {
    format!(
        "You are an expert Python programmer, and here is your task: {text} Your code should pass these tests:\n\n{}\n",
        tests.join("\n")
    )
}

fn task_id(path: &Path, line: usize, v: Option<&serde_json::Value>) -> Result<u64, TaskError> {
    v.and_then(serde_json::Value::as_u64).ok_or_else(|| {
        TaskError::malformed(
            path,
            line,
            "field 'task_id' is missing or not a positive integer",
        )
    })
}

/// `mbpp.jsonl`: 974 tasks; challenge tests are kept apart, unscored.
pub(crate) fn load_full(path: &Path, dataset: &str) -> Result<Vec<Task>, TaskError> {
    let text = read_text(path)?;
    let mut tasks = Vec::new();
    for (line, m) in super::data::jsonl(path, &text)? {
        let id = task_id(path, line, m.get("task_id"))?;
        let desc = field_str(path, line, &m, "text")?;
        let code = field_str(path, line, &m, "code")?;
        let setup = field_str(path, line, &m, "test_setup_code")?;
        let tests = field_strings(path, line, &m, "test_list")?;
        let challenge = field_strings(path, line, &m, "challenge_test_list")?;
        if tests.is_empty() {
            return Err(TaskError::malformed(path, line, "test_list is empty"));
        }
        let mut extra = Vec::new();
        if !challenge.is_empty() {
            extra.push(suite("challenge", setup, challenge));
        }
        tasks.push(Task {
            id: id.to_string(),
            dataset: dataset.to_string(),
            prompt: prompt(desc, &tests),
            code_prompt: String::new(),
            header: String::new(),
            entry_point: None,
            canonical: vec![code.to_string()],
            visible: tests.clone(),
            visible_suite: Some(suite("visible", setup, tests[..1].to_vec())),
            repair_prompt: Some(prompt(desc, &tests[..1])),
            suites: vec![suite("tests", setup, tests)],
            extra,
            source: Source {
                file: path.to_path_buf(),
                line,
                split: Some(split(id).into()),
                ..Default::default()
            },
        });
    }
    Ok(tasks)
}

/// `sanitized-mbpp.json`: a JSON array of 427 tasks; `test_imports` is the setup.
pub(crate) fn load_sanitized(path: &Path, dataset: &str) -> Result<Vec<Task>, TaskError> {
    let text = read_text(path)?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| TaskError::malformed(path, e.line(), format!("invalid JSON: {e}")))?;
    let serde_json::Value::Array(items) = v else {
        return Err(TaskError::malformed(
            path,
            1,
            "expected a JSON array of tasks",
        ));
    };
    // Records carry no line numbers once parsed; find each one's opening line
    // by its task_id so errors still point into the file.
    let line_of = |id: Option<u64>| -> usize {
        id.and_then(|id| {
            let pat = format!("\"task_id\": {id},");
            let pat2 = format!("\"task_id\":{id},");
            text.find(&pat).or_else(|| text.find(&pat2))
        })
        .map(|at| text[..at].matches('\n').count() + 1)
        .unwrap_or(1)
    };
    let mut tasks = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let serde_json::Value::Object(m) = item else {
            return Err(TaskError::malformed(
                path,
                1,
                format!("item {i} is not an object"),
            ));
        };
        let line = line_of(m.get("task_id").and_then(serde_json::Value::as_u64));
        let id = task_id(path, line, m.get("task_id"))?;
        let desc = field_str(path, line, m, "prompt")?;
        let code = field_str(path, line, m, "code")?;
        let imports = field_strings(path, line, m, "test_imports")?;
        let tests = field_strings(path, line, m, "test_list")?;
        if tests.is_empty() {
            return Err(TaskError::malformed(path, line, "test_list is empty"));
        }
        tasks.push(Task {
            id: id.to_string(),
            dataset: dataset.to_string(),
            prompt: prompt(desc, &tests),
            code_prompt: String::new(),
            header: String::new(),
            entry_point: None,
            canonical: vec![code.to_string()],
            visible: tests.clone(),
            visible_suite: Some(suite("visible", &imports.join("\n"), tests[..1].to_vec())),
            repair_prompt: Some(prompt(desc, &tests[..1])),
            suites: vec![suite("tests", &imports.join("\n"), tests)],
            extra: Vec::new(),
            source: Source {
                file: path.to_path_buf(),
                line,
                split: Some(split(id).into()),
                ..Default::default()
            },
        });
    }
    Ok(tasks)
}
