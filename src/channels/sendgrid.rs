//! Email over SendGrid's v3 API (`EMAIL_BACKEND=sendgrid` or `sendgrid_backend.SendgridBackend`).
//!
//! `POST {SENDGRID_API_URL}/v3/mail/send` with `Authorization: Bearer {SENDGRID_API_KEY}` and a JSON body holding
//! both parts, the `List-Unsubscribe` header and the request's dedup key as a custom arg (it comes back in SendGrid's
//! event webhooks). `202 Accepted` is success; the provider id is the `X-Message-Id` header.
//!
//! Error classes: 400 and 413 are permanent (this message cannot be sent as it is), 401/403 (and 404: a wrong
//! `SENDGRID_API_URL`) are configuration errors, 429 is transient with `Retry-After` or `X-RateLimit-Reset`,
//! 5xx, timeouts and connection errors are transient.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::provider_text::read_body;
use super::{Channel, OutgoingMessage, SendError, SendReceipt, StaffEmail};
use crate::config::{Secret, Settings};
use crate::domain::{ChannelKind, EmailAddress};
use crate::rules::Recipient;

const DEFAULT_TIMEOUT_SECONDS: u64 = 30;

/// Email through SendGrid's v3 Mail Send API.
pub struct SendGridChannel {
    http: reqwest::Client,
    api_url: String,
    api_key: Secret,
    from_email: String,
    from_name: Option<String>,
    unsubscribe: String,
    timeout: Duration,
}

// No API key in Debug output.
impl fmt::Debug for SendGridChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendGridChannel")
            .field("api_url", &self.api_url)
            .field("from_email", &self.from_email)
            .field("api_key", &"********")
            .finish()
    }
}

#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Debug, Deserialize)]
struct ErrorItem {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    field: Option<String>,
}

impl SendGridChannel {
    /// `Err` names the missing or invalid keys.
    pub fn from_settings(settings: &Settings, http: &reqwest::Client) -> Result<Self, String> {
        let email = &settings.email;
        let mut problems = Vec::new();
        let api_key = email.sendgrid_api_key.clone().filter(|k| !k.expose().trim().is_empty());
        if api_key.is_none() {
            problems.push("SENDGRID_API_KEY: required with EMAIL_BACKEND=sendgrid".to_string());
        }
        let api_url = email.sendgrid_api_url.trim().trim_end_matches('/').to_string();
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            problems.push(format!("SENDGRID_API_URL: '{api_url}' is not an http(s) URL"));
        }
        let from = match email.from.trim().parse::<Mailbox>() {
            Ok(m) => Some(m),
            Err(e) => {
                problems.push(format!("DEFAULT_FROM_EMAIL: '{}' is not a valid mailbox ({e})", email.from));
                None
            }
        };
        match (api_key, from) {
            (Some(api_key), Some(from)) if problems.is_empty() => Ok(Self {
                http: http.clone(),
                api_url,
                api_key,
                from_email: from.email.to_string(),
                from_name: from.name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()),
                unsubscribe: format!("<{}/preferencias>", settings.portal.base_url.trim().trim_end_matches('/')),
                // Inside the dispatcher's send timeout too (see `channels::http_timeout`).
                timeout: Duration::from_secs(match email.timeout_seconds {
                    0 => DEFAULT_TIMEOUT_SECONDS,
                    n => n,
                })
                .min(super::http_timeout(settings.dispatch.send_timeout_seconds)),
            }),
            _ => Err(problems.join("; ")),
        }
    }

    fn body(&self, to: &str, msg: &OutgoingMessage) -> Value {
        self.mail_body(to, &msg.subject, &msg.text, &msg.html, &msg.idempotency_key, Some(&self.unsubscribe))
    }

    /// The `/v3/mail/send` payload; parents' notices carry List-Unsubscribe, the staff summary does not.
    fn mail_body(
        &self,
        to: &str,
        subject: &str,
        text: &str,
        html: &str,
        key: &str,
        unsubscribe: Option<&str>,
    ) -> Value {
        let mut from = json!({ "email": self.from_email });
        if let Some(name) = &self.from_name {
            from["name"] = json!(name);
        }
        let mut body = json!({
            "personalizations": [{ "to": [{ "email": to }] }],
            "from": from,
            "subject": subject,
            "content": [
                { "type": "text/plain", "value": text },
                { "type": "text/html", "value": html },
            ],
            "custom_args": { "clave_dedup": key },
        });
        if let Some(u) = unsubscribe {
            body["headers"] = json!({ "List-Unsubscribe": u });
        }
        body
    }

    fn transport_error(&self, e: &reqwest::Error) -> SendError {
        let reason = if e.is_timeout() {
            format!("SendGrid: tiempo de espera agotado ({} s)", self.timeout.as_secs())
        } else if e.is_connect() {
            format!("SendGrid: no se pudo conectar con {}: {}", self.api_url, error_chain(e))
        } else {
            format!("SendGrid: {}", error_chain(e))
        };
        SendError::Transient { reason, retry_after: None }
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// `message (campo field)` for each error SendGrid listed; the raw body (shortened) when it is not their JSON.
fn describe_errors(body: &str) -> String {
    let parsed: ErrorBody = serde_json::from_str(body).unwrap_or_default();
    let messages: Vec<String> = parsed
        .errors
        .iter()
        .filter_map(|e| {
            let message = e.message.as_deref().map(str::trim).filter(|m| !m.is_empty())?;
            Some(match e.field.as_deref().filter(|f| !f.is_empty()) {
                Some(field) => format!("{message} (campo {field})"),
                None => message.to_string(),
            })
        })
        .collect();
    if messages.is_empty() {
        let body = body.trim();
        if body.is_empty() { "sin detalle".to_string() } else { body.chars().take(200).collect() }
    } else {
        messages.join("; ")
    }
}

/// `Retry-After` (seconds or an HTTP date), else `X-RateLimit-Reset` (Unix time when the window resets).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let now = jiff::Timestamp::now();
    if let Some(d) = super::retry_after_at(headers, now) {
        return Some(d);
    }
    let reset = headers.get("x-ratelimit-reset")?.to_str().ok()?.trim().parse::<i64>().ok()?;
    Some(Duration::from_secs(reset.saturating_sub(now.as_second()).max(0).unsigned_abs()))
}

