use std::io::Write;

use async_trait::async_trait;

use super::{Channel, OutgoingMessage, SendError, SendReceipt, StaffEmail};
use crate::domain::ChannelKind;

/// Prints each message to stdout, like Django's console email backend. The address is masked: stdout ends up
/// in the same log collector as the logs.
pub struct ConsoleChannel {
    kind: ChannelKind,
}

impl ConsoleChannel {
    pub fn new(kind: ChannelKind) -> Self {
        Self { kind }
    }
}

pub fn format_message(msg: &OutgoingMessage) -> String {
    let header = format!(
        "──── {} → {} · {} · solicitud {} ────",
        msg.channel.destino(),
        msg.recipient.masked(),
        msg.notification_type,
        msg.request_id
    );
    match msg.channel {
        ChannelKind::Email => format!("{header}\nAsunto: {}\n\n{}\n", msg.subject, msg.text.trim_end()),
        _ => format!("{header}\n{}\n", msg.short_text),
    }
}

#[async_trait]
impl Channel for ConsoleChannel {
    fn kind(&self) -> ChannelKind {
        self.kind
    }

    fn provider(&self) -> &'static str {
        "console"
    }

    async fn send(&self, msg: &OutgoingMessage) -> Result<SendReceipt, SendError> {
        let text = format_message(msg);
        // One write under the lock so concurrent sends do not interleave.
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| SendError::Transient { reason: format!("stdout: {e}"), retry_after: None })?;
        Ok(SendReceipt::with_id(format!("console-{}", msg.request_id)))
    }

    async fn send_staff(&self, mail: &StaffEmail) -> Result<SendReceipt, SendError> {
        let text = format!(
            "──── Email → {} · personal ────\nAsunto: {}\n\n{}\n",
            mail.to.masked(),
            mail.subject,
            mail.text.trim_end()
        );
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| SendError::Transient { reason: format!("stdout: {e}"), retry_after: None })?;
        Ok(SendReceipt::with_id(format!("console-{}", mail.idempotency_key)))
    }
}
