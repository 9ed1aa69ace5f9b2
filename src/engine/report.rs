//! `selfrepair report`: every metric of a run dir, as results.json,
//! report.md and a one-screen table. Computed only from `config.toml` and
//! `nodes.jsonl`, so any run can be re-reported offline.

use super::estimate::{self, BaselinePoint, ErrorCount, Point, Recorded, Transitions, Tree};
use super::interval::Interval;
use super::store::{Mode, Node, RunConfig, Shape};
use crate::metrics::mean_pass_at_k;
use crate::model::tokens::Bpe;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;

/// Olausson et al.'s grid, cut to half the frozen tree (see [`guard`]).
const NP_GRID: &[u32] = &[1, 2, 5, 10, 25];
const NF_GRID: &[u32] = &[1, 3, 5, 10];
/// Baseline rows shown in the table (all k are in results.json).
const BASELINE_ROWS: &[u32] = &[1, 2, 5, 10, 25, 50];

/// How incomplete trees enter the estimates.
pub(crate) const INCOMPLETE_RULE: &str = "an incomplete tree is left out of every estimate (the bootstrap, the baseline and the observed point) and counted in the totals";

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
    /// Program + explanation: what pass@t counts.
    pub generated_tokens: u64,
    /// The rest of the replies (fence lines, prose after the code, extra blocks).
    pub other_tokens: u64,
    pub prompt_tokens: u64,
    pub cost_usd: f64,
    pub generated_tokens_per_solved: Option<f64>,
    pub usd_per_solved: Option<f64>,
}

/// Unbiased pass@k by k, serialised as `{"pass@1": …, "pass@2": …}` in
/// numeric order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PassAtK(pub Vec<(u64, f64)>);

impl Serialize for PassAtK {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (format!("pass@{k}"), v)))
    }
}

/// A task whose recorded tree cannot be bootstrapped as it stands.
#[derive(Clone, Debug, Serialize)]
pub struct Incomplete {
    pub task: String,
    pub gaps: Vec<String>,
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
    /// How generated tokens were counted, e.g. `o200k_base` or
    /// `cl100k_base (estimate)` when it is not the model's own tokenizer.
    pub tokenizers: Vec<String>,
    /// The run's own tree shape, in its mode (observed), over the complete trees.
    pub observed: Option<Point>,
    /// pass@t points: the requested (np, nf), the grid and the dense n_fr = 1
    /// curve in both modes when the tree is frozen, else the observed point.
    pub pass_at_t: Vec<Point>,
    /// The baseline: the same bootstrap at n_fr = 0, k = 1..N_p, per mode.
    pub baseline: Vec<BaselinePoint>,
    /// Points not estimated, and why.
    pub skipped: Vec<String>,
    /// Trees left out of the estimates, by [`INCOMPLETE_RULE`].
    pub incomplete: Vec<Incomplete>,
    pub incomplete_rule: &'static str,
    /// Unbiased pass@k of the initial programs on the hidden tests (any of
    /// k passes: an oracle pick, not the curve's answer rule).
    pub pass_at_k: PassAtK,
    /// pass_rate_1..t: solved with the tree cut after attempt t.
    pub per_attempt: Vec<f64>,
    pub transitions: Transitions,
    pub errors: BTreeMap<String, ErrorCount>,
}

/// Whether (np, nf) is within half the recorded tree: with replacement, a
/// sub-tree near the recorded size repeats programs so often that it
/// understates what fresh samples would do (Olausson et al. keep n_p ≤ 25 of
/// 50 and n_fr ≤ 10 of 25). Err says why not.
pub fn guard(np: u32, nf: u32, shape: &Shape) -> Result<(), String> {
    if np == 0 {
        return Err(format!("({np},{nf}): n_p must be at least 1"));
    }
    if 2 * np > shape.np {
        return Err(format!(
            "({np},{nf}): n_p {np} > half the recorded {}",
            shape.np
        ));
    }
    if 2 * nf > shape.nf {
        return Err(format!(
            "({np},{nf}): n_fr {nf} > half the recorded {}",
            shape.nf
        ));
    }
    Ok(())
}

/// The shapes to bootstrap on a frozen tree, and those skipped by [`guard`].
fn shapes(want: Option<(u32, u32)>, shape: &Shape) -> (Vec<estimate::Shape>, Vec<String>) {
    let mut out: Vec<estimate::Shape> = Vec::new();
    let mut skipped = Vec::new();
    let mut push = |np: u32, nf: u32, curve: &'static str, out: &mut Vec<estimate::Shape>| {
        if out.iter().any(|s| (s.np, s.nf) == (np, nf)) {
            return;
        }
        match guard(np, nf, shape) {
            Ok(()) => out.push(estimate::Shape { np, nf, curve }),
            Err(why) => skipped.push(format!("{curve} {why}")),
        }
    };
    if let Some((np, nf)) = want {
        push(np, nf, "requested", &mut out);
    }
    for &np in NP_GRID.iter().filter(|&&n| n <= shape.np) {
        for &nf in NF_GRID.iter().filter(|&&n| n <= shape.nf) {
            push(np, nf, "grid", &mut out);
        }
    }
    push(shape.np, shape.nf, "recorded", &mut out);
    for np in 1..=shape.np / 2 {
        if guard(np, 1, shape).is_ok() {
            push(np, 1, "dense", &mut out);
        }
    }
    (out, skipped)
}

