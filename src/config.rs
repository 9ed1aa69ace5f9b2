//! Effective configuration of the model layer, with the source of every
//! value.
//!
//! Layers, later winning: built-in defaults, the user file
//! (`<config dir>/selfrepair/selfrepair.toml`), the project file
//! (`<project>/selfrepair.toml`), `SELFREPAIR_*` env vars, then flags.
//! Files own the `[model]`, `[budget]` and `[prices]` tables; other tables
//! belong to other parts of selfrepair and are ignored here. A file can name
//! the env var that holds a key (`api_key_env`) but never hold a key.
//!
//! ```toml
//! [model]
//! model = "openai:gpt-4o-mini"
//! temperature = 0.2
//! [budget]
//! usd = 5.0          # per run; task_usd / task_tokens / task_calls per task
//! [prices."my-finetune"]
//! input_per_mtok = 0.3
//! output_per_mtok = 1.2
//! ```

use std::collections::BTreeMap;
use std::fmt::{self, Display, Write as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::model::budget::{Budgets, Limits};
use crate::model::pricing::{Price, PriceTable};
use crate::model::retry::RetryPolicy;
use crate::model::secret::key_from_env;
use crate::model::spec::ModelSpec;
use crate::model::types::SamplingParams;
use crate::model::{ModelSettings, http::host_is};

pub(crate) const CONFIG_FILE: &str = "selfrepair.toml";

/// Where a value came from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env(String),
    Flag(String),
}

impl Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env(v) => write!(f, "env {v}"),
            Source::Flag(n) => write!(f, "flag {n}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Source,
}

