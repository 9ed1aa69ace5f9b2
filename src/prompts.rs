//! Prompt templates, one format for both repair loops (`bench`'s trees in
//! `engine::prompts`, `fix`'s session in `fix::prompts`):
//! - the first line is `version: N`;
//! - then `--- system ---` and `--- user ---` sections (`user` required);
//! - `{{name}}` is filled in; a name the loop does not fill is an error
//!   when the template is loaded, not a placeholder left in a prompt.
//!
//! Each loop embeds its files from `prompts/` and loads the same names
//! from a directory instead with `--prompts DIR`. A template's name,
//! version and sha256 go on the record (a run's config, a session's plan).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::Message;

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("prompt template {file}: {reason}")]
    Invalid { file: String, reason: String },
    #[error("cannot read prompt template {}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
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

impl Template {
    /// Parse `text` (named `name` in errors), accepting only the variables
    /// in `known`.
    pub fn parse(name: &str, text: &str, known: &[&str]) -> Result<Template, PromptError> {
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
                if !known.contains(&var) {
                    return Err(bad(format!(
                        "unknown variable {{{{{var}}}}} (known: {})",
                        known.join(", ")
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

    /// The embedded file `name` of `embedded`, or the file of that name
    /// under `dir`.
    pub fn load(
        dir: Option<&Path>,
        name: &str,
        embedded: &[(&str, &str)],
        known: &[&str],
    ) -> Result<Template, PromptError> {
        let text = match dir {
            Some(d) => {
                let p = d.join(name);
                std::fs::read_to_string(&p).map_err(|cause| PromptError::Io { path: p, cause })?
            }
            None => embedded
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| t.to_string())
                .ok_or_else(|| PromptError::Invalid {
                    file: name.to_string(),
                    reason: "not embedded".into(),
                })?,
        };
        Template::parse(name, &text, known)
    }

    /// The chat messages (system, if any, then user) with `vars` filled in.
    pub fn render(&self, vars: &[(&str, &str)]) -> Vec<Message> {
        self.render_with(&|name| lookup(vars, name).to_string())
    }

    /// [`Template::render`] with each variable's value made by `value`, only
    /// for the variables the template uses.
    pub fn render_with(&self, value: &dyn Fn(&str) -> String) -> Vec<Message> {
        let mut msgs = Vec::with_capacity(2);
        if let Some(s) = &self.system {
            msgs.push(Message::system(fill(s, value)));
        }
        msgs.push(Message::user(fill(&self.user, value)));
        msgs
    }

    /// The user section alone, filled (a later turn of a conversation).
    pub fn render_user(&self, vars: &[(&str, &str)]) -> String {
        fill(&self.user, &|name| lookup(vars, name).to_string())
    }
}

/// A variable the caller did not pass is empty.
fn lookup<'a>(vars: &[(&str, &'a str)], name: &str) -> &'a str {
    vars.iter().find(|v| v.0 == name).map_or("", |v| v.1)
}

/// `{{name}}` replaced by its value. Loading checked every name against
/// the loop's variables.
fn fill(t: &str, value: &dyn Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(t.len());
    let mut rest = t;
    while let Some(at) = rest.find("{{") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[at..]);
            rest = "";
            break;
        };
        out.push_str(&value(after[..end].trim()));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_fills_every_variable() {
        let t = Template::parse(
            "t",
            "version: 3\n--- system ---\nbe brief\n--- user ---\n{{spec}}\n{{ feedback }}",
            &["spec", "feedback"],
        )
        .expect("valid");
        assert_eq!(t.reference.version, 3);
        let m = t.render(&[("spec", "Q"), ("feedback", "boom")]);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].content, "be brief");
        assert_eq!(m[1].content, "Q\nboom");
        assert_eq!(t.render_user(&[("spec", "S")]), "S\n");
    }

    #[test]
    fn bad_templates_are_named_errors() {
        let known = &["spec"];
        let e = Template::parse("x.txt", "--- user ---\nhi", known).unwrap_err();
        assert!(e.to_string().contains("x.txt") && e.to_string().contains("version"));
        let e = Template::parse("y.txt", "version: 1\n--- user ---\n{{nope}}", known).unwrap_err();
        assert!(e.to_string().contains("unknown variable {{nope}}"), "{e}");
        let e = Template::parse("z.txt", "version: 1\n--- system ---\nhi", known).unwrap_err();
        assert!(e.to_string().contains("no `--- user ---`"), "{e}");
        let e = Template::load(Some(Path::new("/nonexistent")), "a.txt", &[], known).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/a.txt"), "{e}");
    }
}
