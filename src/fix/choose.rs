//! Which repairer a session uses: the model from the config, env and flags
//! (the same resolution as every other command), else the mutation repairer.

use super::Repairer;
use crate::config::ModelFlags;
use crate::config::{self, ConfigError};
use crate::model::{self, ModelError, ModelSpec, local};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ChooseError {
    #[error("reading the configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("opening the model: {0}")]
    Model(#[from] ModelError),
}

/// The repairer for a project at `path`; `mutate_first` runs the mutation
/// repairer before a model.
pub fn configured(
    path: &Path,
    flags: &ModelFlags,
    mutate_first: bool,
) -> Result<Repairer, ChooseError> {
    let cfg = config::load(path, flags)?;
    let settings = match cfg.model_settings() {
        Err(ConfigError::NoModel) => return Ok(local_fallback(&cfg).unwrap_or(Repairer::Mutate)),
        r => r?,
    };
    if settings.spec == ModelSpec::Mutate {
        return Ok(Repairer::Mutate);
    }
    let client = model::open(&settings, None)?;
    Ok(Repairer::Model {
        client: Arc::new(client),
        mutate_first,
    })
}

/// With no model configured: the mutation repairer, then the default local
/// model if it is installed (`selfrepair setup --model local`). Only the
/// default model: the small ones are for tests and would rarely help.
/// `--model mutate` keeps the mutation repairer alone. The rest of the
/// configuration (sampling, budgets) applies to it as to any model.
fn local_fallback(cfg: &config::EffectiveConfig) -> Option<Repairer> {
    let known = local::catalog::find(local::catalog::DEFAULT)?;
    if !local::fetch::installed(&selfrepair_store::home(), known) {
        return None;
    }
    let spec = ModelSpec::Local(local::LocalModel::Known(known));
    let client = model::open(&cfg.settings_for(spec), None).ok()?;
    Some(Repairer::Model {
        client: Arc::new(client),
        mutate_first: true,
    })
}

/// How the repairer is named in plans and logs.
pub fn describe(r: &Repairer) -> String {
    match r {
        Repairer::Mutate => "mutate".to_string(),
        Repairer::Model {
            client,
            mutate_first: true,
        } if model::Model::in_process(client.as_ref()) => format!(
            "mutate, then {}:{} (in-process) if no mutant passes",
            model::Model::provider(client.as_ref()),
            model::Model::model(client.as_ref()),
        ),
        Repairer::Model {
            client,
            mutate_first,
        } => format!(
            "{}:{}{}",
            model::Model::provider(client.as_ref()),
            model::Model::model(client.as_ref()),
            if *mutate_first { " (mutate first)" } else { "" }
        ),
    }
}
