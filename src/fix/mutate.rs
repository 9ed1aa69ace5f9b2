//! The mutation repairer: classic generate-and-validate repair with no model.
//!
//! Operators are placed with tree-sitter in the project's non-test code and
//! ranked: by the line's suspiciousness from coverage ([`Suspicion`], Ochiai)
//! when there is one (then only files a failing test ran are mutated), then by the failing tests' frames and the functions
//! they call, then cheapest and likeliest operator first. Edits are small
//! records; a mutant's file text is made only when it is its turn, so memory
//! follows the files, not the number of mutants. Every mutant must still
//! parse. Deterministic: the same repository gives the same order.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use tree_sitter::Node;

use super::context::{self, Focus};
use super::localise::Suspicion;
use super::patch::is_test_file;

/// One mutated file.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Mutant {
    /// Relative to the project.
    pub file: String,
    pub line: usize,
    /// Operator and change, e.g. `comparison swap: < -> <=`.
    pub description: String,
    pub new_text: String,
    /// The line's suspiciousness (0 without coverage or when no failing
    /// test ran it).
    pub score: f64,
    /// Bytes changed: the larger of the text replaced and its replacement.
    pub size: usize,
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
    SwapBranches,
    Attribute,
    Variable,
    Insert,
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
            Op::SwapBranches => "swapped branches",
            Op::Attribute => "sibling attribute",
            Op::Variable => "other variable",
            Op::Insert => "inserted statement",
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
        "+" => (Op::Arithmetic, &["-", "*"]),
        "-" => (Op::Arithmetic, &["+"]),
        "*" => (Op::Arithmetic, &["/", "+"]),
        "+=" => (Op::Arithmetic, &["-="]),
        "-=" => (Op::Arithmetic, &["+="]),
        "*=" => (Op::Arithmetic, &["/="]),
        "/=" => (Op::Arithmetic, &["*="]),
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
/// Expressions that take `+ 1` without parentheses.
const ATOMS: [&str; 12] = [
    "identifier",
    "attribute",
    "call",
    "subscript",
    "member_expression",
    "call_expression",
    "subscript_expression",
    "field_expression",
    "index_expression",
    "selector_expression",
    "parenthesized_expression",
    "field_identifier",
];
/// Argument kinds that cannot be moved (keywords, splats).
const PINNED_ARGS: [&str; 5] = [
    "keyword_argument",
    "list_splat",
    "dictionary_splat",
    "spread_element",
    "parenthesized_expression",
];
/// Most positional arguments a call may have for its pairs to be swapped.
const MAX_SWAP_ARGS: usize = 6;
/// Most inserted statements tried per function.
const MAX_INSERTS: usize = 120;

struct Edit {
    op: Op,
    start: usize,
    end: usize,
    text: String,
    what: String,
    line: usize,
}

struct Ranked {
    score: f64,
    bonus: u32,
    op: Op,
    file: usize,
    edit: Edit,
}

/// The project's mutants, best first, made one at a time.
pub(crate) struct Candidates {
    files: Vec<(String, String)>,
    ranked: std::vec::IntoIter<Ranked>,
    seen: BTreeSet<(usize, usize, usize, String)>,
}

impl Candidates {
    /// From now on, only the next `n` edits of `file`'s `line`, still in
    /// rank order; the rest are dropped before any text is made for them.
    pub fn keep_line(&mut self, file: &str, line: usize, n: usize) {
        let files = &self.files;
        let rest: Vec<Ranked> = self
            .ranked
            .by_ref()
            .filter(|r| r.edit.line == line && files[r.file].0 == file)
            .take(n)
            .collect();
        self.ranked = rest.into_iter();
    }
}

impl Iterator for Candidates {
    type Item = Mutant;

