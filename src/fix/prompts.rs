//! The fix prompts (files under `prompts/fix/`), filled in with `{{name}}`.

use sha2::Digest;

pub struct Template {
    pub name: &'static str,
    pub text: &'static str,
}

pub const SYSTEM: Template = Template {
    name: "fix/system",
    text: include_str!("../../prompts/fix/system.md"),
};
pub const EXPLAIN: Template = Template {
    name: "fix/explain",
    text: include_str!("../../prompts/fix/explain.md"),
};
pub const PATCH: Template = Template {
    name: "fix/patch",
    text: include_str!("../../prompts/fix/patch.md"),
};
pub const PATCH_FUNCTION: Template = Template {
    name: "fix/patch-function",
    text: include_str!("../../prompts/fix/patch-function.md"),
};

impl Template {
    /// First 12 hex digits of the template's SHA-256, recorded in the session log.
    pub fn hash(&self) -> String {
        hex::encode(sha2::Sha256::digest(self.text.as_bytes()))[..12].to_string()
    }

    /// The template without its version comment, placeholders filled.
    pub fn render(&self, vars: &[(&str, &str)]) -> String {
        let body = self.text.split_once("-->\n").map_or(self.text, |(_, b)| b);
        let mut out = body.to_string();
        for (k, v) in vars {
            out = out.replace(&format!("{{{{{k}}}}}"), v);
        }
        out
    }
}

pub const ALL: [&Template; 4] = [&SYSTEM, &EXPLAIN, &PATCH, &PATCH_FUNCTION];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_have_versions_and_fill() {
        for t in ALL {
            assert!(t.text.starts_with("<!-- selfrepair prompt: "), "{}", t.name);
            assert!(t.text.contains("version "), "{}", t.name);
            assert_eq!(t.hash().len(), 12);
        }
        let s = EXPLAIN.render(&[
            ("command", "pytest"),
            ("failures", "F"),
            ("context", "C"),
            ("repo_map", "M"),
        ]);
        assert!(s.contains("Test command: pytest") && !s.contains("{{") && !s.contains("version"));
    }
}
