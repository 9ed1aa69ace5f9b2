//! Growing repair trees (Olausson et al.): n_p initial programs; for each
//! program failing its visible tests, n_f feedbacks with n_r repairs each,
//! or n_f joint explanation-plus-repair samples; up to `depth`. Batched mode
//! works level by level and stops at the first level with a visible pass;
//! sequential mode goes depth first and stops at the first pass; a frozen
//! tree expands everything, for the bootstrap.
//!
//! Every node is appended to the run store as soon as it is complete. Nodes
//! already on disk are reused, and model calls already in the transcript are
//! answered from it, so a resumed run repeats no paid call.

use super::extract::{self, Refusal, Target};
use super::prompts::{PromptSet, Stage, Vars};
use super::store::{Execution, Mode, Node, NodeKind, RunDir, StoreError, Tokens, Verdict, Visible};
use crate::eval::Scorer;
use crate::feedback;
use crate::model::tokens;
use crate::model::transcript::{RecordedCalls, TranscriptEntry, fingerprint, read_entries};
use crate::model::{ChatRequest, Client, Completion, Model, ModelError, SamplingParams, Usage};
use crate::sandbox::{Outcome, TestSpec};
use crate::tasks::{Suite, Task};
use futures_util::StreamExt;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("model call for {task} {node} failed: {source}")]
    Model {
        task: String,
        node: String,
        #[source]
        source: ModelError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the run was cancelled")]
    Cancelled,
}

/// How one task ended.
#[derive(Clone, Debug, Default)]
pub struct TaskResult {
    pub task: String,
    /// The tree's answer (first visible pass) passed the hidden tests.
    pub solved: bool,
    pub nodes: usize,
    pub generated_tokens: u64,
    pub prompt_tokens: u64,
    pub cost_usd: f64,
    /// Ended early by a budget.
    pub budget_stop: Option<String>,
}

/// Models, prompts, sandboxes and the store for one run.
pub struct Engine {
    pub run: RunDir,
    pub prompts: PromptSet,
    pub model: Arc<Client>,
    pub feedback_model: Arc<Client>,
    pub scorer: Arc<Scorer>,
    pub cancel: CancellationToken,
    /// Calls an earlier attempt at this run completed (for `--resume`).
    recorded: RecordedCalls,
}

impl Engine {
    pub fn new(
        run: RunDir,
        prompts: PromptSet,
        model: Arc<Client>,
        feedback_model: Arc<Client>,
        scorer: Arc<Scorer>,
        recorded: Vec<TranscriptEntry>,
    ) -> Engine {
        Engine {
            run,
            prompts,
            model,
            feedback_model,
            scorer,
            cancel: CancellationToken::new(),
            recorded: RecordedCalls::new(recorded),
        }
    }

    /// Completed calls of an earlier attempt at this run (for `--resume`).
    pub fn recorded_calls(dir: &std::path::Path) -> Result<Vec<TranscriptEntry>, ModelError> {
        let p = dir.join(crate::model::transcript::TRANSCRIPT_FILE);
        if p.exists() {
            read_entries(&p)
        } else {
            Ok(Vec::new())
        }
    }

    /// Grow the trees of `tasks`, `jobs` at a time, calling `on_done` as each finishes.
    pub async fn run_tasks(
        &self,
        tasks: &[Task],
        jobs: usize,
        on_done: &(dyn Fn(&TaskResult) + Sync),
    ) -> Result<Vec<TaskResult>, EngineError> {
        let mut stream = futures_util::stream::iter(tasks.iter().map(|t| self.run_task(t)))
            .buffered(jobs.max(1));
        let mut results = Vec::with_capacity(tasks.len());
        while let Some(r) = stream.next().await {
            let r = r?;
            on_done(&r);
            results.push(r);
        }
        Ok(results)
    }

