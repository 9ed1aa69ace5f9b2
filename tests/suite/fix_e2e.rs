//! `selfrepair fix` end to end: the example repositories as real git repos,
//! the real process sandbox running pytest and cargo, the mutation
//! repairer, and a real HTTP client against the scripted model server.

use super::fix_common;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fix_common::*;
use selfrepair::fix::workspace::{self};
use selfrepair::fix::{EditFormat, FixError, FixEvent, FixOptions, Outcome, Repairer};
use selfrepair_testkit::{Reply, TestServer};
use tokio_util::sync::CancellationToken;

const STOCK: &str = "inventory/stock.py";

async fn run_mutate(
    dir: &std::path::Path,
) -> (Result<selfrepair::fix::Summary, FixError>, Vec<FixEvent>) {
    run(
        FixOptions::new(dir),
        Repairer::Mutate,
        CancellationToken::new(),
    )
    .await
}

fn model(server: &TestServer) -> Repairer {
    Repairer::Model {
        client: client(server),
        mutate_first: false,
    }
}

/// Make the user's tree dirty three ways: unstaged, staged, untracked.
fn dirty(dir: &std::path::Path) {
    let stock = dir.join(STOCK);
    let text = std::fs::read_to_string(&stock).unwrap();
    std::fs::write(
        &stock,
        text.replace(
            "\"\"\"A stock ledger",
            "\"\"\"(work in progress) A stock ledger",
        ),
    )
    .unwrap();
    std::fs::write(dir.join("NOTES.md"), "my notes, not committed\n").unwrap();
    let readme = dir.join("README.md");
    std::fs::write(&readme, "staged edit\n").unwrap();
    let repo = git2::Repository::open(dir).unwrap();
    let mut idx = repo.index().unwrap();
    idx.add_path(std::path::Path::new("README.md")).unwrap();
    idx.write().unwrap();
}

#[test]
fn cli_mutate_fixes_python_and_leaves_the_dirty_tree_byte_identical() {
    let (_t, dir) = example_repo("py-inventory");
    dirty(&dir);
    let before = snapshot(&dir);
    let branches_before = branches(&dir);
    let started = Instant::now();
    let out = bin().arg("fix").arg(&dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("tests:   pytest   (detected from pyproject.toml"),
        "{stderr}"
    );
    assert!(stderr.contains("repair:  mutate"), "{stderr}");
    assert!(
        stdout.starts_with("fixed: mutant inventory/stock.py:29 comparison swap: < -> <="),
        "{stdout}"
    );
    assert!(stdout.contains("+        return self.count(sku) <= self.reorder_level"));
    eprintln!("python mutate fix took {:?}", started.elapsed());

    assert_eq!(
        snapshot(&dir),
        before,
        "the user's tree, index or HEAD changed"
    );
    let after = branches(&dir);
    assert_eq!(after.len(), branches_before.len() + 1);
    let session_branch = after.iter().find(|b| b.starts_with("selfrepair/")).unwrap();
    // The work tree is gone, its commits stay.
    let repo = git2::Repository::open(&dir).unwrap();
    assert!(repo.worktrees().unwrap().is_empty());

    // log / diff read the same session back.
    let log = bin().arg("log").arg(&dir).output().unwrap();
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(
        log.contains(session_branch.as_str()) && log.contains("fixed: mutant"),
        "{log}"
    );
    let id = session_branch.trim_start_matches("selfrepair/");
    let attempts = bin()
        .args(["log", "--session", id])
        .arg(&dir)
        .output()
        .unwrap();
    let attempts = String::from_utf8_lossy(&attempts.stdout);
    // Coverage puts the buggy line first: the fix is attempt 1, and the
    // few mutants of that line tried after it are runners-up at most.
    let tried = attempts.lines().filter(|l| l.contains("attempt ")).count();
    assert!((1..=4).contains(&tried), "{attempts}");
    assert!(
        attempts
            .lines()
            .any(|l| l.starts_with("*   1 ") && l.contains("comparison swap: < -> <=")),
        "{attempts}"
    );
    let diff = bin().arg("diff").arg(&dir).output().unwrap();
    let diff = String::from_utf8_lossy(&diff.stdout);
    assert!(
        diff.contains("+        return self.count(sku) <= self.reorder_level"),
        "{diff}"
    );
    // The base held the uncommitted edits, so the diff is only the fix.
    assert!(
        !diff.contains("work in progress") && !diff.contains("NOTES"),
        "{diff}"
    );
    assert_eq!(snapshot(&dir), before);
}

#[tokio::test]
async fn mutate_fixes_rust_with_events_in_order() {
    let (_t, dir) = example_repo("rust-stats");
    let before = snapshot(&dir);
    let (r, events) = run_mutate(&dir).await;
    let s = r.unwrap();
    assert_eq!(s.outcome, Outcome::Fixed, "{}", s.reason);
    assert_eq!(s.test_command, "cargo test");
    assert_eq!(s.initial_failures, vec!["count_above_is_strict"]);
    assert_eq!(s.attempts, 1);
    assert_eq!(s.tokens, 0);
    assert_eq!(s.diff.files.len(), 1);
    let f = &s.diff.files[0];
    assert_eq!(f.path, "src/lib.rs");
    assert!(f.new.as_deref().unwrap().contains("|&&x| x > threshold"));
    assert!(f.old.as_deref().unwrap().contains("|&&x| x >= threshold"));
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            FixEvent::Plan { .. } => "plan",
            FixEvent::TestRunStarted { .. } => "start",
            FixEvent::TestRunFinished { .. } => "finish",
            FixEvent::Patch { .. } => "patch",
            FixEvent::Done(_) => "done",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "plan", "start", "finish", "patch", "start", "finish", "start", "finish", "done"
        ]
    );
    assert_eq!(snapshot(&dir), before);
}

fn explain_reply() -> Reply {
    Reply::text(
        "needs_reorder in inventory/stock.py compares with < but the docstring says at or below.",
    )
    .with_usage(900, 40)
}

const GOOD_PATCH: &str = "inventory/stock.py\n<<<<<<< SEARCH\n        return self.count(sku) < self.reorder_level\n=======\n        return self.count(sku) <= self.reorder_level\n>>>>>>> REPLACE\n";

