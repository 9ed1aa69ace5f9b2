//! The selfrepair crate's integration tests, in one binary: each links
//! wasmtime, cranelift, git2 and tree-sitter, so one link instead of twenty
//! (the layout wasmtime and codex-rs use). The tests are in `suite/`, one
//! module per area; `cargo test --test all fix_e2e::` runs one area.

// Helpers outside #[test] functions unwrap too: a panic is the report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;
