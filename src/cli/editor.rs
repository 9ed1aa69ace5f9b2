//! `selfrepair acp` and `selfrepair mcp`: the editor and tool-host surfaces
//! on stdio. stdout carries only protocol messages; logs go to stderr.

use anyhow::Context;
use selfrepair::acp::{self, AgentOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct AcpArgs {
    /// Write fixes without asking through session/request_permission.
    #[arg(long)]
    pub auto_approve: bool,
    /// Model attempts (or mutants) per prompt.
    #[arg(long, default_value_t = 5)]
    pub max_attempts: usize,
    /// Seconds per test run.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout: u64,
}

#[derive(clap::Args, Debug)]
pub struct McpArgs {
    /// Read benchmark datasets from DIR (for eval_sample).
    #[arg(long, env = "SELFREPAIR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

pub async fn acp(a: AcpArgs) -> anyhow::Result<ExitCode> {
    let opts = AgentOptions {
        auto_approve: a.auto_approve,
        max_attempts: a.max_attempts.max(1),
        test_timeout_secs: a.timeout.max(1),
    };
    acp::serve_stdio(opts)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("the ACP connection failed")?;
    Ok(ExitCode::SUCCESS)
}

pub async fn mcp(a: McpArgs) -> anyhow::Result<ExitCode> {
    selfrepair::mcp::serve_stdio(a.data_dir)
        .await
        .context("the MCP connection failed")?;
    Ok(ExitCode::SUCCESS)
}
