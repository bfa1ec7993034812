//! A loopback stand-in for SendGrid's `POST /v3/mail/send`: answers 202 with an `X-Message-Id` at once and records,
//! per request, the instant it arrived and the request's dedup key (`custom_args.clave_dedup`).
//!
//! It runs on its own one-thread runtime so that its answers do not wait behind the benchmark's inserters and
//! pollers; the instants share one monotonic clock with them (same process).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;

/// One request as the sink saw it.
pub struct Receipt {
    pub at: Instant,
    /// `None` when the body carried no `custom_args.clave_dedup` (counted, never expected).
    pub key: Option<String>,
}

#[derive(Default)]
struct Shared {
    receipts: Mutex<Vec<Receipt>>,
    /// Readable without the lock: the drain monitor polls it every few milliseconds.
    count: AtomicUsize,
    next_id: AtomicU64,
}

pub struct Sink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    // Dropped last: stops the server.
    _runtime: tokio::runtime::Runtime,
}

impl Sink {
    /// Binds a free loopback port and starts serving. Call outside any runtime (it owns one).
    pub fn start() -> Result<Sink> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sink")
            .enable_all()
            .build()
            .context("sink runtime")?;
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind the sink")?;
        std_listener.set_nonblocking(true).context("sink listener non-blocking")?;
        let addr = std_listener.local_addr().context("sink address")?;
        let shared = Arc::new(Shared::default());
        let app = Router::new().route("/v3/mail/send", post(mail_send)).with_state(shared.clone());
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener).context("sink listener")?
        };
        runtime.spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("sink stopped: {e}");
            }
        });
        Ok(Sink { addr, shared, _runtime: runtime })
    }

    /// What the service gets as `SENDGRID_API_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received since the last [`Sink::take`].
    pub fn count(&self) -> usize {
        self.shared.count.load(Ordering::Acquire)
    }

    /// Everything received so far; starts a fresh record.
    pub fn take(&self) -> Vec<Receipt> {
        let mut receipts = self.shared.receipts.lock().unwrap_or_else(PoisonError::into_inner);
        self.shared.count.store(0, Ordering::Release);
        std::mem::take(&mut *receipts)
    }
}

async fn mail_send(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    // Taken before the body is read: "the provider received the request".
    let at = Instant::now();
    let key = match axum::body::to_bytes(request.into_body(), 1 << 20).await {
        Ok(body) => dedup_key(&body),
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    {
        let mut receipts = shared.receipts.lock().unwrap_or_else(PoisonError::into_inner);
        receipts.push(Receipt { at, key });
        shared.count.fetch_add(1, Ordering::AcqRel);
    }
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    (StatusCode::ACCEPTED, [("x-message-id", format!("sink-{id}"))]).into_response()
}

/// `custom_args.clave_dedup` of a SendGrid body. The adapter writes compact JSON and the keys hold no characters
/// that JSON escapes, so a substring search is exact and cheap; anything else falls back to a full parse.
fn dedup_key(body: &[u8]) -> Option<String> {
    const NEEDLE: &[u8] = b"\"clave_dedup\":\"";
    let fast = body.windows(NEEDLE.len()).position(|w| w == NEEDLE).and_then(|i| {
        let rest = &body[i + NEEDLE.len()..];
        let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
        (rest[end] == b'"').then(|| std::str::from_utf8(&rest[..end]).ok().map(str::to_owned))?
    });
    fast.or_else(|| {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        value.pointer("/custom_args/clave_dedup")?.as_str().map(str::to_owned)
    })
}