    fn next(&mut self) -> Option<Mutant> {
        for r in self.ranked.by_ref() {
            let e = r.edit;
            // The same change reached by two operators is tried once.
            if !self.seen.insert((r.file, e.start, e.end, e.text.clone())) {
                continue;
            }
            let (file, text) = &self.files[r.file];
            let mut new_text = String::with_capacity(text.len() + e.text.len());
            new_text.push_str(&text[..e.start]);
            new_text.push_str(&e.text);
            new_text.push_str(&text[e.end..]);
            if new_text == *text
                || crate::syntax::parse_path(file, &new_text)
                    .is_none_or(|t| t.root_node().has_error())
            {
                continue;
            }
            return Some(Mutant {
                file: file.clone(),
                line: e.line,
                description: format!("{}: {}", r.op.name(), e.what),
                new_text,
                score: r.score,
                size: e.text.len().max(e.end - e.start),
            });
        }
        None
    }
}

/// Candidates for the project at `project`, best first.
pub(crate) fn candidates(
    project: &Path,
    focus: &Focus,
    suspicion: Option<&Suspicion>,
) -> Candidates {
    let mut ranked: Vec<Ranked> = Vec::new();
    let mut files = Vec::new();
    let frames: BTreeSet<(&str, usize)> =
        focus.frames.iter().map(|(f, l)| (f.as_str(), *l)).collect();
    for file in context::source_files(project) {
        // With coverage, only files a failing test ran: not setup.py, build
        // scripts or benchmarks.
        if is_test_file(&file) || suspicion.is_some_and(|s| !s.touches(&file)) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(project.join(&file)) else {
            continue;
        };
        let Some(tree) = crate::syntax::parse_path(&file, &text) else {
            continue;
        };
        let defs = context::defs(&tree, &text);
        let py = file.ends_with(".py");
        let root = tree.root_node();
        let mut edits = Vec::new();
        collect(root, &text, py, &mut edits);
        let attrs = attribute_names(root, &text);
        edits.extend(sibling_attributes(root, &text, &attrs));
        edits.extend(variables(root, &text, &defs));
        if py {
            edits.extend(insertions(root, &text));
        }
        let index = files.len();
        for e in edits {
            let def = context::enclosing(&defs, e.line);
            let mut bonus = 1;
            if let Some(d) = def {
                if frames
                    .iter()
                    .any(|(f, l)| *f == file && d.start_line <= *l && *l <= d.end_line)
                {
                    bonus += 100;
                }
                if focus.called.contains(&d.name) {
                    bonus += 50;
                }
            }
            if frames.contains(&(file.as_str(), e.line)) {
                bonus += 200;
            }
            let score = suspicion.map_or(0.0, |s| s.score(&file, e.line));
            ranked.push(Ranked {
                score,
                bonus,
                op: e.op,
                file: index,
                edit: e,
            });
        }
        files.push((file, text));
    }
    // Stable: alternatives at one place keep their likeliest-first order.
    ranked.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.bonus.cmp(&a.bonus))
            .then(a.op.cmp(&b.op))
            .then(a.file.cmp(&b.file))
            .then(a.edit.start.cmp(&b.edit.start))
            .then(a.edit.end.cmp(&b.edit.end))
    });
    Candidates {
        files,
        ranked: ranked.into_iter(),
        seen: BTreeSet::new(),
    }
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
        // `not x` (or `!x`) loses its negation rather than gaining another.
        let bare = if c.kind() == "parenthesized_expression" {
            c.named_child(0).unwrap_or(c)
        } else {
            c
        };
        let unnegated = match bare.kind() {
            "not_operator" => bare.child_by_field_name("argument"),
            "unary_expression" if bare.child(0).is_some_and(|o| txt(o, text) == "!") => {
                bare.child_by_field_name("argument")
            }
            _ => None,
        };
        let negated = if let Some(arg) = unnegated {
            if py || kind.ends_with("expression") {
                txt(arg, text).to_string()
            } else {
                format!("({})", txt(arg, text))
            }
        } else if py {
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
            what: format!("{inner} -> {negated}"),
            text: negated,
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
    if matches!(kind, "argument_list" | "arguments") {
        swapped_arguments(n, text, out);
    }
    if matches!(
        kind,
        "augmented_assignment" | "augmented_assignment_expression" | "compound_assignment_expr"
    ) && let Some(op) = n.child_by_field_name("operator")
        && let Some((k, alts)) = swaps(txt(op, text))
    {
        for alt in alts {
            out.push(Edit {
                op: k,
                start: op.start_byte(),
                end: op.end_byte(),
                text: (*alt).into(),
                what: format!("{} -> {alt}", txt(op, text)),
                line: line(op),
            });
        }
    }
    for e in integer_operands(n, text) {
        for (d, sign) in [("+", '+'), ("-", '-')] {
            let inner = txt(e, text);
            let inner = if ATOMS.contains(&e.kind()) {
                inner.to_string()
            } else {
                format!("({inner})")
            };
            out.push(Edit {
                op: Op::OffByOne,
                start: e.start_byte(),
                end: e.end_byte(),
                text: format!("{inner} {d} 1"),
                what: format!("{} -> {inner} {sign} 1", txt(e, text)),
                line: line(e),
            });
        }
    }
    swapped_branches(n, text, out);
    // A docstring or a bare string does nothing: removing it fixes nothing.
    let bare_string = n.named_child_count() == 1
        && n.named_child(0)
            .is_some_and(|c| matches!(c.kind(), "string" | "concatenated_string"));
    if STATEMENTS.contains(&kind)
        && !bare_string
        && n.parent().is_some_and(|p| p.named_child_count() > 1)
    {
        out.push(Edit {
            op: Op::Remove,
            start: n.start_byte(),
            end: n.end_byte(),
            text: if py { "pass".into() } else { String::new() },
            what: format!("removed `{}`", one_line(txt(n, text))),
            line: line(n),
        });
    }
    let mut c = n.walk();
    for ch in n.children(&mut c) {
        collect(ch, text, py, out);
    }
}

