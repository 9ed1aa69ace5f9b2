//! The self-repair engine: grow repair trees for benchmark tasks, record
//! every node in a crash-safe run store, and estimate pass@k / pass@t.
//!
//! Data flows one way: a task's prompt → model ([`prompts`]) → code from the
//! reply ([`extract`]) → sandbox (visible and hidden tests) → the error
//! string ([`feedback`]) → explanation and repair → … ([`tree`]) → the run
//! store ([`store`]) → metrics ([`estimate`], [`report`], [`plot`]).

pub mod estimate;
pub mod extract;
pub mod interval;
pub mod plot;
pub mod prompts;
pub mod report;
pub mod store;
pub mod tree;

pub use store::{Mode, Node, NodeKind, RunConfig, RunDir, Shape, Visible};
pub use tree::{Engine, EngineError, TaskResult};
