//! Email over SMTP (lettre): STARTTLS, implicit TLS, AWS SES's SMTP endpoint.
//!
//! - `EMAIL_BACKEND=smtp` (or `django.core.mail.backends.smtp.EmailBackend`): `EMAIL_HOST`, `EMAIL_PORT`, STARTTLS
//!   required by default (port 587), implicit TLS with `EMAIL_USE_SSL=True` (port 465), plain SMTP only when both
//!   `EMAIL_USE_TLS=False` and `EMAIL_USE_SSL=False` are given (port 25; a warning unless the host is loopback).
//!   AUTH with `EMAIL_HOST_USER` / `EMAIL_HOST_PASSWORD` when set.
//! - `EMAIL_BACKEND=ses` (or `django_ses.SESBackend`): `email-smtp.{AWS_SES_REGION_NAME}.amazonaws.com:587`, STARTTLS,
//!   user `AWS_ACCESS_KEY_ID`, password derived from `AWS_SECRET_ACCESS_KEY` as AWS documents ([`ses_smtp_password`]).
//!
//! Connections are pooled (lettre's pool); `CANTINA__EMAIL__CA_FILE` adds a trusted root (a relay with a private CA).
//!
//! Error classes: a 4xx reply, a timeout or a connection/TLS failure is transient; a 5xx reply is permanent for the
//! recipient, except an authentication failure (530/534/535/538), a rejected sender, a certificate the service
//! cannot trust or a server without STARTTLS/AUTH, which are configuration errors (the channel pauses).

use std::error::Error as StdError;
use std::fmt;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use hmac::{Hmac, Mac};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::response::Response;
use lettre::transport::smtp::{AsyncSmtpTransportBuilder, PoolConfig};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sha2::Sha256;

use super::email_message::{MessageIdKey, parent_message, staff_message, unsubscribe_link};
use super::{Channel, OutgoingMessage, SendError, SendReceipt, StaffEmail};
use crate::config::{EmailBackend, Secret, Settings};
use crate::domain::ChannelKind;
use crate::rules::Recipient;

const DEFAULT_TIMEOUT_SECONDS: u64 = 30;

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    /// Plain connection, then `STARTTLS`, refusing to go on without it.
    StartTls,
    /// TLS from the first byte (`EMAIL_USE_SSL=True`, port 465).
    Implicit,
    /// No TLS at all: only when both flags are explicitly `False` (a local relay).
    Plain,
}

/// The settings an SMTP channel needs, resolved and validated.
struct SmtpConfig {
    provider: &'static str,
    host: String,
    port: u16,
    security: Security,
    /// (user, password); `None` = no AUTH.
    credentials: Option<(String, Secret)>,
    /// What staff should check when AUTH is rejected.
    credential_keys: &'static str,
    ca_pem: Option<Vec<u8>>,
    from: Mailbox,
    unsubscribe: String,
    timeout: Duration,
    /// Keys the Message-ID hash.
    message_id_key: MessageIdKey,
}

impl SmtpConfig {
    fn resolve(settings: &Settings) -> Result<Self, String> {
        let email = &settings.email;
        let backend = settings.email_backend()?;
        let mut problems = Vec::new();

        let from = match email.from.trim().parse::<Mailbox>() {
            Ok(m) => Some(m),
            Err(e) => {
                problems.push(format!("DEFAULT_FROM_EMAIL: '{}' is not a valid mailbox ({e})", email.from));
                None
            }
        };
        let ca_pem = match email.ca_file.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            None => None,
            Some(path) => match std::fs::read(path) {
                Ok(pem) => match Certificate::from_pem(&pem) {
                    Ok(_) => Some(pem),
                    Err(e) => {
                        problems.push(format!("CANTINA__EMAIL__CA_FILE: {path} is not a PEM certificate ({e})"));
                        None
                    }
                },
                Err(e) => {
                    problems.push(format!("CANTINA__EMAIL__CA_FILE: cannot read {path} ({e})"));
                    None
                }
            },
        };