/// Compute every metric for `nodes`; `want` is an (np, nf) to estimate by bootstrap.
pub fn compute(
    cfg: &RunConfig,
    nodes: &[Node],
    want: Option<(u32, u32)>,
) -> Result<Results, ReportError> {
    compute_with(cfg, nodes, want, estimate::BOOTSTRAP_SAMPLES)
}

/// [`compute`] with `reps` tree-bootstrap replicates per point.
pub(crate) fn compute_with(
    cfg: &RunConfig,
    nodes: &[Node],
    want: Option<(u32, u32)>,
    reps: usize,
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
    // The baseline draws from all N_p initial programs, which only a batched
    // or frozen run is sure to have generated.
    let full_level0 = shape.frozen || cfg.mode == Mode::Batched;
    let mut included: Vec<&Tree> = Vec::new();
    let mut incomplete = Vec::new();
    for (id, t) in &trees {
        let gaps = t.gaps(&shape, nr, full_level0);
        if gaps.is_empty() {
            included.push(t);
        } else {
            incomplete.push(Incomplete {
                task: id.clone(),
                gaps,
            });
        }
    }
    let (todo, mut skipped) = if shape.frozen {
        shapes(want, &shape)
    } else {
        (Vec::new(), Vec::new())
    };
    let max_k = if full_level0 { shape.np } else { 0 };
    if max_k == 0 {
        skipped.push(
            "baseline: a sequential run stops at its first pass, so not all n_p initial programs exist; run batched or --frozen".to_string(),
        );
    }
    let recorded = Recorded {
        mode: cfg.mode,
        np: shape.np,
        nf: shape.nf,
        nr,
    };
    let mut est = if included.is_empty() {
        estimate::Estimates::default()
    } else {
        estimate::estimate(&included, &todo, recorded, max_k, reps)
    };
    let included_counts: Vec<(u64, u64)> = included
        .iter()
        .map(|t| {
            (
                t.initial.len() as u64,
                t.initial.iter().filter(|p| p.hidden).count() as u64,
            )
        })
        .collect();
    for b in &mut est.baseline {
        b.unbiased_pass_at_k = mean_pass_at_k(&included_counts, u64::from(b.k));
    }
    let observed_pt = est.observed.clone();
    let pass_at_t = if shape.frozen {
        est.points
    } else {
        observed_pt.iter().cloned().collect()
    };
    let counts: Vec<(u64, u64)> = trees
        .iter()
        .map(|(_, t)| {
            (
                t.initial.len() as u64,
                t.initial.iter().filter(|p| p.hidden).count() as u64,
            )
        })
        .collect();
    let pass_at_k = PassAtK(
        [1u64, 2, 5, 10, 20, 50, 100]
            .into_iter()
            .filter_map(|k| mean_pass_at_k(&counts, k).map(|v| (k, v)))
            .collect(),
    );
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
            other_tokens: nodes.iter().map(|n| n.tokens.other).sum(),
            prompt_tokens: nodes.iter().map(|n| n.tokens.prompt).sum(),
            cost_usd: cost,
            generated_tokens_per_solved: (solved > 0).then(|| generated as f64 / solved as f64),
            usd_per_solved: (solved > 0).then(|| cost / solved as f64),
        },
        tokenizers: tokenizers(nodes),
        observed: observed_pt,
        pass_at_t,
        baseline: est.baseline,
        skipped,
        incomplete,
        incomplete_rule: INCOMPLETE_RULE,
        pass_at_k,
        per_attempt,
        transitions: estimate::transitions(nodes),
        errors: estimate::error_breakdown(nodes),
    })
}