#[tokio::test]
async fn model_fixes_python_after_a_patch_that_does_not_apply() {
    let (_t, dir) = example_repo("py-inventory");
    let server = TestServer::start().await.unwrap();
    server.enqueue(explain_reply());
    // First patch: wrong SEARCH text (does not apply).
    server.enqueue(Reply::text(
        "inventory/stock.py\n<<<<<<< SEARCH\n    def needs_reorder(self, sku):\n        return self.count(sku) < self.level\n=======\n        return True\n>>>>>>> REPLACE\n",
    ));
    server.enqueue(explain_reply());
    server.enqueue(Reply::text(format!("```\n{GOOD_PATCH}```\n")).with_usage(1000, 30));
    let mut opts = FixOptions::new(&dir);
    opts.max_attempts = 3;
    let (r, events) = run(opts, model(&server), CancellationToken::new()).await;
    let s = r.unwrap();
    assert_eq!(s.outcome, Outcome::Fixed, "{}", s.reason);
    assert_eq!(s.attempts, 2);
    assert_eq!(s.winning_attempt, Some(2));
    assert_eq!(s.tokens, 900 + 40 + 10 + 5 + 900 + 40 + 1000 + 30);
    assert!(s.cost_usd > 0.0);
    let rejected: Vec<&String> = events
        .iter()
        .filter_map(|e| match e {
            FixEvent::Rejected { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(rejected.len(), 1);
    assert!(
        rejected[0].contains("inventory/stock.py")
            && rejected[0].contains("return self.count(sku) < self.level"),
        "{}",
        rejected[0]
    );
    assert!(events.iter().any(
        |e| matches!(e, FixEvent::Explanation { text, .. } if text.contains("needs_reorder"))
    ));

    let reqs = server.requests();
    assert_eq!(reqs.len(), 4);
    let explain = reqs[0].last_user_message().unwrap();
    assert!(
        explain.contains("tests/test_stock.py::test_reorder_at_level"),
        "{explain}"
    );
    assert!(
        explain.contains("def needs_reorder(self, sku):"),
        "{explain}"
    );
    assert!(explain.contains("Repository map"), "{explain}");
    // The second patch prompt carries the apply error back.
    let retry = reqs[3].last_user_message().unwrap();
    assert!(
        retry.contains("was not applied") && retry.contains("inventory/stock.py"),
        "{retry}"
    );
    assert_eq!(
        s.diff.files[0].new.as_deref().unwrap(),
        std::fs::read_to_string(dir.join(STOCK))
            .unwrap()
            .replace("count(sku) < self", "count(sku) <= self")
    );
}

/// The whole-function format: the model rewrites `balances_before` (the
/// missing statement no mutant can add) and writes a test beside it, which
/// is left out; the patch prompt asks for whole functions.
/// `--prompts DIR` replaces the fix prompts: the model is asked with the
/// directory's text, and the plan records its version; a template with a
/// variable the fix loop does not fill stops the session before anything
/// is made, naming the file.
#[tokio::test]
async fn fix_prompts_come_from_a_directory_and_are_validated() {
    let (_t, dir) = example_repo("py-inventory");
    let prompts = tempfile::tempdir().unwrap();
    let fix = prompts.path().join("fix");
    std::fs::create_dir(&fix).unwrap();
    std::fs::write(
        fix.join("explain.txt"),
        "version: 4\n--- system ---\nBe terse.\n--- user ---\nCUSTOM-EXPLAIN {{command}}\n{{failures}}\n",
    )
    .unwrap();
    std::fs::write(
        fix.join("patch.txt"),
        "version: 4\n--- user ---\nCUSTOM-PATCH {{test_files_rule}} {{feedback}}\n",
    )
    .unwrap();
    std::fs::write(
        fix.join("patch-function.txt"),
        "version: 4\n--- user ---\nCUSTOM-FUNCTION {{feedback}}\n",
    )
    .unwrap();
    let server = TestServer::start().await.unwrap();
    server.enqueue(explain_reply());
    server.enqueue(Reply::text(format!("```\n{GOOD_PATCH}```\n")));
    let mut opts = FixOptions::new(&dir);
    opts.prompts = Some(prompts.path().to_path_buf());
    let (r, events) = run(opts, model(&server), CancellationToken::new()).await;
    let s = r.unwrap();
    assert_eq!(s.outcome, Outcome::Fixed, "{}", s.reason);
    let reqs = server.requests();
    let first = reqs[0].json().unwrap().to_string();
    assert!(
        first.contains("Be terse.") && first.contains("CUSTOM-EXPLAIN pytest"),
        "{first}"
    );
    let second = reqs[1].last_user_message().unwrap();
    assert!(
        second.starts_with("CUSTOM-PATCH Test files are read-only"),
        "{second}"
    );
    let Some(FixEvent::Plan {
        prompts: recorded, ..
    }) = events.first()
    else {
        panic!("no plan first: {events:?}");
    };
    assert!(recorded.iter().all(|p| p.version == 4), "{recorded:?}");

    std::fs::write(
        fix.join("patch.txt"),
        "version: 5\n--- user ---\nFix {{spec}}\n",
    )
    .unwrap();
    let before = branches(&dir);
    let mut opts = FixOptions::new(&dir);
    opts.prompts = Some(prompts.path().to_path_buf());
    let (r, _) = run(opts, model(&server), CancellationToken::new()).await;
    let e = r.expect_err("an unknown variable is an error");
    assert_eq!(e.reason_code(), "prompts");
    let msg = e.to_string();
    assert!(
        msg.contains("fix/patch.txt") && msg.contains("{{spec}}"),
        "{msg}"
    );
    assert_eq!(branches(&dir), before, "nothing was made");
}

/// A model that goes away after an attempt: the session ends with an
/// `error` summary that still names the session, its failures, attempts
/// and spend; the log keeps the attempt and the error; no branch is left.
#[tokio::test]
async fn a_model_error_after_attempts_keeps_the_log_and_names_the_session() {
    let (_t, dir) = example_repo("py-inventory");
    let server = TestServer::start().await.unwrap();
    server.enqueue(explain_reply());
    server.enqueue(Reply::text(
        "inventory/stock.py\n<<<<<<< SEARCH\n    no such text\n=======\n        return True\n>>>>>>> REPLACE\n",
    ));
    server.set_default(Reply::unauthorized());
    let mut opts = FixOptions::new(&dir);
    opts.max_attempts = 3;
    let (r, events) = run(opts, model(&server), CancellationToken::new()).await;
    let e = r.expect_err("the model went away");
    assert_eq!(e.reason_code(), "model");
    assert_eq!(
        e.to_string().matches("401").count(),
        1,
        "the cause once: {e}"
    );
    let Some(FixEvent::Done(done)) = events.last() else {
        panic!("no done event last: {events:?}");
    };
    assert_eq!(done.outcome, Outcome::Error);
    assert_eq!(done.reason_code.as_deref(), Some("model"));
    assert!(!done.session.is_empty());
    assert_eq!(done.attempts, 1);
    assert!(done.tokens > 0);
    assert_eq!(done.initial_failures.len(), 2, "{done:?}");
    let log = log_lines(&dir, &done.session);
    assert!(log.iter().any(|l| l["event"] == "rejected"), "{log:?}");
    let last = log.last().unwrap();
    assert_eq!(last["event"], "done");
    assert_eq!(last["outcome"], "error");
    assert_eq!(last["reason_code"], "model");
    let repo = git2::Repository::open(&dir).unwrap();
    assert!(
        repo.find_branch(&done.branch, git2::BranchType::Local)
            .is_err(),
        "a session that ended in an error leaves no branch"
    );
    let listed = selfrepair::fix::workspace::sessions(&dir).unwrap();
    let info = listed.iter().find(|s| s.id == done.session).unwrap();
    assert_eq!(
        info.outcome.as_deref(),
        Some("error"),
        "`selfrepair log` says so"
    );
}

#[tokio::test]
async fn model_fixes_a_missing_statement_with_a_whole_function() {
    let (_t, dir) = example_repo("py-ledger");
    let server = TestServer::start().await.unwrap();
    server.enqueue(Reply::text(
        "balances_before never adds the amount to the balance.",
    ));
    server.enqueue(Reply::text(
        "```python\ndef balances_before(opening, amounts):\n    \"\"\"Return the balance just before each amount is applied, in order.\"\"\"\n    balances = []\n    balance = opening\n    for amount in amounts:\n        balances.append(balance)\n        balance += amount\n    return balances\n\n\ndef test_it():\n    assert balances_before(1, [1]) == [1]\n```\n",
    ));
    let mut opts = FixOptions::new(&dir);
    opts.max_attempts = 1;
    opts.edit_format = Some(EditFormat::Function);
    let (r, _) = run(opts, model(&server), CancellationToken::new()).await;
    let s = r.unwrap();
    assert_eq!(s.outcome, Outcome::Fixed, "{}", s.reason);
    let new = s.diff.files[0].new.as_deref().unwrap();
    assert!(new.contains("        balance += amount\n"), "{new}");
    assert!(
        new.contains("def final_balance("),
        "the rest of the file stays: {new}"
    );
    assert!(!new.contains("test_it"), "{new}");
    let patch_prompt = server.requests()[1].last_user_message().unwrap();
    assert!(patch_prompt.contains("in full"), "{patch_prompt}");
}

#[tokio::test]
async fn model_fixes_rust_with_a_unified_diff() {
    let (_t, dir) = example_repo("rust-stats");
    let server = TestServer::start().await.unwrap();
    server.enqueue(Reply::text("count_above uses >= where it should use >."));
    server.enqueue(Reply::text(
        "```diff\n--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -12,3 +12,3 @@\n pub fn count_above(xs: &[i64], threshold: i64) -> usize {\n-    xs.iter().filter(|&&x| x >= threshold).count()\n+    xs.iter().filter(|&&x| x > threshold).count()\n }\n```\n",
    ));
    let (r, _) = run(
        FixOptions::new(&dir),
        model(&server),
        CancellationToken::new(),
    )
    .await;
    let s = r.unwrap();
    assert_eq!(s.outcome, Outcome::Fixed, "{}", s.reason);
    assert!(
        s.diff
            .unified
            .contains("+    xs.iter().filter(|&&x| x > threshold).count()")
    );
    assert_eq!(s.attempts, 1);
}

#[tokio::test]
async fn test_edits_are_rejected_and_a_repeating_model_stops() {
    let (_t, dir) = example_repo("py-inventory");
    let server = TestServer::start().await.unwrap();
    // Every answer is the same: "fix" the test instead of the code.
    server.set_default(Reply::text(
        "tests/test_stock.py\n<<<<<<< SEARCH\n    assert inv.needs_reorder(\"fig\")\n=======\n    assert True\n>>>>>>> REPLACE\n",
    ));
    let mut opts = FixOptions::new(&dir);
    opts.max_attempts = 10;
    let (r, events) = run(opts, model(&server), CancellationToken::new()).await;
    let s = r.unwrap();
    assert_eq!(s.outcome, Outcome::NotFixed);
    assert!(s.reason.contains("repeating itself"), "{}", s.reason);
    assert_eq!(s.attempts, 2);
    assert!(events.iter().any(|e| matches!(e, FixEvent::Rejected { reason, .. } if reason.contains("tests/test_stock.py: it is a test file"))));
    assert!(s.diff.files.is_empty());
}

#[tokio::test]
async fn a_patch_that_breaks_a_passing_test_is_rejected() {
    let (_t, dir) = example_repo("py-inventory");
    let server = TestServer::start().await.unwrap();
    server.enqueue(explain_reply());
    // Makes the failing tests pass but breaks receive().
    server.enqueue(Reply::text(format!(
        "{GOOD_PATCH}\ninventory/stock.py\n<<<<<<< SEARCH\n        self._counts[sku] = self._counts.get(sku, 0) + qty\n=======\n        self._counts[sku] = qty\n>>>>>>> REPLACE\n"
    )));
    server.enqueue(explain_reply());
    server.enqueue(Reply::text(GOOD_PATCH));
    let (r, events) = run(
        FixOptions::new(&dir),
        model(&server),
        CancellationToken::new(),
    )
    .await;
    let s = r.unwrap();
    assert_eq!(s.outcome, Outcome::Fixed);
    assert_eq!(s.winning_attempt, Some(2));
    assert!(events.iter().any(|e| matches!(e, FixEvent::Rejected { reason, .. } if reason.contains("breaks tests that passed before: tests/test_stock.py::test_receive_adds_up"))));
    // The last feedback said why.
    let last = server
        .requests()
        .last()
        .unwrap()
        .last_user_message()
        .unwrap();
    assert!(last.contains("breaks tests that passed before"), "{last}");
    // Every attempt is kept as a ref; the branch points at the winner.
    let info = workspace::session(&dir, Some(&s.session)).unwrap();
    let attempts = workspace::attempts(&dir, &info).unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(info.winner.as_deref(), Some(attempts[1].commit.as_str()));
    let d1 = workspace::session_diff(&dir, &info, Some(1)).unwrap();
    assert!(d1.unified.contains("self._counts[sku] = qty"));
}

#[test]
fn apply_writes_exactly_the_winning_diff_and_undo_restores() {
    let (_t, dir) = example_repo("py-inventory");
    dirty(&dir);
    let before = snapshot(&dir);
    let out = bin()
        .args(["fix", "--model", "mutate", "--apply"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("applied to"), "{stdout}");
    let after = snapshot(&dir);
    for (path, bytes) in &before {
        if path == std::path::Path::new(STOCK) {
            // The user's own edit stays, with exactly the fix on top.
            let want = String::from_utf8(bytes.clone())
                .unwrap()
                .replace("count(sku) < self", "count(sku) <= self");
            assert_eq!(String::from_utf8(after[path].clone()).unwrap(), want);
            assert!(want.contains("work in progress"));
        } else {
            assert_eq!(&after[path], bytes, "{} changed", path.display());
        }
    }
    assert_eq!(after.len(), before.len());
    let undo = bin().arg("undo").arg(&dir).output().unwrap();
    assert_eq!(
        undo.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&undo.stderr)
    );
    assert_eq!(snapshot(&dir), before);
    // Nothing left to undo, and it says so.
    let again = bin().arg("undo").arg(&dir).output().unwrap();
    assert_eq!(again.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&again.stdout).contains("is already undone"));
}

#[tokio::test]
async fn apply_refuses_when_the_user_changed_the_same_lines() {
    let (_t, dir) = example_repo("py-inventory");
    let (r, _) = run_mutate(&dir).await;
    let s = r.unwrap();
    assert_eq!(s.outcome, Outcome::Fixed);
    let stock = dir.join(STOCK);
    let mine = std::fs::read_to_string(&stock).unwrap().replace(
        "count(sku) < self.reorder_level",
        "count(sku) < self.reorder_level - 1",
    );
    std::fs::write(&stock, &mine).unwrap();
    let info = workspace::session(&dir, Some(&s.session)).unwrap();
    let err = workspace::apply(&dir, &info, &s.diff).unwrap_err();
    assert!(matches!(err, FixError::ApplyConflict { .. }), "{err}");
    assert!(err.to_string().contains("stock.py"), "{err}");
    assert_eq!(std::fs::read_to_string(&stock).unwrap(), mine);
    // An unrelated edit elsewhere in the file is kept and the fix goes on top.
    let other = std::fs::read_to_string(dir.join(STOCK))
        .unwrap()
        .replace(
            "count(sku) < self.reorder_level - 1",
            "count(sku) < self.reorder_level",
        )
        .replace("def count(self, sku):", "def count(self, sku):  # mine");
    std::fs::write(&stock, &other).unwrap();
    workspace::apply(&dir, &info, &s.diff).unwrap();
    assert_eq!(
        std::fs::read_to_string(&stock).unwrap(),
        other.replace("count(sku) < self", "count(sku) <= self")
    );
}

#[tokio::test]
async fn a_plain_directory_is_fixed_on_a_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("inv");
    copy_tree(&example("py-inventory"), &dir);
    // Dependency trees, build output and what the directory's own
    // .gitignore leaves out are never snapshotted.
    for junk in [
        "node_modules/left-pad/index.js",
        "target/debug/junk",
        "notes/scratch.log",
    ] {
        let p = dir.join(junk);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "junk").unwrap();
    }
    std::fs::write(dir.join(".gitignore"), "*.log\n").unwrap();
    let before = snapshot(&dir);
    let out = bin()
        .arg("fix")
        .arg(&dir)
        .env("SELFREPAIR_HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(snapshot(&dir), before);
    assert!(!dir.join(".git").exists());
    let snap: Vec<String> = snapshot(&home.path().join("plain"))
        .into_keys()
        .filter(|p| !p.components().any(|c| c.as_os_str() == ".git"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    assert!(snap.iter().any(|p| p.ends_with(STOCK)), "{snap:?}");
    for junk in ["left-pad", "junk", "scratch.log"] {
        assert!(
            !snap.iter().any(|p| p.contains(junk)),
            "{junk} snapshotted: {snap:?}"
        );
    }
    let diff = bin()
        .arg("diff")
        .arg(&dir)
        .env("SELFREPAIR_HOME", home.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&diff.stdout).contains("<= self.reorder_level"));
}

#[test]
fn json_output_ends_with_the_summary_and_keys_stay_out_of_the_sandbox() {
    let (_t, dir) = example_repo("py-inventory");
    let out = bin()
        .args(["fix", "--json", "--test", "env; python3 -m pytest -q"])
        .arg(&dir)
        .env("OPENAI_API_KEY", "sk-live-SECRET-must-not-leak")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    assert_eq!(lines[0]["event"], "plan");
    assert_eq!(lines[0]["reason"], "given with --test");
    let done = lines.last().unwrap();
    assert_eq!(done["event"], "done");
    assert_eq!(done["outcome"], "fixed");
    assert!(
        done["diff"]["unified"]
            .as_str()
            .unwrap()
            .contains("<= self.reorder_level")
    );
    assert_eq!(done["diff"]["files"][0]["path"], STOCK);
    let baseline = &lines[2]["run"]["output"];
    assert!(baseline.as_str().unwrap().contains("HOME="), "{baseline}");
    assert!(!stdout.contains("SECRET"));
}

#[test]
fn bad_input_is_named_and_leaves_no_trace() {
    let tmp = tempfile::tempdir().unwrap();
    // Not a directory.
    let missing = tmp.path().join("nope");
    let out = bin().arg("fix").arg(&missing).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nope") && err.contains("no such directory"),
        "{err}"
    );

    // No tests found.
    let (_t, dir) = example_repo("py-inventory");
    let empty = dir.join("docs");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("index.md"), "# docs\n").unwrap();
    let out = bin().arg("fix").arg(&empty).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("docs: no tests found"), "{err}");

    // A test command that does not exist.
    let before = snapshot(&dir);
    let out = bin()
        .args(["fix", "--test", "no-such-test-runner --all"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("could not start (`no-such-test-runner --all`)")
            && err.contains("not found")
            && err.contains("No attempt was made"),
        "{err}"
    );
    assert_eq!(
        branches(&dir),
        vec!["master".to_string()],
        "a failed start leaves no branch"
    );

    // Tests already green.
    let stock = dir.join(STOCK);
    let fixed = std::fs::read_to_string(&stock)
        .unwrap()
        .replace("count(sku) < self", "count(sku) <= self");
    std::fs::write(&stock, fixed).unwrap();
    let out = bin().arg("fix").arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to fix: the tests already pass")
    );
    assert_eq!(branches(&dir), vec!["master".to_string()]);
    let mut now = snapshot(&dir);
    now.remove(std::path::Path::new(STOCK));
    let mut was = before;
    was.remove(std::path::Path::new(STOCK));
    assert_eq!(now, was);
}

