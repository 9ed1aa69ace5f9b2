//! `selfrepair bench DATASET --model M`: grow repair trees for a dataset's
//! tasks into a run dir, then report pass@k / pass@t.

use super::model_args::ModelArgs;
use anyhow::{Context, bail};
use selfrepair::engine::prompts::{PromptSet, Style};
use selfrepair::engine::{Engine, Mode, RunConfig, RunDir, Shape, TaskResult, Visible};
use selfrepair::eval::Scorer;
use selfrepair::model::{ModelSpec, open};
use selfrepair::sandbox::{self, SandboxKind};
use selfrepair::tasks::select::{parse_shard, select};
use selfrepair::tasks::{self, DataSource, LoadOptions, Manifest};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// humaneval, humaneval+, mbpp, mbpp-sanitized, mbpp+, apps, apps-selected150.
    pub dataset: String,
    #[command(flatten)]
    pub model: ModelArgs,
    /// A different model for the explanations (Olausson's M_F), e.g. a stronger one.
    #[arg(long, value_name = "PROVIDER:MODEL")]
    pub feedback_model: Option<String>,
    /// Initial programs per task (n_p).
    #[arg(long, default_value_t = 1)]
    pub np: u32,
    /// Joint explanation-plus-repair samples per failing program (n_fr).
    #[arg(long, conflicts_with_all = ["nf", "nr"])]
    pub nfr: Option<u32>,
    /// Explanations per failing program (n_f), each followed by --nr repairs.
    #[arg(long)]
    pub nf: Option<u32>,
    /// Repairs per explanation (n_r).
    #[arg(long, requires = "nf")]
    pub nr: Option<u32>,
    /// Rounds of repair below each initial program.
    #[arg(long, default_value_t = 1)]
    pub depth: u32,
    /// Record a frozen NPxNFR tree (every failing program expanded) to
    /// estimate any smaller (n_p, n_fr) by bootstrap; overrides --np/--nfr.
    #[arg(long, value_name = "NPxNFR")]
    pub frozen: Option<String>,
    /// batched: all initial programs, then repairs of the failures; sequential: depth first, stop at the first pass.
    #[arg(long, value_parser = super::choice::<Mode>(), default_value = "batched")]
    pub mode: Mode,
    /// Tasks by 0-based index in the dataset: `0-19`, `3,7,10-12`.
    #[arg(long)]
    pub tasks: Option<String>,
    /// Run shard I of N (tasks I, I+N, … of the selection); join with `selfrepair merge`.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Tasks in flight at once.
    #[arg(short = 'j', long, default_value_t = 4)]
    pub jobs: usize,
    /// The run dir (default: runs/<dataset>-<model>-<shape>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue a run in --out: completed nodes are kept, recorded calls are not repeated.
    #[arg(long)]
    pub resume: bool,
    /// Load the prompt templates from DIR instead of the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub prompts: Option<PathBuf>,
    #[arg(long, value_parser = super::choice::<Style>(), default_value = "chat")]
    pub style: Style,
    /// Temperature of repairs and explanations (initial programs: --temperature, default 0.8).
    #[arg(long, default_value_t = 0.8)]
    pub repair_temperature: f64,
    /// Failing tests shown in the feedback.
    #[arg(long, default_value_t = 1)]
    pub feedback_tests: usize,
    /// protocol: MBPP shows 1 of 3 asserts, APPS the sample I/O; hidden: the hidden tests give feedback.
    #[arg(long, value_parser = super::choice::<Visible>(), default_value = "protocol")]
    pub visible: Visible,
    #[arg(long, default_value = "wasm")]
    pub sandbox: SandboxKind,
    /// Seed for sampling and for nothing else (the bootstrap has its own).
    #[arg(long, default_value_t = 0)]
    pub run_seed: u64,
    #[arg(long, env = "SELFREPAIR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// evalplus' floor on each input's time limit (see `eval --help`).
    #[arg(long, value_name = "SECS", default_value_t = tasks::evalplus::MIN_TIME_LIMIT, value_parser = super::seconds)]
    pub min_time_limit: f64,
    #[arg(long)]
    pub quiet: bool,
}

fn parse_frozen(s: &str) -> anyhow::Result<(u32, u32)> {
    let bad = || anyhow::anyhow!("--frozen {s}: expected NPxNFR with both at least 1, e.g. 50x25");
    let (a, b) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let (a, b): (u32, u32) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    if a == 0 || b == 0 {
        return Err(bad());
    }
    Ok((a, b))
}

