//! Metrics from recorded trees, recomputable offline from `nodes.jsonl`:
//! pass@t (pass rate against mean generated tokens) for batched and
//! sequential repair, by Olausson et al.'s bootstrap over a frozen tree;
//! the i.i.d. baseline from the same run; per-attempt pass rates;
//! correct→incorrect / incorrect→correct counts; cost per solved task; and
//! the error-type breakdown.

use super::store::{Execution, Mode, Node, NodeKind};
use crate::metrics::pass_at_k;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use std::collections::BTreeMap;

/// Olausson et al.'s seed and replicate count.
pub const BOOTSTRAP_SEED: u64 = 2023;
pub const BOOTSTRAP_SAMPLES: usize = 1000;

/// A program in a task's tree, with the branches grown from it.
#[derive(Clone, Debug)]
pub struct Prog {
    /// Generated tokens of this node (program + explanation).
    pub tokens: u64,
    pub prompt_tokens: u64,
    pub visible: bool,
    pub hidden: bool,
    /// Ran and failed its visible tests, so it may have repairs.
    pub expandable: bool,
    pub branches: Vec<Branch>,
}

/// One feedback of a program: a joint node, or a feedback node and its repairs.
#[derive(Clone, Debug)]
pub enum Branch {
    Joint(Prog),
    Feedback {
        tokens: u64,
        prompt_tokens: u64,
        repairs: Vec<Prog>,
    },
}

/// A task's recorded tree.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    pub initial: Vec<Prog>,
}

/// Which nodes of a tree to use: indices into `initial`, then per program
/// the chosen branches and per feedback the chosen repairs (all, or a
/// bootstrap sample with repeats).
#[derive(Clone, Debug)]
pub struct Pick {
    pub initial: Vec<(usize, PickProg)>,
}

#[derive(Clone, Debug, Default)]
pub struct PickProg {
    pub branches: Vec<(usize, Vec<(usize, PickProg)>)>,
}

impl Tree {
    pub fn build(nodes: &[Node]) -> Tree {
        let by_parent = {
            let mut m: BTreeMap<&str, Vec<&Node>> = BTreeMap::new();
            for n in nodes {
                if let Some(p) = &n.parent {
                    m.entry(p.as_str()).or_default().push(n);
                }
            }
            for v in m.values_mut() {
                v.sort_by_key(|n| super::store::node_order(&n.id));
            }
            m
        };
        let mut initial: Vec<&Node> = nodes
            .iter()
            .filter(|n| n.kind == NodeKind::Initial)
            .collect();
        initial.sort_by_key(|n| super::store::node_order(&n.id));
        Tree {
            initial: initial.into_iter().map(|n| prog(n, &by_parent)).collect(),
        }
    }

    /// Every recorded node.
    pub fn all(&self) -> Pick {
        fn all_prog(p: &Prog) -> PickProg {
            PickProg {
                branches: p
                    .branches
                    .iter()
                    .enumerate()
                    .map(|(i, b)| match b {
                        Branch::Joint(c) => (i, vec![(0, all_prog(c))]),
                        Branch::Feedback { repairs, .. } => (
                            i,
                            repairs
                                .iter()
                                .enumerate()
                                .map(|(j, r)| (j, all_prog(r)))
                                .collect(),
                        ),
                    })
                    .collect(),
            }
        }
        Pick {
            initial: self
                .initial
                .iter()
                .enumerate()
                .map(|(i, p)| (i, all_prog(p)))
                .collect(),
        }
    }

    /// Every recorded node down to `max_depth` (0: initial programs only).
    pub fn truncated(&self, max_depth: u32) -> Pick {
        fn cut(p: &PickProg, depth: u32, max: u32) -> PickProg {
            if depth >= max {
                return PickProg::default();
            }
            PickProg {
                branches: p
                    .branches
                    .iter()
                    .map(|(i, reps)| {
                        (
                            *i,
                            reps.iter()
                                .map(|(j, c)| (*j, cut(c, depth + 1, max)))
                                .collect(),
                        )
                    })
                    .collect(),
            }
        }
        let all = self.all();
        Pick {
            initial: all
                .initial
                .iter()
                .map(|(i, p)| (*i, cut(p, 0, max_depth)))
                .collect(),
        }
    }

