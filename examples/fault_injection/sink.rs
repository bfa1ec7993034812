//! The provider stand-in: SendGrid's `POST /v3/mail/send` on loopback, on its own runtime and thread, with
//! switchable failure modes. It records every request it receives by `custom_args.clave_dedup`: the 202s (what a
//! parent would get), the 503s, the 429s and the requests it left hanging.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

/// How long a hung request is held before the sink lets go of it (answering 503 to a client that gave up long
/// before: the service's send timeout is a few seconds). Bounded so the sink does not collect open sockets.
const HANG_HOLD: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// 202 Accepted with an `X-Message-Id`, after a provider-like latency.
    Normal,
    /// 503 Service Unavailable.
    Unavailable,
    /// 429 Too Many Requests with `Retry-After: 2`.
    RateLimited,
    /// Reads the request and never answers.
    Hang,
}

impl Mode {
    fn from_u8(v: u8) -> Mode {
        match v {
            1 => Mode::Unavailable,
            2 => Mode::RateLimited,
            3 => Mode::Hang,
            _ => Mode::Normal,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            Mode::Normal => 0,
            Mode::Unavailable => 1,
            Mode::RateLimited => 2,
            Mode::Hang => 3,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Mode::Normal => "normal (202)",
            Mode::Unavailable => "503",
            Mode::RateLimited => "429 + Retry-After: 2",
            Mode::Hang => "hang (accept, never answer)",
        }
    }
}

/// One 202 the sink gave: when (since the run started) and which service process was running then.
#[derive(Clone, Copy, Debug)]
pub struct Accepted {
    pub at: Duration,
    pub incarnation: u32,
}

/// Everything received for one dedup key.
#[derive(Clone, Debug, Default)]
pub struct KeyLog {
    pub accepted: Vec<Accepted>,
    pub refused_503: u32,
    pub refused_429: u32,
    pub hung: u32,
}

pub struct Sink {
    mode: AtomicU8,
    /// The service process running now (set by the orchestrator before each start; never reset, so a request a
    /// killed process left in the socket is still put on its account).
    incarnation: AtomicU32,
    started: Instant,
    keys: Mutex<HashMap<String, KeyLog>>,
    malformed: AtomicU64,
    next_id: AtomicU64,
    /// Requests read and not answered yet (hung ones included).
    open: AtomicI64,
    /// Answer latency in normal mode, uniform in this range (ms): a real provider takes tens of milliseconds,
    /// which is what keeps sends in flight when the service is killed.
    latency_ms: (u64, u64),
}

impl Sink {
    pub fn new(started: Instant, latency_ms: (u64, u64)) -> Arc<Sink> {
        Arc::new(Sink {
            mode: AtomicU8::new(Mode::Normal.as_u8()),
            incarnation: AtomicU32::new(0),
            started,
            keys: Mutex::default(),
            malformed: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            open: AtomicI64::new(0),
            latency_ms,
        })
    }

    pub fn set_mode(&self, mode: Mode) {
        self.mode.store(mode.as_u8(), Ordering::SeqCst);
    }

    pub fn mode(&self) -> Mode {
        Mode::from_u8(self.mode.load(Ordering::SeqCst))
    }

    pub fn set_incarnation(&self, n: u32) {
        self.incarnation.store(n, Ordering::SeqCst);
    }

    /// Requests being handled now: sends in flight as the provider sees them.
    pub fn open(&self) -> i64 {
        self.open.load(Ordering::SeqCst)
    }

    pub fn malformed(&self) -> u64 {
        self.malformed.load(Ordering::SeqCst)
    }

    pub fn snapshot(&self) -> HashMap<String, KeyLog> {
        self.lock().clone()
    }

    /// Whether `key` got a 202 while process `incarnation` was running.
    pub fn accepted_during(&self, key: &str, incarnation: u32) -> bool {
        self.lock().get(key).is_some_and(|k| k.accepted.iter().any(|a| a.incarnation == incarnation))
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, KeyLog>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn latency(&self) -> Duration {
        let (lo, hi) = self.latency_ms;
        Duration::from_millis(if hi > lo { fastrand::u64(lo..=hi) } else { lo })
    }
}

/// Binds 127.0.0.1 on a free port and serves on a thread of its own with its own runtime, so the load and the
/// orchestration cannot delay the provider's answers (and the other way round).
pub fn spawn(sink: Arc<Sink>) -> io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new().name("provider-sink".into()).spawn(move || {
        runtime.block_on(async move {
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => return eprintln!("provider sink cannot listen: {e}"),
            };
            let app =
                Router::new().route("/v3/mail/send", post(mail_send)).route("/v3/scopes", get(scopes)).with_state(sink);
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("provider sink stopped: {e}");
            }
        });
    })?;
    Ok(addr)
}

async fn mail_send(State(sink): State<Arc<Sink>>, body: Bytes) -> Response {
    let key = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.pointer("/custom_args/clave_dedup").and_then(|k| k.as_str()).map(str::to_owned));
    let Some(key) = key else {
        sink.malformed.fetch_add(1, Ordering::SeqCst);
        return error(StatusCode::BAD_REQUEST, "custom_args.clave_dedup missing");
    };
    // Recorded on arrival, before answering: a provider has the message once it has read it, whether or not its
    // answer reaches a client that is killed meanwhile.
    let mode = sink.mode();
    let _open = Open::new(&sink.open);
    {
        let mut keys = sink.lock();
        let log = keys.entry(key).or_default();
        match mode {
            Mode::Normal => log
                .accepted
                .push(Accepted { at: sink.started.elapsed(), incarnation: sink.incarnation.load(Ordering::SeqCst) }),
            Mode::Unavailable => log.refused_503 += 1,
            Mode::RateLimited => log.refused_429 += 1,
            Mode::Hang => log.hung += 1,
        }
    }
    if mode == Mode::Hang {
        tokio::time::sleep(HANG_HOLD).await;
        return error(StatusCode::SERVICE_UNAVAILABLE, "hung request released");
    }
    tokio::time::sleep(sink.latency()).await;
    match mode {
        Mode::Normal => {
            let id = format!("fi-{}", sink.next_id.fetch_add(1, Ordering::SeqCst));
            (StatusCode::ACCEPTED, [("x-message-id", id)]).into_response()
        }
        Mode::RateLimited => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "too many requests");
            r.headers_mut().insert("retry-after", axum::http::HeaderValue::from_static("2"));
            r
        }
        Mode::Unavailable | Mode::Hang => error(StatusCode::SERVICE_UNAVAILABLE, "service unavailable"),
    }
}

async fn scopes() -> Response {
    (StatusCode::OK, [("content-type", "application/json")], r#"{"scopes":["mail.send"]}"#).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "errors": [{ "message": message, "field": null }] }).to_string();
    (status, [("content-type", "application/json")], body).into_response()
}

/// Counts a request as open until its handler ends, answered or dropped with its connection.
struct Open<'a>(&'a AtomicI64);

impl<'a> Open<'a> {
    fn new(n: &'a AtomicI64) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        Open(n)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