/// Cancelling while the tests run ends the session as cancelled, and
/// (judged from the host) no process of the test command is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_kills_the_running_tests() {
    use selfrepair_testkit::procs::{wait_for, with_cmdline};
    let (_t, dir) = example_repo("py-inventory");
    // `sleep` takes fractions: the odd length names this test's processes.
    let marker = format!("60.{}1", std::process::id());
    let mut opts = FixOptions::new(&dir);
    opts.test = Some(format!("sleep {marker} & sleep {marker}"));
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    let m = marker.clone();
    // Cancel once both sleeps run, not after a guessed delay.
    let watcher = tokio::task::spawn_blocking(move || {
        let started = wait_for(Duration::from_secs(30), || with_cmdline(&m).len() >= 2);
        c.cancel();
        started
    });
    let started = Instant::now();
    let (r, _) = run(opts, Repairer::Mutate, cancel).await;
    assert!(watcher.await.unwrap(), "the test command never started");
    let s = r.unwrap();
    assert_eq!(s.outcome, Outcome::Cancelled);
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
    let gone = tokio::task::spawn_blocking(move || {
        wait_for(Duration::from_secs(3), || with_cmdline(&marker).is_empty())
    });
    assert!(gone.await.unwrap(), "a test process outlived the cancel");
}

/// Every layered setting has its flag on each command that takes model
/// flags, and parses there; a key never does (keys come from env vars only).
#[test]
fn every_setting_is_a_flag_and_no_key_is() {
    for cmd in [&["config", "show"][..], &["fix"], &["bench"]] {
        let out = bin().args(cmd).arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        for (field, flag) in selfrepair::config::FLAGS {
            assert!(
                help.contains(&format!("{flag} ")),
                "`selfrepair {}` has no {flag} for {field}",
                cmd.join(" ")
            );
        }
    }
    let home = tempfile::tempdir().unwrap();
    let show = |args: &[&str]| {
        bin()
            .args(["config", "show", "--dir"])
            .arg(home.path())
            .args(args)
            .env("SELFREPAIR_HOME", home.path())
            .output()
            .unwrap()
    };
    let out = show(&[
        "--budget-usd",
        "2.5",
        "--task-budget-calls",
        "10",
        "--base-url",
        "http://gpu-box:8000/v1",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in ["2.5", "10", "gpu-box"] {
        assert!(text.contains(want), "{want} missing: {text}");
    }
    let out = show(&["--api-key", "sk-1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("sk-1"));
}

/// Each command's help ends with an `Example(s):` section of runnable
/// lines, one at least of the command itself (clap's own usage line,
/// `Usage: selfrepair fix [OPTIONS]`, is not one).
#[test]
fn help_has_examples() {
    let commands: &[&[&str]] = &[
        &["run"],
        &["setup"],
        &["bench-sandbox"],
        &["bench-model"],
        &["tasks", "fetch"],
        &["eval"],
        &["bench"],
        &["report"],
        &["merge"],
        &["config"],
        &["fix"],
        &["log"],
        &["diff"],
        &["apply"],
        &["undo"],
        &["prune"],
    ];
    for cmd in commands {
        let out = bin().args(*cmd).arg("--help").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let name = format!("selfrepair {}", cmd.join(" "));
        let examples = ["\nExamples:\n", "\nExample:\n"]
            .iter()
            .find_map(|h| text.split_once(h).map(|(_, e)| e))
            .unwrap_or_else(|| panic!("{name}: no Examples section: {text}"));
        let lines: Vec<&str> = examples
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        assert!(
            lines.iter().all(|l| l.contains("selfrepair ")),
            "{name}: {lines:?}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with(&format!("{name} "))),
            "{name}: no example of it: {lines:?}"
        );
    }
}

#[tokio::test]
async fn mutate_first_fixes_before_any_model_call() {
    let (_t, dir) = example_repo("rust-stats");
    let server = TestServer::start().await.unwrap();
    let repairer = Repairer::Model {
        client: client(&server),
        mutate_first: true,
    };
    let (r, _) = run(FixOptions::new(&dir), repairer, CancellationToken::new()).await;
    let s = r.unwrap();
    assert_eq!(s.outcome, Outcome::Fixed, "{}", s.reason);
    assert!(s.reason.starts_with("mutant src/lib.rs:13"), "{}", s.reason);
    assert_eq!((s.tokens, server.request_count()), (0, 0));
}

#[tokio::test]
async fn the_budget_stops_the_model() {
    let (_t, dir) = example_repo("py-inventory");
    let server = TestServer::start().await.unwrap();
    server.set_default(explain_reply());
    let mut o = selfrepair::model::ClientOptions::default();
    o.budgets.run.tokens = Some(500);
    let repairer = Repairer::Model {
        client: client_with(&server, o),
        mutate_first: false,
    };
    let (r, _) = run(FixOptions::new(&dir), repairer, CancellationToken::new()).await;
    let s = r.unwrap();
    assert_eq!(s.outcome, Outcome::NotFixed);
    assert!(
        s.reason.starts_with("budget reached after 940 tokens"),
        "{}",
        s.reason
    );
    assert_eq!(server.request_count(), 1);
}

/// A model call ended by the client's own cancel token (not the session's)
/// stops the session as cancelled, never as a budget stop; the call is in
/// the transcript with its error.
#[tokio::test]
async fn a_cancelled_model_call_is_not_a_budget_stop() {
    let (_t, dir) = example_repo("py-inventory");
    let server = TestServer::start().await.unwrap();
    server.set_default(explain_reply());
    let client = client(&server);
    client.cancel_token().cancel();
    let repairer = Repairer::Model {
        client,
        mutate_first: false,
    };
    let (r, _) = run(FixOptions::new(&dir), repairer, CancellationToken::new()).await;
    let s = r.unwrap();
    assert_eq!(s.reason, "cancelled");
    assert_eq!((s.tokens, server.request_count()), (0, 0));
    let t = state_dir(&dir, &s.session).join("transcript.jsonl");
    let entries = selfrepair::model::transcript::read_entries(&t).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].error.as_deref(), Some("model call cancelled"));
}

#[tokio::test]
async fn the_same_failure_twice_stops_the_loop() {
    let (_t, dir) = example_repo("py-inventory");
    let server = TestServer::start().await.unwrap();
    // Two different patches that change nothing that matters.
    for comment in ["# first try", "# second try"] {
        server.enqueue(explain_reply());
        server.enqueue(Reply::text(format!(
            "inventory/stock.py\n<<<<<<< SEARCH\n    def count(self, sku):\n=======\n    def count(self, sku):  {comment}\n>>>>>>> REPLACE\n"
        )));
    }
    let mut opts = FixOptions::new(&dir);
    opts.max_attempts = 5;
    let (r, _) = run(opts, model(&server), CancellationToken::new()).await;
    let s = r.unwrap();
    assert_eq!(s.outcome, Outcome::NotFixed);
    assert_eq!(s.reason, "the same failure repeats after attempt 2");
    assert_eq!(server.request_count(), 4);
}

#[tokio::test]
async fn a_test_run_that_edits_tracked_files_is_not_a_fix() {
    let (_t, dir) = example_repo("py-inventory");
    let mut opts = FixOptions::new(&dir);
    opts.test = Some("python3 -m pytest -q && echo tampered >> README.md".into());
    opts.max_attempts = 4;
    let (r, events) = run(opts, Repairer::Mutate, CancellationToken::new()).await;
    let s = r.unwrap();
    assert_eq!(s.outcome, Outcome::NotFixed, "{}", s.reason);
    assert!(events.iter().any(|e| matches!(e, FixEvent::Rejected { reason, .. } if reason == "the test run modified tracked files: README.md")));
    assert!(
        !std::fs::read_to_string(dir.join("README.md"))
            .unwrap()
            .contains("tampered")
    );
}

/// A committed link out of the repository: a patch may not write through
/// it, nor create directories through it (the new `sub/` would appear in
/// the link's target if directories were made before the check).
#[tokio::test]
async fn a_patch_cannot_write_through_a_symlink() {
    let (_t, dir) = example_repo("py-inventory");
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.join("inventory/out")).unwrap();
    commit_all(&dir, "a link out of the repository");
    let server = TestServer::start().await.unwrap();
    server.enqueue(explain_reply());
    server.enqueue(Reply::text(
        "inventory/out/sub/pwned.py\n<<<<<<< SEARCH\n=======\nprint('outside')\n>>>>>>> REPLACE\n",
    ));
    let mut opts = FixOptions::new(&dir);
    opts.max_attempts = 1;
    let (r, events) = run(opts, model(&server), CancellationToken::new()).await;
    assert_eq!(r.unwrap().outcome, Outcome::NotFixed);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, FixEvent::Rejected { reason, .. } if reason.contains("symlink")))
    );
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn cli_with_a_model_and_a_budget() {
    let (_t, dir) = example_repo("py-inventory");
    let server = TestServer::start().await.unwrap();
    server.enqueue(explain_reply());
    server.enqueue(Reply::text(GOOD_PATCH));
    let mut cmd = tokio::process::Command::from(bin());
    cmd.args([
        "fix",
        "--json",
        "--budget",
        "0.50",
        "--model",
        "openai:gpt-4o-mini",
    ])
    .args([
        "--base-url",
        &server.openai_base(),
        "--api-key-env",
        "FIX_TEST_KEY",
    ])
    .arg(&dir)
    .env("FIX_TEST_KEY", FAKE_KEY);
    let out = cmd.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(done["outcome"], "fixed");
    assert_eq!(done["tokens"], 900 + 40 + 10 + 5);
    assert!(
        stdout.contains(r#""repairer":"openai:gpt-4o-mini""#),
        "{stdout}"
    );
    assert!(!stdout.contains(FAKE_KEY));
    // The session log has the explanation and the patch, never the key.
    let id = done["session"].as_str().unwrap();
    let log =
        std::fs::read_to_string(dir.join(".git/selfrepair").join(id).join("log.jsonl")).unwrap();
    assert!(log.contains("\"event\":\"explanation\"") && log.contains("fix/explain"));
    assert!(!log.contains(FAKE_KEY));
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        reqs[0].header("authorization"),
        Some(format!("Bearer {FAKE_KEY}").as_str())
    );
}

#[test]
fn the_projects_virtualenv_runs_the_tests() {
    let (_t, dir) = example_repo("py-inventory");
    // A virtualenv without pytest: the tests run with it, and the provided pytest.
    venv(Path::new("/usr/bin/python3"), &dir.join(".venv"));
    std::fs::write(dir.join(".git/info/exclude"), ".venv/\n").unwrap();
    let (code, events, err) = fix_json(&dir, &[], &[("SELFREPAIR_HOME", &cache())]);
    assert_fixed(code, &events, &err);
    let plan = &event(&events, "plan")["python"];
    assert_eq!(plan["source"], "project_venv", "{plan}");
    assert!(
        plan["reason"]
            .as_str()
            .unwrap()
            .contains("virtualenv .venv"),
        "{plan}"
    );
    assert!(plan["provided_pytest"].is_string(), "{plan}");
}