        let (provider, host, port, security, credentials, credential_keys) = match backend {
            EmailBackend::Smtp => {
                let host = email.host.trim().to_string();
                if host.is_empty() {
                    problems.push("EMAIL_HOST: required with EMAIL_BACKEND=smtp".to_string());
                }
                let security = match (email.use_tls, email.use_ssl) {
                    (Some(true), Some(true)) => {
                        problems.push(
                            "EMAIL_USE_TLS and EMAIL_USE_SSL are both True: choose one (EMAIL_USE_TLS=True for \
                             STARTTLS on 587, EMAIL_USE_SSL=True for implicit TLS on 465)"
                                .to_string(),
                        );
                        Security::StartTls
                    }
                    (_, Some(true)) => Security::Implicit,
                    (Some(false), Some(false)) => Security::Plain,
                    (Some(false), None) => {
                        problems.push(
                            "EMAIL_USE_TLS=False: plain SMTP needs EMAIL_USE_SSL=False too (set both to False for a \
                             local relay without TLS, or EMAIL_USE_SSL=True for implicit TLS)"
                                .to_string(),
                        );
                        Security::Plain
                    }
                    _ => Security::StartTls,
                };
                let port = email.port.unwrap_or(match security {
                    Security::StartTls => 587,
                    Security::Implicit => 465,
                    Security::Plain => 25,
                });
                let user = email.host_user.as_deref().map(str::trim).filter(|u| !u.is_empty());
                let password = email.host_password.as_ref().filter(|p| !p.expose().is_empty());
                let credentials = match (user, password) {
                    (Some(u), Some(p)) => Some((u.to_string(), p.clone())),
                    (None, None) => None,
                    (Some(_), None) => {
                        problems.push("EMAIL_HOST_PASSWORD: required when EMAIL_HOST_USER is set".to_string());
                        None
                    }
                    (None, Some(_)) => {
                        problems.push("EMAIL_HOST_USER: required when EMAIL_HOST_PASSWORD is set".to_string());
                        None
                    }
                };
                if security == Security::Plain && !host.is_empty() && !is_loopback(&host) {
                    tracing::warn!(
                        host = %host,
                        "EMAIL_USE_TLS=False and EMAIL_USE_SSL=False: email to a non-local SMTP server travels \
                         unencrypted{}",
                        if credentials.is_some() { ", and so do EMAIL_HOST_USER / EMAIL_HOST_PASSWORD" } else { "" }
                    );
                }
                ("smtp", host, port, security, credentials, "EMAIL_HOST_USER / EMAIL_HOST_PASSWORD")
            }
            EmailBackend::Ses => {
                let region = email.ses_region().map_err(|e| problems.push(e)).ok().flatten();
                let key_id = email.aws_access_key_id.as_deref().map(str::trim).filter(|k| !k.is_empty());
                let secret = email.aws_secret_access_key.as_ref().filter(|s| !s.expose().is_empty());
                let mut missing = Vec::new();
                if region.is_none() && problems.iter().all(|p| !p.starts_with("AWS_SES_REGION")) {
                    missing.push("AWS_SES_REGION_NAME (or AWS_SES_REGION_ENDPOINT)");
                }
                if key_id.is_none() {
                    missing.push("AWS_ACCESS_KEY_ID");
                }
                if secret.is_none() {
                    missing.push("AWS_SECRET_ACCESS_KEY");
                }
                if !missing.is_empty() {
                    problems.push(format!("EMAIL_BACKEND=ses needs {}", missing.join(", ")));
                }
                let region = region.unwrap_or_default();
                let region = region.as_str();
                let credentials = match (key_id, secret) {
                    (Some(k), Some(s)) => match ses_smtp_password(s.expose(), region) {
                        Ok(p) => Some((k.to_string(), Secret::new(p))),
                        Err(e) => {
                            problems.push(format!("AWS_SECRET_ACCESS_KEY: {e}"));
                            None
                        }
                    },
                    _ => None,
                };
                (
                    "ses",
                    ses_smtp_host(region),
                    587,
                    Security::StartTls,
                    credentials,
                    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SES_REGION_NAME)",
                )
            }
            other => {
                return Err(format!("EMAIL_BACKEND: the SMTP channel serves smtp and ses, not {other:?}"));
            }
        };

        match from {
            Some(from) if problems.is_empty() => Ok(SmtpConfig {
                provider,
                host,
                port,
                security,
                credentials,
                credential_keys,
                ca_pem,
                from,
                unsubscribe: unsubscribe_link(settings),
                timeout: Duration::from_secs(match email.timeout_seconds {
                    0 => DEFAULT_TIMEOUT_SECONDS,
                    n => n,
                }),
                message_id_key: MessageIdKey::from_settings(settings),
            }),
            _ => Err(problems.join("; ")),
        }
    }

    fn transport_builder(&self) -> Result<AsyncSmtpTransportBuilder, String> {
        let tls_parameters = || {
            let mut b = TlsParameters::builder(self.host.clone());
            if let Some(pem) = &self.ca_pem {
                let cert = Certificate::from_pem(pem).map_err(|e| format!("CANTINA__EMAIL__CA_FILE: {e}"))?;
                b = b.add_root_certificate(cert);
            }
            b.build_rustls().map_err(|e| format!("TLS for EMAIL_HOST {}: {e}", self.host))
        };
        let tls = match self.security {
            Security::StartTls => Tls::Required(tls_parameters()?),
            Security::Implicit => Tls::Wrapper(tls_parameters()?),
            Security::Plain => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.clone())
            .port(self.port)
            .tls(tls)
            .timeout(Some(self.timeout))
            .pool_config(PoolConfig::new().max_size(10).idle_timeout(Duration::from_secs(60)));
        if let Some((user, password)) = &self.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_string()));
        }
        Ok(builder)
    }
}

fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The SES SMTP password for a secret access key in a region (AWS's "Obtaining Amazon SES SMTP credentials":
/// SigV4 chain HMAC-SHA256 over `11111111`, region, `ses`, `aws4_request`, `SendRawEmail`, version byte 4, base64).
pub fn ses_smtp_password(secret_access_key: &str, region: &str) -> Result<String, String> {
    fn sign(key: &[u8], msg: &str) -> Result<Vec<u8>, String> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|e| e.to_string())?;
        mac.update(msg.as_bytes());
        Ok(mac.finalize().into_bytes().to_vec())
    }
    let mut signature = sign(format!("AWS4{secret_access_key}").as_bytes(), "11111111")?;
    for msg in [region, "ses", "aws4_request", "SendRawEmail"] {
        signature = sign(&signature, msg)?;
    }
    let mut versioned = Vec::with_capacity(1 + signature.len());
    versioned.push(0x04);
    versioned.extend_from_slice(&signature);
    Ok(base64::engine::general_purpose::STANDARD.encode(versioned))
}

/// Email through an SMTP server (a relay, Gmail, or AWS SES's SMTP endpoint).
pub struct SmtpChannel {
    config: SmtpConfig,
    builder: AsyncSmtpTransportBuilder,
    /// Built on first use: lettre's pool spawns its cleanup task on the Tokio runtime.
    transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
}

// No credentials in Debug output.
impl fmt::Debug for SmtpChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpChannel")
            .field("provider", &self.config.provider)
            .field("host", &self.config.host)
            .field("port", &self.config.port)
            .field("security", &self.config.security)
            .field("auth", &self.config.credentials.is_some())
            .finish()
    }
}