/// A statement on one line, for descriptions: whitespace runs become one space.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every pair of positional arguments swapped (calls of up to
/// [`MAX_SWAP_ARGS`] of them, none a keyword or a splat).
fn swapped_arguments(n: Node, text: &str, out: &mut Vec<Edit>) {
    let mut c = n.walk();
    let args: Vec<Node> = n
        .named_children(&mut c)
        .filter(|a| a.kind() != "comment")
        .collect();
    if args.len() < 2
        || args.len() > MAX_SWAP_ARGS
        || args.iter().any(|a| PINNED_ARGS[..4].contains(&a.kind()))
    {
        return;
    }
    for i in 0..args.len() {
        for j in i + 1..args.len() {
            let (a, b) = (args[i], args[j]);
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
    }
}

/// The integer-valued operands under `n` that an off-by-one may shift:
/// the bounds of `range(...)`, the arguments of `min`/`max`, subscript indices and slice bounds, and the
/// sides of an ordering comparison. Literals are left to the literal rule.
fn integer_operands<'t>(n: Node<'t>, text: &str) -> Vec<Node<'t>> {
    let mut c = n.walk();
    let named: Vec<Node> = n.named_children(&mut c).collect();
    let picked: Vec<Node> = match n.kind() {
        "call" | "call_expression"
            if n.child_by_field_name("function")
                .is_some_and(|f| matches!(txt(f, text), "range" | "min" | "max")) =>
        {
            n.child_by_field_name("arguments")
                .map(|a| {
                    let mut c = a.walk();
                    a.named_children(&mut c).collect()
                })
                .unwrap_or_default()
        }
        "subscript" => {
            let mut c = n.walk();
            n.children_by_field_name("subscript", &mut c).collect()
        }
        "slice" => named,
        "subscript_expression" | "index_expression" => n
            .child_by_field_name("index")
            .or_else(|| named.get(1).copied())
            .into_iter()
            .collect(),
        "comparison_operator" | "binary_expression" => {
            let mut c = n.walk();
            let ordering = n
                .children(&mut c)
                .any(|o| !o.is_named() && matches!(txt(o, text), "<" | "<=" | ">" | ">="));
            if ordering { named } else { Vec::new() }
        }
        _ => Vec::new(),
    };
    picked
        .into_iter()
        .filter(|e| {
            !INTEGER.contains(&e.kind())
                && !PINNED_ARGS.contains(&e.kind())
                && !matches!(e.kind(), "string" | "comment" | "slice" | "unary_operator")
        })
        .collect()
}

