//! `cantina-notify stats`: what happened to the requests created in the period, and the state of the queue now.
//!
//! The period (`--since`) applies to the counts, the success ratios and the last errors, by creation time
//! (`fecha_solicitud`, else `actualizado_en`): "what was asked in the last 24 h and what became of it". The queue
//! figures (pending, due, deferred, retrying, the oldest pending) and the channels' states are about now, whatever
//! the age of the requests: an old stuck request is exactly what staff must see. The states are those of
//! `channel list` ([`crate::channel_state`]): the operators' pauses merged with what each running replica recorded.

use std::collections::BTreeMap;
use std::time::SystemTime;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use tokio_postgres::Client;

use super::OpsError;
use super::format::{self, Align, table};
use super::mask;
use crate::channel_state::ChannelState;
use crate::channel_state::view::{ChannelStateJson, Report, to_json};
use crate::requests::{RequestState, reports};

/// `--json` output. Keys are stable (English); times are RFC 3339 UTC; `destino` and `estado` keep the table's values.
/// Addresses quoted in errors, reasons and alerts are masked (stats has no `--reveal`; `requests show` has).
#[derive(Debug, Serialize)]
pub struct Stats {
    pub generated_at: String,
    pub since: String,
    pub period_seconds: i64,
    /// Requests created in the period, by type × channel × state.
    pub counts: Vec<Count>,
    /// One entry per channel that has requests in the period or in the queue.
    pub channels: Vec<ChannelStats>,
    pub pending: i64,
    pub due: i64,
    pub deferred: i64,
    pub retrying: i64,
    pub oldest_pending: Option<OldestPending>,
    /// False when the pause table (migration 0008) is missing; operators' pauses are then unknown.
    pub pauses_available: bool,
    /// False when the replicas' state table (migration 0021) is missing; only operators' pauses are known then.
    pub replicas_available: bool,
    /// One state per channel (email, sms, whatsapp, portal), merged over the operators' pauses and the running
    /// replicas: the same as `channel list` and `/metrics`.
    pub channel_states: Vec<ChannelStateJson>,
    /// Replicas that recorded their state within the stale window, and those silent longer (not counted).
    pub live_replicas: Vec<String>,
    pub silent_replicas: Vec<String>,
    /// The channels of `channel_states` that are paused, for either reason.
    pub paused_channels: Vec<PausedChannel>,
    /// Open staff alerts about a paused channel (operator pauses and configuration errors).
    pub pause_alerts: Vec<PauseAlert>,
    #[serde(skip)]
    report: Report,
}

pub use crate::requests::reports::StateCount as Count;

#[derive(Debug, Default, Serialize)]
pub struct ChannelStats {
    pub destino: String,
    pub sent: i64,
    pub error: i64,
    pub omitted: i64,
    /// sent / (sent + error) over the period; null when neither happened.
    pub success_ratio: Option<f64>,
    /// Queue now: every `Pendiente`, those due now, deferred (scheduled later, or waiting for quiet hours to end),
    /// and retrying (tried at least once, including those being sent right now).
    pub pending: i64,
    pub due: i64,
    pub deferred: i64,
    pub retrying: i64,
    pub last_error: Option<LastError>,
}

#[derive(Debug, Serialize)]
pub struct LastError {
    pub id: i64,
    pub at: String,
    pub estado: String,
    pub error: String,
    #[serde(skip)]
    at_ts: Option<Timestamp>,
}

#[derive(Debug, Serialize)]
pub struct OldestPending {
    pub id: i64,
    pub destino: Option<String>,
    pub tipo: Option<String>,
    pub created_at: String,
    pub age_seconds: i64,
    pub intentos: i32,
    pub next_attempt: Option<String>,
    #[serde(skip)]
    created_ts: Timestamp,
}

