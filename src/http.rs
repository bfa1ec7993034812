//! HTTP: `/metrics` (Prometheus), `/healthz` (the process is up), `/readyz` (database reachable and listener connected).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use deadpool_postgres::Pool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    pool: Pool,
}

pub fn router(metrics: Arc<Metrics>, pool: Pool, webhooks: crate::webhooks::WebhookState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, pool })
        // Merged, not nested: Twilio signs the exact path it called.
        .merge(crate::webhooks::router(webhooks))
}

/// How long a client may take, and how many may be connected (`CANTINA__HTTP__…`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    pub fn from_settings(s: &crate::config::HttpSettings) -> Self {
        Self {
            header_timeout: Duration::from_secs(s.header_timeout_seconds),
            body_timeout: Duration::from_secs(s.body_timeout_seconds),
            max_connections: s.max_connections,
        }
    }
}

/// The most a request body may hold: axum's default limit for the `Bytes` extractor the webhooks use.
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// What a connection over the cap is told, if its socket takes it at once; it is closed either way.
const REFUSED: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\nretry-after: 1\r\n\r\n";

/// Serves HTTP/1.1 until `shutdown`, then lets requests in flight finish. Unlike `axum::serve`, a client that does
/// not send its headers within `header_timeout` (idle keep-alive included) or its body within `body_timeout` is
/// disconnected, and at most `max_connections` are open at once: a further one is accepted, sent a best-effort 503
/// and closed at once, rather than left in the kernel's backlog, so that it costs no descriptor and no memory.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let router =
        router.layer(axum::middleware::from_fn_with_state((limits.body_timeout, metrics.clone()), body_deadline));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors or memory: wait rather than spin; the connection is the client's to retry.
                    tracing::warn!(error = %e, "cannot accept an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics.http_connection_dropped("over_cap");
            // Never waits: a fresh socket's send buffer is empty, and a client that is not reading loses nothing.
            let _ = stream.try_write(REFUSED);
            continue;
        };
        let conn = builder.serve_connection(
            hyper_util::rt::TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(router.clone()),
        );
        let (shutdown, metrics) = (shutdown.clone(), metrics.clone());
        connections.spawn(async move {
            let _permit = permit;
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = shutdown.cancelled() => {
                    // Closes an idle connection now, a busy one after its response.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            match result {
                Err(e) if e.is_timeout() => metrics.http_connection_dropped("header_timeout"),
                Err(e) => tracing::debug!(error = %e, "HTTP connection ended with an error"),
                Ok(()) => {}
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Reads the whole body within `body_timeout` before the handler runs: a client dribbling its body gets 408 and
/// its connection is closed, instead of holding it (and a task) for as long as it likes.
async fn body_deadline(
    State((body_timeout, metrics)): State<(Duration, Arc<Metrics>)>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(body_timeout, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Ok(Err(e)) => {
            let too_big = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            let status = if too_big { StatusCode::PAYLOAD_TOO_LARGE } else { StatusCode::BAD_REQUEST };
            (status, [(header::CONNECTION, "close")], "cuerpo ilegible o demasiado grande\n").into_response()
        }
        Err(_) => {
            metrics.http_connection_dropped("body_timeout");
            (StatusCode::REQUEST_TIMEOUT, [(header::CONNECTION, "close")], "cuerpo incompleto\n").into_response()
        }
    }
}

/// OpenMetrics for a scraper that asks for it (Prometheus does), the classic text format 0.0.4 otherwise (curl,
/// `promtool check metrics`, older agents), as the official client libraries negotiate.
async fn metrics_handler(State(s): State<AppState>, headers: header::HeaderMap) -> impl IntoResponse {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    if openmetrics {
        ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.encode())
    } else {
        ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text_format(&s.metrics.encode()))
    }
}

/// OpenMetrics → Prometheus text format 0.0.4: a counter's HELP and TYPE name its `_total` samples, and the
/// OpenMetrics-only lines (`# UNIT`, `# EOF`) go. The samples themselves are the same in both formats.
pub fn text_format(openmetrics: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for line in openmetrics.lines() {
        if let Some(name) = line.strip_prefix("# TYPE ").and_then(|r| r.strip_suffix(" counter")) {
            counters.insert(name.to_string());
        }
    }
    let mut out = String::with_capacity(openmetrics.len() + 64 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let db_ok = tokio::time::timeout(Duration::from_secs(2), async {
        let conn = s.pool.get().await.ok()?;
        conn.simple_query("SELECT 1").await.ok()
    })
    .await
    .ok()
    .flatten()
    .is_some();
    let listener_ok = s.metrics.listener_is_connected();
    let body = format!(
        "database: {}\nlistener: {}\n",
        if db_ok { "ok" } else { "unreachable" },
        if listener_ok { "connected" } else { "disconnected" }
    );
    let status = if db_ok && listener_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, body)
}

/// A minimal HTTP/1.1 GET over a plain TCP stream, for `cantina-notify healthcheck` (no HTTP client needed in a
/// distroless image) and tests. Returns the status code and body.
pub async fn get_url(addr: &str, path: &str, timeout: Duration) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fut = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await?;
        let text = String::from_utf8_lossy(&buf).to_string();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response"))?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Ok((status, body))
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_names_counters_by_their_samples_and_drops_openmetrics_only_lines() {
        let om = "# HELP x_sends Sends.\n# TYPE x_sends counter\nx_sends_total{channel=\"email\"} 3\n\
                  # HELP x_lag_seconds Lag.\n# TYPE x_lag_seconds gauge\n# UNIT x_lag_seconds seconds\nx_lag_seconds 0.5\n# EOF\n";
        assert_eq!(
            text_format(om),
            "# HELP x_sends_total Sends.\n# TYPE x_sends_total counter\nx_sends_total{channel=\"email\"} 3\n\
             # HELP x_lag_seconds Lag.\n# TYPE x_lag_seconds gauge\nx_lag_seconds 0.5\n"
        );
    }

    #[test]
    fn the_real_registry_converts_every_counter() {
        let metrics = crate::metrics::Metrics::new();
        metrics.event_received("saldo_bajo");
        let text = text_format(&metrics.encode());
        assert!(text.contains("# TYPE cantina_notify_events_received_total counter"), "{text}");
        assert!(text.contains("cantina_notify_events_received_total{kind=\"saldo_bajo\"} 1"), "{text}");
        assert!(!text.contains("# EOF"));
        assert!(!text.lines().any(|l| l.starts_with("# TYPE ") && l.ends_with(" counter") && !l.contains("_total ")));
    }
}
