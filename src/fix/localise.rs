//! Fault localisation: which source lines the failing tests point at.
//!
//! The suite runs once under our pytest plugin (`python/selfrepair_cover.py`),
//! which records the lines each test ran. A line's suspiciousness is the
//! Ochiai coefficient over the baseline's verdicts:
//! `failed(s) / sqrt(total_failed * (failed(s) + passed(s)))`, 1.0 for a line
//! that every failing test runs and no passing test does. The plugin's file
//! is written by a jailed run, so it is read as untrusted data: it can only
//! reorder mutants, never make one pass.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use serde::{Deserialize, Serialize};

use super::patch::is_test_file;

const PLUGIN: &str = include_str!("python/selfrepair_cover.py");

/// The plugin in a directory of its own, readable by the jail's uid.
pub(crate) fn write_plugin() -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("selfrepair-cover-")
        .tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let file = dir.path().join("selfrepair_cover.py");
    let mut f = std::fs::File::create(&file)?;
    f.write_all(PLUGIN.as_bytes())?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))?;
    Ok(dir)
}

#[derive(Deserialize)]
struct Report {
    tests: BTreeMap<String, TestLines>,
}

#[derive(Deserialize)]
struct TestLines {
    #[serde(default)]
    lines: BTreeMap<String, Vec<usize>>,
}

/// One ranked line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Suspect {
    pub file: String,
    pub line: usize,
    pub score: f64,
    /// Failing and passing tests that ran it.
    pub failed: usize,
    pub passed: usize,
}

/// Suspiciousness by (file, line); lines no failing test ran are absent.
#[derive(Clone, Debug, Default)]
pub(crate) struct Suspicion {
    /// By file, then line: looked up once per mutant, with no allocation.
    scores: BTreeMap<String, BTreeMap<usize, f64>>,
    ranked: Vec<Suspect>,
}

impl Suspicion {
    /// Ochiai over the plugin's report. `failing` are the baseline's failing
    /// ids, `passing` its passing ones; tests in neither are left out.
    pub fn ochiai(
        report: &str,
        failing: &BTreeSet<String>,
        passing: &BTreeSet<String>,
    ) -> Option<Suspicion> {
        let report: Report = serde_json::from_str(report).ok()?;
        let mut counts: BTreeMap<(&str, usize), (usize, usize)> = BTreeMap::new();
        let mut total_failed = 0usize;
        for (id, t) in &report.tests {
            let failed = failing.contains(id);
            if !failed && !passing.contains(id) {
                continue;
            }
            total_failed += usize::from(failed);
            // Tests are never mutated, so never suspects.
            for (file, lines) in t.lines.iter().filter(|(f, _)| !is_test_file(f)) {
                for l in lines.iter().collect::<BTreeSet<_>>() {
                    let c = counts.entry((file.as_str(), *l)).or_default();
                    if failed {
                        c.0 += 1;
                    } else {
                        c.1 += 1;
                    }
                }
            }
        }
        if total_failed == 0 {
            return None;
        }
        let mut ranked: Vec<Suspect> = counts
            .into_iter()
            .filter(|(_, (f, _))| *f > 0)
            .map(|((file, line), (f, p))| Suspect {
                file: file.to_string(),
                line,
                score: f as f64 / ((total_failed * (f + p)) as f64).sqrt(),
                failed: f,
                passed: p,
            })
            .collect();
        // Best first; ties in file and line order, so the ranking is stable.
        ranked.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.file.cmp(&b.file))
                .then(a.line.cmp(&b.line))
        });
        let mut scores: BTreeMap<String, BTreeMap<usize, f64>> = BTreeMap::new();
        for s in &ranked {
            scores
                .entry(s.file.clone())
                .or_default()
                .insert(s.line, s.score);
        }
        Some(Suspicion { scores, ranked })
    }

    /// The score of a line (0 when no failing test ran it).
    pub fn score(&self, file: &str, line: usize) -> f64 {
        self.scores
            .get(file)
            .and_then(|l| l.get(&line))
            .copied()
            .unwrap_or(0.0)
    }

    /// The `n` most suspicious lines.
    pub fn top(&self, n: usize) -> &[Suspect] {
        &self.ranked[..n.min(self.ranked.len())]
    }

    /// Whether a failing test ran any line of `file`.
    pub fn touches(&self, file: &str) -> bool {
        self.scores.contains_key(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ochiai_ranks_what_only_failing_tests_run_first() {
        let report = r#"{"version":1,"tests":{
            "t.py::fails":{"outcome":"failed","lines":{"m.py":[1,2,3]}},
            "t.py::passes":{"outcome":"passed","lines":{"m.py":[1,2,4]}},
            "t.py::other":{"outcome":"passed","lines":{"m.py":[1,5]}},
            "t.py::unknown":{"outcome":"failed","lines":{"m.py":[5]}},
            "t.py::self":{"outcome":"failed","lines":{"tests/test_m.py":[1]}}}}"#;
        let s = Suspicion::ochiai(
            report,
            &ids(&["t.py::fails", "t.py::self"]),
            &ids(&["t.py::passes", "t.py::other"]),
        )
        .unwrap();
        let top: Vec<(usize, f64)> = s.top(10).iter().map(|x| (x.line, x.score)).collect();
        // Two failing tests (one runs only test code, which never counts).
        assert_eq!(top[0].0, 3);
        assert!((top[0].1 - 1.0 / 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(top[1].0, 2);
        assert!((top[1].1 - 0.5).abs() < 1e-12);
        assert_eq!(top[2].0, 1);
        assert!((top[2].1 - 1.0 / 6f64.sqrt()).abs() < 1e-12);
        // Lines no failing test ran score 0, and a test the baseline never
        // saw ("unknown") counts for nothing.
        assert_eq!(s.score("m.py", 5), 0.0);
        assert_eq!(s.score("m.py", 4), 0.0);
        assert_eq!(top.len(), 3);
    }

    #[test]
    fn garbage_and_reports_without_failures_give_nothing() {
        assert!(Suspicion::ochiai("{", &ids(&["a"]), &ids(&[])).is_none());
        assert!(Suspicion::ochiai(r#"{"tests":[1]}"#, &ids(&["a"]), &ids(&[])).is_none());
        let only_passing = r#"{"tests":{"a":{"lines":{"m.py":[1]}}}}"#;
        assert!(Suspicion::ochiai(only_passing, &ids(&[]), &ids(&["a"])).is_none());
    }
}