#[derive(Debug, Serialize)]
pub struct PausedChannel {
    pub destino: String,
    /// `paused_by_operator` or `paused_by_provider`.
    pub state: &'static str,
    /// The operator's reason, or the provider's error (masked).
    pub reason: String,
    /// The operator; null for a provider error.
    pub paused_by: Option<String>,
    pub paused_at: String,
    /// The next probe of a provider pause.
    pub next_probe: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct PauseAlert {
    pub id: i64,
    pub created_at: Option<String>,
    pub estado: String,
    pub message: String,
    #[serde(skip)]
    created_ts: Option<Timestamp>,
}

// A configuration pause's alert starts `cantina-notify: canal <destino> pausado` (src/dispatch/pause.rs), an
// operator's `cantina-notify: pausa manual del canal <destino>` (raised by `channel pause`, src/operator_pauses.rs).
const PAUSE_ALERTS: &str = "
    SELECT id_alerta, fecha_creacion, estado, mensaje FROM alertas_sistema
    WHERE tipo = 'SISTEMA' AND estado IN ('Pendiente', 'Leida')
      AND (mensaje LIKE 'cantina-notify: canal % pausado%' OR mensaje LIKE 'cantina-notify: pausa manual del canal %')
    ORDER BY id_alerta";

/// undefined_table: the pause table of migration 0008 is not there (an older database).
const UNDEFINED_TABLE: &str = "42P01";

pub async fn gather(client: &Client, since: SignedDuration) -> Result<Stats, OpsError> {
    let now = Timestamp::now();
    let from = now.checked_sub(since).unwrap_or(Timestamp::UNIX_EPOCH);
    let from_st = SystemTime::from(from);

    let counts: Vec<Count> = reports::stats_counts(client, from_st).await?;

    let mut channels: BTreeMap<String, ChannelStats> = BTreeMap::new();
    for c in &counts {
        let ch = channel(&mut channels, &c.destino);
        match RequestState::parse(&c.estado) {
            Some(RequestState::Enviado) => ch.sent += c.count,
            Some(RequestState::Error) => ch.error += c.count,
            Some(RequestState::Omitido) => ch.omitted += c.count,
            Some(RequestState::Pendiente) | None => {}
        }
    }
    let (mut pending, mut due, mut deferred, mut retrying) = (0, 0, 0, 0);
    for r in reports::stats_queue(client).await? {
        let ch = channel(&mut channels, &r.destino);
        ch.pending = r.pending;
        ch.due = r.due;
        ch.deferred = r.deferred;
        ch.retrying = r.retrying;
        pending += ch.pending;
        due += ch.due;
        deferred += ch.deferred;
        retrying += ch.retrying;
    }
    for r in reports::stats_last_errors(client, from_st).await? {
        let at_ts = r.at.map(format::timestamp);
        channel(&mut channels, &r.destino).last_error = Some(LastError {
            id: r.id,
            at: at_ts.map(format::iso).unwrap_or_default(),
            estado: r.estado,
            error: mask::text(&r.ultimo_error),
            at_ts,
        });
    }
    for ch in channels.values_mut() {
        let finished = ch.sent + ch.error;
        ch.success_ratio = (finished > 0).then(|| ch.sent as f64 / finished as f64);
    }

    let oldest_pending = reports::stats_oldest(client).await?.map(|r| {
        let created_ts = format::timestamp(r.creada);
        OldestPending {
            id: r.id,
            destino: r.destino,
            tipo: r.tipo,
            created_at: format::iso(created_ts),
            age_seconds: r.age_seconds.unwrap_or(0.0).max(0.0) as i64,
            intentos: r.intentos,
            next_attempt: r.proximo_intento.map(|t| format::iso(format::timestamp(t))),
            created_ts,
        }
    });

    let (pauses_available, operator) = match crate::operator_pauses::current(client).await {
        Ok(rows) => (true, rows),
        Err(crate::db::DbError::Query(e)) if e.code().is_some_and(|c| c.code() == UNDEFINED_TABLE) => {
            (false, Vec::new())
        }
        Err(e) => return Err(e.into()),
    };
    let report = crate::channel_state::view::gather(client, &operator).await?;
    let paused_channels = report
        .channels
        .iter()
        .filter_map(|(k, s)| match s {
            ChannelState::PausedByOperator { by, reason, since } => Some(PausedChannel {
                destino: k.destino().into(),
                state: s.kind().label(),
                reason: mask::text(reason),
                paused_by: Some(by.clone()),
                paused_at: format::iso(*since),
                next_probe: None,
            }),
            ChannelState::PausedByProvider { error, since, next_probe, .. } => Some(PausedChannel {
                destino: k.destino().into(),
                state: s.kind().label(),
                reason: mask::text(error),
                paused_by: None,
                paused_at: format::iso(*since),
                next_probe: next_probe.map(format::iso),
            }),
            _ => None,
        })
        .collect();
    let pause_alerts = client
        .query(PAUSE_ALERTS, &[])
        .await?
        .iter()
        .map(|r| {
            let created_ts = r.get::<_, Option<SystemTime>>(1).map(format::timestamp);
            PauseAlert {
                id: r.get(0),
                created_at: created_ts.map(format::iso),
                estado: r.get(2),
                message: mask::text(&r.get::<_, Option<String>>(3).unwrap_or_default()),
                created_ts,
            }
        })
        .collect();

    Ok(Stats {
        generated_at: format::iso(now),
        since: format::iso(from),
        period_seconds: since.as_secs(),
        counts,
        channels: channels.into_values().collect(),
        pending,
        due,
        deferred,
        retrying,
        oldest_pending,
        pauses_available,
        replicas_available: report.replicas_available,
        channel_states: report.channels.iter().map(|(k, s)| to_json(*k, s)).collect(),
        live_replicas: report.live.iter().map(|(r, _)| r.clone()).collect(),
        silent_replicas: report.silent.iter().map(|(r, _)| r.clone()).collect(),
        paused_channels,
        pause_alerts,
        report,
    })
}

fn channel<'a>(channels: &'a mut BTreeMap<String, ChannelStats>, destino: &str) -> &'a mut ChannelStats {
    channels
        .entry(destino.to_string())
        .or_insert_with(|| ChannelStats { destino: destino.to_string(), ..Default::default() })
}