/// The distinct ways the nodes' tokens were counted.
fn tokenizers(nodes: &[Node]) -> Vec<String> {
    let mut out: Vec<String> = nodes
        .iter()
        .map(|n| match n.tokens.counted_by {
            Some(c) => {
                let name = match c.tokenizer {
                    Bpe::O200kBase => "o200k_base",
                    Bpe::Cl100kBase => "cl100k_base",
                    Bpe::Gguf => "the model's own",
                };
                if c.estimate {
                    format!("{name} (estimate)")
                } else {
                    name.to_string()
                }
            }
            None => "cl100k_base (unrecorded; estimate)".to_string(),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn ci(iv: Option<Interval>, f: impl Fn(f64) -> String) -> String {
    iv.map_or(String::new(), |iv| format!("[{}, {}]", f(iv.lo), f(iv.hi)))
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
        "tokens ({}): {} generated (program + explanation), {} other, {} prompt · ${:.4}",
        r.tokenizers.join(", "),
        t.generated_tokens,
        t.other_tokens,
        t.prompt_tokens,
        t.cost_usd
    ));
    if let (Some(tok), Some(usd)) = (t.generated_tokens_per_solved, t.usd_per_solved) {
        s.push_str(&format!(" · per solved task: {tok:.0} tokens, ${usd:.4}"));
    }
    s.push_str("\n\n");
    s.push_str(
        "| mode | n_p | n_fr | pass rate [95% CI] | ± tree | mean tokens [95% CI] | samples | baseline @ tokens | ratio [95% CI] | CI excludes 1 | baseline @ k = n_p+n_p·n_fr | ratio @ samples | curve |\n",
    );
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for p in r.pass_at_t.iter().filter(|p| p.curve != "dense") {
        s.push_str(&format!(
            "| {:?} | {} | {} | {} {} | {:.1} | {:.0} {} | {:.1} | {} | {} {} | {} | {} (k={}) | {} | {} |\n",
            p.mode,
            p.np,
            p.nf,
            pct(p.pass_rate),
            ci(p.pass_ci, pct),
            100.0 * p.pass_std,
            p.tokens,
            ci(p.tokens_ci, |x| format!("{x:.0}")),
            p.samples,
            p.baseline.map_or("O.O.B.".into(), pct),
            p.ratio.map_or("-".into(), |x| format!("{x:.2}")),
            match (p.ratio_ci, p.ratio_oob_share) {
                (None, Some(share)) if share > 0.0 => {
                    format!("[O.O.B. in {} of task resamples]", pct(share))
                }
                (iv, _) => ci(iv, |x| format!("{x:.2}")),
            },
            p.ratio_ci_excludes_1
                .map_or("-", |e| if e { "yes" } else { "no" }),
            p.baseline_at_samples.map_or("O.O.B.".into(), pct),
            p.sample_budget,
            p.ratio_at_samples.map_or("-".into(), |x| format!("{x:.2}")),
            if p.estimate == "observed" {
                "observed"
            } else {
                p.curve
            }
        ));
    }
    s.push_str(
        "\npass rate: mean over 1,000 tree-bootstrap draws; ± tree: their std (the paper's ±, programs resampled within these tasks); [95% CI]: percentile bootstrap over tasks.\n",
    );
    let dense: Vec<&Point> = r.pass_at_t.iter().filter(|p| p.nf == 1).collect();
    if dense.len() > 2 {
        s.push_str("\nn_fr = 1, every n_p (pass rate · mean tokens · ratio):\n\n| n_p | batched | sequential |\n|---|---|---|\n");
        let mut nps: Vec<u32> = dense.iter().map(|p| p.np).collect();
        nps.sort_unstable();
        nps.dedup();
        for np in nps {
            let cell = |m: Mode| {
                dense
                    .iter()
                    .find(|p| p.np == np && p.mode == m)
                    .map_or("-".into(), |p| {
                        format!(
                            "{} · {:.0} · {}",
                            pct(p.pass_rate),
                            p.tokens,
                            p.ratio.map_or("O.O.B.".into(), |x| format!("{x:.2}"))
                        )
                    })
            };
            s.push_str(&format!(
                "| {np} | {} | {} |\n",
                cell(Mode::Batched),
                cell(Mode::Sequential)
            ));
        }
    }
    if !r.baseline.is_empty() {
        s.push_str("\nbaseline (the same bootstrap at n_fr = 0: k programs, first visible pass judged hidden), and beside it unbiased pass@k (any of k passes hidden: an oracle pick, not used in any ratio):\n\n| mode | k | pass rate [95% CI] | mean tokens [95% CI] | samples | unbiased pass@k |\n|---|---|---|---|---|---|\n");
        let n_max = r.baseline.iter().map(|b| b.k).max().unwrap_or(0);
        for b in r
            .baseline
            .iter()
            .filter(|b| BASELINE_ROWS.contains(&b.k) || b.k == n_max)
        {
            s.push_str(&format!(
                "| {:?} | {} | {} {} | {:.0} {} | {:.1} | {} |\n",
                b.mode,
                b.k,
                pct(b.pass_rate),
                ci(b.pass_ci, pct),
                b.tokens,
                ci(b.tokens_ci, |x| format!("{x:.0}")),
                b.samples,
                b.unbiased_pass_at_k.map_or("-".into(), pct)
            ));
        }
    }
    s.push('\n');
    if !r.skipped.is_empty() {
        s.push_str(&format!("not estimated: {}\n", r.skipped.join("; ")));
    }
    if !r.incomplete.is_empty() {
        let names: Vec<String> = r
            .incomplete
            .iter()
            .map(|i| format!("{} ({})", i.task, i.gaps.join(", ")))
            .collect();
        s.push_str(&format!(
            "incomplete trees: {} of {} ({}): {}\n",
            r.incomplete.len(),
            t.tasks,
            r.incomplete_rule,
            names.join("; ")
        ));
    }
    let k: Vec<String> = r
        .pass_at_k
        .0
        .iter()
        .map(|(k, v)| format!("pass@{k} {}", pct(*v)))
        .collect();
    s.push_str(&format!(
        "unbiased pass@k (any of k initial programs passes the hidden tests; not the curve's answer rule): {}\n",
        k.join(" · ")
    ));
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
