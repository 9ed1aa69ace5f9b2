//! `selfrepair bench-model`: a local model's prefill and decode speed, side
//! by side with llama.cpp (the `xllamacpp` wheel) on the same GGUF, prompts
//! and thread count, in one run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use selfrepair::model::local::{self, Local, LocalModel, Source};
use selfrepair::model::{ChatRequest, Message, Model, ModelSpec, SamplingParams};

#[derive(clap::Args, Debug)]
pub struct BenchModelArgs {
    /// The model: local:NAME or local:PATH.gguf.
    #[arg(long, default_value = "local:qwen2.5-coder-1.5b")]
    pub model: String,
    /// Tokens to generate per prompt (greedy).
    #[arg(long, default_value_t = 64)]
    pub max_tokens: u32,
    /// Rounds per prompt; the best round of each side is reported.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Also decode this many different requests at once and report the
    /// total decode rate (continuous batching).
    #[arg(long, default_value_t = 4)]
    pub concurrent: usize,
    /// A Python with `xllamacpp` installed: run llama.cpp on the same file.
    #[arg(long, value_name = "PYTHON")]
    pub reference: Option<PathBuf>,
}

/// The prompts: a HumanEval-sized question and a long one (a repair prompt
/// with code and a traceback is this size).
fn prompts() -> Vec<(&'static str, String)> {
    let short = "Write a Python function `is_prime(n)` that returns True when n is a prime number. Reply with one ```python block.".to_string();
    let code = include_str!("../engine/extract.rs");
    let long = format!(
        "Explain what this Rust code does, then list three possible bugs.\n\n```rust\n{}\n```",
        &code[..code.len().min(2600)]
    );
    vec![("short", short), ("long", long)]
}

fn greedy(text: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest::new(vec![Message::user(text)]).with_params(SamplingParams {
        temperature: Some(0.0),
        max_tokens: Some(max_tokens),
        ..SamplingParams::default()
    })
}

pub async fn run(a: BenchModelArgs) -> anyhow::Result<ExitCode> {
    let ModelSpec::Local(m) = a.model.parse::<ModelSpec>()? else {
        anyhow::bail!("bench-model measures local models (local:NAME or local:PATH.gguf)");
    };
    let src = Source::default();
    let path = local::ensure(&m, &src).await?;
    let threads = candle_threads();
    println!(
        "model {} ({}), {} threads, {} tokens per reply, best of {} rounds",
        m.name(),
        path.display(),
        threads,
        a.max_tokens,
        a.rounds
    );
    let engine = Local::open(&LocalModel::File(path.clone()), &src);
    // Load outside the timings.
    engine.complete(&greedy("Hi", 2)).await?;
    let mut reference_rss = 0.0f64;
    println!("| prompt | tokens | engine | prefill tok/s | decode tok/s |");
    println!("|---|---|---|---|---|");
    for (name, text) in prompts() {
        let mut best = (0.0f64, 0.0f64, 0u64);
        for _ in 0..a.rounds {
            let c = engine.complete(&greedy(&text, a.max_tokens)).await?;
            let p = c.usage.prefill_tokens_per_s().unwrap_or(0.0);
            let d = c.usage.decode_tokens_per_s().unwrap_or(0.0);
            best = (best.0.max(p), best.1.max(d), c.usage.prompt_tokens);
        }
        println!(
            "| {name} | {} | selfrepair (candle) | {:.1} | {:.1} |",
            best.2, best.0, best.1
        );
        if let Some(py) = &a.reference {
            let r = reference(py, &path, threads, &text, a.max_tokens, a.rounds)?;
            reference_rss = reference_rss.max(r.peak_rss_mb);
            println!(
                "| {name} | {} | llama.cpp (xllamacpp) | {:.1} | {:.1} |",
                r.prompt_tokens, r.prefill, r.decode
            );
            println!(
                "| {name} | | ratio | {:.2}x | {:.2}x |",
                best.0 / r.prefill.max(1e-9),
                best.1 / r.decode.max(1e-9)
            );
        }
    }
    // Before the concurrent round, whose caches are not part of one request.
    if let Some(mb) = peak_rss_mb() {
        print!("\npeak RSS: selfrepair {mb:.0} MB");
        if a.reference.is_some() {
            print!(", llama.cpp {reference_rss:.0} MB");
        }
        println!();
    }
    if a.concurrent > 1 {
        let reqs: Vec<ChatRequest> = (0..a.concurrent)
            .map(|i| {
                greedy(
                    &format!("Write a Python function number {i} of a small library for strings."),
                    a.max_tokens,
                )
            })
            .collect();
        let t = Instant::now();
        let done = futures_util::future::join_all(reqs.iter().map(|r| engine.complete(r))).await;
        let wall = t.elapsed().as_secs_f64();
        let mut tokens = 0;
        for c in done {
            tokens += c?.usage.completion_tokens;
        }
        println!(
            "\n{} concurrent requests: {tokens} tokens in {wall:.1}s = {:.1} tok/s in all (prefills included)",
            a.concurrent,
            tokens as f64 / wall
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Threads candle uses: `RAYON_NUM_THREADS`, else the physical cores.
fn candle_threads() -> usize {
    candle_core::utils::get_num_threads()
}

/// This process's peak resident set (`VmHWM`), in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// What llama.cpp did on one prompt: its best prefill and decode tok/s over
/// the rounds, the prompt's length in its tokens, and its peak resident set.
struct Reference {
    prefill: f64,
    decode: f64,
    prompt_tokens: u64,
    peak_rss_mb: f64,
}

fn reference(
    py: &std::path::Path,
    gguf: &std::path::Path,
    threads: usize,
    prompt: &str,
    max_tokens: u32,
    rounds: usize,
) -> anyhow::Result<Reference> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/xllamacpp_speed.py");
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), prompt)?;
    let mut best = Reference {
        prefill: 0.0,
        decode: 0.0,
        prompt_tokens: 0,
        peak_rss_mb: 0.0,
    };
    for _ in 0..rounds {
        let out = std::process::Command::new(py)
            .arg(&script)
            .arg(gguf)
            .arg(threads.to_string())
            .arg(file.path())
            .arg(max_tokens.to_string())
            .env("OMP_WAIT_POLICY", "PASSIVE")
            .stderr(std::process::Stdio::null())
            .output()
            .with_context(|| format!("running {}", py.display()))?;
        anyhow::ensure!(
            out.status.success(),
            "{} {} failed: {}",
            py.display(),
            script.display(),
            String::from_utf8_lossy(&out.stdout)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("{} printed no JSON", script.display()))?;
        let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
        best = Reference {
            prefill: best.prefill.max(f("prefill_tok_s")),
            decode: best.decode.max(f("decode_tok_s")),
            prompt_tokens: v["prompt_tokens"].as_u64().unwrap_or(0),
            peak_rss_mb: best.peak_rss_mb.max(f("peak_rss_mb")),
        };
    }
    Ok(best)
}
