//! Paused channels, for two reasons; a channel is closed while either holds.
//!
//! A broken configuration (credentials rejected, sender unknown): queued requests wait as `Pendiente` instead of
//! failing one by one, staff get one `alertas_sistema` row per incident, and a probe resumes the channel when the
//! provider accepts the credentials again. The alert goes through [`crate::alerts`].
//!
//! An operator (`cantina-notify channel pause`): the pause is a row of `cantina_notify_canales_pausados`, which every
//! process re-reads each second ([`Dispatcher::watch_operator_pauses`]), so all replicas obey within seconds and
//! only `channel resume` reopens the channel. Until a process has read that table once, every channel is closed in
//! it: a replica starting while a channel is paused must not send on it in the meantime.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use deadpool_postgres::Pool;
use jiff::Timestamp;

use crate::alerts;
use crate::db::DbError;
use crate::domain::ChannelKind;

use super::Dispatcher;

/// How often each process re-reads the operators' pauses (the promise is "within 5 seconds").
const OPERATOR_REFRESH: Duration = Duration::from_secs(1);
/// Until the first read succeeds every channel is closed, so that read is retried sooner (doubling up to
/// [`OPERATOR_REFRESH`]).
const FIRST_READ_RETRY: Duration = Duration::from_millis(50);

/// What a read of the operators' pauses changed in this process.
#[derive(Debug, PartialEq, Eq)]
pub struct OperatorChange {
    /// Newly paused (on the first read: every channel the table holds).
    pub closed: Vec<ChannelKind>,
    /// Newly resumed (never on the first read: nothing was open before it).
    pub opened: Vec<ChannelKind>,
    /// The first successful read: the channels not paused open now.
    pub first_read: bool,
}

#[derive(Default)]
pub struct Pauses {
    /// Paused for a configuration error, with the provider's reason.
    paused: Mutex<HashMap<ChannelKind, String>>,
    /// Paused by an operator, with the reason they gave: the table's content at the last refresh. `None` until the
    /// first read, which closes every channel.
    operator: Mutex<Option<HashMap<ChannelKind, String>>>,
    /// Resumed after a probe but not yet confirmed by a real send: the staff alert stays open until one succeeds,
    /// so a probe that cannot tell (an HTTP gateway has none) does not resolve and re-raise it every interval.
    unconfirmed: Mutex<std::collections::HashSet<ChannelKind>>,
    /// When each channel last entered its configuration state (paused or not): the start-up, a pause, a resume.
    changed_at: Mutex<HashMap<ChannelKind, Timestamp>>,
    /// When the prober next runs (it probes every paused channel then).
    next_probe: Mutex<Option<Timestamp>>,
}

impl Pauses {
    /// Every channel starts unconfirmed: the first successful send of each, in each process, resolves an alert left
    /// open by an earlier incident (say, fixed by changing the secret and restarting the pods).
    pub fn new(kinds: impl IntoIterator<Item = ChannelKind>) -> Self {
        let now = Timestamp::now();
        Self {
            paused: Mutex::default(),
            operator: Mutex::new(None),
            unconfirmed: Mutex::new(kinds.into_iter().collect()),
            changed_at: Mutex::new(ChannelKind::ALL.into_iter().map(|k| (k, now)).collect()),
            next_probe: Mutex::new(None),
        }
    }

    /// The provider's reason if the channel is paused for a configuration error.
    pub fn provider_pause(&self, kind: ChannelKind) -> Option<String> {
        self.paused.lock().unwrap_or_else(|e| e.into_inner()).get(&kind).cloned()
    }

    /// Since when the channel is paused for a configuration error, or open again (or since start-up).
    pub fn changed_at(&self, kind: ChannelKind) -> Timestamp {
        let at = self.changed_at.lock().unwrap_or_else(|e| e.into_inner()).get(&kind).copied();
        at.unwrap_or(Timestamp::UNIX_EPOCH)
    }

    pub fn next_probe(&self) -> Option<Timestamp> {
        *self.next_probe.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_next_probe(&self, at: Timestamp) {
        *self.next_probe.lock().unwrap_or_else(|e| e.into_inner()) = Some(at);
    }

    fn changed(&self, kind: ChannelKind) {
        self.changed_at.lock().unwrap_or_else(|e| e.into_inner()).insert(kind, Timestamp::now());
    }

    /// Channels paused for a configuration error (the prober's work list; an operator's pause is not probed).
    pub fn paused_kinds(&self) -> Vec<(ChannelKind, String)> {
        self.paused.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(k, r)| (*k, r.clone())).collect()
    }