    /// A bootstrap sub-tree: `np` initial programs, `nf` branches per
    /// expandable program and `nr` repairs per feedback, drawn with
    /// replacement. None when the recorded tree lacks the branches asked for.
    pub fn sample(&self, rng: &mut StdRng, np: u32, nf: u32, nr: u32) -> Option<Pick> {
        fn prog(p: &Prog, rng: &mut StdRng, nf: u32, nr: u32) -> Option<PickProg> {
            if !p.expandable || p.branches.is_empty() {
                return Some(PickProg::default());
            }
            let mut branches = Vec::new();
            for _ in 0..nf {
                let i = rng.random_range(0..p.branches.len());
                let reps = match &p.branches[i] {
                    Branch::Joint(c) => vec![(0, prog(c, rng, nf, nr)?)],
                    Branch::Feedback { repairs, .. } => {
                        if repairs.is_empty() {
                            return None;
                        }
                        let mut v = Vec::new();
                        for _ in 0..nr {
                            let j = rng.random_range(0..repairs.len());
                            v.push((j, prog(&repairs[j], rng, nf, nr)?));
                        }
                        v
                    }
                };
                branches.push((i, reps));
            }
            Some(PickProg { branches })
        }
        if self.initial.is_empty() {
            return None;
        }
        let mut initial = Vec::new();
        for _ in 0..np {
            let i = rng.random_range(0..self.initial.len());
            initial.push((i, prog(&self.initial[i], rng, nf, nr)?));
        }
        Some(Pick { initial })
    }

    /// Whether the tree's answer passes the hidden tests, and the generated
    /// tokens spent to reach it (prompt tokens beside), in `mode`.
    /// The answer is the first program, in the mode's order, that passes the
    /// visible tests.
    pub fn answer(&self, mode: Mode, pick: &Pick) -> (bool, Cost) {
        match mode {
            Mode::Batched => self.batched(pick),
            Mode::Sequential => {
                let mut cost = Cost::default();
                for (i, pp) in &pick.initial {
                    if let Some(h) = dfs(&self.initial[*i], pp, &mut cost) {
                        return (h, cost);
                    }
                }
                (false, cost)
            }
        }
    }

    fn batched(&self, pick: &Pick) -> (bool, Cost) {
        let mut cost = Cost::default();
        let mut level: Vec<(&Prog, &PickProg)> = pick
            .initial
            .iter()
            .map(|(i, pp)| (&self.initial[*i], pp))
            .collect();
        while !level.is_empty() {
            let mut found = None;
            for (p, _) in &level {
                cost.add(p.tokens, p.prompt_tokens);
                if found.is_none() && p.visible {
                    found = Some(p.hidden);
                }
            }
            if let Some(h) = found {
                return (h, cost);
            }
            let mut next = Vec::new();
            for (p, pp) in &level {
                for (bi, reps) in &pp.branches {
                    match &p.branches[*bi] {
                        Branch::Joint(c) => {
                            if let Some((_, cp)) = reps.first() {
                                next.push((c, cp));
                            }
                        }
                        Branch::Feedback {
                            tokens,
                            prompt_tokens,
                            repairs,
                        } => {
                            cost.add(*tokens, *prompt_tokens);
                            for (j, cp) in reps {
                                next.push((&repairs[*j], cp));
                            }
                        }
                    }
                }
            }
            level = next;
        }
        (false, cost)
    }
}

