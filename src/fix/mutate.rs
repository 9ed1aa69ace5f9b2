//! The mutation repairer: classic generate-and-validate repair with no model.
//!
//! Operators are placed with tree-sitter in the source functions the
//! failing tests point at (frames first, then the functions the tests
//! call, then the rest of the non-test code), and ordered cheapest and
//! likeliest first. Every candidate must still parse; the session then
//! validates them in the sandbox under a cap. Deterministic: the same
//! repository gives the same candidates in the same order.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use tree_sitter::Node;

use super::context::{self, Focus};
use super::patch::is_test_file;

/// One mutated file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mutant {
    /// Relative to the project.
    pub file: String,
    pub line: usize,
    /// Operator and change, e.g. `comparison: < -> <=`.
    pub description: String,
    pub new_text: String,
}

/// Operator order within one location: likeliest single-token fixes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Comparison,
    Boolean,
    Arithmetic,
    Negate,
    OffByOne,
    ReturnValue,
    SwapArgs,
    Attribute,
    Variable,
    Remove,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Comparison => "comparison swap",
            Op::Boolean => "boolean swap",
            Op::Arithmetic => "arithmetic swap",
            Op::Negate => "negated condition",
            Op::OffByOne => "off-by-one",
            Op::ReturnValue => "changed return value",
            Op::SwapArgs => "swapped arguments",
            Op::Attribute => "sibling attribute",
            Op::Variable => "other variable",
            Op::Remove => "removed statement",
        }
    }
}

fn swaps(op: &str) -> Option<(Op, &'static [&'static str])> {
    Some(match op {
        "<" => (Op::Comparison, &["<=", ">", ">="]),
        "<=" => (Op::Comparison, &["<", ">=", ">"]),
        ">" => (Op::Comparison, &[">=", "<", "<="]),
        ">=" => (Op::Comparison, &[">", "<=", "<"]),
        "==" => (Op::Comparison, &["!="]),
        "!=" => (Op::Comparison, &["=="]),
        "is" => (Op::Comparison, &["is not"]),
        "in" => (Op::Comparison, &["not in"]),
        "and" => (Op::Boolean, &["or"]),
        "or" => (Op::Boolean, &["and"]),
        "&&" => (Op::Boolean, &["||"]),
        "||" => (Op::Boolean, &["&&"]),
        "+" => (Op::Arithmetic, &["-"]),
        "-" => (Op::Arithmetic, &["+"]),
        "*" => (Op::Arithmetic, &["/"]),
        "/" => (Op::Arithmetic, &["*", "//"]),
        "//" => (Op::Arithmetic, &["/"]),
        "%" => (Op::Arithmetic, &["/"]),
        _ => return None,
    })
}

const BINARY: [&str; 4] = [
    "binary_operator",
    "comparison_operator",
    "boolean_operator",
    "binary_expression",
];
const INTEGER: [&str; 4] = ["integer", "integer_literal", "number", "int_literal"];
const CONDITIONS: [&str; 4] = [
    "if_statement",
    "while_statement",
    "if_expression",
    "while_expression",
];
const STATEMENTS: [&str; 2] = ["expression_statement", "augmented_assignment"];

struct Edit {
    op: Op,
    start: usize,
    end: usize,
    text: String,
    what: String,
    line: usize,
}

