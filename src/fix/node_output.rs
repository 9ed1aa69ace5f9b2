//! Node test runners' text output, read into a [`TestReport`] whose ids
//! carry each test's titles, joined by ` › ` as jest prints them:
//! - jest/vitest: `✓`/`✕` lines under indented `describe` headers, a
//!   `FAIL path` header per file, and `● a › b` failure blocks (all jest
//!   prints when it runs several files);
//! - mocha: `✔ name` and `1) name` under indented suites, then a numbered
//!   summary holding each failure's message;
//! - node:test's TAP: nested `# Subtest:` blocks, where a suite's own
//!   `not ok` only repeats its children's;
//! - tape's TAP: `ok N assertion` under a `# test title`.

use super::failures::{Failure, TestReport};

/// At most this many lines of a runner's message for one failure.
const MESSAGE_LINES: usize = 6;

pub(super) fn parse(output: &str) -> TestReport {
    let lines: Vec<&str> = output.lines().collect();
    let mut p = Parser::default();
    let mut i = 0;
    while i < lines.len() {
        i = p.line(&lines, i);
    }
    p.report
}

#[derive(Default)]
struct Parser {
    report: TestReport,
    /// jest's current `FAIL path` / `PASS path`.
    file: Option<String>,
    /// jest/mocha `describe` headers: (indent, title).
    suites: Vec<(usize, String)>,
    /// node:test's open `# Subtest:` blocks: (indent, title, has children).
    subtests: Vec<(usize, String, bool)>,
    /// tape's current `# title`.
    tape_title: Option<String>,
    /// mocha's failure numbers already seen, and the failure each names.
    mocha: Vec<(String, usize)>,
}

impl Parser {
    /// Reads the line at `i` (and any block it opens); returns the next
    /// line to read.
    fn line(&mut self, lines: &[&str], i: usize) -> usize {
        let l = lines[i];
        let t = l.trim();
        let indent = l.len() - l.trim_start().len();
        if t.is_empty() {
            self.suites.clear();
            return i + 1;
        }
        if indent <= 1
            && let Some(path) = t.strip_prefix("FAIL ").or_else(|| t.strip_prefix("PASS "))
        {
            self.file = Some(path.trim().to_string());
            self.suites.clear();
            return i + 1;
        }
        if let Some(title) = t.strip_prefix("# Subtest: ") {
            self.subtests.retain(|s| s.0 < indent);
            for s in &mut self.subtests {
                s.2 = true;
            }
            self.subtests
                .push((indent, title.trim().to_string(), false));
            return i + 1;
        }
        if let Some(c) = t.strip_prefix("# ") {
            // tape's test title; TAP's closing counts are not titles.
            let counts = [
                "tests ",
                "pass ",
                "fail ",
                "ok",
                "skip",
                "todo ",
                "suites ",
                "cancelled ",
                "duration_ms ",
            ];
            if indent == 0 && !counts.iter().any(|p| c.starts_with(p)) {
                self.tape_title = Some(c.trim().to_string());
            }
            return i + 1;
        }
        if let Some(rest) = t.strip_prefix("not ok ") {
            return self.tap_result(lines, i, indent, rest, false);
        }
        if let Some(rest) = t.strip_prefix("ok ") {
            return self.tap_result(lines, i, indent, rest, true);
        }
        if let Some(title) = t.strip_prefix("● ") {
            return self.jest_block(lines, i, title.trim());
        }
        if let Some(name) = t.strip_prefix("✕ ").or_else(|| t.strip_prefix("× ")) {
            let id = self.titled(indent, strip_time(name));
            self.report.failed.push(Failure::new(id, ""));
            return i + 1;
        }
        if let Some(name) = ["✓ ", "√ ", "✔ "].iter().find_map(|m| t.strip_prefix(m)) {
            let id = self.titled(indent, strip_time(name));
            self.report.passed.push(id);
            return i + 1;
        }
        if let Some((n, name)) = t.split_once(") ")
            && !n.is_empty()
            && n.chars().all(|c| c.is_ascii_digit())
            && !name.trim().is_empty()
        {
            return self.mocha_failure(lines, i, indent, n, name.trim());
        }
        if indent >= 2 {
            // A describe header: what follows, more indented, is inside it.
            self.suites.retain(|s| s.0 < indent);
            self.suites.push((indent, t.to_string()));
        }
        i + 1
    }