/// Depth first: Some(hidden verdict) at the first visible pass.
fn dfs(p: &Prog, pp: &PickProg, cost: &mut Cost) -> Option<bool> {
    cost.add(p.tokens, p.prompt_tokens);
    if p.visible {
        return Some(p.hidden);
    }
    for (bi, reps) in &pp.branches {
        match &p.branches[*bi] {
            Branch::Joint(c) => {
                if let Some((_, cp)) = reps.first()
                    && let Some(h) = dfs(c, cp, cost)
                {
                    return Some(h);
                }
            }
            Branch::Feedback {
                tokens,
                prompt_tokens,
                repairs,
            } => {
                cost.add(*tokens, *prompt_tokens);
                for (j, cp) in reps {
                    if let Some(h) = dfs(&repairs[*j], cp, cost) {
                        return Some(h);
                    }
                }
            }
        }
    }
    None
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Cost {
    pub generated: u64,
    pub prompt: u64,
}

impl Cost {
    fn add(&mut self, generated: u64, prompt: u64) {
        self.generated += generated;
        self.prompt += prompt;
    }
}

fn prog(n: &Node, by_parent: &BTreeMap<&str, Vec<&Node>>) -> Prog {
    let exec = n.execution.as_ref();
    let expandable = matches!(exec, Some(Execution::Ran { visible, .. }) if !visible.passed);
    let mut branches = Vec::new();
    for c in by_parent.get(n.id.as_str()).into_iter().flatten() {
        match c.kind {
            NodeKind::Joint => branches.push(Branch::Joint(prog(c, by_parent))),
            NodeKind::Feedback => branches.push(Branch::Feedback {
                tokens: c.tokens.generated(),
                prompt_tokens: c.tokens.prompt,
                repairs: by_parent
                    .get(c.id.as_str())
                    .into_iter()
                    .flatten()
                    .map(|r| prog(r, by_parent))
                    .collect(),
            }),
            _ => {}
        }
    }
    Prog {
        tokens: n.tokens.generated(),
        prompt_tokens: n.tokens.prompt,
        visible: exec.is_some_and(Execution::visible_pass),
        hidden: exec.is_some_and(Execution::hidden_pass),
        expandable,
        branches,
    }
}

/// Group a run's nodes into one tree per task, in task order.
pub fn trees(nodes: &[Node]) -> Vec<(String, Tree)> {
    let mut by_task: BTreeMap<(String, u64, String), Vec<Node>> = BTreeMap::new();
    for n in nodes {
        by_task
            .entry(super::store::task_order(&n.task))
            .or_default()
            .push(n.clone());
    }
    by_task
        .into_iter()
        .map(|((_, _, id), ns)| (id, Tree::build(&ns)))
        .collect()
}

/// A point of a pass@t curve: mean ± std over bootstrap replicates (or the
/// observed value with std over resampled tasks).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    pub mode: Mode,
    pub np: u32,
    pub nf: u32,
    pub nr: u32,
    pub pass_rate: f64,
    pub pass_std: f64,
    /// Mean generated tokens per task (program + explanation).
    pub tokens: f64,
    pub tokens_std: f64,
    pub prompt_tokens: f64,
    /// The i.i.d. baseline's pass rate at the same tokens (None beyond its range).
    pub baseline: Option<f64>,
    /// pass_rate / baseline.
    pub ratio: Option<f64>,
    /// `bootstrap` (frozen tree) or `observed`.
    pub estimate: &'static str,
}

/// Bootstrap pass@t for (np, nf, nr) in `mode` over `trees`.
pub fn bootstrap(
    trees: &[(String, Tree)],
    mode: Mode,
    np: u32,
    nf: u32,
    nr: u32,
    samples: usize,
) -> Option<Point> {
    let mut rng = StdRng::seed_from_u64(BOOTSTRAP_SEED);
    let mut pass = Vec::with_capacity(samples);
    let mut toks = Vec::with_capacity(samples);
    let mut prompt = Vec::with_capacity(samples);
    for _ in 0..samples {
        let (mut p, mut t, mut pr) = (0.0, 0.0, 0.0);
        for (_, tree) in trees {
            let pick = tree.sample(&mut rng, np, nf, nr)?;
            let (ok, cost) = tree.answer(mode, &pick);
            p += f64::from(u8::from(ok));
            t += cost.generated as f64;
            pr += cost.prompt as f64;
        }
        let n = trees.len().max(1) as f64;
        pass.push(p / n);
        toks.push(t / n);
        prompt.push(pr / n);
    }
    Some(Point {
        mode,
        np,
        nf,
        nr,
        pass_rate: mean(&pass),
        pass_std: std(&pass),
        tokens: mean(&toks),
        tokens_std: std(&toks),
        prompt_tokens: mean(&prompt),
        baseline: None,
        ratio: None,
        estimate: "bootstrap",
    })
}

