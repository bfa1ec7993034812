//! One request's way through the dispatcher: `process` runs its stages, `gate` (everything before the send),
//! `send` (the provider call under the timeout), and `apply_sent` / `apply` (the outcome: metrics, log, opt-out,
//! the request's write, the channel's pause).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::policy::{self, Log, Verdict, Write};
use super::store::{self, Claimed, Outcome};
use super::{Dispatcher, pause};
use crate::channels::{Channel, OutgoingMessage, SendError, SendReceipt};
use crate::domain::ChannelKind;
use crate::metrics::SendOutcome;

/// Why a sent request put back to `Pendiente` by hand is not sent again.
const ALREADY_SENT: &str = "ya se envió (consta en su historial) y alguien la volvió a Pendiente sin el servicio: no se \
     envía otra vez. `requests resend` no reenvía una solicitud enviada";

/// The staff alert for refused unsigned requests.
const UNSIGNED_ALERT: &str = "cantina-notify: solicitudes sin firma rechazadas";

impl Dispatcher {
    /// One request: gate, send, apply the outcome. Never panics; every failure ends in a recorded outcome.
    pub(super) async fn process(&self, c: Claimed, shutdown: CancellationToken) {
        let Some((msg, channel)) = self.gate(&c, &shutdown).await else {
            return;
        };
        let provider = channel.provider();
        let started = Instant::now();
        let result = self.send(channel.as_ref(), &msg).await;
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(receipt) => self.apply_sent(&c, &msg, provider, receipt, seconds).await,
            Err(e) => {
                let verdict = policy::decide(e, c.intentos, &self.policy, fastrand::f64());
                self.apply(&c, &msg, provider, seconds, verdict).await;
            }
        }
    }

    /// Everything before the send: the shutdown, the signature, a request sent before, rendering, the channel,
    /// quiet hours, the rate limit, the lease and the channel's pause. Returns the message and its channel, or
    /// `None` when the claim has been dealt with here (given back, deferred, or recorded).
    async fn gate(&self, c: &Claimed, shutdown: &CancellationToken) -> Option<(OutgoingMessage, &Arc<dyn Channel>)> {
        if shutdown.is_cancelled() {
            if let Err(e) = store::release(&self.pool, c).await {
                tracing::warn!(id = c.id, error = %e, "could not release an unstarted claim; its lease will expire");
            }
            return None;
        }
        if !self.signer.verify(&c.signed_fields(), c.firma.as_deref()) {
            self.refuse_unsigned(c).await;
            return None;
        }
        if c.already_sent {
            tracing::error!(id = c.id, "a sent request came back to Pendiente by another hand; not sent again");
            self.metrics.unsigned_refused(c.destino.as_deref().unwrap_or("-"));
            if let Err(e) = store::restore_sent(&self.pool, c, ALREADY_SENT).await {
                tracing::warn!(id = c.id, error = %e, "could not restore the sent state; retried when the lease expires");
            }
            return None;
        }
        let msg = match self.prepare(c) {
            Ok(m) => m,
            Err(reason) => {
                tracing::warn!(id = c.id, %reason, "request cannot be sent");
                self.write(c, Outcome::Error { provider: "-", reason: &reason }).await;
                return None;
            }
        };
        let Some(channel) = self.channels.get(msg.channel) else {
            // Claims filter on configured channels, so this only happens if the configuration changed mid-flight.
            let reason = format!("no hay proveedor configurado para {}", msg.channel.destino());
            self.write(c, Outcome::Retry { provider: "-", delay: Duration::from_secs(60), reason: &reason }).await;
            return None;
        };
        if let Some(until) =
            self.quiet.as_ref().and_then(|q| q.deferral(jiff::Timestamp::now(), msg.channel, msg.notification_type))
        {
            tracing::info!(id = c.id, channel = %msg.channel, until = %until, "quiet hours: deferred");
            if let Err(e) = store::defer(&self.pool, c, until).await {
                tracing::warn!(id = c.id, error = %e, "could not defer; the lease will expire and it is tried again");
            }
            return None;
        }
        if let Some(limiter) = self.limiters.get(&msg.channel) {
            limiter.acquire().await;
        }
        // A send must end within the lease (less a second: the lease began at the claim's transaction start), or
        // another replica may take the request over and send it too. A claim that waited in the hand-over queue
        // and the rate limiter for that long goes back unsent, the attempt not counted.
        let lease = Duration::from_secs(self.settings.lease_seconds);
        let send_timeout = Duration::from_secs(self.settings.send_timeout_seconds);
        if c.claimed_at.elapsed() + send_timeout + Duration::from_secs(1) > lease {
            tracing::warn!(id = c.id, "claim too old to send within its lease; given back unsent");
            if let Err(e) = store::release(&self.pool, c).await {
                tracing::warn!(id = c.id, error = %e, "could not release an old claim; its lease will expire");
            }
            return None;
        }
        if self.pauses.is_paused(msg.channel) {
            // Paused after the claim (an operator, or another send's configuration error): give it back unsent,
            // the attempt not counted; it waits as Pendiente like the rest of the channel's queue.
            if let Err(e) = store::release(&self.pool, c).await {
                tracing::warn!(id = c.id, error = %e, "could not release a claim on a paused channel; its lease will expire");
            }
            return None;
        }
        Some((msg, channel))
    }

    /// The provider call, bounded by the send timeout (no answer in time is a temporary error).
    async fn send(&self, channel: &dyn Channel, msg: &OutgoingMessage) -> Result<SendReceipt, SendError> {
        let timeout = Duration::from_secs(self.settings.send_timeout_seconds);
        match tokio::time::timeout(timeout, channel.send(msg)).await {
            Ok(r) => r,
            Err(_) => Err(SendError::Transient {
                reason: format!("sin respuesta en {} s", timeout.as_secs()),
                retry_after: None,
            }),
        }
    }

    /// The provider accepted the send: metrics, the channel confirmed working, log, the request `Enviado`.
    async fn apply_sent(
        &self,
        c: &Claimed,
        msg: &OutgoingMessage,
        provider: &'static str,
        receipt: SendReceipt,
        seconds: f64,
    ) {
        self.metrics.send(msg.channel, provider, SendOutcome::Sent, seconds);
        if self.pauses.confirm(msg.channel)
            && let Err(e) = pause::resolve_alert(&self.pool, msg.channel).await
        {
            tracing::warn!(error = %e, "could not resolve the staff alert");
        }
        tracing::info!(id = c.id, tipo = %msg.notification_type, channel = %msg.channel, provider, to = %msg.recipient.masked(), "sent");
        let await_receipt = self.receipt_wait.get(&msg.channel).copied();
        let provider_id = receipt.provider_message_id.as_deref();
        let warning = receipt.warning.as_deref();
        if warning.is_some() {
            // Accepted but nothing to match receipts against: staff see the warning on the request.
            self.metrics.sent_without_id(msg.channel, provider);
            tracing::warn!(id = c.id, channel = %msg.channel, provider, "provider accepted the send without a message id");
        }
        self.write(c, Outcome::Sent { provider, provider_id, warning, await_receipt }).await;
    }

    /// A failed send: the outcome policy's verdict applied in this order: metrics, log, the opt-out, the
    /// request's write, the channel's pause.
    async fn apply(&self, c: &Claimed, msg: &OutgoingMessage, provider: &'static str, seconds: f64, verdict: Verdict) {
        let Verdict { metric, log, write, pause } = verdict;
        self.metrics.send(msg.channel, provider, metric, seconds);
        match log {
            Log::WillRetry { retry_in, reason } => {
                tracing::warn!(id = c.id, channel = %msg.channel, provider, attempt = c.intentos, retry_in_ms = retry_in.as_millis() as u64, %reason, "send failed; will retry");
            }
            Log::GivingUp => {
                let reason = write.reason();
                tracing::warn!(id = c.id, channel = %msg.channel, provider, %reason, "giving up");
            }
            Log::PermanentFailure => {
                let reason = write.reason();
                tracing::warn!(id = c.id, channel = %msg.channel, provider, %reason, "permanent failure");
            }
            Log::OptedOut => {
                tracing::info!(id = c.id, channel = %msg.channel, provider, to = %msg.recipient.masked(), "recipient opted out");
            }
            Log::Silent => {}
        }
        let outcome = match &write {
            Write::RetryIn { delay, reason } => Outcome::Retry { provider, delay: *delay, reason },
            Write::Fail { reason } => Outcome::Error { provider, reason },
            Write::OptOut { reason } => {
                let address = msg.recipient.as_str();
                if let Err(e) = crate::optouts::opt_out(&self.pool, msg.channel, &address, provider, reason).await {
                    tracing::warn!(id = c.id, error = %e, "could not record the opt-out");
                }
                Outcome::Omitted { provider, reason }
            }
        };
        self.write(c, outcome).await;
        if let Some(reason) = pause {
            self.pause(msg.channel, provider, &reason).await;
        }
    }

    /// A keyed row the service did not write (or that was changed since): recorded `Error` with the reason, never
    /// sent; the staff hear of it at most once an hour, however many rows arrive.
    async fn refuse_unsigned(&self, c: &Claimed) {
        self.metrics.unsigned_refused(c.destino.as_deref().unwrap_or("-"));
        tracing::error!(id = c.id, "request without a valid signature refused: not written by the service");
        self.write(c, Outcome::Error { provider: "-", reason: crate::signing::REFUSED }).await;
        // Raised beside the sends, never in a send slot: the alert's lock is one any role can take and hold, and
        // a refused row must not hold up the real notices. One raise at a time is enough (at most one an hour).
        if self.unsigned_alerting.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        let mensaje = format!(
            "{UNSIGNED_ALERT}: la solicitud {} (y las que sigan) no fue escrita por el servicio y no se envió. \
             Alguien con acceso de escritura a solicitudes_notificacion insertó o modificó filas con clave_dedup: \
             revise quién tiene ese acceso.",
            c.id
        );
        let (pool, flag) = (self.pool.clone(), self.unsigned_alerting.clone());
        tokio::spawn(async move {
            if let Err(e) = crate::alerts::raise_at_most_hourly(&pool, UNSIGNED_ALERT, &mensaje).await {
                tracing::warn!(error = %e, "could not record the staff alert");
            }
            flag.store(false, std::sync::atomic::Ordering::Release);
        });
    }

    async fn pause(&self, kind: ChannelKind, provider: &'static str, reason: &str) {
        if !self.pauses.pause(kind, reason) {
            return;
        }
        self.metrics.set_channel_paused(kind, provider, true);
        self.state_changed();
        tracing::error!(channel = %kind, provider, %reason, "channel paused: configuration error");
        if let Err(e) = pause::raise_alert(&self.pool, kind, provider, reason).await {
            tracing::warn!(error = %e, "could not record the staff alert");
        }
    }

    /// Renders the notice parsed at the claim ([`crate::requests::row::parse_notice`]).
    fn prepare(&self, c: &Claimed) -> Result<OutgoingMessage, String> {
        let n = c.notice.as_ref().map_err(Clone::clone)?;
        OutgoingMessage::render(
            c.id,
            c.clave_dedup.clone(),
            n.channel,
            n.recipient.clone(),
            n.data.clone(),
            &self.portal_url,
        )
        .map_err(|e| e.to_string())
    }

    /// Records an outcome, retrying database errors. Provider text cannot make it fail (it is cleaned where it is
    /// bound, see [`store::record`]); a database that stays unreachable still can. For a send the provider accepted,
    /// retrying goes on while the claim is ours (until shortly before its lease ends): once the lease expires the
    /// request is claimed and sent again, up to MAX_ATTEMPTS, then closed as `Error` ("sin resultado registrado").
    pub(super) async fn write(&self, c: &Claimed, outcome: Outcome<'_>) {
        let mut delay = Duration::from_millis(100);
        let sent = matches!(outcome, Outcome::Sent { .. });
        let lease_end =
            c.claimed_at + Duration::from_secs(self.settings.lease_seconds).saturating_sub(Duration::from_secs(1));
        for attempt in 1.. {
            let written = match &outcome {
                Outcome::Sent { provider, provider_id, warning, await_receipt } => {
                    self.sent.record(store::sent_row(c, provider, *provider_id, *warning, *await_receipt)).await
                }
                _ => store::record(&self.pool, c, &outcome).await,
            };
            match written {
                Ok(0) => {
                    return tracing::warn!(
                        id = c.id,
                        "outcome not recorded: the lease had expired and another worker took the request over"
                    );
                }
                Ok(_) => return,
                Err(e) => {
                    self.metrics.dispatch_failed();
                    tracing::error!(id = c.id, attempt, error = %e, "could not record the outcome");
                    let more = if sent { Instant::now() + delay < lease_end } else { attempt < 4 };
                    if !more {
                        if sent {
                            tracing::error!(
                                id = c.id,
                                "the provider accepted this send but it could not be recorded; it may be sent again when its lease expires"
                            );
                        }
                        return;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 4).min(Duration::from_secs(5));
                }
            }
        }
    }
}
