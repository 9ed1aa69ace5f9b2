//! `selfrepair tasks list|show|fetch`: the benchmark datasets.

use anyhow::{Context, bail};
use selfrepair::tasks::{self, DataSource, LoadOptions, Manifest};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct TasksArgs {
    #[command(subcommand)]
    pub command: TasksCommand,
    /// Read datasets from DIR/<dataset dir>/<file> instead of the cache.
    #[arg(long, env = "SELFREPAIR_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
pub enum TasksCommand {
    /// The known datasets, and whether each is present and verified.
    List,
    /// A dataset's tasks (or one task in full).
    Show {
        dataset: String,
        /// Show this task in full.
        task_id: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Parallel ground-truth runs (evalplus sets, first use only).
        #[arg(short = 'j', long, default_value_t = default_jobs())]
        jobs: usize,
    },
    /// Download a dataset's upstream file into the cache, checking its sha256.
    #[command(
        after_help = "Examples:\n  selfrepair tasks fetch humaneval\n  SELFREPAIR_DATASET_MIRROR=http://mirror.internal/datasets selfrepair tasks fetch all"
    )]
    Fetch {
        /// A dataset name, or `all`.
        dataset: String,
        /// Fetch from a mirror holding the same layout (MIRROR/<dir>/<file>)
        /// instead of upstream; the pinned sha256 is checked all the same.
        #[arg(long, env = "SELFREPAIR_DATASET_MIRROR", value_name = "URL")]
        mirror: Option<String>,
    },
}

pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

pub async fn run(a: TasksArgs) -> anyhow::Result<ExitCode> {
    let manifest = Manifest::builtin()?;
    let source = DataSource::new(a.data_dir.clone());
    match a.command {
        TasksCommand::List => {
            println!("datasets under {}:", source.root().display());
            for d in &manifest.dataset {
                let state = match source.locate(d) {
                    Ok(_) => "ok".to_string(),
                    Err(tasks::TaskError::Missing { .. }) => "missing".to_string(),
                    Err(e) => format!("bad: {e}"),
                };
                println!(
                    "  {:<17} {:>4} tasks  {:<8} {}",
                    d.name,
                    d.records.map_or("?".into(), |n| n.to_string()),
                    state,
                    d.title
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        TasksCommand::Show {
            dataset,
            task_id,
            json,
            jobs,
        } => {
            let ds = manifest.get(&dataset)?;
            let opts = LoadOptions::new(
                source,
                jobs,
                std::io::IsTerminal::is_terminal(&std::io::stderr()),
            );
            let all = tasks::load(ds, &opts).await?;
            if let Some(id) = task_id {
                let t = all
                    .iter()
                    .find(|t| t.id == id)
                    .with_context(|| format!("no task '{id}' in {}", ds.name))?;
                if json {
                    println!("{}", serde_json::to_string_pretty(t)?);
                } else {
                    println!(
                        "{} ({}), from {}:{}",
                        t.id,
                        t.dataset,
                        t.source.file.display(),
                        t.source.line
                    );
                    if let Some(e) = &t.entry_point {
                        println!("entry point: {e}");
                    }
                    println!("--- prompt\n{}", t.prompt.trim_end());
                    for v in &t.visible {
                        println!("--- visible test\n{v}");
                    }
                    for s in t.suites.iter().chain(&t.extra) {
                        println!(
                            "--- suite '{}': {} tests; {}; timeout {:.1}s",
                            s.name,
                            s.len(),
                            s.rule,
                            s.limits.timeout.as_secs_f64()
                        );
                    }
                    println!("--- {} reference solution(s)", t.canonical.len());
                }
            } else if json {
                println!("{}", serde_json::to_string(&all)?);
            } else {
                println!("{}: {} tasks", ds.name, all.len());
                for t in &all {
                    let suites: Vec<String> = t
                        .suites
                        .iter()
                        .map(|s| format!("{} {}", s.name, s.len()))
                        .collect();
                    println!(
                        "  {:<14} {:<22} {}{}",
                        t.id,
                        t.entry_point.as_deref().unwrap_or("-"),
                        suites.join(", "),
                        t.source
                            .split
                            .as_deref()
                            .map(|s| format!("  [{s}]"))
                            .unwrap_or_default()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TasksCommand::Fetch { dataset, mirror } => {
            let list: Vec<_> = if dataset == "all" {
                manifest
                    .dataset
                    .iter()
                    .filter(|d| d.file.is_some())
                    .collect()
            } else {
                vec![manifest.get(&dataset)?]
            };
            let root = DataSource::new(None).root();
            for d in list {
                let (Some(file), Some(sha)) = (&d.file, &d.sha256) else {
                    bail!(
                        "{} has no pinned single file to fetch; unpack it from {} and use --data-dir DIR with DIR/{}",
                        d.name,
                        d.url,
                        d.rel_path()
                    );
                };
                let dest = root.join(&d.dir).join(file);
                if dest.is_file() && selfrepair_store::sha256_file(&dest)? == *sha {
                    println!("{}: already in {}", d.name, dest.display());
                    continue;
                }
                let url = match &mirror {
                    Some(m) => format!("{}/{}/{file}", m.trim_end_matches('/'), d.dir),
                    None => d.url.clone(),
                };
                selfrepair_store::download(
                    &url,
                    &dest,
                    sha,
                    &d.name,
                    std::io::IsTerminal::is_terminal(&std::io::stderr()),
                )
                .await
                .with_context(|| format!("fetching {}", d.name))?;
                println!("{}: {} (sha256 ok)", d.name, dest.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