/// The run as recorded: the observed pass rate and tokens, with std over
/// tasks resampled with replacement.
pub fn observed(trees: &[(String, Tree)], mode: Mode, np: u32, nf: u32, nr: u32) -> Point {
    let per: Vec<(f64, f64, f64)> = trees
        .iter()
        .map(|(_, t)| {
            let (ok, c) = t.answer(mode, &t.all());
            (f64::from(u8::from(ok)), c.generated as f64, c.prompt as f64)
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(BOOTSTRAP_SEED);
    let (mut ps, mut ts) = (Vec::new(), Vec::new());
    if !per.is_empty() {
        for _ in 0..BOOTSTRAP_SAMPLES {
            let (mut p, mut t) = (0.0, 0.0);
            for _ in 0..per.len() {
                let x = per[rng.random_range(0..per.len())];
                p += x.0;
                t += x.1;
            }
            ps.push(p / per.len() as f64);
            ts.push(t / per.len() as f64);
        }
    }
    let n = per.len().max(1) as f64;
    Point {
        mode,
        np,
        nf,
        nr,
        pass_rate: per.iter().map(|x| x.0).sum::<f64>() / n,
        pass_std: std(&ps),
        tokens: per.iter().map(|x| x.1).sum::<f64>() / n,
        tokens_std: std(&ts),
        prompt_tokens: per.iter().map(|x| x.2).sum::<f64>() / n,
        baseline: None,
        ratio: None,
        estimate: "observed",
    }
}

/// One point of the i.i.d. baseline: unbiased pass@k of the initial
/// programs, at k times the mean tokens of one program.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BaselinePoint {
    pub k: u32,
    pub pass_rate: f64,
    pub tokens: f64,
}

pub fn baseline(trees: &[(String, Tree)]) -> Vec<BaselinePoint> {
    let n_min = trees
        .iter()
        .map(|(_, t)| t.initial.len())
        .min()
        .unwrap_or(0);
    if trees.is_empty() || n_min == 0 {
        return Vec::new();
    }
    let per_prog: f64 = trees
        .iter()
        .map(|(_, t)| {
            t.initial.iter().map(|p| p.tokens as f64).sum::<f64>() / t.initial.len() as f64
        })
        .sum::<f64>()
        / trees.len() as f64;
    (1..=n_min as u32)
        .map(|k| {
            let rate = trees
                .iter()
                .map(|(_, t)| {
                    let n = t.initial.len() as u64;
                    let c = t.initial.iter().filter(|p| p.hidden).count() as u64;
                    pass_at_k(n, c, u64::from(k))
                })
                .sum::<f64>()
                / trees.len() as f64;
            BaselinePoint {
                k,
                pass_rate: rate,
                tokens: per_prog * f64::from(k),
            }
        })
        .collect()
}

/// The baseline's pass rate at `tokens`, interpolated linearly; None beyond
/// its largest budget (Olausson's O.O.B.).
pub fn baseline_at(base: &[BaselinePoint], tokens: f64) -> Option<f64> {
    let first = base.first()?;
    if tokens <= first.tokens {
        return Some(first.pass_rate * (tokens / first.tokens.max(1e-9)).min(1.0));
    }
    for w in base.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if tokens <= b.tokens {
            let f = (tokens - a.tokens) / (b.tokens - a.tokens).max(1e-9);
            return Some(a.pass_rate + f * (b.pass_rate - a.pass_rate));
        }
    }
    None
}

/// Repair edges by hidden verdict of parent and child program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Transitions {
    pub incorrect_to_correct: u64,
    pub correct_to_incorrect: u64,
    pub incorrect_to_incorrect: u64,
    pub correct_to_correct: u64,
}

pub fn transitions(nodes: &[Node]) -> Transitions {
    let by_key: BTreeMap<(&str, &str), &Node> = nodes
        .iter()
        .map(|n| ((n.task.as_str(), n.id.as_str()), n))
        .collect();
    let mut t = Transitions::default();
    for n in nodes
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::Repair | NodeKind::Joint))
    {
        // A repair's parent is its feedback node, whose parent is the program.
        let mut parent = n
            .parent
            .as_deref()
            .and_then(|p| by_key.get(&(n.task.as_str(), p)));
        if let Some(p) = parent
            && p.kind == NodeKind::Feedback
        {
            parent = p
                .parent
                .as_deref()
                .and_then(|pp| by_key.get(&(n.task.as_str(), pp)));
        }
        let (Some(p), Some(ce)) = (parent, n.execution.as_ref()) else {
            continue;
        };
        let before = p.execution.as_ref().is_some_and(Execution::hidden_pass);
        match (before, ce.hidden_pass()) {
            (false, true) => t.incorrect_to_correct += 1,
            (true, false) => t.correct_to_incorrect += 1,
            (false, false) => t.incorrect_to_incorrect += 1,
            (true, true) => t.correct_to_correct += 1,
        }
    }
    t
}

/// Failing programs by error type, and how many of them got a passing repair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ErrorCount {
    pub programs: u64,
    pub repaired: u64,
}