    /// One task's tree.
    pub async fn run_task(&self, task: &Task) -> Result<TaskResult, EngineError> {
        let cfg = &self.run.config;
        let shape = cfg.shape;
        let mut t = TaskRun {
            engine: self,
            task,
            nodes: Vec::new(),
            budget_stop: None,
        };
        let initial_ids: Vec<String> = (0..shape.np).map(|i| format!("p{i}")).collect();
        match (cfg.mode, shape.frozen) {
            (Mode::Batched, _) | (_, true) => {
                // Level by level; a frozen tree never stops early.
                let mut frontier = t.programs(&initial_ids, None, 0).await?;
                let mut found = frontier.iter().any(passes_visible);
                for depth in 1..=shape.depth {
                    if (found && !shape.frozen) || t.budget_stop.is_some() {
                        break;
                    }
                    let failing: Vec<Node> = frontier.into_iter().filter(expandable).collect();
                    let children = futures_util::future::join_all(
                        failing.iter().map(|p| t.repairs_of(p, depth)),
                    )
                    .await;
                    let next = t.collect(children.into_iter().flatten().collect())?;
                    found |= next.iter().any(passes_visible);
                    frontier = next;
                }
            }
            (Mode::Sequential, false) => {
                for id in &initial_ids {
                    if t.budget_stop.is_some() {
                        break;
                    }
                    let p = t.program(id, None, 0).await?;
                    if t.dfs(p, 1).await? {
                        break;
                    }
                }
            }
        }
        let nodes = std::mem::take(&mut t.nodes);
        let tree = super::estimate::Tree::build(&nodes);
        let (solved, _) = tree.answer(cfg.mode, &tree.all());
        Ok(TaskResult {
            task: task.id.clone(),
            solved,
            nodes: nodes.len(),
            generated_tokens: nodes.iter().map(|n| n.tokens.generated()).sum(),
            prompt_tokens: nodes.iter().map(|n| n.tokens.prompt).sum(),
            cost_usd: nodes.iter().map(|n| n.cost_usd).sum(),
            budget_stop: t.budget_stop,
        })
    }
}

fn passes_visible(n: &Node) -> bool {
    n.execution.as_ref().is_some_and(Execution::visible_pass)
}

/// A program that ran and failed its visible tests can be repaired.
fn expandable(n: &Node) -> bool {
    matches!(&n.execution, Some(Execution::Ran { visible, .. }) if !visible.passed)
}

/// The state of one task's tree while it grows.
struct TaskRun<'a> {
    engine: &'a Engine,
    task: &'a Task,
    nodes: Vec<Node>,
    budget_stop: Option<String>,
}

