//! `selfrepair setup`: fetch and build the runtimes (and the provided pytest)
//! ahead of first use.

use selfrepair::sandbox::runtime::RuntimeOptions;
use selfrepair::sandbox::{self, SandboxKind};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct SetupArgs {
    /// Only this sandbox's runtime.
    #[arg(long)]
    pub sandbox: Option<SandboxKind>,
    /// Your own CPython WASI build instead of the pinned one.
    #[arg(long, env = "SELFREPAIR_PYTHON_WASM")]
    pub python_wasm: Option<std::path::PathBuf>,
}

pub async fn run(a: SetupArgs) -> anyhow::Result<ExitCode> {
    let mut opts = RuntimeOptions {
        progress: true,
        ..RuntimeOptions::default()
    };
    if a.python_wasm.is_some() {
        opts.python_wasm = a.python_wasm;
    }
    eprintln!("cache: {}", opts.home.display());
    let kinds: Vec<SandboxKind> = match a.sandbox {
        Some(k) => vec![k],
        None => SandboxKind::ALL.to_vec(),
    };
    for kind in kinds {
        let t = std::time::Instant::now();
        let sb = sandbox::open(kind, &opts).await?;
        let probe = sandbox::RunRequest::new("print('ok')", sandbox::TestSpec::Script);
        let out = sb.run(&probe).await;
        eprintln!(
            "{kind}: ready in {:.1}s, probe {}",
            t.elapsed().as_secs_f64(),
            out.summary()
        );
        for l in out.layers.iter().filter(|l| !l.active) {
            eprintln!("  layer {} is missing: {}", l.name, l.detail);
        }
    }
    if a.sandbox.is_none() {
        // What `fix` puts on an interpreter's path when it has no pytest.
        let t = std::time::Instant::now();
        let dir = opts.provided_pytest().await?;
        eprintln!(
            "pytest {} (for interpreters without one): ready in {:.1}s, {}",
            sandbox::runtime::PYTEST_WHEELS[0].version,
            t.elapsed().as_secs_f64(),
            dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
