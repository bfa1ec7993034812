//! One state per channel for the whole service, from one source.
//!
//! Each running replica records what it knows of its channels in `cantina_notify_estado_canales` (migration 0021,
//! [`store`]): whether a provider is configured, and whether the channel is paused because the provider rejected
//! the configuration (with the error, since when and the next probe). An operator's pause is a row of
//! `cantina_notify_canales_pausados` ([`crate::operator_pauses`]). Every view (`channel list`, `stats`, `/metrics`)
//! merges the two with [`merge`], so they cannot disagree.

mod operator;
pub mod store;
pub mod view;

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::domain::ChannelKind;
pub use crate::domain::StateKind;
pub use operator::OperatorPause;

/// How often a replica refreshes its rows when nothing changes (a change is written at once).
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// A replica whose rows were not refreshed for this long is no longer counted (it stopped, or cannot reach the
/// database): six missed heartbeats.
pub const STALE_AFTER: SignedDuration = SignedDuration::from_secs(30);
/// Rows of a replica not seen for this long are deleted by the live ones (until then views list it as silent).
pub const FORGET_AFTER: SignedDuration = SignedDuration::from_secs(600);

/// What one replica knows of one channel (the `estado` column; an operator's pause is not recorded there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalState {
    /// No provider is configured for the channel in this replica.
    NotConfigured,
    Active,
    /// The provider rejected the configuration (credentials, sender); a probe resumes the channel.
    PausedByProvider {
        error: String,
        next_probe: Option<Timestamp>,
    },
}

impl LocalState {
    pub fn as_db(&self) -> &'static str {
        match self {
            LocalState::NotConfigured => "no_configurado",
            LocalState::Active => "activo",
            LocalState::PausedByProvider { .. } => "pausado_proveedor",
        }
    }
}

/// One row of `cantina_notify_estado_canales`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaRow {
    pub replica: String,
    pub channel: ChannelKind,
    pub provider: Option<String>,
    pub state: LocalState,
    /// Since when the channel is in this state in this replica.
    pub since: Timestamp,
    /// The replica's last heartbeat.
    pub seen_at: Timestamp,
}

impl ReplicaRow {
    pub fn is_live(&self, now: Timestamp) -> bool {
        now.duration_since(self.seen_at) <= STALE_AFTER
    }
}

/// The one state a view shows for a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelState {
    /// An operator paused it (`channel pause`): wins over everything else.
    PausedByOperator { by: String, reason: String, since: Timestamp },
    /// At least one live replica has it paused for a provider error: the earliest such pause's error and start,
    /// the soonest next probe, and which replicas.
    PausedByProvider { error: String, since: Timestamp, next_probe: Option<Timestamp>, replicas: Vec<String> },
    /// No live replica has a provider configured for it.
    NotConfigured,
    /// Configured in some live replica, paused in none; the providers those replicas use.
    Active { providers: Vec<String> },
    /// No replica is live: no service is running (or none can reach the database), so nothing is known.
    Unknown,
}

impl ChannelState {
    pub fn kind(&self) -> StateKind {
        match self {
            ChannelState::PausedByOperator { .. } => StateKind::PausedByOperator,
            ChannelState::PausedByProvider { .. } => StateKind::PausedByProvider,
            ChannelState::NotConfigured => StateKind::NotConfigured,
            ChannelState::Active { .. } => StateKind::Active,
            ChannelState::Unknown => StateKind::Unknown,
        }
    }

    pub fn is_paused(&self) -> bool {
        matches!(self, ChannelState::PausedByOperator { .. } | ChannelState::PausedByProvider { .. })
    }
}

