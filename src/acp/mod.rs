//! `selfrepair acp`: an Agent Client Protocol v1 agent on stdio, so editors
//! (Zed, JetBrains, Neovim, Emacs) drive repairs. Built on the
//! `agent-client-protocol` crate's role-based API: the agent answers
//! `initialize`, `session/new`, `session/prompt` and `session/cancel`, and
//! streams `session/update`s while a [`crate::fix::Session`] runs.
//!
//! stdout carries only protocol messages (the crate writes them); logs go to
//! stderr. Each prompt turn runs in its own task so the dispatch loop stays
//! free for `session/cancel` and for the client's answers to our requests.

mod turn;

use agent_client_protocol::schema::ProtocolVersion;
use agent_client_protocol::v1::schema::{
    AgentCapabilities, CancelNotification, ClientCapabilities, Implementation, InitializeRequest,
    InitializeResponse, NewSessionRequest, NewSessionResponse, PromptRequest, PromptResponse,
    SessionId, StopReason,
};
use agent_client_protocol::{Agent, ConnectTo, Error};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// How the agent behaves; the model comes from the same config and env as
/// the CLI (`selfrepair.toml`, `SELFREPAIR_MODEL`, …), per session cwd.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// Write fixes without asking (`session/request_permission` is skipped).
    pub auto_approve: bool,
    /// Model attempts (or mutants) per turn.
    pub max_attempts: usize,
    /// Seconds per test run.
    pub test_timeout_secs: u64,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            auto_approve: false,
            max_attempts: 5,
            test_timeout_secs: 300,
        }
    }
}

struct SessionState {
    cwd: PathBuf,
    /// The running turn's cancellation, if a turn is running.
    turn: Option<CancellationToken>,
}

/// Shared by every handler of one connection.
pub(crate) struct AgentState {
    opts: AgentOptions,
    client: Mutex<ClientCapabilities>,
    sessions: Mutex<HashMap<String, SessionState>>,
    /// Cancels every turn when the client goes away.
    shutdown: CancellationToken,
}

impl AgentState {
    fn lock_sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionState>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub(crate) fn client_caps(&self) -> ClientCapabilities {
        self.client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn new_session_id() -> String {
    let b: [u8; 12] = rand::random();
    format!("sr-{}", hex::encode(b))
}

/// Serve one client on `transport` until it disconnects; every running
/// turn is cancelled then, and its test processes killed.
pub async fn serve(
    transport: impl ConnectTo<Agent> + 'static,
    opts: AgentOptions,
) -> Result<(), Error> {
    let state = Arc::new(AgentState {
        opts,
        client: Mutex::new(ClientCapabilities::default()),
        sessions: Mutex::new(HashMap::new()),
        shutdown: CancellationToken::new(),
    });
    let (s1, s2, s3, s4) = (state.clone(), state.clone(), state.clone(), state.clone());
    let result = Agent
        .v1()
        .name("selfrepair")
        .on_receive_request(
            async move |req: InitializeRequest, responder, _cx| {
                *s1.client.lock().unwrap_or_else(|e| e.into_inner()) = req.client_capabilities;
                let version = if req.protocol_version < ProtocolVersion::V1 {
                    req.protocol_version
                } else {
                    ProtocolVersion::V1
                };
                responder.respond(
                    InitializeResponse::new(version)
                        // No session/load, and prompts are text only.
                        .agent_capabilities(AgentCapabilities::new())
                        .agent_info(Implementation::new("selfrepair", env!("CARGO_PKG_VERSION"))),
                )
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            async move |req: NewSessionRequest, responder, _cx| {
                if !req.cwd.is_absolute() || !req.cwd.is_dir() {
                    return responder.respond_with_error(Error::invalid_params().data(format!(
                        "cwd {} is not an absolute path to a directory",
                        req.cwd.display()
                    )));
                }
                let id = new_session_id();
                s2.lock_sessions().insert(
                    id.clone(),
                    SessionState {
                        cwd: req.cwd.clone(),
                        turn: None,
                    },
                );
                tracing::info!(session = %id, cwd = %req.cwd.display(), "new session");
                responder.respond(NewSessionResponse::new(id))
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            async move |req: PromptRequest, responder, cx| {
                let sid = req.session_id.0.to_string();
                let cancel = s3.shutdown.child_token();
                let cwd =
                    {
                        let mut sessions = s3.lock_sessions();
                        let Some(s) = sessions.get_mut(&sid) else {
                            return responder.respond_with_error(
                                agent_client_protocol::v1::schema::Error::session_not_found(
                                    req.session_id.clone(),
                                )
                                .into(),
                            );
                        };
                        if s.turn.is_some() {
                            return responder.respond_with_error(Error::invalid_request().data(
                                "a prompt is already running in this session; cancel it first",
                            ));
                        }
                        s.turn = Some(cancel.clone());
                        s.cwd.clone()
                    };
                let state = s3.clone();
                let session_id: SessionId = req.session_id.clone();
                cx.spawn({
                    let cx = cx.clone();
                    async move {
                        let end =
                            turn::run(&state, &cx, &session_id, &cwd, &req.prompt, &cancel).await;
                        if let Some(s) = state.lock_sessions().get_mut(&sid) {
                            s.turn = None;
                        }
                        let stop = if cancel.is_cancelled() {
                            StopReason::Cancelled
                        } else {
                            end.stop
                        };
                        // The client may be gone; that ends the connection anyway.
                        let _ = responder.respond(PromptResponse::new(stop).meta(end.meta));
                        Ok(())
                    }
                })
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_notification(
            async move |n: CancelNotification, _cx| {
                let sid = n.session_id.0.to_string();
                if let Some(t) = s4.lock_sessions().get(&sid).and_then(|s| s.turn.clone()) {
                    tracing::info!(session = %sid, "cancelling the running turn");
                    t.cancel();
                }
                Ok(())
            },
            agent_client_protocol::on_receive_notification!(),
        )
        .connect_to(transport)
        .await;
    state.shutdown.cancel();
    result
}

/// `selfrepair acp`: serve on stdin/stdout.
pub async fn serve_stdio(opts: AgentOptions) -> Result<(), Error> {
    serve(agent_client_protocol::Stdio::new(), opts).await
}