#[test]
fn a_hostile_venv_in_the_repository_exposes_nothing_of_the_home_directory() {
    let (t, dir) = example_repo("py-inventory");
    let home = t.path().join("home");
    std::fs::create_dir_all(home.join(".ssh/bin")).unwrap();
    std::fs::create_dir_all(home.join(".ssh/lib")).unwrap();
    venv(Path::new("/usr/bin/python3"), &dir.join(".venv"));
    std::fs::write(dir.join(".git/info/exclude"), ".venv/\n").unwrap();
    // pyvenv.cfg points its base at the home directory itself.
    std::fs::write(
        dir.join(".venv/pyvenv.cfg"),
        format!("home = {}/bin\n", home.display()),
    )
    .unwrap();
    std::fs::create_dir_all(home.join("bin")).unwrap();
    std::fs::create_dir_all(home.join("lib")).unwrap();
    let (code, events, err) = fix_json(
        &dir,
        &[],
        &[("HOME", home.as_os_str()), ("SELFREPAIR_HOME", &cache())],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("pyvenv.cfg whose home"), "{err}");
    assert!(events.iter().all(|e| e["event"] != "plan"), "{events:?}");
}

#[test]
fn a_session_can_run_on_any_runtime_thread() {
    // The editor agent spawns sessions as tasks: their futures must be Send.
    fn is_send<T: Send>(_: &T) {}
    let session = selfrepair::fix::Session::new(
        FixOptions::new("."),
        Repairer::Mutate,
        CancellationToken::new(),
    );
    let on_event = |_: &FixEvent| {};
    let fut = session.run(&on_event);
    is_send(&fut);
}

// --- The interpreter the user means (issue 19) -------------------------------

