//! Prompt templates: the versioned files under `prompts/`, embedded at build
//! time and overridable with `--prompts DIR`, rendered into chat messages.

use crate::model::Message;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The stages of a repair tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Generate,
    Explain,
    Repair,
    Joint,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Generate, Stage::Explain, Stage::Repair, Stage::Joint];
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Generate => "generate",
            Stage::Explain => "explain",
            Stage::Repair => "repair",
            Stage::Joint => "joint",
        }
    }
}

/// Chat (system + user, fenced answer) or completion style (one message the
/// model continues, CYCLE-like).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Style {
    #[default]
    Chat,
    Completion,
}

impl Style {
    pub fn as_str(self) -> &'static str {
        match self {
            Style::Chat => "chat",
            Style::Completion => "completion",
        }
    }
}

const VARIABLES: &[&str] = &[
    "spec",
    "answer_format",
    "code",
    "code_commented",
    "feedback",
    "feedback_commented",
    "explanation",
];

const EMBEDDED: &[(&str, &str)] = &[
    (
        "generate.chat.txt",
        include_str!("../../prompts/generate.chat.txt"),
    ),
    (
        "explain.chat.txt",
        include_str!("../../prompts/explain.chat.txt"),
    ),
    (
        "repair.chat.txt",
        include_str!("../../prompts/repair.chat.txt"),
    ),
    (
        "joint.chat.txt",
        include_str!("../../prompts/joint.chat.txt"),
    ),
    (
        "generate.completion.txt",
        include_str!("../../prompts/generate.completion.txt"),
    ),
    (
        "explain.completion.txt",
        include_str!("../../prompts/explain.completion.txt"),
    ),
    (
        "repair.completion.txt",
        include_str!("../../prompts/repair.completion.txt"),
    ),
    (
        "joint.completion.txt",
        include_str!("../../prompts/joint.completion.txt"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("prompt template {file}: {reason}")]
    Invalid { file: String, reason: String },
    #[error("cannot read prompt template {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A template's identity as recorded in a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateRef {
    pub name: String,
    pub version: u32,
    /// sha256 of the file's bytes.
    pub sha256: String,
}

#[derive(Clone, Debug)]
pub struct Template {
    pub reference: TemplateRef,
    system: Option<String>,
    user: String,
}

/// Values for one rendering.
#[derive(Clone, Debug, Default)]
pub struct Vars<'a> {
    pub spec: &'a str,
    pub answer_format: &'a str,
    pub code: &'a str,
    pub feedback: &'a str,
    pub explanation: &'a str,
}

impl Template {
    pub fn parse(name: &str, text: &str) -> Result<Template, PromptError> {
        let bad = |reason: String| PromptError::Invalid {
            file: name.to_string(),
            reason,
        };
        let mut lines = text.lines();
        let version = lines
            .next()
            .and_then(|l| l.strip_prefix("version:"))
            .and_then(|v| v.trim().parse::<u32>().ok())
            .ok_or_else(|| bad("the first line must be `version: N`".into()))?;
        let mut sections: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut current: Option<&str> = None;
        for line in lines {
            match line.trim() {
                "--- system ---" => current = Some("system"),
                "--- user ---" => current = Some("user"),
                _ => match current {
                    Some(s) => sections.entry(s).or_default().push(line),
                    None if line.trim().is_empty() => {}
                    None => return Err(bad("text before the first `--- user ---` section".into())),
                },
            }
        }
        let join = |v: &Vec<&str>| v.join("\n").trim_end().to_string();
        let user = sections
            .get("user")
            .map(join)
            .ok_or_else(|| bad("no `--- user ---` section".into()))?;
        let system = sections.get("system").map(join);
        for part in std::iter::once(&user).chain(system.as_ref()) {
            let mut rest = part.as_str();
            while let Some(at) = rest.find("{{") {
                let after = &rest[at + 2..];
                let end = after
                    .find("}}")
                    .ok_or_else(|| bad("an unclosed `{{`".into()))?;
                let var = after[..end].trim();
                if !VARIABLES.contains(&var) {
                    return Err(bad(format!(
                        "unknown variable {{{{{var}}}}} (known: {})",
                        VARIABLES.join(", ")
                    )));
                }
                rest = &after[end + 2..];
            }
        }
        Ok(Template {
            reference: TemplateRef {
                name: name.to_string(),
                version,
                sha256: hex::encode(Sha256::digest(text.as_bytes())),
            },
            system,
            user,
        })
    }

