//! One trait for every channel; one adapter per provider. Each adapter decides whether an error is worth retrying.

mod console;
mod file;
pub mod http_gateway;
pub mod portal;
pub mod sendgrid;
pub mod smtp;
pub mod twilio;
pub mod whatsapp_cloud;

pub use console::ConsoleChannel;
pub use file::FileChannel;

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
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReceipt {
    pub provider_message_id: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    /// Worth retrying later (timeouts, 5xx, rate limits); `retry_after` when the provider said when.
    #[error("{reason}")]
    Transient { reason: String, retry_after: Option<Duration> },
    /// Retrying cannot help for this recipient or content (invalid number, opted out, bounced address).
    #[error("{reason}")]
    Permanent { reason: String },
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

    /// Builds the adapters the configuration asks for.
    pub fn from_settings(settings: &Settings, providers: &ChannelProviders) -> Self {
        let mut channels = Channels::new();
        match providers.email {
            Some(EmailBackend::File) => {
                channels = channels.with(Arc::new(FileChannel::new(
                    ChannelKind::Email,
                    &settings.email.file_path,
                    &settings.email.from,
                )));
            }
            Some(_) => channels = channels.with(Arc::new(ConsoleChannel::new(ChannelKind::Email))),
            None => {}
        }
        match providers.sms {
            Some(SmsProvider::File) => {
                channels = channels.with(Arc::new(FileChannel::new(
                    ChannelKind::Sms,
                    &settings.sms.file_path,
                    &settings.email.from,
                )));
            }
            Some(_) => channels = channels.with(Arc::new(ConsoleChannel::new(ChannelKind::Sms))),
            None => {}
        }
        match providers.whatsapp {
            Some(WhatsAppProvider::File) => {
                channels = channels.with(Arc::new(FileChannel::new(
                    ChannelKind::WhatsApp,
                    &settings.whatsapp.file_path,
                    &settings.email.from,
                )));
            }
            Some(_) => channels = channels.with(Arc::new(ConsoleChannel::new(ChannelKind::WhatsApp))),
            None => {}
        }
        channels
    }
}