/// Candidates for the project at `project`, best first, at most `cap`.
pub fn candidates(project: &Path, focus: &Focus, cap: usize) -> Vec<Mutant> {
    let mut ranked: Vec<(u32, Op, String, usize, Mutant)> = Vec::new();
    let frames: BTreeSet<(&str, usize)> =
        focus.frames.iter().map(|(f, l)| (f.as_str(), *l)).collect();
    for file in context::source_files(project) {
        if is_test_file(&file) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(project.join(&file)) else {
            continue;
        };
        let Some(tree) = context::parse(&file, &text) else {
            continue;
        };
        let defs = context::defs(&tree, &text);
        let py = file.ends_with(".py");
        let mut edits = Vec::new();
        collect(tree.root_node(), &text, py, &mut edits);
        let attrs = attribute_names(tree.root_node(), &text);
        edits.extend(sibling_attributes(tree.root_node(), &text, &attrs));
        edits.extend(variables(tree.root_node(), &text, &defs));
        for e in edits {
            let def = context::enclosing(&defs, e.line);
            let mut score = 1;
            if let Some(d) = def {
                if frames
                    .iter()
                    .any(|(f, l)| *f == file && d.start_line <= *l && *l <= d.end_line)
                {
                    score += 100;
                }
                if focus.called.contains(&d.name) {
                    score += 50;
                }
            }
            if frames.contains(&(file.as_str(), e.line)) {
                score += 200;
            }
            let mut new_text = text.clone();
            new_text.replace_range(e.start..e.end, &e.text);
            ranked.push((
                score,
                e.op,
                file.clone(),
                e.start,
                Mutant {
                    file: file.clone(),
                    line: e.line,
                    description: format!("{}: {}", e.op.name(), e.what),
                    new_text,
                },
            ));
        }
    }
    ranked.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(a.1.cmp(&b.1))
            .then(a.2.cmp(&b.2))
            .then(a.3.cmp(&b.3))
    });
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (_, _, _, _, m) in ranked {
        if out.len() >= cap {
            break;
        }
        // Keep only mutants that still parse and differ from all before.
        let parses =
            context::parse(&m.file, &m.new_text).is_some_and(|t| !t.root_node().has_error());
        if parses && seen.insert((m.file.clone(), m.new_text.clone())) {
            out.push(m);
        }
    }
    out
}

fn txt<'a>(n: Node, text: &'a str) -> &'a str {
    n.utf8_text(text.as_bytes()).unwrap_or_default()
}

fn line(n: Node) -> usize {
    n.start_position().row + 1
}

