//! `cantina_notify_estado_canales` (migration 0021): each replica writes its own rows, the views read them all.

use std::time::SystemTime;

use jiff::Timestamp;
use tokio_postgres::Client;

use super::{FORGET_AFTER, LocalState, ReplicaRow};
use crate::db::DbError;
use crate::domain::ChannelKind;
use crate::present::format;

/// What a view reads: every row, and the database's clock (the one that stamped the heartbeats).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub now: Timestamp,
    pub rows: Vec<ReplicaRow>,
}

/// One channel as this replica records it.
#[derive(Debug, Clone)]
pub struct LocalRow {
    pub channel: ChannelKind,
    pub provider: Option<String>,
    pub state: LocalState,
    pub since: Timestamp,
}

/// undefined_table: migration 0021 has not run (an older database).
const UNDEFINED_TABLE: &str = "42P01";

const READ: &str = "
    SELECT n.now, e.replica, e.destino::text, e.proveedor, e.estado::text, e.motivo, e.desde, e.proxima_prueba,
           e.visto_en
    FROM (SELECT now() AS now) n LEFT JOIN cantina_notify_estado_canales e ON true
    ORDER BY e.replica, e.destino";

/// Every replica's rows (live or not: [`super::merge`] decides), or `None` when the table does not exist yet.
pub async fn read(client: &Client) -> Result<Option<Snapshot>, DbError> {
    let rows = match client.query(READ, &[]).await {
        Ok(rows) => rows,
        Err(e) if e.code().is_some_and(|c| c.code() == UNDEFINED_TABLE) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut now = Timestamp::now();
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        now = format::timestamp(r.try_get("now")?);
        let Some(replica) = r.try_get::<_, Option<String>>("replica")? else { continue };
        let destino: String = r.try_get("destino")?;
        // The CHECK constraints allow only the four destinos and three states.
        let Ok(channel) = ChannelKind::parse(&destino) else { continue };
        let estado: String = r.try_get("estado")?;
        let state = match estado.as_str() {
            "no_configurado" => LocalState::NotConfigured,
            "activo" => LocalState::Active,
            "pausado_proveedor" => LocalState::PausedByProvider {
                error: r.try_get::<_, Option<String>>("motivo")?.unwrap_or_default(),
                next_probe: r.try_get::<_, Option<SystemTime>>("proxima_prueba")?.map(format::timestamp),
            },
            _ => continue,
        };
        out.push(ReplicaRow {
            replica,
            channel,
            provider: r.try_get("proveedor")?,
            state,
            since: format::timestamp(r.try_get("desde")?),
            seen_at: format::timestamp(r.try_get("visto_en")?),
        });
    }
    Ok(Some(Snapshot { now, rows: out }))
}

/// One statement: this replica's rows (all channels, the heartbeat stamped by the database's clock), and the rows
/// of replicas silent for longer than [`FORGET_AFTER`] deleted.
const RECORD: &str = "
    WITH olvido AS (
        DELETE FROM cantina_notify_estado_canales
        WHERE replica <> $1 AND visto_en < now() - make_interval(secs => $8))
    INSERT INTO cantina_notify_estado_canales
        (replica, destino, configurado, proveedor, estado, motivo, desde, proxima_prueba, visto_en)
    SELECT $1, t.destino, t.estado <> 'no_configurado', t.proveedor, t.estado, t.motivo, t.desde, t.proxima, now()
    FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[])
         AS t(destino, proveedor, estado, motivo, desde, proxima)
    ON CONFLICT (replica, destino) DO UPDATE SET
        configurado = excluded.configurado, proveedor = excluded.proveedor, estado = excluded.estado,
        motivo = excluded.motivo, desde = excluded.desde, proxima_prueba = excluded.proxima_prueba,
        visto_en = excluded.visto_en";

/// Records this replica's channels (and serves as its heartbeat).
pub async fn record(conn: &deadpool_postgres::Client, replica: &str, rows: &[LocalRow]) -> Result<(), DbError> {
    let destinos: Vec<&str> = rows.iter().map(|r| r.channel.destino()).collect();
    let providers: Vec<Option<&str>> = rows.iter().map(|r| r.provider.as_deref()).collect();
    let estados: Vec<&str> = rows.iter().map(|r| r.state.as_db()).collect();
    let motivos: Vec<Option<String>> = rows
        .iter()
        .map(|r| match &r.state {
            // Cleaned so that any provider text can be stored; masked where it is shown.
            LocalState::PausedByProvider { error, .. } => Some(crate::channels::provider_text::clean_reason(error)),
            _ => None,
        })
        .collect();
    let desde: Vec<SystemTime> = rows.iter().map(|r| SystemTime::from(r.since)).collect();
    let proxima: Vec<Option<SystemTime>> = rows
        .iter()
        .map(|r| match &r.state {
            LocalState::PausedByProvider { next_probe, .. } => next_probe.map(SystemTime::from),
            _ => None,
        })
        .collect();
    let forget = FORGET_AFTER.as_secs_f64();
    let stmt = conn.prepare_cached(RECORD).await?;
    conn.execute(&stmt, &[&replica, &destinos, &providers, &estados, &motivos, &desde, &proxima, &forget]).await?;
    Ok(())
}

/// A replica stopping removes its rows: the views then stop counting it at once.
pub async fn forget(conn: &deadpool_postgres::Client, replica: &str) -> Result<(), DbError> {
    conn.execute("DELETE FROM cantina_notify_estado_canales WHERE replica = $1", &[&replica]).await?;
    Ok(())
}
