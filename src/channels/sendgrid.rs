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
mod tests {
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::domain::{EmailAddress, NotificationType};
    use crate::rules::MessageData;

    const KEY: &str = "SG.test-key.abc123";

    fn settings(url: &str) -> Settings {
        let mut s = Settings::default();
        s.email.backend = "sendgrid_backend.SendgridBackend".into();
        s.email.sendgrid_api_key = Some(Secret::new(KEY));
        s.email.sendgrid_api_url = format!("{url}/");
        s.email.from = "Cantina Tita <noreply@cantinatita.com.py>".into();
        s.email.timeout_seconds = 5;
        s.portal.base_url = "https://portal.cantinatita.com.py".into();
        s
    }

    fn channel(server: &MockServer) -> SendGridChannel {
        SendGridChannel::from_settings(&settings(&server.uri()), &reqwest::Client::new()).unwrap()
    }

    fn message() -> OutgoingMessage {
        OutgoingMessage {
            request_id: 41,
            idempotency_key: "recarga_exitosa:9001:email".into(),
            notification_type: NotificationType::RecargaExitosa,
            channel: ChannelKind::Email,
            recipient: Recipient::Email(EmailAddress::parse(Some("padre@example.com")).unwrap()),
            subject: "Recarga exitosa de Gs. 50.000 - Ñandú".into(),
            html: "<p>Hola Begoña, &lt;script&gt; ₲</p>".into(),
            text: "Hola Begoña, <script> ₲".into(),
            short_text: "Recarga Gs. 50.000".into(),
            data: MessageData::TarjetaBloqueada {
                padre: "Begoña".into(),
                alumno: "Ñandú".into(),
                nro_tarjeta: "TAR-1".into(),
                fecha: "23/11/2026".into(),
            },
            test: false,
        }
    }

    fn expected_body() -> Value {
        json!({
            "personalizations": [{ "to": [{ "email": "padre@example.com" }] }],
            "from": { "email": "noreply@cantinatita.com.py", "name": "Cantina Tita" },
            "subject": "Recarga exitosa de Gs. 50.000 - Ñandú",
            "content": [
                { "type": "text/plain", "value": "Hola Begoña, <script> ₲" },
                { "type": "text/html", "value": "<p>Hola Begoña, &lt;script&gt; ₲</p>" },
            ],
            "headers": { "List-Unsubscribe": "<https://portal.cantinatita.com.py/preferencias>" },
            "custom_args": { "clave_dedup": "recarga_exitosa:9001:email" },
        })
    }

    async fn refusing(status: u16, body: Value) -> (MockServer, SendError) {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v3/mail/send"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .expect(1)
            .mount(&server)
            .await;
        let err = channel(&server).send(&message()).await.unwrap_err();
        (server, err)
    }