/// `selfrepair fix --json` with `env` set (and the rest of the caller's
/// environment); its exit code, events and stderr.
fn fix_json(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &OsStr)],
) -> (Option<i32>, Vec<serde_json::Value>, String) {
    let mut c = bin();
    c.arg("fix").arg(dir).arg("--json").args(args);
    if !args.contains(&"--model") {
        // The shared cache may hold the default local model (`setup --model
        // local`), which `fix` goes on with after the mutants; these runs
        // are about the mutation repairer.
        c.args(["--model", "mutate"]);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (
        out.status.code(),
        events,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn event<'a>(events: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    events
        .iter()
        .find(|e| e["event"] == name)
        .unwrap_or_else(|| panic!("no {name} event in {events:?}"))
}

/// A virtualenv without pytest (nor pip), made by `base`.
fn venv(base: &Path, at: &Path) {
    let made = std::process::Command::new(base)
        .args(["-m", "venv", "--without-pip"])
        .arg(at)
        .status()
        .unwrap();
    assert!(
        made.success(),
        "{} -m venv {}",
        base.display(),
        at.display()
    );
}

/// The cache the test process uses, so runs share one provided pytest.
fn cache() -> OsString {
    selfrepair_store::home().into_os_string()
}

/// PATH without the caller's tools (pyenv shims, venvs), plus `first`.
fn plain_path(first: &[&Path]) -> OsString {
    let mut dirs: Vec<PathBuf> = first.iter().map(|p| p.to_path_buf()).collect();
    dirs.extend(["/usr/local/bin", "/usr/bin", "/bin"].map(PathBuf::from));
    std::env::join_paths(dirs).unwrap()
}

fn assert_fixed(code: Option<i32>, events: &[serde_json::Value], err: &str) {
    assert!(
        events.iter().any(|e| e["event"] == "done"),
        "{code:?}: {err}"
    );
    let done = event(events, "done");
    assert_eq!(code, Some(0), "{done}\n{err}");
    assert_eq!(done["outcome"], "fixed", "{done}");
}

#[test]
fn the_readme_example_fixes_with_an_empty_cache_and_a_venv_without_pytest() {
    // The README's first command on a machine with no pytest anywhere:
    // selfrepair fetches its pinned pytest (from PyPI, sha256-checked) into
    // an empty cache and puts it on the venv's path for the run.
    let (t, dir) = example_repo("py-inventory");
    let home = t.path().join("selfrepair-home");
    let v = t.path().join("venv");
    venv(Path::new("/usr/bin/python3"), &v);
    let py = v.join("bin/python");
    let (code, events, err) = fix_json(
        &dir,
        &[],
        &[
            ("SELFREPAIR_HOME", home.as_os_str()),
            ("SELFREPAIR_PYTHON", py.as_os_str()),
            ("PATH", &plain_path(&[])),
        ],
    );
    assert_fixed(code, &events, &err);
    let plan = &event(&events, "plan")["python"];
    assert_eq!(plan["python"], py.to_str().unwrap(), "{plan}");
    assert_eq!(plan["source"], "flag", "{plan}");
    let pinned = selfrepair::sandbox::runtime::PYTEST_WHEELS[0].version;
    assert_eq!(plan["provided_pytest"], pinned, "{plan}");
    assert!(
        plan["reason"]
            .as_str()
            .unwrap()
            .contains("SELFREPAIR_PYTHON"),
        "{plan}"
    );
    let tools: Vec<String> = std::fs::read_dir(home.join("tools"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        tools
            .iter()
            .any(|t| t.starts_with(&format!("pytest-{pinned}-"))),
        "{tools:?}"
    );
    // The user's venv is as it was: nothing was installed into it.
    let site = std::fs::read_dir(v.join("lib"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(
        std::fs::read_dir(site.path().join("site-packages"))
            .unwrap()
            .count(),
        0
    );
}

/// A pyenv-style installation under a temp "home": the system python3's
/// binary copied to `<home>/.pyenv/versions/X/bin`, its stdlib linked beside.
fn pyenv_home(t: &Path) -> (PathBuf, PathBuf) {
    let home = t.join("home");
    let real = std::fs::canonicalize("/usr/bin/python3").unwrap();
    let name = real.file_name().unwrap();
    let prefix = home.join(".pyenv/versions/3.x");
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    std::fs::create_dir_all(prefix.join("lib")).unwrap();
    std::fs::copy(&real, prefix.join("bin").join(name)).unwrap();
    std::os::unix::fs::symlink(
        Path::new("/usr/lib").join(name),
        prefix.join("lib").join(name),
    )
    .unwrap();
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_ed25519"), "secret").unwrap();
    (home, prefix.join("bin").join(name))
}

#[test]
fn a_test_command_with_a_pyenv_venvs_python_runs_with_only_what_it_needs() {
    let (t, dir) = example_repo("py-inventory");
    let (home, base) = pyenv_home(t.path());
    let v = t.path().join("venvs/proj");
    venv(&base, &v);
    let py = v.join("bin/python");
    let test = format!("{} -m pytest -q", py.display());
    let (code, events, err) = fix_json(
        &dir,
        &["--test", &test],
        &[
            ("HOME", home.as_os_str()),
            ("SELFREPAIR_HOME", &cache()),
            ("PATH", &plain_path(&[])),
        ],
    );
    assert_fixed(code, &events, &err);
    let plan = &event(&events, "plan")["python"];
    assert_eq!(plan["python"], py.to_str().unwrap(), "{plan}");
    assert_eq!(plan["source"], "test_command", "{plan}");
    // A temp dir is private to its owner: the run keeps the caller's uid, and says so.
    assert_eq!(plan["keeps_uid"], true, "{plan}");
    // The venv and its base, and of the home directory nothing else.
    let exposed: Vec<PathBuf> = plan["exposed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| PathBuf::from(p.as_str().unwrap()))
        .collect();
    let prefix = std::fs::canonicalize(base.parent().unwrap().parent().unwrap()).unwrap();
    assert!(exposed.contains(&v), "{exposed:?}");
    assert!(exposed.contains(&prefix), "{exposed:?}");
    let home = std::fs::canonicalize(&home).unwrap();
    for p in &exposed {
        assert!(
            !p.starts_with(&home) || p.starts_with(&prefix),
            "{p:?} of the home directory is exposed: {exposed:?}"
        );
    }
    // And the jail really cannot read the rest of it.
    let peek = format!(
        "{} -c \"open('{}').read()\"",
        py.display(),
        home.join(".ssh/id_ed25519").display()
    );
    let (code, events, err) = fix_json(
        &dir,
        &["--test", &peek],
        &[
            ("HOME", home.as_os_str()),
            ("SELFREPAIR_HOME", &cache()),
            ("PATH", &plain_path(&[])),
        ],
    );
    let baseline = events
        .iter()
        .find(|e| e["event"] == "test_run_finished")
        .unwrap_or_else(|| panic!("{err}"));
    assert_ne!(code, Some(3), "the secret was readable: {baseline}");
    // Unreadable either way: hidden under the jail's cover of /tmp, or
    // refused by Landlock where nothing covers it.
    let output = baseline["run"]["output"].as_str().unwrap();
    assert!(
        output.contains("PermissionError") || output.contains("FileNotFoundError"),
        "{baseline}"
    );
}

#[test]
fn an_activated_virtualenv_is_the_interpreter() {
    let (t, dir) = example_repo("py-inventory");
    let v = t.path().join("activated");
    venv(Path::new("/usr/bin/python3"), &v);
    // A library outside the project that the venv puts on sys.path (a .pth
    // file, as editable installs do), and a test that imports it: the jail
    // must expose it.
    let lib = t.path().join("shared-lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(lib.join("ledger_rules.py"), "REORDER_AT_OR_BELOW = True\n").unwrap();
    let site = std::fs::read_dir(v.join("lib"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("site-packages");
    std::fs::write(site.join("shared.pth"), format!("{}\n", lib.display())).unwrap();
    std::fs::write(
        dir.join("tests/test_rules.py"),
        "import ledger_rules\n\ndef test_rules_load():\n    assert ledger_rules.REORDER_AT_OR_BELOW\n",
    )
    .unwrap();
    commit_all(&dir, "rules");
    let (code, events, err) = fix_json(
        &dir,
        &[],
        &[
            ("VIRTUAL_ENV", v.as_os_str()),
            ("SELFREPAIR_HOME", &cache()),
            ("PATH", &plain_path(&[&v.join("bin")])),
        ],
    );
    assert_fixed(code, &events, &err);
    let plan = &event(&events, "plan")["python"];
    assert_eq!(
        plan["python"],
        v.join("bin/python").to_str().unwrap(),
        "{plan}"
    );
    assert_eq!(plan["source"], "virtual_env", "{plan}");
    assert!(
        plan["reason"].as_str().unwrap().starts_with("VIRTUAL_ENV"),
        "{plan}"
    );
    assert!(
        plan["exposed"]
            .as_array()
            .unwrap()
            .contains(&lib.to_str().unwrap().into()),
        "{plan}"
    );
}

/// uv, from its pinned wheel on PyPI (through the same download code as the
/// runtimes), kept in the cache.
fn uv() -> PathBuf {
    const WHEEL: &str = "uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl";
    const SHA: &str = "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19";
    use selfrepair_store as fetch;
    let dir = selfrepair_store::home().join("test-tools/uv-0.13.9/bin");
    let exe = dir.join("uv");
    if exe.is_file() {
        return dir;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let wheel = selfrepair_store::home().join("downloads").join(WHEEL);
    rt.block_on(async {
        if !(wheel.is_file() && fetch::sha256_file(&wheel).unwrap() == SHA) {
            let url = fetch::pypi_file_url("https://pypi.org", "uv", "0.13.9", WHEEL)
                .await
                .unwrap();
            fetch::download(&url, &wheel, SHA, "uv", false)
                .await
                .unwrap();
        }
    });
    fetch::extract_member(&wheel, "uv-0.13.9.data/scripts/uv", &exe, None).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[test]
fn a_uv_project_uses_what_uv_answers() {
    let (t, dir) = example_repo("py-inventory");
    std::fs::write(dir.join("uv.lock"), "version = 1\n").unwrap();
    commit_all(&dir, "uv");
    let uv_bin = uv();
    let (code, events, err) = fix_json(
        &dir,
        &[],
        &[
            ("SELFREPAIR_HOME", &cache()),
            ("PATH", &plain_path(&[&uv_bin])),
            ("UV_CACHE_DIR", t.path().join("uv-cache").as_os_str()),
        ],
    );
    assert_fixed(code, &events, &err);
    let plan = &event(&events, "plan")["python"];
    assert_eq!(plan["source"], "tool", "{plan}");
    assert!(
        plan["reason"].as_str().unwrap().contains("uv python find"),
        "{plan}"
    );
}

#[test]
fn a_baseline_that_cannot_start_stops_at_once_with_exit_2() {
    // A third-party module the interpreter lacks: no attempt, no branch.
    let (_t, dir) = example_repo("py-inventory");
    std::fs::write(
        dir.join("tests/test_plot.py"),
        "import matplotlib_not_installed\n\ndef test_plot():\n    assert matplotlib_not_installed\n",
    )
    .unwrap();
    commit_all(&dir, "plot");
    let (code, events, err) = fix_json(&dir, &[], &[("SELFREPAIR_HOME", &cache())]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("could not start")
            && err.contains("'matplotlib_not_installed'")
            && err.contains("pip install matplotlib_not_installed"),
        "{err}"
    );
    assert!(!events.iter().any(|e| e["event"] == "patch"), "{events:?}");
    assert_eq!(branches(&dir), vec!["master".to_string()]);

    // A test command that may not run: permission denied.
    let (_t, dir) = example_repo("py-inventory");
    std::fs::write(
        dir.join("run-tests.sh"),
        "#!/bin/sh\nexec python3 -m pytest\n",
    )
    .unwrap();
    commit_all(&dir, "script");
    let (code, _, err) = fix_json(
        &dir,
        &["--test", "./run-tests.sh"],
        &[("SELFREPAIR_HOME", &cache())],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("permission denied"), "{err}");
    assert_eq!(branches(&dir), vec!["master".to_string()]);

    // The positive control: a bad import of the project's own module is
    // the project's bug, so attempts are made.
    let (_t, dir) = example_repo("py-inventory");
    std::fs::write(
        dir.join("tests/test_more.py"),
        "from inventory.stok import Inventory\n\ndef test_more():\n    assert Inventory\n",
    )
    .unwrap();
    commit_all(&dir, "more");
    let (code, events, err) = fix_json(
        &dir,
        &["--max-attempts", "2"],
        &[("SELFREPAIR_HOME", &cache())],
    );
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(event(&events, "done")["attempts"], 2, "{err}");
}

#[test]
fn a_hanging_baseline_is_repaired_within_a_deadline_derived_from_it() {
    let (_t, dir) = example_repo("py-digits");
    let timeout = 20u64;
    let started = Instant::now();
    let (code, events, err) = fix_json(
        &dir,
        &["--timeout", &timeout.to_string()],
        &[("SELFREPAIR_HOME", &cache())],
    );
    assert_fixed(code, &events, &err);
    let done = event(&events, "done");
    assert!(
        done["reason"]
            .as_str()
            .unwrap()
            .contains("comparison swap: >= -> >"),
        "{done}"
    );
    let runs: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "test_run_finished")
        .collect();
    // The baseline hung, and named the test that did.
    assert_eq!(runs[0]["run"]["status"], "timed_out", "{}", runs[0]);
    assert_eq!(
        done["initial_failures"][0], "tests/test_count.py::test_counts_digits",
        "{done}"
    );
    // The rest of the suite ran without it; its time sets the deadline.
    assert_eq!(runs[1]["scope"], "rest", "{}", runs[1]);
    let rest_ms = runs[1]["run"]["duration_ms"].as_u64().unwrap();
    let deadline_ms = (10 * rest_ms + 3000).min(timeout * 1000);
    // Every later run has that deadline (pytest dumps a hang two thirds into it)...
    let later: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "test_run_started" && e["attempt"].as_u64() > Some(0))
        .collect();
    assert!(!later.is_empty());
    for e in later {
        let want = format!(
            "faulthandler_timeout={}",
            (deadline_ms / 1000 * 2 / 3).max(1)
        );
        assert!(
            e["command"].as_str().unwrap().contains(&want),
            "{want}: {e}"
        );
    }
    // ...and the fix, the loop's condition, is the first mutant tried.
    assert_eq!(done["attempts"], 1, "{done}");
    for r in &runs[2..] {
        let ms = r["run"]["duration_ms"].as_u64().unwrap();
        assert!(ms <= deadline_ms + 1000, "{ms} ms > {deadline_ms} ms: {r}");
    }
    eprintln!(
        "hanging example fixed in {:?} ({} runs, deadline {deadline_ms} ms)",
        started.elapsed(),
        runs.len()
    );
}

/// Reads a ref's target, for "unchanged" checks.
fn ref_target(dir: &std::path::Path, name: &str) -> Option<String> {
    let repo = git2::Repository::open(dir).unwrap();
    repo.refname_to_id(name).ok().map(|o| o.to_string())
}

/// The jailed tests can rewrite the work copy's `.git` file. Host-side git
/// (the reset after every run) must never follow it: not into the user's own
/// repository (it would move their branch and rewrite their index), not
/// into a git dir whose `core.worktree` names another directory (the reset
/// would write the repository's files there). The session stops with a
/// typed error; the user's tree, HEAD, index and branches are as before,
/// and the canary directory stays empty.
#[tokio::test]
async fn a_hijacked_gitlink_stops_the_session_and_touches_nothing() {
    let canary = tempfile::tempdir().unwrap();
    for attack in ["user-git", "core-worktree", "symlink"] {
        let (_t, dir) = example_repo("py-inventory");
        let user_git = dir.join(".git");
        let hijack = match attack {
            "user-git" => format!("printf 'gitdir: {}\\n' > .git", user_git.display()),
            // A git dir of its own, borrowing the user's objects, whose
            // core.worktree sends a checkout to the canary directory.
            "core-worktree" => format!(
                "mkdir -p evil/refs/heads evil/objects/info && \
                 echo 'ref: refs/heads/master' > evil/HEAD && \
                 printf '[core]\\n\\trepositoryformatversion = 0\\n\\tbare = false\\n\\tworktree = {}\\n' > evil/config && \
                 echo {}/objects > evil/objects/info/alternates && \
                 printf 'gitdir: %s/evil\\n' \"$PWD\" > .git",
                canary.path().display(),
                user_git.display()
            ),
            _ => format!("rm .git && ln -s {} .git", user_git.display()),
        };
        let before = snapshot(&dir);
        let branches_before = branches(&dir);
        let master = ref_target(&dir, "refs/heads/master");
        let mut opts = FixOptions::new(&dir);
        opts.test = Some(format!("{hijack}; exit 1"));
        let (r, _) = run(opts, Repairer::Mutate, CancellationToken::new()).await;
        match r {
            Err(FixError::WorkCopyTampered { detail, .. }) => {
                eprintln!("{attack}: stopped: {detail}")
            }
            other => panic!("{attack}: expected a tampering error, got {other:?}"),
        }
        assert_eq!(
            snapshot(&dir),
            before,
            "{attack}: the user's tree, index or HEAD changed"
        );
        assert_eq!(branches(&dir), branches_before, "{attack}");
        assert_eq!(ref_target(&dir, "refs/heads/master"), master, "{attack}");
        assert_eq!(
            std::fs::read_dir(canary.path()).unwrap().count(),
            0,
            "{attack}: something was written in the canary dir"
        );
    }
}

fn rejections(events: &[FixEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            FixEvent::Rejected { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// `fix` judges the tests, not the exit code. A patch that deselects the
/// failing tests through pytest's configuration is a test edit, refused
/// like an edit of a test file.
#[tokio::test]
async fn a_patch_that_deselects_tests_in_the_config_is_a_test_edit() {
    let (_t, dir) = example_repo("py-inventory");
    let server = TestServer::start().await.unwrap();
    server.enqueue(explain_reply());
    server.enqueue(Reply::text(
        "pyproject.toml\n<<<<<<< SEARCH\n[tool.pytest.ini_options]\n=======\n[tool.pytest.ini_options]\naddopts = \"-k 'not reorder'\"\n>>>>>>> REPLACE\n",
    ));
    let mut opts = FixOptions::new(&dir);
    opts.max_attempts = 1;
    let (r, events) = run(opts, model(&server), CancellationToken::new()).await;
    let s = r.unwrap();
    assert_eq!(s.outcome, Outcome::NotFixed, "{}", s.reason);
    let why = rejections(&events);
    assert!(
        why.iter()
            .any(|r| r.contains("pyproject.toml") && r.contains("[tool.pytest]")),
        "{why:?}"
    );
    assert!(s.diff.files.is_empty());
}

/// A patch to the code under test (no test or config file touched) that
/// hides the failing tests from pytest at collection: the run is green and
/// exits 0, but tests the baseline ran are gone, so it is no fix.
#[tokio::test]
async fn a_patch_that_makes_tests_vanish_is_rejected() {
    let (_t, dir) = example_repo("py-inventory");
    let server = TestServer::start().await.unwrap();
    server.enqueue(explain_reply());
    // Registers a pytest plugin from inside the code under test; it drops
    // every test about reordering at collection.
    const HIDE: &str = r#"
import gc as _gc
try:
    import _pytest.config as _pc
except ImportError:
    _pc = None
if _pc is not None:
    for _o in _gc.get_objects():
        if isinstance(_o, _pc.Config):
            class _Hide:
                def pytest_collection_modifyitems(self, items):
                    items[:] = [i for i in items if 'reorder' not in i.name]
            _o.pluginmanager.register(_Hide())
            break
"#;
    server.enqueue(Reply::text(format!(
        "inventory/stock.py\n<<<<<<< SEARCH\n=======\n{HIDE}>>>>>>> REPLACE\n"
    )));
    let mut opts = FixOptions::new(&dir);
    opts.max_attempts = 1;
    let (r, events) = run(opts, model(&server), CancellationToken::new()).await;
    let s = r.unwrap();
    assert_eq!(s.outcome, Outcome::NotFixed, "{}", s.reason);
    // The hack worked on pytest: the full run was green.
    let runs: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            FixEvent::TestRunFinished { scope, run, .. } => {
                Some(format!("{scope}: {:?}\n{}", run.status, run.output))
            }
            _ => None,
        })
        .collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, FixEvent::TestRunFinished { scope, run, .. }
            if *scope == selfrepair::fix::RunScope::Full && run.status == selfrepair::fix::runner::RunStatus::Passed)),
        "{runs:#?}\n{:?}",
        rejections(&events)
    );
    let why = rejections(&events);
    assert!(
        why.iter()
            .any(|r| r.contains("collected fewer tests than the baseline")
                && r.contains("test_reorder_at_level")),
        "{why:?}"
    );
    assert!(s.winning_attempt.is_none());
}

/// A `.venv` (or `venv`) that is a link out of the project, to a place that
/// is no Python prefix, is not the project's interpreter: nothing behind it
/// joins the jail's read set. The link's target holds a secret that the
/// test command tries to read.
#[tokio::test]
async fn a_venv_link_out_of_the_project_does_not_widen_the_jail() {
    for name in [".venv", "venv"] {
        let (_t, dir) = example_repo("py-inventory");
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(outside.path().join("bin")).unwrap();
        std::os::unix::fs::symlink("/usr/bin/python3", outside.path().join("bin/python")).unwrap();
        let secret = "venv-secret-5d1f0c";
        std::fs::write(outside.path().join("secret.txt"), secret).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.join(name)).unwrap();
        std::fs::write(dir.join(".git/info/exclude"), format!("{name}\n")).unwrap();
        let mut opts = FixOptions::new(&dir);
        opts.mode = selfrepair::fix::FixMode::Check;
        opts.test = Some(format!(
            "cat {}/secret.txt; exit 1",
            outside.path().display()
        ));
        let (r, events) = run(opts, Repairer::Mutate, CancellationToken::new()).await;
        assert_eq!(r.unwrap().outcome, Outcome::Reported);
        let outputs: Vec<String> = events
            .iter()
            .filter_map(|e| match e {
                FixEvent::TestRunFinished { run, .. } => Some(run.output.clone()),
                _ => None,
            })
            .collect();
        assert!(!outputs.is_empty());
        assert!(
            outputs.iter().all(|o| !o.contains(secret)),
            "{name}: the jail read through the link: {outputs:?}"
        );
    }
}

/// Cargo's toolchain lives in root's private home here (rustup under
/// /root), yet the tests run under a dedicated uid: the jail binds the
/// toolchain back under a covering tmpfs that uid can traverse, so the
/// kept-uid jail is not needed for it.
#[tokio::test]
async fn cargo_runs_under_a_dedicated_uid() {
    let (_t, dir) = example_repo("rust-stats");
    let mut opts = FixOptions::new(&dir);
    opts.mode = selfrepair::fix::FixMode::Check;
    opts.test = Some("id -u; cargo --version; exit 1".into());
    let (r, events) = run(opts, Repairer::Mutate, CancellationToken::new()).await;
    assert_eq!(r.unwrap().outcome, Outcome::Reported);
    let output = events
        .iter()
        .find_map(|e| match e {
            FixEvent::TestRunFinished { run, .. } => Some(run.output.clone()),
            _ => None,
        })
        .unwrap();
    assert!(output.contains("cargo 1."), "{output}");
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let uid: u32 = output.lines().next().unwrap().trim().parse().unwrap();
        use selfrepair::sandbox::process::{UID_BASE, UID_SPAN};
        assert!((UID_BASE..UID_BASE + UID_SPAN).contains(&uid), "{output}");
    }
}

// --- The mutation repairer's reach (issue 22) --------------------------------

/// A project as a user's checkout has it: a generated, git-ignored
/// `_version.py` the package imports, a test that uses multiprocessing, and
/// one bug, a missing statement (`seen.add(x)` when counting distinct items). Fixed with no
/// flags: the ignored file is copied, /dev/shm works, and coverage puts the
/// buggy function first. The JSON stream carries the ranking.
#[test]
fn mutate_fixes_a_missing_statement_in_a_project_with_generated_files_and_multiprocessing() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("graphs");
    let w = |rel: &str, text: &str| put(&dir, rel, text);
    w(".gitignore", "graphs/_version.py\n.venv/\n__pycache__/\n");
    w(
        "pyproject.toml",
        "[tool.pytest.ini_options]\ntestpaths = [\"tests\"]\n",
    );
    w(
        "graphs/__init__.py",
        "from ._version import __version__\nfrom .walk import distinct, order\n",
    );
    w(
        "graphs/walk.py",
        "def distinct(items):\n    \"\"\"How many different items there are.\"\"\"\n    seen = set()\n    count = 0\n    for x in items:\n        if x not in seen:\n            count += 1\n    return count\n\n\ndef order(nodes):\n    return sorted(nodes)\n",
    );
    w(
        "tests/test_walk.py",
        "import multiprocessing as mp\n\nimport graphs\nfrom graphs import distinct, order\n\n\ndef test_version():\n    assert graphs.__version__ == \"1.2.3\"\n\n\ndef test_repeats_count_once():\n    assert distinct([1, 2, 1, 3, 2]) == 3\n\n\ndef test_no_repeats():\n    assert distinct([3, 1]) == 2\n\n\ndef test_order_in_a_pool():\n    with mp.Pool(2) as pool:\n        assert pool.map(order, [[2, 1], [3]]) == [[1, 2], [3]]\n",
    );
    git2::Repository::init(&dir).unwrap();
    commit_all(&dir, "graphs");
    // Generated after the commit, as a build backend would: ignored by git.
    w("graphs/_version.py", "__version__ = \"1.2.3\"\n");
    std::fs::create_dir_all(dir.join(".venv/lib")).unwrap();
    let (code, events, err) = fix_json(
        &dir,
        &["--model", "mutate", "--timeout", "20"],
        &[("SELFREPAIR_CACHE", &cache())],
    );
    assert_fixed(code, &events, &err);
    let plan = event(&events, "plan");
    assert_eq!(
        plan["ignored"]["copied"],
        serde_json::json!(["graphs/_version.py"]),
        "{plan}"
    );
    assert!(
        plan["ignored"]["left_out"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == ".venv/"),
        "{plan}"
    );
    let located = event(&events, "localised");
    assert_eq!(located["lines"][0]["file"], "graphs/walk.py", "{located}");
    let done = event(&events, "done");
    let diff = done["diff"]["unified"].as_str().unwrap();
    assert!(
        diff.contains("+            seen.add(x)\n             count += 1")
            || diff.contains("             count += 1\n+            seen.add(x)"),
        "{diff}"
    );
    // The baseline's one failure is the bug; the pool test passed in the jail.
    assert_eq!(
        done["initial_failures"],
        serde_json::json!(["tests/test_walk.py::test_repeats_count_once"]),
        "{done}"
    );
}

/// Every pytest node id comes back whole from a real run: a doctest in an
/// `.rst` file, a module doctest, parametrised ids with spaces, brackets and
/// ` - ` inside a class.
#[test]
fn pytest_node_ids_of_every_shape_are_read_whole() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("ids");
    let w = |rel: &str, text: &str| put(&dir, rel, text);
    w(
        "pyproject.toml",
        "[tool.pytest.ini_options]\naddopts = \"--doctest-glob='*.rst' --doctest-modules\"\n",
    );
    w(
        "calc.py",
        "def add(a, b):\n    \"\"\"\n    >>> add(1, 2)\n    4\n    \"\"\"\n    return a + b\n",
    );
    w(
        "docs/index.rst",
        "Adding\n======\n\n>>> from calc import add\n>>> add(2, 2)\n5\n",
    );
    w(
        "tests/test_calc.py",
        "import pytest\nfrom calc import add\n\n\nclass TestAdd:\n    @pytest.mark.parametrize(\"s\", [\"a b\", \"c - d\", \"[x]\"])\n    def test_words(self, s):\n        assert add(s, \"\") == s + \"!\"\n",
    );
    git2::Repository::init(&dir).unwrap();
    commit_all(&dir, "ids");
    let (code, events, err) = fix_json(
        &dir,
        &["--model", "mutate", "--max-attempts", "1"],
        &[("SELFREPAIR_CACHE", &cache())],
    );
    let done = event(&events, "done");
    assert_eq!(code, Some(1), "{done}\n{err}");
    let mut ids: Vec<String> = done["initial_failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "calc.py::calc.add",
            "docs/index.rst::index.rst",
            "tests/test_calc.py::TestAdd::test_words[[x]]",
            "tests/test_calc.py::TestAdd::test_words[a b]",
            "tests/test_calc.py::TestAdd::test_words[c - d]",
        ],
        "{done}"
    );
    // The ids select the tests again: the attempt's failing run found them.
    let failing_run = events
        .iter()
        .find(|e| e["event"] == "test_run_finished" && e["scope"] == "failing")
        .expect("a run of the failing tests");
    assert_ne!(failing_run["run"]["status"], "no_tests", "{failing_run}");
}

// --- fix at scale (issue 23) ---

/// py-inventory plus a test that imports a module that does not exist:
/// test files are read-only, so no mutant can make the suite pass.
fn unfixable_repo() -> (tempfile::TempDir, PathBuf) {
    let (t, dir) = example_repo("py-inventory");
    std::fs::write(
        dir.join("tests/test_more.py"),
        "from inventory.stok import Inventory\n\ndef test_more():\n    assert Inventory\n",
    )
    .unwrap();
    commit_all(&dir, "more");
    (t, dir)
}

/// `selfrepair <args> <dir>`: exit code, stdout, stderr.
fn sr(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = bin()
        .args(args)
        .arg(dir)
        .env("SELFREPAIR_HOME", cache())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn state_dir(dir: &Path, id: &str) -> PathBuf {
    dir.join(".git/selfrepair").join(id)
}

/// The session's branch and `refs/selfrepair/<id>/*`, sorted.
fn session_refs(dir: &Path, id: &str) -> Vec<String> {
    let repo = git2::Repository::open(dir).unwrap();
    let mut v: Vec<String> = repo
        .references()
        .unwrap()
        .flatten()
        .filter_map(|r| r.name().ok().map(str::to_string))
        .filter(|n| {
            n == &format!("refs/heads/selfrepair/{id}")
                || n.starts_with(&format!("refs/selfrepair/{id}/"))
        })
        .collect();
    v.sort();
    v
}

fn log_lines(dir: &Path, id: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(state_dir(dir, id).join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// One documented field: its name, whether it may be absent, and the
/// documented object it holds (`object run`, `array of failure`).
struct DocField {
    name: String,
    optional: bool,
    object: Option<String>,
}

/// docs/fix-json.md's tables by section: `event:plan`, `object:run`, …
fn documented_schema() -> std::collections::BTreeMap<String, Vec<DocField>> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/fix-json.md"))
            .unwrap();
    let mut out = std::collections::BTreeMap::new();
    let mut section: Option<String> = None;
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            let (kind, rest) = h.split_once(':').unwrap_or(("", ""));
            section = rest.split('`').nth(1).map(|n| format!("{kind}:{n}"));
            continue;
        }
        if line.starts_with("## ") {
            section = None;
        }
        let Some(s) = &section else { continue };
        if !line.starts_with("| `") {
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let ty = cells[2];
        let object = ty
            .strip_prefix("object ")
            .or_else(|| ty.strip_prefix("array of "))
            .map(|t| t.split(',').next().unwrap().trim().to_string());
        out.entry(s.clone())
            .or_insert_with(Vec::new)
            .push(DocField {
                name: cells[1].trim_matches('`').to_string(),
                optional: ty.contains("optional"),
                object,
            });
    }
    out
}

/// Every key of `v` is documented in `section`, every documented field
/// that is not optional is there, and documented objects inside match too.
fn check_documented(
    schema: &std::collections::BTreeMap<String, Vec<DocField>>,
    section: &str,
    v: &serde_json::Value,
    at: &str,
) {
    let fields = schema
        .get(section)
        .unwrap_or_else(|| panic!("{at}: docs/fix-json.md has no section {section}"));
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("{at}: not an object: {v}"));
    for k in obj.keys() {
        assert!(
            fields.iter().any(|f| &f.name == k),
            "{at}.{k} is not documented under {section}"
        );
    }
    for f in fields {
        let Some(x) = obj.get(&f.name) else {
            assert!(f.optional, "{at}: documented field {} is missing", f.name);
            continue;
        };
        let Some(o) = &f.object else { continue };
        let sub = format!("object:{o}");
        if !schema.contains_key(&sub) {
            continue;
        }
        match x {
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    check_documented(schema, &sub, item, &format!("{at}.{}[{i}]", f.name));
                }
            }
            serde_json::Value::Null => {}
            _ => check_documented(schema, &sub, x, &format!("{at}.{}", f.name)),
        }
    }
}

