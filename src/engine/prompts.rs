//! The repair trees' prompts: the versioned files under `prompts/`, in the
//! shared template format ([`crate::prompts`]), embedded at build time and
//! overridable with `--prompts DIR`, one set per style.

use crate::model::Message;
pub use crate::prompts::{PromptError, Template, TemplateRef};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Style {
    #[default]
    Chat,
    Completion,
}

impl Style {
    pub fn as_str(self) -> &'static str {
        crate::choice::Choice::name(self)
    }
}

impl crate::choice::Choice for Style {
    const ALL: &'static [(Self, &'static str, &'static str)] = &[
        (
            Style::Chat,
            "chat",
            "system + user messages, a fenced answer",
        ),
        (
            Style::Completion,
            "completion",
            "one message the model continues (CYCLE-like)",
        ),
    ];
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

/// Values for one rendering.
#[derive(Clone, Debug, Default)]
pub struct Vars<'a> {
    pub spec: &'a str,
    pub answer_format: &'a str,
    pub code: &'a str,
    pub feedback: &'a str,
    pub explanation: &'a str,
}

/// The chat messages of `t` for `vars` (derived variables, such as
/// `code_commented`, made only when the template uses them).
pub fn render(t: &Template, vars: &Vars) -> Vec<Message> {
    t.render_with(&|name| value(name, vars))
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
            templates.insert(stage, Template::load(dir, &file, EMBEDDED, VARIABLES)?);
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
    fn derived_variables_are_commented() {
        let t = Template::parse(
            "t",
            "version: 1\n--- user ---\n{{spec}}\n{{code_commented}}\n{{feedback_commented}}",
            VARIABLES,
        )
        .expect("valid");
        let m = render(
            &t,
            &Vars {
                spec: "Q\n",
                code: "a = 1\nb = 2\n",
                feedback: "boom",
                ..Vars::default()
            },
        );
        assert_eq!(m[0].content, "Q\n# a = 1\n# b = 2\n# boom");
    }
}
