use std::path::PathBuf;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};

use super::{Channel, OutgoingMessage, SendError, SendReceipt, StaffEmail};
use crate::domain::ChannelKind;

/// Writes each message to a folder: a complete `.eml` for email (open it in any mail client), a `.txt` otherwise.
/// For development and for trying the service on a copy of production data.
pub struct FileChannel {
    kind: ChannelKind,
    dir: PathBuf,
    from: String,
}

impl FileChannel {
    pub fn new(kind: ChannelKind, dir: &str, from: &str) -> Self {
        Self { kind, dir: PathBuf::from(dir), from: from.to_string() }
    }

    fn email_bytes(&self, msg: &OutgoingMessage) -> Result<Vec<u8>, SendError> {
        let staff = StaffEmail {
            to: match &msg.recipient {
                crate::rules::Recipient::Email(to) => to.clone(),
                other => {
                    return Err(SendError::Permanent { reason: format!("destinatario inválido: {}", other.masked()) });
                }
            },
            subject: msg.subject.clone(),
            html: msg.html.clone(),
            text: msg.text.clone(),
            idempotency_key: msg.idempotency_key.clone(),
        };
        self.staff_bytes(&staff)
    }

    fn staff_bytes(&self, mail: &StaffEmail) -> Result<Vec<u8>, SendError> {
        let permanent = |reason: String| SendError::Permanent { reason };
        let from: Mailbox = self.from.parse().map_err(|e| permanent(format!("DEFAULT_FROM_EMAIL inválido: {e}")))?;
        let to: Mailbox = mail.to.as_str().parse().map_err(|e| permanent(format!("destinatario inválido: {e}")))?;
        let email = lettre::Message::builder()
            .from(from)
            .to(to)
            .subject(mail.subject.clone())
            .message_id(Some(format!("<{}@cantina-notify>", mail.idempotency_key.replace([':', ' '], "."))))
            .multipart(MultiPart::alternative_plain_html(mail.text.clone(), mail.html.clone()))
            .map_err(|e| permanent(format!("no se pudo armar el correo: {e}")))?;
        Ok(email.formatted())
    }

    /// Write then rename, so a reader never sees half a message.
    async fn write(&self, name: &str, bytes: Vec<u8>) -> Result<(), SendError> {
        let transient = |e: std::io::Error| SendError::Transient {
            reason: format!("{}: {e}", self.dir.display()),
            retry_after: None,
        };
        tokio::fs::create_dir_all(&self.dir).await.map_err(transient)?;
        let tmp = self.dir.join(format!(".{name}.tmp"));
        tokio::fs::write(&tmp, bytes).await.map_err(transient)?;
        tokio::fs::rename(&tmp, self.dir.join(name)).await.map_err(transient)
    }
}

#[async_trait]
impl Channel for FileChannel {
    fn kind(&self) -> ChannelKind {
        self.kind
    }

    fn provider(&self) -> &'static str {
        "file"
    }

    async fn send(&self, msg: &OutgoingMessage) -> Result<SendReceipt, SendError> {
        let (ext, bytes) = match self.kind {
            ChannelKind::Email => ("eml", self.email_bytes(msg)?),
            _ => ("txt", format!("To: {}\n\n{}\n", msg.recipient.as_str(), msg.short_text).into_bytes()),
        };
        let name = format!("{:010}-{}.{ext}", msg.request_id, msg.notification_type);
        self.write(&name, bytes).await?;
        Ok(SendReceipt::with_id(name))
    }

    async fn send_staff(&self, mail: &StaffEmail) -> Result<SendReceipt, SendError> {
        let bytes = self.staff_bytes(mail)?;
        let name = format!(
            "personal-{}.eml",
            mail.idempotency_key.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
        );
        self.write(&name, bytes).await?;
        Ok(SendReceipt::with_id(name))
    }
}
