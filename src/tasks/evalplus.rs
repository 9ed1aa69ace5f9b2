//! HumanEval+ and MBPP+ (evalplus): inputs only in the files; expected outputs
//! come from the canonical solution ([`super::groundtruth`]). Each sample runs
//! `base` and `plus` as two sandbox runs (evalplus uses two processes), each a
//! Call spec with evalplus' comparison, per-input limits and fast-fail.

use super::data::{field_str, read_text};
use super::groundtruth::{Expected, GroundTruth, GtCase};
use super::{Format, Source, Suite, Task, TaskError};
use crate::sandbox::request::{CallCase, CallSpec};
use crate::sandbox::semantics::CallRule;
use crate::sandbox::{Guard, Limits, TestSpec};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// evalplus' per-input limit: max(4 s, 4 x the ground truth's time). The
/// floor is evalplus' since af49138 (2025-04); its 0.3.1 release on PyPI
/// has 1 s (`eval --min-time-limit 1`).
pub const MIN_TIME_LIMIT: f64 = 4.0;
pub(crate) const GT_TIME_FACTOR: f64 = 4.0;
/// evalplus' cap on one process: min(60, sum of limits) + 1.
pub(crate) const MAX_TASK_TIME: f64 = 60.0;

/// evalplus' MBPP output oracles, by entry point (evalplus.eval.__init__).
pub(crate) const MBPP_OUTPUT_NOT_NONE: [&str; 3] =
    ["check_str", "text_match_three", "text_starta_endb"];
pub(crate) const MBPP_OUTPUT_SET_EQ: [&str; 8] = [
    "similar_elements",
    "find_char_long",
    "common_in_nested_lists",
    "extract_singly",
    "larg_nnum",
    "intersection_array",
    "find_dissimilar",
    "Diff",
];

/// One line of an evalplus file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub task_id: String,
    pub prompt: String,
    pub entry_point: String,
    pub canonical_solution: String,
    /// The record's JSON text (NaN/Infinity as markers): the ground-truth
    /// script reads the inputs from it in Python, so big integers stay exact.
    #[serde(skip)]
    pub raw: String,
    pub atol: f64,
    /// HumanEval+: the original `check`; MBPP+: the original asserts.
    pub original_tests: String,
    #[serde(skip)]
    pub line: usize,
    #[serde(skip)]
    pub file: std::path::PathBuf,
}

impl Record {
    /// The MBPP task number, for input deserialisation (`Mbpp/2` -> 2).
    pub fn mbpp_number(&self) -> Option<u64> {
        self.task_id.strip_prefix("Mbpp/")?.parse().ok()
    }

    /// The evalplus oracle that replaces (or widens) `==` for this task.
    pub fn oracle(&self, format: Format) -> Option<&'static str> {
        let e = self.entry_point.as_str();
        match format {
            Format::EvalplusHumanEval if e == "find_zero" => Some("poly_root"),
            Format::EvalplusMbpp => match e {
                "are_equivalent" => Some("mbpp_always"),
                "sum_div" => Some("mbpp_sum_div"),
                "surface_Area" => Some("mbpp_surface_area"),
                "digit_distance_nums" => Some("mbpp_digit_distance"),
                _ if MBPP_OUTPUT_SET_EQ.contains(&e) => Some("mbpp_set_eq"),
                _ if MBPP_OUTPUT_NOT_NONE.contains(&e) => Some("mbpp_not_none"),
                _ => None,
            },
            _ => None,
        }
    }

    pub fn not_none(&self, format: Format) -> bool {
        format == Format::EvalplusMbpp && MBPP_OUTPUT_NOT_NONE.contains(&self.entry_point.as_str())
    }

    pub fn canonical_program(&self) -> String {
        format!("{}{}", self.prompt, self.canonical_solution)
    }
}

/// The inputs' fields: checked for their shape only, never parsed. They stay
/// text (the ground-truth script reads them in Python); as JSON trees,
/// HumanEval+'s 7.7 MB of inputs held over 100 MiB at once.
const INPUTS: [&str; 2] = ["base_input", "plus_input"];

