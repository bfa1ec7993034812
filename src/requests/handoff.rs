//! Requests the drain claims for this process's dispatcher in its own transaction, handed over in memory: the send
//! starts right after the rules' commit, without a claim round trip or a wake-up delay. As many as the dispatcher
//! has free send slots, plus a bounded backlog (`extra`, see [`backlog_allowance`]) so that a burst is not claimed
//! a second time from the table; the rest stay in the table for the ordinary claim loop (and other replicas). A
//! claim half its lease old is given back unsent instead of being sent late.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};

use super::row::Claimed;
use super::write::ClaimOffer;

pub struct Handoff {
    queue: Mutex<VecDeque<Claimed>>,
    permits: Arc<Semaphore>,
    /// The channels the dispatcher sends on now (configured and not paused), refreshed on every claim round.
    open: Mutex<Vec<&'static str>>,
    /// Its own wake-up, apart from the dispatcher's: a delivery means claims in memory, not work in the table,
    /// so it must not send the claim loop to the database.
    ready: Notify,
    /// Signalled when the dispatcher takes claims (room for more).
    taken: Notify,
    lease: Duration,
    /// Claims that may wait here beyond the free send slots.
    extra: usize,
    /// Send slots plus `extra`: the most this process can hold.
    capacity: usize,
    /// Set when the dispatcher stops: no more offers (a claim delivered after it gave back the queue would wait
    /// for its lease to run out).
    closed: std::sync::atomic::AtomicBool,
    /// Whether a backlog's drain should wait for room: only when no configured channel is rate-limited (with a
    /// limit, the queue drains at that rate and the wait would slow every other event down to it).
    backpressure: bool,
}

/// How many claims may wait in memory beyond the free send slots: a batch's worth, but no more than the slowest
/// rate-limited channel sends in a quarter of the lease (so they start well before it runs out; the half-lease
/// check in [`Handoff::take`] is the backstop). `rates`: the configured per-second limits, ≤ 0 meaning none.
pub fn backlog_allowance(batch_size: i64, lease: Duration, rates: impl IntoIterator<Item = f64>) -> usize {
    let batch = usize::try_from(batch_size.max(0)).unwrap_or(0);
    rates
        .into_iter()
        .filter(|r| *r > 0.0)
        .map(|r| (r * lease.as_secs_f64() / 4.0).floor() as usize)
        .fold(batch, usize::min)
}

impl Handoff {
    pub fn new(
        permits: Arc<Semaphore>,
        open: Vec<&'static str>,
        lease: Duration,
        extra: usize,
        backpressure: bool,
    ) -> Self {
        let capacity = permits.available_permits() + extra;
        Self {
            queue: Mutex::default(),
            capacity,
            closed: std::sync::atomic::AtomicBool::new(false),
            backpressure,
            permits,
            open: Mutex::new(open),
            ready: Notify::new(),
            taken: Notify::new(),
            lease,
            extra,
        }
    }

    /// Whether a backlog's drain should wait for room (see [`offer_when_room`](Self::offer_when_room)).
    pub fn backpressure(&self) -> bool {
        self.backpressure
    }

    /// What the drain may claim now; `None` when every send slot is taken or promised.
    pub fn offer(&self) -> Option<ClaimOffer> {
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        let queued = self.lock_queue().len();
        let slots = (self.permits.available_permits() + self.extra).saturating_sub(queued);
        let destinos = self.open.lock().unwrap_or_else(|e| e.into_inner()).clone();
        (slots > 0 && !destinos.is_empty()).then_some(ClaimOffer { slots, destinos, lease: self.lease })
    }

