//! `selfrepair mcp`: an MCP server on stdio (rmcp) with three tools:
//! `run_tests` (a repository's tests, once, in the process sandbox),
//! `repair` (a fix session; the user's files are untouched unless `apply`)
//! and `eval_sample` (score one benchmark sample). Results are structured.

use crate::fix::{self, FixEvent, FixMode, FixOptions, Repairer, Summary};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::{ErrorData, Json, ServerHandler, ServiceExt, schemars, tool, tool_handler, tool_router};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct RunTestsArgs {
    /// Absolute path of the project.
    pub path: String,
    /// The test command; detected (pytest, cargo test, go test, npm test, make test) when absent.
    pub test: Option<String>,
    /// Seconds before the run is killed (default 300).
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct RepairArgs {
    /// Absolute path of the project.
    pub path: String,
    pub test: Option<String>,
    /// Only the failing tests whose id contains this.
    pub focus: Option<String>,
    /// Model attempts (or mutants), default 5.
    pub max_attempts: Option<usize>,
    /// Apply the winning diff to the working tree (default false: it stays on its branch).
    pub apply: Option<bool>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct EvalSampleArgs {
    /// humaneval, humaneval+, mbpp, mbpp+, apps, …
    pub dataset: String,
    pub task_id: String,
    /// Appended to the task's prompt (human-eval style).
    pub completion: Option<String>,
    /// A whole program (evalplus style).
    pub solution: Option<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct FailingTest {
    pub id: String,
    pub message: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct TestsResult {
    pub command: String,
    /// passed, failed, timed_out, no_tests, command_not_found, cancelled.
    pub status: String,
    pub exit_code: Option<i32>,
    pub failing: Vec<FailingTest>,
    /// The end of the output.
    pub output: String,
    pub duration_ms: u64,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct RepairResult {
    /// fixed, nothing_to_fix, not_fixed, cancelled, or error (see reason_code),
    /// as in `selfrepair fix --json` (docs/fix-json.md).
    pub outcome: String,
    /// For an error: a stable snake_case name (no_test_command, cannot_start, …).
    pub reason_code: Option<String>,
    pub reason: String,
    pub branch: String,
    pub test_command: String,
    pub attempts: usize,
    pub tokens: u64,
    pub cost_usd: f64,
    pub diff: String,
    pub applied: Vec<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct EvalResult {
    pub task_id: String,
    pub passed: bool,
    /// human-eval's result string: passed, timed out, failed: …
    pub result: String,
    pub sandbox: String,
    pub duration_ms: f64,
    pub failing_test: Option<String>,
    pub call: Option<String>,
    pub actual: Option<String>,
    pub expected: Option<String>,
}

#[derive(Clone)]
pub(crate) struct SelfrepairMcp {
    tool_router: ToolRouter<Self>,
    data_dir: Option<PathBuf>,
    /// Loaded once per dataset and opened once per server: a host scores
    /// many samples in a row.
    datasets: Arc<tokio::sync::Mutex<HashMap<String, Arc<Vec<crate::tasks::Task>>>>>,
    scorer: Arc<tokio::sync::OnceCell<Arc<crate::eval::Scorer>>>,
}

fn bad(msg: impl Into<String>) -> ErrorData {
    ErrorData::invalid_params(msg.into(), None)
}

fn project(path: &str) -> Result<PathBuf, ErrorData> {
    let p = PathBuf::from(path);
    if !p.is_absolute() || !p.is_dir() {
        return Err(bad(format!(
            "path {path} is not an absolute path to a directory"
        )));
    }
    Ok(p)
}

/// A fix session's summary and events; an error comes with its summary.
async fn session(
    opts: FixOptions,
    repairer: Repairer,
) -> Result<(Summary, Vec<FixEvent>), (fix::FixError, Box<Summary>)> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let on_event = move |e: &FixEvent| {
        sink.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e.clone());
    };
    let s = fix::Session::new(opts, repairer, CancellationToken::new());
    let summary = s.run_reporting(&on_event).await?;
    let events = std::mem::take(&mut *events.lock().unwrap_or_else(|p| p.into_inner()));
    Ok((summary, events))
}

fn status_name(s: fix::runner::RunStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{s:?}"))
}

#[tool_router]
impl SelfrepairMcp {
    pub fn new(data_dir: Option<PathBuf>) -> Self {
        SelfrepairMcp {
            tool_router: Self::tool_router(),
            data_dir,
            datasets: Arc::default(),
            scorer: Arc::default(),
        }
    }

    /// Run a project's tests once, in the process sandbox, on a copy of the project.
    #[tool(
        description = "Run a project's test suite once (sandboxed, on a copy; network off) and return the failing tests"
    )]
    async fn run_tests(
        &self,
        Parameters(a): Parameters<RunTestsArgs>,
    ) -> Result<Json<TestsResult>, ErrorData> {
        let path = project(&a.path)?;
        let mut opts = FixOptions::new(&path);
        opts.test = a.test;
        opts.mode = FixMode::Check;
        if let Some(t) = a.timeout_secs {
            opts.runner.timeout = std::time::Duration::from_secs(t);
        }
        let (summary, events) = session(opts, Repairer::Mutate)
            .await
            .map_err(|(e, _)| ErrorData::internal_error(e.to_string(), None))?;
        let run = events.iter().find_map(|e| match e {
            FixEvent::TestRunFinished { run, .. } => Some(run.clone()),
            _ => None,
        });
        let Some(run) = run else {
            return Err(ErrorData::internal_error(
                format!("no test run: {}", summary.reason),
                None,
            ));
        };
        Ok(Json(TestsResult {
            command: run.command.clone(),
            status: status_name(run.status),
            exit_code: run.exit_code,
            failing: run
                .report
                .failed
                .iter()
                .map(|f| FailingTest {
                    id: f.id.clone(),
                    message: f.message.clone(),
                })
                .collect(),
            output: run
                .output
                .chars()
                .rev()
                .take(8000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect(),
            duration_ms: run.duration_ms,
        }))
    }

    #[tool(
        description = "Repair a project's failing tests: explain, patch, validate in the sandbox; the fix lands on a selfrepair/<session> branch and in the working tree only with apply=true"
    )]
    async fn repair(
        &self,
        Parameters(a): Parameters<RepairArgs>,
    ) -> Result<Json<RepairResult>, ErrorData> {
        let path = project(&a.path)?;
        let mut opts = FixOptions::new(&path);
        opts.test = a.test;
        opts.focus = a.focus;
        if let Some(n) = a.max_attempts {
            opts.max_attempts = n.max(1);
        }
        let repairer = fix::choose::configured(&path, &crate::config::ModelFlags::default(), false)
            .map_err(|e| bad(e.to_string()))?;
        // A session that cannot run is the tool's answer, in the words
        // `fix --json` uses, not a protocol error.
        let s = match session(opts, repairer).await {
            Ok((s, _)) => s,
            Err((_, s)) => *s,
        };
        let mut applied = Vec::new();
        if a.apply.unwrap_or(false) && s.outcome == fix::Outcome::Fixed {
            let info = fix::workspace::session(&path, Some(&s.session))
                .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
            applied = fix::workspace::apply(&path, &info, &s.diff)
                .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        }
        Ok(Json(RepairResult {
            outcome: s.outcome.as_str().to_string(),
            reason_code: s.reason_code,
            reason: s.reason,
            branch: s.branch,
            test_command: s.test_command,
            attempts: s.attempts,
            tokens: s.tokens,
            cost_usd: s.cost_usd,
            diff: s.diff.unified,
            applied,
        }))
    }

    #[tool(
        description = "Score one benchmark sample (HumanEval(+), MBPP(+), APPS) in the wasm sandbox, faithfully to the reference harness"
    )]
    async fn eval_sample(
        &self,
        Parameters(a): Parameters<EvalSampleArgs>,
    ) -> Result<Json<EvalResult>, ErrorData> {
        let tasks = self.tasks(&a.dataset).await?;
        let task = tasks
            .iter()
            .find(|t| t.id == a.task_id)
            .ok_or_else(|| bad(format!("unknown task_id '{}' in {}", a.task_id, a.dataset)))?;
        let (code, whole) = match (a.completion, a.solution) {
            (Some(c), None) => (c, false),
            (None, Some(s)) => (s, true),
            _ => return Err(bad("give exactly one of completion or solution")),
        };
        let scorer = self
            .scorer
            .get_or_try_init(|| async {
                let rt = crate::sandbox::runtime::RuntimeOptions::default();
                let primary = crate::sandbox::open(crate::sandbox::SandboxKind::Wasm, &rt)
                    .await
                    .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
                Ok::<_, ErrorData>(Arc::new(crate::eval::Scorer::new(
                    Arc::from(primary),
                    Some(crate::sandbox::SandboxKind::Process),
                    rt,
                )))
            })
            .await?;
        let sample = crate::eval::Sample {
            index: 0,
            line: 0,
            task_id: task.id.clone(),
            code,
            whole,
        };
        let r = scorer.score(task, &sample).await;
        let bad_suite = r.suites.iter().find(|s| !s.passed);
        Ok(Json(EvalResult {
            task_id: r.task_id.clone(),
            passed: r.passed,
            result: r.result.clone(),
            sandbox: r.sandbox.to_string(),
            duration_ms: r.duration_ms,
            failing_test: bad_suite.and_then(|s| s.failing_test.clone()),
            call: bad_suite.and_then(|s| s.call.clone()),
            actual: bad_suite.and_then(|s| s.actual.clone()),
            expected: bad_suite.and_then(|s| s.expected.clone()),
        }))
    }
}

