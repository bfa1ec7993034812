//! This replica's channel states: recorded in `cantina_notify_estado_canales` (every change at once, a heartbeat
//! every few seconds) for `channel list` and `stats`, and shown in `/metrics` through the same merge with the
//! operators' pauses ([`crate::channel_state::merge`]).

use std::sync::Arc;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::channel_state::store::{self, LocalRow};
use crate::channel_state::{self, HEARTBEAT, LocalState, ReplicaRow};
use crate::domain::ChannelKind;

use super::Dispatcher;

impl Dispatcher {
    /// What this process knows of each channel, without the operators' pauses (those have their own table).
    pub(super) fn local_rows(&self) -> Vec<LocalRow> {
        ChannelKind::ALL
            .into_iter()
            .map(|k| {
                let provider = self.channels.get(k).map(|c| c.provider().to_string());
                let state = match (&provider, self.pauses.provider_pause(k)) {
                    (None, _) => LocalState::NotConfigured,
                    (Some(_), Some(error)) => {
                        LocalState::PausedByProvider { error, next_probe: self.pauses.next_probe() }
                    }
                    (Some(_), None) => LocalState::Active,
                };
                LocalRow { channel: k, provider, state, since: self.pauses.changed_at(k) }
            })
            .collect()
    }

    /// `cantina_notify_channel_state`: this process's own rows merged with the operators' pauses last read. Not
    /// set before that first read (until then every channel is closed here, for a reason not yet known).
    pub(super) fn update_state_gauges(&self) {
        let operator = self.operator_rows.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(operator) = operator else { return };
        let now = Timestamp::now();
        let rows: Vec<ReplicaRow> = self
            .local_rows()
            .into_iter()
            .map(|r| ReplicaRow {
                replica: String::new(),
                channel: r.channel,
                provider: r.provider,
                state: r.state,
                since: r.since,
                seen_at: now,
            })
            .collect();
        for (k, state) in channel_state::merge_all(&operator, &rows, now) {
            self.metrics.set_channel_state(k, state.kind());
        }
    }

    /// A state changed here: record it now rather than at the next heartbeat.
    pub(super) fn state_changed(&self) {
        self.update_state_gauges();
        self.state_changed.notify_one();
    }

    /// Records this replica's channels at once, after every change and every [`HEARTBEAT`]; on shutdown removes
    /// them, so the views stop counting this replica at once. A database error is logged once per outage; the
    /// views stop counting this replica after the stale window, which is the truth: it cannot reach the database.
    pub async fn record_channel_states(self: Arc<Self>, replica: String, shutdown: CancellationToken) {
        let mut failing = false;
        loop {
            let result = match self.pool.get().await {
                Ok(conn) => store::record(&conn, &replica, &self.local_rows()).await,
                Err(e) => Err(e.into()),
            };
            match result {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("channel states recorded again");
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "cannot record the channel states; the views will count this replica as silent");
                }
                Err(_) => {}
            }
            tokio::select! {
                () = tokio::time::sleep(HEARTBEAT) => {},
                () = self.state_changed.notified() => {},
                () = shutdown.cancelled() => break,
            }
        }
        let forgotten = match self.pool.get().await {
            Ok(conn) => store::forget(&conn, &replica).await,
            Err(e) => Err(e.into()),
        };
        if let Err(e) = forgotten {
            tracing::warn!(error = %e, "could not remove this replica's channel states; they go stale");
        }
    }
}
