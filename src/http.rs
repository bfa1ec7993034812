//! HTTP: `/metrics` (Prometheus), `/healthz` (the process is up), `/readyz` (database reachable and listener connected).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
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

pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
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