/// Merges an operator's pause of `channel` (if any) with the replicas' rows (any channel, any age) as of `now`
/// (the database's clock, the one that stamped the heartbeats). Rows older than [`STALE_AFTER`] do not count.
pub fn merge(
    channel: ChannelKind,
    operator: Option<&OperatorPause>,
    rows: &[ReplicaRow],
    now: Timestamp,
) -> ChannelState {
    if let Some(p) = operator {
        return ChannelState::PausedByOperator {
            by: p.pausado_por.clone(),
            reason: p.motivo.clone(),
            since: p.pausado_en,
        };
    }
    let live: Vec<&ReplicaRow> = rows.iter().filter(|r| r.channel == channel && r.is_live(now)).collect();
    if live.is_empty() {
        return ChannelState::Unknown;
    }
    let mut paused: Vec<(&ReplicaRow, &String, Option<Timestamp>)> = live
        .iter()
        .filter_map(|r| match &r.state {
            LocalState::PausedByProvider { error, next_probe } => Some((*r, error, *next_probe)),
            _ => None,
        })
        .collect();
    if !paused.is_empty() {
        paused.sort_by(|a, b| (a.0.since, &a.0.replica).cmp(&(b.0.since, &b.0.replica)));
        let (first, error, _) = paused[0];
        let mut replicas: Vec<String> = paused.iter().map(|(r, _, _)| r.replica.clone()).collect();
        replicas.sort();
        return ChannelState::PausedByProvider {
            error: error.clone(),
            since: first.since,
            next_probe: paused.iter().filter_map(|(_, _, n)| *n).min(),
            replicas,
        };
    }
    let mut providers: Vec<String> = live
        .iter()
        .filter(|r| r.state == LocalState::Active)
        .map(|r| r.provider.clone().unwrap_or_else(|| "?".into()))
        .collect();
    if providers.is_empty() {
        return ChannelState::NotConfigured;
    }
    providers.sort();
    providers.dedup();
    ChannelState::Active { providers }
}

/// Every channel's state, in [`ChannelKind::ALL`] order.
pub fn merge_all(operator: &[OperatorPause], rows: &[ReplicaRow], now: Timestamp) -> Vec<(ChannelKind, ChannelState)> {
    ChannelKind::ALL.into_iter().map(|k| (k, merge(k, operator.iter().find(|p| p.channel == k), rows, now))).collect()
}

/// A replica's name and its last heartbeat.
pub type Heartbeat = (String, Timestamp);

/// The replicas that recorded their state, split into live and silent (not seen within [`STALE_AFTER`]), each
/// with its last heartbeat, sorted by name.
pub fn replicas(rows: &[ReplicaRow], now: Timestamp) -> (Vec<Heartbeat>, Vec<Heartbeat>) {
    let mut seen: Vec<Heartbeat> = Vec::new();
    for r in rows {
        match seen.iter_mut().find(|(name, _)| *name == r.replica) {
            Some((_, at)) => *at = (*at).max(r.seen_at),
            None => seen.push((r.replica.clone(), r.seen_at)),
        }
    }
    seen.sort();
    seen.into_iter().partition(|(_, at)| now.duration_since(*at) <= STALE_AFTER)
}

