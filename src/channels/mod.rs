//! One trait for every channel; one adapter per provider. Each adapter decides whether an error is worth retrying.

mod console;
pub mod dry_run;
pub mod email_message;
mod file;
pub mod http_gateway;
pub mod portal;
pub mod provider_text;
pub mod samples;
pub mod sendgrid;
pub mod smtp;
pub mod twilio;
pub mod whatsapp_cloud;

pub use console::ConsoleChannel;
pub use file::FileChannel;
pub use http_gateway::HttpGatewayChannel;
pub use portal::PortalChannel;
pub use sendgrid::SendGridChannel;
pub use smtp::SmtpChannel;
pub use twilio::TwilioChannel;
pub use whatsapp_cloud::WhatsAppCloudChannel;

use deadpool_postgres::Pool;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::{ChannelProviders, EmailBackend, Settings, SmsProvider, WhatsAppProvider};
use crate::domain::{ChannelKind, NotificationType};
use crate::rules::{MessageData, Recipient};

/// Everything an adapter may need to deliver one notice.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    pub request_id: i64,
    /// Stable across retries of the same request (`clave_dedup`): providers that support idempotency keys get it.
    pub idempotency_key: String,
    pub notification_type: NotificationType,
    pub channel: ChannelKind,
    pub recipient: Recipient,
    pub subject: String,
    pub html: String,
    pub text: String,
    /// SMS / WhatsApp text.
    pub short_text: String,
    /// The template data, for providers that send approved templates with parameters (WhatsApp).
    pub data: MessageData,
    /// A `send-test` message ([`OutgoingMessage::mark_as_test`]), not a request's.
    pub test: bool,
}

impl OutgoingMessage {
    /// Renders `data` into a message for `recipient` on `channel`.
    pub fn render(
        request_id: i64,
        idempotency_key: String,
        channel: ChannelKind,
        recipient: Recipient,
        data: MessageData,
        portal_url: &str,
    ) -> Result<Self, crate::render::RenderError> {
        let rendered = crate::render::render(&data, portal_url)?;
        Ok(OutgoingMessage {
            request_id,
            idempotency_key,
            notification_type: data.notification_type(),
            channel,
            recipient,
            subject: rendered.subject,
            html: rendered.html,
            text: rendered.text,
            short_text: rendered.short,
            data,
            test: false,
        })
    }
}

/// What `send-test` puts in front of a subject and a short text, so nobody takes its message for a real notice.
pub const TEST_MARK: &str = "[PRUEBA]";
/// The line `send-test` adds at the top of an email's body.
pub const TEST_NOTE: &str = "Mensaje de prueba enviado con cantina-notify send-test, con datos inventados: no corresponde a ningún movimiento real.";

impl OutgoingMessage {
    /// Marks a rendered message as a test (`send-test`): `[PRUEBA]` before the subject and the SMS/WhatsApp text,
    /// [`TEST_NOTE`] at the top of the email's text and HTML. An approved WhatsApp template's text cannot change,
    /// so there the made-up parent's name, its first parameter, carries the mark (`[PRUEBA] Ana`).
    pub fn mark_as_test(&mut self) {
        self.test = true;
        self.subject = format!("{TEST_MARK} {}", self.subject);
        self.short_text = format!("{TEST_MARK} {}", self.short_text);
        self.text = format!("{TEST_NOTE}\n\n{}", self.text);
        let note = format!(
            "<p style=\"margin:0;padding:12px 16px;background-color:#fff4ce;font-family:Arial,Helvetica,sans-serif;font-size:15px;line-height:22px;color:#2b3137;\"><strong>{TEST_MARK}</strong> {TEST_NOTE}</p>\n"
        );
        // Right after `<body …>`, so it is the first thing shown; at the very top when there is no body tag.
        let at = self.html.find("<body").and_then(|b| self.html[b..].find('>').map(|end| b + end + 1)).unwrap_or(0);
        self.html.insert_str(at, &note);
        self.data.padre_mut().insert_str(0, &format!("{TEST_MARK} "));
    }
}

/// An email to the cantina's staff (the daily summary, [`crate::scheduler::summary`]): not a parent notice, so no
/// request row, no template data and no unsubscribe link.
#[derive(Debug, Clone)]
pub struct StaffEmail {
    pub to: crate::domain::EmailAddress,
    pub subject: String,
    pub html: String,
    pub text: String,
    /// Stable across retries of the same email (SMTP hashes it into the Message-ID and sends it as X-Cantina-Clave).
    pub idempotency_key: String,
}

