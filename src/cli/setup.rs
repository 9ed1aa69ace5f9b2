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
    /// Fetch and verify a local model instead (local:qwen2.5-coder-1.5b,
    /// local:qwen2.5-coder-0.5b, local:smollm2-135m), then load it once.
    #[arg(long, value_name = "local:NAME")]
    pub model: Option<String>,
}

/// `setup --model local:NAME`: fetch, verify, load, and say how fast it runs.
async fn setup_model(spec: &str) -> anyhow::Result<ExitCode> {
    use selfrepair::model::local::{self, Local, Source};
    use selfrepair::model::{ChatRequest, Message, Model, ModelSpec, SamplingParams};
    let spec: ModelSpec = spec.parse()?;
    let ModelSpec::Local(m) = spec else {
        anyhow::bail!(
            "--model takes a local model here (local:NAME or local:PATH.gguf), not {spec}"
        );
    };
    let src = Source {
        progress: true,
        ..Source::default()
    };
    if let local::LocalModel::Known(k) = &m {
        eprintln!("{}: {} ({} bytes)", k.name, k.about, k.size);
    }
    let t = std::time::Instant::now();
    let path = local::ensure(&m, &src).await?;
    eprintln!(
        "{}: sha256 verified, {} ({:.1}s)",
        m.name(),
        path.display(),
        t.elapsed().as_secs_f64()
    );
    let t = std::time::Instant::now();
    let probe = ChatRequest::new(vec![Message::user("Reply with the word ok.")]).with_params(
        SamplingParams {
            max_tokens: Some(8),
            temperature: Some(0.0),
            ..SamplingParams::default()
        },
    );
    let c = Local::open(&m, &src).complete(&probe).await?;
    eprintln!(
        "{}: loaded and answered {:?} in {:.1}s (prefill {:.0} tok/s, decode {:.1} tok/s)",
        m.name(),
        c.text(),
        t.elapsed().as_secs_f64(),
        c.usage.prefill_tokens_per_s().unwrap_or(0.0),
        c.usage.decode_tokens_per_s().unwrap_or(0.0),
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn run(a: SetupArgs) -> anyhow::Result<ExitCode> {
    if let Some(m) = &a.model {
        return setup_model(m).await;
    }
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
