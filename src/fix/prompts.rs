//! The fix session's prompts: `prompts/fix/*.txt` in the shared template
//! format ([`crate::prompts`]), or the same names under `--prompts DIR`
//! (`DIR/fix/explain.txt`, …). The explanation is asked first (system +
//! user); the patch request is a later user turn of the same conversation.

use std::path::Path;

use crate::prompts::{PromptError, Template, TemplateRef};

/// What the fix loop fills in.
pub(crate) const VARIABLES: &[&str] = &[
    "command",
    "failures",
    "context",
    "repo_map",
    "test_files_rule",
    "feedback",
];

const EMBEDDED: &[(&str, &str)] = &[
    (
        "fix/explain.txt",
        include_str!("../../prompts/fix/explain.txt"),
    ),
    ("fix/patch.txt", include_str!("../../prompts/fix/patch.txt")),
    (
        "fix/patch-function.txt",
        include_str!("../../prompts/fix/patch-function.txt"),
    ),
];

#[derive(Clone, Debug)]
pub(crate) struct FixPrompts {
    pub explain: Template,
    /// The patch request for SEARCH/REPLACE blocks.
    pub patch: Template,
    /// The patch request for whole functions.
    pub patch_function: Template,
}

impl FixPrompts {
    /// The embedded templates, or the same names under `dir`.
    pub fn load(dir: Option<&Path>) -> Result<FixPrompts, PromptError> {
        let get = |name: &str| Template::load(dir, name, EMBEDDED, VARIABLES);
        Ok(FixPrompts {
            explain: get("fix/explain.txt")?,
            patch: get("fix/patch.txt")?,
            patch_function: get("fix/patch-function.txt")?,
        })
    }

    pub fn references(&self) -> Vec<&TemplateRef> {
        [&self.explain, &self.patch, &self.patch_function]
            .into_iter()
            .map(|t| &t.reference)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_templates_load_and_fill() {
        let p = FixPrompts::load(None).expect("embedded templates are valid");
        assert_eq!(p.references().len(), 3);
        let m = p.explain.render(&[
            ("command", "pytest"),
            ("failures", "F"),
            ("context", "C"),
            ("repo_map", "M"),
        ]);
        assert_eq!(m.len(), 2, "system, then user");
        assert!(m[0].content.contains("careful software engineer"));
        assert!(m[1].content.contains("Test command: pytest") && !m[1].content.contains("{{"));
    }

    #[test]
    fn a_directory_overrides_and_is_validated() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("fix")).unwrap();
        for (name, text) in EMBEDDED {
            std::fs::write(d.path().join(name), text).unwrap();
        }
        std::fs::write(
            d.path().join("fix/patch.txt"),
            "version: 7\n--- user ---\nFix it. {{feedback}}",
        )
        .unwrap();
        let p = FixPrompts::load(Some(d.path())).unwrap();
        assert_eq!(p.patch.reference.version, 7);
        std::fs::write(
            d.path().join("fix/patch.txt"),
            "version: 8\n--- user ---\n{{spec}}",
        )
        .unwrap();
        let e = FixPrompts::load(Some(d.path())).unwrap_err();
        assert!(e.to_string().contains("fix/patch.txt"), "{e}");
        assert!(e.to_string().contains("unknown variable {{spec}}"), "{e}");
    }
}
