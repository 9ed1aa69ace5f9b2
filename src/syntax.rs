//! The one tree-sitter language registry: the grammars selfrepair parses,
//! found by file extension, and a parser for each. `fix` reads repositories
//! in any of them; `engine` reads model replies as Python.

use std::path::Path;

use tree_sitter::{Language, Parser, Tree};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lang {
    Python,
    Rust,
    JavaScript,
    TypeScript,
    Tsx,
    Go,
}

impl Lang {
    /// The language of a file, by its extension.
    pub fn for_path(path: &str) -> Option<Lang> {
        Some(match Path::new(path).extension()?.to_str()? {
            "py" => Lang::Python,
            "rs" => Lang::Rust,
            "js" | "mjs" | "cjs" | "jsx" => Lang::JavaScript,
            "ts" => Lang::TypeScript,
            "tsx" => Lang::Tsx,
            "go" => Lang::Go,
            _ => return None,
        })
    }

    pub fn grammar(self) -> Language {
        match self {
            Lang::Python => tree_sitter_python::LANGUAGE.into(),
            Lang::Rust => tree_sitter_rust::LANGUAGE.into(),
            Lang::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Lang::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Lang::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Lang::Go => tree_sitter_go::LANGUAGE.into(),
        }
    }

    /// `text` parsed (error nodes included); `None` only if tree-sitter
    /// refuses the grammar or gives up.
    pub fn parse(self, text: &str) -> Option<Tree> {
        let mut p = Parser::new();
        p.set_language(&self.grammar()).ok()?;
        p.parse(text, None)
    }
}

/// `text` parsed as the language of `path`; `None` for a file in no
/// language of the registry.
pub(crate) fn parse_path(path: &str, text: &str) -> Option<Tree> {
    Lang::for_path(path)?.parse(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_extension_has_a_working_grammar() {
        for (path, text) in [
            ("a.py", "def f():\n    return 1\n"),
            ("a.rs", "fn f() -> u8 { 1 }\n"),
            ("a.js", "function f() { return 1; }\n"),
            ("a.ts", "function f(): number { return 1; }\n"),
            ("a.tsx", "const f = () => <div/>;\n"),
            ("a.go", "package a\nfunc f() int { return 1 }\n"),
        ] {
            let t = parse_path(path, text).unwrap();
            assert!(!t.root_node().has_error(), "{path}");
        }
        assert!(parse_path("a.txt", "x").is_none());
        assert!(Lang::Python.parse("def (").unwrap().root_node().has_error());
    }
}
