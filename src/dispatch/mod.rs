//! The dispatcher: claims due requests (SKIP LOCKED, with a lease), renders them, sends them through the channel
//! adapters, and records each outcome. On shutdown it stops claiming, lets in-flight sends finish within the grace
//! period, and gives back claims it never started.

pub mod fallback;
use crate::requests::handoff;
mod pause;
mod policy;
mod probe_log;
mod process;
pub mod quiet;
mod rate;
mod retry;
pub use crate::requests::sent;
mod states;
pub mod store;

pub use handoff::Handoff;
pub use pause::{Pauses, alert_prefix as config_pause_alert_prefix};
pub use rate::RateLimiter;
pub use retry::retry_delay;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::channels::Channels;
use crate::config::{DispatchSettings, Settings};
use crate::domain::ChannelKind;
use crate::metrics::Metrics;
use crate::signing::RowSigner;
use store::Outcome;

pub struct Dispatcher {
    pool: Pool,
    channels: Channels,
    settings: DispatchSettings,
    /// What a failed send leads to (from `settings`).
    policy: policy::Policy,
    portal_url: String,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    pauses: Pauses,
    limiters: HashMap<ChannelKind, RateLimiter>,
    quiet: Option<quiet::QuietHours>,
    /// Per channel: how long a sent link of a fallback chain waits for a delivery receipt (only channels whose
    /// provider reports deliveries with this configuration).
    receipt_wait: HashMap<ChannelKind, Duration>,
    preference_defaults: crate::config::PreferenceDefaults,
    /// Send slots: the claim loop and the drain's handoff share them.
    permits: Arc<Semaphore>,
    handoff: Arc<Handoff>,
    /// Sends are recorded in shared statements (group commit).
    sent: sent::SentWriter,
    /// Checks each claim's signature before it is sent; signs the fallback's next links.
    signer: RowSigner,
    /// An alert about refused unsigned rows is being raised.
    unsigned_alerting: Arc<std::sync::atomic::AtomicBool>,
    /// The operators' pauses as last read (None before the first read), for the channel-state gauges.
    operator_rows: std::sync::Mutex<Option<Vec<crate::operator_pauses::OperatorPause>>>,
    /// A channel's state changed here: the recorder writes it now (states.rs).
    state_changed: Notify,
}

impl Dispatcher {
    pub fn new(
        pool: Pool,
        channels: Channels,
        settings: &Settings,
        signer: RowSigner,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
    ) -> Self {
        let pauses = Pauses::new(channels.kinds());
        let permits = Arc::new(Semaphore::new(settings.dispatch.concurrency));
        let rates: Vec<(ChannelKind, f64)> = channels
            .kinds()
            .into_iter()
            .filter_map(|k| {
                let ch = channels.get(k)?;
                Some((k, settings.limits.per_second(k).unwrap_or_else(|| ch.default_per_second())))
            })
            .collect();
        let lease = Duration::from_secs(settings.dispatch.lease_seconds);
        let handoff = Arc::new(Handoff::new(
            permits.clone(),
            // Closed until the operators' pauses are first read (pause.rs): the drain claims nothing before.
            Vec::new(),
            lease,
            handoff::backlog_allowance(settings.dispatch.batch_size, lease, rates.iter().map(|(_, r)| *r)),
            rates.iter().all(|(_, r)| *r <= 0.0),
        ));
        let limiters = rates.into_iter().map(|(k, rate)| (k, RateLimiter::new(rate))).collect();
        for k in channels.kinds() {
            if let Some(ch) = channels.get(k) {
                metrics.init_sends(k, ch.provider());
            }
        }
        let receipt_wait = channels
            .kinds()
            .into_iter()
            .filter(|k| channels.get(*k).is_some_and(|c| fallback::reports_delivery(c.provider(), settings)))
            .map(|k| (k, fallback::receipt_wait(settings)))
            .collect();
        let sent = sent::SentWriter::start(pool.clone());
        Self {
            pool,
            channels,
            settings: settings.dispatch.clone(),
            policy: policy::Policy::new(&settings.dispatch),
            portal_url: settings.portal.base_url.clone(),
            metrics,
            wake,
            pauses,
            limiters,
            // Validated at start-up (Settings::validate); an invalid window cannot reach here.
            quiet: settings.quiet_hours.parse().ok().flatten(),
            receipt_wait,
            preference_defaults: settings.preferences,
            permits,
            handoff,
            sent,
            signer,
            unsigned_alerting: Arc::default(),
            operator_rows: std::sync::Mutex::new(None),
            state_changed: Notify::new(),
        }
    }

