//! `--model PROVIDER:MODEL` parsing and the OpenAI-compatible presets.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// OpenAI-compatible servers we know defaults for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    OpenAi,
    Vllm,
    Ollama,
    LlamaCpp,
    LmStudio,
    OpenRouter,
}

pub struct PresetInfo {
    /// Prefix used in `--model`.
    pub name: &'static str,
    pub base_url: &'static str,
    /// Env var read for the key when no `--api-key-env` is given (only sent
    /// to this preset's own default host).
    pub key_env: Option<&'static str>,
    /// Whether the server honours `n > 1`; otherwise we send `n` requests.
    pub supports_n: bool,
    pub notes: &'static str,
}

impl Preset {
    pub const ALL: [Preset; 6] = [
        Preset::OpenAi,
        Preset::Vllm,
        Preset::Ollama,
        Preset::LlamaCpp,
        Preset::LmStudio,
        Preset::OpenRouter,
    ];

    pub fn info(self) -> PresetInfo {
        match self {
            Preset::OpenAi => PresetInfo {
                name: "openai",
                base_url: "https://api.openai.com/v1",
                key_env: Some("OPENAI_API_KEY"),
                supports_n: true,
                notes: "Also the generic OpenAI-compatible provider: add --base-url for any other server.",
            },
            Preset::Vllm => PresetInfo {
                name: "vllm",
                base_url: "http://localhost:8000/v1",
                key_env: None,
                supports_n: true,
                notes: "`vllm serve MODEL --max-model-len 32768`; if started with --api-key, pass --api-key-env NAME.",
            },
            Preset::Ollama => PresetInfo {
                name: "ollama",
                base_url: "http://localhost:11434/v1",
                key_env: None,
                supports_n: false,
                notes: "Ollama's default context (2k-4k tokens) silently truncates prompts and its OpenAI endpoint ignores options.num_ctx: start the server with OLLAMA_CONTEXT_LENGTH=32768 ollama serve, or build a model with `PARAMETER num_ctx 32768` in a Modelfile (ollama create).",
            },
            Preset::LlamaCpp => PresetInfo {
                name: "llamacpp",
                base_url: "http://localhost:8080/v1",
                key_env: None,
                supports_n: false,
                notes: "`llama-server -m model.gguf -c 32768` (context is per slot: divide by --parallel); --api-key needs --api-key-env NAME.",
            },
            Preset::LmStudio => PresetInfo {
                name: "lmstudio",
                base_url: "http://localhost:1234/v1",
                key_env: None,
                supports_n: false,
                notes: "Start the local server in LM Studio (or `lms server start`); set the context length when loading the model.",
            },
            Preset::OpenRouter => PresetInfo {
                name: "openrouter",
                base_url: "https://openrouter.ai/api/v1",
                key_env: Some("OPENROUTER_API_KEY"),
                supports_n: false,
                notes: "Model ids are vendor/model (e.g. openai/gpt-4o-mini, anthropic/claude-sonnet-4).",
            },
        }
    }

    fn from_name(name: &str) -> Option<Preset> {
        match name {
            "llama.cpp" | "llama-cpp" => Some(Preset::LlamaCpp),
            _ => Preset::ALL.into_iter().find(|p| p.info().name == name),
        }
    }
}

pub(crate) const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";
pub(crate) const ANTHROPIC_KEY_ENV: &str = "ANTHROPIC_API_KEY";

/// Which model answers, parsed from `--model`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSpec {
    /// Any OpenAI-compatible chat completions server.
    OpenAiCompat {
        preset: Preset,
        model: String,
    },
    Anthropic {
        model: String,
    },
    /// Answer from a recorded transcript (a run dir or a `.jsonl` file).
    Replay {
        path: PathBuf,
    },
    /// The model-free repairer (implemented elsewhere).
    Mutate,
    /// A GGUF model run in this process (`local:NAME` or `local:PATH.gguf`).
    Local(super::local::LocalModel),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid --model {input:?}: {reason}")]
pub struct ModelSpecError {
    pub input: String,
    pub reason: String,
}

fn known_providers() -> String {
    let mut names: Vec<&str> = Preset::ALL.iter().map(|p| p.info().name).collect();
    names.extend(["anthropic", "local", "replay", "mutate"]);
    names.join(", ")
}

impl FromStr for ModelSpec {
    type Err = ModelSpecError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| ModelSpecError {
            input: input.to_string(),
            reason,
        };
        let s = input.trim();
        if s == "mutate" {
            return Ok(ModelSpec::Mutate);
        }
        if s == "local" {
            return super::local::LocalModel::parse("")
                .map(ModelSpec::Local)
                .map_err(err);
        }
        let Some((provider, rest)) = s.split_once(':') else {
            return Err(err(format!(
                "expected PROVIDER:MODEL (e.g. openai:gpt-4o-mini), replay:PATH or mutate; providers: {}",
                known_providers()
            )));
        };
        let provider = provider.trim().to_ascii_lowercase();
        let rest = rest.trim();
        match provider.as_str() {
            "mutate" => Err(err("`mutate` takes no model name".into())),
            "replay" if rest.is_empty() => {
                Err(err("replay needs a transcript path: replay:PATH".into()))
            }
            "replay" => Ok(ModelSpec::Replay {
                path: PathBuf::from(rest),
            }),
            _ if rest.is_empty() => Err(err(format!("missing model name after `{provider}:`"))),
            "local" => super::local::LocalModel::parse(rest)
                .map(ModelSpec::Local)
                .map_err(err),
            "anthropic" => Ok(ModelSpec::Anthropic {
                model: rest.to_string(),
            }),
            other => match Preset::from_name(other) {
                Some(preset) => Ok(ModelSpec::OpenAiCompat {
                    preset,
                    model: rest.to_string(),
                }),
                None => Err(err(format!(
                    "unknown provider `{other}`; known: {}",
                    known_providers()
                ))),
            },
        }
    }
}

impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSpec::OpenAiCompat { preset, model } => {
                write!(f, "{}:{model}", preset.info().name)
            }
            ModelSpec::Anthropic { model } => write!(f, "anthropic:{model}"),
            ModelSpec::Replay { path } => write!(f, "replay:{}", path.display()),
            ModelSpec::Mutate => f.write_str("mutate"),
            ModelSpec::Local(m) => write!(f, "local:{}", m.name()),
        }
    }
}

impl ModelSpec {
    /// Provider name as recorded in transcripts and completions.
    pub fn provider(&self) -> &'static str {
        match self {
            ModelSpec::OpenAiCompat { preset, .. } => preset.info().name,
            ModelSpec::Anthropic { .. } => "anthropic",
            ModelSpec::Replay { .. } => "replay",
            ModelSpec::Mutate => "mutate",
            ModelSpec::Local(_) => "local",
        }
    }

    /// Env var holding the key when none is named explicitly.
    pub fn default_key_env(&self) -> Option<&'static str> {
        match self {
            ModelSpec::OpenAiCompat { preset, .. } => preset.info().key_env,
            ModelSpec::Anthropic { .. } => Some(ANTHROPIC_KEY_ENV),
            _ => None,
        }
    }

    pub fn default_base_url(&self) -> Option<&'static str> {
        match self {
            ModelSpec::OpenAiCompat { preset, .. } => Some(preset.info().base_url),
            ModelSpec::Anthropic { .. } => Some(ANTHROPIC_BASE_URL),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<ModelSpec, ModelSpecError> {
        s.parse()
    }

    #[test]
    fn parses_providers() {
        assert_eq!(
            p("openai:gpt-4o-mini").unwrap(),
            ModelSpec::OpenAiCompat {
                preset: Preset::OpenAi,
                model: "gpt-4o-mini".into()
            }
        );
        assert_eq!(
            p("openai:Qwen/Qwen2.5-Coder-32B-Instruct").unwrap(),
            ModelSpec::OpenAiCompat {
                preset: Preset::OpenAi,
                model: "Qwen/Qwen2.5-Coder-32B-Instruct".into()
            }
        );
        // Only the first colon separates: Ollama tags keep theirs.
        assert_eq!(
            p("ollama:qwen2.5-coder:7b").unwrap(),
            ModelSpec::OpenAiCompat {
                preset: Preset::Ollama,
                model: "qwen2.5-coder:7b".into()
            }
        );
        assert_eq!(
            p("anthropic:claude-sonnet-4-20250514").unwrap(),
            ModelSpec::Anthropic {
                model: "claude-sonnet-4-20250514".into()
            }
        );
        assert_eq!(
            p("replay:runs/1/transcript.jsonl").unwrap(),
            ModelSpec::Replay {
                path: "runs/1/transcript.jsonl".into()
            }
        );
        assert_eq!(p("mutate").unwrap(), ModelSpec::Mutate);
        assert_eq!(p("llama.cpp:m").unwrap().provider(), "llamacpp");
        assert_eq!(p("local").unwrap().to_string(), "local:qwen2.5-coder-1.5b");
        assert_eq!(
            p("local:/models/blob.gguf").unwrap(),
            ModelSpec::Local(super::super::local::LocalModel::File(
                "/models/blob.gguf".into()
            ))
        );
        let e = p("local:gpt-9").unwrap_err().to_string();
        assert!(
            e.contains("qwen2.5-coder-0.5b") && e.contains(".gguf"),
            "{e}"
        );
    }

    #[test]
    fn round_trips_through_display() {
        for s in [
            "openai:gpt-4o",
            "anthropic:claude-3-5-haiku-latest",
            "replay:x.jsonl",
            "mutate",
            "openrouter:openai/gpt-4o",
            "local:smollm2-135m",
        ] {
            assert_eq!(p(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn clear_errors() {
        let e = p("gpt-4o").unwrap_err().to_string();
        assert!(e.contains("expected PROVIDER:MODEL"), "{e}");
        let e = p("foo:bar").unwrap_err().to_string();
        assert!(
            e.contains("unknown provider `foo`") && e.contains("anthropic"),
            "{e}"
        );
        assert!(
            p("openai:")
                .unwrap_err()
                .to_string()
                .contains("missing model name")
        );
        assert!(
            p("replay:")
                .unwrap_err()
                .to_string()
                .contains("transcript path")
        );
        assert!(p("mutate:x").is_err());
        assert!(p("").is_err());
    }
}
