use super::Parent;
use crate::domain::{ChannelKind, EmailAddress, MobilePhone};

/// A validated address for one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    Email(EmailAddress),
    Phone(MobilePhone),
}

impl Recipient {
    /// The address as stored in `destinatario` and handed to providers.
    pub fn as_str(&self) -> &str {
        match self {
            Recipient::Email(e) => e.as_str(),
            Recipient::Phone(p) => p.as_str(),
        }
    }

    /// For logs and console output.
    pub fn masked(&self) -> String {
        match self {
            Recipient::Email(e) => e.masked(),
            Recipient::Phone(p) => p.masked(),
        }
    }

    /// Re-validates a stored `destinatario` for its channel.
    pub fn parse(channel: ChannelKind, stored: Option<&str>) -> Result<Recipient, String> {
        match channel {
            ChannelKind::Email => EmailAddress::parse(stored)
                .map(Recipient::Email)
                .map_err(|e| e.to_string()),
            ChannelKind::Sms | ChannelKind::WhatsApp => MobilePhone::parse(stored)
                .map(Recipient::Phone)
                .map_err(|e| e.to_string()),
            ChannelKind::Portal => Err("el canal portal no está disponible en esta versión".into()),
        }
    }
}

/// The parent's address for a channel, or a readable reason why there is none.
pub fn resolve_recipient(channel: ChannelKind, parent: &Parent) -> Result<Recipient, String> {
    let stored = match channel {
        ChannelKind::Email => parent.email.as_deref(),
        ChannelKind::Sms | ChannelKind::WhatsApp => parent.telefono.as_deref(),
        ChannelKind::Portal => None,
    };
    Recipient::parse(channel, stored)
        .map_err(|reason| format!("cliente {}: {reason}", parent.id_cliente))
}