pub async fn run(a: BenchArgs) -> anyhow::Result<ExitCode> {
    let manifest = Manifest::builtin()?;
    let ds = manifest.get(&a.dataset)?;
    let cfg = selfrepair::config::load(std::path::Path::new("."), &a.model.flags())
        .context("reading the model configuration")?;
    let settings = cfg.model_settings().context(
        "bench needs a model: pass --model PROVIDER:MODEL (or set it in selfrepair.toml)",
    )?;
    if matches!(settings.spec, ModelSpec::Mutate) {
        bail!("bench needs a language model; `mutate` repairs repositories (selfrepair fix)");
    }
    let b = &settings.budgets.run;
    if b.tokens == Some(0) || b.calls == Some(0) || b.usd == Some(0.0) {
        bail!(
            "a run budget of 0 leaves nothing to spend: raise --budget-tokens/--budget-usd/--budget-calls or leave them unset"
        );
    }
    let (np, nf, nr, joint, frozen) = match &a.frozen {
        Some(f) => {
            let (np, nf) = parse_frozen(f)?;
            (np, nf, a.nr.unwrap_or(1), a.nf.is_none(), true)
        }
        None => match (a.nfr, a.nf) {
            (_, Some(nf)) => (a.np, nf, a.nr.unwrap_or(1), false, false),
            (nfr, None) => (a.np, nfr.unwrap_or(1), 1, true, false),
        },
    };
    if np == 0 {
        bail!("--np must be at least 1");
    }
    let shard = a.shard.as_deref().map(parse_shard).transpose()?;
    let prompts = PromptSet::load(a.prompts.as_deref(), a.style)?;
    let model_name = settings.spec.to_string();
    let feedback_settings = match &a.feedback_model {
        Some(m) => {
            let mut s = settings.clone();
            s.spec = m.parse().with_context(|| format!("--feedback-model {m}"))?;
            Some(s)
        }
        None => None,
    };
    let shape = Shape {
        np,
        nf,
        nr,
        joint,
        depth: a.depth,
        frozen,
    };
    let run_config = RunConfig {
        dataset: ds.name.clone(),
        tasks: a.tasks.clone(),
        shard,
        model: model_name.clone(),
        feedback_model: feedback_settings
            .as_ref()
            .map_or_else(|| model_name.clone(), |s| s.spec.to_string()),
        base_url: settings.base_url.clone(),
        mode: a.mode,
        shape,
        style: a.style,
        templates: prompts.references(),
        temperature: settings.defaults.temperature.unwrap_or(0.8),
        repair_temperature: a.repair_temperature,
        max_tokens: settings.defaults.max_tokens,
        seed: a.run_seed,
        feedback_tests: a.feedback_tests.max(1),
        visible: a.visible,
        sandbox: a.sandbox,
    };
    let out = a.out.clone().unwrap_or_else(|| {
        let safe: String = model_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let sh = if joint {
            format!("np{np}-nfr{nf}")
        } else {
            format!("np{np}-nf{nf}-nr{nr}")
        };
        PathBuf::from("runs").join(format!("{}-{safe}-{sh}", ds.name.replace('+', "plus")))
    });
    let progress = !a.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let opts = LoadOptions {
        min_time_limit: a.min_time_limit,
        ..LoadOptions::new(
            DataSource::new(a.data_dir.clone()),
            super::tasks::default_jobs(),
            progress,
        )
    };
    let all = tasks::load(ds, &opts).await?;
    let picked = select(all, a.tasks.as_deref(), shard)?;
    let run = RunDir::open(&out, run_config.clone(), a.resume)?;
    let recorded = if a.resume {
        Engine::recorded_calls(&out).context("reading the transcript to resume")?
    } else {
        Vec::new()
    };
    let already: usize = run.done.values().map(|m| m.len()).sum();
    if a.resume && already > 0 {
        eprintln!(
            "resuming {}: {already} nodes on disk, {} recorded calls",
            out.display(),
            recorded.len()
        );
    }
    let model = Arc::new(open(&settings, Some(&out)).context("opening the model client")?);
    let feedback_model = match &feedback_settings {
        Some(s) => Arc::new(open(s, Some(&out)).context("opening the feedback model client")?),
        None => model.clone(),
    };
    let rt = sandbox::runtime::RuntimeOptions::default();
    let primary: Arc<dyn sandbox::Sandbox> = Arc::from(
        sandbox::open(a.sandbox, &rt)
            .await
            .with_context(|| format!("cannot open the {} sandbox", a.sandbox))?,
    );
    let scorer = Arc::new(Scorer::new(primary, Some(SandboxKind::Process), rt));
    let engine = Engine::new(run, prompts, model, feedback_model, scorer, recorded);

    let bar = if progress {
        indicatif::ProgressBar::new(picked.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(ds.name.clone());
    let solved = AtomicU64::new(0);
    let tokens = AtomicU64::new(0);
    let micro_usd = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let on_done = |r: &TaskResult| {
        let d = done.fetch_add(1, Ordering::Relaxed) + 1;
        let s = solved.fetch_add(u64::from(r.solved), Ordering::Relaxed) + u64::from(r.solved);
        let t = tokens.fetch_add(r.generated_tokens + r.prompt_tokens, Ordering::Relaxed)
            + r.generated_tokens
            + r.prompt_tokens;
        let u = micro_usd.fetch_add((r.cost_usd * 1e6) as u64, Ordering::Relaxed)
            + (r.cost_usd * 1e6) as u64;
        bar.inc(1);
        bar.set_message(format!(
            "pass {:.1}% · {t} tokens · ${:.4}",
            100.0 * s as f64 / d as f64,
            u as f64 / 1e6
        ));
        if let Some(b) = &r.budget_stop {
            bar.println(format!("{}: stopped by the budget: {b}", r.task));
        }
    };
    let result = engine.run_tasks(&picked, a.jobs, &on_done).await;
    bar.finish_and_clear();
    let results = result.with_context(|| {
        format!(
            "the run stopped; completed nodes are in {}; continue with --resume --out {}",
            out.display(),
            out.display()
        )
    })?;
    let budget_stops = results.iter().filter(|r| r.budget_stop.is_some()).count();
    let text = super::report::write_report(&out, None)?;
    print!("{text}");
    println!("run dir: {}", out.display());
    if budget_stops > 0 {
        eprintln!("{budget_stops} task(s) were cut short by the budget");
    }
    Ok(ExitCode::SUCCESS)
}
