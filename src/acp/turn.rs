//! One prompt turn: understand the request, run a fix session, stream its
//! events as `session/update`s, and write the fix into the user's files
//! after asking (through the client's `fs/*` methods when it has them, so
//! unsaved editor buffers are respected).

use super::AgentState;
use crate::fix::{self, FixEvent, FixOptions, Outcome, Summary};
use agent_client_protocol::v1::ConnectionTo;
use agent_client_protocol::v1::schema::{
    Content, ContentBlock, ContentChunk, Cost, Diff, Meta, PermissionOption, PermissionOptionKind,
    Plan, PlanEntry, PlanEntryPriority, PlanEntryStatus, ReadTextFileRequest,
    RequestPermissionOutcome, RequestPermissionRequest, SessionId, SessionNotification,
    SessionUpdate, StopReason, ToolCall, ToolCallContent, ToolCallStatus, ToolCallUpdate,
    ToolCallUpdateFields, ToolKind, UsageUpdate, WriteTextFileRequest,
};
use agent_client_protocol::{Client, Error};
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// The output shown for a test run (the tail, where failures are).
const OUTPUT_SHOWN: usize = 6000;
/// `usage_update.size` when the model's context window is unknown.
const DEFAULT_CONTEXT: u64 = 128_000;

/// What the user asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Intent {
    /// Fix the failing tests (all, or the ones matching `focus`).
    Fix {
        focus: Option<String>,
    },
    /// Explain why a test fails, without changing anything.
    Explain {
        focus: Option<String>,
    },
    Help,
}

const NOT_IDS: &[&str] = &[
    "the", "tests", "failing", "suite", "all", "my", "these", "this", "that", "test",
];

/// `fix the failing tests`, `fix test X`, `why does test X fail?`.
pub(crate) fn intent(text: &str) -> Intent {
    let lower = text.to_lowercase();
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut focus = None;
    for (i, w) in words.iter().enumerate() {
        if w.eq_ignore_ascii_case("test") && i + 1 < words.len() {
            let id = words[i + 1].trim_matches(|c: char| "`'\"?,.!:;".contains(c) && c != ':');
            let id = id.trim_end_matches(['?', ',', '.', '!', '`', '\'', '"']);
            if !id.is_empty() && !NOT_IDS.contains(&id.to_lowercase().as_str()) {
                focus = Some(id.to_string());
                break;
            }
        }
    }
    if lower.contains("why") || lower.contains("explain") {
        Intent::Explain { focus }
    } else if lower.contains("fix")
        || lower.contains("repair")
        || lower.contains("make") && lower.contains("pass")
    {
        Intent::Fix { focus }
    } else {
        Intent::Help
    }
}

struct Updates<'a> {
    cx: &'a ConnectionTo<Client>,
    sid: &'a SessionId,
}

impl Updates<'_> {
    fn send(&self, u: SessionUpdate) {
        // A client that went away ends the turn through the shutdown token.
        if let Err(e) = self
            .cx
            .send_notification(SessionNotification::new(self.sid.clone(), u))
        {
            tracing::debug!(error = %e, "session/update not sent");
        }
    }
    fn say(&self, text: impl Into<String>) {
        self.send(SessionUpdate::AgentMessageChunk(ContentChunk::new(
            ContentBlock::from(text.into()),
        )));
    }
    fn plan(&self, steps: &[(&str, PlanEntryStatus)]) {
        self.send(SessionUpdate::Plan(Plan::new(
            steps
                .iter()
                .map(|(s, st)| PlanEntry::new(*s, PlanEntryPriority::High, st.clone()))
                .collect(),
        )));
    }
}

fn text_content(t: impl Into<String>) -> ToolCallContent {
    ToolCallContent::Content(Content::new(ContentBlock::from(t.into())))
}

fn tail(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut at = s.len() - n;
    while !s.is_char_boundary(at) {
        at += 1;
    }
    &s[at..]
}

/// How a turn ended: the stop reason, and for a fix session its outcome in
/// `_meta.selfrepair` (`outcome`, `reason_code`, `session`), named as
/// `fix --json` and MCP name them.
pub(crate) struct TurnEnd {
    pub stop: StopReason,
    pub meta: Option<Meta>,
}

impl From<StopReason> for TurnEnd {
    fn from(stop: StopReason) -> Self {
        TurnEnd { stop, meta: None }
    }
}

impl TurnEnd {
    fn with_outcome(stop: StopReason, s: &Summary) -> Self {
        let outcome = serde_json::json!({
            "outcome": s.outcome.as_str(),
            "reason_code": s.reason_code,
            "session": s.session,
        });
        let mut meta = Meta::new();
        meta.insert("selfrepair".into(), outcome);
        TurnEnd {
            stop,
            meta: Some(meta),
        }
    }
}

