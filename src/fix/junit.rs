//! JUnit XML (pytest `--junitxml`, jest-junit, nextest) to test results.
//!
//! Only the few elements the report needs are read: `<testcase>` with its
//! `classname`/`name`/`file` attributes and a `<failure>`/`<error>` child.
//! A full XML parser would buy nothing here.

use super::failures::{Failure, TestReport};

/// Parse a JUnit report; `None` when it holds no test case at all.
pub fn parse(xml: &str) -> Option<TestReport> {
    let mut report = TestReport::default();
    let mut rest = xml;
    while let Some(start) = rest.find("<testcase") {
        rest = &rest[start + "<testcase".len()..];
        let Some(tag_end) = rest.find('>') else { break };
        let tag = &rest[..tag_end];
        let self_closing = tag.ends_with('/');
        let body = if self_closing {
            ""
        } else {
            let end = rest.find("</testcase>").unwrap_or(rest.len());
            &rest[tag_end + 1..end]
        };
        rest = &rest[tag_end + 1..];
        let id = test_id(tag);
        match failure_of(body) {
            Some(details) => {
                let mut f = Failure::new(id, details.0);
                f.output = details.1;
                report.failed.push(f);
            }
            None if body.contains("<skipped") => report.skipped.push(id),
            None => report.passed.push(id),
        }
    }
    (!report.failed.is_empty() || !report.passed.is_empty() || !report.skipped.is_empty())
        .then_some(report)
}

/// pytest ids look like `tests/test_x.py::test_name`: rebuild that from
/// `file` or the dotted `classname` when possible.
fn test_id(tag: &str) -> String {
    let name = attr(tag, "name").unwrap_or_default();
    let class = attr(tag, "classname").unwrap_or_default();
    if let Some(file) = attr(tag, "file") {
        return format!("{file}::{name}");
    }
    if class.is_empty() {
        return name;
    }
    // `tests.test_stock` -> `tests/test_stock.py`, `tests.test_x.TestCls` keeps the class.
    let parts: Vec<&str> = class.split('.').collect();
    let split = parts
        .iter()
        .position(|p| p.starts_with(char::is_uppercase))
        .unwrap_or(parts.len());
    let (module, classes) = parts.split_at(split);
    let mut id = format!("{}.py", module.join("/"));
    for c in classes {
        id.push_str("::");
        id.push_str(c);
    }
    format!("{id}::{name}")
}

/// The message and the element's text of the first `<failure>`/`<error>`.
fn failure_of(body: &str) -> Option<(String, String)> {
    let start = ["<failure", "<error"]
        .iter()
        .filter_map(|t| body.find(t))
        .min()?;
    let el = &body[start..];
    let tag_end = el.find('>')?;
    let tag = &el[..tag_end];
    let message = attr(tag, "message").unwrap_or_default();
    let text = if tag.ends_with('/') {
        String::new()
    } else {
        let inner = &el[tag_end + 1..];
        let end = inner.find("</").unwrap_or(inner.len());
        unescape(
            inner[..end]
                .trim_start_matches("<![CDATA[")
                .trim_end_matches("]]>"),
        )
    };
    let message = if message.is_empty() {
        text.lines().last().unwrap_or_default().to_string()
    } else {
        message
    };
    Some((message, text))
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let mut rest = tag;
    loop {
        let at = rest.find(name)?;
        let before = rest[..at].chars().last();
        let after = &rest[at + name.len()..];
        rest = after;
        if !before.is_some_and(char::is_whitespace) {
            continue;
        }
        let Some(after) = after.trim_start().strip_prefix('=') else {
            continue;
        };
        let after = after.trim_start();
        let quote = after.chars().next()?;
        if quote != '"' && quote != '\'' {
            continue;
        }
        let value = &after[1..];
        let end = value.find(quote)?;
        return Some(unescape(&value[..end]));
    }
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#10;", "\n")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PYTEST: &str = r#"<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" failures="1" skipped="0" tests="3"><testcase classname="tests.test_stock" name="test_ok" time="0.001" /><testcase classname="tests.test_stock" name="test_at_level" time="0.001"><failure message="assert False&#10; +  where False = needs()">def test_at_level():
&gt;       assert inv.needs_reorder(&quot;fig&quot;)
E       assert False

tests/test_stock.py:40: AssertionError</failure></testcase><testcase classname="tests.test_stock" name="test_skip"><skipped message="no"/></testcase></testsuite></testsuites>"#;

    #[test]
    fn reads_pytest_reports() {
        let r = parse(PYTEST).unwrap();
        assert_eq!(r.passed, vec!["tests/test_stock.py::test_ok"]);
        assert_eq!(r.failed.len(), 1);
        let f = &r.failed[0];
        assert_eq!(f.id, "tests/test_stock.py::test_at_level");
        assert!(f.message.starts_with("assert False\n"), "{}", f.message);
        assert!(f.output.contains("assert inv.needs_reorder(\"fig\")"));
    }

    #[test]
    fn class_names_and_empty_reports() {
        assert_eq!(
            test_id(r#" classname="pkg.test_a.TestThing" name="test_x""#),
            "pkg/test_a.py::TestThing::test_x"
        );
        assert!(parse("<testsuites></testsuites>").is_none());
        assert!(parse("not xml at all").is_none());
    }
}
