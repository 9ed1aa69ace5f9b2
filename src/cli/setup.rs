//! `selfrepair setup`: fetch and build the runtimes ahead of first use.

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
    Ok(ExitCode::SUCCESS)
}