    /// The chat messages for `vars`.
    pub fn render(&self, vars: &Vars) -> Vec<Message> {
        let fill = |t: &str| {
            let mut out = String::with_capacity(t.len() + vars.spec.len() + vars.code.len());
            let mut rest = t;
            while let Some(at) = rest.find("{{") {
                out.push_str(&rest[..at]);
                let after = &rest[at + 2..];
                let Some(end) = after.find("}}") else {
                    out.push_str(&rest[at..]);
                    rest = "";
                    break;
                };
                out.push_str(&value(after[..end].trim(), vars));
                rest = &after[end + 2..];
            }
            out.push_str(rest);
            out
        };
        let mut msgs = Vec::with_capacity(2);
        if let Some(s) = &self.system {
            msgs.push(Message::system(fill(s)));
        }
        msgs.push(Message::user(fill(&self.user)));
        msgs
    }
}

fn value(name: &str, v: &Vars) -> String {
    match name {
        "spec" => v.spec.trim_end().to_string(),
        "answer_format" => v.answer_format.to_string(),
        "code" => v.code.trim_end().to_string(),
        "code_commented" => comment(v.code),
        "feedback" => v.feedback.to_string(),
        "feedback_commented" => comment(v.feedback),
        "explanation" => v.explanation.trim().to_string(),
        _ => String::new(),
    }
}

fn comment(text: &str) -> String {
    text.trim_end()
        .lines()
        .map(|l| format!("# {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The four templates of one style.
#[derive(Clone, Debug)]
pub struct PromptSet {
    pub style: Style,
    templates: BTreeMap<Stage, Template>,
}

impl PromptSet {
    /// The embedded templates, or the same file names from `dir`.
    pub fn load(dir: Option<&Path>, style: Style) -> Result<PromptSet, PromptError> {
        let mut templates = BTreeMap::new();
        for stage in Stage::ALL {
            let file = format!("{}.{}.txt", stage.as_str(), style.as_str());
            let text = match dir {
                Some(d) => {
                    let p = d.join(&file);
                    std::fs::read_to_string(&p)
                        .map_err(|e| PromptError::Io { path: p, source: e })?
                }
                None => EMBEDDED
                    .iter()
                    .find(|(n, _)| *n == file)
                    .map(|(_, t)| t.to_string())
                    .ok_or_else(|| PromptError::Invalid {
                        file: file.clone(),
                        reason: "not embedded".into(),
                    })?,
            };
            templates.insert(stage, Template::parse(&file, &text)?);
        }
        Ok(PromptSet { style, templates })
    }

    pub fn get(&self, stage: Stage) -> &Template {
        // `load` inserts every stage.
        &self.templates[&stage]
    }

    pub fn references(&self) -> Vec<TemplateRef> {
        self.templates
            .values()
            .map(|t| t.reference.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_templates_parse_in_both_styles() {
        for style in [Style::Chat, Style::Completion] {
            let set = PromptSet::load(None, style).expect("embedded templates are valid");
            assert_eq!(set.references().len(), 4);
        }
    }

    #[test]
    fn render_fills_every_variable() {
        let t = Template::parse(
            "t",
            "version: 3\n--- system ---\nbe brief\n--- user ---\n{{spec}}\n{{code_commented}}\n{{ feedback }}",
        )
        .expect("valid");
        assert_eq!(t.reference.version, 3);
        let m = t.render(&Vars {
            spec: "Q",
            code: "a = 1\nb = 2\n",
            feedback: "boom",
            ..Vars::default()
        });
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].content, "be brief");
        assert_eq!(m[1].content, "Q\n# a = 1\n# b = 2\nboom");
    }

    #[test]
    fn bad_templates_are_named_errors() {
        let e = Template::parse("x.txt", "--- user ---\nhi").unwrap_err();
        assert!(e.to_string().contains("x.txt") && e.to_string().contains("version"));
        let e = Template::parse("y.txt", "version: 1\n--- user ---\n{{nope}}").unwrap_err();
        assert!(e.to_string().contains("unknown variable {{nope}}"), "{e}");
        let e = Template::parse("z.txt", "version: 1\n--- system ---\nhi").unwrap_err();
        assert!(e.to_string().contains("no `--- user ---`"), "{e}");
    }
}
