//! What to run: a program, how to test it, and the limits.

use crate::semantics::{CallRule, Guard, StdoutRule};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How the program is tested. Serialised as the harness's `tests` object.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TestSpec {
    /// Run the program; it passes if it exits cleanly.
    Script,
    /// human-eval style: `code` defines `check(candidate)` (or top-level asserts
    /// and `test_*` functions when `entry_point` is None).
    Check {
        code: String,
        entry_point: Option<String>,
        /// Trusted code the tests may use (HumanEval's prompt: its helper
        /// functions), run by the judge in place of the program, which
        /// never runs where the verdict is made.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        context: String,
    },
    /// MBPP style: setup code, then independent assert statements.
    Asserts { setup: String, asserts: Vec<String> },
    /// stdin/stdout cases (APPS standard-input problems).
    Io {
        cases: Vec<IoCase>,
        compare: StdoutRule,
    },
    /// Function-call cases (APPS call-based, evalplus inputs).
    Call(CallSpec),
    /// One half of a judged run (see [`crate::judge`]): the program on the
    /// tests' inputs, with no test code and no expected value in reach.
    Compute(ComputeSpec),
    /// The other half: the tests, run without the program, every call into
    /// it answered from a compute run's answers.
    Judge(Box<JudgeSpec>),
}

/// What a compute run answers: calls found by walking the tests
/// (check/asserts), call cases without their expected values, or stdin inputs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct ComputeSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<serde_json::Value>,
    /// The tests' own setup (MBPP), which defines what some inputs are made of.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub setup: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<CallSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
    /// Seconds after which the run stops computing and reports what it has
    /// (where the interpreter has signals), below the run's hard limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<f64>,
}

/// What a judge run gets: the tests, and the program's answers (for
/// check/asserts `[name, get, canon, answer]` entries, else one per case).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct JudgeSpec {
    pub tests: TestSpec,
    #[serde(default)]
    pub answers: Vec<serde_json::Value>,
    /// Walk the tests for the calls they make, going on past unanswered ones.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub collect: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct IoCase {
    pub input: String,
    pub output: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CallSpec {
    pub fn_name: String,
    /// Call the method on `ClassName()` (APPS `class Solution` starters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    pub cases: Vec<CallCase>,
    pub compare: CallRule,
    #[serde(default)]
    pub atol: f64,
    /// Special oracle, e.g. `poly_root` for HumanEval/32.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oracle: Option<String>,
    /// Per-case limits in seconds (evalplus: max(4 s, 4x ground truth)).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub time_limits: Vec<f64>,
}

/// One call of a [`CallSpec`]: its arguments in one of three forms, and its
/// expected value in one of three forms or as a digest. Typed, so that what
/// a compute run may see ([`CallCase::inputs_only`]) is a field list, not a
/// key prefix.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct CallCase {
    /// A JSON list of arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<serde_json::Value>,
    /// A Python literal of the argument list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_py: Option<String>,
    /// Base64 of CPython marshal data of the argument list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_m: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_py: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_m: Option<String>,
    /// The harness's `value_digest` of the expected value, with a short head
    /// of it for reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_head: Option<String>,
    /// Ask the program's run for its answer's digest (set with `expected_digest`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub digest: bool,
}

impl CallCase {
    /// The case as a compute run gets it: the inputs, never the expectation.
    pub fn inputs_only(&self) -> CallCase {
        CallCase {
            args: self.args.clone(),
            args_py: self.args_py.clone(),
            args_m: self.args_m.clone(),
            digest: self.digest,
            ..CallCase::default()
        }
    }
}

/// Resource limits for one run. Every outcome records the limits it ran under.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Limits {
    /// Wall-clock limit for the whole run.
    #[serde(with = "secs")]
    pub timeout: Duration,
    /// Memory cap in MiB (linear memory in wasm, address space in a process).
    pub memory_mb: u64,
    /// Cap on captured stdout and stderr, in bytes each.
    pub max_output: usize,
    /// Per-test limit inside the harness (interrupting where signals exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_timeout: Option<f64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(10),
            memory_mb: 512,
            max_output: 1 << 20,
            test_timeout: None,
        }
    }
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom)
    }
}

/// One run: a program, its tests, stdin and limits.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunRequest {
    pub program: String,
    pub tests: TestSpec,
    #[serde(default)]
    pub stdin: String,
    #[serde(default)]
    pub limits: Limits,
    /// Stop at the first failing test (the reference harnesses do).
    #[serde(default = "yes")]
    pub fast_fail: bool,
    #[serde(default)]
    pub guard: Guard,
    /// Give up on a program still running after this long (its own run, not
    /// the sandbox's start-up) with [`crate::Status::Unavailable`], for a
    /// caller that has a faster sandbox for long runs. A scheduling hint of
    /// the host, never sent to the guest; only the fast wasm sandbox, whose
    /// interpreter computes several times slower than native, honours it.
    #[serde(skip)]
    pub budget: Option<Duration>,
}

fn yes() -> bool {
    true
}

impl RunRequest {
    pub fn new(program: impl Into<String>, tests: TestSpec) -> Self {
        RunRequest {
            program: program.into(),
            tests,
            stdin: String::new(),
            limits: Limits::default(),
            fast_fail: true,
            guard: Guard::None,
            budget: None,
        }
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}
