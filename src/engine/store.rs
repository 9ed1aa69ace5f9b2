//! The run store: `config.toml`, `nodes.jsonl` (one fsync'd line per node)
//! and the model client's `transcript.jsonl`, in one run dir. Both logs are
//! [`AppendLog`]s, so a run killed at any point resumes from what is on disk.

use super::prompts::{Style, TemplateRef};
use crate::append_log::{self, AppendLog, AppendLogError};
use crate::model::Usage;
use crate::sandbox::{SandboxKind, Status};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub(crate) const CONFIG_FILE: &str = "config.toml";
pub(crate) const NODES_FILE: &str = "nodes.jsonl";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Log(#[from] AppendLogError),
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error(
        "{dir} already holds a run with different settings ({what}); resume it with the same flags, or choose another --out"
    )]
    Mismatch { dir: PathBuf, what: String },
    #[error("{dir} already holds a run; pass --resume to continue it, or choose another --out")]
    Exists { dir: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Batched: all initial programs, then repairs of the failures, level by
/// level. Sequential: depth first, stopping at the first pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Batched,
    Sequential,
}

/// Which tests give feedback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Visible {
    /// The dataset's protocol: MBPP one assert, APPS sample I/O, else the hidden tests.
    #[default]
    Protocol,
    /// The hidden tests give feedback too (Olausson's setting).
    Hidden,
}

impl crate::choice::Choice for Mode {
    const ALL: &'static [(Self, &'static str, &'static str)] = &[
        (
            Mode::Batched,
            "batched",
            "all initial programs, then repairs of the failures, level by level",
        ),
        (
            Mode::Sequential,
            "sequential",
            "depth first, stopping at the first pass",
        ),
    ];
}

impl crate::choice::Choice for Visible {
    const ALL: &'static [(Self, &'static str, &'static str)] = &[
        (
            Visible::Protocol,
            "protocol",
            "the dataset's protocol: MBPP one assert, APPS sample I/O, else the hidden tests",
        ),
        (
            Visible::Hidden,
            "hidden",
            "the hidden tests give feedback too (Olausson's setting)",
        ),
    ];
}

/// The tree shape: n_p initial programs; per failing program n_f feedbacks
/// with n_r repairs each, or (joint) n_f explanation-plus-repair samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub np: u32,
    pub nf: u32,
    pub nr: u32,
    pub joint: bool,
    pub depth: u32,
    /// Expand every failing program, never stop early: the frozen tree the
    /// bootstrap estimates from.
    pub frozen: bool,
}

/// Everything that decides a run's nodes; stored as `config.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub dataset: String,
    /// Tasks by index in the dataset, as given (`0-19`), or all.
    pub tasks: Option<String>,
    pub shard: Option<(u32, u32)>,
    pub model: String,
    pub feedback_model: String,
    pub base_url: Option<String>,
    pub mode: Mode,
    pub shape: Shape,
    pub style: Style,
    pub templates: Vec<TemplateRef>,
    pub temperature: f64,
    pub repair_temperature: f64,
    pub max_tokens: Option<u32>,
    pub seed: u64,
    pub feedback_tests: usize,
    pub visible: Visible,
    pub sandbox: SandboxKind,
}

impl RunConfig {
    /// The fields a resumed or merged run must share (shard may differ for merge).
    fn identity(&self) -> RunConfig {
        RunConfig {
            shard: None,
            ..self.clone()
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    Initial,
    /// An explanation only (the feedback model's).
    Feedback,
    /// A program written after a feedback node.
    Repair,
    /// Explanation and program in one reply.
    Joint,
}

/// Generated tokens, split as Olausson counts them (program: the code in
/// the fence; explanation: the text before it), and the prompt beside.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tokens {
    pub program: u64,
    pub explanation: u64,
    pub prompt: u64,
    /// The provider's completion count (may include markup around the code).
    pub completion: u64,
    /// The rest of the reply: fence lines, prose after the program, further
    /// blocks. Recorded, not counted by pass@t.
    #[serde(default)]
    pub other: u64,
    /// The tokenizer of program, explanation and other (None: recorded
    /// before it was named, by cl100k_base).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted_by: Option<crate::model::tokens::CountedBy>,
}

impl Tokens {
    /// What pass@t counts: program plus explanation.
    pub fn generated(&self) -> u64 {
        self.program + self.explanation
    }
}

/// One test verdict of a program.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub passed: bool,
    pub status: Status,
    pub error_type: String,
    pub summary: String,
    pub sandbox: SandboxKind,
    pub duration_ms: f64,
}

/// What became of a program-bearing node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Execution {
    /// Run: the visible tests (feedback) and the hidden ones (the verdict).
    Ran { visible: Verdict, hidden: Verdict },
    /// The reply held no usable code.
    NoCode { reason: String },
    /// The program would neutralise the tests.
    Rejected { reason: String },
}

