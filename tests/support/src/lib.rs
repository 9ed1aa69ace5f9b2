//! A scripted, OpenAI- and Anthropic-shaped HTTP server for tests, and
//! host-side process helpers ([`procs`]).
//!
//! It listens on `127.0.0.1:0`, answers `POST …/chat/completions` in the
//! OpenAI shape and `POST …/messages` in the Anthropic shape, records every
//! request it receives, and injects faults on demand. Replies are chosen, in
//! order, from: the FIFO queue ([`TestServer::enqueue`]), the first matching
//! rule ([`TestServer::on_contains`]), then the default reply.

pub mod procs;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// What the server answers to one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A well-formed completion.
    Completion {
        text: String,
        /// OpenAI-style finish reason (`stop`, `length`); mapped for Anthropic.
        finish_reason: String,
        /// `None` omits the `usage` object entirely.
        usage: Option<(u64, u64)>,
    },
    /// An error status with a provider-shaped error body.
    Status {
        status: u16,
        message: String,
        retry_after: Option<String>,
    },
    /// Wait, then answer with the inner reply.
    Slow { delay: Duration, then: Box<Reply> },
    /// 200 with a JSON body cut off half way.
    TruncatedJson,
    /// 200 with a body that is not valid UTF-8.
    InvalidUtf8,
    /// Close the connection without answering.
    Disconnect,
    /// Anything else, byte for byte.
    Raw {
        status: u16,
        content_type: String,
        body: Vec<u8>,
    },
}