fn check_event(schema: &std::collections::BTreeMap<String, Vec<DocField>>, e: &serde_json::Value) {
    let name = e["event"]
        .as_str()
        .unwrap_or_else(|| panic!("no event name: {e}"));
    check_documented(schema, &format!("event:{name}"), e, name);
}

/// One exit path of `fix --json`: its exit code, exactly one `done`, last,
/// with the outcome (and a reason_code exactly for errors), and every
/// event as documented. The event kinds seen go into `seen`.
fn check_exit_path(
    what: &str,
    (code, events, err): (Option<i32>, Vec<serde_json::Value>, String),
    outcome: &str,
    exit: i32,
    seen: &mut std::collections::BTreeSet<String>,
) -> serde_json::Value {
    let schema = documented_schema();
    assert_eq!(code, Some(exit), "{what}: {events:?}\n{err}");
    let dones = events.iter().filter(|e| e["event"] == "done").count();
    assert_eq!(dones, 1, "{what}: {events:?}");
    let done = events.last().unwrap().clone();
    assert_eq!(done["event"], "done", "{what}");
    assert_eq!(done["outcome"], outcome, "{what}: {done}");
    assert_eq!(
        done["reason_code"].is_string(),
        outcome == "error",
        "{what}: {done}"
    );
    for e in &events {
        check_event(&schema, e);
        seen.insert(e["event"].as_str().unwrap().to_string());
    }
    done
}