// The settings that layer the usual way (file key, then env var, then flag)
// are listed once, in `settings!` below. It is a macro because each row
// feeds several typed places at once: a field of `EffectiveConfig`, a field
// of its file table (serde rejects unknown keys, with their line, only for
// real struct fields), the `ModelFlags` field of the same name, and a
// `config show` row. A runtime list could not hold the rows' types.
macro_rules! settings {
    (
        $(#[$meta:meta])*
        pub struct EffectiveConfig {
            $( $(#[$extra_meta:meta])* pub $extra:ident: $extra_ty:ty, )*
        }
        $(
            [$table:ident] $Table:ident {
                $(
                    $field:ident: $ty:ty $(= $default:expr)?,
                    $key:ident, $env:literal, $flag:literal, $show:literal $(via $display:ident)?;
                )*
            }
        )*
    ) => {
        $(#[$meta])*
        pub struct EffectiveConfig {
            $($( pub $field: Sourced<setting_type!($ty $(, $default)?)>, )*)*
            $( $(#[$extra_meta])* pub $extra: $extra_ty, )*
        }

        $(
            #[derive(Debug, Default, Deserialize)]
            #[serde(deny_unknown_fields)]
            struct $Table {
                $( $key: Option<$ty>, )*
            }
        )*

        /// The model flags of a command line, one per setting: `None` falls
        /// through to env vars, config files and defaults.
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct ModelFlags {
            $($( pub $field: Option<$ty>, )*)*
        }

        /// Each setting's `ModelFlags` field and its command-line flag.
        pub const FLAGS: &[(&str, &str)] = &[$($( (stringify!($field), $flag), )*)*];

        /// The file tables the settings are read from.
        const FILE_TABLES: &[&str] = &[$( stringify!($table) ),*];

        /// The table's settings, resolved, before the hand-written fields of
        /// `EffectiveConfig` (which depend on them) join them.
        struct TableSettings {
            $($( $field: Sourced<setting_type!($ty $(, $default)?)>, )*)*
        }

        impl TableSettings {
            fn resolve(l: &Layers<'_>, flags: &ModelFlags) -> Result<Self, ConfigError> {
                Ok(Self {
                    $($( $field: or_default!(
                        l.get(|c| c.$table.$key.as_ref(), $env, flags.$field.as_ref(), $flag)?
                        $(, $default)?
                    ), )*)*
                })
            }

            fn into_config(self, $( $extra: $extra_ty ),*) -> EffectiveConfig {
                EffectiveConfig {
                    $($( $field: self.$field, )*)*
                    $( $extra, )*
                }
            }
        }

        /// The settings' `config show` rows, in table order.
        fn table_rows(cfg: &EffectiveConfig) -> Vec<(&'static str, String, &Source)> {
            vec![$($(
                ($show, show_value!(cfg.$field, [$($display)?], [$($default)?]), &cfg.$field.source),
            )*)*]
        }

        /// One row of the table, for the tests that check the table itself.
        #[cfg(test)]
        struct SettingRow {
            field: &'static str,
            file_key: &'static str,
            env: &'static str,
            flag: &'static str,
            show: &'static str,
        }

        #[cfg(test)]
        const SETTINGS: &[SettingRow] = &[$($(
            SettingRow {
                field: stringify!($field),
                file_key: concat!(stringify!($table), ".", stringify!($key)),
                env: $env,
                flag: $flag,
                show: $show,
            },
        )*)*];
    };
}

/// A setting without a default is an `Option` of its type.
macro_rules! setting_type {
    ($ty:ty) => { Option<$ty> };
    ($ty:ty, $default:expr) => { $ty };
}

macro_rules! or_default {
    ($sourced:expr) => {
        $sourced
    };
    ($sourced:expr, $default:expr) => {
        with_default($sourced, $default)
    };
}

/// A `config show` value: the row's own function if it names one, else the
/// value, with "(none)" for an unset optional one.
macro_rules! show_value {
    ($cfg:ident.$field:ident, [$display:ident], [$($default:expr)?]) => {
        $display($cfg)
    };
    ($cfg:ident.$field:ident, [], []) => {
        opt(&$cfg.$field.value)
    };
    ($cfg:ident.$field:ident, [], [$default:expr]) => {
        $cfg.$field.value.to_string()
    };
}

// Row: `field: type [= default], file key, env var, flag, name in config
// show [via fn that renders the value]`. The order of the rows is that of
// `config show` and of the keys an unknown-key error lists.
settings! {
    #[derive(Clone, Debug, PartialEq)]
    pub struct EffectiveConfig {
        /// Price overrides from files (the built-in table applies underneath).
        pub prices: BTreeMap<String, Sourced<Price>>,
        /// Config files that were found and read, lowest precedence first.
        pub files: Vec<PathBuf>,
        /// The key's env var and whether it is set; never the key.
        pub key: KeyStatus,
    }

    // field                type        file key      env var                          flag                    config show
    [model] ModelTable {
        model:              String,     model,        "SELFREPAIR_MODEL",              "--model",              "model";
        base_url:           String,     base_url,     "SELFREPAIR_BASE_URL",           "--base-url",           "base_url" via base_url_display;
        // Shown as the key's status (from `key`), never a key.
        api_key_env:        String,     api_key_env,  "SELFREPAIR_API_KEY_ENV",        "--api-key-env",        "api_key" via key_display;
        temperature:        f64,        temperature,  "SELFREPAIR_TEMPERATURE",        "--temperature",        "temperature";
        top_p:              f64,        top_p,        "SELFREPAIR_TOP_P",              "--top-p",              "top_p";
        max_tokens:         u32,        max_tokens,   "SELFREPAIR_MAX_TOKENS",         "--max-tokens",         "max_tokens";
        seed:               u64,        seed,         "SELFREPAIR_SEED",               "--seed",               "seed";
        concurrency:        usize = 8,  concurrency,  "SELFREPAIR_CONCURRENCY",        "--concurrency",        "concurrency";
        timeout_secs:       u64 = 120,  timeout_secs, "SELFREPAIR_TIMEOUT_SECS",       "--timeout-secs",       "timeout_secs";
        max_retries:        u32 = 5,    max_retries,  "SELFREPAIR_MAX_RETRIES",        "--max-retries",        "max_retries";
    }
    [budget] BudgetTable {
        budget_tokens:      u64,        tokens,       "SELFREPAIR_BUDGET_TOKENS",      "--budget-tokens",      "budget.tokens";
        budget_usd:         f64,        usd,          "SELFREPAIR_BUDGET_USD",         "--budget-usd",         "budget.usd";
        budget_calls:       u64,        calls,        "SELFREPAIR_BUDGET_CALLS",       "--budget-calls",       "budget.calls";
        task_budget_tokens: u64,        task_tokens,  "SELFREPAIR_TASK_BUDGET_TOKENS", "--task-budget-tokens", "budget.task_tokens";
        task_budget_usd:    f64,        task_usd,     "SELFREPAIR_TASK_BUDGET_USD",    "--task-budget-usd",    "budget.task_usd";
        task_budget_calls:  u64,        task_calls,   "SELFREPAIR_TASK_BUDGET_CALLS",  "--task-budget-calls",  "budget.task_calls";
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum KeyStatus {
    /// The provider takes no key (replay, mutate, local presets).
    NotNeeded,
    /// No model chosen yet.
    Unknown,
    /// A default key var exists but is withheld from a custom base URL.
    Withheld {
        var: String,
    },
    Var {
        var: String,
        set: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {message}")]
    Io { path: PathBuf, message: String },
    /// The message never quotes the offending line: it might hold a secret.
    #[error("{path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(
        "{path}: `{key}` looks like an API key; keys are read from env vars only (set api_key_env = \"NAME\" instead)"
    )]
    SecretInFile { path: PathBuf, key: String },
    #[error("{var}={value:?}: {reason}")]
    BadEnv {
        var: String,
        value: String,
        reason: String,
    },
    #[error("{source_}: {message}")]
    Invalid { source_: Source, message: String },
    #[error(
        "no model chosen: pass --model PROVIDER:MODEL, set SELFREPAIR_MODEL, or `model` in [model] of selfrepair.toml"
    )]
    NoModel,
}

#[derive(Debug, Default, Deserialize)]
struct FileConfig {
    #[serde(default)]
    model: ModelTable,
    #[serde(default)]
    budget: BudgetTable,
    #[serde(default)]
    prices: BTreeMap<String, Price>,
}

/// What [`resolve`] reads; tests pass their own env and dirs.
pub struct ConfigInputs<'a> {
    pub project_dir: &'a Path,
    /// The user's config dir (`dirs::config_dir()`); `None` skips it.
    pub user_config_dir: Option<PathBuf>,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub flags: &'a ModelFlags,
}

/// The effective config for `project_dir`, from the real env and user dir.
pub fn load(project_dir: &Path, flags: &ModelFlags) -> Result<EffectiveConfig, ConfigError> {
    resolve(&ConfigInputs {
        project_dir,
        user_config_dir: dirs::config_dir(),
        env: &|k| std::env::var(k).ok(),
        flags,
    })
}

pub fn resolve(inputs: &ConfigInputs<'_>) -> Result<EffectiveConfig, ConfigError> {
    let mut candidates = Vec::new();
    if let Some(d) = &inputs.user_config_dir {
        candidates.push(d.join("selfrepair").join(CONFIG_FILE));
    }
    candidates.push(inputs.project_dir.join(CONFIG_FILE));
    let mut files = Vec::new();
    for path in candidates {
        if path.is_file() {
            let cfg = read_file(&path)?;
            files.push((path, cfg));
        }
    }
    let layers = Layers {
        files: &files,
        env: inputs.env,
    };
    let table = TableSettings::resolve(&layers, inputs.flags)?;
    let spec = match &table.model.value {
        Some(s) => Some(s.parse::<ModelSpec>().map_err(|e| ConfigError::Invalid {
            source_: table.model.source.clone(),
            message: e.to_string(),
        })?),
        None => None,
    };
    let key = key_status(
        spec.as_ref(),
        &table.base_url.value,
        &table.api_key_env.value,
        inputs.env,
    );

    let mut prices = BTreeMap::new();
    for (path, cfg) in &files {
        for (m, p) in &cfg.prices {
            prices.insert(
                m.clone(),
                Sourced {
                    value: *p,
                    source: Source::File(path.clone()),
                },
            );
        }
    }

    let cfg = table.into_config(prices, files.into_iter().map(|(p, _)| p).collect(), key);
    validate(&cfg)?;
    Ok(cfg)
}

impl EffectiveConfig {
    /// Settings for [`crate::model::open`]; errors if no model was chosen.
    pub fn model_settings(&self) -> Result<ModelSettings, ConfigError> {
        let raw = self.model.value.as_deref().ok_or(ConfigError::NoModel)?;
        let spec: ModelSpec =
            raw.parse()
                .map_err(|e: crate::model::ModelSpecError| ConfigError::Invalid {
                    source_: self.model.source.clone(),
                    message: e.to_string(),
                })?;
        Ok(self.settings_for(spec))
    }

    /// Settings for `spec` with everything else from this config (sampling,
    /// timeouts, retries, budgets, prices): for a model chosen by selfrepair
    /// itself, such as `fix`'s local fallback.
    pub fn settings_for(&self, spec: ModelSpec) -> ModelSettings {
        let overrides: BTreeMap<String, Price> = self
            .prices
            .iter()
            .map(|(k, v)| (k.clone(), v.value))
            .collect();
        ModelSettings {
            spec,
            base_url: self.base_url.value.clone(),
            api_key_env: self.api_key_env.value.clone(),
            defaults: SamplingParams {
                temperature: self.temperature.value,
                top_p: self.top_p.value,
                max_tokens: self.max_tokens.value,
                stop: Vec::new(),
                seed: self.seed.value,
                n: 1,
            },
            timeout: Duration::from_secs(self.timeout_secs.value),
            retry: RetryPolicy {
                max_retries: self.max_retries.value,
                ..RetryPolicy::default()
            },
            concurrency: self.concurrency.value,
            budgets: Budgets {
                run: Limits {
                    tokens: self.budget_tokens.value,
                    usd: self.budget_usd.value,
                    calls: self.budget_calls.value,
                },
                task: Limits {
                    tokens: self.task_budget_tokens.value,
                    usd: self.task_budget_usd.value,
                    calls: self.task_budget_calls.value,
                },
            },
            prices: PriceTable::builtin().with_overrides(&overrides),
        }
    }
}

/// One line per value, with its source. Keys appear only as the name of
/// their env var and whether it is set.
pub fn render_config_show(cfg: &EffectiveConfig) -> String {
    let mut rows = table_rows(cfg);
    for (m, p) in &cfg.prices {
        rows.push((
            "price",
            format!(
                "{m}: ${}/Mtok in, ${}/Mtok out",
                p.value.input_per_mtok, p.value.output_per_mtok
            ),
            &p.source,
        ));
    }
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let v = rows
        .iter()
        .map(|r| r.1.chars().count())
        .max()
        .unwrap_or(0)
        .min(60);
    let mut out = String::new();
    for (name, value, source) in &rows {
        let _ = writeln!(out, "{name:<w$}  {value:<v$}  ({source})");
    }
    if cfg.files.is_empty() {
        out.push_str("config files: none found\n");
    } else {
        for f in &cfg.files {
            let _ = writeln!(out, "config file: {}", f.display());
        }
    }
    out.push_str(
        "prices: built-in table for OpenAI and Anthropic models; others cost 0 (unpriced)\n",
    );
    out
}

fn opt<T: Display>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "(none)".to_string(), ToString::to_string)
}

fn key_display(cfg: &EffectiveConfig) -> String {
    match &cfg.key {
        KeyStatus::NotNeeded => "not needed".to_string(),
        KeyStatus::Unknown => "(depends on model)".to_string(),
        KeyStatus::Withheld { var } => {
            format!("none ({var} is only sent to the provider's own host; use --api-key-env)")
        }
        KeyStatus::Var { var, set: true } => format!("{var} (set)"),
        KeyStatus::Var { var, set: false } => format!("{var} (unset)"),
    }
}

fn base_url_display(cfg: &EffectiveConfig) -> String {
    if let Some(b) = &cfg.base_url.value {
        return b.clone();
    }
    let preset = cfg
        .model
        .value
        .as_deref()
        .and_then(|m| m.parse::<ModelSpec>().ok())
        .and_then(|s| s.default_base_url());
    match preset {
        Some(u) => format!("{u} (preset)"),
        None => "(none)".to_string(),
    }
}

fn key_status(
    spec: Option<&ModelSpec>,
    base_url: &Option<String>,
    api_key_env: &Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> KeyStatus {
    if let Some(var) = api_key_env {
        return KeyStatus::Var {
            var: var.clone(),
            set: key_from_env(var, env).is_some(),
        };
    }
    let Some(spec) = spec else {
        return KeyStatus::Unknown;
    };
    let (Some(var), Some(default_base)) = (spec.default_key_env(), spec.default_base_url()) else {
        return KeyStatus::NotNeeded;
    };
    let default_host = reqwest::Url::parse(default_base)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    if base_url
        .as_deref()
        .is_some_and(|b| !host_is(b, &default_host))
    {
        return KeyStatus::Withheld {
            var: var.to_string(),
        };
    }
    KeyStatus::Var {
        var: var.to_string(),
        set: key_from_env(var, env).is_some(),
    }
}

struct Layers<'a> {
    files: &'a [(PathBuf, FileConfig)],
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Layers<'_> {
    /// Highest-precedence value among flag, env and files.
    /// Takes references so that one generated call fits every setting type.
    fn get<T: FromStr + Clone>(
        &self,
        from_file: impl Fn(&FileConfig) -> Option<&T>,
        env_var: &str,
        flag: Option<&T>,
        flag_name: &str,
    ) -> Result<Sourced<Option<T>>, ConfigError>
    where
        T::Err: Display,
    {
        if let Some(v) = flag {
            return Ok(Sourced {
                value: Some(v.clone()),
                source: Source::Flag(flag_name.to_string()),
            });
        }
        if let Some(raw) = (self.env)(env_var).filter(|s| !s.trim().is_empty()) {
            let v = raw.trim().parse::<T>().map_err(|e| ConfigError::BadEnv {
                var: env_var.to_string(),
                value: raw.clone(),
                reason: e.to_string(),
            })?;
            return Ok(Sourced {
                value: Some(v),
                source: Source::Env(env_var.to_string()),
            });
        }
        for (path, cfg) in self.files.iter().rev() {
            if let Some(v) = from_file(cfg) {
                return Ok(Sourced {
                    value: Some(v.clone()),
                    source: Source::File(path.clone()),
                });
            }
        }
        Ok(Sourced {
            value: None,
            source: Source::Default,
        })
    }
}

fn with_default<T>(s: Sourced<Option<T>>, default: T) -> Sourced<T> {
    Sourced {
        value: s.value.unwrap_or(default),
        source: s.source,
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let parse_err = |e: toml::de::Error| ConfigError::Parse {
        path: path.to_path_buf(),
        line: e.span().map_or(0, |s| {
            text.get(..s.start)
                .map_or(0, |t| t.matches('\n').count() + 1)
        }),
        message: e.message().to_string(),
    };
    let table: toml::Table = toml::from_str(&text).map_err(parse_err)?;
    for &section in FILE_TABLES {
        if let Some(toml::Value::Table(t)) = table.get(section) {
            for k in t.keys() {
                let lower = k.to_ascii_lowercase();
                if (lower.contains("key") || lower.contains("token") && lower.contains("secret"))
                    && lower != "api_key_env"
                {
                    return Err(ConfigError::SecretInFile {
                        path: path.to_path_buf(),
                        key: format!("{section}.{k}"),
                    });
                }
            }
        }
    }
    toml::from_str(&text).map_err(parse_err)
}

fn validate(cfg: &EffectiveConfig) -> Result<(), ConfigError> {
    let bad = |source: &Source, message: String| ConfigError::Invalid {
        source_: source.clone(),
        message,
    };
    if let Some(t) = cfg.temperature.value
        && !(0.0..=2.0).contains(&t)
    {
        return Err(bad(
            &cfg.temperature.source,
            format!("temperature {t} is outside 0..=2"),
        ));
    }
    if let Some(p) = cfg.top_p.value
        && !(p > 0.0 && p <= 1.0)
    {
        return Err(bad(
            &cfg.top_p.source,
            format!("top_p {p} is outside (0, 1]"),
        ));
    }
    if cfg.concurrency.value == 0 {
        return Err(bad(
            &cfg.concurrency.source,
            "concurrency must be at least 1".into(),
        ));
    }
    if cfg.timeout_secs.value == 0 {
        return Err(bad(
            &cfg.timeout_secs.source,
            "timeout_secs must be at least 1".into(),
        ));
    }
    for b in [&cfg.budget_usd, &cfg.task_budget_usd] {
        if let Some(v) = b.value
            && !(v.is_finite() && v >= 0.0)
        {
            return Err(bad(
                &b.source,
                format!("dollar budget {v} must be a non-negative number"),
            ));
        }
    }
    if let Some(u) = &cfg.base_url.value
        && reqwest::Url::parse(u).is_err()
    {
        return Err(bad(
            &cfg.base_url.source,
            format!("base URL {u:?} is not a URL"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A user config dir and a project dir, each holding a selfrepair.toml.
    fn user_and_project(
        user_text: &str,
        proj_text: &str,
    ) -> (tempfile::TempDir, tempfile::TempDir, PathBuf, PathBuf) {
        let user = tempfile::tempdir().unwrap();
        let proj = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(user.path().join("selfrepair")).unwrap();
        let user_file = user.path().join("selfrepair").join(CONFIG_FILE);
        std::fs::write(&user_file, user_text).unwrap();
        let proj_file = proj.path().join(CONFIG_FILE);
        std::fs::write(&proj_file, proj_text).unwrap();
        (user, proj, user_file, proj_file)
    }

    fn inputs<'a>(
        dir: &'a Path,
        user: Option<PathBuf>,
        env: &'a dyn Fn(&str) -> Option<String>,
        flags: &'a ModelFlags,
    ) -> ConfigInputs<'a> {
        ConfigInputs {
            project_dir: dir,
            user_config_dir: user,
            env,
            flags,
        }
    }

    #[test]
    fn defaults_only() {
        let d = tempfile::tempdir().unwrap();
        let flags = ModelFlags::default();
        let cfg = resolve(&inputs(d.path(), None, &|_| None, &flags)).unwrap();
        assert_eq!(cfg.model.value, None);
        assert_eq!(cfg.concurrency.value, 8);
        assert_eq!(cfg.concurrency.source, Source::Default);
        assert!(matches!(cfg.model_settings(), Err(ConfigError::NoModel)));
    }

    #[test]
    fn layers_and_sources() {
        let (user, proj, user_file, proj_file) = user_and_project(
            "[model]\nmodel = \"openai:gpt-4o\"\ntemperature = 0.5\nseed = 1\n[budget]\nusd = 3.0\n[sandbox]\nanything = 1\n",
            "[model]\ntemperature = 0.1\n[prices.\"my-ft\"]\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n",
        );
        let env = |k: &str| match k {
            "SELFREPAIR_SEED" => Some("42".to_string()),
            "OPENAI_API_KEY" => Some("sk-test-secret".to_string()),
            _ => None,
        };
        let flags = ModelFlags {
            concurrency: Some(3),
            ..ModelFlags::default()
        };
        let cfg = resolve(&inputs(proj.path(), Some(user.path().into()), &env, &flags)).unwrap();
        assert_eq!(cfg.model.value.as_deref(), Some("openai:gpt-4o"));
        assert_eq!(cfg.model.source, Source::File(user_file.clone()));
        assert_eq!(cfg.temperature.value, Some(0.1));
        assert_eq!(cfg.temperature.source, Source::File(proj_file.clone()));
        assert_eq!(cfg.seed.value, Some(42));
        assert_eq!(cfg.seed.source, Source::Env("SELFREPAIR_SEED".into()));
        assert_eq!(cfg.concurrency.source, Source::Flag("--concurrency".into()));
        assert_eq!(cfg.budget_usd.value, Some(3.0));
        assert_eq!(
            cfg.key,
            KeyStatus::Var {
                var: "OPENAI_API_KEY".into(),
                set: true
            }
        );

        let shown = render_config_show(&cfg);
        assert!(shown.contains("OPENAI_API_KEY (set)"), "{shown}");
        assert!(!shown.contains("sk-test-secret"), "{shown}");
        assert!(
            shown.contains(&format!("file {}", proj_file.display())),
            "{shown}"
        );
        assert!(shown.contains("env SELFREPAIR_SEED"), "{shown}");
        assert!(shown.contains("flag --concurrency"), "{shown}");
        assert!(shown.contains("my-ft"), "{shown}");

        let s = cfg.model_settings().unwrap();
        assert_eq!(s.concurrency, 3);
        assert_eq!(s.defaults.temperature, Some(0.1));
        assert_eq!(s.budgets.run.usd, Some(3.0));
        assert!(s.prices.lookup("my-ft").is_some());
    }

    #[test]
    fn key_in_file_is_refused_without_echoing_it() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join(CONFIG_FILE),
            "[model]\napi_key = \"sk-live-abc\"\n",
        )
        .unwrap();
        let flags = ModelFlags::default();
        let e = resolve(&inputs(d.path(), None, &|_| None, &flags)).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, ConfigError::SecretInFile { .. }), "{msg}");
        assert!(!msg.contains("sk-live-abc"), "{msg}");
    }

    #[test]
    fn parse_errors_do_not_quote_the_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(CONFIG_FILE), "[model]\nmodle = \"sk-oops\"\n").unwrap();
        let flags = ModelFlags::default();
        let msg = resolve(&inputs(d.path(), None, &|_| None, &flags))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("unknown field") && msg.contains(":2:"),
            "{msg}"
        );
        assert!(!msg.contains("sk-oops"), "{msg}");
    }

    #[test]
    fn bad_values_name_their_source() {
        let d = tempfile::tempdir().unwrap();
        let flags = ModelFlags::default();
        let env = |k: &str| (k == "SELFREPAIR_MAX_TOKENS").then(|| "lots".to_string());
        let msg = resolve(&inputs(d.path(), None, &env, &flags))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("SELFREPAIR_MAX_TOKENS"), "{msg}");
        let flags = ModelFlags {
            model: Some("gpt-4o".into()),
            ..ModelFlags::default()
        };
        let msg = resolve(&inputs(d.path(), None, &|_| None, &flags))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("flag --model") && msg.contains("PROVIDER:MODEL"),
            "{msg}"
        );
    }

    #[test]
    fn default_key_withheld_from_custom_host() {
        let d = tempfile::tempdir().unwrap();
        let flags = ModelFlags {
            model: Some("openai:qwen".into()),
            base_url: Some("http://gpu-box:8000/v1".into()),
            ..ModelFlags::default()
        };
        let env = |k: &str| (k == "OPENAI_API_KEY").then(|| "x".to_string());
        let cfg = resolve(&inputs(d.path(), None, &env, &flags)).unwrap();
        assert_eq!(
            cfg.key,
            KeyStatus::Withheld {
                var: "OPENAI_API_KEY".into()
            }
        );
    }

    #[test]
    fn every_setting_has_its_own_env_var_and_flag() {
        type Column = fn(&SettingRow) -> &'static str;
        let columns: [(&str, Column); 5] = [
            ("field", |s| s.field),
            ("file key", |s| s.file_key),
            ("env var", |s| s.env),
            ("flag", |s| s.flag),
            ("config show name", |s| s.show),
        ];
        for (what, column) in columns {
            let mut seen = std::collections::BTreeSet::new();
            for s in SETTINGS {
                assert!(
                    seen.insert(column(s)),
                    "{what} {} is listed twice",
                    column(s)
                );
            }
        }
        for s in SETTINGS {
            assert_eq!(
                s.env,
                format!("SELFREPAIR_{}", s.field.to_ascii_uppercase()),
                "env var of {}",
                s.field
            );
            // The command line's flag for a `ModelFlags` field is the
            // field's name in kebab case (`fix_e2e::every_setting_is_a_flag_and_no_key_is`
            // checks that the binary offers each).
            assert_eq!(s.flag, format!("--{}", s.field.replace('_', "-")));
        }
    }

    #[test]
    fn config_show_pins_every_row() {
        let (user, proj, user_file, proj_file) = user_and_project(
            "[model]\nmodel = \"openai:gpt-4o\"\nseed = 1\nmax_retries = 2\n[budget]\nusd = 3.0\ntask_calls = 4\n[prices.\"user-ft\"]\ninput_per_mtok = 0.5\noutput_per_mtok = 1.5\n",
            "[model]\ntemperature = 0.2\nseed = 5\n[prices.\"my-ft\"]\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n[sandbox]\nanything = 1\n",
        );
        let env = |k: &str| {
            let v = match k {
                "SELFREPAIR_TOP_P" => "0.9",
                "SELFREPAIR_CONCURRENCY" => "4",
                "SELFREPAIR_TASK_BUDGET_USD" => "0.5",
                "OPENAI_API_KEY" => "sk-test-secret",
                _ => return None,
            };
            Some(v.to_string())
        };
        let flags = ModelFlags {
            max_tokens: Some(512),
            budget_calls: Some(20),
            task_budget_tokens: Some(300),
            ..ModelFlags::default()
        };
        let cfg = resolve(&inputs(proj.path(), Some(user.path().into()), &env, &flags)).unwrap();
        let shown = render_config_show(&cfg)
            .replace(&user_file.display().to_string(), "<user file>")
            .replace(&proj_file.display().to_string(), "<project file>");
        // As printed by `config show` before the settings table existed.
        let expected = "\
model               openai:gpt-4o                         (file <user file>)
base_url            https://api.openai.com/v1 (preset)    (default)
api_key             OPENAI_API_KEY (set)                  (default)
temperature         0.2                                   (file <project file>)
top_p               0.9                                   (env SELFREPAIR_TOP_P)
max_tokens          512                                   (flag --max-tokens)
seed                5                                     (file <project file>)
concurrency         4                                     (env SELFREPAIR_CONCURRENCY)
timeout_secs        120                                   (default)
max_retries         2                                     (file <user file>)
budget.tokens       (none)                                (default)
budget.usd          3                                     (file <user file>)
budget.calls        20                                    (flag --budget-calls)
budget.task_tokens  300                                   (flag --task-budget-tokens)
budget.task_usd     0.5                                   (env SELFREPAIR_TASK_BUDGET_USD)
budget.task_calls   4                                     (file <user file>)
price               my-ft: $1/Mtok in, $2/Mtok out        (file <project file>)
price               user-ft: $0.5/Mtok in, $1.5/Mtok out  (file <user file>)
config file: <user file>
config file: <project file>
prices: built-in table for OpenAI and Anthropic models; others cost 0 (unpriced)
";
        assert_eq!(shown, expected, "\n{shown}");
    }
}
