//! Requests the drain claims for this process's dispatcher in its own transaction, handed over in memory: the send
//! starts right after the rules' commit, without a claim round trip or a wake-up delay. Only as many as the
//! dispatcher has free send slots, so a handed-over claim never waits long under its lease; the rest stay in the
//! table for the ordinary claim loop (and for other replicas).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};

use super::store::Claimed;
use crate::events::drain::ClaimOffer;

pub struct Handoff {
    queue: Mutex<VecDeque<Claimed>>,
    permits: Arc<Semaphore>,
    /// The channels the dispatcher sends on now (configured and not paused), refreshed on every claim round.
    open: Mutex<Vec<&'static str>>,
    /// Its own wake-up, apart from the dispatcher's: a delivery means claims in memory, not work in the table,
    /// so it must not send the claim loop to the database.
    ready: Notify,
    lease: Duration,
}

impl Handoff {
    pub fn new(permits: Arc<Semaphore>, open: Vec<&'static str>, lease: Duration) -> Self {
        Self { queue: Mutex::default(), permits, open: Mutex::new(open), ready: Notify::new(), lease }
    }

    /// What the drain may claim now; `None` when every send slot is taken or promised.
    pub fn offer(&self) -> Option<ClaimOffer> {
        let queued = self.lock_queue().len();
        let slots = self.permits.available_permits().saturating_sub(queued);
        let destinos = self.open.lock().unwrap_or_else(|e| e.into_inner()).clone();
        (slots > 0 && !destinos.is_empty()).then_some(ClaimOffer { slots, destinos, lease: self.lease })
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
    pub(super) async fn delivered(&self) {
        self.ready.notified().await
    }

    pub(super) fn set_open(&self, destinos: &[&'static str]) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.as_slice() != destinos {
            *open = destinos.to_vec();
        }
    }

    pub(super) fn take(&self, n: usize) -> Vec<Claimed> {
        let mut q = self.lock_queue();
        let n = n.min(q.len());
        q.drain(..n).collect()
    }

    pub(super) fn take_all(&self) -> Vec<Claimed> {
        self.lock_queue().drain(..).collect()
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Claimed>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}