    /// `name` under the file and the describe headers that enclose `indent`.
    fn titled(&self, indent: usize, name: String) -> String {
        let mut parts: Vec<&str> = self.file.iter().map(String::as_str).collect();
        parts.extend(
            self.suites
                .iter()
                .filter(|s| s.0 < indent)
                .map(|s| s.1.as_str()),
        );
        parts.push(&name);
        parts.join(" › ")
    }

    /// `ok N - name` / `not ok N name`, and the YAML block after a failure.
    fn tap_result(
        &mut self,
        lines: &[&str],
        i: usize,
        indent: usize,
        rest: &str,
        ok: bool,
    ) -> usize {
        let (yaml, next) = yaml_block(lines, i + 1, indent);
        // tape names assertions by number and message (`2 should be equal`),
        // so the number stays; a named result (`3 - subtracts`) drops it.
        let numbered = rest.trim();
        let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit()).trim();
        let (rest, directive) = match rest.split_once(" # ") {
            Some((r, d)) => (r, d.trim().to_ascii_uppercase()),
            None => (rest, String::new()),
        };
        if directive.starts_with("SKIP") || directive.starts_with("TODO") {
            return next;
        }
        let named = rest.strip_prefix("- ");
        let id = if !self.subtests.is_empty() {
            // node:test: this result closes the subtest opened at its indent.
            self.subtests.retain(|s| s.0 <= indent);
            let own = self.subtests.pop_if(|s| s.0 == indent);
            if own.is_some_and(|s| s.2) {
                return next; // a suite: its children carry the verdicts
            }
            let mut parts: Vec<&str> = self.subtests.iter().map(|s| s.1.as_str()).collect();
            let name = named.unwrap_or(rest).trim();
            parts.push(name);
            parts.join(" › ")
        } else {
            match (named, &self.tape_title) {
                (Some(n), _) => n.trim().to_string(),
                (None, Some(title)) => format!("{title} › {}", strip_directive(numbered)),
                (None, None) => strip_directive(numbered).to_string(),
            }
        };
        if ok {
            self.report.passed.push(id);
        } else {
            let mut f = Failure::new(id, tap_message(&yaml));
            f.output = yaml.join("\n");
            self.report.failed.push(f);
        }
        next
    }

    /// jest's `● a › b` block: the message up to the code frame.
    fn jest_block(&mut self, lines: &[&str], i: usize, title: &str) -> usize {
        let mut end = i + 1;
        while end < lines.len() {
            let l = lines[end];
            let t = l.trim();
            if t.starts_with("● ") || (!t.is_empty() && !l.starts_with(' ')) {
                break;
            }
            end += 1;
        }
        if title == "Console" {
            return end;
        }
        let block = &lines[i + 1..end];
        let message: Vec<&str> = block
            .iter()
            .map(|l| l.trim())
            .take_while(|t| !is_code_frame(t) && !t.starts_with("at "))
            .filter(|t| !t.is_empty())
            .take(MESSAGE_LINES)
            .collect();
        let id = match &self.file {
            Some(f) => format!("{f} › {title}"),
            None => title.to_string(),
        };
        let output = block.join("\n");
        match self.report.failed.iter_mut().find(|f| f.id == id) {
            Some(f) => {
                f.message = message.join("\n");
                f.output = output;
            }
            None => {
                let mut f = Failure::new(id, message.join("\n"));
                f.output = output;
                self.report.failed.push(f);
            }
        }
        end
    }

    /// mocha numbers each failure where it happens (`1) subtracts`), then
    /// again in its summary, under its suites' titles and with the error.
    fn mocha_failure(
        &mut self,
        lines: &[&str],
        i: usize,
        indent: usize,
        n: &str,
        name: &str,
    ) -> usize {
        let Some(&(_, at)) = self.mocha.iter().find(|m| m.0 == n) else {
            let id = self.titled(indent, name.to_string());
            self.mocha.push((n.to_string(), self.report.failed.len()));
            self.report.failed.push(Failure::new(id, ""));
            return i + 1;
        };
        // The summary: title lines, the last ending in `:`, then the error
        // until its diff or stack.
        let mut j = i + 1;
        if !name.ends_with(':') {
            while j < lines.len() && !lines[j].trim_end().ends_with(':') {
                j += 1;
            }
            j += 1;
        }
        let start = j;
        let mut message = Vec::new();
        while j < lines.len() {
            let t = lines[j].trim();
            if t.starts_with("at ") || t == "+ expected - actual" || is_mocha_number(t) {
                break;
            }
            if !t.is_empty() && message.len() < MESSAGE_LINES {
                message.push(t);
            }
            j += 1;
        }
        let mut end = j;
        while end < lines.len() && !is_mocha_number(lines[end].trim()) {
            end += 1;
        }
        if let Some(f) = self.report.failed.get_mut(at) {
            f.message = message.join(" ");
            f.output = lines[start.min(end)..end].join("\n");
        }
        end
    }
}