/// This process's name in the table: the pod's name (HOSTNAME) or the machine's, the pid, and a random suffix so
/// that two services in one process (tests) or a pid reused after a crash never share rows.
pub fn replica_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "cantina-notify".into());
    format!("{host}:{}:{:04x}", std::process::id(), fastrand::u16(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn row(replica: &str, channel: ChannelKind, state: LocalState, since: &str, seen: &str) -> ReplicaRow {
        let provider = (state != LocalState::NotConfigured).then(|| "twilio".to_string());
        ReplicaRow { replica: replica.into(), channel, provider, state, since: at(since), seen_at: at(seen) }
    }

    fn provider_pause(error: &str, next: Option<&str>) -> LocalState {
        LocalState::PausedByProvider { error: error.into(), next_probe: next.map(at) }
    }

    const NOW: &str = "2026-11-28T17:00:00Z";

    #[test]
    fn an_operators_pause_wins_over_every_replica_and_over_no_replica() {
        let op = OperatorPause {
            channel: ChannelKind::Sms,
            motivo: "mantenimiento".into(),
            pausado_por: "ana".into(),
            pausado_en: at("2026-11-28T16:00:00Z"),
        };
        let expected = ChannelState::PausedByOperator {
            by: "ana".into(),
            reason: "mantenimiento".into(),
            since: at("2026-11-28T16:00:00Z"),
        };
        let rows =
            [row("a", ChannelKind::Sms, provider_pause("401", None), "2026-11-28T16:30:00Z", "2026-11-28T16:59:58Z")];
        assert_eq!(merge(ChannelKind::Sms, Some(&op), &rows, at(NOW)), expected);
        assert_eq!(merge(ChannelKind::Sms, Some(&op), &[], at(NOW)), expected);
        assert_eq!(expected.kind().spanish(), "pausado por un operador");
    }

    #[test]
    fn a_provider_pause_in_any_live_replica_shows_with_the_first_error_and_the_soonest_probe() {
        let rows = [
            row(
                "b",
                ChannelKind::Sms,
                provider_pause("21003 otra", Some("2026-11-28T17:00:20Z")),
                "2026-11-28T16:50:00Z",
                "2026-11-28T16:59:59Z",
            ),
            row(
                "a",
                ChannelKind::Sms,
                provider_pause("20003 Authenticate", Some("2026-11-28T17:00:40Z")),
                "2026-11-28T16:40:00Z",
                "2026-11-28T16:59:57Z",
            ),
            row("c", ChannelKind::Sms, LocalState::Active, "2026-11-28T10:00:00Z", "2026-11-28T16:59:59Z"),
            // Silent for more than the stale window: not counted.
            row(
                "d",
                ChannelKind::Sms,
                provider_pause("viejo", Some("2026-11-28T16:00:00Z")),
                "2026-11-28T10:00:00Z",
                "2026-11-28T16:59:29Z",
            ),
            row("a", ChannelKind::Email, LocalState::Active, "2026-11-28T10:00:00Z", "2026-11-28T16:59:57Z"),
        ];
        assert_eq!(
            merge(ChannelKind::Sms, None, &rows, at(NOW)),
            ChannelState::PausedByProvider {
                error: "20003 Authenticate".into(),
                since: at("2026-11-28T16:40:00Z"),
                next_probe: Some(at("2026-11-28T17:00:20Z")),
                replicas: vec!["a".into(), "b".into()],
            }
        );
        assert_eq!(
            merge(ChannelKind::Email, None, &rows, at(NOW)),
            ChannelState::Active { providers: vec!["twilio".into()] }
        );
    }

    #[test]
    fn not_configured_only_when_no_live_replica_has_a_provider_and_unknown_when_none_is_live() {
        let rows = [
            row("a", ChannelKind::WhatsApp, LocalState::NotConfigured, "2026-11-28T10:00:00Z", "2026-11-28T16:59:59Z"),
            row("b", ChannelKind::WhatsApp, LocalState::NotConfigured, "2026-11-28T10:00:00Z", "2026-11-28T16:59:59Z"),
            row("a", ChannelKind::Portal, LocalState::NotConfigured, "2026-11-28T10:00:00Z", "2026-11-28T16:59:59Z"),
            row("b", ChannelKind::Portal, LocalState::Active, "2026-11-28T10:00:00Z", "2026-11-28T16:59:59Z"),
            // Only a silent replica knows email: nothing is known.
            row("z", ChannelKind::Email, LocalState::Active, "2026-11-28T10:00:00Z", "2026-11-28T16:58:00Z"),
        ];
        let all = merge_all(&[], &rows, at(NOW));
        let state = |k: ChannelKind| all.iter().find(|(c, _)| *c == k).map(|(_, s)| s.kind()).unwrap();
        assert_eq!(state(ChannelKind::WhatsApp), StateKind::NotConfigured);
        assert_eq!(state(ChannelKind::Portal), StateKind::Active);
        assert_eq!(state(ChannelKind::Email), StateKind::Unknown);
        assert_eq!(state(ChannelKind::Sms), StateKind::Unknown);
        // Exactly at the window's edge a replica still counts; one second later it does not.
        let edge = [row("a", ChannelKind::Sms, LocalState::Active, "2026-11-28T10:00:00Z", "2026-11-28T16:59:30Z")];
        assert_eq!(merge(ChannelKind::Sms, None, &edge, at(NOW)).kind(), StateKind::Active);
        assert_eq!(merge(ChannelKind::Sms, None, &edge, at("2026-11-28T17:00:01Z")).kind(), StateKind::Unknown);

        let (live, silent) = replicas(&rows, at(NOW));
        assert_eq!(live.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(silent, vec![("z".to_string(), at("2026-11-28T16:58:00Z"))]);
    }

    #[test]
    fn state_labels_are_stable() {
        let labels: Vec<_> = StateKind::METRIC.iter().map(|k| k.label()).collect();
        assert_eq!(labels, ["not_configured", "active", "paused_by_operator", "paused_by_provider"]);
        assert_eq!(LocalState::Active.as_db(), "activo");
        assert_eq!(provider_pause("x", None).as_db(), "pausado_proveedor");
        assert_eq!(LocalState::NotConfigured.as_db(), "no_configurado");
        assert!(replica_id().split(':').count() >= 3);
    }
}