/// The two branches of an if/else (or a conditional expression) swapped.
fn swapped_branches(n: Node, text: &str, out: &mut Vec<Edit>) {
    let pair = match n.kind() {
        "if_statement" | "if_expression" => {
            let Some(cons) = n.child_by_field_name("consequence") else {
                return;
            };
            let mut c = n.walk();
            let alts: Vec<Node> = n.children_by_field_name("alternative", &mut c).collect();
            // Only a plain `else` (an `elif` chain has no single other branch).
            let [alt] = alts[..] else { return };
            let body = if matches!(alt.kind(), "else_clause") {
                alt.child_by_field_name("body").or_else(|| {
                    let mut c = alt.walk();
                    alt.named_children(&mut c)
                        .find(|b| b.kind().contains("block"))
                })
            } else if alt.kind().contains("block") {
                Some(alt)
            } else {
                None
            };
            let Some(body) = body else { return };
            (cons, body)
        }
        "conditional_expression" => {
            let mut c = n.walk();
            let parts: Vec<Node> = n.named_children(&mut c).collect();
            let [a, _, b] = parts[..] else { return };
            (a, b)
        }
        "ternary_expression" => {
            let (Some(a), Some(b)) = (
                n.child_by_field_name("consequence"),
                n.child_by_field_name("alternative"),
            ) else {
                return;
            };
            (a, b)
        }
        _ => return,
    };
    let (a, b) = pair;
    if a.end_byte() > b.start_byte() || txt(a, text) == txt(b, text) {
        return;
    }
    let between = &text[a.end_byte()..b.start_byte()];
    out.push(Edit {
        op: Op::SwapBranches,
        start: a.start_byte(),
        end: b.end_byte(),
        text: format!("{}{between}{}", txt(b, text), txt(a, text)),
        what: format!(
            "`{}` and `{}` swapped",
            shorten(&one_line(txt(a, text))),
            shorten(&one_line(txt(b, text)))
        ),
        line: line(a),
    });
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= 60 {
        return s.to_string();
    }
    let mut t: String = s.chars().take(57).collect();
    t.push('…');
    t
}

/// Python: a statement the function already uses, inserted at the start or
/// end of another of its blocks: an update (`obj.method(arg)`, `x += ...`)
/// as written, and `obj.method(v)` for each name the block's `for` binds or
/// its `if` tests (the missing `seen.add(v)`, `out.append(v)`); for a
/// collection the function starts empty (`out = []`, `seen = set()`),
/// `out.append(v)` / `seen.add(v)` with the names of the enclosing `for`s;
/// and in an `if x not in seen:` block, `seen.add(x)` / `seen.append(x)`.
fn insertions(root: Node, text: &str) -> Vec<Edit> {
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(n) = stack.pop() {
        if n.kind() == "function_definition" {
            function_insertions(n, text, &mut out);
        }
        let mut c = n.walk();
        stack.extend(n.children(&mut c));
    }
    out
}

