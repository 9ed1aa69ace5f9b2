//! Code from model replies: fenced blocks, whole programs, bare functions and
//! completion continuations, checked with tree-sitter-python to parse and to
//! define the entry point; candidates that tamper with the tests are refused.

use serde::{Deserialize, Serialize};
use tree_sitter::{Node, Tree};

/// How the program was found in the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// A fenced block that is a whole program.
    Fenced,
    /// The reply itself is a program.
    Whole,
    /// A function without the prompt's imports; they were put back.
    BareFunction,
    /// A continuation of the prompt (the body of the function).
    Continuation,
}

/// What the task expects of a program.
#[derive(Clone, Copy, Debug, Default)]
pub struct Target<'a> {
    /// A function (or method of `class_name`) the tests call; None: a stdin program.
    pub entry_point: Option<&'a str>,
    pub class_name: Option<&'a str>,
    /// The code a continuation is appended to (HumanEval's prompt).
    pub code_prompt: &'a str,
    /// The tests run in the program's namespace (entry-point tasks), so
    /// rebinding builtins or harness names could make them pass falsely.
    pub shared_namespace: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Extracted {
    pub code: String,
    /// The reply without its code (a joint reply's explanation).
    pub explanation: String,
    pub form: Form,
    /// The fence the program came from; None when the reply had no fence.
    pub fence: Option<Fence>,
}

/// Why a reply yields no candidate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", content = "reason", rename_all = "snake_case")]
pub enum Refusal {
    /// Counted as `no_code`.
    #[error("no usable code: {0}")]
    NoCode(String),
    /// Counted as `rejected`: the program would neutralise the tests.
    #[error("rejected: {0}")]
    Tampering(String),
}

pub fn parse(code: &str) -> Option<Tree> {
    crate::syntax::Lang::Python.parse(code)
}

/// True when `code` parses as Python without syntax errors.
pub fn parses(code: &str) -> bool {
    parse(code).is_some_and(|t| !t.root_node().has_error())
}

/// A Python (or untagged) fenced block of a reply, by byte offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    /// From the opening fence line to the end of the closing one (or of the reply).
    pub whole: std::ops::Range<usize>,
    /// The code between the fence lines.
    pub code: std::ops::Range<usize>,
}

/// The Python fences of `reply`, the last one possibly unterminated (a reply
/// cut at max_tokens), and the byte ranges of the lines outside any fence.
fn scan(reply: &str) -> (Vec<Fence>, Vec<std::ops::Range<usize>>) {
    let mut fences = Vec::new();
    let mut prose = Vec::new();
    // (start of the opening line, start of the code, python?)
    let mut open: Option<(usize, usize, bool)> = None;
    let mut at = 0;
    for raw in reply.split_inclusive('\n') {
        let (start, end) = (at, at + raw.len());
        at = end;
        let t = raw.trim_end_matches(['\n', '\r']).trim_start();
        match open {
            None => {
                if let Some(info) = t.strip_prefix("```") {
                    let lang = info.trim().to_ascii_lowercase();
                    // Another language's block: kept out of both.
                    let python =
                        lang.is_empty() || ["python", "py", "python3"].contains(&lang.as_str());
                    open = Some((start, end, python));
                } else {
                    prose.push(start..end);
                }
            }
            Some((s0, c0, python)) => {
                if t.starts_with("```") {
                    if python {
                        fences.push(Fence {
                            whole: s0..end,
                            code: c0..start,
                        });
                    }
                    open = None;
                }
            }
        }
    }
    if let Some((s0, c0, true)) = open
        && !reply[c0..].trim().is_empty()
    {
        fences.push(Fence {
            whole: s0..reply.len(),
            code: c0..reply.len(),
        });
    }
    (fences, prose)
}

/// A block's code as the extractor sees it: its lines, each ending in a newline.
fn block_text(code: &str) -> String {
    code.lines().fold(String::new(), |mut s, l| {
        s.push_str(l);
        s.push('\n');
        s
    })
}

/// Fenced code blocks (```python, ```py, ``` …), the last one possibly
/// unterminated (a reply cut at max_tokens), and the text outside them.
pub(crate) fn fenced_blocks(reply: &str) -> (Vec<String>, String) {
    let (fences, prose) = scan(reply);
    let blocks = fences
        .iter()
        .map(|f| block_text(&reply[f.code.clone()]))
        .collect();
    let text: String = prose.into_iter().map(|r| block_text(&reply[r])).collect();
    (blocks, text.trim().to_string())
}

