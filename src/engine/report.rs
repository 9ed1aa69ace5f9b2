//! `selfrepair report`: every metric of a run dir, as results.json,
//! report.md and a one-screen table. Computed only from `config.toml` and
//! `nodes.jsonl`, so any run can be re-reported offline.

use super::estimate::{
    self, BaselinePoint, ErrorCount, Point, Transitions, Tree, baseline, baseline_at, bootstrap,
    observed,
};
use super::store::{Mode, Node, RunConfig, Shape};
use crate::metrics::mean_pass_at_k;
use serde::Serialize;
use std::collections::BTreeMap;

/// Olausson et al.'s grid, cut to what the frozen tree holds.
const NP_GRID: &[u32] = &[1, 2, 5, 10, 25];
const NF_GRID: &[u32] = &[1, 3, 5, 10];

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "--np {np} --nfr {nf} needs a frozen tree of at least that size; this run recorded np={rec_np}, nf={rec_nf}{frozen}"
    )]
    TooLarge {
        np: u32,
        nf: u32,
        rec_np: u32,
        rec_nf: u32,
        frozen: &'static str,
    },
    #[error("the run has no nodes yet")]
    Empty,
}

#[derive(Clone, Debug, Serialize)]
pub struct Totals {
    pub tasks: usize,
    pub solved: usize,
    pub nodes: usize,
    pub programs: usize,
    pub no_code: usize,
    pub rejected: usize,
    pub generated_tokens: u64,
    pub prompt_tokens: u64,
    pub cost_usd: f64,
    pub generated_tokens_per_solved: Option<f64>,
    pub usd_per_solved: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Results {
    pub dataset: String,
    pub model: String,
    pub feedback_model: String,
    pub mode: Mode,
    /// The recorded tree's shape (for joint trees n_r is 1).
    #[serde(flatten)]
    pub shape: Shape,
    pub totals: Totals,
    /// The run's own tree shape, in its mode (observed).
    pub observed: Point,
    /// pass@t points: the requested (np, nf) in both modes, and the grid
    /// when the tree is frozen.
    pub pass_at_t: Vec<Point>,
    pub baseline: Vec<BaselinePoint>,
    /// Unbiased pass@k of the initial programs.
    pub pass_at_k: BTreeMap<String, f64>,
    /// pass_rate_1..t: solved with the tree cut after attempt t.
    pub per_attempt: Vec<f64>,
    pub transitions: Transitions,
    pub errors: BTreeMap<String, ErrorCount>,
}

/// Compute every metric for `nodes`; `want` is an (np, nf) to estimate by bootstrap.
pub fn compute(
    cfg: &RunConfig,
    nodes: &[Node],
    want: Option<(u32, u32)>,
) -> Result<Results, ReportError> {
    if nodes.is_empty() {
        return Err(ReportError::Empty);
    }
    let shape = cfg.shape;
    let trees: Vec<(String, Tree)> = estimate::trees(nodes);
    let nr = if shape.joint { 1 } else { shape.nr };
    if let Some((np, nf)) = want
        && (np > shape.np || nf > shape.nf || (!shape.frozen && (np, nf) != (shape.np, shape.nf)))
    {
        return Err(ReportError::TooLarge {
            np,
            nf,
            rec_np: shape.np,
            rec_nf: shape.nf,
            frozen: if shape.frozen {
                ""
            } else {
                " (and is not frozen: rerun with --frozen NPxNF to estimate other shapes)"
            },
        });
    }
    let base = baseline(&trees);
    let with_baseline = |mut p: Point| {
        p.baseline = baseline_at(&base, p.tokens);
        p.ratio = p.baseline.filter(|b| *b > 0.0).map(|b| p.pass_rate / b);
        p
    };
    let observed_pt = with_baseline(observed(&trees, cfg.mode, shape.np, shape.nf, nr));
    let mut pass_at_t = Vec::new();
    if shape.frozen {
        let mut shapes: Vec<(u32, u32)> = Vec::new();
        if let Some(w) = want {
            shapes.push(w);
        }
        for &np in NP_GRID.iter().filter(|&&n| n <= shape.np) {
            for &nf in NF_GRID.iter().filter(|&&n| n <= shape.nf) {
                if !shapes.contains(&(np, nf)) {
                    shapes.push((np, nf));
                }
            }
        }
        if !shapes.contains(&(shape.np, shape.nf)) {
            shapes.push((shape.np, shape.nf));
        }
        for (np, nf) in shapes {
            for mode in [Mode::Batched, Mode::Sequential] {
                if let Some(p) = bootstrap(&trees, mode, np, nf, nr, estimate::BOOTSTRAP_SAMPLES) {
                    pass_at_t.push(with_baseline(p));
                }
            }
        }
    } else {
        for mode in [Mode::Batched, Mode::Sequential] {
            if mode == cfg.mode {
                pass_at_t.push(observed_pt.clone());
            }
        }
    }
    let counts: Vec<(u64, u64)> = trees
        .iter()
        .map(|(_, t)| {
            (
                t.initial.len() as u64,
                t.initial.iter().filter(|p| p.hidden).count() as u64,
            )
        })
        .collect();
    let mut pass_at_k = BTreeMap::new();
    for k in [1u64, 2, 5, 10, 20, 50, 100] {
        if let Some(v) = mean_pass_at_k(&counts, k) {
            pass_at_k.insert(format!("pass@{k}"), v);
        }
    }
    let per_attempt = (0..=shape.depth)
        .map(|d| {
            let solved = trees
                .iter()
                .filter(|(_, t)| t.answer(cfg.mode, &t.truncated(d)).0)
                .count();
            solved as f64 / trees.len().max(1) as f64
        })
        .collect();
    let solved = trees
        .iter()
        .filter(|(_, t)| t.answer(cfg.mode, &t.all()).0)
        .count();
    let programs: Vec<&Node> = nodes.iter().filter(|n| n.has_program()).collect();
    let count_kind = |k: &str| {
        programs
            .iter()
            .filter(|n| n.execution.as_ref().is_some_and(|e| e.error_type() == k))
            .count()
    };
    let generated: u64 = nodes.iter().map(|n| n.tokens.generated()).sum();
    let cost: f64 = nodes.iter().map(|n| n.cost_usd).sum();
    Ok(Results {
        dataset: cfg.dataset.clone(),
        model: cfg.model.clone(),
        feedback_model: cfg.feedback_model.clone(),
        mode: cfg.mode,
        shape: Shape { nr, ..shape },
        totals: Totals {
            tasks: trees.len(),
            solved,
            nodes: nodes.len(),
            programs: programs.len(),
            no_code: count_kind("no_code"),
            rejected: count_kind("rejected"),
            generated_tokens: generated,
            prompt_tokens: nodes.iter().map(|n| n.tokens.prompt).sum(),
            cost_usd: cost,
            generated_tokens_per_solved: (solved > 0).then(|| generated as f64 / solved as f64),
            usd_per_solved: (solved > 0).then(|| cost / solved as f64),
        },
        observed: observed_pt,
        pass_at_t,
        baseline: base,
        pass_at_k,
        per_attempt,
        transitions: estimate::transitions(nodes),
        errors: estimate::error_breakdown(nodes),
    })
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// The one-screen summary (also the head of report.md).
pub fn render(r: &Results) -> String {
    let t = &r.totals;
    let mut s = String::new();
    let shape = if r.shape.joint {
        format!("n_p={} n_fr={}", r.shape.np, r.shape.nf)
    } else {
        format!("n_p={} n_f={} n_r={}", r.shape.np, r.shape.nf, r.shape.nr)
    };
    s.push_str(&format!(
        "{} · {} (feedback: {}) · {:?} · {shape} · depth {}{}\n\n",
        r.dataset,
        r.model,
        r.feedback_model,
        r.mode,
        r.shape.depth,
        if r.shape.frozen { " · frozen" } else { "" }
    ));
    s.push_str(&format!(
        "solved {}/{} ({}) · {} nodes, {} programs ({} no code, {} rejected)\n",
        t.solved,
        t.tasks,
        pct(t.solved as f64 / t.tasks.max(1) as f64),
        t.nodes,
        t.programs,
        t.no_code,
        t.rejected
    ));
    s.push_str(&format!(
        "tokens: {} generated, {} prompt · ${:.4}",
        t.generated_tokens, t.prompt_tokens, t.cost_usd
    ));
    if let (Some(tok), Some(usd)) = (t.generated_tokens_per_solved, t.usd_per_solved) {
        s.push_str(&format!(" · per solved task: {tok:.0} tokens, ${usd:.4}"));
    }
    s.push_str("\n\n");
    s.push_str("| mode | n_p | n_fr | pass rate | ± | mean tokens | prompt tokens | baseline @ tokens | ratio | estimate |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for p in &r.pass_at_t {
        s.push_str(&format!(
            "| {:?} | {} | {} | {} | {:.1} | {:.0} | {:.0} | {} | {} | {} |\n",
            p.mode,
            p.np,
            p.nf,
            pct(p.pass_rate),
            100.0 * p.pass_std,
            p.tokens,
            p.prompt_tokens,
            p.baseline.map_or("O.O.B.".into(), pct),
            p.ratio.map_or("-".into(), |x| format!("{x:.2}")),
            p.estimate
        ));
    }
    s.push('\n');
    let k: Vec<String> = r
        .pass_at_k
        .iter()
        .map(|(k, v)| format!("{k} {}", pct(*v)))
        .collect();
    s.push_str(&format!("i.i.d. baseline: {}\n", k.join(" · ")));
    let att: Vec<String> = r
        .per_attempt
        .iter()
        .enumerate()
        .map(|(i, v)| format!("pass_rate_{} {}", i + 1, pct(*v)))
        .collect();
    s.push_str(&format!("per attempt: {}\n", att.join(" · ")));
    let tr = &r.transitions;
    s.push_str(&format!(
        "repairs: incorrect→correct {} · correct→incorrect {} · incorrect→incorrect {} · correct→correct {}\n",
        tr.incorrect_to_correct, tr.correct_to_incorrect, tr.incorrect_to_incorrect, tr.correct_to_correct
    ));
    if !r.errors.is_empty() {
        s.push_str("\n| error type | failing programs | repaired |\n|---|---|---|\n");
        let mut errs: Vec<(&String, &ErrorCount)> = r.errors.iter().collect();
        errs.sort_by(|a, b| b.1.programs.cmp(&a.1.programs).then(a.0.cmp(b.0)));
        for (k, c) in errs {
            s.push_str(&format!("| {k} | {} | {} |\n", c.programs, c.repaired));
        }
    }
    s
}