// lettre's pool spawns a clean-up task when dropped; outside a Tokio runtime (a channel dropped after the runtime
// ended) that would panic, so the pool is leaked instead: the process is exiting anyway.
impl Drop for SmtpChannel {
    fn drop(&mut self) {
        if tokio::runtime::Handle::try_current().is_err()
            && let Some(transport) = self.transport.take()
        {
            std::mem::forget(transport);
        }
    }
}

impl SmtpChannel {
    /// `Err` names the missing or invalid keys.
    pub fn from_settings(settings: &Settings) -> Result<Self, String> {
        let config = SmtpConfig::resolve(settings)?;
        let builder = config.transport_builder()?;
        Ok(Self { config, builder, transport: OnceLock::new() })
    }

    fn transport(&self) -> &AsyncSmtpTransport<Tokio1Executor> {
        self.transport.get_or_init(|| self.builder.clone().build())
    }

    fn build_message(&self, msg: &OutgoingMessage) -> Result<Message, SendError> {
        parent_message(&self.config.from, &self.config.unsubscribe, &self.config.message_id_key, msg)
    }

    fn message_id(&self, key: &str, request_id: i64) -> String {
        self.config.message_id_key.message_id(key, request_id, self.config.from.email.domain())
    }

    fn classify(&self, err: &lettre::transport::smtp::Error) -> SendError {
        classify(err, &self.config)
    }
}

/// `5.7.1` from a reply text such as `5.7.1 Relay access denied`.
fn enhanced_code(text: &str) -> Option<String> {
    text.split_whitespace().find_map(|w| {
        let w = w.trim_matches(|c: char| !c.is_ascii_digit() && c != '.');
        let parts: Vec<&str> = w.split('.').collect();
        (parts.len() == 3
            && matches!(parts[0], "2" | "4" | "5")
            && parts[1..].iter().all(|p| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| c.is_ascii_digit())))
        .then(|| w.to_string())
    })
}

/// Servers quote the recipient in their replies; reasons are stored and logged, so the address is masked.
fn mask_address(error: SendError, recipient: &crate::rules::Recipient) -> SendError {
    let address = recipient.as_str();
    let masked = recipient.masked();
    let scrub = |r: String| r.replace(&address, &masked).replace(&address.to_lowercase(), &masked);
    match error {
        SendError::Transient { reason, retry_after } => SendError::Transient { reason: scrub(reason), retry_after },
        SendError::Permanent { reason } => SendError::Permanent { reason: scrub(reason) },
        SendError::OptedOut { reason } => SendError::OptedOut { reason: scrub(reason) },
        SendError::Configuration { reason } => SendError::Configuration { reason: scrub(reason) },
    }
}

/// SES's SMTP endpoint for a region.
pub fn ses_smtp_host(region: &str) -> String {
    format!("email-smtp.{region}.amazonaws.com")
}

/// The id a server put in its reply to DATA (`250 Ok <id>` from SES, `queued as <id>` from Postfix), if any.
fn queue_id(response: &Response) -> Option<String> {
    let line = response.first_line()?;
    let clean = |t: &str| {
        let t = t.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'));
        (t.len() >= 6).then(|| t.to_string())
    };
    if let Some((_, rest)) = line.split_once("queued as ") {
        return rest.split_whitespace().next().and_then(clean);
    }
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some(ok), Some(id)) if ok.eq_ignore_ascii_case("ok") => clean(id),
        _ => None,
    }
}

fn is_auth_code(code: u16) -> bool {
    // 530 authentication required, 534 mechanism too weak (Gmail: application-specific password required),
    // 535 credentials invalid, 538 encryption required for the mechanism.
    matches!(code, 530 | 534 | 535 | 538)
}