    #[tokio::test]
    async fn a_202_without_x_message_id_is_a_success_with_a_warning() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v3/mail/send"))
            .respond_with(ResponseTemplate::new(202).set_body_bytes(b"\x00\xff".to_vec()))
            .expect(1)
            .mount(&server)
            .await;
        let receipt = channel(&server).send(&message()).await.unwrap();
        assert_eq!(receipt.provider_message_id, None);
        assert!(receipt.warning.as_deref().is_some_and(|w| w.contains("X-Message-Id")), "{receipt:?}");
    }

    #[tokio::test]
    async fn a_202_is_success_with_the_x_message_id_and_the_request_is_exact() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v3/mail/send"))
            .and(header("authorization", format!("Bearer {KEY}").as_str()))
            .and(header("content-type", "application/json"))
            .and(body_json(expected_body()))
            .respond_with(ResponseTemplate::new(202).insert_header("X-Message-Id", "14c5d75ce93.dfd.64b469.filter0001"))
            .expect(1)
            .mount(&server)
            .await;
        let ch = channel(&server);
        assert_eq!(ch.provider(), "sendgrid");
        assert_eq!(ch.kind(), ChannelKind::Email);
        assert_eq!(ch.default_per_second(), 10.0);
        let receipt = ch.send(&message()).await.unwrap();
        assert_eq!(receipt.provider_message_id.as_deref(), Some("14c5d75ce93.dfd.64b469.filter0001"));

        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), 1);
        let r = &requests[0];
        assert_eq!(r.method.as_str(), "POST");
        assert_eq!(r.url.path(), "/v3/mail/send");
        assert_eq!(r.url.query(), None);
        assert_eq!(r.headers.get("authorization").unwrap(), &format!("Bearer {KEY}"));
        assert_eq!(r.headers.get("content-type").unwrap(), "application/json");
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body, expected_body());
    }

    #[tokio::test]
    async fn a_400_is_permanent_with_sendgrids_messages() {
        let (_s, err) = refusing(
            400,
            json!({"errors": [
                {"message": "Does not contain a valid address.", "field": "personalizations.0.to.0.email", "help": "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.personalizations.to"},
                {"message": "The subject is required.", "field": null, "help": null}
            ]}),
        )
        .await;
        assert_eq!(
            err,
            SendError::Permanent {
                reason: "SendGrid 400: Does not contain a valid address. (campo personalizations.0.to.0.email); The \
                         subject is required."
                    .into()
            }
        );
    }

    #[tokio::test]
    async fn a_401_or_403_is_a_configuration_error_without_the_key() {
        let (_s, err) = refusing(
            401,
            json!({"errors": [{"field": null, "message": "The provided authorization grant is invalid, expired, or revoked"}]}),
        )
        .await;
        let SendError::Configuration { reason } = err else { panic!("expected a configuration error: {err:?}") };
        assert!(
            reason.starts_with("SendGrid 401: The provided authorization grant is invalid, expired, or revoked; revise SENDGRID_API_KEY"),
            "{reason}"
        );
        assert!(!reason.contains(KEY));

        let (_s, err) = refusing(
            403,
            json!({"errors": [{"field": "from", "message": "The from address does not match a verified Sender Identity."}]}),
        )
        .await;
        let SendError::Configuration { reason } = err else { panic!("expected a configuration error: {err:?}") };
        assert!(
            reason
                .starts_with("SendGrid 403: The from address does not match a verified Sender Identity. (campo from)"),
            "{reason}"
        );
        assert!(reason.contains("DEFAULT_FROM_EMAIL"), "{reason}");
    }

    #[tokio::test]
    async fn a_413_is_permanent() {
        let (_s, err) = refusing(413, json!({"errors": [{"message": "Payload Too Large", "field": null}]})).await;
        assert_eq!(
            err,
            SendError::Permanent { reason: "SendGrid 413: el mensaje es demasiado grande: Payload Too Large".into() }
        );
    }

    #[tokio::test]
    async fn a_429_is_transient_with_retry_after_or_the_rate_limit_reset() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v3/mail/send"))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("Retry-After", "30")
                    .set_body_json(json!({"errors": [{"field": null, "message": "too many requests"}]})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let err = channel(&server).send(&message()).await.unwrap_err();
        assert_eq!(
            err,
            SendError::Transient {
                reason: "SendGrid 429: límite de envíos alcanzado: too many requests".into(),
                retry_after: Some(Duration::from_secs(30))
            }
        );

        let server = MockServer::start().await;
        let reset = jiff::Timestamp::now().as_second() + 45;
        Mock::given(method("POST"))
            .and(path("/v3/mail/send"))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("X-RateLimit-Limit", "600")
                    .insert_header("X-RateLimit-Remaining", "0")
                    .insert_header("X-RateLimit-Reset", reset.to_string().as_str())
                    .set_body_json(json!({"errors": [{"field": null, "message": "too many requests"}]})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let err = channel(&server).send(&message()).await.unwrap_err();
        let SendError::Transient { retry_after: Some(after), .. } = err else { panic!("{err:?}") };
        assert!((Duration::from_secs(43)..=Duration::from_secs(45)).contains(&after), "{after:?}");
    }

    #[test]
    fn retry_after_accepts_an_http_date() {
        let mut h = HeaderMap::new();
        let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120);
        let date = jiff::fmt::rfc2822::DateTimePrinter::new().timestamp_to_rfc9110_string(&at).unwrap();
        h.insert("retry-after", date.parse().unwrap());
        let after = retry_after(&h).unwrap();
        assert!((Duration::from_secs(118)..=Duration::from_secs(120)).contains(&after), "{after:?}");
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[tokio::test]
    async fn a_5xx_is_transient() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v3/mail/send"))
            .respond_with(ResponseTemplate::new(503).set_body_string("upstream unavailable"))
            .expect(1)
            .mount(&server)
            .await;
        let err = channel(&server).send(&message()).await.unwrap_err();
        assert_eq!(
            err,
            SendError::Transient { reason: "SendGrid 503: upstream unavailable".into(), retry_after: None }
        );
    }

    #[tokio::test]
    async fn a_timeout_is_transient() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v3/mail/send"))
            .respond_with(ResponseTemplate::new(202).set_delay(Duration::from_secs(3)))
            .mount(&server)
            .await;
        let mut s = settings(&server.uri());
        s.email.timeout_seconds = 1;
        let ch = SendGridChannel::from_settings(&s, &reqwest::Client::new()).unwrap();
        let err = ch.send(&message()).await.unwrap_err();
        assert_eq!(
            err,
            SendError::Transient { reason: "SendGrid: tiempo de espera agotado (1 s)".into(), retry_after: None }
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_transient() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let ch =
            SendGridChannel::from_settings(&settings(&format!("http://127.0.0.1:{port}")), &reqwest::Client::new())
                .unwrap();
        let err = ch.send(&message()).await.unwrap_err();
        assert!(
            matches!(&err, SendError::Transient { reason, retry_after: None } if reason.starts_with("SendGrid: no se pudo conectar")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_non_email_recipient_is_permanent_and_nothing_is_sent() {
        let server = MockServer::start().await;
        let mut msg = message();
        msg.recipient = Recipient::Portal { id_cliente: 3 };
        let err = channel(&server).send(&msg).await.unwrap_err();
        assert!(matches!(err, SendError::Permanent { .. }), "{err:?}");
        assert!(server.received_requests().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn probe_reads_scopes_with_the_key() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v3/scopes"))
            .and(header("authorization", format!("Bearer {KEY}").as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"scopes": ["mail.send"]})))
            .expect(1)
            .mount(&server)
            .await;
        channel(&server).probe().await.unwrap();

        for (status, configuration) in [(401, true), (403, true), (500, false)] {
            let server = MockServer::start().await;
            Mock::given(method("GET"))
                .and(path("/v3/scopes"))
                .respond_with(
                    ResponseTemplate::new(status)
                        .set_body_json(json!({"errors": [{"field": null, "message": "nope"}]})),
                )
                .expect(1)
                .mount(&server)
                .await;
            let err = channel(&server).probe().await.unwrap_err();
            match err {
                SendError::Configuration { reason } if configuration => {
                    assert_eq!(reason, format!("SendGrid {status}: nope; revise SENDGRID_API_KEY"))
                }
                SendError::Transient { reason, .. } if !configuration => assert_eq!(reason, "SendGrid 500: nope"),
                other => panic!("{status}: {other:?}"),
            }
        }
    }

    #[test]
    fn missing_or_bad_settings_are_named_and_debug_hides_the_key() {
        let http = reqwest::Client::new();
        let mut s = settings("https://api.sendgrid.com");
        s.email.sendgrid_api_key = None;
        s.email.from = "nadie".into();
        let err = SendGridChannel::from_settings(&s, &http).unwrap_err();
        assert!(err.contains("SENDGRID_API_KEY") && err.contains("DEFAULT_FROM_EMAIL"), "{err}");

        let mut s = settings("https://api.sendgrid.com");
        s.email.sendgrid_api_url = "api.sendgrid.com".into();
        assert!(SendGridChannel::from_settings(&s, &http).unwrap_err().contains("SENDGRID_API_URL"));

        let ch = SendGridChannel::from_settings(&settings("https://api.sendgrid.com"), &http).unwrap();
        assert_eq!(ch.api_url, "https://api.sendgrid.com");
        let debug = format!("{ch:?}");
        assert!(!debug.contains(KEY), "{debug}");

        // A From without a display name sends no "name".
        let mut s = settings("https://api.sendgrid.com");
        s.email.from = "noreply@cantinatita.com.py".into();
        let ch = SendGridChannel::from_settings(&s, &http).unwrap();
        assert_eq!(ch.body("a@example.com", &message())["from"], json!({"email": "noreply@cantinatita.com.py"}));
    }

    #[test]
    fn non_json_error_bodies_are_shortened() {
        assert_eq!(describe_errors(""), "sin detalle");
        assert_eq!(describe_errors(&"x".repeat(500)).len(), 200);
    }
}
