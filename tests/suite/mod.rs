//! One module per area; `common`, `fix_common` and `model_common` are the
//! helpers they share.

mod common;
mod fix_common;
mod model_common;

mod acp_e2e;
mod engine_bench;
mod eval_agreement;
mod eval_cli;
mod fix_e2e;
mod fix_sandbox;
mod mcp_e2e;
mod model_anthropic;
mod model_budget;
mod model_cancel;
mod model_local;
mod model_openai;
mod model_redaction;
mod model_replay;
mod sandbox_cli;
mod sandbox_humaneval;
mod tasks_canonical;
mod tasks_evalplus;
mod tasks_fetch;