/// One line's fields but the inputs, whose shape is checked: a list, or
/// `{}` (MBPP+ v0.2.0 stores Mbpp/793's empty plus inputs so).
fn fields(
    path: &Path,
    line: usize,
    text: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, TaskError> {
    let bad = |reason: String| TaskError::malformed(path, line, reason);
    let raw: std::collections::HashMap<String, &serde_json::value::RawValue> =
        serde_json::from_str(text).map_err(|e| bad(format!("invalid JSON object: {e}")))?;
    for key in INPUTS {
        let t = raw
            .get(key)
            .ok_or_else(|| bad(format!("missing field '{key}'")))?
            .get()
            .trim();
        let empty_object = t
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .is_some_and(|r| r.trim().is_empty());
        if !t.starts_with('[') && !empty_object {
            return Err(bad(format!("field '{key}' is not a list")));
        }
    }
    raw.into_iter()
        .filter(|(key, _)| !INPUTS.contains(&key.as_str()))
        .map(|(key, value)| {
            let v = serde_json::from_str(value.get())
                .map_err(|e| bad(format!("field '{key}': {e}")))?;
            Ok((key, v))
        })
        .collect()
}

/// Read and check every record (inputs stay JSON; ground truth evaluates them).
pub fn read(path: &Path, format: Format) -> Result<Vec<Record>, TaskError> {
    let text = read_text(path)?;
    let mut out = Vec::new();
    for (line, raw) in super::data::records(&text) {
        let m = fields(path, line, &raw)?;
        let atol = match m.get("atol") {
            Some(v) => v
                .as_f64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| TaskError::malformed(path, line, "field 'atol' is not a number"))?,
            None => 0.0,
        };
        let tests_key = if format == Format::EvalplusMbpp {
            "assertion"
        } else {
            "test"
        };
        out.push(Record {
            task_id: field_str(path, line, &m, "task_id")?.to_string(),
            prompt: field_str(path, line, &m, "prompt")?.to_string(),
            entry_point: field_str(path, line, &m, "entry_point")?.to_string(),
            canonical_solution: field_str(path, line, &m, "canonical_solution")?.to_string(),
            raw: raw.into_owned(),
            atol,
            // The Mini variant has no original tests.
            original_tests: match m.get(tests_key) {
                None => String::new(),
                Some(_) => field_str(path, line, &m, tests_key)?.to_string(),
            },
            line,
            file: path.to_path_buf(),
        });
    }
    Ok(out)
}

/// A suite of evalplus cases; `min_time_limit` is evalplus' floor on each
/// input's limit.
fn suite(
    name: &str,
    rec: &Record,
    format: Format,
    cases: Vec<GtCase>,
    skipped: usize,
    min_time_limit: f64,
) -> Suite {
    let time_limits: Vec<f64> = cases
        .iter()
        .map(|c| min_time_limit.max(GT_TIME_FACTOR * c.time))
        .collect();
    let total = time_limits.iter().sum::<f64>().min(MAX_TASK_TIME) + 1.0;
    let reference_time = Duration::from_secs_f64(cases.iter().map(|c| c.time.max(0.0)).sum());
    // The ground truth's strings move into the cases: HumanEval+'s are
    // tens of megabytes, and a copy of them would double the peak.
    let cases = cases
        .into_iter()
        .map(|c| match c.expected {
            Expected::Value(e) => CallCase {
                args_m: Some(c.args),
                expected_m: Some(e),
                ..CallCase::default()
            },
            // `digest` asks the program's run for its answer's digest.
            Expected::Digest { digest, head } => CallCase {
                args_m: Some(c.args),
                expected_digest: Some(digest),
                expected_head: Some(head),
                digest: true,
                ..CallCase::default()
            },
        })
        .collect();
    let skipped = if skipped > 0 {
        format!(
            "; {skipped} input(s) left out: outputs over 8 MiB with floats, dicts or sets, or over 2M items, which have no digest"
        )
    } else {
        String::new()
    };
    Suite {
        name: name.into(),
        tests: TestSpec::Call(CallSpec {
            fn_name: rec.entry_point.clone(),
            class_name: None,
            cases,
            compare: CallRule::Evalplus,
            atol: rec.atol,
            oracle: rec.oracle(format).map(str::to_string),
            time_limits,
        }),
        limits: Limits {
            timeout: Duration::from_secs_f64(total),
            memory_mb: 4096,
            max_output: 16 << 20,
            test_timeout: None,
        },
        guard: Guard::None,
        confirm_in: Some(crate::sandbox::SandboxKind::Process),
        reference_time: Some(reference_time),
        rule: match rec.oracle(format) {
            Some(o) => format!(
                "evalplus oracle {o}; per input max({min_time_limit} s, 4x ground truth){skipped}"
            ),
            None => format!(
                "evalplus: ==, else same type/length and allclose(rtol=1e-7, atol={}); per input max({min_time_limit} s, 4x ground truth){skipped}",
                if rec.atol == 0.0 {
                    "1e-6 for floats".to_string()
                } else {
                    rec.atol.to_string()
                }
            ),
        },
    }
}

