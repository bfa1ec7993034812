//! What `channel list` and `stats` print (and `stats --json` carries) about the channels' states: the same merge,
//! the same words. Text that came from a provider or an operator is masked (addresses) and, in text output,
//! stripped of control characters.

use jiff::Timestamp;
use serde::Serialize;
use tokio_postgres::Client;

use super::store::{self, Snapshot};
use super::{ChannelState, Heartbeat, OperatorPause, STALE_AFTER, merge_all, replicas};
use crate::db::DbError;
use crate::domain::ChannelKind;
use crate::present::format::{self, Align, table};
use crate::present::mask;

/// Everything a view needs: the merged state of each channel and which replicas it heard from.
#[derive(Debug, Clone)]
pub struct Report {
    pub now: Timestamp,
    /// False when the replicas' table (migration 0021) is missing: only operators' pauses are known then.
    pub replicas_available: bool,
    pub channels: Vec<(ChannelKind, ChannelState)>,
    pub live: Vec<Heartbeat>,
    pub silent: Vec<Heartbeat>,
}

impl Report {
    pub fn new(operator: &[OperatorPause], snapshot: Option<Snapshot>) -> Report {
        let replicas_available = snapshot.is_some();
        let Snapshot { now, rows } = snapshot.unwrap_or_else(|| Snapshot { now: Timestamp::now(), rows: Vec::new() });
        let (live, silent) = replicas(&rows, now);
        Report { now, replicas_available, channels: merge_all(operator, &rows, now), live, silent }
    }
}

/// Reads the replicas' rows and merges them with `operator` (the operators' pauses, read by the caller).
pub async fn gather(client: &Client, operator: &[OperatorPause]) -> Result<Report, DbError> {
    Ok(Report::new(operator, store::read(client).await?))
}

/// `stats --json`: one entry per channel. `state` is one of `not_configured`, `active`, `paused_by_operator`,
/// `paused_by_provider`, `unknown`; the other keys are null when they do not apply.
#[derive(Debug, Serialize)]
pub struct ChannelStateJson {
    pub channel: &'static str,
    pub destino: &'static str,
    pub state: &'static str,
    pub estado: &'static str,
    pub since: Option<String>,
    pub paused_by: Option<String>,
    pub reason: Option<String>,
    pub error: Option<String>,
    pub next_probe: Option<String>,
    /// The replicas with a provider pause of the channel.
    pub replicas: Vec<String>,
    pub providers: Vec<String>,
}

pub fn to_json(channel: ChannelKind, state: &ChannelState) -> ChannelStateJson {
    let mut j = ChannelStateJson {
        channel: channel.config_name(),
        destino: channel.destino(),
        state: state.kind().label(),
        estado: state.kind().spanish(),
        since: None,
        paused_by: None,
        reason: None,
        error: None,
        next_probe: None,
        replicas: Vec::new(),
        providers: Vec::new(),
    };
    match state {
        ChannelState::PausedByOperator { by, reason, since } => {
            j.since = Some(format::iso(*since));
            j.paused_by = Some(by.clone());
            j.reason = Some(mask::text(reason));
        }
        ChannelState::PausedByProvider { error, since, next_probe, replicas } => {
            j.since = Some(format::iso(*since));
            j.error = Some(mask::text(error));
            j.next_probe = next_probe.map(format::iso);
            j.replicas = replicas.clone();
        }
        ChannelState::Active { providers } => j.providers = providers.clone(),
        ChannelState::NotConfigured | ChannelState::Unknown => {}
    }
    j
}

/// The detail column: who and why, or which error, the next probe and the replicas.
fn detail(state: &ChannelState) -> String {
    match state {
        ChannelState::PausedByOperator { by, reason, .. } => format!("por {by}: {}", mask::text(reason)),
        ChannelState::PausedByProvider { error, next_probe, replicas, .. } => format!(
            "{}; próxima prueba {}; réplica{} {}",
            mask::text(error),
            format::local_opt(*next_probe),
            if replicas.len() == 1 { "" } else { "s" },
            replicas.join(", ")
        ),
        ChannelState::Active { providers } => format!("proveedor {}", providers.join(", ")),
        ChannelState::NotConfigured => "ningún proveedor configurado en el servicio en marcha".into(),
        ChannelState::Unknown => String::new(),
    }
}

fn since(state: &ChannelState) -> String {
    match state {
        ChannelState::PausedByOperator { since, .. } | ChannelState::PausedByProvider { since, .. } => {
            format::local(*since)
        }
        _ => "-".into(),
    }
}

/// The table and the replicas' lines, for a terminal.
pub fn render(r: &Report) -> String {
    let rows: Vec<Vec<String>> = r
        .channels
        .iter()
        .map(|(k, s)| {
            vec![
                k.config_name().to_string(),
                s.kind().spanish().to_string(),
                since(s),
                format::terminal_safe(&detail(s)).replace(['\n', '\t'], " "),
            ]
        })
        .collect();
    let h = [("CANAL", Align::Left), ("ESTADO", Align::Left), ("DESDE", Align::Left), ("DETALLE", Align::Left)];
    let mut out = table(&h, &rows);
    let names = |v: &[Heartbeat]| -> String {
        format::terminal_safe(&v.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "))
    };
    if !r.replicas_available {
        out.push_str(
            "Estado de las réplicas no disponible (tabla cantina_notify_estado_canales: falta la migración 0021; ejecute cantina-notify migrate).\n",
        );
    } else if r.live.is_empty() {
        out.push_str(&format!(
            "Ningún servicio en marcha: ninguna réplica tiene su estado registrado (una réplica lo borra al detenerse y deja de contar si no lo renueva en {} s), así que el estado de los canales es desconocido.\n",
            STALE_AFTER.as_secs()
        ));
    } else {
        out.push_str(&format!("Réplicas en marcha: {} ({})\n", r.live.len(), names(&r.live)));
    }
    if !r.silent.is_empty() {
        let last = r.silent.iter().map(|(_, at)| *at).max().map(format::local).unwrap_or_default();
        out.push_str(&format!(
            "Réplicas sin latido desde hace más de {} s (no se cuentan): {} (último latido {last})\n",
            STALE_AFTER.as_secs(),
            names(&r.silent)
        ));
    }
    out
}