#[test]
fn fix_json_matches_the_documented_schema_on_every_exit_path() {
    let schema = documented_schema();
    let home = [("SELFREPAIR_HOME", cache())];
    let env: Vec<(&str, &OsStr)> = home.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    let mut seen = std::collections::BTreeSet::new();

    // fixed, and its session log (diffs only) matches too.
    let (_t, dir) = example_repo("py-inventory");
    let done = check_exit_path(
        "fixed",
        fix_json(&dir, &["--model", "mutate"], &env),
        "fixed",
        0,
        &mut seen,
    );
    assert!(
        done["reason"]
            .as_str()
            .unwrap()
            .contains("passes every test")
    );
    let id = done["session"].as_str().unwrap();
    for e in log_lines(&dir, id) {
        check_event(&schema, &e);
    }

    // nothing to fix, said once.
    let stock = dir.join(STOCK);
    let fixed = std::fs::read_to_string(&stock)
        .unwrap()
        .replace("count(sku) < self", "count(sku) <= self");
    std::fs::write(&stock, fixed).unwrap();
    commit_all(&dir, "fixed by hand");
    let done = check_exit_path(
        "nothing to fix",
        fix_json(&dir, &["--model", "mutate"], &env),
        "nothing_to_fix",
        3,
        &mut seen,
    );
    assert_eq!(done["reason"], "the tests already pass");
    let (code, out, _) = sr(&dir, &["fix", "--model", "mutate"]);
    assert_eq!(code, Some(3));
    assert_eq!(out.matches("nothing to fix").count(), 1, "{out}");

    // not fixed.
    let (_t2, bad) = unfixable_repo();
    check_exit_path(
        "not fixed",
        fix_json(&bad, &["--model", "mutate", "--max-attempts", "1"], &env),
        "not_fixed",
        1,
        &mut seen,
    );

    // Errors, from inside the session and before it.
    let done = check_exit_path(
        "cannot start",
        fix_json(&dir, &["--test", "no-such-test-runner --all"], &env),
        "error",
        2,
        &mut seen,
    );
    assert_eq!(done["reason_code"], "cannot_start", "{done}");
    assert!(done["reason"].as_str().unwrap().contains("could not start"));
    let done = check_exit_path(
        "bad path",
        fix_json(&dir.join("nope"), &["--model", "mutate"], &env),
        "error",
        2,
        &mut seen,
    );
    assert_eq!(done["reason_code"], "bad_path", "{done}");
    let docs = dir.join("docs");
    std::fs::create_dir(&docs).unwrap();
    std::fs::write(docs.join("index.md"), "# docs\n").unwrap();
    let done = check_exit_path(
        "no test command",
        fix_json(&docs, &["--model", "mutate"], &env),
        "error",
        2,
        &mut seen,
    );
    assert_eq!(done["reason_code"], "no_test_command", "{done}");
    let done = check_exit_path(
        "bad flag",
        fix_json(&dir, &["--model", "mutate", "--max-attempts", "0"], &env),
        "error",
        2,
        &mut seen,
    );
    assert_eq!(done["reason_code"], "invalid_arguments", "{done}");
    let empty = dir.parent().unwrap().join("empty");
    std::fs::create_dir(&empty).unwrap();
    git2::Repository::init(&empty).unwrap();
    std::fs::write(empty.join("test_a.py"), "def test_a():\n    assert 1\n").unwrap();
    let done = check_exit_path(
        "no commits",
        fix_json(&empty, &["--model", "mutate"], &env),
        "error",
        2,
        &mut seen,
    );
    assert_eq!(done["reason_code"], "no_commits", "{done}");
    std::fs::remove_file(empty.join("test_a.py")).unwrap();
    std::fs::write(empty.join("pyproject.toml"), "[tool.pytest.ini_options]\n").unwrap();
    commit_all(&empty, "no tests");
    let done = check_exit_path(
        "no tests",
        fix_json(&empty, &["--model", "mutate"], &env),
        "error",
        2,
        &mut seen,
    );
    assert_eq!(done["reason_code"], "no_tests", "{done}");
    assert_eq!(
        done["session"], "",
        "a session that tried nothing is gone: {done}"
    );

    for kind in [
        "plan",
        "test_run_started",
        "test_run_finished",
        "localised",
        "patch",
        "rejected",
        "done",
    ] {
        assert!(
            seen.contains(kind),
            "no {kind} event on these paths: {seen:?}"
        );
    }
}