impl Reply {
    /// A completion with the given text and usage (10 prompt, 5 completion tokens).
    pub fn text(text: impl Into<String>) -> Self {
        Reply::Completion {
            text: text.into(),
            finish_reason: "stop".into(),
            usage: Some((10, 5)),
        }
    }
    /// A completion whose response has no `usage` object.
    pub fn text_without_usage(text: impl Into<String>) -> Self {
        Reply::Completion {
            text: text.into(),
            finish_reason: "stop".into(),
            usage: None,
        }
    }
    pub fn with_usage(self, prompt: u64, completion: u64) -> Self {
        match self {
            Reply::Completion {
                text,
                finish_reason,
                ..
            } => Reply::Completion {
                text,
                finish_reason,
                usage: Some((prompt, completion)),
            },
            other => other,
        }
    }
    pub fn with_finish_reason(self, reason: impl Into<String>) -> Self {
        match self {
            Reply::Completion { text, usage, .. } => Reply::Completion {
                text,
                finish_reason: reason.into(),
                usage,
            },
            other => other,
        }
    }
    pub fn status(status: u16, message: impl Into<String>) -> Self {
        Reply::Status {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
    /// 429 with a `Retry-After` header in seconds.
    pub fn rate_limited(retry_after_secs: f64) -> Self {
        Reply::Status {
            status: 429,
            message: "Rate limit reached".into(),
            retry_after: Some(retry_after_secs.to_string()),
        }
    }
    pub fn server_error() -> Self {
        Reply::status(500, "The server had an error while processing your request")
    }
    pub fn unauthorized() -> Self {
        Reply::status(401, "Incorrect API key provided")
    }
    pub fn slow(delay: Duration, then: Reply) -> Self {
        Reply::Slow {
            delay,
            then: Box::new(then),
        }
    }
}

/// One request as the server received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Header names are lower-case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
    /// Text of the last `user` message (string or Anthropic content blocks).
    pub fn last_user_message(&self) -> Option<String> {
        self.json().as_ref().and_then(last_user_text)
    }
}

struct Rule {
    needle: String,
    reply: Reply,
}

/// Computes a reply from the last user message and the whole request body.
type Responder = Arc<dyn Fn(&str, Option<&Value>) -> Option<Reply> + Send + Sync>;

#[derive(Default)]
struct State {
    queue: VecDeque<Reply>,
    rules: Vec<Rule>,
    responder: Option<Responder>,
    /// GET requests for files under this folder are answered with the file.
    files: Option<std::path::PathBuf>,
    default: Option<Reply>,
    requests: Vec<RecordedRequest>,
    record: bool,
}

/// A running scripted server. Dropping it stops it.
pub struct TestServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Bind `127.0.0.1:0` and start serving on the current tokio runtime.
    pub async fn start() -> std::io::Result<TestServer> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            record: true,
            ..State::default()
        }));
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, state.clone(), rx));
        Ok(TestServer {
            addr,
            state,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// `http://127.0.0.1:PORT` (Anthropic base URL).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// `http://127.0.0.1:PORT/v1` (OpenAI-compatible base URL).
    pub fn openai_base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Answer the next request (whatever it is) with `reply`.
    pub fn enqueue(&self, reply: Reply) {
        self.lock().queue.push_back(reply);
    }
    /// Answer every request whose last user message contains `needle`.
    pub fn on_contains(&self, needle: impl Into<String>, reply: Reply) {
        self.lock().rules.push(Rule {
            needle: needle.into(),
            reply,
        });
    }
    /// Answer with `f(last user message, request JSON)` when the queue is
    /// empty and `f` returns Some; rules and the default apply otherwise.
    pub fn respond_with(
        &self,
        f: impl Fn(&str, Option<&Value>) -> Option<Reply> + Send + Sync + 'static,
    ) {
        self.lock().responder = Some(Arc::new(f));
    }
    /// Serve the files under `root` to GET requests (a dataset mirror, say);
    /// other paths fall through to the scripted replies.
    pub fn serve_files(&self, root: impl Into<std::path::PathBuf>) {
        self.lock().files = Some(root.into());
    }
    /// The reply when neither the queue nor a rule applies (default: text "ok").
    pub fn set_default(&self, reply: Reply) {
        self.lock().default = Some(reply);
    }
    /// Turn request recording off (benchmarks) or on.
    pub fn set_recording(&self, on: bool) {
        self.lock().record = on;
    }
    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }
    pub fn request_count(&self) -> usize {
        self.lock().requests.len()
    }

    /// Stop accepting and drop every open connection.
    pub async fn stop(mut self) {
        self.stop_inner().await;
    }

    async fn stop_inner(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not wedge every later assertion.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<Mutex<State>>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                conns.spawn(async move {
                    let service = service_fn(move |req| handle(req, state.clone()));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            // Reap finished connections so the set does not grow without bound.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

#[derive(Debug)]
struct Disconnect;
impl std::fmt::Display for Disconnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("scripted disconnect")
    }
}
impl std::error::Error for Disconnect {}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
) -> Result<Response<Full<Bytes>>, Disconnect> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let files = state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .files
        .clone();
    if let Some(root) = files
        && method == "GET"
        && !path.split('/').any(|c| c == "..")
    {
        let file = root.join(path.trim_start_matches('/'));
        if let Ok(bytes) = tokio::fs::read(&file).await {
            return Ok(build(200, "application/octet-stream", &[], bytes));
        }
    }
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => return Err(Disconnect),
    };
    let json: Option<Value> = serde_json::from_slice(&body).ok();
    let last_user = json.as_ref().and_then(last_user_text).unwrap_or_default();
    let anthropic = path.ends_with("/messages");

    let reply = {
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        if st.record {
            st.requests.push(RecordedRequest {
                method,
                path,
                headers,
                body,
            });
        }
        if let Some(r) = st.queue.pop_front() {
            r
        } else if let Some(r) = st
            .responder
            .as_ref()
            .and_then(|f| f(&last_user, json.as_ref()))
        {
            r
        } else if let Some(rule) = st.rules.iter().find(|r| last_user.contains(&r.needle)) {
            rule.reply.clone()
        } else {
            st.default.clone().unwrap_or_else(|| Reply::text("ok"))
        }
    };
    respond(reply, anthropic, json.as_ref()).await
}

