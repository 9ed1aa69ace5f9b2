//! Which repairer a session uses: the model from the config, env and flags
//! (the same resolution as every other command), else the mutation repairer.

use super::Repairer;
use crate::config::{self, ConfigError};
use crate::model::cli::ModelArgs;
use crate::model::{self, ModelError, ModelSpec};
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
    flags: &ModelArgs,
    mutate_first: bool,
) -> Result<Repairer, ChooseError> {
    let cfg = config::load(path, flags)?;
    let settings = match cfg.model_settings() {
        Err(ConfigError::NoModel) => return Ok(Repairer::Mutate),
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

/// How the repairer is named in plans and logs.
pub fn describe(r: &Repairer) -> String {
    match r {
        Repairer::Mutate => "mutate".to_string(),
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