impl Execution {
    pub fn visible_pass(&self) -> bool {
        matches!(self, Execution::Ran { visible, .. } if visible.passed)
    }
    pub fn hidden_pass(&self) -> bool {
        matches!(self, Execution::Ran { hidden, .. } if hidden.passed)
    }
    pub fn error_type(&self) -> String {
        match self {
            Execution::Ran { hidden, .. } => hidden.error_type.clone(),
            Execution::NoCode { .. } => "no_code".into(),
            Execution::Rejected { .. } => "rejected".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub task: String,
    /// `p3`, `p3.j0`, `p3.f1`, `p3.f1.r0`, `p3.j0.j2`, …
    pub id: String,
    pub parent: Option<String>,
    pub kind: NodeKind,
    /// 0 for initial programs, 1 for their repairs, …
    pub depth: u32,
    pub model: String,
    pub template: TemplateRef,
    pub temperature: f64,
    pub seed: u64,
    pub completion: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
    pub tokens: Tokens,
    pub usage: Usage,
    pub cost_usd: f64,
    pub latency_ms: f64,
    /// None for feedback nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<Execution>,
    /// The exact error string shown to the model for this program's repairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<String>,
}

impl Node {
    pub fn has_program(&self) -> bool {
        self.kind != NodeKind::Feedback
    }
}

/// An open run dir.
pub struct RunDir {
    pub dir: PathBuf,
    pub config: RunConfig,
    /// Nodes already on disk, by task then id.
    pub done: HashMap<String, BTreeMap<String, Node>>,
    nodes: AppendLog<Node>,
}

impl RunDir {
    /// Create `dir` for `config`, or reopen it when `resume` (the config must match).
    pub fn open(dir: &Path, config: RunConfig, resume: bool) -> Result<RunDir, StoreError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let cfg_path = dir.join(CONFIG_FILE);
        let nodes_path = dir.join(NODES_FILE);
        if cfg_path.exists() {
            if !resume {
                return Err(StoreError::Exists {
                    dir: dir.to_path_buf(),
                });
            }
            let old = read_config(dir)?;
            if old != config {
                return Err(StoreError::Mismatch {
                    dir: dir.to_path_buf(),
                    what: differences(&old, &config),
                });
            }
        } else {
            let text = toml::to_string(&config).map_err(|e| StoreError::Config {
                path: cfg_path.clone(),
                reason: e.to_string(),
            })?;
            selfrepair_store::write_atomic(&cfg_path, text.as_bytes()).map_err(|e| {
                StoreError::Config {
                    path: cfg_path.clone(),
                    reason: e.to_string(),
                }
            })?;
        }
        let (log, nodes) = AppendLog::<Node>::open(&nodes_path)?;
        let mut done: HashMap<String, BTreeMap<String, Node>> = HashMap::new();
        for n in nodes {
            done.entry(n.task.clone())
                .or_default()
                .insert(n.id.clone(), n);
        }
        Ok(RunDir {
            dir: dir.to_path_buf(),
            config,
            done,
            nodes: log,
        })
    }

    /// Append a complete node; returns once it is on disk.
    pub(crate) async fn append(&self, node: &Node) -> Result<(), StoreError> {
        Ok(self.nodes.append(node).await?)
    }
}

fn differences(a: &RunConfig, b: &RunConfig) -> String {
    let (Ok(ta), Ok(tb)) = (toml::Value::try_from(a), toml::Value::try_from(b)) else {
        return "unreadable".into();
    };
    let (Some(ta), Some(tb)) = (ta.as_table(), tb.as_table()) else {
        return "unreadable".into();
    };
    let mut diffs = Vec::new();
    for (k, v) in ta {
        if tb.get(k) != Some(v) {
            diffs.push(k.clone());
        }
    }
    for k in tb.keys() {
        if !ta.contains_key(k) {
            diffs.push(k.clone());
        }
    }
    diffs.join(", ")
}

pub fn read_config(dir: &Path) -> Result<RunConfig, StoreError> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    toml::from_str(&text).map_err(|e| StoreError::Config {
        path,
        reason: e.to_string(),
    })
}

/// Every node in `path` (a torn last line is left out; any other bad line
/// is an error naming it).
pub(crate) fn read_nodes(path: &Path) -> Result<Vec<Node>, StoreError> {
    Ok(append_log::read_entries(path)?)
}