#[test]
fn the_session_log_keeps_diffs_not_whole_files() {
    // A 300 KB module: a log of whole files would hold it twice per patch.
    // (Long lines, not many: mutants of a many-line file are slow to make.)
    let (_t, dir) = example_repo("py-inventory");
    let stock = dir.join(STOCK);
    let mut text = std::fs::read_to_string(&stock).unwrap();
    for i in 0..300 {
        text.push_str(&format!(
            "# padding {i:05}: the log must not carry this line {}\n",
            "x".repeat(950)
        ));
    }
    std::fs::write(&stock, &text).unwrap();
    commit_all(&dir, "big");
    let env = [("SELFREPAIR_HOME", cache())];
    let env: Vec<(&str, &OsStr)> = env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    let (code, events, err) = fix_json(&dir, &["--model", "mutate"], &env);
    assert_fixed(code, &events, &err);
    // The editor's stream still has each file before and after.
    let patch = event(&events, "patch");
    assert!(patch["files"][0]["old"].as_str().unwrap().len() > 300_000);
    let done = event(&events, "done");
    assert!(done["diff"]["files"][0]["new"].as_str().unwrap().len() > 300_000);

    let id = done["session"].as_str().unwrap();
    let log_path = state_dir(&dir, id).join("log.jsonl");
    let size = std::fs::metadata(&log_path).unwrap().len();
    assert!(size < 100_000, "log.jsonl is {size} bytes");
    let raw = std::fs::read_to_string(&log_path).unwrap();
    assert!(!raw.contains("padding 00150"), "a whole file is in the log");
    let log = log_lines(&dir, id);
    let patches: Vec<&serde_json::Value> = log.iter().filter(|e| e["event"] == "patch").collect();
    assert!(!patches.is_empty());
    for p in patches {
        assert!(p["diff"].as_str().unwrap().contains("@@"), "{p}");
        assert!(p.get("files").is_none(), "{p}");
    }
    let done = log.last().unwrap();
    assert_eq!(done["event"], "done");
    assert!(
        done["diff"]["unified"]
            .as_str()
            .unwrap()
            .contains("+        return self.count(sku) <= self.reorder_level")
    );
    assert!(done["diff"].get("files").is_none(), "{}", done["diff"]);

    // diff and apply read git, not the log.
    let (code, out, err) = sr(&dir, &["diff", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        d["files"][0]["new"]
            .as_str()
            .unwrap()
            .contains("padding 00150")
    );
    let (code, out, err) = sr(&dir, &["apply"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let now = std::fs::read_to_string(&stock).unwrap();
    assert_eq!(now, text.replace("count(sku) < self", "count(sku) <= self"));
}

#[test]
fn a_session_without_a_fix_leaves_no_branch_unless_keep() {
    let (_t, dir) = unfixable_repo();
    let env = [("SELFREPAIR_HOME", cache())];
    let env: Vec<(&str, &OsStr)> = env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    let args = ["--model", "mutate", "--max-attempts", "1"];
    let (code, events, err) = fix_json(&dir, &args, &env);
    assert_eq!(code, Some(1), "{err}");
    let done = event(&events, "done");
    assert_eq!(done["outcome"], "not_fixed", "{done}");
    assert!(events.iter().any(|e| e["event"] == "patch"));
    let id = done["session"].as_str().unwrap().to_string();
    assert_eq!(branches(&dir), vec!["master".to_string()]);
    assert_eq!(session_refs(&dir, &id), Vec::<String>::new());
    // Its log and session.json stay, so `log` still lists it, in the same
    // words as `fix --json`, the reason apart.
    assert!(state_dir(&dir, &id).join("log.jsonl").is_file());
    let (code, out, _) = sr(&dir, &["log", "--json"]);
    assert_eq!(code, Some(0));
    let all: serde_json::Value = serde_json::from_str(&out).unwrap();
    let s = &all[0];
    assert_eq!(s["id"], id.as_str());
    assert_eq!(s["outcome"], "not_fixed", "{s}");
    assert_eq!(s["reason"], done["reason"], "{s}");
    assert_eq!(s["refs_removed"], true, "{s}");
    let (_, out, _) = sr(&dir, &["log"]);
    assert!(
        out.contains(&format!("{id}  ")) && out.contains("not_fixed: "),
        "{out}"
    );
    // Nothing to apply, and the error names the session.
    let (code, _, err) = sr(&dir, &["apply"]);
    assert_eq!(code, Some(2));
    assert!(err.contains(&id) && err.contains("found no fix"), "{err}");
    let (code, _, err) = sr(&dir, &["diff", "--attempt", "1"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--keep"), "{err}");

    // With --keep, the branch and the attempt stay.
    let mut keep = args.to_vec();
    keep.push("--keep");
    let (code, events, err) = fix_json(&dir, &keep, &env);
    assert_eq!(code, Some(1), "{err}");
    let kept = event(&events, "done")["session"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        session_refs(&dir, &kept),
        vec![
            format!("refs/heads/selfrepair/{kept}"),
            format!("refs/selfrepair/{kept}/attempt-1"),
        ]
    );
    let (code, out, err) = sr(&dir, &["diff", "--session", &kept, "--attempt", "1"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("@@"), "{out}");

    // The text summary says the attempts were not kept, and a rejection
    // names how many tests still fail.
    let (code, out, err) = sr(&dir, &["fix", "--model", "mutate", "--max-attempts", "1"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("--keep keeps them"), "{out}");
    assert!(err.contains("still fail"), "{err}");
}

#[test]
fn apply_writes_a_finished_session_and_undo_says_what_it_reverts() {
    let (_t, dir) = example_repo("py-inventory");
    let stock = dir.join(STOCK);
    let before = std::fs::read_to_string(&stock).unwrap();
    let (code, out, err) = sr(&dir, &["fix", "--model", "mutate"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("`selfrepair apply`"), "{out}");
    assert_eq!(std::fs::read_to_string(&stock).unwrap(), before);
    let branch = branches(&dir)
        .into_iter()
        .find(|b| b.starts_with("selfrepair/"))
        .unwrap();
    let id = branch.trim_start_matches("selfrepair/").to_string();

    // No search: apply reads the finished session.
    let started = Instant::now();
    let (code, out, err) = sr(&dir, &["apply"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        out.contains(&format!("applied session {id}")) && out.contains("wrote inventory/stock.py"),
        "{out}"
    );
    let fixed = before.replace("count(sku) < self", "count(sku) <= self");
    assert_eq!(std::fs::read_to_string(&stock).unwrap(), fixed);
    let (code, out, _) = sr(&dir, &["apply", "--session", &id]);
    assert_eq!(code, Some(0));
    assert!(out.contains("already applied"), "{out}");
    assert_eq!(std::fs::read_to_string(&stock).unwrap(), fixed);

    let (code, out, err) = sr(&dir, &["undo"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out.trim(),
        format!("restored inventory/stock.py as before session {id}")
    );
    assert_eq!(std::fs::read_to_string(&stock).unwrap(), before);
    let (code, out, err) = sr(&dir, &["undo"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), format!("session {id} is already undone"));
    assert_eq!(std::fs::read_to_string(&stock).unwrap(), before);

    // Applying again after the undo works, and the help names git's way.
    let (code, _, err) = sr(&dir, &["apply"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(std::fs::read_to_string(&stock).unwrap(), fixed);
    let help = bin().args(["apply", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("selfrepair diff . | git apply"));
}

/// `YYYYMMDD-HHMMSS` (UTC) `ago` before now.
fn stamp_ago(ago: Duration) -> String {
    workspace::stamp_at(std::time::SystemTime::now() - ago)
}

#[test]
fn prune_removes_old_sessions_and_spares_running_ones() {
    let (_t, dir) = example_repo("py-inventory");
    let (code, out, err) = sr(&dir, &["fix", "--model", "mutate"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let real = branches(&dir)
        .into_iter()
        .find(|b| b.starts_with("selfrepair/"))
        .unwrap()
        .trim_start_matches("selfrepair/")
        .to_string();
    let template: serde_json::Value = serde_json::from_slice(
        &std::fs::read(state_dir(&dir, &real).join("session.json")).unwrap(),
    )
    .unwrap();
    let repo = git2::Repository::open(&dir).unwrap();
    let head = repo.head().unwrap().target().unwrap();
    // Older sessions, as earlier runs would have left them.
    let day = Duration::from_secs(86400);
    let fake = |ago: Duration, outcome: Option<&str>, state: bool, attempt: bool| {
        let created = stamp_ago(ago);
        let id = format!("{created}-beef");
        repo.reference(&format!("refs/heads/selfrepair/{id}"), head, false, "t")
            .unwrap();
        if attempt {
            repo.reference(&format!("refs/selfrepair/{id}/attempt-1"), head, false, "t")
                .unwrap();
        }
        if state {
            let mut s = template.clone();
            s["id"] = id.clone().into();
            s["created"] = created.into();
            s["branch"] = format!("selfrepair/{id}").into();
            s["outcome"] = outcome.into();
            s["reason"] = outcome.map(|_| "made up").into();
            let d = state_dir(&dir, &id);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("session.json"), s.to_string()).unwrap();
            std::fs::write(d.join("log.jsonl"), "{}\n").unwrap();
        }
        id
    };
    let old = fake(day * 40, Some("not_fixed"), true, true);
    let recent = fake(Duration::from_secs(7200), Some("fixed"), true, false);
    let orphan = fake(day * 10, None, false, true);
    let unfinished = fake(day * 3, None, true, false);
    let exists = |id: &str| !session_refs(&dir, id).is_empty() || state_dir(&dir, id).exists();

    let (code, out, err) = sr(&dir, &["prune", "--older-than", "30d", "--dry-run"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&format!("would remove {old}")), "{out}");
    assert_eq!(out.matches("would remove 20").count(), 1, "{out}");
    assert!(exists(&old), "a dry run removed something");

    let (code, out, err) = sr(&dir, &["prune", "--older-than", "30d"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&format!("removed {old}")), "{out}");
    assert!(!exists(&old));
    for id in [&recent, &orphan, &unfinished, &real] {
        assert!(exists(id), "{id} went: {out}");
    }

    // By default every finished session goes (and refs left without one),
    // but not one that has not finished, nor one from the last minute.
    let (code, out, err) = sr(&dir, &["prune"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!exists(&recent) && !exists(&orphan), "{out}");
    assert!(exists(&unfinished) && exists(&real), "{out}");
    assert!(
        out.contains(&format!("kept {real}: it started in the last minute")),
        "{out}"
    );
    assert!(
        out.contains(&format!("kept {unfinished}: it has not finished")),
        "{out}"
    );
    let (_, log, _) = sr(&dir, &["log"]);
    assert!(log.contains(&real) && !log.contains(&recent), "{log}");

    let (code, out, err) = sr(&dir, &["prune", "--older-than", "1d"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!exists(&unfinished), "{out}");
    assert!(exists(&real), "{out}");
    assert_eq!(
        branches(&dir),
        vec!["master".to_string(), format!("selfrepair/{real}")]
    );

    let (code, _, err) = sr(&dir, &["prune", "--older-than", "30x"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("s, m, h, d, w"), "{err}");
}

/// An npm project whose tests need its installed (git-ignored)
/// `node_modules`: the work copy links it, the jail reads it in place, and
/// the mutation repairer fixes the bug. Nothing is copied or committed.
#[test]
fn an_npm_projects_node_modules_are_used_in_place() {
    if which("node").is_none() {
        eprintln!("skipped: no node on PATH");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("js");
    let w = |rel: &str, text: &str| put(&dir, rel, text);
    w(".gitignore", "node_modules/\n");
    w(
        "package.json",
        "{\"name\": \"js\", \"version\": \"1.0.0\", \"scripts\": {\"test\": \"node test.js\"}}\n",
    );
    w(
        "index.js",
        "const twice = require('twice');\nfunction atLeast(n, level) {\n  return twice(n) > level;\n}\nmodule.exports = { atLeast };\n",
    );
    w(
        "test.js",
        "const assert = require('assert');\nconst { atLeast } = require('./index');\nassert.strictEqual(atLeast(2, 4), true);\nassert.strictEqual(atLeast(1, 4), false);\nconsole.log('ok');\n",
    );
    git2::Repository::init(&dir).unwrap();
    commit_all(&dir, "js");
    // Installed after the commit, as `npm ci` would: ignored by git.
    w(
        "node_modules/twice/index.js",
        "module.exports = (n) => 2 * n;\n",
    );
    w(
        "node_modules/twice/package.json",
        "{\"name\": \"twice\", \"main\": \"index.js\"}\n",
    );
    let (code, events, err) = fix_json(&dir, &["--model", "mutate"], &[]);
    assert_fixed(code, &events, &err);
    let plan = event(&events, "plan");
    assert_eq!(
        plan["ignored"]["left_out"],
        serde_json::json!(["node_modules/ (used in place, read-only)"]),
        "{plan}"
    );
    let done = event(&events, "done");
    let diff = done["diff"]["unified"].as_str().unwrap();
    assert!(diff.contains("+  return twice(n) >= level;"), "{diff}");
    assert!(!diff.contains("node_modules"), "{diff}");
}

/// A node:test suite with nested `describe` blocks, run by node itself:
/// failures are named by their titles (`math › nested › subtracts`), the
/// suites that only repeat their children's verdicts are not counted, and
/// the message is the assertion's.
#[test]
fn node_test_failures_are_named_by_their_describe_titles() {
    if which("node").is_none() {
        eprintln!("skipped: no node on PATH");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("js");
    let w = |rel: &str, text: &str| put(&dir, rel, text);
    w(
        "package.json",
        "{\"name\": \"js\", \"version\": \"1.0.0\", \"scripts\": {\"test\": \"node --test\"}}\n",
    );
    w(
        "calc.js",
        "function add(a, b) {\n  return a + b;\n}\nfunction sub(a, b) {\n  return a + b;\n}\nmodule.exports = { add, sub };\n",
    );
    w(
        "test/calc.test.js",
        "const { describe, it } = require('node:test');\nconst assert = require('assert');\nconst { add, sub } = require('../calc');\ndescribe('math', () => {\n  it('adds', () => assert.strictEqual(add(2, 1), 3));\n  describe('nested', () => {\n    it('subtracts', () => assert.strictEqual(sub(2, 1), 1));\n  });\n});\n",
    );
    git2::Repository::init(&dir).unwrap();
    commit_all(&dir, "js");
    let (code, events, err) = fix_json(&dir, &["--model", "mutate"], &[]);
    assert_fixed(code, &events, &err);
    let done = event(&events, "done");
    assert_eq!(
        done["initial_failures"],
        serde_json::json!(["math › nested › subtracts"]),
        "{done}"
    );
    let baseline = events
        .iter()
        .find(|e| e["event"] == "test_run_finished")
        .unwrap();
    let failed = &baseline["run"]["report"]["failed"][0];
    assert_eq!(
        failed["message"], "Expected values to be strictly equal: 3 !== 1",
        "{baseline}"
    );
    let diff = done["diff"]["unified"].as_str().unwrap();
    assert!(diff.contains("+  return a - b;"), "{diff}");
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// A large untracked (not ignored) tree is never snapshotted: it stays out
/// of the base commit and every attempt, the plan says so, and the fix is
/// found all the same.
#[test]
fn a_large_untracked_tree_stays_out_of_the_sessions_commits() {
    let (_t, dir) = example_repo("py-inventory");
    for i in 0..2100 {
        put(&dir, &format!("bigdata/part{i:04}.txt"), "x\n");
    }
    let (code, events, err) = fix_json(
        &dir,
        &["--model", "mutate", "--keep"],
        &[("SELFREPAIR_CACHE", &cache())],
    );
    assert_fixed(code, &events, &err);
    let plan = event(&events, "plan");
    assert!(
        plan["ignored"]["left_out"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().starts_with("bigdata/ (untracked")),
        "{plan}"
    );
    let done = event(&events, "done");
    let repo = git2::Repository::open(&dir).unwrap();
    let branch = repo
        .find_branch(done["branch"].as_str().unwrap(), git2::BranchType::Local)
        .unwrap();
    let fix = branch.get().peel_to_commit().unwrap();
    for c in [fix.clone(), fix.parent(0).unwrap()] {
        assert!(
            c.tree().unwrap().get_name("bigdata").is_none(),
            "{:?} holds bigdata/",
            c.summary()
        );
    }
    // The user's tree still has it, untouched.
    assert!(dir.join("bigdata/part2099.txt").is_file());
}

// --- transcripts and replay ---

/// `selfrepair fix <dir> --json <args>` with the shared cache; killed, and
/// the test failed, if it outlasts `limit` (a replay must never hang).
async fn fix_json_within(
    dir: &Path,
    args: &[&str],
    limit: Duration,
) -> (Option<i32>, Vec<serde_json::Value>, String) {
    let mut c = bin();
    c.arg("fix").arg(dir).arg("--json").args(args);
    c.env("SELFREPAIR_HOME", cache());
    let mut c = tokio::process::Command::from(c);
    c.kill_on_drop(true);
    let out = tokio::time::timeout(limit, c.output())
        .await
        .unwrap_or_else(|_| panic!("`fix {args:?}` still running after {limit:?}"))
        .unwrap();
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (
        out.status.code(),
        events,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A model session records each call in `transcript.jsonl` beside its log,
/// and the plan says where. `fix --model replay:<state dir>` on a fresh
/// copy of the repository, with the server gone, makes the same fix (a new
/// session id and new paths do not change the requests' fingerprints).
/// A transcript that lacks a call ends the replay with a `model` error
/// naming the miss.
#[tokio::test]
async fn a_model_session_is_recorded_and_replays_offline_to_the_same_fix() {
    use selfrepair::model::transcript::{TRANSCRIPT_FILE, read_entries};
    let (tmp, dir) = example_repo("py-inventory");
    let server = TestServer::start().await.unwrap();
    server.enqueue(explain_reply());
    // A patch that does not apply, so the second attempt's prompt carries
    // feedback that must replay too.
    server.enqueue(Reply::text(
        "inventory/stock.py\n<<<<<<< SEARCH\n    no such text\n=======\n        return True\n>>>>>>> REPLACE\n",
    ));
    server.enqueue(explain_reply());
    server.enqueue(Reply::text(format!("```\n{GOOD_PATCH}```\n")).with_usage(1000, 30));
    let mut opts = FixOptions::new(&dir);
    opts.max_attempts = 3;
    let (r, events) = run(opts, model(&server), CancellationToken::new()).await;
    let s = r.unwrap();
    assert_eq!(s.outcome, Outcome::Fixed, "{}", s.reason);
    assert_eq!(s.winning_attempt, Some(2));

    let state = state_dir(&dir, &s.session);
    let transcript = state.join(TRANSCRIPT_FILE);
    let FixEvent::Plan {
        transcript: planned,
        ..
    } = &events[0]
    else {
        panic!("the first event is not the plan: {:?}", events[0]);
    };
    assert_eq!(planned.as_deref(), Some(transcript.as_path()));
    check_event(
        &documented_schema(),
        &serde_json::to_value(&events[0]).unwrap(),
    );
    assert!(
        log_lines(&dir, &s.session)[0]["transcript"]
            .as_str()
            .is_some_and(|t| t.ends_with("transcript.jsonl")),
        "the log's plan names the transcript"
    );

    // One entry per call, in order, as the server saw them.
    let sent = server.requests();
    assert_eq!(sent.len(), 4);
    let entries = read_entries(&transcript).unwrap();
    assert_eq!(entries.len(), sent.len());
    for (e, req) in entries.iter().zip(&sent) {
        assert_eq!(e.task.as_deref(), Some(s.session.as_str()));
        assert!(e.error.is_none(), "{:?}", e.error);
        assert_eq!(
            e.request.messages.last().map(|m| m.content.clone()),
            req.last_user_message()
        );
    }
    assert!(
        entries[3].response.as_ref().unwrap().choices[0]
            .text
            .contains("<= self.reorder_level")
    );
    server.stop().await;

    // Offline, on a fresh copy, through the CLI as a user would.
    let limit = Duration::from_secs(300);
    let (_t2, again) = example_repo("py-inventory");
    let replay = format!("replay:{}", state.display());
    let (code, ev, err) =
        fix_json_within(&again, &["--model", &replay, "--max-attempts", "3"], limit).await;
    assert_fixed(code, &ev, &err);
    let done = event(&ev, "done");
    assert_ne!(done["session"], s.session.as_str());
    assert_eq!(done["diff"]["unified"], s.diff.unified.as_str(), "{done}");
    assert_eq!(done["winning_attempt"], 2, "{done}");
    assert_eq!(done["tokens"], s.tokens, "recorded usage replays: {done}");
    // The replay is recorded too: the same requests, answered by replay.
    let id = done["session"].as_str().unwrap();
    let replayed = read_entries(&state_dir(&again, id).join(TRANSCRIPT_FILE)).unwrap();
    assert_eq!(
        replayed.iter().map(|e| &e.fingerprint).collect::<Vec<_>>(),
        entries.iter().map(|e| &e.fingerprint).collect::<Vec<_>>()
    );
    assert!(replayed.iter().all(|e| e.provider == "replay"));

    // A transcript without the last call (the good patch): the replay
    // stops at that call with a `model` error naming the miss.
    let partial = tmp.path().join("partial.jsonl");
    let text = std::fs::read_to_string(&transcript).unwrap();
    let kept: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
    std::fs::write(&partial, kept).unwrap();
    let (_t3, third) = example_repo("py-inventory");
    let replay = format!("replay:{}", partial.display());
    let (code, ev, err) =
        fix_json_within(&third, &["--model", &replay, "--max-attempts", "3"], limit).await;
    assert_eq!(code, Some(2), "{ev:?}\n{err}");
    let done = event(&ev, "done");
    assert_eq!(done["outcome"], "error", "{done}");
    assert_eq!(done["reason_code"], "model", "{done}");
    let reason = done["reason"].as_str().unwrap();
    assert!(
        reason.contains("replay miss: no recorded response for request")
            && reason.contains(&entries[3].fingerprint),
        "{reason}"
    );
    // Attempt 1 (the patch that did not apply) was made; attempt 2's patch
    // was never answered.
    assert_eq!(done["attempts"], 1, "{done}");
}