fn classify(status: StatusCode, headers: &HeaderMap, body: &str) -> SendError {
    let code = status.as_u16();
    let detail = describe_errors(body);
    match code {
        401 | 403 => SendError::Configuration {
            reason: format!(
                "SendGrid {code}: {detail}; revise SENDGRID_API_KEY (permiso Mail Send) y que DEFAULT_FROM_EMAIL sea \
                 un remitente verificado en SendGrid"
            ),
        },
        404 => SendError::Configuration { reason: format!("SendGrid 404: {detail}; revise SENDGRID_API_URL") },
        429 => SendError::Transient {
            reason: format!("SendGrid 429: límite de envíos alcanzado: {detail}"),
            retry_after: retry_after(headers),
        },
        500..=599 => {
            SendError::Transient { reason: format!("SendGrid {code}: {detail}"), retry_after: retry_after(headers) }
        }
        413 => SendError::Permanent { reason: format!("SendGrid 413: el mensaje es demasiado grande: {detail}") },
        _ => SendError::Permanent { reason: format!("SendGrid {code}: {detail}") },
    }
}

#[async_trait]
impl Channel for SendGridChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    fn provider(&self) -> &'static str {
        "sendgrid"
    }

    async fn send(&self, msg: &OutgoingMessage) -> Result<SendReceipt, SendError> {
        let Recipient::Email(to) = &msg.recipient else {
            return Err(SendError::Permanent {
                reason: format!("el canal email necesita una dirección de correo, no {}", msg.recipient.masked()),
            });
        };
        self.post_mail(to, self.body(to.as_str(), msg), msg.request_id).await
    }

    /// The staff summary: the same call without the parents' List-Unsubscribe header.
    async fn send_staff(&self, mail: &StaffEmail) -> Result<SendReceipt, SendError> {
        let body = self.mail_body(mail.to.as_str(), &mail.subject, &mail.text, &mail.html, &mail.idempotency_key, None);
        self.post_mail(&mail.to, body, 0).await
    }

    fn default_per_second(&self) -> f64 {
        10.0
    }

    /// `GET /v3/scopes`: 200 proves the key works.
    async fn probe(&self) -> Result<(), SendError> {
        let response = self
            .http
            .get(format!("{}/v3/scopes", self.api_url))
            .bearer_auth(self.api_key.expose())
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        if status == StatusCode::OK {
            return Ok(());
        }
        let headers = response.headers().clone();
        let body = read_body(response).await.map(|b| b.text()).unwrap_or_default();
        let detail = describe_errors(&body);
        Err(match status.as_u16() {
            401 | 403 => SendError::Configuration {
                reason: format!("SendGrid {}: {detail}; revise SENDGRID_API_KEY", status.as_u16()),
            },
            code => SendError::Transient {
                reason: format!("SendGrid {code}: {detail}"),
                retry_after: retry_after(&headers),
            },
        })
    }
}

impl SendGridChannel {
    async fn post_mail(&self, to: &EmailAddress, body: Value, request_id: i64) -> Result<SendReceipt, SendError> {
        let response = self
            .http
            .post(format!("{}/v3/mail/send", self.api_url))
            .bearer_auth(self.api_key.expose())
            .json(&body)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        if status.is_success() {
            let id = response
                .headers()
                .get("x-message-id")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(String::from);
            let receipt = SendReceipt::accepted("SendGrid", id.as_deref(), "cabecera X-Message-Id");
            tracing::debug!(to = %to.masked(), request_id, id = ?receipt.provider_message_id, "SendGrid accepted");
            return Ok(receipt);
        }
        let headers = response.headers().clone();
        let body = read_body(response).await.map(|b| b.text()).unwrap_or_default();
        let error = classify(status, &headers, &body);
        tracing::debug!(to = %to.masked(), request_id, error = %error, "SendGrid refused");
        Err(error)
    }
}

#[cfg(test)]
mod tests;