/// The program in `reply` for `target`, or why there is none.
pub fn extract(reply: &str, target: &Target) -> Result<Extracted, Refusal> {
    let (blocks, prose) = fenced_blocks(reply);
    let (fences, _) = scan(reply);
    let mut last_problem = String::from("the reply holds no code");
    // Prefer the last block that works: models often show the bug first.
    for (block, fence) in blocks.iter().zip(&fences).rev() {
        match program_from(block, target) {
            Ok((code, form)) => {
                let form = if form == Form::Whole {
                    Form::Fenced
                } else {
                    form
                };
                check_tampering(&code, target)?;
                return Ok(Extracted {
                    code,
                    explanation: prose,
                    form,
                    fence: Some(fence.clone()),
                });
            }
            Err(p) => last_problem = p,
        }
    }
    if blocks.is_empty() && !reply.trim().is_empty() {
        match program_from(reply, target) {
            Ok((code, form)) => {
                check_tampering(&code, target)?;
                return Ok(Extracted {
                    code,
                    explanation: String::new(),
                    form,
                    fence: None,
                });
            }
            Err(p) => last_problem = p,
        }
    }
    Err(Refusal::NoCode(last_problem))
}

fn program_from(text: &str, target: &Target) -> Result<(String, Form), String> {
    let text = text.trim_matches('\n');
    let whole = parse(text).filter(|t| !t.root_node().has_error());
    if let Some(tree) = &whole
        && defines_entry(tree, text, target)
    {
        let missing = missing_imports(text, target.code_prompt);
        if missing.is_empty() {
            return Ok((format!("{text}\n"), Form::Whole));
        }
        let code = format!("{}\n{text}\n", missing.join("\n"));
        return Ok((code, Form::BareFunction));
    }
    // A continuation: the prompt ends inside the function, the reply is its
    // (indented) body.
    let indented = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| l.starts_with([' ', '\t']));
    if !target.code_prompt.is_empty() && indented {
        let joined = format!("{}{}\n", target.code_prompt, text.trim_end());
        let joined_raw = format!("{}{}", target.code_prompt, text);
        for code in [joined_raw, joined] {
            if let Some(tree) = parse(&code).filter(|t| !t.root_node().has_error())
                && defines_entry(&tree, &code, target)
            {
                let code = if code.ends_with('\n') {
                    code
                } else {
                    format!("{code}\n")
                };
                return Ok((code, Form::Continuation));
            }
        }
    }
    Err(match (&whole, target.entry_point) {
        (None, _) => "the code does not parse as Python".to_string(),
        (Some(_), Some(e)) => format!("the code does not define `{e}`"),
        (Some(_), None) => "the code does not parse as Python".to_string(),
    })
}

/// The entry point is defined at module level (or as a method of the class).
fn defines_entry(tree: &Tree, src: &str, target: &Target) -> bool {
    let Some(entry) = target.entry_point else {
        // A stdin program: anything non-empty that parses.
        return tree.root_node().named_child_count() > 0;
    };
    let root = tree.root_node();
    let mut c = root.walk();
    for node in root.named_children(&mut c) {
        let def = unwrap_decorated(node);
        match def.kind() {
            "function_definition" if name_of(def, src) == Some(entry) => return true,
            "class_definition" => {
                if target
                    .class_name
                    .is_some_and(|cls| name_of(def, src) == Some(cls))
                    && let Some(body) = def.child_by_field_name("body")
                {
                    let mut bc = body.walk();
                    if body.named_children(&mut bc).any(|m| {
                        let m = unwrap_decorated(m);
                        m.kind() == "function_definition" && name_of(m, src) == Some(entry)
                    }) {
                        return true;
                    }
                }
            }
            // `entry = lambda …` or an alias also defines it.
            "expression_statement" if assigned_names(def, src).iter().any(|n| n == entry) => {
                return true;
            }
            _ => {}
        }
    }
    false
}

fn unwrap_decorated(node: Node) -> Node {
    if node.kind() == "decorated_definition" {
        node.child_by_field_name("definition").unwrap_or(node)
    } else {
        node
    }
}

fn name_of<'s>(node: Node, src: &'s str) -> Option<&'s str> {
    node.child_by_field_name("name")
        .and_then(|n| n.utf8_text(src.as_bytes()).ok())
}

/// Names bound by an `expression_statement` holding assignments.
fn assigned_names(stmt: Node, src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut c = stmt.walk();
    for child in stmt.named_children(&mut c) {
        let mut node = child;
        // a = b = 1 nests assignments on the right.
        while node.kind() == "assignment" || node.kind() == "augmented_assignment" {
            if let Some(left) = node.child_by_field_name("left") {
                collect_targets(left, src, &mut out);
            }
            match node.child_by_field_name("right") {
                Some(r) => node = r,
                None => break,
            }
        }
    }
    out
}

