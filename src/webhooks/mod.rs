//! Provider webhooks: delivery receipts (Twilio status callbacks, Meta WhatsApp statuses, SendGrid events) and
//! the opt-outs and opt-ins parents send through them.
//!
//! Routes (absolute paths: `merge` this router, do not `nest` it, or the path Twilio signed is lost):
//! - `POST /webhooks/twilio/status`: Twilio's `StatusCallback` (form body) for SMS and WhatsApp. Verified with
//!   `X-Twilio-Signature` over `public_base_url` + path + query and the POST parameters; 401 when missing or
//!   bad; otherwise 200, also for an unknown `MessageSid` or an ignored status (Twilio retries on non-2xx).
//!   `ErrorCode=21610` (the recipient had replied STOP) also records an opt-out for the request's address.
//! - `POST /webhooks/twilio/inbound`: Twilio's incoming-message webhook, verified the same way. `OptOutType`
//!   (Advanced Opt-Out) or a keyword body (STOP, BAJA, START, ALTA…) opts the sender out or back in; answers an
//!   empty TwiML `<Response/>` so nothing is replied from here.
//! - `GET /webhooks/whatsapp`: Meta's subscription handshake: `hub.mode=subscribe` and the configured
//!   `hub.verify_token` → 200 with `hub.challenge` as plain text; anything else → 403.
//! - `POST /webhooks/whatsapp`: Meta's statuses and inbound messages, verified with `X-Hub-Signature-256` over
//!   the raw body (401 when missing or bad); every status in the batch is applied, and a keyword message opts
//!   its sender out or in; 200.
//! - `POST /webhooks/sendgrid`: SendGrid's Signed Event Webhook (see [`sendgrid`]): ECDSA-verified batches of
//!   delivery events, spam reports and unsubscribes; 401 when the signature is missing, bad or stale.
//!
//! Opt-outs and opt-ins follow the order the parent sent them in: the provider's timestamp (Meta, SendGrid), or
//! arrival order where it sends none (Twilio); an older one arriving late is refused, an opt-out wins a tie, and a
//! message id already applied changes nothing (see [`crate::optouts::record`]).
//!
//! A webhook whose secret (or, for Twilio, the public URL) is not configured answers 503 and accepts nothing:
//! it is the service that is not ready, and the providers retry, so receipts sent before the setting is fixed
//! are not lost for good. A database error answers 500 for the same reason (applying a receipt again is
//! harmless, and an inbound message's id is kept only by the statement that applies it, so a retry is applied).
//!
//! Receipts only ever move `estado_entrega` forward (see [`receipt`] for the order and the reasons); `estado`
//! is never touched. A `failed` receipt appends the provider's code and message to `ultimo_error` when the
//! request is `Enviado`, so staff can see why a sent notice did not arrive.

pub mod inbound;
pub mod payload;
pub mod receipt;
pub mod sendgrid;
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
pub const TWILIO_INBOUND_PATH: &str = "/webhooks/twilio/inbound";
pub const WHATSAPP_PATH: &str = "/webhooks/whatsapp";
pub const SENDGRID_PATH: &str = "/webhooks/sendgrid";

const TWILIO: &str = "twilio";
const META: &str = "meta";
const SENDGRID: &str = "sendgrid";

/// The TwiML that tells Twilio to send nothing back to an incoming message.
const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>";

#[derive(Clone)]
pub struct WebhookState {
    pub pool: Pool,
    pub twilio_auth_token: Option<Secret>,
    /// The externally visible base URL (e.g. `https://notify.example.com`, or with a path prefix the proxy
    /// strips), used to rebuild the full URL Twilio signed.
    pub public_base_url: Option<String>,
    pub meta_app_secret: Option<Secret>,
    pub meta_verify_token: Option<Secret>,
    /// SendGrid's event webhook verification key: base64 DER `SubjectPublicKeyInfo`, as SendGrid shows it.
    pub sendgrid_verification_key: Option<String>,
    pub metrics: Arc<Metrics>,
}

pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route(TWILIO_STATUS_PATH, post(twilio_status))
        .route(TWILIO_INBOUND_PATH, post(twilio_inbound))
        .route(WHATSAPP_PATH, get(whatsapp_handshake).post(whatsapp_events))
        .route(SENDGRID_PATH, post(sendgrid_events))
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
    count_rejection(metrics, provider, why);
    text(StatusCode::UNAUTHORIZED, "firma inválida\n")
}

/// Anyone can send a callback with no or a bad signature, so each one is counted
/// (`cantina_notify_webhook_rejected_total`) and logged at DEBUG; a WARN says so at most once a minute, so that a
/// flood of them cannot flood the logs.
fn count_rejection(metrics: &Metrics, provider: &str, why: &str) {
    metrics.webhook_rejected(provider);
    if rejection_warning_due(std::time::Instant::now()) {
        tracing::warn!(
            provider,
            why,
            "webhook rejected (unauthenticated); further ones within a minute are only counted in cantina_notify_webhook_rejected_total and logged at DEBUG"
        );
    } else {
        tracing::debug!(provider, why, "webhook rejected (unauthenticated)");
    }
}

fn rejection_warning_due(now: std::time::Instant) -> bool {
    static LAST: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if last.is_some_and(|t| now.saturating_duration_since(t) < std::time::Duration::from_secs(60)) {
        return false;
    }
    *last = Some(now);
    true
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The POST parameters of a request Twilio signed, or the response refusing it.
fn verified_twilio_params(
    s: &WebhookState,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, Box<Response>> {
    let Some(token) = &s.twilio_auth_token else {
        return Err(Box::new(not_configured(TWILIO, "twilio auth token")));
    };
    let Some(base) = &s.public_base_url else {
        return Err(Box::new(not_configured(TWILIO, "public base URL")));
    };
    let Some(given) = header_str(headers, "x-twilio-signature") else {
        return Err(Box::new(rejected(&s.metrics, TWILIO, "no X-Twilio-Signature")));
    };
    let params = payload::parse_form(body);
    if !signature::verify_twilio(token.expose(), &signed_url(base, uri), &params, given) {
        return Err(Box::new(rejected(&s.metrics, TWILIO, "X-Twilio-Signature does not match")));
    }
    Ok(params)
}

async fn twilio_status(State(s): State<WebhookState>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let params = match verified_twilio_params(&s, &uri, &headers, &body) {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    let Some(r) = payload::twilio_receipt(&params) else {
        tracing::debug!(status = payload::field(&params, "MessageStatus"), "twilio status ignored");
        return StatusCode::OK.into_response();
    };
    let mut ok = apply_receipts(&s, TWILIO, std::slice::from_ref(&r)).await;
    if r.state == DeliveryState::Failed && inbound::twilio_says_unsubscribed(&params) {
        ok &= opt_out_request_address(&s, TWILIO, &r.provider_id, "respondió STOP").await;
    }
    done(ok)
}

/// A provider says the recipient of one of our messages opted out: record it for that request's address.
async fn opt_out_request_address(s: &WebhookState, provider: &str, provider_id: &str, motivo: &str) -> bool {
    match receipt::request_address(&s.pool, provider, provider_id).await {
        Ok(Some((channel, address))) => {
            let req = inbound::OptRequest {
                channel,
                address,
                change: crate::optouts::OptChange::Out,
                motivo: motivo.to_string(),
                // A repeated callback for the same message changes nothing; Twilio's status callback carries no
                // timestamp, so arrival order decides.
                message_id: Some(provider_id.to_string()),
                sent_at: None,
            };
            apply_opt_changes(s, provider, std::slice::from_ref(&req)).await
        }
        Ok(None) => {
            tracing::debug!(provider, provider_id, "opt-out for an unknown message (or one without an address)");
            true
        }
        Err(e) => {
            tracing::error!(provider, provider_id, error = %e, "cannot look up the request to record an opt-out");
            false
        }
    }
}

async fn twilio_inbound(State(s): State<WebhookState>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let params = match verified_twilio_params(&s, &uri, &headers, &body) {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    let ok = match inbound::twilio_inbound(&params) {
        Some(req) => apply_opt_changes(&s, TWILIO, std::slice::from_ref(&req)).await,
        None => {
            tracing::debug!("twilio inbound message is not an opt-out or opt-in: ignored");
            true
        }
    };
    if !ok {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "error interno\n");
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/xml; charset=utf-8")], EMPTY_TWIML).into_response()
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
            count_rejection(&s.metrics, META, "handshake: wrong mode or verify token");
            text(StatusCode::FORBIDDEN, "verificación rechazada\n")
        }
    }
}

async fn whatsapp_events(State(s): State<WebhookState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = &s.meta_app_secret else {
        return not_configured(META, "whatsapp app secret");
    };
    let Some(given) = header_str(&headers, "x-hub-signature-256") else {
        return rejected(&s.metrics, META, "no X-Hub-Signature-256");
    };
    if !signature::verify_meta(secret.expose(), &body, given) {
        return rejected(&s.metrics, META, "X-Hub-Signature-256 does not match");
    }
    let root: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(root) => root,
        Err(e) => {
            tracing::warn!(error = %e, "whatsapp webhook body is not JSON");
            return text(StatusCode::BAD_REQUEST, "cuerpo no es JSON\n");
        }
    };
    let receipts_ok = apply_receipts(&s, META, &payload::meta_receipts_in(&root)).await;
    let opt_ok = apply_opt_changes(&s, META, &inbound::meta_inbound(&root)).await;
    done(receipts_ok && opt_ok)
}

async fn sendgrid_events(State(s): State<WebhookState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(configured) = &s.sendgrid_verification_key else {
        return not_configured(SENDGRID, "sendgrid verification key");
    };
    let key = match sendgrid::VerificationKey::parse(configured) {
        Ok(key) => key,
        Err(e) => {
            tracing::warn!(provider = SENDGRID, error = %e, "webhook called but its key is unusable: answered 503");
            return text(StatusCode::SERVICE_UNAVAILABLE, "webhook no configurado\n");
        }
    };
    let Some(given) = header_str(&headers, sendgrid::SIGNATURE_HEADER) else {
        return rejected(&s.metrics, SENDGRID, "no X-Twilio-Email-Event-Webhook-Signature");
    };
    let Some(timestamp) = header_str(&headers, sendgrid::TIMESTAMP_HEADER) else {
        return rejected(&s.metrics, SENDGRID, "no X-Twilio-Email-Event-Webhook-Timestamp");
    };
    if !key.verify(timestamp, &body, given) {
        return rejected(&s.metrics, SENDGRID, "X-Twilio-Email-Event-Webhook-Signature does not match");
    }
    if let Err(e) = sendgrid::check_fresh(timestamp, unix_now()) {
        return rejected(&s.metrics, SENDGRID, &format!("signed timestamp refused: {e}"));
    }
    match sendgrid::effects(&body) {
        Ok(effects) => {
            let receipts_ok = apply_receipts(&s, SENDGRID, &effects.receipts).await;
            let opt_ok = apply_opt_changes(&s, SENDGRID, &effects.opt_outs).await;
            done(receipts_ok && opt_ok)
        }
        Err(e) => {
            tracing::warn!(error = %e, "sendgrid webhook body is not JSON");
            text(StatusCode::BAD_REQUEST, "cuerpo no es JSON\n")
        }
    }
}

fn unix_now() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_secs()).unwrap_or(i64::MAX)
}

/// 200 when everything was written; 500 otherwise (the provider retries; repeats are harmless).
fn done(ok: bool) -> Response {
    if ok { StatusCode::OK.into_response() } else { text(StatusCode::INTERNAL_SERVER_ERROR, "error interno\n") }
}

/// Records opt-outs and opt-ins; false if any could not be written.
async fn apply_opt_changes(s: &WebhookState, provider: &str, changes: &[inbound::OptRequest]) -> bool {
    let mut ok = true;
    for req in changes {
        if let Err(e) = inbound::record(&s.pool, provider, req).await {
            ok = false;
            let to = inbound::masked(req.channel, &req.address);
            tracing::error!(provider, channel = %req.channel, to = %to, error = %e, "cannot record opt-out/opt-in");
        }
    }
    ok
}

/// Applies verified receipts; false if any could not be written.
async fn apply_receipts(s: &WebhookState, provider: &str, receipts: &[Receipt]) -> bool {
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
    !failed
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