async fn respond(
    mut reply: Reply,
    anthropic: bool,
    req: Option<&Value>,
) -> Result<Response<Full<Bytes>>, Disconnect> {
    while let Reply::Slow { delay, then } = reply {
        tokio::time::sleep(delay).await;
        reply = *then;
    }
    let model = req
        .and_then(|v| v.get("model"))
        .and_then(Value::as_str)
        .unwrap_or("test-model")
        .to_string();
    let n = req
        .and_then(|v| v.get("n"))
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .max(1);
    match reply {
        Reply::Completion {
            text,
            finish_reason,
            usage,
        } => {
            let body = if anthropic {
                completion_anthropic(&model, &text, &finish_reason, usage)
            } else {
                completion_openai(&model, &text, &finish_reason, usage, n)
            };
            Ok(build(
                200,
                "application/json",
                &[],
                body.to_string().into_bytes(),
            ))
        }
        Reply::Status {
            status,
            message,
            retry_after,
        } => {
            let body = if anthropic {
                json!({"type": "error", "error": {"type": "api_error", "message": message}})
            } else {
                json!({"error": {"message": message, "type": "api_error", "code": status}})
            };
            let extra: Vec<(&str, String)> = retry_after
                .into_iter()
                .map(|v| ("retry-after", v))
                .collect();
            Ok(build(
                status,
                "application/json",
                &extra,
                body.to_string().into_bytes(),
            ))
        }
        Reply::TruncatedJson => {
            let full = if anthropic {
                completion_anthropic(&model, "truncated", "stop", Some((1, 1)))
            } else {
                completion_openai(&model, "truncated", "stop", Some((1, 1)), 1)
            }
            .to_string();
            let cut = full.len() / 2;
            Ok(build(
                200,
                "application/json",
                &[],
                full.as_bytes()[..cut].to_vec(),
            ))
        }
        Reply::InvalidUtf8 => {
            let mut body = br#"{"choices":[{"message":{"role":"assistant","content":""#.to_vec();
            body.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
            body.extend_from_slice(br#""},"finish_reason":"stop"}]}"#);
            Ok(build(200, "application/json", &[], body))
        }
        Reply::Disconnect => Err(Disconnect),
        Reply::Raw {
            status,
            content_type,
            body,
        } => Ok(build(status, &content_type, &[], body)),
        Reply::Slow { .. } => unreachable!("unwrapped above"),
    }
}

fn build(
    status: u16,
    content_type: &str,
    extra: &[(&str, String)],
    body: Vec<u8>,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = content_type.parse() {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    for (k, v) in extra {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            hyper::header::HeaderValue::from_str(v),
        ) {
            resp.headers_mut().insert(name, value);
        }
    }
    resp
}

fn completion_openai(
    model: &str,
    text: &str,
    finish: &str,
    usage: Option<(u64, u64)>,
    n: u64,
) -> Value {
    let choices: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "index": i,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
            })
        })
        .collect();
    let mut v = json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": choices,
    });
    if let Some((p, c)) = usage {
        v["usage"] =
            json!({"prompt_tokens": p, "completion_tokens": c * n, "total_tokens": p + c * n});
    }
    v
}

fn completion_anthropic(model: &str, text: &str, finish: &str, usage: Option<(u64, u64)>) -> Value {
    let stop_reason = match finish {
        "length" => "max_tokens",
        "stop" => "end_turn",
        other => other,
    };
    let mut v = json!({
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason,
    });
    if let Some((p, c)) = usage {
        v["usage"] = json!({"input_tokens": p, "output_tokens": c});
    }
    v
}

fn last_user_text(body: &Value) -> Option<String> {
    let msgs = body.get("messages")?.as_array()?;
    let last = msgs
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))?;
    match last.get("content")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(blocks) => Some(
            blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(""),
        ),
        _ => None,
    }
}