    /// [`offer`](Self::offer) for a drain working through a backlog: waits (up to `max_wait`) until the dispatcher
    /// has room for at least `want` claims or nothing queued, so the backlog's requests are claimed once, at insert,
    /// instead of being inserted unclaimed and claimed again from the table. Bounded, and only when no channel is
    /// rate-limited, so a slow channel does not hold up the events of the others for long.
    pub async fn offer_when_room(&self, want: usize, max_wait: Duration) -> Option<ClaimOffer> {
        if !self.backpressure {
            return self.offer();
        }
        let want = want.min(self.capacity / 2).max(1);
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            let taken = self.taken.notified();
            let offer = self.offer();
            let queued = self.lock_queue().len();
            if offer.as_ref().is_some_and(|o| o.slots >= want) || queued == 0 {
                return offer;
            }
            if tokio::time::timeout_at(deadline, taken).await.is_err() {
                return self.offer();
            }
        }
    }

    /// The drain committed these claims: the dispatcher sends them next.
    pub fn deliver(&self, claimed: Vec<Claimed>) {
        if claimed.is_empty() {
            return;
        }
        self.lock_queue().extend(claimed);
        self.ready.notify_one();
    }

    /// Resolves when claims have been delivered (or were delivered since the last wait).
    pub async fn delivered(&self) {
        self.ready.notified().await
    }

    pub fn set_open(&self, destinos: &[&'static str]) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.as_slice() != destinos {
            *open = destinos.to_vec();
        }
    }

    /// Up to `n` claims to send now, and any claimed half the lease ago or more (to give back unsent: a send
    /// started that late could outlive the lease and race the replica that takes the request over).
    pub fn take(&self, n: usize) -> (Vec<Claimed>, Vec<Claimed>) {
        let mut q = self.lock_queue();
        let mut stale = Vec::new();
        while q.front().is_some_and(|c| c.claimed_at.elapsed() >= self.lease / 2) {
            stale.extend(q.pop_front());
        }
        let n = n.min(q.len());
        let taken: Vec<Claimed> = q.drain(..n).collect();
        if !taken.is_empty() || !stale.is_empty() {
            self.taken.notify_waiters();
        }
        (taken, stale)
    }

    /// The requests waiting here, to count them in the oldest-due gauge.
    pub fn queued_ids(&self) -> Vec<i64> {
        self.lock_queue().iter().map(|c| c.id).collect()
    }

    pub fn take_all(&self) -> Vec<Claimed> {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        let all = self.lock_queue().drain(..).collect();
        self.taken.notify_waiters();
        all
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Claimed>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn claim(id: i64) -> Claimed {
        Claimed {
            id,
            tipo: None,
            destino: Some("Email".into()),
            destinatario: None,
            datos: None,
            clave_dedup: format!("k{id}"),
            firma: None,
            id_cliente: None,
            nro_tarjeta: None,
            already_sent: false,
            intentos: 1,
            claimed_at: Instant::now(),
            notice: Err("prueba".into()),
        }
    }

    #[test]
    fn the_backlog_allowance_is_a_batch_unless_a_rate_limit_cannot_send_it_in_a_quarter_of_the_lease() {
        let lease = Duration::from_secs(120);
        assert_eq!(backlog_allowance(500, lease, []), 500);
        assert_eq!(backlog_allowance(500, lease, [0.0, -1.0]), 500);
        // Twilio's 1/s: 30 in 30 s.
        assert_eq!(backlog_allowance(500, lease, [1.0, 0.0]), 30);
        assert_eq!(backlog_allowance(500, lease, [100.0, 1.0]), 30);
        assert_eq!(backlog_allowance(20, lease, [100.0]), 20);
        assert_eq!(backlog_allowance(500, Duration::from_secs(2), [1.0]), 0);
    }

    #[test]
    fn offers_the_free_slots_plus_the_allowance_minus_what_waits() {
        let permits = Arc::new(Semaphore::new(4));
        let h = Handoff::new(permits.clone(), vec!["Email"], Duration::from_secs(120), 10, true);
        assert_eq!(h.offer().map(|o| o.slots), Some(14));
        h.deliver((1..=12).map(claim).collect());
        assert_eq!(h.offer().map(|o| o.slots), Some(2));
        h.deliver((13..=14).map(claim).collect());
        assert!(h.offer().is_none());
        let (now, stale) = h.take(4);
        assert_eq!(now.iter().map(|c| c.id).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert!(stale.is_empty());
        assert_eq!(h.offer().map(|o| o.slots), Some(4));
    }

    #[tokio::test]
    async fn a_backlog_waits_for_room_until_the_dispatcher_takes_claims_or_the_wait_ends() {
        let h = Arc::new(Handoff::new(Arc::new(Semaphore::new(2)), vec!["Email"], Duration::from_secs(120), 8, true));
        // Nothing queued: at once, whatever the room.
        assert_eq!(h.offer_when_room(100, Duration::from_secs(60)).await.map(|o| o.slots), Some(10));
        h.deliver((1..=10).map(claim).collect());
        // Full: the bounded wait ends with no offer.
        assert!(h.offer_when_room(5, Duration::from_millis(20)).await.is_none());
        // Room for 5 (half the capacity) once the dispatcher takes 5.
        let waiter = tokio::spawn({
            let h = h.clone();
            async move { h.offer_when_room(100, Duration::from_secs(60)).await.map(|o| o.slots) }
        });
        // Whether the waiter is already waiting or not, it sees the room the take makes.
        let _ = h.take(5);
        assert_eq!(waiter.await.ok().flatten(), Some(5));
    }

    #[test]
    fn claims_that_waited_half_the_lease_come_back_as_stale() {
        let h = Handoff::new(Arc::new(Semaphore::new(4)), vec!["Email"], Duration::ZERO, 10, true);
        h.deliver(vec![claim(1), claim(2)]);
        let (now, stale) = h.take(4);
        assert!(now.is_empty());
        assert_eq!(stale.iter().map(|c| c.id).collect::<Vec<_>>(), [1, 2]);
    }

    #[tokio::test]
    async fn no_waiting_with_a_rate_limited_channel_and_no_offers_once_the_dispatcher_stopped() {
        let h = Handoff::new(Arc::new(Semaphore::new(2)), vec!["Email"], Duration::from_secs(120), 8, false);
        h.deliver((1..=10).map(claim).collect());
        // Full, but no backpressure configured: the answer comes at once (none), not after the wait.
        let started = Instant::now();
        assert!(h.offer_when_room(5, Duration::from_secs(60)).await.is_none());
        assert!(started.elapsed() < Duration::from_secs(30));
        assert_eq!(h.take_all().len(), 10);
        // Stopped: a claim delivered now would never be sent nor given back.
        assert!(h.offer().is_none());
    }
}