    /// Returns true if this call paused the channel (false if it already was).
    pub fn pause(&self, kind: ChannelKind, reason: &str) -> bool {
        let mut p = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        let new = p.insert(kind, reason.to_string()).is_none();
        if new {
            self.changed(kind);
        }
        new
    }

    pub fn resume(&self, kind: ChannelKind) {
        if self.paused.lock().unwrap_or_else(|e| e.into_inner()).remove(&kind).is_some() {
            self.changed(kind);
        }
        self.unconfirmed.lock().unwrap_or_else(|e| e.into_inner()).insert(kind);
    }

    /// A send went through: true if this confirms a resumed channel (time to resolve its alert).
    pub fn confirm(&self, kind: ChannelKind) -> bool {
        self.unconfirmed.lock().unwrap_or_else(|e| e.into_inner()).remove(&kind)
    }

    /// Closed for either reason.
    pub fn is_paused(&self, kind: ChannelKind) -> bool {
        self.paused.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&kind) || self.is_paused_by_operator(kind)
    }

    /// Also true before the pause table was first read: nothing is known yet, so nothing may be sent.
    pub fn is_paused_by_operator(&self, kind: ChannelKind) -> bool {
        self.operator.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_none_or(|op| op.contains_key(&kind))
    }

    /// Replaces the operators' pauses with the table's current content; says which channels this closed and
    /// which it reopened.
    pub fn set_operator(&self, now: HashMap<ChannelKind, String>) -> OperatorChange {
        let mut op = self.operator.lock().unwrap_or_else(|e| e.into_inner());
        let before = op.take();
        let first_read = before.is_none();
        let before = before.unwrap_or_default();
        let mut closed: Vec<_> = now.keys().filter(|k| !before.contains_key(k)).copied().collect();
        let mut opened: Vec<_> = before.keys().filter(|k| !now.contains_key(k)).copied().collect();
        closed.sort();
        opened.sort();
        *op = Some(now);
        OperatorChange { closed, opened, first_read }
    }
}

impl Dispatcher {
    /// Every second, reads the operators' pauses and applies them to this process: claims (here and in the drain's
    /// hand-off) skip a paused channel, a claimed request not yet sent is given back, and a resume wakes the
    /// claim loop. A database error keeps the last state read (a pause is not lifted because the table is
    /// unreachable); before the first successful read that state is "every channel closed", and the read is
    /// retried with a short backoff.
    pub async fn watch_operator_pauses(self: Arc<Self>, shutdown: CancellationToken) {
        let mut failing = false;
        let mut first_retry = FIRST_READ_RETRY;
        let mut loaded = false;
        loop {
            match self.refresh_operator_pauses().await {
                Ok(()) => {
                    loaded = true;
                    if failing {
                        failing = false;
                        tracing::info!("operator pauses readable again");
                    }
                }
                // Once per outage, not every second.
                Err(e) if !failing => {
                    failing = true;
                    if loaded {
                        tracing::warn!(error = %e, "cannot read the operator pauses; keeping the last state read");
                    } else {
                        tracing::warn!(error = %e, "cannot read the operator pauses; every channel stays closed until they are read");
                    }
                }
                Err(_) => {}
            }
            let wait = if loaded {
                OPERATOR_REFRESH
            } else {
                let w = first_retry;
                first_retry = (first_retry * 2).min(OPERATOR_REFRESH);
                w
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {},
                () = shutdown.cancelled() => return,
            }
        }
    }

    async fn refresh_operator_pauses(&self) -> Result<(), DbError> {
        let rows = {
            let conn = self.pool.get().await?;
            crate::operator_pauses::current_pooled(&conn).await?
        };
        let OperatorChange { closed, opened, first_read } =
            self.pauses.set_operator(rows.iter().map(|p| (p.channel, p.motivo.clone())).collect());
        if first_read || !closed.is_empty() || !opened.is_empty() {
            // Before the gauges: whoever sees the gauge at 1 may rely on no new claim for the channel.
            self.handoff.set_open(&self.open_destinos());
        }
        for p in rows.iter().filter(|p| closed.contains(&p.channel)) {
            // An operator may quote an address in the reason.
            let motivo = crate::present::mask::text(&p.motivo);
            tracing::warn!(channel = %p.channel, %motivo, por = %p.pausado_por, "channel paused by an operator");
        }
        for k in &opened {
            tracing::info!(channel = %k, "channel resumed by an operator");
        }
        *self.operator_rows.lock().unwrap_or_else(|e| e.into_inner()) = Some(rows.clone());
        self.update_state_gauges();
        for k in self.channels.kinds() {
            self.metrics.set_channel_paused_by_operator(k, self.pauses.is_paused_by_operator(k));
            if let Some(c) = self.channels.get(k) {
                self.metrics.set_channel_paused(k, c.provider(), self.pauses.is_paused(k));
            }
        }
        if first_read || !opened.is_empty() {
            self.wake.notify_one();
        }
        Ok(())
    }
}

