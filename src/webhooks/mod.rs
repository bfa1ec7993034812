//! Delivery receipts: provider webhooks (Twilio status callbacks, Meta WhatsApp statuses).
//!
//! Routes (absolute paths: `merge` this router, do not `nest` it, or the path Twilio signed is lost):
//! - `POST /webhooks/twilio/status`: Twilio's `StatusCallback` (form body) for SMS and WhatsApp. Verified with
//!   `X-Twilio-Signature` over `public_base_url` + path + query and the POST parameters; 401 when missing or
//!   bad; otherwise 200, also for an unknown `MessageSid` or an ignored status (Twilio retries on non-2xx).
//! - `GET /webhooks/whatsapp`: Meta's subscription handshake: `hub.mode=subscribe` and the configured
//!   `hub.verify_token` → 200 with `hub.challenge` as plain text; anything else → 403.
//! - `POST /webhooks/whatsapp`: Meta's statuses, verified with `X-Hub-Signature-256` over the raw body (401 when
//!   missing or bad); every status in the batch is applied; 200.
//!
//! A webhook whose secret (or, for Twilio, the public URL) is not configured answers 503 and accepts nothing:
//! it is the service that is not ready, and both providers retry, so receipts sent before the setting is fixed
//! are not lost for good. A database error answers 500 for the same reason (applying a receipt is idempotent).
//!
//! Receipts only ever move `estado_entrega` forward (see [`receipt`] for the order and the reasons); `estado`
//! is never touched. A `failed` receipt appends the provider's code and message to `ultimo_error` when the
//! request is `Enviado`, so staff can see why a sent notice did not arrive.

pub mod payload;
pub mod receipt;
pub mod signature;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use deadpool_postgres::Pool;

use crate::config::Secret;
use crate::metrics::Metrics;
pub use payload::Receipt;
pub use receipt::{DeliveryState, record_receipt, record_receipt_detail};

pub const TWILIO_STATUS_PATH: &str = "/webhooks/twilio/status";
pub const WHATSAPP_PATH: &str = "/webhooks/whatsapp";

const TWILIO: &str = "twilio";
const META: &str = "meta";

#[derive(Clone)]
pub struct WebhookState {
    pub pool: Pool,
    pub twilio_auth_token: Option<Secret>,
    /// The externally visible base URL (e.g. `https://notify.example.com`, or with a path prefix the proxy
    /// strips), used to rebuild the full URL Twilio signed.
    pub public_base_url: Option<String>,
    pub meta_app_secret: Option<Secret>,
    pub meta_verify_token: Option<Secret>,
    pub metrics: Arc<Metrics>,
}

pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route(TWILIO_STATUS_PATH, post(twilio_status))
        .route(WHATSAPP_PATH, get(whatsapp_handshake).post(whatsapp_statuses))
        .with_state(state)
}