/// The table staff read.
pub fn render(s: &Stats) -> String {
    let from = s.since.parse::<Timestamp>().ok();
    let mut out = format!(
        "Solicitudes creadas desde {} ({})\n\n",
        format::local_opt(from),
        format::period(SignedDuration::from_secs(s.period_seconds))
    );

    // Type × channel, one column per state.
    let mut pivot: BTreeMap<(String, String), [i64; 5]> = BTreeMap::new();
    for c in &s.counts {
        let row = pivot.entry((c.tipo.clone(), c.destino.clone())).or_default();
        if let Some(i) = RequestState::ALL.iter().position(|e| e.as_str() == c.estado) {
            row[i] += c.count;
        }
        row[4] += c.count;
    }
    if pivot.is_empty() {
        out.push_str("Ninguna solicitud en el período.\n");
    } else {
        let rows: Vec<Vec<String>> = pivot
            .iter()
            .map(|((tipo, destino), n)| {
                let mut r = vec![tipo.clone(), destino.clone()];
                r.extend(n.iter().map(i64::to_string));
                r
            })
            .collect();
        let h = [
            ("TIPO", Align::Left),
            ("CANAL", Align::Left),
            ("PENDIENTE", Align::Right),
            ("ENVIADO", Align::Right),
            ("ERROR", Align::Right),
            ("OMITIDO", Align::Right),
            ("TOTAL", Align::Right),
        ];
        out.push_str(&table(&h, &rows));
    }

    out.push_str("\nPor canal (éxito = Enviado / (Enviado + Error) en el período; cola = ahora)\n");
    if s.channels.is_empty() {
        out.push_str("Sin datos.\n");
    } else {
        let rows: Vec<Vec<String>> = s
            .channels
            .iter()
            .map(|c| {
                vec![
                    c.destino.clone(),
                    c.sent.to_string(),
                    c.error.to_string(),
                    format::percent(c.success_ratio),
                    c.pending.to_string(),
                    c.due.to_string(),
                    c.deferred.to_string(),
                    c.retrying.to_string(),
                ]
            })
            .collect();
        let h = [
            ("CANAL", Align::Left),
            ("ENVIADO", Align::Right),
            ("ERROR", Align::Right),
            ("ÉXITO", Align::Right),
            ("PENDIENTES", Align::Right),
            ("POR ENVIAR", Align::Right),
            ("DIFERIDAS", Align::Right),
            ("REINTENTANDO", Align::Right),
        ];
        out.push_str(&table(&h, &rows));
    }

    out.push('\n');
    match &s.oldest_pending {
        Some(o) => out.push_str(&format!(
            "Pendiente más antigua: #{} ({}, {}), creada {}, hace {}; intentos {}, próximo intento {}\n",
            o.id,
            o.destino.as_deref().unwrap_or("sin destino"),
            o.tipo.as_deref().unwrap_or("sin tipo"),
            format::local(o.created_ts),
            format::age(o.age_seconds),
            o.intentos,
            format::local_opt(o.next_attempt.as_deref().and_then(|t| t.parse().ok())),
        )),
        None => out.push_str("Pendiente más antigua: ninguna\n"),
    }
    out.push_str(&format!(
        "En cola: {} pendientes ({} por enviar, {} diferidas, {} reintentando)\n",
        s.pending, s.due, s.deferred, s.retrying
    ));

    out.push('\n');
    out.push_str("Estado de los canales\n");
    out.push_str(&crate::channel_state::view::render(&s.report));
    if !s.pauses_available {
        out.push_str(
            "Pausas de operadores no disponibles (tabla cantina_notify_canales_pausados: falta la migración 0008).\n",
        );
    }
    if !s.pause_alerts.is_empty() {
        out.push_str("Alertas abiertas de canales pausados\n");
        let rows: Vec<Vec<String>> = s
            .pause_alerts
            .iter()
            .map(|a| vec![a.id.to_string(), format::local_opt(a.created_ts), a.estado.clone(), a.message.clone()])
            .collect();
        let h = [("ALERTA", Align::Right), ("CREADA", Align::Left), ("ESTADO", Align::Left), ("MENSAJE", Align::Left)];
        out.push_str(&table(&h, &rows));
    }

    out.push('\n');
    let errors: Vec<Vec<String>> = s
        .channels
        .iter()
        .filter_map(|c| c.last_error.as_ref().map(|e| (c, e)))
        .map(|(c, e)| {
            vec![
                c.destino.clone(),
                format::local_opt(e.at_ts),
                format!("#{}", e.id),
                e.estado.clone(),
                format::cut(&e.error, 100),
            ]
        })
        .collect();
    if errors.is_empty() {
        out.push_str("Último error por canal: ninguno en el período\n");
    } else {
        out.push_str("Último error por canal\n");
        let h = [
            ("CANAL", Align::Left),
            ("CUÁNDO", Align::Left),
            ("SOLICITUD", Align::Right),
            ("ESTADO", Align::Left),
            ("ERROR", Align::Left),
        ];
        out.push_str(&table(&h, &errors));
    }
    out
}
