//! The whole-function edit format: the reply gives each changed function in
//! full, in a fenced block, and each replaces the function of the same name
//! in the code under repair.
//!
//! Small local models copy SEARCH text poorly (they paste the template's
//! `path/to/file.py`, or paraphrase the lines), but rewrite a function
//! well. A function is found by name among the files the failing tests
//! reach; an ambiguous or unknown name, or a body that elides code
//! (`# ... rest unchanged`), is refused rather than applied, so no code is
//! silently dropped.

use super::context;
use super::patch::{Edit, PatchError};
use crate::engine::extract::fenced_blocks;

/// Comments that stand for code the model left out.
const ELISIONS: [&str; 5] = [
    "# ...",
    "# rest",
    "# (rest",
    "# existing code",
    "# unchanged",
];

/// Edits replacing each function defined in `reply`'s code blocks with the
/// function of the same name in `files` (`(path, text)`).
///
/// A function the code does not have (a test the model wrote, a new
/// helper) is left out when another function of the reply matched, and is
/// an error when none did.
pub fn parse(reply: &str, files: &[(String, String)]) -> Result<Vec<Edit>, PatchError> {
    let (blocks, _) = fenced_blocks(reply);
    let mut edits: Vec<Edit> = Vec::new();
    let mut unknown: Option<PatchError> = None;
    for block in &blocks {
        let Some(lang_file) = files.first().map(|(f, _)| f.as_str()) else {
            break;
        };
        let Some(tree) = crate::syntax::parse_path(lang_file, block) else {
            continue;
        };
        for new in context::defs(&tree, block)
            .into_iter()
            .filter(|d| d.depth == 0)
        {
            let new_text = &block[new.start_byte..new.end_byte];
            if let Some(e) = ELISIONS
                .iter()
                .find(|e| new_text.to_lowercase().contains(*e))
            {
                return Err(PatchError::Malformed {
                    line: new.start_line,
                    reason: format!(
                        "`{}` leaves code out ({e:?}): write the whole function",
                        new.name
                    ),
                });
            }
            let mut found = Vec::new();
            for (file, text) in files {
                let Some(t) = crate::syntax::parse_path(file, text) else {
                    continue;
                };
                for d in context::defs(&t, text) {
                    if d.name == new.name {
                        found.push((file, text, d));
                    }
                }
            }
            let (file, text, old) = match found.len() {
                1 => found.remove(0),
                0 => {
                    unknown.get_or_insert(PatchError::Malformed {
                        line: new.start_line,
                        reason: format!(
                            "no function `{}` in the code under repair ({})",
                            new.name,
                            files
                                .iter()
                                .map(|(f, _)| f.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    });
                    continue;
                }
                n => {
                    return Err(PatchError::Malformed {
                        line: new.start_line,
                        reason: format!(
                            "`{}` names {n} functions; use the SEARCH/REPLACE format",
                            new.name
                        ),
                    });
                }
            };
            let indent = line_indent(text, old.start_byte);
            edits.push(Edit {
                file: file.clone(),
                search: text[old.start_byte..old.end_byte].to_string(),
                replace: reindent(new_text, &indent),
            });
        }
    }
    if edits.is_empty() {
        return Err(unknown.unwrap_or(PatchError::NoEdits));
    }
    Ok(edits)
}

/// The whitespace before byte `at` on its line.
fn line_indent(text: &str, at: usize) -> String {
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    text[start..at]
        .chars()
        .take_while(|c| c.is_whitespace())
        .collect()
}

/// `def_text` (whose first line starts at column 0 of its block, and whose
/// other lines carry the block's indentation) indented to sit at `indent`:
/// the first line is placed where the old `def` began, the rest move with it.
fn reindent(def_text: &str, indent: &str) -> String {
    let mut out = String::new();
    for (i, line) in def_text.split_inclusive('\n').enumerate() {
        if i > 0 && !line.trim().is_empty() {
            out.push_str(indent);
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<(String, String)> {
        vec![(
            "pkg/m.py".to_string(),
            "import os\n\n\nclass Box:\n    def size(self):\n        return 1\n\n\ndef total(xs):\n    t = 0\n    for x in xs:\n        pass\n    return t\n".to_string(),
        )]
    }

    #[test]
    fn replaces_a_function_and_a_method_by_name() {
        let reply = "Here:\n```python\ndef total(xs):\n    t = 0\n    for x in xs:\n        t += x\n    return t\n```\nand\n```python\ndef size(self):\n    return 2\n```\n";
        let edits = parse(reply, &files()).unwrap();
        assert_eq!(edits.len(), 2);
        let out = super::super::patch::apply(&edits, false, |f| {
            files().into_iter().find(|(p, _)| p == f).map(|(_, t)| t)
        })
        .unwrap();
        let new = &out["pkg/m.py"];
        assert!(new.contains("        t += x\n"), "{new}");
        assert!(
            new.contains("    def size(self):\n        return 2\n"),
            "{new}"
        );
        assert!(
            new.starts_with("import os\n"),
            "nothing else changes: {new}"
        );
    }

    #[test]
    fn refuses_elided_unknown_and_empty_replies() {
        let elided = "```python\ndef total(xs):\n    # ... rest unchanged\n    return 0\n```";
        assert!(
            parse(elided, &files())
                .unwrap_err()
                .to_string()
                .contains("leaves code out")
        );
        let unknown = "```python\ndef average(xs):\n    return 0\n```";
        assert!(
            parse(unknown, &files())
                .unwrap_err()
                .to_string()
                .contains("no function `average`")
        );
        // Beside a function that matched, an unknown one (a test) is left out.
        let with_test = "```python\ndef total(xs):\n    return sum(xs)\n\ndef test_total():\n    assert total([1]) == 1\n```";
        let edits = parse(with_test, &files()).unwrap();
        assert_eq!(edits.len(), 1);
        assert!(!edits[0].replace.contains("test_total"));
        assert_eq!(parse("no code here", &files()), Err(PatchError::NoEdits));
    }
}
