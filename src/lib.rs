//! selfrepair: generate code with a model, run it in a sandbox, turn failures
//! into explanation-then-patch prompts, and measure pass@k / pass@t.
//!
//! The sandboxes live in the `selfrepair-sandbox` crate; this crate holds what
//! knows about tasks, models, repair and the command line.

pub mod acp;
pub mod append_log;
pub mod choice;
pub mod config;
pub mod model;

pub use selfrepair_sandbox as sandbox;

pub mod engine;
pub mod eval;
pub mod feedback;
pub mod fix;
pub mod mcp;
pub mod metrics;
pub mod prompts;
pub mod syntax;
pub mod tasks;