fn function_insertions(f: Node, text: &str, out: &mut Vec<Edit>) {
    // (statement text, receiver and method for one-argument calls)
    let mut updates: Vec<(String, Option<(String, String)>)> = Vec::new();
    let mut collections: Vec<(String, &str)> = Vec::new();
    let mut blocks = Vec::new();
    let mut stack = vec![f];
    while let Some(n) = stack.pop() {
        if n.id() != f.id() && n.kind() == "function_definition" {
            continue;
        }
        match n.kind() {
            "block" => blocks.push(n),
            // `out = []` / `seen = set()`: a collection the function fills.
            "assignment" => {
                if let (Some(l), Some(r)) = (
                    n.child_by_field_name("left"),
                    n.child_by_field_name("right"),
                ) && l.kind() == "identifier"
                {
                    let method = match r.kind() {
                        "list" if r.named_child_count() == 0 => Some("append"),
                        "call" if txt(r, text).replace(' ', "") == "set()" => Some("add"),
                        _ => None,
                    };
                    if let Some(m) = method {
                        collections.push((txt(l, text).to_string(), m));
                    }
                }
            }
            "expression_statement" => {
                if let Some(e) = n.named_child(0) {
                    let call = (e.kind() == "call")
                        .then(|| {
                            let func = e.child_by_field_name("function")?;
                            let args = e.child_by_field_name("arguments")?;
                            let obj = func.child_by_field_name("object")?;
                            let m = func.child_by_field_name("attribute")?;
                            (func.kind() == "attribute" && args.named_child_count() == 1)
                                .then(|| (txt(obj, text).to_string(), txt(m, text).to_string()))
                        })
                        .flatten();
                    if call.is_some() || e.kind() == "augmented_assignment" {
                        updates.push((txt(n, text).to_string(), call));
                    }
                }
            }
            _ => {}
        }
        let mut c = n.walk();
        stack.extend(n.children(&mut c));
    }
    blocks.sort_by_key(|b| b.start_byte());
    updates.sort();
    updates.dedup();
    let mut made = 0;
    for b in blocks {
        let body = txt(b, text);
        let mut c = b.walk();
        let stmts: Vec<Node> = b
            .named_children(&mut c)
            .filter(|s| s.kind() != "comment")
            .collect();
        let (Some(first), Some(last)) = (stmts.first(), stmts.last()) else {
            continue;
        };
        let indent = " ".repeat(first.start_position().column);
        let mut names = BTreeSet::new();
        if let Some(p) = b.parent() {
            let field = match p.kind() {
                "for_statement" => p.child_by_field_name("left"),
                "if_statement" | "while_statement" => p.child_by_field_name("condition"),
                _ => None,
            };
            if let Some(fld) = field {
                identifiers(fld, text, &mut names);
            }
        }
        // The names every enclosing `for` of the function binds.
        let mut up = b.parent();
        while let Some(p) = up.filter(|p| p.id() != f.id()) {
            if p.kind() == "for_statement"
                && let Some(l) = p.child_by_field_name("left")
            {
                identifiers(l, text, &mut names);
            }
            up = p.parent();
        }
        let mut wanted: BTreeSet<String> = BTreeSet::new();
        // `if x not in seen:` with nothing ever added to `seen`: the block
        // may be missing `seen.add(x)` (a set) or `seen.append(x)` (a list).
        if let Some(cond) = b
            .parent()
            .filter(|p| p.kind() == "if_statement")
            .and_then(|p| p.child_by_field_name("condition"))
            .filter(|c| c.kind() == "comparison_operator" && c.named_child_count() == 2)
            && let (Some(x), Some(coll)) = (cond.named_child(0), cond.named_child(1))
            && coll.kind() == "identifier"
            && txt(cond, text).contains(" not in ")
        {
            for m in ["add", "append"] {
                wanted.insert(format!("{}.{m}({})", txt(coll, text), txt(x, text)));
            }
        }
        for (coll, m) in &collections {
            for v in names.iter().filter(|v| *v != coll) {
                wanted.insert(format!("{coll}.{m}({v})"));
            }
        }
        for (stmt, call) in &updates {
            wanted.insert(stmt.clone());
            if let Some((obj, m)) = call {
                for v in names.iter().filter(|v| *v != obj) {
                    wanted.insert(format!("{obj}.{m}({v})"));
                }
            }
        }
        // Before a final return/raise/break/continue, not after it.
        let ends = matches!(
            last.kind(),
            "return_statement" | "raise_statement" | "break_statement" | "continue_statement"
        );
        for stmt in wanted.iter().filter(|s| !body.contains(s.as_str())) {
            let places = [
                (
                    first.start_byte(),
                    format!(
                        "{stmt}
{indent}"
                    ),
                    "start",
                ),
                if ends {
                    (
                        last.start_byte(),
                        format!(
                            "{stmt}
{indent}"
                        ),
                        "end",
                    )
                } else {
                    (
                        last.end_byte(),
                        format!(
                            "
{indent}{stmt}"
                        ),
                        "end",
                    )
                },
            ];
            for (at, ins, place) in places {
                out.push(Edit {
                    op: Op::Insert,
                    start: at,
                    end: at,
                    text: ins,
                    what: format!("`{stmt}` at the {place} of the block at line {}", line(b)),
                    line: line(b),
                });
                made += 1;
                if made >= MAX_INSERTS {
                    return;
                }
            }
        }
    }
}