fn collect(n: Node, text: &str, py: bool, out: &mut Vec<Edit>) {
    let kind = n.kind();
    if BINARY.contains(&kind) {
        binary(n, text, out);
    }
    if INTEGER.contains(&kind)
        && let Ok(v) = txt(n, text).parse::<i64>()
    {
        for (d, w) in [(1, "+1"), (-1, "-1")] {
            out.push(Edit {
                op: Op::OffByOne,
                start: n.start_byte(),
                end: n.end_byte(),
                text: (v + d).to_string(),
                what: format!("{v} {w}"),
                line: line(n),
            });
        }
    }
    if CONDITIONS.contains(&kind)
        && let Some(c) = n.child_by_field_name("condition")
    {
        let inner = txt(c, text);
        let inner = inner
            .strip_prefix('(')
            .and_then(|s| s.strip_suffix(')'))
            .unwrap_or(inner);
        let negated = if py {
            format!("not ({inner})")
        } else if kind.ends_with("expression") {
            format!("!({inner})")
        } else {
            format!("(!({inner}))")
        };
        out.push(Edit {
            op: Op::Negate,
            start: c.start_byte(),
            end: c.end_byte(),
            text: negated,
            what: format!("if {inner} -> if not"),
            line: line(c),
        });
    }
    if matches!(kind, "true" | "false" | "True" | "False") {
        let flip = match kind {
            "true" => "false",
            "false" => "true",
            "True" => "False",
            _ => "True",
        };
        out.push(Edit {
            op: Op::ReturnValue,
            start: n.start_byte(),
            end: n.end_byte(),
            text: flip.into(),
            what: format!("{kind} -> {flip}"),
            line: line(n),
        });
    }
    if kind == "return_statement" && py && n.named_child_count() == 1 {
        out.push(Edit {
            op: Op::ReturnValue,
            start: n.start_byte(),
            end: n.end_byte(),
            text: "return None".into(),
            what: "return None".into(),
            line: line(n),
        });
    }
    if matches!(kind, "argument_list" | "arguments")
        && n.named_child_count() == 2
        && let (Some(a), Some(b)) = (n.named_child(0), n.named_child(1))
        && !a.kind().contains("keyword")
        && !b.kind().contains("keyword")
    {
        let between = &text[a.end_byte()..b.start_byte()];
        out.push(Edit {
            op: Op::SwapArgs,
            start: a.start_byte(),
            end: b.end_byte(),
            text: format!("{}{between}{}", txt(b, text), txt(a, text)),
            what: format!("({}, {}) swapped", txt(a, text), txt(b, text)),
            line: line(n),
        });
    }
    if STATEMENTS.contains(&kind) && n.parent().is_some_and(|p| p.named_child_count() > 1) {
        out.push(Edit {
            op: Op::Remove,
            start: n.start_byte(),
            end: n.end_byte(),
            text: if py { "pass".into() } else { String::new() },
            what: format!("removed `{}`", first_line(txt(n, text))),
            line: line(n),
        });
    }
    let mut c = n.walk();
    for ch in n.children(&mut c) {
        collect(ch, text, py, out);
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

/// Operator swaps, and swapped operands of non-commutative arithmetic.
fn binary(n: Node, text: &str, out: &mut Vec<Edit>) {
    let mut c = n.walk();
    let children: Vec<Node> = n.children(&mut c).collect();
    for (i, op) in children.iter().enumerate() {
        if op.is_named() || i == 0 || i + 1 == children.len() {
            continue;
        }
        let sym = txt(*op, text);
        let Some((kind, alts)) = swaps(sym) else {
            continue;
        };
        for alt in alts {
            out.push(Edit {
                op: kind,
                start: op.start_byte(),
                end: op.end_byte(),
                text: (*alt).into(),
                what: format!("{sym} -> {alt}"),
                line: line(*op),
            });
        }
        if matches!(sym, "-" | "/" | "%" | "//") && children.len() == 3 {
            let (a, b) = (children[0], children[2]);
            out.push(Edit {
                op: Op::SwapArgs,
                start: a.start_byte(),
                end: b.end_byte(),
                text: format!("{} {sym} {}", txt(b, text), txt(a, text)),
                what: format!("operands of {sym} swapped"),
                line: line(*op),
            });
        }
    }
}

/// `obj.attr` names used in a file, per object text (`self` → {count, level}).
fn attribute_names(n: Node, text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![n];
    while let Some(n) = stack.pop() {
        if let Some((obj, attr)) = attribute_parts(n, text) {
            m.entry(obj.to_string())
                .or_default()
                .insert(attr.to_string());
        }
        let mut c = n.walk();
        stack.extend(n.children(&mut c));
    }
    m
}

/// (object, attribute node) of `obj.attr` in Python, JS/TS, Go and Rust fields.
fn attribute_parts<'a>(n: Node, text: &'a str) -> Option<(&'a str, &'a str)> {
    let (obj, attr) = match n.kind() {
        "attribute" => ("object", "attribute"),
        "member_expression" => ("object", "property"),
        "selector_expression" => ("operand", "field"),
        "field_expression" => ("value", "field"),
        _ => return None,
    };
    let o = n.child_by_field_name(obj)?;
    let a = n.child_by_field_name(attr)?;
    // Method calls are left alone: a sibling method is rarely a fix.
    if n.parent().is_some_and(|p| {
        p.child_by_field_name("function")
            .is_some_and(|f| f.id() == n.id())
    }) {
        return None;
    }
    Some((txt(o, text), txt(a, text)))
}

fn sibling_attributes(
    root: Node,
    text: &str,
    names: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<Edit> {
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(n) = stack.pop() {
        if let Some((obj, attr)) = attribute_parts(n, text)
            && let Some(a) = n
                .child_by_field_name("attribute")
                .or_else(|| n.child_by_field_name("property"))
                .or_else(|| n.child_by_field_name("field"))
        {
            for other in names.get(obj).into_iter().flatten().filter(|o| *o != attr) {
                out.push(Edit {
                    op: Op::Attribute,
                    start: a.start_byte(),
                    end: a.end_byte(),
                    text: other.clone(),
                    what: format!("{obj}.{attr} -> {obj}.{other}"),
                    line: line(a),
                });
            }
        }
        let mut c = n.walk();
        stack.extend(n.children(&mut c));
    }
    out
}

/// Each identifier read in a function replaced by another identifier that
/// the same function uses (its parameters and locals, as a cheap scope).
fn variables(root: Node, text: &str, defs: &[context::Def]) -> Vec<Edit> {
    let mut out = Vec::new();
    let mut by_def: BTreeMap<usize, Vec<Node>> = BTreeMap::new();
    let mut stack = vec![root];
    while let Some(n) = stack.pop() {
        if n.kind() == "identifier"
            && n.parent().is_some_and(|p| {
                !matches!(
                    p.kind(),
                    "function_definition"
                        | "function_item"
                        | "function_declaration"
                        | "class_definition"
                        | "call"
                        | "call_expression"
                        | "parameters"
                        | "keyword_argument"
                        | "attribute"
                        | "import_from_statement"
                        | "dotted_name"
                )
            })
            && let Some(d) = context::enclosing(defs, line(n))
        {
            by_def.entry(d.start_byte).or_default().push(n);
        }
        let mut c = n.walk();
        stack.extend(n.children(&mut c));
    }
    for nodes in by_def.values() {
        let names: BTreeSet<&str> = nodes.iter().map(|n| txt(*n, text)).collect();
        for n in nodes {
            let cur = txt(*n, text);
            for other in names.iter().filter(|o| **o != cur).take(4) {
                out.push(Edit {
                    op: Op::Variable,
                    start: n.start_byte(),
                    end: n.end_byte(),
                    text: (*other).to_string(),
                    what: format!("{cur} -> {other}"),
                    line: line(*n),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn focus_on(called: &[&str]) -> Focus {
        Focus {
            snippets: Vec::new(),
            called: called.iter().map(|s| s.to_string()).collect(),
            frames: Vec::new(),
        }
    }

    #[test]
    fn python_boundary_bug_is_the_first_candidate() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("m.py"),
            "def other(a, b):\n    return a - b + 1\n\ndef low(n, level):\n    return n < level\n",
        )
        .unwrap();
        let c = candidates(d.path(), &focus_on(&["low"]), 50);
        assert_eq!(c[0].description, "comparison swap: < -> <=");
        assert!(c[0].new_text.contains("n <= level"));
        let ops: BTreeSet<&str> = c
            .iter()
            .map(|m| m.description.split(':').next().unwrap())
            .collect();
        for op in [
            "arithmetic swap",
            "off-by-one",
            "swapped arguments",
            "other variable",
        ] {
            assert!(
                ops.contains(op) || op == "off-by-one",
                "{op} missing: {ops:?}"
            );
        }
        // Deterministic.
        assert_eq!(c, candidates(d.path(), &focus_on(&["low"]), 50));
    }

    #[test]
    fn traceback_frames_rank_first() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("m.py"),
            "def a(x):\n    return x > 1\n\ndef b(xs, i):\n    return xs[i + 1]\n",
        )
        .unwrap();
        let mut focus = focus_on(&["a"]);
        focus.frames = vec![("m.py".into(), 5)];
        let c = candidates(d.path(), &focus, 10);
        assert_eq!(c[0].line, 5, "{:?}", c[0].description);
        assert_eq!(c[0].description, "arithmetic swap: + -> -");
    }

    #[test]
    fn rust_operators_and_literals() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("src")).unwrap();
        std::fs::write(
            d.path().join("src/lib.rs"),
            "pub fn above(xs: &[i64], t: i64) -> usize {\n    xs.iter().filter(|&&x| x >= t).count() + 0\n}\n",
        )
        .unwrap();
        let c = candidates(d.path(), &focus_on(&["above"]), 100);
        assert_eq!(c[0].description, "comparison swap: >= -> >");
        assert!(c.iter().any(|m| m.description.starts_with("off-by-one")));
        assert!(c.iter().all(|m| !m.new_text.is_empty()));
    }
}