/// Tasks from records and their ground truth (taken apart into the tasks).
pub fn build(
    records: Vec<Record>,
    mut gt: GroundTruth,
    dataset: &str,
    format: Format,
    min_time_limit: f64,
) -> Result<Vec<Task>, TaskError> {
    let mut tasks = Vec::new();
    for rec in records {
        let Some(t) = gt.tasks.remove(&rec.task_id) else {
            return Err(TaskError::GroundTruth {
                task: rec.task_id.clone(),
                reason: "missing from the ground-truth cache".into(),
            });
        };
        let skipped = |part: &str| t.skipped.iter().filter(|s| s.starts_with(part)).count();
        let visible = if format == Format::EvalplusMbpp {
            rec.prompt
                .lines()
                .filter(|l| l.trim_start().starts_with("assert"))
                .map(str::to_string)
                .collect()
        } else {
            Vec::new()
        };
        tasks.push(Task {
            id: rec.task_id.clone(),
            dataset: dataset.to_string(),
            prompt: rec.prompt.clone(),
            code_prompt: rec.prompt.clone(),
            header: String::new(),
            entry_point: Some(rec.entry_point.clone()),
            canonical: vec![rec.canonical_program()],
            visible,
            visible_suite: (format == Format::EvalplusMbpp).then(|| {
                suite(
                    "visible",
                    &rec,
                    format,
                    t.base.iter().take(1).cloned().collect(),
                    0,
                    min_time_limit,
                )
            }),
            suites: vec![
                suite(
                    "base",
                    &rec,
                    format,
                    t.base,
                    skipped("base"),
                    min_time_limit,
                ),
                suite(
                    "plus",
                    &rec,
                    format,
                    t.plus,
                    skipped("plus"),
                    min_time_limit,
                ),
            ],
            extra: Vec::new(),
            repair_prompt: None,
            source: Source {
                file: rec.file.clone(),
                line: rec.line,
                ..Default::default()
            },
        });
    }
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_lines(lines: &[&str]) -> Result<Vec<Record>, TaskError> {
        let dir = tempfile::tempdir().map_err(|e| TaskError::io(Path::new("."), e))?;
        let path = dir.path().join("plus.jsonl");
        std::fs::write(&path, lines.join("\n")).map_err(|e| TaskError::io(&path, e))?;
        read(&path, Format::EvalplusHumanEval)
    }

    const GOOD: &str = r#"{"task_id": "T/0", "prompt": "def f(x):\n", "entry_point": "f", "canonical_solution": "    return x\n", "base_input": [[1], [NaN]], "plus_input": {}, "atol": 0, "test": "def check(c): pass"}"#;

    #[test]
    fn inputs_stay_text_and_only_their_shape_is_checked() -> Result<(), TaskError> {
        let r = read_lines(&["", GOOD])?;
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].line, 2);
        assert!(
            r[0].raw.contains("[[1], [\"\\u0001sr:nan\"]]"),
            "{}",
            r[0].raw
        );
        assert_eq!(r[0].original_tests, "def check(c): pass");
        Ok(())
    }

    #[test]
    fn each_input_is_limited_by_evalplus_floor_or_four_times_its_reference() -> Result<(), TaskError>
    {
        use super::super::groundtruth::GtTask;
        let case = |time| GtCase {
            args: String::new(),
            expected: Expected::Value(String::new()),
            time,
        };
        let limits = |floor| -> Result<(Vec<f64>, Duration, String), TaskError> {
            let gt = GroundTruth {
                version: 0,
                dataset: "humaneval+".into(),
                sha256: String::new(),
                python: String::new(),
                tasks: [(
                    "T/0".to_string(),
                    GtTask {
                        base: vec![case(0.01), case(2.0)],
                        plus: vec![case(0.3)],
                        skipped: Vec::new(),
                    },
                )]
                .into(),
            };
            let tasks = build(
                read_lines(&[GOOD])?,
                gt,
                "humaneval+",
                Format::EvalplusHumanEval,
                floor,
            )?;
            let base = &tasks[0].suites[0];
            let TestSpec::Call(spec) = &base.tests else {
                panic!("not a Call suite: {:?}", base.tests)
            };
            Ok((
                spec.time_limits.clone(),
                base.limits.timeout,
                base.rule.clone(),
            ))
        };
        // evalplus since af49138: a 4 s floor; the whole run gets the sum + 1 s.
        let (each, whole, rule) = limits(MIN_TIME_LIMIT)?;
        assert_eq!(each, [4.0, 8.0]);
        assert_eq!(whole, Duration::from_secs(13));
        assert!(rule.contains("max(4 s, 4x ground truth)"), "{rule}");
        // evalplus 0.3.1 (PyPI): a 1 s floor.
        let (each, whole, rule) = limits(1.0)?;
        assert_eq!(each, [1.0, 8.0]);
        assert_eq!(whole, Duration::from_secs(10));
        assert!(rule.contains("max(1 s, 4x ground truth)"), "{rule}");
        Ok(())
    }

    #[test]
    fn a_bad_line_names_its_file_line_and_field() {
        let not_list = GOOD.replace(r#""plus_input": {}"#, r#""plus_input": 3"#);
        let missing = GOOD.replace(r#""base_input": [[1], [NaN]], "#, "");
        for (line, reason) in [
            (not_list.as_str(), "field 'plus_input' is not a list"),
            (missing.as_str(), "missing field 'base_input'"),
            ("[1, 2]", "invalid JSON object"),
            ("{\"task_id\": ", "invalid JSON object"),
        ] {
            match read_lines(&[GOOD, line]) {
                Err(TaskError::Malformed {
                    line: 2, reason: r, ..
                }) => {
                    assert!(r.contains(reason), "{r}")
                }
                other => panic!("{line}: {other:?}"),
            }
        }
    }
}
