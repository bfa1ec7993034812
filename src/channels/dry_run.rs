//! Dry run (`CANTINA__DISPATCH__DRY_RUN=true`): every configured adapter is wrapped in [`DryRunChannel`], which
//! accepts each message without calling the provider. The dispatcher has already rendered the message, so templates,
//! addresses and data are checked as in production, and the request ends `Enviado` with provider `simulacro` (dedup,
//! card stamps and sweeps then behave as they would), but nothing leaves the process: the safe way to try the service
//! on a copy of production data.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Channel, OutgoingMessage, SendError, SendReceipt, StaffEmail};
use crate::domain::ChannelKind;

/// `solicitudes_notificacion.proveedor` and the metrics' `provider` label of every dry-run send.
pub const DRY_RUN_PROVIDER: &str = "simulacro";

pub struct DryRunChannel {
    inner: Arc<dyn Channel>,
}

impl DryRunChannel {
    pub fn new(inner: Arc<dyn Channel>) -> Self {
        Self { inner }
    }

    /// The provider a real run would use (for the start-up log line).
    pub fn wrapped_provider(&self) -> &'static str {
        self.inner.provider()
    }
}

#[async_trait]
impl Channel for DryRunChannel {
    fn kind(&self) -> ChannelKind {
        self.inner.kind()
    }

    fn provider(&self) -> &'static str {
        DRY_RUN_PROVIDER
    }

    async fn send(&self, msg: &OutgoingMessage) -> Result<SendReceipt, SendError> {
        tracing::debug!(id = msg.request_id, channel = %msg.channel, to = %msg.recipient.masked(), "dry run: not sent");
        Ok(SendReceipt::with_id(format!("{DRY_RUN_PROVIDER}-{}", msg.request_id)))
    }

    /// Staff emails (the daily summary) are not sent either.
    async fn send_staff(&self, mail: &StaffEmail) -> Result<SendReceipt, SendError> {
        tracing::debug!(to = %mail.to.masked(), subject = %mail.subject, "dry run: staff email not sent");
        Ok(SendReceipt::with_id(format!("{DRY_RUN_PROVIDER}-{}", mail.idempotency_key)))
    }

    /// The real provider's pace, so a dry run on a copy of production drains at the speed production would.
    fn default_per_second(&self) -> f64 {
        self.inner.default_per_second()
    }

    /// Never calls the provider: there is nothing to prove in a dry run.
    async fn probe(&self) -> Result<(), SendError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::rules::{MessageData, Recipient};

    /// Counts every call that would reach a provider.
    #[derive(Default)]
    struct Counting {
        calls: AtomicUsize,
    }

    #[async_trait]
    impl Channel for Counting {
        fn kind(&self) -> ChannelKind {
            ChannelKind::Sms
        }
        fn provider(&self) -> &'static str {
            "twilio"
        }
        async fn send(&self, _msg: &OutgoingMessage) -> Result<SendReceipt, SendError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(SendReceipt::default())
        }
        fn default_per_second(&self) -> f64 {
            1.0
        }
        async fn probe(&self) -> Result<(), SendError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Err(SendError::Configuration { reason: "credenciales rechazadas".into() })
        }
    }

    #[tokio::test]
    async fn accepts_without_calling_the_provider() {
        let inner = Arc::new(Counting::default());
        let dry = DryRunChannel::new(inner.clone());
        let data = MessageData::sample(crate::domain::NotificationType::RecargaExitosa);
        let recipient = Recipient::parse(ChannelKind::Sms, Some("+595981123456")).expect("recipient");
        let msg = OutgoingMessage::render(42, "k".into(), ChannelKind::Sms, recipient, data, "https://portal.example")
            .expect("render");
        let receipt = dry.send(&msg).await.expect("dry run accepts");
        assert_eq!(receipt.provider_message_id.as_deref(), Some("simulacro-42"));
        assert!(dry.probe().await.is_ok());
        assert_eq!(inner.calls.load(Ordering::SeqCst), 0, "no provider call, not even the probe");
        assert_eq!(dry.provider(), "simulacro");
        assert_eq!(dry.kind(), ChannelKind::Sms);
        assert_eq!(dry.wrapped_provider(), "twilio");
        assert!((dry.default_per_second() - 1.0).abs() < f64::EPSILON);
    }
}