pub use crate::alerts::config_pause_alert_prefix as alert_prefix;

/// One open `SISTEMA` alert per paused channel, whichever replica notices first.
pub async fn raise_alert(pool: &Pool, kind: ChannelKind, provider: &str, reason: &str) -> Result<(), DbError> {
    let prefix = alert_prefix(kind);
    // The reason quotes the provider; cleaned so that the alert can always be stored.
    let reason = crate::channels::provider_text::clean_reason(reason);
    let mensaje = format!(
        "{prefix} ({provider}): {reason}. Revise la configuración del proveedor; los avisos esperan y el canal se reanuda solo cuando la prueba de conexión funcione."
    );
    alerts::raise(pool, &prefix, &mensaje).await?;
    Ok(())
}

/// The incident is over: the open alert is marked resolved, saying how.
pub async fn resolve_alert(pool: &Pool, kind: ChannelKind) -> Result<(), DbError> {
    alerts::resolve(
        pool,
        &alert_prefix(kind),
        "cantina-notify: la prueba del canal funcionó; envíos reanudados automáticamente",
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::{OperatorChange, Pauses};
    use crate::domain::ChannelKind;

    fn change(closed: &[ChannelKind], opened: &[ChannelKind], first_read: bool) -> OperatorChange {
        OperatorChange { closed: closed.to_vec(), opened: opened.to_vec(), first_read }
    }

    #[test]
    fn every_channel_is_closed_until_the_pause_table_is_first_read() {
        let p = Pauses::new(ChannelKind::ALL);
        assert!(ChannelKind::ALL.iter().all(|k| p.is_paused(*k) && p.is_paused_by_operator(*k)));
        assert!(p.paused_kinds().is_empty(), "not a configuration pause: nothing to probe");
        let op: HashMap<_, _> = [(ChannelKind::Sms, "mantenimiento".to_string())].into();
        assert_eq!(p.set_operator(op.clone()), change(&[ChannelKind::Sms], &[], true));
        assert!(p.is_paused(ChannelKind::Sms));
        assert!(!p.is_paused(ChannelKind::Email) && !p.is_paused(ChannelKind::WhatsApp));
        assert_eq!(p.set_operator(op), change(&[], &[], false));
    }

    #[test]
    fn a_channel_is_closed_while_either_pause_holds() {
        let p = Pauses::new(ChannelKind::ALL);
        let op = |ks: &[ChannelKind]| -> HashMap<ChannelKind, String> {
            ks.iter().map(|k| (*k, "mantenimiento".to_string())).collect()
        };
        assert_eq!(p.set_operator(op(&[ChannelKind::Email])), change(&[ChannelKind::Email], &[], true));
        assert!(p.is_paused(ChannelKind::Email) && p.is_paused_by_operator(ChannelKind::Email));
        assert!(p.paused_kinds().is_empty(), "an operator's pause is not probed");
        // The same table content again changes nothing.
        assert_eq!(p.set_operator(op(&[ChannelKind::Email])), change(&[], &[], false));

        assert!(p.pause(ChannelKind::Email, "credenciales rechazadas"));
        assert_eq!(p.set_operator(op(&[ChannelKind::Sms])), change(&[ChannelKind::Sms], &[ChannelKind::Email], false));
        assert!(p.is_paused(ChannelKind::Email), "the configuration pause still holds");
        assert!(!p.is_paused_by_operator(ChannelKind::Email));
        p.resume(ChannelKind::Email);
        assert!(!p.is_paused(ChannelKind::Email));
        assert!(p.is_paused(ChannelKind::Sms));

        // An operator's pause survives the probe's resume of the configuration pause.
        assert!(p.pause(ChannelKind::Sms, "remitente desconocido"));
        p.resume(ChannelKind::Sms);
        assert!(p.is_paused(ChannelKind::Sms));
        assert_eq!(p.set_operator(HashMap::new()), change(&[], &[ChannelKind::Sms], false));
        assert!(ChannelKind::ALL.iter().all(|k| !p.is_paused(*k)));
    }
}
