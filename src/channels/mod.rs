//! One trait for every channel; one adapter per provider. Each adapter decides whether an error is worth retrying.

mod console;
mod file;

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
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help (invalid recipient, rejected content).
    #[error("{reason}")]
    Permanent { reason: String },
}

#[async_trait]
pub trait Channel: Send + Sync {
    fn kind(&self) -> ChannelKind;
    /// Metric label and `solicitudes_notificacion.proveedor`.
    fn provider(&self) -> &'static str;
    async fn send(&self, msg: &OutgoingMessage) -> Result<SendReceipt, SendError>;
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
            Some(_) => {
                channels = channels.with(Arc::new(ConsoleChannel::new(ChannelKind::WhatsApp)))
            }
            None => {}
        }
        channels
    }
}
