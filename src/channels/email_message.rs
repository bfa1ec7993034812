//! The email a parent (or the staff) gets, built once for every backend that produces the message itself: SMTP
//! sends it, the file backend writes it as a `.eml`, so what a developer opens is what SMTP would send.

use hmac::{Hmac, Mac};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{Address, Message};
use sha2::Sha256;

use super::{OutgoingMessage, SendError, StaffEmail};
use crate::config::Settings;
use crate::rules::Recipient;

/// Keys the Message-ID hash: the installation's row-signing key, which each installation has of its own and keeps
/// (staging and production must not share it), so Message-IDs differ between installations and stay the same across
/// restarts and replicas. Without one (send-test, the demo) nothing is retried later: a random key will do.
#[derive(Clone)]
pub struct MessageIdKey(Vec<u8>);

impl MessageIdKey {
    pub fn from_settings(settings: &Settings) -> Self {
        Self(match &settings.database.signing_key {
            Some(k) => k.expose().as_bytes().to_vec(),
            None => (0..32).map(|_| fastrand::u8(..)).collect(),
        })
    }

    /// `<hash@from-domain>`: an HMAC of the dedup key and the request id, truncated to 128 bits (which reveals
    /// nothing of the key). The same for every retry of a request, so a mail client still collapses a duplicate;
    /// different for another request with the same dedup key and for another installation (another key).
    pub fn message_id(&self, clave: &str, request_id: i64, domain: &str) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(b"cantina-notify Message-ID\0");
        mac.update(&request_id.to_be_bytes());
        mac.update(clave.as_bytes());
        let hash = mac.finalize().into_bytes();
        let hex: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("<{hex}@{domain}>")
    }
}

impl std::fmt::Debug for MessageIdKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageIdKey(********)")
    }
}

/// `<https://portal/preferencias>` for `List-Unsubscribe`.
pub fn unsubscribe_link(settings: &Settings) -> String {
    format!("<{}/preferencias>", settings.portal.base_url.trim().trim_end_matches('/'))
}

/// A parent's notice: Message-ID, `List-Unsubscribe`, `X-Cantina-Clave`, text and HTML alternatives.
pub fn parent_message(
    from: &Mailbox,
    unsubscribe: &str,
    key: &MessageIdKey,
    msg: &OutgoingMessage,
) -> Result<Message, SendError> {
    let Recipient::Email(to) = &msg.recipient else {
        return Err(SendError::Permanent {
            reason: format!("el canal email necesita una dirección de correo, no {}", msg.recipient.masked()),
        });
    };
    let to: Address = to.as_str().parse().map_err(|e| SendError::Permanent {
        reason: format!("dirección de correo no aceptada ({}): {e}", to.masked()),
    })?;
    let list_unsubscribe =
        HeaderValue::new(HeaderName::new_from_ascii_str("List-Unsubscribe"), unsubscribe.to_string());
    Message::builder()
        .from(from.clone())
        .to(Mailbox::new(None, to))
        .subject(msg.subject.clone())
        .message_id(Some(key.message_id(&msg.idempotency_key, msg.request_id, from.email.domain())))
        .raw_header(list_unsubscribe)
        .raw_header(clave_header(&msg.idempotency_key))
        .multipart(MultiPart::alternative_plain_html(msg.text.clone(), msg.html.clone()))
        .map_err(|e| SendError::Permanent { reason: format!("no se pudo armar el correo: {e}") })
}

/// The staff summary: no `List-Unsubscribe` (staff did not subscribe).
pub fn staff_message(from: &Mailbox, key: &MessageIdKey, mail: &StaffEmail) -> Result<Message, SendError> {
    let to: Address = mail.to.as_str().parse().map_err(|e| SendError::Permanent {
        reason: format!("dirección de correo no aceptada ({}): {e}", mail.to.masked()),
    })?;
    Message::builder()
        .from(from.clone())
        .to(Mailbox::new(None, to))
        .subject(mail.subject.clone())
        .message_id(Some(key.message_id(&mail.idempotency_key, 0, from.email.domain())))
        .raw_header(clave_header(&mail.idempotency_key))
        .multipart(MultiPart::alternative_plain_html(mail.text.clone(), mail.html.clone()))
        .map_err(|e| SendError::Permanent { reason: format!("no se pudo armar el correo: {e}") })
}

/// `X-Cantina-Clave: <dedup key>`, for staff tracing a message back to its request. Printable ASCII is kept;
/// anything else (and `=`) becomes `=XX`, so no key can break the header.
pub fn clave_header(clave: &str) -> HeaderValue {
    let mut value = String::with_capacity(clave.len() + 8);
    for b in clave.bytes() {
        if b.is_ascii_graphic() && b != b'=' {
            value.push(char::from(b));
        } else {
            value.push_str(&format!("={b:02X}"));
        }
    }
    HeaderValue::new(HeaderName::new_from_ascii_str("X-Cantina-Clave"), value)
}
