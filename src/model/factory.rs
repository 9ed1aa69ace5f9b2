//! From settings to a ready [`Client`]: pick the provider, find its key.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::Model;
use super::anthropic::Anthropic;
use super::budget::Budgets;
use super::client::{Client, ClientOptions};
use super::error::ModelError;
use super::http::host_is;
use super::local::{Local, Source};
use super::openai::OpenAiCompatible;
use super::pricing::PriceTable;
use super::replay::Replay;
use super::retry::RetryPolicy;
use super::secret::{ApiKey, DEFAULT_KEY_VARS, key_from_env, process_env};
use super::spec::ModelSpec;
use super::types::SamplingParams;

/// Everything needed to talk to a model; [`crate::config`] produces it.
#[derive(Clone, Debug)]
pub struct ModelSettings {
    pub spec: ModelSpec,
    /// Overrides the preset's base URL.
    pub base_url: Option<String>,
    /// Env var holding the key; `None` means the provider's default var,
    /// which is only sent to that provider's own host.
    pub api_key_env: Option<String>,
    pub defaults: SamplingParams,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub concurrency: usize,
    pub budgets: Budgets,
    pub prices: PriceTable,
}

impl ModelSettings {
    pub fn new(spec: ModelSpec) -> Self {
        let o = ClientOptions::default();
        ModelSettings {
            spec,
            base_url: None,
            api_key_env: None,
            defaults: o.defaults,
            timeout: o.timeout,
            retry: o.retry,
            concurrency: o.concurrency,
            budgets: o.budgets,
            prices: o.prices,
        }
    }

    /// Env vars that may hold keys: the providers' defaults plus
    /// `api_key_env`. A sandbox must remove all of them from the environment
    /// it gives untrusted code.
    pub fn secret_env_vars(&self) -> Vec<String> {
        let mut v: Vec<String> = DEFAULT_KEY_VARS.iter().map(|s| s.to_string()).collect();
        if let Some(k) = &self.api_key_env
            && !v.contains(k)
        {
            v.push(k.clone());
        }
        v
    }

    fn options(&self) -> ClientOptions {
        ClientOptions {
            concurrency: self.concurrency,
            timeout: self.timeout,
            retry: self.retry,
            budgets: self.budgets,
            prices: self.prices.clone(),
            defaults: self.defaults.clone(),
        }
    }
}

/// Build a client reading keys from the process environment.
pub fn open(settings: &ModelSettings, run_dir: Option<&Path>) -> Result<Client, ModelError> {
    open_with_env(settings, run_dir, &process_env)
}

/// Build a client reading keys through `env`.
pub fn open_with_env(
    settings: &ModelSettings,
    run_dir: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Client, ModelError> {
    let inner = provider(settings, env)?;
    Client::new(inner, settings.options(), run_dir)
}

/// The bare provider (one attempt per call, no budgets or transcript).
pub fn provider(
    settings: &ModelSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn Model>, ModelError> {
    let key = || resolve_key(settings, env);
    match &settings.spec {
        ModelSpec::OpenAiCompat { preset, model } => {
            let info = preset.info();
            let base = settings.base_url.as_deref().unwrap_or(info.base_url);
            Ok(Arc::new(OpenAiCompatible::new(
                info.name,
                model,
                base,
                key()?,
                info.supports_n,
            )?))
        }
        ModelSpec::Anthropic { model } => {
            let base = settings
                .base_url
                .as_deref()
                .unwrap_or(super::spec::ANTHROPIC_BASE_URL);
            Ok(Arc::new(Anthropic::new(model, base, key()?)?))
        }
        ModelSpec::Replay { path } => Ok(Arc::new(Replay::open(path)?)),
        ModelSpec::Local(m) => Ok(Arc::new(Local::open(m, &Source::default()))),
        ModelSpec::Mutate => Err(ModelError::Unsupported(
            "`mutate` is the model-free repairer, not a chat model: wrap it in a Client with Client::new".into(),
        )),
    }
}

/// An explicitly named var must be set. The provider's default var is used
/// only against its default host (so a custom `--base-url` never receives,
/// say, your OpenAI key) and is required there when the host needs a key.
fn resolve_key(
    settings: &ModelSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ApiKey>, ModelError> {
    if let Some(var) = &settings.api_key_env {
        return key_from_env(var, env).map(Some).ok_or_else(|| {
            ModelError::Config(format!("{var} (named by --api-key-env) is not set"))
        });
    }
    let (Some(var), Some(default_base)) = (
        settings.spec.default_key_env(),
        settings.spec.default_base_url(),
    ) else {
        return Ok(None);
    };
    let default_host = reqwest::Url::parse(default_base)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let on_default_host = settings
        .base_url
        .as_deref()
        .is_none_or(|b| host_is(b, &default_host));
    if !on_default_host {
        return Ok(None);
    }
    key_from_env(var, env).map(Some).ok_or_else(|| {
        ModelError::Config(format!(
            "{var} is not set: export it, or name another variable with --api-key-env NAME"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with(var: &'static str, val: &'static str) -> impl Fn(&str) -> Option<String> {
        move |k| (k == var).then(|| val.to_string())
    }

    fn settings(spec: &str, base: Option<&str>, key_env: Option<&str>) -> ModelSettings {
        let mut s = ModelSettings::new(spec.parse().unwrap());
        s.base_url = base.map(str::to_string);
        s.api_key_env = key_env.map(str::to_string);
        s
    }

    #[test]
    fn default_key_required_on_default_host() {
        let s = settings("openai:gpt-4o", None, None);
        let e = resolve_key(&s, &|_| None).unwrap_err().to_string();
        assert!(e.contains("OPENAI_API_KEY is not set"), "{e}");
        let k = resolve_key(&s, &env_with("OPENAI_API_KEY", "sk-1")).unwrap();
        assert_eq!(k.unwrap().expose(), "sk-1");
    }

    #[test]
    fn default_key_not_sent_to_custom_host() {
        let s = settings("openai:qwen", Some("http://gpu-box:8000/v1"), None);
        assert!(
            resolve_key(&s, &env_with("OPENAI_API_KEY", "sk-1"))
                .unwrap()
                .is_none()
        );
        let s = settings("ollama:llama3", None, None);
        assert!(resolve_key(&s, &|_| None).unwrap().is_none());
    }

    #[test]
    fn named_key_env_is_required() {
        let s = settings("vllm:q", None, Some("MY_KEY"));
        assert!(
            resolve_key(&s, &|_| None)
                .unwrap_err()
                .to_string()
                .contains("MY_KEY")
        );
        assert!(resolve_key(&s, &env_with("MY_KEY", "k")).unwrap().is_some());
    }

    #[test]
    fn secret_env_vars_include_the_custom_one() {
        let s = settings("vllm:q", None, Some("MY_KEY"));
        let v = s.secret_env_vars();
        assert!(v.iter().any(|k| k == "OPENAI_API_KEY"));
        assert!(v.iter().any(|k| k == "MY_KEY"));
    }

    #[test]
    fn mutate_is_not_a_provider() {
        let s = settings("mutate", None, None);
        assert!(matches!(
            provider(&s, &|_| None),
            Err(ModelError::Unsupported(_))
        ));
    }
}