fn classify(err: &lettre::transport::smtp::Error, cfg: &SmtpConfig) -> SendError {
    let server = format!("{}:{}", cfg.host, cfg.port);
    if let Some(code) = err.status() {
        let code = u16::from(code);
        let text = err.source().map(|s| s.to_string()).unwrap_or_default();
        let text = text.trim();
        if is_auth_code(code) {
            let hint = if text.contains("Application-specific password") || text.contains("InvalidSecondFactor") {
                " (Gmail con verificación en dos pasos exige una contraseña de aplicación)"
            } else {
                ""
            };
            return SendError::Configuration {
                reason: format!(
                    "SMTP {code} de {server}: autenticación rechazada: {text}{hint}; revise {}",
                    cfg.credential_keys
                ),
            };
        }
        if code >= 500 && rejects_sender(text, &cfg.from) {
            return SendError::Configuration {
                reason: format!(
                    "SMTP {code} de {server}: el servidor no acepta el remitente {}: {text}; revise DEFAULT_FROM_EMAIL",
                    cfg.from.email
                ),
            };
        }
        // The enhanced status code (RFC 3463) says whose problem it is: 5.7.x is policy or authorisation (relay
        // denied, sender not allowed) and 5.4.5 a sending quota (Gmail's daily limit): the account's, not this
        // recipient's, so they must not burn the queue as per-recipient errors.
        let enhanced = enhanced_code(text);
        return if code >= 500 && enhanced.as_deref() == Some("5.4.5") {
            SendError::Transient {
                reason: format!("SMTP {code} de {server}: límite de envío de la cuenta alcanzado: {text}"),
                retry_after: Some(Duration::from_secs(3600)),
            }
        } else if code >= 500 && enhanced.as_deref().is_some_and(|c| c.starts_with("5.7.")) {
            SendError::Configuration {
                reason: format!(
                    "SMTP {code} de {server}: el servidor rechaza el envío por política o autorización: {text}; revise la cuenta de correo y DEFAULT_FROM_EMAIL"
                ),
            }
        } else if code >= 500 {
            SendError::Permanent { reason: format!("SMTP {code} de {server}: {text}") }
        } else {
            SendError::Transient { reason: format!("SMTP {code} de {server} (temporal): {text}"), retry_after: None }
        };
    }
    if err.is_timeout() {
        return SendError::Transient {
            reason: format!("SMTP {server}: tiempo de espera agotado ({} s)", cfg.timeout.as_secs()),
            retry_after: None,
        };
    }
    if let Some(tls) = find_rustls_error(err)
        && matches!(tls, rustls::Error::InvalidCertificate(_) | rustls::Error::InvalidCertRevocationList(_))
    {
        return SendError::Configuration {
            reason: format!(
                "SMTP {server}: certificado TLS no válido ({tls}); si el servidor usa una CA privada, indíquela en \
                 CANTINA__EMAIL__CA_FILE, y revise que EMAIL_HOST sea el nombre del certificado"
            ),
        };
    }
    if err.is_client() {
        let text = err.source().map(|s| s.to_string()).unwrap_or_default();
        if text.contains("STARTTLS") {
            return SendError::Configuration {
                reason: format!(
                    "SMTP {server}: el servidor no ofrece STARTTLS; use el puerto de envío con TLS (587, o 465 con \
                     EMAIL_USE_SSL=True) o, solo para un relay local, EMAIL_USE_TLS=False y EMAIL_USE_SSL=False"
                ),
            };
        }
        if text.contains("authentication mechanism") {
            return SendError::Configuration {
                reason: format!(
                    "SMTP {server}: el servidor no ofrece AUTH PLAIN ni LOGIN; revise EMAIL_HOST / EMAIL_PORT o {}",
                    cfg.credential_keys
                ),
            };
        }
    }
    SendError::Transient { reason: format!("SMTP {server}: {err}"), retry_after: None }
}

/// A 5xx whose text names our own From address (and not as a recipient) is the server refusing the sender:
/// every message would fail the same way (e.g. SES "Email address is not verified ... noreply@…").
fn rejects_sender(text: &str, from: &Mailbox) -> bool {
    let text = text.to_ascii_lowercase();
    let from = from.email.to_string().to_ascii_lowercase();
    text.contains(&from) || text.contains("sender address rejected") || text.contains("sender not authorized")
}