/// The URL Twilio signed: the public base URL (no trailing slash) + the request's path and raw query.
pub fn signed_url(public_base_url: &str, uri: &Uri) -> String {
    let base = public_base_url.trim_end_matches('/');
    match uri.query() {
        Some(q) => format!("{base}{}?{q}", uri.path()),
        None => format!("{base}{}", uri.path()),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

fn not_configured(provider: &str, missing: &str) -> Response {
    tracing::warn!(provider, missing, "webhook called but not configured: answered 503, nothing accepted");
    text(StatusCode::SERVICE_UNAVAILABLE, "webhook no configurado\n")
}

fn rejected(metrics: &Metrics, provider: &str, why: &str) -> Response {
    metrics.webhook_rejected(provider);
    tracing::warn!(provider, why, "webhook rejected: signature missing or invalid");
    text(StatusCode::UNAUTHORIZED, "firma inválida\n")
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn twilio_status(State(s): State<WebhookState>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let Some(token) = &s.twilio_auth_token else {
        return not_configured(TWILIO, "twilio auth token");
    };
    let Some(base) = &s.public_base_url else {
        return not_configured(TWILIO, "public base URL");
    };
    let Some(given) = header_str(&headers, "x-twilio-signature") else {
        return rejected(&s.metrics, TWILIO, "no X-Twilio-Signature");
    };
    let params = payload::parse_form(&body);
    if !signature::verify_twilio(token.expose(), &signed_url(base, &uri), &params, given) {
        return rejected(&s.metrics, TWILIO, "X-Twilio-Signature does not match");
    }
    match payload::twilio_receipt(&params) {
        Some(r) => apply(&s, TWILIO, std::slice::from_ref(&r)).await,
        None => {
            tracing::debug!(status = payload::field(&params, "MessageStatus"), "twilio status ignored");
            StatusCode::OK.into_response()
        }
    }
}

async fn whatsapp_handshake(State(s): State<WebhookState>, RawQuery(query): RawQuery) -> Response {
    let Some(expected) = &s.meta_verify_token else {
        return not_configured(META, "whatsapp verify token");
    };
    let pairs = payload::parse_form(query.as_deref().unwrap_or_default().as_bytes());
    let mode = payload::field(&pairs, "hub.mode");
    let token = payload::field(&pairs, "hub.verify_token");
    let challenge = payload::field(&pairs, "hub.challenge");
    match (mode, token, challenge) {
        (Some("subscribe"), Some(token), Some(challenge)) if signature::token_matches(expected.expose(), token) => {
            tracing::info!("whatsapp webhook subscription verified");
            (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], challenge.to_string())
                .into_response()
        }
        _ => {
            tracing::warn!(mode, "whatsapp webhook handshake refused (wrong mode or verify token)");
            text(StatusCode::FORBIDDEN, "verificación rechazada\n")
        }
    }
}

async fn whatsapp_statuses(State(s): State<WebhookState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = &s.meta_app_secret else {
        return not_configured(META, "whatsapp app secret");
    };
    let Some(given) = header_str(&headers, "x-hub-signature-256") else {
        return rejected(&s.metrics, META, "no X-Hub-Signature-256");
    };
    if !signature::verify_meta(secret.expose(), &body, given) {
        return rejected(&s.metrics, META, "X-Hub-Signature-256 does not match");
    }
    match payload::meta_receipts(&body) {
        Ok(receipts) => apply(&s, META, &receipts).await,
        Err(e) => {
            tracing::warn!(error = %e, "whatsapp webhook body is not JSON");
            text(StatusCode::BAD_REQUEST, "cuerpo no es JSON\n")
        }
    }
}

/// Applies verified receipts; 500 if any could not be written (the provider retries; repeats are harmless).
async fn apply(s: &WebhookState, provider: &str, receipts: &[Receipt]) -> Response {
    let mut failed = false;
    for r in receipts {
        s.metrics.receipt(provider, r.state.as_str());
        match record_receipt_detail(&s.pool, provider, &r.provider_id, r.state, r.failure_detail.as_deref()).await {
            Ok(Some(id)) => tracing::info!(provider, id, state = %r.state, "delivery state recorded"),
            Ok(None) => tracing::debug!(
                provider,
                provider_id = %r.provider_id,
                state = %r.state,
                "receipt changed nothing (unknown message, repeat or older state)"
            ),
            Err(e) => {
                failed = true;
                tracing::error!(provider, provider_id = %r.provider_id, error = %e, "cannot record receipt");
            }
        }
    }
    if failed { text(StatusCode::INTERNAL_SERVER_ERROR, "error interno\n") } else { StatusCode::OK.into_response() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_url_is_rebuilt_from_the_public_base() {
        let uri: Uri = "/webhooks/twilio/status?canal=sms&x=%20".parse().unwrap();
        assert_eq!(
            signed_url("https://notify.example.com/", &uri),
            "https://notify.example.com/webhooks/twilio/status?canal=sms&x=%20"
        );
        let uri: Uri = "/webhooks/twilio/status".parse().unwrap();
        assert_eq!(
            signed_url("https://example.com/cantina", &uri),
            "https://example.com/cantina/webhooks/twilio/status"
        );
    }
}