impl TaskRun<'_> {
    /// Depth-first below `p`; true once a visible pass is found.
    async fn dfs(&mut self, p: Option<Node>, depth: u32) -> Result<bool, EngineError> {
        let Some(p) = p else { return Ok(false) };
        if passes_visible(&p) {
            return Ok(true);
        }
        let shape = self.engine.run.config.shape;
        if depth > shape.depth || !expandable(&p) {
            return Ok(false);
        }
        for f in 0..shape.nf {
            if self.budget_stop.is_some() {
                return Ok(false);
            }
            if shape.joint {
                let id = format!("{}.j{f}", p.id);
                let child = self
                    .repair_program(&id, &p, None, NodeKind::Joint, depth)
                    .await?;
                if Box::pin(self.dfs(child, depth + 1)).await? {
                    return Ok(true);
                }
            } else {
                let Some(fb) = self
                    .feedback_node(&format!("{}.f{f}", p.id), &p, depth)
                    .await?
                else {
                    return Ok(false);
                };
                for r in 0..shape.nr {
                    let id = format!("{}.r{r}", fb.id);
                    let child = self
                        .repair_program(&id, &p, Some(&fb), NodeKind::Repair, depth)
                        .await?;
                    if Box::pin(self.dfs(child, depth + 1)).await? {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }

    /// Programs with the given ids, concurrently.
    async fn programs(
        &mut self,
        ids: &[String],
        parent: Option<&Node>,
        depth: u32,
    ) -> Result<Vec<Node>, EngineError> {
        let e = self.engine;
        let task = self.task;
        let made = futures_util::future::join_all(
            ids.iter()
                .map(|id| make_initial(e, task, id, parent.map(|p| p.id.clone()), depth)),
        )
        .await;
        self.collect(made)
    }

    async fn program(
        &mut self,
        id: &str,
        parent: Option<&Node>,
        depth: u32,
    ) -> Result<Option<Node>, EngineError> {
        let v = self.programs(&[id.to_string()], parent, depth).await?;
        Ok(v.into_iter().next())
    }

    /// All repairs of one failing program (batched), feedback nodes included.
    async fn repairs_of(&self, p: &Node, depth: u32) -> Vec<Result<Node, EngineError>> {
        let e = self.engine;
        let shape = e.run.config.shape;
        let task = self.task;
        if shape.joint {
            return futures_util::future::join_all((0..shape.nf).map(|f| {
                let id = format!("{}.j{f}", p.id);
                async move { make_repair(e, task, &id, p, None, NodeKind::Joint, depth).await }
            }))
            .await;
        }
        let fbs = futures_util::future::join_all((0..shape.nf).map(|f| {
            let id = format!("{}.f{f}", p.id);
            async move { make_feedback(e, task, &id, p, depth).await }
        }))
        .await;
        let mut out = Vec::new();
        for fb in fbs {
            let fb = match fb {
                Ok(fb) => fb,
                Err(err) => {
                    out.push(Err(err));
                    continue;
                }
            };
            let reps =
                futures_util::future::join_all(
                    (0..shape.nr).map(|r| {
                        let id = format!("{}.r{r}", fb.id);
                        let fb = &fb;
                        async move {
                            make_repair(e, task, &id, p, Some(fb), NodeKind::Repair, depth).await
                        }
                    }),
                )
                .await;
            out.push(Ok(fb.clone()));
            out.extend(reps);
        }
        out
    }

    async fn feedback_node(
        &mut self,
        id: &str,
        p: &Node,
        depth: u32,
    ) -> Result<Option<Node>, EngineError> {
        let r = make_feedback(self.engine, self.task, id, p, depth).await;
        Ok(self.collect(vec![r])?.into_iter().next())
    }

    async fn repair_program(
        &mut self,
        id: &str,
        p: &Node,
        fb: Option<&Node>,
        kind: NodeKind,
        depth: u32,
    ) -> Result<Option<Node>, EngineError> {
        let r = make_repair(self.engine, self.task, id, p, fb, kind, depth).await;
        Ok(self.collect(vec![r])?.into_iter().next())
    }

    fn collect(&mut self, made: Vec<Result<Node, EngineError>>) -> Result<Vec<Node>, EngineError> {
        let mut out = Vec::new();
        for m in made {
            match m {
                Ok(n) => {
                    self.nodes.push(n.clone());
                    out.push(n);
                }
                Err(EngineError::Model {
                    source: ModelError::BudgetExceeded(b),
                    ..
                }) => self.budget_stop = Some(b.to_string()),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

fn spec(e: &Engine, task: &Task) -> String {
    match (e.run.config.visible, &task.repair_prompt) {
        (Visible::Protocol, Some(p)) => p.clone(),
        _ => task.prompt.clone(),
    }
}

/// The class whose method the tests call (APPS `class Solution` starters).
fn call_class(task: &Task) -> Option<&str> {
    task.suites.first().and_then(|s| match &s.tests {
        TestSpec::Call(c) => c.class_name.as_deref(),
        _ => None,
    })
}

fn answer_format(task: &Task) -> String {
    match (&task.entry_point, call_class(task)) {
        (Some(f), Some(c)) => format!(
            "Write a class `{c}` with a method `{f}` as in the starter code, as one complete Python program."
        ),
        (Some(f), None) => format!(
            "Write the function `{f}` (with the imports and helpers it needs) as one complete Python program; do not include tests or example usage."
        ),
        (None, _) => "Write a complete Python program that reads standard input and writes the answer to standard output.".into(),
    }
}

fn target(task: &Task) -> Target<'_> {
    // Asserts, check functions and call cases run in the program's
    // namespace; stdin programs are only fed input.
    let shared_namespace = task
        .suites
        .iter()
        .any(|s| !matches!(s.tests, TestSpec::Io { .. } | TestSpec::Script));
    Target {
        entry_point: task.entry_point.as_deref(),
        class_name: call_class(task),
        code_prompt: &task.code_prompt,
        shared_namespace,
    }
}

fn seed_for(base: u64, task: &str, id: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("{base}/{task}/{id}").as_bytes());
    u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]) >> 1
}

/// The completion for a request: a recorded one if this run already paid for
/// it, else a live call.
async fn complete(
    e: &Engine,
    client: &Client,
    req: &ChatRequest,
    task: &str,
    node: &str,
) -> Result<Completion, EngineError> {
    let fp = fingerprint(client.model(), req);
    if let Some(c) = e
        .recorded
        .take(&fp)
        .and_then(TranscriptEntry::into_completion)
    {
        // Paid before the crash: it counts against this run's budgets too.
        client
            .budget()
            .record(req.task.as_deref(), &c.usage, c.cost_usd);
        return Ok(c);
    }
    client
        .complete_with_cancel(req, &e.cancel)
        .await
        .map_err(|source| EngineError::Model {
            task: task.to_string(),
            node: node.to_string(),
            source,
        })
}

struct Call {
    text: String,
    usage: Usage,
    cost_usd: f64,
    latency_ms: f64,
    model: String,
    temperature: f64,
    seed: u64,
}

async fn call(
    e: &Engine,
    client: &Client,
    stage: Stage,
    vars: &Vars<'_>,
    task: &Task,
    id: &str,
) -> Result<Call, EngineError> {
    let cfg = &e.run.config;
    let temperature = if stage == Stage::Generate {
        cfg.temperature
    } else {
        cfg.repair_temperature
    };
    let seed = seed_for(cfg.seed, &task.id, id);
    let msgs = super::prompts::render(e.prompts.get(stage), vars);
    let req = ChatRequest::new(msgs)
        .with_params(SamplingParams {
            temperature: Some(temperature),
            max_tokens: cfg.max_tokens,
            seed: Some(seed),
            n: 1,
            ..SamplingParams::default()
        })
        .with_key(format!("{}/{id}", task.id))
        .with_task(task.id.clone());
    let c = complete(e, client, &req, &task.id, id).await?;
    let text = c
        .choices
        .into_iter()
        .next()
        .map(|ch| ch.text)
        .unwrap_or_default();
    Ok(Call {
        text,
        usage: c.usage,
        cost_usd: c.cost_usd,
        latency_ms: c.latency.as_secs_f64() * 1000.0,
        model: c.model,
        temperature,
        seed,
    })
}

/// Where a node sits in its tree.
struct Place<'a> {
    id: &'a str,
    parent: Option<String>,
    kind: NodeKind,
    depth: u32,
}

fn node(e: &Engine, task: &Task, at: Place, stage: Stage, c: Call) -> Node {
    let Place {
        id,
        parent,
        kind,
        depth,
    } = at;
    Node {
        task: task.id.clone(),
        id: id.to_string(),
        parent,
        kind,
        depth,
        model: c.model,
        template: e.prompts.get(stage).reference.clone(),
        temperature: c.temperature,
        seed: c.seed,
        completion: c.text,
        code: None,
        explanation: None,
        tokens: Tokens {
            prompt: c.usage.prompt_tokens,
            completion: c.usage.completion_tokens,
            ..Tokens::default()
        },
        usage: c.usage,
        cost_usd: c.cost_usd,
        latency_ms: c.latency_ms,
        execution: None,
        feedback: None,
    }
}

fn reuse(e: &Engine, task: &Task, id: &str) -> Option<Node> {
    e.run.done.get(&task.id).and_then(|m| m.get(id)).cloned()
}

/// One node: reused from disk if an earlier attempt at the run made it, else
/// asked of the model (the feedback model for explanations) with `stage`'s
/// template, completed (a program is extracted, counted and run) and appended
/// to the store.
async fn make_node(
    e: &Engine,
    task: &Task,
    at: Place<'_>,
    stage: Stage,
    vars: &Vars<'_>,
) -> Result<Node, EngineError> {
    if let Some(n) = reuse(e, task, at.id) {
        return Ok(n);
    }
    let client = if stage == Stage::Explain {
        &e.feedback_model
    } else {
        &e.model
    };
    let c = call(e, client, stage, vars, task, at.id).await?;
    let mut n = node(e, task, at, stage, c);
    if n.kind == NodeKind::Feedback {
        // An explanation is words only; strip any code the model wrote anyway.
        let (blocks, prose) = extract::fenced_blocks(&n.completion);
        let counter = tokens::counter_for(&n.model);
        n.tokens.explanation = counter.count(&prose);
        n.tokens.other = blocks.iter().map(|b| counter.count(b)).sum();
        n.tokens.counted_by = Some(counter.counted_by());
        n.explanation = Some(prose);
    } else {
        finish_program(e, task, &mut n).await;
    }
    e.run.append(&n).await?;
    Ok(n)
}

async fn make_initial(
    e: &Engine,
    task: &Task,
    id: &str,
    parent: Option<String>,
    depth: u32,
) -> Result<Node, EngineError> {
    let spec = spec(e, task);
    let fmt = answer_format(task);
    let vars = Vars {
        spec: &spec,
        answer_format: &fmt,
        ..Vars::default()
    };
    let at = Place {
        id,
        parent,
        kind: NodeKind::Initial,
        depth,
    };
    make_node(e, task, at, Stage::Generate, &vars).await
}

async fn make_feedback(
    e: &Engine,
    task: &Task,
    id: &str,
    p: &Node,
    depth: u32,
) -> Result<Node, EngineError> {
    let spec = spec(e, task);
    let vars = Vars {
        spec: &spec,
        code: p.code.as_deref().unwrap_or(""),
        feedback: p.feedback.as_deref().unwrap_or(""),
        ..Vars::default()
    };
    let at = Place {
        id,
        parent: Some(p.id.clone()),
        kind: NodeKind::Feedback,
        depth,
    };
    make_node(e, task, at, Stage::Explain, &vars).await
}

async fn make_repair(
    e: &Engine,
    task: &Task,
    id: &str,
    p: &Node,
    fb: Option<&Node>,
    kind: NodeKind,
    depth: u32,
) -> Result<Node, EngineError> {
    let spec = spec(e, task);
    let fmt = answer_format(task);
    let stage = if kind == NodeKind::Joint {
        Stage::Joint
    } else {
        Stage::Repair
    };
    let vars = Vars {
        spec: &spec,
        answer_format: &fmt,
        code: p.code.as_deref().unwrap_or(""),
        feedback: p.feedback.as_deref().unwrap_or(""),
        explanation: fb.and_then(|f| f.explanation.as_deref()).unwrap_or(""),
    };
    let at = Place {
        id,
        parent: Some(fb.map_or_else(|| p.id.clone(), |f| f.id.clone())),
        kind,
        depth,
    };
    make_node(e, task, at, stage, &vars).await
}

/// Extract, count and run the program in `n.completion`.
async fn finish_program(e: &Engine, task: &Task, n: &mut Node) {
    let counter = tokens::counter_for(&n.model);
    n.tokens.counted_by = Some(counter.counted_by());
    match extract::extract(&n.completion, &target(task)) {
        Ok(x) => {
            count_parts(&*counter, &n.completion, x.fence.as_ref(), &mut n.tokens);
            if n.kind == NodeKind::Joint && !x.explanation.is_empty() {
                n.explanation = Some(x.explanation.clone());
            }
            let (exec, fb) = evaluate(e, task, &x.code).await;
            n.code = Some(x.code);
            n.execution = Some(exec);
            n.feedback = fb;
        }
        Err(r) => {
            // No program to split off: the whole reply was the attempt.
            n.tokens.program = counter.count(&n.completion);
            n.execution = Some(match r {
                Refusal::NoCode(reason) => Execution::NoCode { reason },
                Refusal::Tampering(reason) => Execution::Rejected { reason },
            });
        }
    }
}

/// Olausson et al.'s accounting of a reply whose program came from `fence`:
/// program tokens are the code inside the fence, explanation tokens the
/// text before it; the fence lines and everything after (prose, more
/// blocks) are `other`, which pass@t does not count. Without a fence the
/// whole reply is the program.
pub(crate) fn count_parts(
    counter: &dyn tokens::TokenCounter,
    reply: &str,
    fence: Option<&extract::Fence>,
    t: &mut Tokens,
) {
    match fence {
        Some(f) => {
            t.explanation = counter.count(&reply[..f.whole.start]);
            t.program = counter.count(&reply[f.code.clone()]);
            t.other = counter.count(&reply[f.whole.start..f.code.start])
                + counter.count(&reply[f.code.end..]);
        }
        None => {
            t.explanation = 0;
            t.program = counter.count(reply);
            t.other = 0;
        }
    }
}

/// Run the visible tests (for feedback) and the hidden ones (the verdict).
async fn evaluate(e: &Engine, task: &Task, code: &str) -> (Execution, Option<String>) {
    let program = task.program(code, true);
    let hidden = run_suites(e, &task.suites, &program).await;
    let visible_suite = match e.run.config.visible {
        Visible::Protocol => task.visible_suite.as_ref(),
        Visible::Hidden => None,
    };
    let visible = match visible_suite {
        Some(s) => run_suites(e, std::slice::from_ref(s), &program).await,
        None => hidden.clone(),
    };
    let fb = (!visible.0.passed).then(|| feedback::render(&visible.1, e.run.config.feedback_tests));
    (
        Execution::Ran {
            visible: visible.0,
            hidden: hidden.0,
        },
        fb,
    )
}

/// Suites in order, stopping at the first failure; the verdict and the
/// outcome that decided it.
async fn run_suites(e: &Engine, suites: &[Suite], program: &str) -> (Verdict, Outcome) {
    let mut last: Option<(Verdict, Outcome)> = None;
    let mut total_ms = 0.0;
    for s in suites {
        let (r, out) = e.scorer.run_suite_detailed(s, program).await;
        total_ms += r.duration_ms;
        let v = Verdict {
            passed: r.passed,
            status: r.status,
            error_type: feedback::error_type(&out),
            summary: feedback::cap(&out.summary()),
            sandbox: r.sandbox,
            duration_ms: total_ms,
        };
        let stop = !v.passed;
        last = Some((v, out));
        if stop {
            break;
        }
    }
    last.unwrap_or_else(|| {
        let out = Outcome::new(
            crate::sandbox::Status::Error,
            e.scorer.primary.kind(),
            &crate::sandbox::Limits::default(),
            Vec::new(),
        );
        (
            Verdict {
                passed: false,
                status: out.status,
                error_type: "no_tests".into(),
                summary: "the task has no tests".into(),
                sandbox: out.sandbox,
                duration_ms: 0.0,
            },
            out,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tokens::TokenCounter;

    #[test]
    fn program_explanation_and_rest_are_counted_apart() {
        let reply = "The loop starts at 1.\n```python\ndef f(xs):\n    return sum(xs)\n```\nThis sums the list, and here is a test:\n```python\nassert f([1]) == 1\n```\n";
        let target = Target {
            entry_point: Some("f"),
            ..Target::default()
        };
        let x = extract::extract(reply, &target).expect("code");
        let counter = tokens::for_model("gpt-4o");
        let mut t = Tokens::default();
        count_parts(&counter, reply, x.fence.as_ref(), &mut t);
        assert_eq!(t.explanation, counter.count("The loop starts at 1.\n"));
        assert_eq!(
            t.program,
            counter.count("def f(xs):\n    return sum(xs)\n"),
            "{x:?}"
        );
        // The fence lines, the prose after and the second block.
        let after = &reply[x.fence.as_ref().map_or(0, |f| f.code.end)..];
        assert_eq!(t.other, counter.count("```python\n") + counter.count(after));
        assert!(t.other > t.program, "{t:?}");
        assert_eq!(t.generated(), t.program + t.explanation);
    }
}