pub(crate) async fn run(
    state: &AgentState,
    cx: &ConnectionTo<Client>,
    sid: &SessionId,
    cwd: &Path,
    prompt: &[ContentBlock],
    cancel: &CancellationToken,
) -> TurnEnd {
    let up = Updates { cx, sid };
    let text: Vec<String> = prompt
        .iter()
        .filter_map(|b| match b {
            ContentBlock::Text(t) => Some(t.text.clone()),
            _ => None,
        })
        .collect();
    let intent = intent(&text.join("\n"));
    let (focus, explain_only) = match intent {
        Intent::Help => {
            up.say(
                "I repair failing tests in this project. Try: \"fix the failing tests\", \
                 \"fix test <name>\" or \"why does test <name> fail?\"",
            );
            return StopReason::EndTurn.into();
        }
        Intent::Fix { focus } => (focus, false),
        Intent::Explain { focus } => (focus, true),
    };
    let repairer = match fix::choose::configured(cwd, &crate::config::ModelFlags::default(), false)
    {
        Ok(r) => r,
        Err(e) => {
            up.say(format!("I cannot start: {e}"));
            return StopReason::EndTurn.into();
        }
    };
    let repairer_name = fix::choose::describe(&repairer);
    let mut steps = vec![
        (
            "Run the tests and collect the failures",
            PlanEntryStatus::InProgress,
        ),
        ("Explain what is wrong", PlanEntryStatus::Pending),
    ];
    if !explain_only {
        steps.push((
            "Propose fixes and test each one in the sandbox",
            PlanEntryStatus::Pending,
        ));
        steps.push((
            "Apply the fix to your files (after you approve)",
            PlanEntryStatus::Pending,
        ));
    }
    up.plan(&steps);

    let mut opts = FixOptions::new(cwd);
    opts.max_attempts = state.opts.max_attempts;
    opts.runner.timeout = std::time::Duration::from_secs(state.opts.test_timeout_secs);
    opts.focus = focus;
    opts.mode = if explain_only {
        fix::FixMode::Explain
    } else {
        fix::FixMode::Repair
    };
    let session = fix::Session::new(opts, repairer, cancel.clone());
    let root = user_root(cwd);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<FixEvent>();
    let on_event = move |e: &FixEvent| {
        let _ = tx.send(e.clone());
    };
    let run = async move { session.run_reporting(&on_event).await };
    let forward = async {
        let mut tokens = 0u64;
        while let Some(e) = rx.recv().await {
            forward_event(&up, &root, &e, &mut steps, &repairer_name, &mut tokens);
        }
    };
    let (result, ()) = tokio::join!(run, forward);
    let summary = match result {
        Ok(s) => s,
        Err((e, s)) => {
            up.say(format!("The fix session stopped: {e}"));
            let stop = if cancel.is_cancelled() {
                StopReason::Cancelled
            } else {
                StopReason::EndTurn
            };
            return TurnEnd::with_outcome(stop, &s);
        }
    };
    let stop = finish(state, &up, &root, &summary, cancel).await;
    TurnEnd::with_outcome(stop, &summary)
}

fn set_step(steps: &mut [(&str, PlanEntryStatus)], i: usize, st: PlanEntryStatus) {
    for (j, s) in steps.iter_mut().enumerate() {
        if j < i {
            s.1 = PlanEntryStatus::Completed;
        } else if j == i {
            s.1 = st.clone();
        }
    }
}