fn find_rustls_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref())
            && let Some(tls) = find_rustls_error(inner)
        {
            return Some(tls);
        }
        current = e.source();
    }
    None
}

#[async_trait]
impl Channel for SmtpChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    fn provider(&self) -> &'static str {
        self.config.provider
    }

    async fn send(&self, msg: &OutgoingMessage) -> Result<SendReceipt, SendError> {
        let message = self.build_message(msg)?;
        let message_id = self.message_id(&msg.idempotency_key, msg.request_id);
        self.transmit(message, &message_id, &msg.recipient, msg.request_id).await
    }

    fn default_per_second(&self) -> f64 {
        10.0
    }

    /// The staff summary: same transport and error classes; no List-Unsubscribe (staff did not subscribe).
    async fn send_staff(&self, mail: &StaffEmail) -> Result<SendReceipt, SendError> {
        let recipient = Recipient::Email(mail.to.clone());
        let message = staff_message(&self.config.from, &self.config.message_id_key, mail)?;
        let message_id = self.message_id(&mail.idempotency_key, 0);
        self.transmit(message, &message_id, &recipient, 0).await
    }

    /// A fresh connection (not a pooled one): connect, TLS, AUTH and NOOP.
    async fn probe(&self) -> Result<(), SendError> {
        self.probe_connection().await
    }
}

impl SmtpChannel {
    async fn transmit(
        &self,
        message: Message,
        message_id: &str,
        recipient: &Recipient,
        request_id: i64,
    ) -> Result<SendReceipt, SendError> {
        // CANTINA__EMAIL__TIMEOUT_SECONDS bounds the whole conversation (connect, TLS, AUTH, the message); lettre's
        // own timeout, the same value, bounds each step within it.
        let limit = self.config.timeout;
        let result = tokio::time::timeout(limit, self.transport().send(message)).await;
        match result {
            Err(_) => Err(SendError::Transient {
                reason: format!(
                    "SMTP {}:{}: tiempo de espera agotado ({} s)",
                    self.config.host,
                    self.config.port,
                    limit.as_secs()
                ),
                retry_after: None,
            }),
            Ok(Err(e)) => {
                let error = mask_address(self.classify(&e), recipient);
                tracing::debug!(to = %recipient.masked(), request_id, error = %error, "SMTP send failed");
                Err(error)
            }
            Ok(Ok(response)) => {
                let id = queue_id(&response)
                    .unwrap_or_else(|| message_id.trim_start_matches('<').trim_end_matches('>').to_string());
                tracing::debug!(to = %recipient.masked(), request_id, id = %id, "SMTP accepted");
                Ok(SendReceipt::with_id(id))
            }
        }
    }

    async fn probe_connection(&self) -> Result<(), SendError> {
        let transport: AsyncSmtpTransport<Tokio1Executor> =
            self.builder.clone().pool_config(PoolConfig::new().max_size(1)).build();
        let result = tokio::time::timeout(self.config.timeout, transport.test_connection()).await;
        transport.shutdown().await;
        match result {
            Err(_) => Err(SendError::Transient {
                reason: format!(
                    "SMTP {}:{}: tiempo de espera agotado ({} s)",
                    self.config.host,
                    self.config.port,
                    self.config.timeout.as_secs()
                ),
                retry_after: None,
            }),
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(SendError::Transient {
                reason: format!("SMTP {}:{}: el servidor no respondió a NOOP", self.config.host, self.config.port),
                retry_after: None,
            }),
            Ok(Err(e)) => Err(match self.classify(&e) {
                // A 5xx before any message was sent is about the channel, not a recipient.
                SendError::Permanent { reason } => SendError::Configuration { reason },
                other => other,
            }),
        }
    }
}

#[cfg(test)]
mod tests;