fn collect_targets(node: Node, src: &str, out: &mut Vec<String>) {
    match node.kind() {
        "identifier" | "attribute" | "subscript" => {
            if let Ok(t) = node.utf8_text(src.as_bytes()) {
                out.push(t.to_string());
            }
        }
        _ => {
            let mut c = node.walk();
            for ch in node.named_children(&mut c) {
                collect_targets(ch, src, out);
            }
        }
    }
}

/// Import lines of the prompt that the code lacks (a bare function without
/// `from typing import List`).
fn missing_imports(code: &str, prompt: &str) -> Vec<String> {
    prompt
        .lines()
        .take_while(|l| {
            !l.trim_start().starts_with("def ") && !l.trim_start().starts_with("class ")
        })
        .filter(|l| l.starts_with("import ") || l.starts_with("from "))
        .filter(|l| !code.lines().any(|c| c.trim() == l.trim()))
        .map(str::to_string)
        .collect()
}

/// Names the harnesses' test code relies on in the program's namespace.
const HARNESS_NAMES: &[&str] = &[
    "check",
    "candidate",
    "METADATA",
    "assertion",
    "inputs",
    "results",
];
/// Builtins the test code calls; rebinding them could make any answer pass.
const TEST_BUILTINS: &[&str] = &[
    "abs",
    "all",
    "any",
    "isinstance",
    "issubclass",
    "len",
    "round",
    "float",
    "int",
    "str",
    "bool",
    "set",
    "list",
    "tuple",
    "dict",
    "sorted",
    "type",
    "repr",
    "hash",
    "getattr",
    "setattr",
    "AssertionError",
    "Exception",
    "BaseException",
];