fn forward_event(
    up: &Updates,
    root: &Path,
    e: &FixEvent,
    steps: &mut Vec<(&'static str, PlanEntryStatus)>,
    repairer: &str,
    tokens: &mut u64,
) {
    match e {
        FixEvent::Plan {
            test_command,
            reason,
            branch,
            python,
            ..
        } => {
            let python = python
                .as_ref()
                .map(|p| format!(" Python: `{}` ({}).", p.python.display(), p.reason))
                .unwrap_or_default();
            up.send(SessionUpdate::AgentThoughtChunk(ContentChunk::new(ContentBlock::from(
                format!(
                    "Tests: `{test_command}` ({reason}).{python} Repairer: {repairer}. Attempts are committed on `{branch}`; your files stay untouched until you approve."
                ),
            ))));
        }
        FixEvent::TestRunStarted {
            attempt,
            scope,
            command,
        } => {
            up.send(SessionUpdate::ToolCall(
                ToolCall::new(
                    format!("test-{attempt}-{scope}"),
                    format!("Run {scope} tests: {command}"),
                )
                .kind(ToolKind::Execute)
                .status(ToolCallStatus::InProgress)
                .raw_input(serde_json::json!({ "command": command, "scope": scope })),
            ));
        }
        FixEvent::TestRunFinished {
            attempt,
            scope,
            run,
        } => {
            let passed = matches!(run.status, fix::runner::RunStatus::Passed);
            let failing: Vec<String> = run.report.failed_ids().into_iter().collect();
            let mut body = format!(
                "exit {} in {} ms; {}\n",
                run.exit_code.map_or("-".to_string(), |c| c.to_string()),
                run.duration_ms,
                if failing.is_empty() {
                    "no failing tests".to_string()
                } else {
                    format!("{} failing: {}", failing.len(), fix::cap_list(&failing, 20))
                }
            );
            body.push_str(tail(&run.output, OUTPUT_SHOWN));
            up.send(SessionUpdate::ToolCallUpdate(ToolCallUpdate::new(
                format!("test-{attempt}-{scope}"),
                ToolCallUpdateFields::new()
                    .status(if passed {
                        ToolCallStatus::Completed
                    } else {
                        ToolCallStatus::Failed
                    })
                    .content(vec![text_content(body)])
                    .raw_output(serde_json::json!({ "status": format!("{:?}", run.status), "failing": failing })),
            )));
            if *attempt == 0 && *scope == fix::RunScope::Baseline {
                set_step(steps, 1, PlanEntryStatus::InProgress);
                up.plan(steps);
            }
        }
        FixEvent::Explanation { text, .. } => up.say(format!("{text}\n")),
        FixEvent::Patch {
            attempt,
            description,
            files,
            ..
        } => {
            if steps.len() > 2 {
                set_step(steps, 2, PlanEntryStatus::InProgress);
                up.plan(steps);
            }
            // Proposed on the work copy; the user's files change only at the end.
            let diffs = files
                .iter()
                .map(|f| {
                    ToolCallContent::Diff(
                        Diff::new(root.join(&f.path), f.new.clone().unwrap_or_default())
                            .old_text(f.old.clone()),
                    )
                })
                .collect();
            up.send(SessionUpdate::ToolCall(
                ToolCall::new(
                    format!("patch-{attempt}"),
                    format!("Attempt {attempt} (on a copy): {description}"),
                )
                .kind(ToolKind::Edit)
                .status(ToolCallStatus::InProgress)
                .content(diffs),
            ));
        }
        FixEvent::Rejected { attempt, reason } => {
            up.send(SessionUpdate::ToolCallUpdate(ToolCallUpdate::new(
                format!("patch-{attempt}"),
                ToolCallUpdateFields::new()
                    .status(ToolCallStatus::Failed)
                    .content(vec![text_content(format!("Rejected: {reason}"))]),
            )));
        }
        FixEvent::Usage {
            tokens: t,
            cost_usd,
        } => {
            *tokens = *t;
            up.send(SessionUpdate::UsageUpdate(
                UsageUpdate::new(*t, DEFAULT_CONTEXT.max(*t)).cost(Cost::new(*cost_usd, "USD")),
            ));
        }
        FixEvent::Localised { lines, .. } => {
            let top: Vec<String> = lines
                .iter()
                .take(5)
                .map(|l| format!("{}:{} ({:.2})", l.file, l.line, l.score))
                .collect();
            up.say(format!("Most suspicious lines: {}\n", top.join(", ")));
        }
        FixEvent::Done(s) => {
            if let Some(a) = s.winning_attempt {
                up.send(SessionUpdate::ToolCallUpdate(ToolCallUpdate::new(
                    format!("patch-{a}"),
                    ToolCallUpdateFields::new().status(ToolCallStatus::Completed),
                )));
            }
        }
    }
}

/// The user's root that the summary's paths are relative to.
fn user_root(cwd: &Path) -> PathBuf {
    git2::Repository::discover(cwd)
        .ok()
        .and_then(|r| r.workdir().map(Path::to_path_buf))
        .unwrap_or_else(|| cwd.to_path_buf())
}

async fn finish(
    state: &AgentState,
    up: &Updates<'_>,
    root: &Path,
    s: &Summary,
    cancel: &CancellationToken,
) -> StopReason {
    match s.outcome {
        Outcome::Cancelled => return StopReason::Cancelled,
        Outcome::AlreadyGreen => {
            up.say(format!(
                "All tests pass already (`{}`); nothing to fix.",
                s.test_command
            ));
            return StopReason::EndTurn;
        }
        Outcome::NotFixed => {
            up.say(format!(
                "No fix found: {}. The session's log: `selfrepair log --session {}`.",
                s.reason, s.session
            ));
            return StopReason::EndTurn;
        }
        Outcome::Error => {
            up.say(format!("The fix session stopped: {}", s.reason));
            return StopReason::EndTurn;
        }
        Outcome::Reported => return StopReason::EndTurn,
        Outcome::Fixed => {}
    }
    let caps = state.client_caps();
    let mut applied = 0usize;
    for (i, f) in s.diff.files.iter().enumerate() {
        let path = root.join(&f.path);
        let id = format!("apply-{i}");
        let diff =
            Diff::new(path.clone(), f.new.clone().unwrap_or_default()).old_text(f.old.clone());
        up.send(SessionUpdate::ToolCall(
            ToolCall::new(id.clone(), format!("Apply the fix to {}", f.path))
                .kind(ToolKind::Edit)
                .status(ToolCallStatus::Pending)
                .content(vec![ToolCallContent::Diff(diff.clone())]),
        ));
        if !state.opts.auto_approve {
            let ask = RequestPermissionRequest::new(
                up.sid.clone(),
                ToolCallUpdate::new(
                    id.clone(),
                    ToolCallUpdateFields::new()
                        .title(format!("Apply the fix to {}", f.path))
                        .kind(ToolKind::Edit)
                        .content(vec![ToolCallContent::Diff(diff)]),
                ),
                vec![
                    PermissionOption::new("apply", "Apply", PermissionOptionKind::AllowOnce),
                    PermissionOption::new("skip", "Don't apply", PermissionOptionKind::RejectOnce),
                ],
            );
            let answer = tokio::select! {
                r = up.cx.send_request(ask).block_task() => r,
                _ = cancel.cancelled() => return StopReason::Cancelled,
            };
            let allowed = match answer.map(|r| r.outcome) {
                Ok(RequestPermissionOutcome::Selected(o)) => o.option_id.0.as_ref() == "apply",
                Ok(RequestPermissionOutcome::Cancelled) => return StopReason::Cancelled,
                Ok(_) => false,
                Err(e) => {
                    tracing::warn!(error = %e, "permission request failed");
                    false
                }
            };
            if !allowed {
                up.send(SessionUpdate::ToolCallUpdate(ToolCallUpdate::new(
                    id,
                    ToolCallUpdateFields::new()
                        .status(ToolCallStatus::Failed)
                        .content(vec![text_content("Not applied: you declined.")]),
                )));
                continue;
            }
        }
        let result = write_file(up, &caps, &path, f.old.as_deref(), f.new.as_deref()).await;
        let (status, note) = match result {
            Ok(()) => {
                applied += 1;
                (
                    ToolCallStatus::Completed,
                    format!("Applied to {}", path.display()),
                )
            }
            Err(why) => (ToolCallStatus::Failed, format!("Not applied: {why}")),
        };
        up.send(SessionUpdate::ToolCallUpdate(ToolCallUpdate::new(
            id,
            ToolCallUpdateFields::new()
                .status(status)
                .content(vec![text_content(note)]),
        )));
    }
    up.say(format!(
        "Fixed in attempt {} ({} tokens, ${:.4}); applied {applied} of {} file(s). The fix is also on `{}`.\n\n```diff\n{}```\n",
        s.winning_attempt.unwrap_or(0),
        s.tokens,
        s.cost_usd,
        s.diff.files.len(),
        s.branch,
        s.diff.unified
    ));
    StopReason::EndTurn
}

/// Write `new` over `path` if its current text (the editor's buffer when
/// the client can read it) is still `old`, the text the fix was made from.
async fn write_file(
    up: &Updates<'_>,
    caps: &agent_client_protocol::v1::schema::ClientCapabilities,
    path: &Path,
    old: Option<&str>,
    new: Option<&str>,
) -> Result<(), String> {
    let current = if caps.fs.read_text_file && old.is_some() {
        up.cx
            .send_request(ReadTextFileRequest::new(up.sid.clone(), path.to_path_buf()))
            .block_task()
            .await
            .map(|r| Some(r.content))
            .map_err(|e: Error| format!("the editor could not read {}: {e}", path.display()))?
    } else {
        match std::fs::read_to_string(path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        }
    };
    if current.as_deref() != old {
        return Err(format!(
            "{} changed since the tests ran (unsaved edits?); the fix is left on its branch",
            path.display()
        ));
    }
    match new {
        Some(text) if caps.fs.write_text_file => up
            .cx
            .send_request(WriteTextFileRequest::new(
                up.sid.clone(),
                path.to_path_buf(),
                text,
            ))
            .block_task()
            .await
            .map(|_| ())
            .map_err(|e| format!("the editor could not write {}: {e}", path.display())),
        Some(text) => selfrepair_store::write_atomic(path, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display())),
        None => {
            std::fs::remove_file(path).map_err(|e| format!("cannot delete {}: {e}", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intents() {
        assert_eq!(intent("fix the failing tests"), Intent::Fix { focus: None });
        assert_eq!(
            intent("please fix test test_totals"),
            Intent::Fix {
                focus: Some("test_totals".into())
            }
        );
        assert_eq!(
            intent("Why does test tests/test_inv.py::test_restock fail?"),
            Intent::Explain {
                focus: Some("tests/test_inv.py::test_restock".into())
            }
        );
        assert_eq!(intent("hello"), Intent::Help);
    }
}
