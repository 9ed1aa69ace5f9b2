//! JUnit XML (pytest `--junitxml`, jest-junit, nextest) to test results,
//! read with quick-xml: failure text may hold `</`, CDATA and entities.
//!
//! pytest runs with `junit_family=xunit1`, whose `file` attribute gives each
//! case's real path, so node ids come back as pytest wrote them: doctests
//! in `.rst`/`.md` files, parametrised ids with brackets and spaces.

use quick_xml::Reader;
use quick_xml::escape::resolve_xml_entity;
use quick_xml::events::{BytesStart, Event};

use super::failures::{Failure, TestReport};

#[derive(Default)]
struct Case {
    id: String,
    /// `Some` once a `<failure>`/`<error>` was seen: its message attribute.
    failure: Option<String>,
    text: String,
    skipped: bool,
    /// Inside the first `<failure>`/`<error>` (its text is the output).
    in_failure: bool,
}

/// Parse a JUnit report; `None` when it holds no test case at all.
pub fn parse(xml: &str) -> Option<TestReport> {
    let mut report = TestReport::default();
    let mut reader = Reader::from_str(xml);
    let mut case: Option<Case> = None;
    // A report cut short (a killed run) keeps the cases before the cut.
    while let Ok(ev) = reader.read_event() {
        match ev {
            Event::Eof => break,
            Event::Start(e) if e.local_name().as_ref() == "testcase" => {
                if let Some(c) = case.replace(Case {
                    id: test_id(&e),
                    ..Case::default()
                }) {
                    finish(c, &mut report);
                }
            }
            Event::Empty(e) if e.local_name().as_ref() == "testcase" => {
                if let Some(c) = case.take() {
                    finish(c, &mut report);
                }
                report.passed.push(test_id(&e));
            }
            Event::Start(ref e) | Event::Empty(ref e) => {
                let Some(c) = case.as_mut() else { continue };
                let open = matches!(ev, Event::Start(_));
                match e.local_name().as_ref() {
                    "failure" | "error" if c.failure.is_none() => {
                        c.failure = Some(attr(e, "message").unwrap_or_default());
                        c.in_failure = open;
                    }
                    "skipped" => c.skipped = true,
                    _ => {}
                }
            }
            Event::End(e) => match e.local_name().as_ref() {
                "testcase" => {
                    if let Some(c) = case.take() {
                        finish(c, &mut report);
                    }
                }
                "failure" | "error" => {
                    if let Some(c) = case.as_mut() {
                        c.in_failure = false;
                    }
                }
                _ => {}
            },
            Event::Text(t) => {
                if let Some(c) = case.as_mut().filter(|c| c.in_failure) {
                    c.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(c) = case.as_mut().filter(|c| c.in_failure) {
                    c.text.push_str(&t.into_inner());
                }
            }
            Event::GeneralRef(r) => {
                if let Some(c) = case.as_mut().filter(|c| c.in_failure) {
                    if let Ok(Some(ch)) = r.resolve_char_ref() {
                        c.text.push(ch);
                    } else if let Some(s) = resolve_xml_entity(&r.xml10_content()) {
                        c.text.push_str(s);
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(c) = case.take() {
        finish(c, &mut report);
    }
    (!report.failed.is_empty() || !report.passed.is_empty() || !report.skipped.is_empty())
        .then_some(report)
}

fn finish(c: Case, report: &mut TestReport) {
    match c.failure {
        Some(message) => {
            let doctest =
                doctest_summary(&c.id, &message).or_else(|| doctest_summary(&c.id, &c.text));
            let message = if let Some(d) = doctest {
                d
            } else if message.is_empty() {
                c.text.lines().last().unwrap_or_default().to_string()
            } else {
                message
            };
            let mut f = Failure::new(c.id, message);
            f.output = c.text;
            report.failed.push(f);
        }
        None if c.skipped => report.skipped.push(c.id),
        None => report.passed.push(c.id),
    }
}

/// pytest's doctest failure (`003 >>> add(1, 2)`, `Expected:`, `Got:`,
/// `path:3: DocTestFailure`) as one line that names the docstring and says
/// what was expected and what came: `doctest calc.add, line 3: add(1, 2)
/// expected 4, got 3`.
fn doctest_summary(id: &str, text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .rposition(|l| l.trim_end().ends_with(": DocTestFailure"))?;
    let line = lines[at]
        .trim_end()
        .strip_suffix(": DocTestFailure")?
        .rsplit(':')
        .next()?
        .to_string();
    let exp = lines.iter().position(|l| l.trim_end() == "Expected:")?;
    let got = lines.iter().position(|l| l.trim_end() == "Got:")?;
    let example = lines[..exp]
        .iter()
        .rev()
        .find_map(|l| l.split_once(">>> ").map(|(_, e)| e.trim()))?;
    let block = |from: usize, to: usize| {
        lines[from..to]
            .iter()
            .map(|l| l.trim())
            .take_while(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let expected = block(exp + 1, got);
    let came = block(got + 1, at);
    let name = id.rsplit("::").next().unwrap_or(id);
    Some(format!(
        "doctest {name}, line {line}: {example} expected {expected}, got {came}"
    ))
}

fn attr(e: &BytesStart, name: &str) -> Option<String> {
    let a = e.try_get_attribute(name).ok()??;
    a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
        .ok()
        .map(|v| v.into_owned())
}

/// The pytest node id of a case: `file` (xunit1) plus the classes of
/// `classname` below the module and the name; without `file`, rebuilt from
/// the dotted `classname` (`tests.test_x.TestCls` → `tests/test_x.py::TestCls`).
fn test_id(e: &BytesStart) -> String {
    let name = attr(e, "name").unwrap_or_default();
    let class = attr(e, "classname").unwrap_or_default();
    if let Some(file) = attr(e, "file").filter(|f| !f.is_empty()) {
        // `pkg/test_a.py` is the module `pkg.test_a`; a doctest file
        // `docs/index.rst` is `docs.index.rst`.
        let module = file.strip_suffix(".py").unwrap_or(&file).replace('/', ".");
        let mut id = file.clone();
        if let Some(classes) = class
            .strip_prefix(&module)
            .and_then(|r| r.strip_prefix('.'))
        {
            for c in classes.split('.') {
                id.push_str("::");
                id.push_str(c);
            }
        }
        return format!("{id}::{name}");
    }
    if class.is_empty() {
        return name;
    }
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
        let r = parse(
            r#"<testsuite><testcase classname="pkg.test_a.TestThing" name="test_x"/></testsuite>"#,
        )
        .unwrap();
        assert_eq!(r.passed, vec!["pkg/test_a.py::TestThing::test_x"]);
        assert!(parse("<testsuites></testsuites>").is_none());
        assert!(parse("not xml at all").is_none());
    }

    /// pytest 8, `-o junit_family=xunit1`: a doctest in an `.rst` file, a
    /// module doctest, a parametrised id with brackets and spaces inside a
    /// class, and failure text holding `</` and CDATA-like text.
    #[test]
    fn every_pytest_node_id_comes_back_whole() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="docs.index.rst" name="index.rst" file="docs/index.rst" line="0" time="0.01"><failure message="/work/docs/index.rst:3: DocTestFailure">003 &gt;&gt;&gt; add(1, 2)
Expected:
    4
Got:
    3

/work/docs/index.rst:3: DocTestFailure</failure></testcase>
<testcase classname="pkg.mod" name="pkg.mod.helper" file="pkg/mod.py" line="10" time="0.01" />
<testcase classname="tests.test_x.TestCls" name="test_p[a b-1]" file="tests/test_x.py" line="5" time="0.01"><failure message="assert '&lt;/p&gt;' == 'x'">E   assert '&lt;/p&gt;' == 'x'
&lt;![CDATA[ not really ]]&gt; and &#38; more</failure></testcase>
<testcase classname="tests.test_x" name="test_s" file="tests/test_x.py" line="9"><skipped type="pytest.skip" message="no">skip</skipped></testcase>
</testsuite></testsuites>"#;
        let r = parse(xml).unwrap();
        let failed: Vec<&str> = r.failed.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(
            failed,
            vec![
                "docs/index.rst::index.rst",
                "tests/test_x.py::TestCls::test_p[a b-1]"
            ]
        );
        assert_eq!(r.passed, vec!["pkg/mod.py::pkg.mod.helper"]);
        assert_eq!(r.skipped, vec!["tests/test_x.py::test_s"]);
        assert!(
            r.failed[0]
                .output
                .contains(">>> add(1, 2)\nExpected:\n    4\nGot:\n    3")
        );
        assert_eq!(
            r.failed[0].message,
            "doctest index.rst, line 3: add(1, 2) expected 4, got 3"
        );
        let f = &r.failed[1];
        assert_eq!(f.message, "assert '</p>' == 'x'");
        assert!(
            f.output.contains("<![CDATA[ not really ]]> and & more"),
            "{}",
            f.output
        );
    }

    #[test]
    fn a_report_cut_short_keeps_the_cases_before_the_cut() {
        let r = parse(r#"<testsuite><testcase classname="t" name="a" file="t.py"/><testcase classname="t" name="b" file="t.py"><failure message="boom">tra"#).unwrap();
        assert_eq!(r.passed, vec!["t.py::a"]);
        assert_eq!(r.failed[0].id, "t.py::b");
    }
}
