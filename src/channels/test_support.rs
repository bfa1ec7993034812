//! Shared by the adapters' tests: the message an adapter is handed, and assertions on the class of an error.

use std::time::Duration;

use super::{OutgoingMessage, SendError};
use crate::domain::{ChannelKind, EmailAddress, Guaranies, MobilePhone};
use crate::rules::{MessageData, Recipient};

/// The parent's mobile, `+595981123456` once parsed.
pub fn phone() -> Recipient {
    Recipient::Phone(MobilePhone::parse(Some("0981 123456")).unwrap())
}

pub fn email(to: &str) -> Recipient {
    Recipient::Email(EmailAddress::parse(Some(to)).unwrap())
}

/// A top-up of Gs. 50.000 for Ñandú Benítez (a name with characters outside GSM-7).
pub fn recarga() -> MessageData {
    MessageData::RecargaExitosa {
        padre: "María Benítez".into(),
        alumno: "Ñandú Benítez".into(),
        nro_tarjeta: "0001".into(),
        monto: Guaranies(50_000),
        saldo: Guaranies(65_000),
        fecha: "23/11/2026 10:15".into(),
        referencia: None,
    }
}

/// What the dispatcher hands an adapter: request 4711's notice carrying `data`, with short stand-in bodies. A test
/// sets the fields its assertions pin with struct update syntax (`OutgoingMessage { short_text, ..message(…) }`),
/// so a new field of `OutgoingMessage` is added here only.
pub fn message(channel: ChannelKind, recipient: Recipient, data: MessageData) -> OutgoingMessage {
    OutgoingMessage {
        request_id: 4711,
        idempotency_key: format!("{}:4711:{channel}", data.notification_type()),
        notification_type: data.notification_type(),
        channel,
        recipient,
        subject: "Recarga confirmada".into(),
        html: "<p>Recarga</p>".into(),
        text: "Recarga".into(),
        short_text: "Recarga".into(),
        data,
        test: false,
    }
}

pub fn permanent(err: &SendError) -> &str {
    match err {
        SendError::Permanent { reason } => reason,
        other => panic!("expected Permanent, got {other:?}"),
    }
}

pub fn opted_out(err: &SendError) -> &str {
    match err {
        SendError::OptedOut { reason } => reason,
        other => panic!("expected OptedOut, got {other:?}"),
    }
}

pub fn configuration(err: &SendError) -> &str {
    match err {
        SendError::Configuration { reason } => reason,
        other => panic!("expected Configuration, got {other:?}"),
    }
}

pub fn transient(err: &SendError) -> (&str, Option<Duration>) {
    match err {
        SendError::Transient { reason, retry_after } => (reason, *retry_after),
        other => panic!("expected Transient, got {other:?}"),
    }
}