/// What a provider said when it accepted a message. Build it with [`SendReceipt::with_id`] or
/// [`SendReceipt::accepted`], which clean the provider's text; the dispatcher stores both fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReceipt {
    pub provider_message_id: Option<String>,
    /// For staff (`ultimo_error` of the `Enviado` row): something about the acceptance they should know, e.g. that
    /// the provider gave no message id, so delivery receipts cannot be matched.
    pub warning: Option<String>,
}

impl SendReceipt {
    /// An id this service made up or trusts (a file name, a Message-ID); cleaned all the same.
    pub fn with_id(id: impl AsRef<str>) -> Self {
        SendReceipt { provider_message_id: provider_text::clean_id(id.as_ref()), warning: None }
    }

    /// A provider accepted the message; `id` is what its answer carried in `documented` (the field its API
    /// documents). Without a usable id it is still a send (resending would reach the parent twice), with a warning.
    pub fn accepted(provider: &str, id: Option<&str>, documented: &str) -> Self {
        match id.and_then(provider_text::clean_id) {
            Some(id) => SendReceipt { provider_message_id: Some(id), warning: None },
            None => SendReceipt {
                provider_message_id: None,
                warning: Some(format!(
                    "aviso: {provider} aceptó el envío pero su respuesta no trae el identificador del mensaje \
                     ({documented}); los recibos de entrega no podrán asociarse a esta solicitud"
                )),
            },
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    /// Worth retrying later (timeouts, 5xx, rate limits); `retry_after` when the provider said when.
    #[error("{reason}")]
    Transient { reason: String, retry_after: Option<Duration> },
    /// Retrying cannot help for this recipient or content (invalid number, opted out, bounced address).
    #[error("{reason}")]
    Permanent { reason: String },
    /// The recipient asked not to receive messages on this channel (replied STOP): the request is `Omitido`, the
    /// address is recorded as opted out, and later notices to it are not attempted until the parent opts back in.
    #[error("{reason}")]
    OptedOut { reason: String },
    /// The channel itself is broken (rejected credentials, unknown sender, missing template): retrying every
    /// queued request would only burn them. The dispatcher pauses the channel, raises one staff alert, gives the
    /// request back untouched, and resumes when [`Channel::probe`] succeeds.
    #[error("{reason}")]
    Configuration { reason: String },
}

#[async_trait]
pub trait Channel: Send + Sync {
    fn kind(&self) -> ChannelKind;
    /// Metric label and `solicitudes_notificacion.proveedor`.
    fn provider(&self) -> &'static str;
    async fn send(&self, msg: &OutgoingMessage) -> Result<SendReceipt, SendError>;

    /// Sends per second the provider account allows by default (`0` = no limit); `CANTINA__LIMITS__…` overrides.
    fn default_per_second(&self) -> f64 {
        0.0
    }

    /// A cheap call that proves the credentials work (used to resume a paused channel). The default says yes.
    async fn probe(&self) -> Result<(), SendError> {
        Ok(())
    }

    /// Sends an email to staff ([`StaffEmail`]). Only the email adapters can; the others refuse.
    async fn send_staff(&self, mail: &StaffEmail) -> Result<SendReceipt, SendError> {
        let _ = mail;
        Err(SendError::Configuration {
            reason: format!("el proveedor {} no envía correos al personal", self.provider()),
        })
    }
}

/// The adapters of a running service, one per configured channel.
#[derive(Clone, Default)]
pub struct Channels {
    by_kind: HashMap<ChannelKind, Arc<dyn Channel>>,
}

impl Channels {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, channel: Arc<dyn Channel>) -> Self {
        self.by_kind.insert(channel.kind(), channel);
        self
    }

    pub fn get(&self, kind: ChannelKind) -> Option<&Arc<dyn Channel>> {
        self.by_kind.get(&kind)
    }

    pub fn kinds(&self) -> Vec<ChannelKind> {
        let mut k: Vec<_> = self.by_kind.keys().copied().collect();
        k.sort();
        k
    }

    /// Dry run: the same channels, each wrapped so that nothing is sent (see [`dry_run`]).
    pub fn dry_run(self) -> Self {
        let by_kind = self
            .by_kind
            .into_iter()
            .map(|(k, c)| (k, Arc::new(dry_run::DryRunChannel::new(c)) as Arc<dyn Channel>))
            .collect();
        Self { by_kind }
    }

    /// Builds the adapters the configuration asks for; an error names the keys to fix.
    pub fn from_settings(settings: &Settings, providers: &ChannelProviders, pool: &Pool) -> Result<Self, Vec<String>> {
        let http = http_client(settings).map_err(|e| vec![e])?;
        let file = |kind, dir: &str| -> Arc<dyn Channel> { Arc::new(FileChannel::new(kind, dir, settings)) };
        let console = |kind| -> Arc<dyn Channel> { Arc::new(ConsoleChannel::new(kind)) };
        let mut built: Vec<Result<Arc<dyn Channel>, String>> = Vec::new();
        built.extend(providers.email.map(|b| match b {
            EmailBackend::Console => Ok(console(ChannelKind::Email)),
            EmailBackend::File => Ok(file(ChannelKind::Email, &settings.email.file_path)),
            EmailBackend::Smtp | EmailBackend::Ses => {
                SmtpChannel::from_settings(settings).map(|c| Arc::new(c) as Arc<dyn Channel>)
            }
            EmailBackend::Sendgrid => {
                SendGridChannel::from_settings(settings, &http).map(|c| Arc::new(c) as Arc<dyn Channel>)
            }
        }));
        built.extend(providers.sms.map(|p| match p {
            SmsProvider::Console => Ok(console(ChannelKind::Sms)),
            SmsProvider::File => Ok(file(ChannelKind::Sms, &settings.sms.file_path)),
            SmsProvider::Twilio => TwilioChannel::sms(settings, &http).map(|c| Arc::new(c) as Arc<dyn Channel>),
            SmsProvider::Tigo | SmsProvider::Personal | SmsProvider::Http => {
                HttpGatewayChannel::from_settings(settings, p, &http).map(|c| Arc::new(c) as Arc<dyn Channel>)
            }
        }));
        built.extend(providers.whatsapp.map(|p| match p {
            WhatsAppProvider::Console => Ok(console(ChannelKind::WhatsApp)),
            WhatsAppProvider::File => Ok(file(ChannelKind::WhatsApp, &settings.whatsapp.file_path)),
            WhatsAppProvider::BusinessApi => {
                WhatsAppCloudChannel::from_settings(settings, &http).map(|c| Arc::new(c) as Arc<dyn Channel>)
            }
            WhatsAppProvider::Twilio => {
                TwilioChannel::whatsapp(settings, &http).map(|c| Arc::new(c) as Arc<dyn Channel>)
            }
        }));
        built.push(Ok(Arc::new(PortalChannel::new(pool.clone()))));
        let mut channels = Channels::new();
        let mut errors = Vec::new();
        for b in built {
            match b {
                Ok(c) => channels = channels.with(c),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() { Ok(channels) } else { Err(errors) }
    }
}

/// A provider's `Retry-After`, as seconds or as an HTTP date (relative to `now`); every HTTP adapter uses this one.
pub(crate) fn retry_after_at(headers: &reqwest::header::HeaderMap, now: jiff::Timestamp) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(value).ok()?;
    Some(Duration::from_secs(u64::try_from(at.as_second().saturating_sub(now.as_second())).unwrap_or(0)))
}

/// The HTTP client's own deadline, body included: four fifths of the dispatcher's send timeout. A provider that
/// answers 2xx and then dribbles its body is cut off here, inside the adapter, which counts the answer as sent
/// (`provider_text::read_capped` keeps what arrived); were the dispatcher's timeout to fire first, the accepted
/// notice would be taken for a timeout and sent again.
pub fn http_timeout(send_timeout_seconds: u64) -> std::time::Duration {
    std::time::Duration::from_secs(send_timeout_seconds.max(1)).mul_f64(0.8)
}

/// One HTTP client for every provider: connection pooling, rustls with the shared crypto provider.
fn http_client(settings: &Settings) -> Result<reqwest::Client, String> {
    crate::db::install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(concat!("cantina-notify/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(10).min(http_timeout(settings.dispatch.send_timeout_seconds)))
        .timeout(http_timeout(settings.dispatch.send_timeout_seconds))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Shared by the adapters' tests: the message fixture and assertions on an error's class.
#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    use super::retry_after_at;

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now: jiff::Timestamp = "2015-10-21T07:27:00Z".parse().unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(retry_after_at(&h, now), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("12"));
        assert_eq!(retry_after_at(&h, now), Some(Duration::from_secs(12)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after_at(&h, now), Some(Duration::from_secs(60)));
        // A date in the past means now; garbage means nothing.
        h.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:00:00 GMT"));
        assert_eq!(retry_after_at(&h, now), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after_at(&h, now), None);
    }
}
