//! The sandbox crate's integration tests, in one binary (each test binary
//! links wasmtime and cranelift). `cargo test -p selfrepair-sandbox --test
//! all hostile::` runs one area.

// Helpers outside #[test] functions unwrap too: a panic is the report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;
