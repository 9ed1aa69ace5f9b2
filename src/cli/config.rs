//! `selfrepair config show`: the effective configuration and where each value came from.

use super::model_args::ModelArgs;
use anyhow::Context;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub action: ConfigAction,
}

#[derive(clap::Subcommand, Debug)]
pub enum ConfigAction {
    /// Print every setting with its source (default, file, env or flag); keys are redacted.
    #[command(after_help = "Example:\n  selfrepair config show --model openai:gpt-4o-mini")]
    Show {
        /// The project dir whose selfrepair.toml is read first.
        #[arg(long, default_value = ".")]
        dir: std::path::PathBuf,
        #[command(flatten)]
        model: ModelArgs,
    },
}

pub async fn run(a: ConfigArgs) -> anyhow::Result<ExitCode> {
    match a.action {
        ConfigAction::Show { dir, model } => {
            let cfg = selfrepair::config::load(&dir, &model.flags())
                .with_context(|| format!("reading the configuration for {}", dir.display()))?;
            print!("{}", selfrepair::config::render_config_show(&cfg));
        }
    }
    Ok(ExitCode::SUCCESS)
}