/// Refuse programs that rebind what the tests use instead of solving the task.
pub(crate) fn check_tampering(code: &str, target: &Target) -> Result<(), Refusal> {
    let Some(tree) = parse(code) else {
        return Ok(());
    };
    let root = tree.root_node();
    let bad = |why: String| Err(Refusal::Tampering(why));
    let mut c = root.walk();
    for node in root.named_children(&mut c) {
        let def = unwrap_decorated(node);
        let mut bound: Vec<String> = match def.kind() {
            "function_definition" | "class_definition" => {
                name_of(def, code).map(str::to_string).into_iter().collect()
            }
            "expression_statement" => assigned_names(def, code),
            _ => Vec::new(),
        };
        bound.retain(|n| Some(n.as_str()) != target.entry_point);
        for name in &bound {
            if name.starts_with("__builtins__")
                || name.starts_with("builtins.")
                || name.starts_with("sys.modules")
            {
                return bad(format!("it rebinds `{name}`"));
            }
            if target.shared_namespace
                && (HARNESS_NAMES.contains(&name.as_str())
                    || TEST_BUILTINS.contains(&name.as_str())
                    || name.starts_with("test_"))
            {
                return bad(format!("it rebinds `{name}`, which the tests use"));
            }
        }
    }
    // Anywhere: builtins patched through setattr, or an __eq__ that always holds.
    let mut stack = vec![root];
    while let Some(n) = stack.pop() {
        match n.kind() {
            "call" => {
                let text = n.utf8_text(code.as_bytes()).unwrap_or("");
                let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
                if compact.starts_with("setattr(builtins,")
                    || compact.starts_with("setattr(__builtins__,")
                {
                    return bad("it patches builtins with setattr".into());
                }
            }
            "function_definition" if name_of(n, code) == Some("__eq__") => {
                if let Some(body) = n.child_by_field_name("body") {
                    let text: String = body
                        .utf8_text(code.as_bytes())
                        .unwrap_or("")
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ");
                    if text == "return True" {
                        return bad("it defines an __eq__ that is always true".into());
                    }
                }
            }
            _ => {}
        }
        let mut wc = n.walk();
        stack.extend(n.named_children(&mut wc));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMPT: &str =
        "from typing import List\n\n\ndef add(xs: List[int]) -> int:\n    \"\"\"Sum.\"\"\"\n";

    fn target() -> Target<'static> {
        Target {
            entry_point: Some("add"),
            class_name: None,
            code_prompt: PROMPT,
            shared_namespace: true,
        }
    }

    #[test]
    fn fenced_block_with_prose() {
        let r = "The bug is the start value.\n```python\nfrom typing import List\ndef add(xs: List[int]) -> int:\n    return sum(xs)\n```\nDone.";
        let e = extract(r, &target()).expect("code");
        assert_eq!(e.form, Form::Fenced);
        assert!(e.code.contains("return sum(xs)"));
        assert_eq!(e.explanation, "The bug is the start value.\nDone.");
    }

    #[test]
    fn the_fence_splits_the_reply_as_the_paper_counts_it() {
        let r = "Start at 0.\n```python\ndef add(xs):\n    return sum(xs)\n```\nDone.\n";
        let e = extract(r, &target()).expect("code");
        let f = e.fence.expect("from a fence");
        assert_eq!(&r[..f.whole.start], "Start at 0.\n");
        assert_eq!(&r[f.code.clone()], "def add(xs):\n    return sum(xs)\n");
        assert_eq!(&r[f.whole.end..], "Done.\n");
        // The last working block wins; what precedes it, bug included, is
        // the explanation.
        let r =
            "Bug:\n```py\nreturn 0\n```\nFix:\n```python\ndef add(xs):\n    return sum(xs)\n```";
        let f = extract(r, &target()).expect("code").fence.expect("fence");
        assert!(r[..f.whole.start].ends_with("Fix:\n"));
        assert_eq!(f.whole.end, r.len());
        // Unterminated (cut at max_tokens) and CRLF replies.
        let r = "Fix:\r\n```python\r\ndef add(xs):\r\n    return sum(xs)\r\n";
        let f = extract(r, &target()).expect("code").fence.expect("fence");
        assert_eq!(&r[f.code.clone()], "def add(xs):\r\n    return sum(xs)\r\n");
        // No fence: no split.
        let e = extract("def add(xs):\n    return sum(xs)\n", &target()).expect("code");
        assert_eq!(e.fence, None);
    }

    #[test]
    fn last_working_block_wins_and_other_languages_are_ignored() {
        let r = "```python\ndef add(xs):\n    return 0\n```\n```text\nnot code\n```\n```py\ndef add(xs):\n    return sum(xs)\n```";
        let e = extract(r, &target()).expect("code");
        assert!(e.code.contains("sum(xs)"));
    }

    #[test]
    fn bare_function_gets_the_prompt_imports() {
        let e = extract(
            "def add(xs: List[int]) -> int:\n    return sum(xs)\n",
            &target(),
        )
        .expect("code");
        assert_eq!(e.form, Form::BareFunction);
        assert!(e.code.starts_with("from typing import List\n"));
    }

    #[test]
    fn continuation_is_appended_to_the_prompt() {
        let e = extract("    return sum(xs)\n", &target()).expect("code");
        assert_eq!(e.form, Form::Continuation);
        assert!(e.code.starts_with(PROMPT) && e.code.ends_with("return sum(xs)\n"));
    }

    #[test]
    fn unterminated_fence_still_counts() {
        let e = extract("```python\ndef add(xs):\n    return sum(xs)\n", &target()).expect("code");
        assert!(e.code.contains("sum"));
    }

    #[test]
    fn no_code_is_a_refusal_not_a_panic() {
        for reply in [
            "",
            "I cannot help with that.",
            "```python\ndef other():\n    pass\n```",
            "```python\ndef add(:\n```",
        ] {
            match extract(reply, &target()) {
                Err(Refusal::NoCode(_)) => {}
                other => panic!("{reply:?} gave {other:?}"),
            }
        }
        let e = extract("```python\ndef other():\n    pass\n```", &target()).unwrap_err();
        assert!(e.to_string().contains("does not define `add`"), "{e}");
    }

    #[test]
    fn stdin_programs_need_no_entry_point() {
        let t = Target::default();
        let e = extract("```python\nn = int(input())\nprint(n * 2)\n```", &t).expect("code");
        assert!(e.code.contains("print"));
    }

    #[test]
    fn tampering_is_rejected() {
        let cases = [
            "def add(xs):\n    return 0\ndef check(c):\n    pass\n",
            "def add(xs):\n    return 0\nisinstance = lambda *a: True\n",
            "import builtins\nbuiltins.abs = lambda x: 0\ndef add(xs):\n    return 0\n",
            "import builtins\ndef add(xs):\n    setattr(builtins, 'len', None)\n    return 0\n",
            "class A:\n    def __eq__(self, o):\n        return True\ndef add(xs):\n    return A()\n",
        ];
        for code in cases {
            match extract(code, &target()) {
                Err(Refusal::Tampering(_)) => {}
                other => panic!("{code:?} gave {other:?}"),
            }
        }
        // A stdin program may rebind input, as competitive code does.
        let t = Target::default();
        assert!(
            extract(
                "import sys\ninput = sys.stdin.readline\nprint(input())\n",
                &t
            )
            .is_ok()
        );
    }
}