pub fn error_breakdown(nodes: &[Node]) -> BTreeMap<String, ErrorCount> {
    let mut children: BTreeMap<(&str, &str), Vec<&Node>> = BTreeMap::new();
    for n in nodes {
        if let Some(p) = &n.parent {
            children
                .entry((n.task.as_str(), p.as_str()))
                .or_default()
                .push(n);
        }
    }
    let repaired = |n: &Node| -> bool {
        let mut stack: Vec<&Node> = children
            .get(&(n.task.as_str(), n.id.as_str()))
            .cloned()
            .unwrap_or_default();
        while let Some(c) = stack.pop() {
            if c.execution.as_ref().is_some_and(Execution::hidden_pass) {
                return true;
            }
            if c.kind == NodeKind::Feedback {
                stack.extend(
                    children
                        .get(&(c.task.as_str(), c.id.as_str()))
                        .into_iter()
                        .flatten(),
                );
            }
        }
        false
    };
    let mut out: BTreeMap<String, ErrorCount> = BTreeMap::new();
    for n in nodes.iter().filter(|n| n.has_program()) {
        let Some(e) = &n.execution else { continue };
        if e.hidden_pass() {
            continue;
        }
        let c = out.entry(e.error_type()).or_default();
        c.programs += 1;
        if repaired(n) {
            c.repaired += 1;
        }
    }
    out
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.iter().sum::<f64>() / v.len() as f64
}

fn std(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(tokens: u64, visible: bool, hidden: bool, branches: Vec<Branch>) -> Prog {
        Prog {
            tokens,
            prompt_tokens: 0,
            visible,
            hidden,
            expandable: !visible,
            branches,
        }
    }

    /// Two initial programs: the first fails and has one joint repair that
    /// passes; the second passes outright.
    fn tree() -> Tree {
        Tree {
            initial: vec![
                p(
                    10,
                    false,
                    false,
                    vec![Branch::Joint(p(5, true, true, vec![]))],
                ),
                p(20, true, true, vec![]),
            ],
        }
    }

    #[test]
    fn batched_and_sequential_by_hand() {
        let t = tree();
        // Batched: level 0 holds a visible pass (program 2): 10 + 20 tokens.
        let (ok, c) = t.answer(Mode::Batched, &t.all());
        assert!(ok);
        assert_eq!(c.generated, 30);
        // Sequential: program 1 (10), its repair (5) passes: 15 tokens.
        let (ok, c) = t.answer(Mode::Sequential, &t.all());
        assert!(ok);
        assert_eq!(c.generated, 15);
        // Depth 0 only, sequential: program 1 fails, program 2 passes: 30.
        let (ok, c) = t.answer(Mode::Sequential, &t.truncated(0));
        assert!(ok);
        assert_eq!(c.generated, 30);
    }

    #[test]
    fn visible_pass_that_fails_hidden_is_the_answer() {
        let t = Tree {
            initial: vec![p(10, true, false, vec![]), p(10, true, true, vec![])],
        };
        let (ok, _) = t.answer(Mode::Sequential, &t.all());
        assert!(
            !ok,
            "the first visible pass is the answer, as a user would see it"
        );
    }

    #[test]
    fn bootstrap_with_one_initial_program_is_exact() {
        // np=1, nf=1 on a tree with one initial program and one repair: every
        // replicate is the same tree.
        let t = Tree {
            initial: vec![p(
                10,
                false,
                false,
                vec![Branch::Joint(p(5, true, true, vec![]))],
            )],
        };
        let trees = vec![("a".to_string(), t)];
        let pt = bootstrap(&trees, Mode::Batched, 1, 1, 1, 50).expect("sampled");
        assert_eq!(pt.pass_rate, 1.0);
        assert_eq!(pt.tokens, 15.0);
        assert_eq!(pt.pass_std, 0.0);
    }

    #[test]
    fn bootstrap_matches_the_closed_form_for_iid_sampling() {
        // nf=0 means no repair: pass@t of n_p samples with replacement from
        // 4 programs of which 1 passes is 1 - (3/4)^np.
        let t = Tree {
            initial: vec![
                p(10, true, true, vec![]),
                p(10, false, false, vec![]),
                p(10, false, false, vec![]),
                p(10, false, false, vec![]),
            ],
        };
        let trees: Vec<(String, Tree)> = (0..50).map(|i| (i.to_string(), t.clone())).collect();
        let pt = bootstrap(&trees, Mode::Sequential, 2, 0, 0, 400).expect("sampled");
        let exact = 1.0 - 0.75f64.powi(2);
        assert!(
            (pt.pass_rate - exact).abs() < 0.02,
            "{} vs {exact}",
            pt.pass_rate
        );
    }

    #[test]
    fn baseline_and_interpolation() {
        let t = Tree {
            initial: vec![p(10, true, true, vec![]), p(30, false, false, vec![])],
        };
        let trees = vec![("a".to_string(), t)];
        let b = baseline(&trees);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].pass_rate, 0.5);
        assert_eq!(b[0].tokens, 20.0);
        assert_eq!(b[1].pass_rate, 1.0);
        assert_eq!(baseline_at(&b, 30.0), Some(0.75));
        assert_eq!(baseline_at(&b, 41.0), None);
    }
}