/// Join shard run dirs into `out`: same settings but the shard, no task twice.
/// Nodes are ordered by task (dataset order as first seen) then id, so the
/// result does not depend on how the work was split.
pub fn merge(shards: &[PathBuf], out: &Path) -> Result<(RunConfig, usize), StoreError> {
    let mut config: Option<RunConfig> = None;
    let mut by_task: BTreeMap<String, Vec<Node>> = BTreeMap::new();
    let mut transcripts = Vec::new();
    for dir in shards {
        let c = read_config(dir)?;
        match &config {
            None => config = Some(c.clone()),
            Some(first) if first.identity() != c.identity() => {
                return Err(StoreError::Mismatch {
                    dir: dir.clone(),
                    what: differences(&first.identity(), &c.identity()),
                });
            }
            Some(_) => {}
        }
        let nodes_path = dir.join(NODES_FILE);
        let nodes = if nodes_path.exists() {
            read_nodes(&nodes_path)?
        } else {
            Vec::new()
        };
        let mut seen_here: BTreeMap<String, Vec<Node>> = BTreeMap::new();
        for n in nodes {
            seen_here.entry(n.task.clone()).or_default().push(n);
        }
        for (task, ns) in seen_here {
            if by_task.contains_key(&task) {
                return Err(StoreError::Config {
                    path: dir.clone(),
                    reason: format!("task {task} is also in another shard"),
                });
            }
            by_task.insert(task, ns);
        }
        let t = dir.join(crate::model::transcript::TRANSCRIPT_FILE);
        if t.exists() {
            transcripts.push(t);
        }
    }
    let Some(mut config) = config else {
        return Err(StoreError::Config {
            path: out.to_path_buf(),
            reason: "no shard run dirs given".into(),
        });
    };
    config.shard = None;
    std::fs::create_dir_all(out).map_err(io(out))?;
    if out.join(CONFIG_FILE).exists() {
        return Err(StoreError::Exists {
            dir: out.to_path_buf(),
        });
    }
    let text = toml::to_string(&config).map_err(|e| StoreError::Config {
        path: out.join(CONFIG_FILE),
        reason: e.to_string(),
    })?;
    let mut body = String::new();
    let mut count = 0;
    let mut tasks: Vec<(String, Vec<Node>)> = by_task.into_iter().collect();
    tasks.sort_by_key(|t| task_order(&t.0));
    for (_, mut ns) in tasks {
        ns.sort_by_key(|n| node_order(&n.id));
        for n in ns {
            body.push_str(&serde_json::to_string(&n).map_err(|e| StoreError::Config {
                path: out.to_path_buf(),
                reason: e.to_string(),
            })?);
            body.push('\n');
            count += 1;
        }
    }
    selfrepair_store::write_atomic(&out.join(NODES_FILE), body.as_bytes()).map_err(|e| {
        StoreError::Config {
            path: out.join(NODES_FILE),
            reason: e.to_string(),
        }
    })?;
    // Each shard's calls as recorded, byte for byte, less a torn last line
    // (which would otherwise land mid-file).
    let mut transcript = Vec::new();
    for t in transcripts {
        for raw in append_log::read_entries::<Box<serde_json::value::RawValue>>(&t)? {
            transcript.extend_from_slice(raw.get().as_bytes());
            transcript.push(b'\n');
        }
    }
    selfrepair_store::write_atomic(
        &out.join(crate::model::transcript::TRANSCRIPT_FILE),
        &transcript,
    )
    .map_err(|e| StoreError::Config {
        path: out.to_path_buf(),
        reason: e.to_string(),
    })?;
    selfrepair_store::write_atomic(&out.join(CONFIG_FILE), text.as_bytes()).map_err(|e| {
        StoreError::Config {
            path: out.join(CONFIG_FILE),
            reason: e.to_string(),
        }
    })?;
    Ok((config, count))
}

/// Sort key for task ids: `HumanEval/10` after `HumanEval/9`.
pub(crate) fn task_order(id: &str) -> (String, u64, String) {
    let digits: String = id
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let n: String = digits.chars().rev().collect();
    let prefix = id[..id.len() - n.len()].to_string();
    (prefix, n.parse().unwrap_or(0), id.to_string())
}

/// Sort key for node ids: by path components, numerically.
pub(crate) fn node_order(id: &str) -> Vec<(char, u64)> {
    id.split('.')
        .map(|part| {
            let mut chars = part.chars();
            let kind = chars.next().unwrap_or(' ');
            (kind, chars.as_str().parse().unwrap_or(0))
        })
        .collect()
}

/// All nodes of a run dir, in canonical order.
pub fn load_nodes(dir: &Path) -> Result<Vec<Node>, StoreError> {
    let path = dir.join(NODES_FILE);
    let mut nodes = read_nodes(&path)?;
    nodes.sort_by(|a, b| {
        task_order(&a.task)
            .cmp(&task_order(&b.task))
            .then_with(|| node_order(&a.id).cmp(&node_order(&b.id)))
    });
    Ok(nodes)
}