impl SelfrepairMcp {
    /// A dataset's tasks, loaded on first use.
    async fn tasks(&self, name: &str) -> Result<Arc<Vec<crate::tasks::Task>>, ErrorData> {
        let mut cache = self.datasets.lock().await;
        if let Some(t) = cache.get(name) {
            return Ok(t.clone());
        }
        let manifest = crate::tasks::Manifest::builtin().map_err(|e| bad(e.to_string()))?;
        let ds = manifest.get(name).map_err(|e| bad(e.to_string()))?.clone();
        let opts = crate::tasks::LoadOptions::new(
            crate::tasks::DataSource::new(self.data_dir.clone()),
            2,
            false,
        );
        // The loader's future is not Send (it borrows across awaits in a way
        // the tool macro's bounds reject), so it runs on a blocking thread.
        let handle = tokio::runtime::Handle::current();
        let tasks =
            tokio::task::spawn_blocking(move || handle.block_on(crate::tasks::load(&ds, &opts)))
                .await
                .map_err(|e| ErrorData::internal_error(e.to_string(), None))?
                .map_err(|e| bad(e.to_string()))?;
        let tasks = Arc::new(tasks);
        cache.insert(name.to_string(), tasks.clone());
        Ok(tasks)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for SelfrepairMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_instructions(
            "selfrepair: run a project's tests in a sandbox, repair failing tests, score benchmark samples",
        )
    }
}

/// Serve MCP on stdin/stdout until the client disconnects.
pub async fn serve_stdio(data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let service = SelfrepairMcp::new(data_dir)
        .serve(rmcp::transport::stdio())
        .await?;
    service.waiting().await?;
    Ok(())
}
