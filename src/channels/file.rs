use std::path::PathBuf;

use async_trait::async_trait;
use lettre::message::Mailbox;

use super::email_message::{MessageIdKey, parent_message, staff_message, unsubscribe_link};
use super::{Channel, OutgoingMessage, SendError, SendReceipt, StaffEmail};
use crate::config::Settings;
use crate::domain::ChannelKind;

/// Writes each message to a folder: for email the complete `.eml` SMTP would send (the same Message-ID,
/// `X-Cantina-Clave` and `List-Unsubscribe`; open it in any mail client), a `.txt` otherwise.
/// For development and for trying the service on a copy of production data.
pub struct FileChannel {
    kind: ChannelKind,
    dir: PathBuf,
    from: String,
    unsubscribe: String,
    message_id_key: MessageIdKey,
}

impl FileChannel {
    pub fn new(kind: ChannelKind, dir: &str, settings: &Settings) -> Self {
        Self {
            kind,
            dir: PathBuf::from(dir),
            from: settings.email.from.clone(),
            unsubscribe: unsubscribe_link(settings),
            message_id_key: MessageIdKey::from_settings(settings),
        }
    }

    fn from(&self) -> Result<Mailbox, SendError> {
        self.from
            .trim()
            .parse()
            .map_err(|e| SendError::Permanent { reason: format!("DEFAULT_FROM_EMAIL inválido: {e}") })
    }

    /// A request's file sorts by request id; a `send-test` file (which has no request) says so and never replaces
    /// an earlier one.
    fn file_name(&self, msg: &OutgoingMessage, ext: &str) -> String {
        if msg.test {
            let now = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ");
            format!("prueba-{now}-{:08x}-{}.{ext}", fastrand::u32(..), msg.notification_type)
        } else {
            format!("{:010}-{}.{ext}", msg.request_id, msg.notification_type)
        }
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
            ChannelKind::Email => {
                ("eml", parent_message(&self.from()?, &self.unsubscribe, &self.message_id_key, msg)?.formatted())
            }
            _ => ("txt", format!("To: {}\n\n{}\n", msg.recipient.as_str(), msg.short_text).into_bytes()),
        };
        let name = self.file_name(msg, ext);
        self.write(&name, bytes).await?;
        Ok(SendReceipt::with_id(name))
    }

    async fn send_staff(&self, mail: &StaffEmail) -> Result<SendReceipt, SendError> {
        let bytes = staff_message(&self.from()?, &self.message_id_key, mail)?.formatted();
        let name = format!(
            "personal-{}.eml",
            mail.idempotency_key.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
        );
        self.write(&name, bytes).await?;
        Ok(SendReceipt::with_id(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::NotificationType;
    use crate::rules::{MessageData, Recipient};

    fn test_message(channel: ChannelKind, to: &str) -> OutgoingMessage {
        let recipient = Recipient::parse(channel, Some(to)).unwrap();
        let data = MessageData::sample(NotificationType::RecargaExitosa);
        let mut msg = OutgoingMessage::render(
            0,
            format!("send-test:{}", fastrand::u64(..)),
            channel,
            recipient,
            data,
            "https://p",
        )
        .unwrap();
        msg.mark_as_test();
        msg
    }

    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    /// `prueba-20260115T143012Z-1a2b3c4d-recarga_exitosa.eml`: a test, when, and never the name of another file.
    fn is_test_name(name: &str, ext: &str) -> bool {
        let Some(rest) = name.strip_prefix("prueba-") else { return false };
        let Some(rest) = rest.strip_suffix(&format!("-recarga_exitosa.{ext}")) else { return false };
        let Some((when, random)) = rest.split_once('-') else { return false };
        when.len() == 16
            && when.as_bytes()[8] == b'T'
            && when.ends_with('Z')
            && random.len() == 8
            && random.chars().all(|c| c.is_ascii_hexdigit())
    }

    /// Two `send-test` runs write two files, each named as a test, for every channel the file backend serves;
    /// a request's file keeps its request-id name.
    #[tokio::test]
    async fn send_test_files_are_unique_and_named_as_tests() {
        for (kind, a, b, ext) in [
            (ChannelKind::Email, "a@example.com", "b@example.com", "eml"),
            (ChannelKind::Sms, "0981111111", "0982222222", "txt"),
            (ChannelKind::WhatsApp, "0981111111", "0982222222", "txt"),
        ] {
            let dir = std::env::temp_dir().join(format!("cn-file-{}", fastrand::u64(..)));
            let channel = FileChannel::new(kind, dir.to_str().unwrap(), &Settings::default());
            channel.send(&test_message(kind, a)).await.unwrap();
            channel.send(&test_message(kind, b)).await.unwrap();
            let names = names(&dir);
            assert_eq!(names.len(), 2, "{kind}: {names:?}");
            assert!(names.iter().all(|n| is_test_name(n, ext)), "{kind}: {names:?}");
            let both: String = names.iter().map(|n| std::fs::read_to_string(dir.join(n)).unwrap()).collect();
            let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
            for to in [a, b] {
                let to = if kind == ChannelKind::Email { to.to_string() } else { digits(to)[1..].to_string() };
                assert!(both.contains(&to), "{kind}: {to} missing");
            }

            let mut request = test_message(kind, a);
            request.test = false;
            request.request_id = 41;
            channel.send(&request).await.unwrap();
            assert!(names_contains(&dir, &format!("0000000041-recarga_exitosa.{ext}")), "{kind}");
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    fn names_contains(dir: &std::path::Path, name: &str) -> bool {
        names(dir).iter().any(|n| n == name)
    }
}
