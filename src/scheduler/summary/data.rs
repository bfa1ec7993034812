//! What the summary shows, read in one snapshot: the day's counts and failures, pauses, alerts, low cards.

use std::time::SystemTime;

use deadpool_postgres::Pool;
use jiff::Timestamp;
use jiff::civil::Date;

use crate::db::DbError;
use crate::requests::reports;
use crate::scheduler::asuncion;

use super::*;

// ---------------------------------------------------------------------------------------------------------------
// The data.

/// One (type, channel, state) count of the reported day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conteo {
    /// `None`: a manual request from the POS the service has not typed.
    pub tipo: Option<String>,
    pub destino: Option<String>,
    pub estado: String,
    pub n: i64,
}

/// Failed requests (`Error`, or `Enviado` with a `failed` receipt) sharing one reason (masked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Motivo {
    pub motivo: String,
    pub n: i64,
    pub destinos: Vec<String>,
    pub ejemplos: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pausa {
    pub destino: String,
    pub motivo: String,
    pub pausado_por: String,
    pub pausado_en: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alerta {
    pub tipo: String,
    pub estado: String,
    pub mensaje: String,
    pub creada: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarjetaBaja {
    pub alumno: Option<String>,
    pub nro_tarjeta: String,
    pub saldo: i64,
    pub umbral: i64,
}

/// Everything one summary shows; built by [`collect`], rendered by [`render`] (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryData {
    /// The reported local day.
    pub dia: Date,
    /// When the snapshot parts (pauses, alerts, cards) were read.
    pub corte: Timestamp,
    pub conteos: Vec<Conteo>,
    /// The most frequent reasons (at most [`MAX_MOTIVOS`]).
    pub motivos: Vec<Motivo>,
    /// How many distinct reasons there were.
    pub motivos_total: i64,
    /// Requests `Enviado` whose delivery receipt said `failed`: failures too, besides the `Error` ones.
    pub recibos_fallidos: i64,
    /// `None`: the pause table does not exist (migration 0008 not applied).
    pub pausas: Option<Vec<Pausa>>,
    pub alertas: Vec<Alerta>,
    pub alertas_total: i64,
    pub tarjetas: Vec<TarjetaBaja>,
    pub tarjetas_total: i64,
    /// `CANTINA__RULES__SALDO_BAJO__UMBRAL`, for cards without their own.
    pub umbral_defecto: i64,
}

/// The local day a firing at `at` reports: the one before `at`'s local date.
pub fn report_day(at: Timestamp) -> Date {
    let today = at.to_zoned(asuncion()).date();
    today.yesterday().unwrap_or(today)
}

/// `[start, end)` of a local day.
pub fn day_bounds(day: Date) -> (Timestamp, Timestamp) {
    let tz = asuncion();
    let start = day.to_zoned(tz.clone()).map(|z| z.timestamp()).unwrap_or(Timestamp::UNIX_EPOCH);
    let end = day.tomorrow().ok().and_then(|d| d.to_zoned(tz).ok()).map(|z| z.timestamp()).unwrap_or(Timestamp::MAX);
    (start, end)
}

fn ts(t: SystemTime) -> Timestamp {
    Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH)
}

// `to_regclass` first: the pause table comes with migration 0008, which an older database may not have.
const PAUSES: &str = "
    SELECT destino::text, motivo::text, pausado_por::text, pausado_en
    FROM cantina_notify_canales_pausados ORDER BY destino";

const ALERTS: &str = "
    SELECT tipo::text AS tipo, estado::text AS estado, coalesce(mensaje, '')::text AS mensaje, fecha_creacion,
           count(*) OVER ()::bigint AS total
    FROM alertas_sistema
    WHERE estado IN ('Pendiente', 'Leida')
    ORDER BY fecha_creacion DESC NULLS LAST, id_alerta DESC
    LIMIT $1";

