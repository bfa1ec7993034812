//! The listener: one dedicated connection that does nothing but LISTEN. Notifications only say "look now"; the
//! outbox is the truth. It drains on every wake-up, at start, after every reconnect and on a slow safety tick, so
//! no event written while the service was stopped, restarting or disconnected is ever lost.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use deadpool_postgres::Pool;
use futures_util::future::poll_fn;
use tokio::sync::{Notify, mpsc};
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use super::drain::drain_batch;
use super::wake::{self, WakeLock};
use crate::config::{ListenerSettings, RulesConfig};
use crate::db;
use crate::metrics::Metrics;

pub const CHANNEL: &str = "cantina_notify";
pub const APPLICATION_NAME: &str = "cantina-notify-listener";

pub struct Listener {
    pub listen_url: String,
    pub pool: Pool,
    pub rules: RulesConfig,
    pub settings: ListenerSettings,
    pub metrics: Arc<Metrics>,
    /// Woken when new requests are ready, so the dispatcher sends right after the rules' commit.
    pub dispatcher: Arc<Notify>,
    /// Where the requests claimed in the drain's own transaction go (none: the dispatcher claims them itself).
    pub handoff: Option<Arc<crate::requests::handoff::Handoff>>,
}

impl Listener {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = self.backoff();
        let mut ever_connected = false;
        let mut tick = tokio::time::interval(Duration::from_secs(self.settings.safety_tick_seconds));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !shutdown.is_cancelled() {
            let (client, mut wakeups) = match self.connect().await {
                Ok(c) => c,
                Err(e) => {
                    let delay = backoff.next().unwrap_or(Duration::from_millis(self.settings.reconnect_max_ms));
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "listener cannot connect");
                    // Keep draining through the pool meanwhile: PgBouncer or a direct-connection limit may block
                    // only the LISTEN session.
                    self.drain_all().await;
                    tokio::select! {
                        () = tokio::time::sleep(delay) => continue,
                        () = shutdown.cancelled() => break,
                    }
                }
            };
            backoff = self.backoff();
            self.metrics.set_listener_connected(true);
            if ever_connected {
                self.metrics.listener_reconnected();
                tracing::info!("listener reconnected");
            } else {
                tracing::info!(channel = CHANNEL, "listening");
            }
            ever_connected = true;
            let mut wake = WakeLock::default();
            // Armed before the first look: what commits from now on NOTIFYs; what committed before is drained.
            arm(&client, &mut wake).await;
            let go_on = |w: &mpsc::UnboundedReceiver<()>| !w.is_closed() && !shutdown.is_cancelled();
            self.drain_while(Some((&client, &mut wake)), || go_on(&wakeups)).await;
            loop {
                tokio::select! {
                    msg = wakeups.recv() => match msg {
                        Some(()) => {
                            // Many commits, one drain.
                            while wakeups.try_recv().is_ok() {}
                            self.drain_while(Some((&client, &mut wake)), || go_on(&wakeups)).await;
                        }
                        None => break,
                    },
                    _ = tick.tick() => {
                        // A replica that lost the election, or whose lock was busy, tries again (the elected one
                        // may have died: its lock went with its session).
                        arm(&client, &mut wake).await;
                        self.drain_while(Some((&client, &mut wake)), || go_on(&wakeups)).await;
                        if let Ok(lag) = super::outbox::outbox_lag_seconds(&self.pool).await {
                            self.metrics.set_outbox_lag(lag);
                        }
                    }
                    () = shutdown.cancelled() => break,
                }
            }
            drop(client);
            self.metrics.set_listener_connected(false);
            if !shutdown.is_cancelled() {
                tracing::warn!("listener connection lost; reconnecting");
            }
        }
        self.metrics.set_listener_connected(false);
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.settings.reconnect_min_ms))
            .with_max_delay(Duration::from_millis(self.settings.reconnect_max_ms))
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// Opens the LISTEN session. Notifications are read with `poll_message` on a task of their own; the channel
    /// closes when the connection ends, which is how a lost connection is noticed.
    async fn connect(&self) -> Result<(tokio_postgres::Client, mpsc::UnboundedReceiver<()>), db::DbError> {
        let mut target = db::Target::parse(&self.listen_url, APPLICATION_NAME, Duration::from_secs(10))?;
        // Notice a silently dead connection (a partition without a reset) in about a minute, not the OS's 2 hours.
        target
            .config_mut()
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3);
        let (client, mut connection) = target.connect().await?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(_))) => {
                        if tx.send(()).is_err() {
                            break;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::warn!(error = %db::describe(&e), "listener connection error");
                        break;
                    }
                    None => break,
                }
            }
        });
        client.batch_execute(&format!("SET lock_timeout = '{}'; LISTEN {CHANNEL}", wake::LOCK_TIMEOUT)).await?;
        Ok((client, rx))
    }

    /// Retries the next batch one event at a time. Events the database refuses are set aside with the reason, but
    /// only if others went through: when every event fails, the cause is not the rows (a schema change, a trigger
    /// refusing everything), so nothing is set aside and the events wait for the cause to be fixed.
    async fn isolate(&self) {
        let ids = match super::outbox::pending_ids(&self.pool, self.settings.batch_size).await {
            Ok(ids) => ids,
            Err(e) => return tracing::warn!(error = %e, "cannot list pending events"),
        };
        let mut refused = Vec::new();
        let mut passed = 0;
        for id in ids {
            match super::drain::drain_event(&self.pool, &self.rules, id).await {
                Ok(o) => {
                    passed += o.events;
                    self.record(&o, 0);
                }
                Err(e) if e.is_data_error() => refused.push((id, e)),
                Err(e) => {
                    return tracing::warn!(error = %e, "draining the outbox failed; the events stay and are retried");
                }
            }
        }
        if passed == 0 {
            if let Some((_, e)) = refused.first() {
                tracing::error!(events = refused.len(), error = %e, "every event fails the same way: nothing set aside; fix the cause");
            }
            return;
        }
        for (id, e) in refused {
            // Once more: the cause may have been fixed while this pass ran (a trigger dropped, a row corrected).
            let e = match super::drain::drain_event(&self.pool, &self.rules, id).await {
                Ok(o) => {
                    self.record(&o, 0);
                    continue;
                }
                Err(again) if again.is_data_error() => again,
                Err(_) => e,
            };
            let reason = format!("apartado: error al procesar el evento: {e}");
            tracing::error!(event = id, error = %e, "event set aside");
            match super::outbox::quarantine(&self.pool, id, &reason).await {
                Ok(()) => self.metrics.event_set_aside(),
                Err(e) => tracing::warn!(event = id, error = %e, "could not set the event aside"),
            }
        }
    }

    /// `handed`: how many of the new requests went to the dispatcher in memory (the rest wait in the table).
    fn record(&self, o: &super::drain::BatchOutcome, handed: usize) {
        for kind in &o.by_kind {
            self.metrics.event_received(kind);
        }
        for (t, c) in &o.failed_at_creation {
            self.metrics.request_created(*t, *c, "error");
        }
        for (t, c) in &o.omitted_at_creation {
            self.metrics.request_created(*t, *c, "omitted");
        }
        for (t, c) in &o.created {
            self.metrics.request_created(*t, *c, "pending");
        }
        if o.created.len() > handed {
            self.dispatcher.notify_one();
        }
    }

    /// Drains until the outbox is empty (no LISTEN session: nothing to arm).
    pub async fn drain_all(&self) {
        self.drain_while(None, || true).await;
    }

    /// Drains until the outbox is empty or `go_on` says stop (the LISTEN connection died or shutdown began), so a
    /// steady stream of events cannot keep the listener from noticing and repairing its connection.
    ///
    /// A small batch ends the call with the wake-up lock still armed: whatever commits next NOTIFYs, so a quiet
    /// flow costs one transaction per wake-up. A batch of [`BUSY_BATCH`] events or more means the app commits
    /// faster than the listener wakes: the lock is released (the triggers stop NOTIFYing, which would serialise the
    /// app's commits) while the listener keeps draining; once a batch is small again it re-arms, then looks once more
    /// for what committed in between.
    async fn drain_while(&self, mut wake: Option<(&tokio_postgres::Client, &mut WakeLock)>, go_on: impl Fn() -> bool) {
        // Whether this call released the wake-up lock (and must re-arm it before it returns).
        let mut busy = false;
        // The last batch was large: more are coming.
        let mut large = false;
        loop {
            if !go_on() {
                if busy {
                    rearm(&mut wake).await;
                }
                return;
            }
            let (offer, batch_size) = match &self.handoff {
                // A backlog: no more events than the dispatcher can take in memory, once it has room for a good
                // part of a batch, so each request is claimed once, at insert.
                // (At least a quarter batch, so a slow provider cannot shrink the batches to a few events.)
                Some(h) if large && h.backpressure() => {
                    let want = usize::try_from(self.settings.batch_size / 2).unwrap_or(1).max(1);
                    let offer = h.offer_when_room(want, BACKLOG_WAIT).await;
                    let floor = (self.settings.batch_size / 4).max(1);
                    let size = offer.as_ref().map_or(self.settings.batch_size, |o| {
                        i64::try_from(o.slots).unwrap_or(i64::MAX).clamp(floor, self.settings.batch_size)
                    });
                    (offer, size)
                }
                Some(h) => (h.offer(), self.settings.batch_size),
                None => (None, self.settings.batch_size),
            };
            let batch = drain_batch(&self.pool, &self.rules, batch_size, offer.as_ref());
            let drained = match wake.as_mut() {
                Some((client, w)) if large && w.armed() => {
                    busy = true;
                    // Concurrently: the unlock goes over the LISTEN session, the batch over the pool.
                    let (released, drained) = tokio::join!(w.disarm(client), batch);
                    if let Err(e) = released {
                        tracing::warn!(error = %e, "could not release the wake-up lock");
                    }
                    drained
                }
                _ => batch.await,
            };
            match drained {
                Ok(mut o) if o.events > 0 => {
                    let handed = o.claimed.len();
                    if let Some(h) = &self.handoff {
                        h.deliver(std::mem::take(&mut o.claimed));
                    }
                    large = o.events >= BUSY_BATCH.min(batch_size.max(1) as usize);
                    self.metrics.set_outbox_lag(o.oldest_age_seconds);
                    self.record(&o, handed);
                    if large {
                        continue;
                    }
                }
                Ok(_) => large = false,
                Err(e) if e.is_data_error() => {
                    self.metrics.drain_failed();
                    tracing::error!(error = %e, "a batch of events failed; isolating the event that causes it");
                    self.isolate().await;
                    // The rest waits for the next wake-up or tick; never spin on a failing batch.
                    if busy {
                        rearm(&mut wake).await;
                    }
                    return;
                }
                Err(e) => {
                    self.metrics.drain_failed();
                    tracing::warn!(error = %e, "draining the outbox failed; the events stay and are retried");
                    if busy {
                        rearm(&mut wake).await;
                    }
                    return;
                }
            }
            if !busy {
                // Elected but not armed (taking the lock timed out behind a long app transaction, or failed):
                // try again now rather than at the tick, then look once more.
                match wake.as_mut() {
                    Some((client, w)) if w.retry_due() => {
                        arm(client, w).await;
                        if !w.armed() {
                            return;
                        }
                        continue;
                    }
                    _ => return,
                }
            }
            // Re-armed first, then one more batch: what committed while the lock was released.
            rearm(&mut wake).await;
            busy = false;
        }
    }
}

/// A batch this large means events arrive faster than one wake-up each: the triggers are told to stop NOTIFYing.
/// Two, not more: NOTIFYing commits run one at a time (with a synchronous commit, one WAL flush each), so a busy
/// app may deliver only a couple of events per wake-up and still be slowed; a quiet flow (one event per wake-up)
/// keeps its NOTIFYs.
const BUSY_BATCH: usize = 2;

/// How long a backlog's drain waits for the dispatcher to make room before it inserts the next batch anyway (its
/// requests then wait in the table for the claim loop).
const BACKLOG_WAIT: Duration = Duration::from_millis(250);

/// [`arm`] when there is a LISTEN session.
async fn rearm(wake: &mut Option<(&tokio_postgres::Client, &mut WakeLock)>) {
    if let Some((client, w)) = wake.as_mut() {
        arm(client, w).await;
    }
}

/// [`WakeLock::arm`], logging a failure: the listener then relies on its next wake-up or safety tick.
async fn arm(client: &tokio_postgres::Client, wake: &mut WakeLock) {
    if let Err(e) = wake.arm(client).await {
        tracing::warn!(error = %e, "could not arm the wake-up lock");
    }
}