    /// Every poll interval, beside the claim loop (which may be waiting for a free send slot): requests to
    /// opted-out addresses become `Omitido`, fallback chains move on (waking the claim loop for the new requests),
    /// and the oldest due request is measured.
    pub async fn housekeep(self: Arc<Self>, shutdown: CancellationToken) {
        let poll = Duration::from_millis(self.settings.poll_interval_ms);
        loop {
            if self.housekeeping().await {
                self.wake.notify_one();
            }
            tokio::select! {
                () = tokio::time::sleep(poll) => {},
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// One housekeeping round; returns whether new requests may be due.
    async fn housekeeping(&self) -> bool {
        match store::oldest_due(&self.pool, &self.handoff.queued_ids()).await {
            Ok(ages) => {
                let ages: Vec<(ChannelKind, f64)> =
                    ages.into_iter().filter_map(|(d, a)| ChannelKind::parse(&d).ok().map(|k| (k, a))).collect();
                self.metrics.set_oldest_pending(&self.channels.kinds(), &ages);
            }
            Err(e) => tracing::warn!(error = %e, "could not measure the oldest pending request"),
        }
        match crate::optouts::omit_opted_out(&self.pool).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(requests = n, "requests to opted-out addresses recorded as Omitido"),
            Err(e) => tracing::warn!(error = %e, "could not apply opt-outs"),
        }
        match fallback::advance(&self.pool, &self.signer, self.settings.batch_size, &self.preference_defaults).await {
            Ok(a) => {
                for (t, from, to, why) in &a.created {
                    self.metrics.fallback(*t, *from, *to, why.as_str());
                }
                !a.created.is_empty()
            }
            Err(e) => {
                self.metrics.dispatch_failed();
                tracing::warn!(error = %e, "fallback pass failed; retried on the next round");
                false
            }
        }
    }

    /// Where the drain hands over the requests it claims for this dispatcher.
    pub fn handoff(&self) -> Arc<Handoff> {
        self.handoff.clone()
    }

    /// Channels to claim for: configured and not paused.
    fn open_destinos(&self) -> Vec<&'static str> {
        self.channels.kinds().into_iter().filter(|k| !self.pauses.is_paused(*k)).map(|k| k.destino()).collect()
    }

    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let permits = self.permits.clone();
        let tracker = TaskTracker::new();
        let lease = Duration::from_secs(self.settings.lease_seconds);
        let poll = Duration::from_millis(self.settings.poll_interval_ms);
        let mut db_backoff = Duration::from_millis(100);
        // The table is read when there may be work in it: at start, when told (requests the drain did not hand
        // over, fallback links, a resumed channel), after a full batch, and every poll interval (retries coming
        // due, expired leases, rows written by other processes). Claims handed over in memory need no read.
        let mut db_due = true;
        let mut last_db = Instant::now();

        while !shutdown.is_cancelled() {
            // Wait for a free slot before claiming, so a claim is never held while it waits for capacity.
            let first = tokio::select! {
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                () = shutdown.cancelled() => break,
            };
            let free = permits.available_permits() + 1;
            let limit = (free as i64).min(self.settings.batch_size);
            let destinos = self.open_destinos();
            self.handoff.set_open(&destinos);
            let (handed, stale) = self.handoff.take(limit as usize);
            for c in stale {
                tracing::warn!(id = c.id, "a handed-over claim waited half its lease; given back unsent");
                if let Err(e) = store::release(&self.pool, &c).await {
                    tracing::warn!(id = c.id, error = %e, "could not release a stale claim; its lease will expire");
                }
            }
            let from_handoff = !handed.is_empty();
            let from_db = !from_handoff && (db_due || last_db.elapsed() >= poll);
            let claimed = if from_handoff {
                Ok(handed)
            } else if from_db {
                last_db = Instant::now();
                store::claim(&self.pool, limit, lease, &destinos, self.policy.limit).await
            } else {
                Ok(Vec::new())
            };
            let claimed = match claimed {
                Ok(c) => {
                    db_backoff = Duration::from_millis(100);
                    if from_db {
                        // A full batch: more may be waiting.
                        db_due = c.len() as i64 >= limit;
                    }
                    c
                }
                Err(e) => {
                    db_due = true;
                    drop(first);
                    self.metrics.dispatch_failed();
                    tracing::warn!(error = %e, "claiming requests failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(db_backoff) => {},
                        () = shutdown.cancelled() => break,
                    }
                    db_backoff = (db_backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            let got = claimed.len();
            let mut first = Some(first);
            for c in claimed {
                let permit = match first.take() {
                    Some(p) => p,
                    // Claimed no more than the free permits, so this does not wait.
                    None => match permits.clone().acquire_owned().await {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                };
                let this = self.clone();
                let token = shutdown.clone();
                tracker.spawn(async move {
                    use futures_util::FutureExt;
                    // Enough to record an outcome; the payload is not needed for that.
                    let claim = c.clone_head();
                    let run = std::panic::AssertUnwindSafe(this.process(c, token)).catch_unwind().await;
                    if let Err(payload) = run {
                        // A bug or an unexpected value must not leave the request to be re-sent until it expires.
                        let reason = format!(
                            "error interno al preparar el envío: {}",
                            crate::db::panic_message(payload.as_ref())
                        );
                        tracing::error!(id = claim.id, %reason, "send task panicked");
                        this.write(&claim, Outcome::Error { provider: "-", reason: &reason }).await;
                    }
                    drop(permit);
                });
            }
            drop(first);
            if !from_handoff && (got as i64) < limit {
                if from_db {
                    match store::close_abandoned(&self.pool, self.policy.limit).await {
                        Ok(0) => {}
                        Ok(n) => tracing::warn!(
                            requests = n,
                            "requests closed as Error: attempts exhausted without a recorded outcome"
                        ),
                        Err(e) => tracing::warn!(error = %e, "could not close abandoned requests"),
                    }
                }
                // Caught up: sleep until told of work in the table, handed claims, the next poll or shutdown.
                let next_poll = tokio::time::Instant::from_std(last_db + poll);
                tokio::select! {
                    () = self.wake.notified() => db_due = true,
                    () = self.handoff.delivered() => {},
                    () = tokio::time::sleep_until(next_poll) => {},
                    () = shutdown.cancelled() => break,
                }
            }
        }

        // Handed over but never started: due again now, the attempt not counted.
        for c in self.handoff.take_all() {
            if let Err(e) = store::release(&self.pool, &c).await {
                tracing::warn!(id = c.id, error = %e, "could not release a handed-over claim; its lease will expire");
            }
        }
        tracker.close();
        let grace = Duration::from_secs(self.settings.shutdown_grace_seconds);
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!(
                grace_seconds = grace.as_secs(),
                "sends still in flight after the grace period; their leases will expire and another replica retries them"
            );
        }
    }

    /// While a channel is paused, probe it; resume on the first success.
    pub async fn probe_paused(self: Arc<Self>, shutdown: CancellationToken) {
        // The same interval a request that hit a configuration error waits (policy.rs).
        let every = self.policy.probe_interval;
        let mut failures = probe_log::ProbeLog::default();
        loop {
            self.pauses.set_next_probe(jiff::Timestamp::now().checked_add(every).unwrap_or(jiff::Timestamp::MAX));
            tokio::select! {
                () = tokio::time::sleep(every) => {},
                () = shutdown.cancelled() => return,
            }
            let paused = self.pauses.paused_kinds();
            failures.keep_only(&paused.iter().map(|(k, _)| *k).collect::<Vec<_>>());
            for (kind, reason) in paused {
                let Some(channel) = self.channels.get(kind) else {
                    continue;
                };
                // Idempotent: repairs an alert whose first insert failed.
                if let Err(e) = pause::raise_alert(&self.pool, kind, channel.provider(), &reason).await {
                    tracing::warn!(error = %e, "could not record the staff alert");
                }
                match channel.probe().await {
                    Ok(()) => {
                        self.pauses.resume(kind);
                        // Still 1 if an operator paused it too.
                        self.metrics.set_channel_paused(kind, channel.provider(), self.pauses.is_paused(kind));
                        self.state_changed();
                        tracing::info!(channel = %kind, provider = channel.provider(), "probe succeeded; channel resumed");
                        self.wake.notify_one();
                    }
                    Err(e) => match failures.failed(kind, &e.to_string(), Instant::now()) {
                        probe_log::Loudness::Warn => {
                            tracing::warn!(channel = %kind, error = %e, "probe failed; channel stays paused")
                        }
                        probe_log::Loudness::Reminder => tracing::info!(
                            channel = %kind,
                            error = %e,
                            "channel still paused: probes keep failing with the same error"
                        ),
                        probe_log::Loudness::Quiet => {
                            tracing::debug!(channel = %kind, error = %e, "probe failed again; channel stays paused")
                        }
                    },
                }
            }
        }
    }
}