const CARDS: &str = "
    SELECT t.nro_tarjeta::text AS nro_tarjeta, nullif(btrim(concat_ws(' ', h.nombre, h.apellido)), '') AS alumno,
           t.saldo_actual, CASE WHEN t.saldo_alerta > 0 THEN t.saldo_alerta ELSE $1 END AS umbral,
           count(*) OVER ()::bigint AS total
    FROM tarjetas t LEFT JOIN hijos h ON h.id_hijo = t.id_hijo
    WHERE t.estado = 'Activa' AND t.saldo_actual < CASE WHEN t.saldo_alerta > 0 THEN t.saldo_alerta ELSE $1 END
    ORDER BY t.saldo_actual, t.nro_tarjeta
    LIMIT $2";

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Masks each raw reason (a provider's error quotes the address: `<ana@example.com>: buzón inexistente`) and merges
/// the reasons that became equal: the most frequent [`MAX_MOTIVOS`] first, and how many distinct ones there were.
pub fn group_reasons(raw: Vec<Motivo>) -> (Vec<Motivo>, i64) {
    let mut merged: std::collections::BTreeMap<String, Motivo> = std::collections::BTreeMap::new();
    for m in raw {
        let motivo = crate::present::mask::text(&m.motivo);
        let e =
            merged.entry(motivo.clone()).or_insert_with(|| Motivo { motivo, n: 0, destinos: vec![], ejemplos: vec![] });
        e.n += m.n;
        e.destinos.extend(m.destinos);
        e.ejemplos.extend(m.ejemplos);
    }
    let total = limit(merged.len());
    let mut out: Vec<Motivo> = merged
        .into_values()
        .map(|mut m| {
            m.destinos.sort();
            m.destinos.dedup();
            m.ejemplos.sort_unstable();
            m.ejemplos.truncate(MAX_EJEMPLOS);
            m
        })
        .collect();
    out.sort_by(|a, b| b.n.cmp(&a.n).then_with(|| a.motivo.cmp(&b.motivo)));
    out.truncate(MAX_MOTIVOS);
    (out, total)
}

/// The channels a live replica has paused for a provider error, unless an operator's pause (listed already) holds
/// them too: the same merge as `channel list`.
fn provider_pauses(operator: &[Pausa], replicas: Option<&crate::channel_state::store::Snapshot>) -> Vec<Pausa> {
    let Some(snapshot) = replicas else { return Vec::new() };
    crate::channel_state::merge_all(&[], &snapshot.rows, snapshot.now)
        .into_iter()
        .filter(|(kind, _)| operator.iter().all(|p| p.destino != kind.destino()))
        .filter_map(|(kind, state)| match state {
            crate::channel_state::ChannelState::PausedByProvider { error, since, .. } => Some(Pausa {
                destino: kind.destino().to_string(),
                motivo: crate::present::mask::text(&error),
                pausado_por: "un error del proveedor".to_string(),
                pausado_en: since,
            }),
            _ => None,
        })
        .collect()
}

/// Reads the summary of `day` in one read-only snapshot; `now` is the time printed for the snapshot parts.
pub async fn collect(pool: &Pool, day: Date, now: Timestamp, umbral_defecto: i64) -> Result<SummaryData, DbError> {
    crate::db::guarded(async {
        let (start, end) = day_bounds(day);
        let (start, end) = (SystemTime::from(start), SystemTime::from(end));
        let mut conn = pool.get().await?;
        // The replicas' channel states (outside the snapshot: they are about now, like the pauses).
        let replicas = crate::channel_state::store::read(&conn).await?;
        let tx = conn
            .build_transaction()
            .read_only(true)
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .start()
            .await?;
        let conteos = reports::day_counts(&*tx, start, end)
            .await?
            .into_iter()
            .map(|c| Conteo { tipo: c.tipo, destino: c.destino, estado: c.estado, n: c.n })
            .collect();
        // Grouped by the raw reason in SQL; masked and regrouped here ([`group_reasons`]), since two raw reasons
        // that differ only in the address they quote are one reason once masked.
        let rows = reports::day_failures(&*tx, start, end, i32::try_from(MAX_EJEMPLOS).unwrap_or(3)).await?;
        let recibos_fallidos = rows.iter().map(|r| r.recibos).sum();
        let (motivos, motivos_total) = group_reasons(
            rows.into_iter()
                .map(|r| Motivo { motivo: r.motivo, n: r.n, destinos: r.destinos, ejemplos: r.ejemplos })
                .collect(),
        );
        let has_pauses: bool =
            tx.query_one("SELECT to_regclass('cantina_notify_canales_pausados') IS NOT NULL", &[]).await?.get(0);
        let pausas = if has_pauses {
            let mut pausas: Vec<Pausa> = tx
                .query(PAUSES, &[])
                .await?
                .iter()
                .map(|r| Pausa {
                    destino: r.get::<_, Option<String>>(0).unwrap_or_default(),
                    motivo: r.get::<_, Option<String>>(1).unwrap_or_default(),
                    pausado_por: r.get::<_, Option<String>>(2).unwrap_or_default(),
                    pausado_en: r.get::<_, Option<SystemTime>>(3).map_or(Timestamp::UNIX_EPOCH, ts),
                })
                .collect();
            pausas.extend(provider_pauses(&pausas, replicas.as_ref()));
            pausas.sort_by(|a, b| a.destino.cmp(&b.destino));
            Some(pausas)
        } else {
            None
        };
        let rows = tx.query(ALERTS, &[&limit(MAX_ALERTAS)]).await?;
        let alertas_total = rows.first().map_or(0, |r| r.get("total"));
        let alertas = rows
            .iter()
            .map(|r| Alerta {
                tipo: r.get("tipo"),
                estado: r.get("estado"),
                mensaje: r.get("mensaje"),
                creada: r.get::<_, Option<SystemTime>>("fecha_creacion").map(ts),
            })
            .collect();
        let rows = tx.query(CARDS, &[&umbral_defecto, &limit(MAX_TARJETAS)]).await?;
        let tarjetas_total = rows.first().map_or(0, |r| r.get("total"));
        let tarjetas = rows
            .iter()
            .map(|r| TarjetaBaja {
                nro_tarjeta: r.get("nro_tarjeta"),
                alumno: r.get("alumno"),
                saldo: r.get("saldo_actual"),
                umbral: r.get("umbral"),
            })
            .collect();
        tx.commit().await?;
        Ok(SummaryData {
            dia: day,
            corte: now,
            conteos,
            motivos,
            motivos_total,
            recibos_fallidos,
            pausas,
            alertas,
            alertas_total,
            tarjetas,
            tarjetas_total,
            umbral_defecto,
        })
    })
    .await
}
