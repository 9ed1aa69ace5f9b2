//! What the sandbox tests share.

use selfrepair_sandbox::{self as sandbox, Sandbox, SandboxKind};

/// Held by every test here that starts process-jail runs: the hostile
/// suite checks from the host that no process of the jail's uid range
/// outlives a run, and another test's runs must not be taken for one.
pub static PROCESS_JAIL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Open a sandbox of each kind (fetching or building runtimes on first use).
pub async fn sandbox(kind: SandboxKind) -> Box<dyn Sandbox> {
    sandbox::open(kind, &sandbox::runtime::RuntimeOptions::default())
        .await
        .unwrap_or_else(|e| panic!("cannot open the {kind} sandbox: {e}"))
}