/// A TAP result's YAML diagnostics (`---` … `...`), more indented than
/// the result: its lines, and the line after it.
fn yaml_block<'a>(lines: &[&'a str], from: usize, indent: usize) -> (Vec<&'a str>, usize) {
    let opens = lines
        .get(from)
        .is_some_and(|l| l.trim() == "---" && l.len() - l.trim_start().len() > indent);
    if !opens {
        return (Vec::new(), from);
    }
    let mut j = from + 1;
    let mut body = Vec::new();
    while j < lines.len() {
        if lines[j].trim() == "..." {
            return (body, j + 1);
        }
        body.push(lines[j]);
        j += 1;
    }
    (body, j)
}

/// node:test's `error:` field, or tape's operator, expected and actual.
fn tap_message(yaml: &[&str]) -> String {
    let field = |key: &str| {
        yaml.iter()
            .position(|l| l.trim_start().starts_with(key))
            .map(|k| (k, yaml[k].trim_start()[key.len()..].trim()))
    };
    if let Some((k, v)) = field("error:") {
        if v == "|-" || v == "|" || v.is_empty() {
            let base = yaml[k].len() - yaml[k].trim_start().len();
            let text: Vec<&str> = yaml[k + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > base)
                .map(|l| l.trim())
                .filter(|t| !t.is_empty())
                .take(MESSAGE_LINES)
                .collect();
            return text.join(" ");
        }
        return v.trim_matches('\'').to_string();
    }
    ["operator:", "expected:", "actual:"]
        .iter()
        .filter_map(|k| field(k).map(|(_, v)| format!("{} {v}", &k[..k.len() - 1])))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `2 later # TODO` → `2 later`.
fn strip_directive(s: &str) -> &str {
    s.split_once(" # ").map_or(s, |(a, _)| a).trim()
}

/// `name (3 ms)` → `name`.
fn strip_time(s: &str) -> String {
    s.rsplit_once(" (")
        .filter(|(_, t)| t.ends_with("ms)") || t.ends_with(" s)"))
        .map_or(s, |(a, _)| a)
        .trim()
        .to_string()
}

/// A line of jest's code frame: `> 5 | code` or `3 | code`.
fn is_code_frame(t: &str) -> bool {
    let t = t.strip_prefix('>').unwrap_or(t).trim_start();
    t.split_once(" |")
        .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        || t.starts_with('|')
}

fn is_mocha_number(t: &str) -> bool {
    t.split_once(") ")
        .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(r: &TestReport) -> Vec<&str> {
        r.failed.iter().map(|f| f.id.as_str()).collect()
    }

    // The outputs below are real runs (jest 30, mocha 11, tape 5, node 20's
    // node:test) of one spec: `math` › `adds` passes, `math` › `nested` ›
    // `subtracts` fails, `other` › `works` passes.

    #[test]
    fn jest_verbose_ids_carry_file_and_describe_titles() {
        let out = "FAIL j/t.test.js\n  math\n    ✓ adds (1 ms)\n    nested\n      ✕ subtracts (3 ms)\n  other\n    ✓ works\n\n  ● math › nested › subtracts\n\n    assert.strictEqual(received, expected)\n\n    Expected value to strictly be equal to:\n      2\n    Received:\n      1\n\n      3 |   it('adds', () => assert.strictEqual(1+1, 2));\n    > 5 |     it('subtracts', () => assert.strictEqual(2-1, 2));\n        |                                  ^\n\n      at Object.strictEqual (t.test.js:5:34)\n\nTest Suites: 1 failed, 1 total\nTests:       1 failed, 2 passed, 3 total\n";
        let r = parse(out);
        assert_eq!(
            r.passed,
            ["j/t.test.js › math › adds", "j/t.test.js › other › works"]
        );
        assert_eq!(ids(&r), ["j/t.test.js › math › nested › subtracts"]);
        assert_eq!(
            r.failed[0].message,
            "assert.strictEqual(received, expected)\nExpected value to strictly be equal to:\n2\nReceived:\n1"
        );
        assert!(r.failed[0].output.contains("t.test.js:5:34"));
    }

    #[test]
    fn jest_over_several_files_names_each_failure_by_its_file() {
        let out = "FAIL j/t.test.js\n  ● math › nested › subtracts\n\n    boom\n\n      at Object.strictEqual (t.test.js:5:34)\n\nFAIL j/u.test.js\n  ● math › nested › subtracts\n\n    boom\n\n  ● Console\n\n    console.log\n      hi\n\nTest Suites: 2 failed, 2 total\n";
        let r = parse(out);
        assert_eq!(
            ids(&r),
            [
                "j/t.test.js › math › nested › subtracts",
                "j/u.test.js › math › nested › subtracts"
            ]
        );
        assert_eq!(r.failed[1].message, "boom");
    }

    #[test]
    fn mocha_ids_carry_suite_titles_and_the_summary_gives_the_message() {
        let out = "\n\n  math\n    ✔ adds\n    nested\n      1) subtracts\n\n  other\n    ✔ works\n\n\n  2 passing (7ms)\n  1 failing\n\n  1) math\n       nested\n         subtracts:\n\n      AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:\n\n1 !== 2\n\n      + expected - actual\n\n      -1\n      +2\n      \n      at Context.<anonymous> (m/t.spec.js:5:34)\n      at process.processImmediate (node:internal/timers:483:21)\n\n\n\n";
        let r = parse(out);
        assert_eq!(r.passed, ["math › adds", "other › works"]);
        assert_eq!(ids(&r), ["math › nested › subtracts"]);
        assert_eq!(
            r.failed[0].message,
            "AssertionError [ERR_ASSERTION]: Expected values to be strictly equal: 1 !== 2"
        );
    }

    #[test]
    fn node_test_subtests_are_titled_and_suites_do_not_count() {
        let out = "TAP version 13\n# Subtest: math\n    # Subtest: adds\n    ok 1 - adds\n      ---\n      duration_ms: 1.33\n      ...\n    # Subtest: nested\n        # Subtest: subtracts\n        not ok 1 - subtracts\n          ---\n          duration_ms: 2.09\n          failureType: 'testCodeFailure'\n          error: |-\n            Expected values to be strictly equal:\n            \n            1 !== 2\n            \n          code: 'ERR_ASSERTION'\n          ...\n        1..1\n    not ok 2 - nested\n      ---\n      type: 'suite'\n      error: '1 subtest failed'\n      ...\n    1..2\nnot ok 1 - math\n  ---\n  type: 'suite'\n  ...\n# Subtest: top\nok 2 - top\n  ---\n  duration_ms: 0.3\n  ...\n1..2\n# tests 3\n# suites 2\n# pass 2\n# fail 1\n";
        let r = parse(out);
        assert_eq!(r.passed, ["math › adds", "top"]);
        assert_eq!(ids(&r), ["math › nested › subtracts"]);
        assert_eq!(
            r.failed[0].message,
            "Expected values to be strictly equal: 1 !== 2"
        );
    }

    #[test]
    fn tape_assertions_are_named_under_their_test() {
        let out = "TAP version 13\n# adds numbers\nok 1 should be strictly equal\nnot ok 2 three\n  ---\n    operator: equal\n    expected: 4\n    actual:   3\n    at: Test.<anonymous> (/tmp/js3/tp/t.js:2:50)\n  ...\n# other\nok 3 should be truthy\nnot ok 4 later # TODO\n\n1..3\n# tests 3\n# pass  2\n# fail  1\n";
        let r = parse(out);
        assert_eq!(
            r.passed,
            [
                "adds numbers › 1 should be strictly equal",
                "other › 3 should be truthy"
            ]
        );
        assert_eq!(ids(&r), ["adds numbers › 2 three"]);
        assert_eq!(r.failed[0].message, "operator equal, expected 4, actual 3");
    }
}
