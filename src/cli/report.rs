//! `selfrepair report RUN_DIR` and `selfrepair merge OUT SHARD...`: metrics
//! of a run dir, recomputed from its nodes, and shards joined into one run.

use anyhow::Context;
use selfrepair::engine::{plot, report, store};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// A run dir written by `selfrepair bench` (or `merge`).
    pub run_dir: PathBuf,
    /// Estimate this many initial programs (needs a frozen tree at least this large).
    #[arg(long, requires = "nfr")]
    pub np: Option<u32>,
    /// … and this many repairs per failing program.
    #[arg(long, requires = "np")]
    pub nfr: Option<u32>,
    /// Print results.json instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    /// The merged run dir to create.
    pub out: PathBuf,
    /// Shard run dirs (`selfrepair bench --shard I/N`).
    #[arg(required = true)]
    pub shards: Vec<PathBuf>,
}

/// Compute the metrics of `dir`, write report.md, results.json and the
/// plots into it, and return the table.
pub fn write_report(dir: &Path, want: Option<(u32, u32)>) -> anyhow::Result<String> {
    let cfg = store::read_config(dir)?;
    let nodes = store::load_nodes(dir)?;
    let results = report::compute(&cfg, &nodes, want)
        .with_context(|| format!("cannot report on {}", dir.display()))?;
    let table = report::render(&results);
    let json = serde_json::to_string_pretty(&results)? + "\n";
    selfrepair_store::write_atomic(&dir.join("results.json"), json.as_bytes())
        .with_context(|| format!("cannot write {}", dir.join("results.json").display()))?;
    let md = format!(
        "# selfrepair report\n\n{table}\n![pass@t](pass_at_t.svg)\n\nRecompute with `selfrepair report {}`.\n",
        dir.display()
    );
    selfrepair_store::write_atomic(&dir.join("report.md"), md.as_bytes())
        .with_context(|| format!("cannot write {}", dir.join("report.md").display()))?;
    plot::write(&results, dir)?;
    Ok(table)
}

pub async fn run(a: ReportArgs) -> anyhow::Result<ExitCode> {
    let want = a.np.zip(a.nfr);
    let table = write_report(&a.run_dir, want)?;
    if a.json {
        let text = std::fs::read_to_string(a.run_dir.join("results.json"))?;
        print!("{text}");
    } else {
        print!("{table}");
        println!(
            "wrote report.md, results.json, pass_at_t.svg and pass_at_t.png in {}",
            a.run_dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn merge(a: MergeArgs) -> anyhow::Result<ExitCode> {
    let (_, count) = store::merge(&a.shards, &a.out)
        .with_context(|| format!("cannot merge into {}", a.out.display()))?;
    eprintln!(
        "merged {} shard(s): {count} nodes into {}",
        a.shards.len(),
        a.out.display()
    );
    print!("{}", write_report(&a.out, None)?);
    Ok(ExitCode::SUCCESS)
}
