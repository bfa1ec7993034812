use super::Parent;
use crate::domain::{ChannelKind, EmailAddress, MobilePhone};

/// A validated address for one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    Email(EmailAddress),
    Phone(MobilePhone),
    /// The parent's portal accounts, by client (`notificacion` rows go to each active `usuario_portal`).
    Portal {
        id_cliente: i32,
    },
}

impl Recipient {
    /// The address as stored in `destinatario` and handed to providers.
    pub fn as_str(&self) -> String {
        match self {
            Recipient::Email(e) => e.as_str().to_string(),
            Recipient::Phone(p) => p.as_str().to_string(),
            Recipient::Portal { id_cliente } => format!("cliente:{id_cliente}"),
        }
    }

    /// For logs and console output.
    pub fn masked(&self) -> String {
        match self {
            Recipient::Email(e) => e.masked(),
            Recipient::Phone(p) => p.masked(),
            Recipient::Portal { id_cliente } => format!("portal:cliente {id_cliente}"),
        }
    }

    /// Re-validates a stored `destinatario` for its channel.
    pub fn parse(channel: ChannelKind, stored: Option<&str>) -> Result<Recipient, String> {
        match channel {
            ChannelKind::Email => EmailAddress::parse(stored).map(Recipient::Email).map_err(|e| e.to_string()),
            ChannelKind::Sms | ChannelKind::WhatsApp => {
                MobilePhone::parse(stored).map(Recipient::Phone).map_err(|e| e.to_string())
            }
            ChannelKind::Portal => stored
                .and_then(|s| s.strip_prefix("cliente:"))
                .and_then(|id| id.parse().ok())
                .map(|id_cliente| Recipient::Portal { id_cliente })
                .ok_or_else(|| "destinatario de portal inválido".to_string()),
        }
    }
}

/// The parent's address for a channel, or a readable reason why there is none.
pub fn resolve_recipient(channel: ChannelKind, parent: &Parent) -> Result<Recipient, String> {
    let stored = match channel {
        ChannelKind::Email => parent.email.as_deref(),
        ChannelKind::Sms | ChannelKind::WhatsApp => parent.telefono.as_deref(),
        // Whether the parent has an active portal account is the portal adapter's to check at send time.
        ChannelKind::Portal => {
            return Ok(Recipient::Portal { id_cliente: parent.id_cliente });
        }
    };
    Recipient::parse(channel, stored).map_err(|reason| format!("cliente {}: {reason}", parent.id_cliente))
}