fn identifiers(n: Node, text: &str, out: &mut BTreeSet<String>) {
    if n.kind() == "identifier" {
        out.insert(txt(n, text).to_string());
        return;
    }
    if n.kind() == "call" || n.kind() == "attribute" {
        return;
    }
    let mut c = n.walk();
    for ch in n.named_children(&mut c) {
        identifiers(ch, text, out);
    }
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

    fn take(p: &Path, focus: &Focus, n: usize) -> Vec<Mutant> {
        candidates(p, focus, None).take(n).collect()
    }

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
        let c = take(d.path(), &focus_on(&["low"]), 50);
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
        assert_eq!(c, take(d.path(), &focus_on(&["low"]), 50));
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
        let c = take(d.path(), &focus, 10);
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
        let c = take(d.path(), &focus_on(&["above"]), 100);
        assert_eq!(c[0].description, "comparison swap: >= -> >");
        assert!(c.iter().any(|m| m.description.starts_with("off-by-one")));
        assert!(c.iter().all(|m| !m.new_text.is_empty()));
    }

    fn has(c: &[Mutant], desc: &str, needle: &str) -> bool {
        c.iter()
            .any(|m| m.description == desc && m.new_text.contains(needle))
    }

    /// The operators the issue names, each on a bug of its own kind.
    #[test]
    fn operators_match_their_names() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("m.py"),
            "def pascal(r):\n    rows = []\n    for i in range(0, r):\n        rows.append(xs[i])\n    return rows\n\n\
             def clamp(lo, x, hi):\n    return max(lo, min(x, hi))\n\n\
             def call(lo, x, hi):\n    return clamp(lo, hi, x)\n\n\
             def sign(x):\n    if x > 0:\n        return -1\n    else:\n        return 1\n\n\
             def pick(x):\n    return 'a' if x else 'b'\n\n\
             def bfs(start, edges):\n    seen = {start}\n    queue = [start]\n    seen.add(start)\n    while queue:\n        node = queue.pop()\n        for n in edges[node]:\n            if n not in seen:\n                queue.append(n)\n    return seen\n",
        )
        .unwrap();
        let c = take(d.path(), &focus_on(&[]), 5000);
        assert!(has(&c, "off-by-one: r -> r + 1", "range(0, r + 1)"));
        assert!(has(&c, "off-by-one: i -> i - 1", "xs[i - 1]"));
        assert!(has(
            &c,
            "swapped arguments: (hi, x) swapped",
            "clamp(lo, x, hi)"
        ));
        assert!(has(
            &c,
            "swapped arguments: (lo, hi) swapped",
            "clamp(hi, lo, x)"
        ));
        let branches = "swapped branches: `return -1` and `return 1` swapped";
        assert!(has(
            &c,
            branches,
            "    if x > 0:\n        return 1\n    else:\n        return -1\n"
        ));
        assert!(has(
            &c,
            "swapped branches: `'a'` and `'b'` swapped",
            "'b' if x else 'a'"
        ));
        let insert = "inserted statement: `seen.add(n)` at the start of the block at line 30";
        assert!(
            has(
                &c,
                insert,
                "            if n not in seen:\n                seen.add(n)\n                queue.append(n)\n"
            ),
            "{:?}",
            c.iter()
                .filter(|m| m.description.starts_with("inserted"))
                .map(|m| &m.description)
                .collect::<Vec<_>>()
        );
        assert!(c.iter().all(|m| m.size > 0));
    }

    /// With coverage, the most suspicious line's mutants come first,
    /// whatever the heuristics say.
    #[test]
    fn suspicious_lines_rank_first() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("m.py"),
            "def a(x):\n    return x > 1\n\ndef b(xs, i):\n    return xs[i] + 1\n",
        )
        .unwrap();
        let report = r#"{"tests":{"t.py::f":{"lines":{"m.py":[4,5]}},"t.py::p":{"lines":{"m.py":[1,2,4]}}}}"#;
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let s = Suspicion::ochiai(report, &ids(&["t.py::f"]), &ids(&["t.py::p"])).unwrap();
        let c: Vec<Mutant> = candidates(d.path(), &focus_on(&["a"]), Some(&s))
            .take(5)
            .collect();
        assert!(c.iter().all(|m| m.line == 5 && m.score == 1.0), "{c:?}");
        assert_eq!(c[0].description, "arithmetic swap: + -> -");
        // Lazily made: asking for more never changes the first ones.
        let more: Vec<Mutant> = candidates(d.path(), &focus_on(&["a"]), Some(&s))
            .take(50)
            .collect();
        assert_eq!(&more[..5], &c[..]);
    }

    #[test]
    fn a_negated_condition_loses_its_not() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("m.py"),
            "def primes(n, is_prime):\n    for p in range(n):\n        if not is_prime[p]:\n            yield p\n",
        )
        .unwrap();
        let c = take(d.path(), &focus_on(&[]), 500);
        assert!(
            has(
                &c,
                "negated condition: not is_prime[p] -> is_prime[p]",
                "        if is_prime[p]:\n"
            ),
            "{:?}",
            c.iter()
                .filter(|m| m.description.starts_with("negated"))
                .collect::<Vec<_>>()
        );
    }

    /// The bench's misses of the first run: an argument of `min` one short,
    /// `-=` for `+=`, `+` for `*`, and a missing `out.append(item)`.
    #[test]
    fn operators_for_accumulators_and_collections() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("m.py"),
            "def lev(prev, cur, j, cost):\n    return min(prev[j], cur[j - 1] + 1, prev[j - 1] + cost)\n\n\
             def total(items):\n    length = 0\n    for item in items:\n        length -= item\n    return length\n\n\
             def square(x):\n    return x + x\n\n\
             def dedupe(items, key):\n    seen = set()\n    out = []\n    for item in items:\n        k = key(item)\n        if k not in seen:\n            seen.add(k)\n    return out\n",
        )
        .unwrap();
        let c = take(d.path(), &focus_on(&[]), 5000);
        assert!(has(
            &c,
            "off-by-one: prev[j] -> prev[j] + 1",
            "min(prev[j] + 1, cur"
        ));
        assert!(has(&c, "arithmetic swap: -= -> +=", "length += item"));
        assert!(has(&c, "arithmetic swap: + -> *", "return x * x"));
        assert!(
            has(
                &c,
                "inserted statement: `out.append(item)` at the end of the block at line 19",
                "            seen.add(k)\n            out.append(item)\n"
            ),
            "{:?}",
            c.iter()
                .filter(|m| m.description.contains("append"))
                .map(|m| &m.description)
                .collect::<Vec<_>>()
        );
    }
}
