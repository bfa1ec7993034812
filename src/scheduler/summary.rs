//! The staff's daily summary (`resumen_diario`, `CANTINA__SCHEDULER__RESUMEN_DIARIO`, default `0 21 * * *`): one
//! email to each of `CANTINA__RESUMEN_DIARIO__DESTINATARIOS` (off when empty: no schedule, no ledger rows) with
//! the requests of the reported day by type × channel × state, the failures grouped by reason, the paused
//! channels, the open staff alerts and the cards under their low-balance threshold.
//!
//! **Period.** A firing reports the whole local calendar day (America/Asuncion) *before* the day of its scheduled
//! instant: the 21:00 run of Tuesday 24/11 reports Monday 23/11, 00:00–24:00. A finished day's figures no longer
//! move (requests created that evening may still be retrying at 21:00), they compare day to day, and they are the
//! "yesterday's counts" the issue asks for. The subject and the first line name the day. Paused channels, open
//! alerts and cards are a snapshot at the moment the email is built (its time is printed). A retry or a catch-up
//! after midnight still reports the day of the scheduled firing.
//!
//! **Exactly once per recipient.** The run is claimed in the ledger like every schedule (one replica runs it).
//! Each recipient then gets its own ledger row (`programa` = `resumen_diario/<hash of the address>`, same
//! `programada_en`), claimed before the send and marked `completada` after it: a run that failed for one recipient
//! (a transient or configuration error: the row is `fallida`) is retried by the ledger and sends only to those
//! still missing. A recipient the provider refuses for good (a 5xx for the address) is recorded `omitida` with the
//! reason and not retried. A replica that dies between the provider's acceptance and the ledger write leaves its
//! row `en_curso`; a retry re-sends to that recipient (at least once rather than at most once) once the row is past
//! the ledger's stale limit, whatever the replica's name; before that it is reported "en curso", not as sent, and
//! the run fails so the ledger retries. While an operator has paused the email channel nothing is sent: each
//! recipient's row is `fallida` with the pause as reason, and the ledger retries.
//!
//! `cantina-notify sweep resumen_diario` builds and sends it now (the day before today), outside the ledger.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use deadpool_postgres::Pool;
use jiff::civil::{Date, Weekday};
use jiff::{Timestamp, Zoned};
use sailfish::TemplateSimple;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Clock, asuncion};
use crate::channels::{Channel, Channels, SendError, StaffEmail};
use crate::config::Settings;
use crate::db::DbError;
use crate::domain::{ChannelKind, EmailAddress, Guaranies, NotificationType};

/// Reasons listed (the most frequent first); the rest are counted.
pub const MAX_MOTIVOS: usize = 10;
/// Example request ids per reason.
pub const MAX_EJEMPLOS: usize = 3;
/// Open alerts listed.
pub const MAX_ALERTAS: usize = 10;
/// Cards under their threshold listed (the lowest balances first); the total is always given.
pub const MAX_TARJETAS: usize = 25;
/// A reason longer than this is cut in the email (the request keeps the whole text).
const MAX_MOTIVO_CHARS: usize = 240;

const DEFAULT_ASUNTO: &str = "Cantina Tita: resumen de notificaciones del {fecha}";

/// `settings.resumen_diario` (`CANTINA__RESUMEN_DIARIO__…`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct SummarySettings {
    /// Comma-separated staff addresses; empty: no summary.
    #[serde(deserialize_with = "crate::config::string_or_list")]
    pub destinatarios: Vec<String>,
    /// Subject; `{fecha}` is replaced by the reported day (dd/mm/aaaa), which is appended when absent.
    pub asunto: Option<String>,
}

impl SummarySettings {
    /// The parsed recipients, deduplicated, or every problem naming the key.
    pub fn recipients(&self) -> Result<Vec<EmailAddress>, Vec<String>> {
        let mut out: Vec<EmailAddress> = Vec::new();
        let mut errors = Vec::new();
        for (i, raw) in self.destinatarios.iter().enumerate() {
            match EmailAddress::parse(Some(raw)) {
                Ok(a) if !out.contains(&a) => out.push(a),
                Ok(_) => {}
                Err(e) => {
                    errors.push(format!("CANTINA__RESUMEN_DIARIO__DESTINATARIOS: address {} is invalid: {e}", i + 1))
                }
            }
        }
        if errors.is_empty() { Ok(out) } else { Err(errors) }
    }
}

/// Start-up validation (addresses and subject), naming the keys.
pub fn validate(settings: &SummarySettings) -> Vec<String> {
    let mut errors = settings.recipients().err().unwrap_or_default();
    if let Some(a) = &settings.asunto
        && (a.contains(['\r', '\n']) || a.trim().is_empty() || a.chars().count() > 200)
    {
        errors.push("CANTINA__RESUMEN_DIARIO__ASUNTO: must be one line of 1 to 200 characters".into());
    }
    errors
}

/// With recipients, the email channel must exist (`EMAIL_BACKEND`); checked at start-up.
pub fn check_channel(settings: &SummarySettings, channels: &Channels) -> Result<(), String> {
    if settings.destinatarios.is_empty() || channels.get(ChannelKind::Email).is_some() {
        return Ok(());
    }
    Err("CANTINA__RESUMEN_DIARIO__DESTINATARIOS: the daily summary is an email, but no email channel is configured \
         (EMAIL_BACKEND); configure one or leave the recipients empty"
        .into())
}

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

const COUNTS: &str = "
    SELECT tipo::text, destino::text, estado::text, count(*)::bigint
    FROM solicitudes_notificacion
    WHERE fecha_solicitud >= $1 AND fecha_solicitud < $2
    GROUP BY 1, 2, 3";

// A failure, as `stats` counts it: a request that ended `Error`, or one `Enviado` whose delivery receipt said
// `failed`. Grouped here by the raw reason; the reasons are masked and regrouped in Rust ([`group_reasons`]), since
// two raw reasons that differ only in the address they quote are one reason once masked.
const FAILURES: &str = "
    SELECT motivo, count(*)::bigint AS n,
           array_agg(DISTINCT coalesce(destino::text, '(sin canal)')) AS destinos,
           (array_agg(id_solicitud ORDER BY id_solicitud))[1:$3::int] AS ejemplos,
           count(*) FILTER (WHERE estado = 'Enviado')::bigint AS recibos
    FROM (SELECT coalesce(nullif(btrim(ultimo_error), ''), '(sin motivo registrado)') AS motivo, destino, id_solicitud,
                 estado
          FROM solicitudes_notificacion
          WHERE (estado = 'Error' OR (estado = 'Enviado' AND estado_entrega = 'failed'))
            AND fecha_solicitud >= $1 AND fecha_solicitud < $2) f
    GROUP BY motivo";

// `to_regclass` first: the pause table comes with migration 0008, which an older database may not have.
const PAUSES: &str = "
    SELECT destino::text, motivo::text, pausado_por::text, pausado_en
    FROM cantina_notify_canales_pausados ORDER BY destino";

const ALERTS: &str = "
    SELECT tipo::text, estado::text, coalesce(mensaje, '')::text, fecha_creacion, count(*) OVER ()::bigint
    FROM alertas_sistema
    WHERE estado IN ('Pendiente', 'Leida')
    ORDER BY fecha_creacion DESC NULLS LAST, id_alerta DESC
    LIMIT $1";

const CARDS: &str = "
    SELECT t.nro_tarjeta::text, nullif(btrim(concat_ws(' ', h.nombre, h.apellido)), '') AS alumno, t.saldo_actual,
           CASE WHEN t.saldo_alerta > 0 THEN t.saldo_alerta ELSE $1 END AS umbral, count(*) OVER ()::bigint
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
        let motivo = crate::ops::mask::text(&m.motivo);
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
                motivo: crate::ops::mask::text(&error),
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
        let conteos = tx
            .query(COUNTS, &[&start, &end])
            .await?
            .iter()
            .map(|r| Conteo { tipo: r.get(0), destino: r.get(1), estado: r.get(2), n: r.get(3) })
            .collect();
        let rows = tx.query(FAILURES, &[&start, &end, &i32::try_from(MAX_EJEMPLOS).unwrap_or(3)]).await?;
        let recibos_fallidos = rows.iter().map(|r| r.get::<_, i64>(4)).sum();
        let (motivos, motivos_total) = group_reasons(
            rows.iter()
                .map(|r| Motivo { motivo: r.get(0), n: r.get(1), destinos: r.get(2), ejemplos: r.get(3) })
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
        let alertas_total = rows.first().map_or(0, |r| r.get(4));
        let alertas = rows
            .iter()
            .map(|r| Alerta {
                tipo: r.get(0),
                estado: r.get(1),
                mensaje: r.get(2),
                creada: r.get::<_, Option<SystemTime>>(3).map(ts),
            })
            .collect();
        let rows = tx.query(CARDS, &[&umbral_defecto, &limit(MAX_TARJETAS)]).await?;
        let tarjetas_total = rows.first().map_or(0, |r| r.get(4));
        let tarjetas = rows
            .iter()
            .map(|r| TarjetaBaja { nro_tarjeta: r.get(0), alumno: r.get(1), saldo: r.get(2), umbral: r.get(3) })
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

// ---------------------------------------------------------------------------------------------------------------
// Rendering (pure).

/// States in the order of the table's columns.
pub const ESTADOS: [&str; 4] = ["Enviado", "Pendiente", "Error", "Omitido"];

/// The rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedSummary {
    pub subject: String,
    pub html: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot render the daily summary: {0}")]
pub struct SummaryRenderError(#[from] sailfish::RenderError);

/// One row of the counts table: a (type, channel) with its count per state of [`ESTADOS`] (and any other).
#[derive(Debug, Clone)]
struct Fila {
    tipo: String,
    canal: String,
    por_estado: [i64; 4],
    total: i64,
}

struct MotivoVista {
    n: i64,
    motivo: String,
    canales: String,
    ejemplos: String,
}

struct PausaVista {
    canal: String,
    desde: String,
    por: String,
    motivo: String,
}

struct AlertaVista {
    fecha: String,
    tipo: String,
    estado: String,
    mensaje: String,
}

struct TarjetaVista {
    alumno: String,
    tarjeta: String,
    saldo: String,
    umbral: String,
}

/// What the templates show, every value already formatted.
struct Vista {
    titulo: String,
    periodo: String,
    corte: String,
    total: i64,
    totales: String,
    filas: Vec<Fila>,
    ancho_tipo: usize,
    ancho_canal: usize,
    /// Each section's headline: `ninguno`, a count, or a count and what is shown.
    fallos_titulo: String,
    motivos: Vec<MotivoVista>,
    motivos_restantes: i64,
    pausas_titulo: String,
    pausas: Vec<PausaVista>,
    alertas_titulo: String,
    alertas: Vec<AlertaVista>,
    tarjetas_titulo: String,
    tarjetas: Vec<TarjetaVista>,
    umbral_defecto: String,
}

fn plural(n: i64, uno: &str, varios: &str) -> String {
    if n == 1 { format!("1 {uno}") } else { format!("{n} {varios}") }
}

/// `ninguna`, `3`, or `30 (se muestran las 25 …)`.
fn titulo_lista(total: i64, mostradas: usize, ninguno: &str, cuales: &str) -> String {
    let mostradas = i64::try_from(mostradas).unwrap_or(i64::MAX);
    if total == 0 {
        ninguno.to_string()
    } else if total > mostradas {
        format!("{total} (se muestran las {mostradas} {cuales})")
    } else {
        total.to_string()
    }
}

#[derive(TemplateSimple)]
#[template(path = "email/resumen_diario.html.stpl")]
struct Html<'a> {
    v: &'a Vista,
}

#[derive(TemplateSimple)]
#[template(path = "email/resumen_diario.txt.stpl")]
struct Text<'a> {
    v: &'a Vista,
}

fn dia_semana(d: Date) -> &'static str {
    match d.weekday() {
        Weekday::Monday => "lunes",
        Weekday::Tuesday => "martes",
        Weekday::Wednesday => "miércoles",
        Weekday::Thursday => "jueves",
        Weekday::Friday => "viernes",
        Weekday::Saturday => "sábado",
        Weekday::Sunday => "domingo",
    }
}

/// `23/11/2026`
pub fn fecha(d: Date) -> String {
    d.strftime("%d/%m/%Y").to_string()
}

/// `24/11/2026 21:00`, in America/Asuncion.
fn hora_local(t: Timestamp) -> String {
    let z: Zoned = t.to_zoned(asuncion());
    z.strftime("%d/%m/%Y %H:%M").to_string()
}

fn etiqueta_tipo(tipo: Option<&str>) -> String {
    match tipo {
        None => "Manual (POS)".into(),
        Some(t) => NotificationType::ALL.into_iter().find(|k| k.as_str() == t).map_or(t, |k| k.label()).into(),
    }
}

fn cortar(s: &str, max: usize) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

/// The subject: `asunto` (or the default) with `{fecha}` replaced, or the date appended when it has none.
pub fn subject(asunto: Option<&str>, dia: Date) -> String {
    let asunto = asunto.map(str::trim).filter(|a| !a.is_empty()).unwrap_or(DEFAULT_ASUNTO);
    let f = fecha(dia);
    if asunto.contains("{fecha}") { asunto.replace("{fecha}", &f) } else { format!("{asunto} ({f})") }
}

fn vista(d: &SummaryData) -> Vista {
    let mut filas: Vec<Fila> = Vec::new();
    for c in &d.conteos {
        let tipo = etiqueta_tipo(c.tipo.as_deref());
        let canal = c.destino.clone().unwrap_or_else(|| "(sin canal)".into());
        let i = match filas.iter().position(|f| f.tipo == tipo && f.canal == canal) {
            Some(i) => i,
            None => {
                filas.push(Fila { tipo, canal, por_estado: [0; 4], total: 0 });
                filas.len() - 1
            }
        };
        let f = &mut filas[i];
        // The four states are all there are (the column's CHECK); another would count in the total only.
        if let Some(j) = ESTADOS.iter().position(|e| *e == c.estado) {
            f.por_estado[j] += c.n;
        }
        f.total += c.n;
    }
    filas.sort_by(|a, b| (&a.tipo, &a.canal).cmp(&(&b.tipo, &b.canal)));
    let mut por_estado = [0_i64; 4];
    for f in &filas {
        for (t, n) in por_estado.iter_mut().zip(f.por_estado) {
            *t += n;
        }
    }
    let total: i64 = filas.iter().map(|f| f.total).sum();
    let totales = ESTADOS.iter().zip(por_estado).map(|(e, n)| format!("{e}: {n}")).collect::<Vec<_>>().join(" · ");
    let ancho_tipo = filas.iter().map(|f| f.tipo.chars().count()).chain([4]).max().unwrap_or(4);
    let ancho_canal = filas.iter().map(|f| f.canal.chars().count()).chain([5]).max().unwrap_or(5);
    let motivos = d
        .motivos
        .iter()
        .map(|m| MotivoVista {
            n: m.n,
            motivo: cortar(&m.motivo, MAX_MOTIVO_CHARS),
            canales: m.destinos.join(", "),
            ejemplos: m.ejemplos.iter().map(|id| format!("#{id}")).collect::<Vec<_>>().join(", "),
        })
        .collect();
    let listados: i64 = d.motivos.iter().map(|m| m.n).sum();
    let en_error = por_estado[2];
    let fallos = en_error + d.recibos_fallidos;
    Vista {
        titulo: format!("Resumen de notificaciones del {} {}", dia_semana(d.dia), fecha(d.dia)),
        periodo: format!(
            "{} {}, de 00:00 a 24:00 (hora de Asunción); estado actual de las solicitudes creadas ese día",
            dia_semana(d.dia),
            fecha(d.dia)
        ),
        corte: hora_local(d.corte),
        total,
        totales,
        filas,
        ancho_tipo,
        ancho_canal,
        fallos_titulo: if fallos == 0 {
            "ninguno".into()
        } else if d.recibos_fallidos == 0 {
            format!(
                "{} en Error, {}",
                plural(fallos, "solicitud", "solicitudes"),
                plural(d.motivos_total, "motivo", "motivos")
            )
        } else {
            format!(
                "{} ({} en Error, {} no {} según el recibo del proveedor), {}",
                plural(fallos, "solicitud", "solicitudes"),
                en_error,
                plural(d.recibos_fallidos, "enviada", "enviadas"),
                if d.recibos_fallidos == 1 { "entregada" } else { "entregadas" },
                plural(d.motivos_total, "motivo", "motivos")
            )
        },
        motivos,
        motivos_restantes: (fallos - listados).max(0),
        pausas_titulo: match &d.pausas {
            None => "no se pudo consultar (falta la migración 0008)".into(),
            Some(ps) if ps.is_empty() => "ninguno".into(),
            Some(ps) => ps.len().to_string(),
        },
        pausas: d
            .pausas
            .iter()
            .flatten()
            .map(|p| PausaVista {
                canal: p.destino.clone(),
                desde: hora_local(p.pausado_en),
                por: p.pausado_por.clone(),
                motivo: cortar(&p.motivo, MAX_MOTIVO_CHARS),
            })
            .collect(),
        alertas_titulo: titulo_lista(d.alertas_total, d.alertas.len(), "ninguna", "más recientes"),
        alertas: d
            .alertas
            .iter()
            .map(|a| AlertaVista {
                fecha: a.creada.map_or_else(|| "(sin fecha)".into(), hora_local),
                tipo: a.tipo.clone(),
                estado: a.estado.clone(),
                mensaje: cortar(&a.mensaje, MAX_MOTIVO_CHARS),
            })
            .collect(),
        tarjetas_titulo: titulo_lista(d.tarjetas_total, d.tarjetas.len(), "ninguna", "de menor saldo"),
        tarjetas: d
            .tarjetas
            .iter()
            .map(|t| TarjetaVista {
                alumno: t.alumno.clone().unwrap_or_else(|| "(sin alumno)".into()),
                tarjeta: t.nro_tarjeta.clone(),
                saldo: Guaranies(t.saldo).to_string(),
                umbral: Guaranies(t.umbral).to_string(),
            })
            .collect(),
        umbral_defecto: Guaranies(d.umbral_defecto).to_string(),
    }
}

/// Plain text as it travels: no trailing spaces, at most one blank line in a row (the templates' `<% %>` lines
/// leave blank lines behind), one final newline.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = false;
    for line in text.lines().map(str::trim_end) {
        if line.is_empty() {
            blank = !out.is_empty();
            continue;
        }
        if blank {
            out.push('\n');
            blank = false;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Renders the email (HTML and plain text) for `data`.
pub fn render(data: &SummaryData, asunto: Option<&str>) -> Result<RenderedSummary, SummaryRenderError> {
    let v = vista(data);
    Ok(RenderedSummary {
        subject: subject(asunto, data.dia),
        html: Html { v: &v }.render_once()?,
        text: tidy(&Text { v: &v }.render_once()?),
    })
}

// ---------------------------------------------------------------------------------------------------------------
// Sending.

/// What one run did, per recipient (addresses masked).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReport {
    pub dia: Option<Date>,
    pub enviados: Vec<String>,
    /// Sent by an earlier run of the same firing.
    pub ya_enviados: Vec<String>,
    /// Refused for good by an earlier run of the same firing.
    pub ya_rechazados: Vec<String>,
    /// Claimed by an earlier run that never recorded the outcome, less than the ledger's stale limit ago: not known
    /// to be sent; the ledger retries the firing and takes the recipient over once the limit has passed.
    pub en_curso: Vec<String>,
    /// Not sent because an operator paused the email channel (the reason): the ledger retries them.
    pub pausados: Vec<String>,
    pub pausa: Option<String>,
    /// Refused for good: not retried.
    pub rechazados: Vec<(String, String)>,
    /// Failed this time: the ledger retries them.
    pub fallidos: Vec<(String, String)>,
    /// Dry run: built, not sent.
    pub simulados: Vec<String>,
}

impl SendReport {
    pub fn ok(&self) -> bool {
        self.fallidos.is_empty() && self.rechazados.is_empty() && self.en_curso.is_empty() && self.pausados.is_empty()
    }
}

/// `resumen del 23/11/2026: enviado a a***@x.py; …` (the ledger's `detalle` and the CLI's output).
impl fmt::Display for SendReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "resumen del {}", self.dia.map(fecha).unwrap_or_default())?;
        let mut parts = Vec::new();
        if !self.enviados.is_empty() {
            parts.push(format!("enviado a {}", self.enviados.join(", ")));
        }
        if !self.simulados.is_empty() {
            parts.push(format!("simulacro (CANTINA__DISPATCH__DRY_RUN), no enviado a {}", self.simulados.join(", ")));
        }
        if !self.ya_enviados.is_empty() {
            parts.push(format!("ya enviado antes a {}", self.ya_enviados.join(", ")));
        }
        if !self.ya_rechazados.is_empty() {
            parts.push(format!("rechazado antes (no se reintenta) para {}", self.ya_rechazados.join(", ")));
        }
        if !self.en_curso.is_empty() {
            parts.push(format!(
                "en curso sin confirmar (una ejecución anterior no registró el resultado; se reintenta) para {}",
                self.en_curso.join(", ")
            ));
        }
        if !self.pausados.is_empty() {
            parts.push(format!(
                "no enviado a {} ({}; se reintenta)",
                self.pausados.join(", "),
                self.pausa.as_deref().unwrap_or("canal Email pausado por un operador")
            ));
        }
        for (to, e) in &self.rechazados {
            parts.push(format!("rechazado para {to} (no se reintenta): {e}"));
        }
        for (to, e) in &self.fallidos {
            parts.push(format!("falló para {to}: {e}"));
        }
        if parts.is_empty() {
            parts.push("sin destinatarios".into());
        }
        write!(f, ": {}", parts.join("; "))
    }
}

/// The configured summary: recipients, subject, threshold and the email adapter.
#[derive(Clone)]
pub struct DailySummary {
    pool: Pool,
    recipients: Vec<EmailAddress>,
    asunto: Option<String>,
    umbral_defecto: i64,
    email: Arc<dyn Channel>,
}

/// The ledger's `programa` of one recipient's email: stable per address, without the address itself.
pub fn recipient_programa(to: &EmailAddress) -> String {
    let digest = Sha256::digest(to.as_str().to_ascii_lowercase().as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("resumen_diario/{hex}")
}

// An `en_curso` row is taken over when another replica left it, or when it is older than the ledger's stale limit
// whoever left it: a container restarted in the same pod keeps its name (HOSTNAME:pid, and the binary is PID 1).
const CLAIM_RECIPIENT: &str = "
    INSERT INTO cantina_notify_ejecuciones (programa, programada_en, estado, replica, iniciada_en, detalle)
    VALUES ($1, $2, 'en_curso', $3, $4, $5)
    ON CONFLICT (programa, programada_en) DO UPDATE
        SET estado = 'en_curso', replica = $3, iniciada_en = $4, terminada_en = NULL,
            detalle = CASE WHEN cantina_notify_ejecuciones.estado = 'fallida'
                           THEN 'reintento: ' || coalesce(cantina_notify_ejecuciones.detalle, '')
                           ELSE 'reclamada: la réplica ' || coalesce(cantina_notify_ejecuciones.replica, '?')
                                || ' no terminó' END
        WHERE cantina_notify_ejecuciones.estado = 'fallida'
           OR (cantina_notify_ejecuciones.estado = 'en_curso'
               AND (cantina_notify_ejecuciones.replica IS DISTINCT FROM $3
                    OR cantina_notify_ejecuciones.iniciada_en < $6))
    RETURNING estado";

const RECIPIENT_STATE: &str =
    "SELECT estado FROM cantina_notify_ejecuciones WHERE programa = $1 AND programada_en = $2";

// The table comes with migration 0008, which an older database may not have (see [`collect`]).
const EMAIL_PAUSED: &str = "
    SELECT pausado_por::text, motivo::text FROM cantina_notify_canales_pausados WHERE destino = 'Email'";

const FINISH_RECIPIENT: &str = "
    UPDATE cantina_notify_ejecuciones
    SET estado = $4, terminada_en = $5, solicitudes = $6, detalle = $7
    WHERE programa = $1 AND programada_en = $2 AND replica = $3 AND estado = 'en_curso'";

impl DailySummary {
    /// `None` when no recipients are configured (the summary is off); `Err` names the keys to fix.
    pub fn new(
        pool: Pool,
        settings: &SummarySettings,
        umbral_defecto: i64,
        channels: &Channels,
    ) -> Result<Option<DailySummary>, String> {
        let recipients = settings.recipients().map_err(|e| e.join("; "))?;
        if recipients.is_empty() {
            return Ok(None);
        }
        check_channel(settings, channels)?;
        let email = channels.get(ChannelKind::Email).cloned().ok_or("no email channel")?;
        Ok(Some(DailySummary { pool, recipients, asunto: settings.asunto.clone(), umbral_defecto, email }))
    }

    /// Builds the summary of the day before `at`'s local date, as of `now`.
    pub async fn build(&self, at: Timestamp, now: Timestamp) -> Result<(Date, RenderedSummary), String> {
        let day = report_day(at);
        let data = collect(&self.pool, day, now, self.umbral_defecto).await.map_err(|e| e.to_string())?;
        let rendered = render(&data, self.asunto.as_deref()).map_err(|e| e.to_string())?;
        Ok((day, rendered))
    }

    /// `Some(reason)` when an operator paused the email channel (`cantina-notify channel pause email`): the
    /// summary must not go out through a channel staff closed. A database without the pause table has no pauses.
    async fn email_paused(&self) -> Result<Option<String>, String> {
        let conn = self.pool.get().await.map_err(|e| DbError::from(e).to_string())?;
        let has_pauses: bool = conn
            .query_one("SELECT to_regclass('cantina_notify_canales_pausados') IS NOT NULL", &[])
            .await
            .map_err(|e| DbError::from(e).to_string())?
            .get(0);
        if !has_pauses {
            return Ok(None);
        }
        let row = conn.query_opt(EMAIL_PAUSED, &[]).await.map_err(|e| DbError::from(e).to_string())?;
        Ok(row.map(|r| {
            let por: Option<String> = r.get(0);
            let motivo: Option<String> = r.get(1);
            format!(
                "canal Email pausado por {}: {}",
                por.as_deref().unwrap_or("un operador"),
                crate::ops::mask::text(motivo.as_deref().unwrap_or(""))
            )
        }))
    }

    fn is_dry_run(&self) -> bool {
        self.email.provider() == crate::channels::dry_run::DRY_RUN_PROVIDER
    }

    async fn send_one(&self, to: &EmailAddress, key: String, r: &RenderedSummary) -> Result<(), SendError> {
        let mail = StaffEmail {
            to: to.clone(),
            subject: r.subject.clone(),
            html: r.html.clone(),
            text: r.text.clone(),
            idempotency_key: key,
        };
        self.email.send_staff(&mail).await.map(|_| ())
    }

    /// `cantina-notify sweep resumen_diario`: the summary of yesterday (relative to `now`), sent now to every
    /// recipient, outside the ledger.
    pub async fn send_now(&self, now: Timestamp) -> Result<SendReport, String> {
        let (day, rendered) = self.build(now, now).await?;
        let mut report = SendReport { dia: Some(day), ..Default::default() };
        let pausa = if self.is_dry_run() { None } else { self.email_paused().await? };
        if let Some(p) = &pausa {
            tracing::warn!(reason = %p, "daily summary not sent: the email channel is paused by an operator");
            report.pausa = Some(p.clone());
        }
        for to in &self.recipients {
            if self.is_dry_run() {
                report.simulados.push(to.masked());
                continue;
            }
            if pausa.is_some() {
                report.pausados.push(to.masked());
                continue;
            }
            let key = format!("resumen_diario:{day}:manual:{}:{}", now.as_second(), recipient_programa(to));
            match self.send_one(to, key, &rendered).await {
                Ok(()) => report.enviados.push(to.masked()),
                Err(e) => report.fallidos.push((to.masked(), e.to_string())),
            }
        }
        Ok(report)
    }

    /// The scheduled run of the firing `at` (already claimed in the ledger by this replica): one email per
    /// recipient not yet served, each claimed in its own ledger row. `Ok((sent, detail))` or `Err(detail)`.
    pub async fn run_scheduled(
        &self,
        at: Timestamp,
        replica: &str,
        clock: &dyn Clock,
    ) -> Result<(usize, Option<String>), String> {
        let (day, rendered) = self.build(at, clock.now()).await?;
        let mut report = SendReport { dia: Some(day), ..Default::default() };
        let pausa = if self.is_dry_run() { None } else { self.email_paused().await? };
        if let Some(p) = &pausa {
            tracing::warn!(reason = %p, "daily summary not sent: the email channel is paused by an operator; the ledger retries it");
            report.pausa = Some(p.clone());
        }
        let at_st = SystemTime::from(at);
        for to in &self.recipients {
            let programa = recipient_programa(to);
            let masked = to.masked();
            let now = clock.now();
            let stale = SystemTime::from(now.checked_sub(super::ledger::STALE_AFTER).unwrap_or(now));
            let conn = self.pool.get().await.map_err(|e| DbError::from(e).to_string())?;
            let claimed = conn
                .query(CLAIM_RECIPIENT, &[&programa, &at_st, &replica, &SystemTime::from(now), &masked, &stale])
                .await
                .map_err(|e| DbError::from(e).to_string())?;
            if claimed.is_empty() {
                // Served by an earlier run of this firing: sent, or refused for good.
                let estado: Option<String> = conn
                    .query_opt(RECIPIENT_STATE, &[&programa, &at_st])
                    .await
                    .map_err(|e| DbError::from(e).to_string())?
                    .map(|r| r.get(0));
                match estado.as_deref() {
                    Some("omitida") => report.ya_rechazados.push(masked),
                    Some("completada") => report.ya_enviados.push(masked),
                    // `en_curso` of a run that did not record its outcome (not yet stale): not known to be sent.
                    _ => report.en_curso.push(masked),
                }
                continue;
            }
            drop(conn);
            let (estado, sent, detalle) = if self.is_dry_run() {
                report.simulados.push(masked.clone());
                ("completada", 0, format!("{masked}: simulacro, no enviado"))
            } else if let Some(p) = &pausa {
                report.pausados.push(masked.clone());
                ("fallida", 0, format!("{masked}: no enviado, {p}"))
            } else {
                match self.send_one(to, format!("resumen_diario:{day}:{programa}"), &rendered).await {
                    Ok(()) => {
                        tracing::info!(to = %masked, day = %day, "daily summary sent");
                        report.enviados.push(masked.clone());
                        ("completada", 1, format!("{masked}: enviado"))
                    }
                    Err(e @ (SendError::Permanent { .. } | SendError::OptedOut { .. })) => {
                        tracing::warn!(to = %masked, error = %e, "daily summary refused for this recipient");
                        report.rechazados.push((masked.clone(), e.to_string()));
                        ("omitida", 0, format!("{masked}: rechazado: {e}"))
                    }
                    Err(e) => {
                        tracing::warn!(to = %masked, error = %e, "daily summary send failed; the ledger retries it");
                        report.fallidos.push((masked.clone(), e.to_string()));
                        ("fallida", 0, format!("{masked}: {e}"))
                    }
                }
            };
            self.pool
                .get()
                .await
                .map_err(|e| DbError::from(e).to_string())?
                .execute(
                    FINISH_RECIPIENT,
                    &[&programa, &at_st, &replica, &estado, &SystemTime::from(clock.now()), &sent, &detalle],
                )
                .await
                .map_err(|e| DbError::from(e).to_string())?;
        }
        if report.ok() { Ok((report.enviados.len(), Some(report.to_string()))) } else { Err(report.to_string()) }
    }
}

/// `cantina-notify sweep resumen_diario`: builds the configured email adapter (dry run honoured) and sends
/// yesterday's summary now to every recipient. `Err` names what to configure.
pub async fn send_from_cli(settings: &Settings, umbral_defecto: i64, pool: Pool) -> Result<SendReport, String> {
    if settings.resumen_diario.destinatarios.is_empty() {
        return Err("CANTINA__RESUMEN_DIARIO__DESTINATARIOS: no recipients configured; the daily summary is off".into());
    }
    let providers = settings.channel_providers().map_err(|e| e.join("; "))?;
    let channels = Channels::from_settings(settings, &providers, &pool).map_err(|e| e.join("; "))?;
    let channels = if settings.dispatch.dry_run { channels.dry_run() } else { channels };
    let summary = DailySummary::new(pool, &settings.resumen_diario, umbral_defecto, &channels)?
        .ok_or("CANTINA__RESUMEN_DIARIO__DESTINATARIOS: no recipients configured")?;
    summary.send_now(Timestamp::now()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn data() -> SummaryData {
        let c = |tipo: Option<&str>, destino: Option<&str>, estado: &str, n: i64| Conteo {
            tipo: tipo.map(String::from),
            destino: destino.map(String::from),
            estado: estado.into(),
            n,
        };
        SummaryData {
            dia: Date::constant(2026, 11, 23),
            corte: at("2026-11-25T00:00:00Z"), // 24/11 21:00 local
            conteos: vec![
                c(Some("recarga_exitosa"), Some("Email"), "Enviado", 1250),
                c(Some("recarga_exitosa"), Some("Email"), "Error", 2),
                c(Some("recarga_exitosa"), Some("SMS"), "Enviado", 40),
                c(Some("recarga_exitosa"), Some("SMS"), "Pendiente", 1),
                c(Some("saldo_bajo"), Some("WhatsApp"), "Omitido", 3),
                c(Some("saldo_bajo"), Some("WhatsApp"), "Error", 1),
                c(None, Some("Email"), "Enviado", 2),
            ],
            motivos: vec![
                Motivo {
                    motivo: "SMTP 550 de smtp.example.com:587: 5.1.1 <a***@example.com> no existe".into(),
                    n: 2,
                    destinos: vec!["Email".into()],
                    ejemplos: vec![101, 107],
                },
                Motivo {
                    motivo: "Meta 131026: mensaje no entregable".into(),
                    n: 1,
                    destinos: vec!["WhatsApp".into()],
                    ejemplos: vec![130],
                },
            ],
            motivos_total: 2,
            recibos_fallidos: 0,
            pausas: Some(vec![Pausa {
                destino: "SMS".into(),
                motivo: "saldo de Tigo agotado".into(),
                pausado_por: "rocio".into(),
                pausado_en: at("2026-11-24T11:10:00Z"),
            }]),
            alertas: vec![Alerta {
                tipo: "SISTEMA".into(),
                estado: "Pendiente".into(),
                mensaje: "cantina-notify: canal SMS pausado".into(),
                creada: Some(at("2026-11-24T11:10:30Z")),
            }],
            alertas_total: 1,
            tarjetas: vec![
                TarjetaBaja {
                    alumno: Some("Luis Benítez".into()),
                    nro_tarjeta: "0001".into(),
                    saldo: -1500,
                    umbral: 5000,
                },
                TarjetaBaja { alumno: None, nro_tarjeta: "0099".into(), saldo: 3000, umbral: 10000 },
            ],
            tarjetas_total: 30,
            umbral_defecto: 5000,
        }
    }

    const EXPECTED_TEXT: &str = "\
Resumen de notificaciones del lunes 23/11/2026
Período: lunes 23/11/2026, de 00:00 a 24:00 (hora de Asunción); estado actual de las solicitudes creadas ese día.

SOLICITUDES DEL DÍA: 1299
Enviado: 1292 · Pendiente: 1 · Error: 3 · Omitido: 3

Tipo             Canal     Enviado  Pendiente  Error  Omitido  Total
Manual (POS)     Email           2          0      0        0      2
Recarga exitosa  Email        1250          0      2        0   1252
Recarga exitosa  SMS            40          1      0        0     41
Saldo bajo       WhatsApp        0          0      1        3      4

FALLOS: 3 solicitudes en Error, 2 motivos
- 2 × SMTP 550 de smtp.example.com:587: 5.1.1 <a***@example.com> no existe
  Canal: Email. Ejemplos: #101, #107
- 1 × Meta 131026: mensaje no entregable
  Canal: WhatsApp. Ejemplos: #130

CANALES PAUSADOS: 1
- SMS, pausado el 24/11/2026 08:10 por rocio: saldo de Tigo agotado

ALERTAS ABIERTAS: 1
- 24/11/2026 08:10 · SISTEMA · Pendiente: cantina-notify: canal SMS pausado

TARJETAS BAJO EL UMBRAL: 30 (se muestran las 2 de menor saldo)
- Luis Benítez · tarjeta 0001 · saldo Gs. -1.500 (umbral Gs. 5.000)
- (sin alumno) · tarjeta 0099 · saldo Gs. 3.000 (umbral Gs. 10.000)
Umbral por defecto: Gs. 5.000 (CANTINA__RULES__SALDO_BAJO__UMBRAL); una tarjeta con su propio monto de aviso usa ese.

Canales pausados, alertas y tarjetas: situación al 24/11/2026 21:00.
Correo automático de cantina-notify para el personal de la cantina.
";

    #[test]
    fn the_text_part_is_exact_spanish_with_guaranies_and_local_times() {
        let r = render(&data(), None).unwrap();
        assert_eq!(r.subject, "Cantina Tita: resumen de notificaciones del 23/11/2026");
        assert_eq!(r.text, EXPECTED_TEXT, "\n{}", r.text);
    }

    #[test]
    fn the_html_part_escapes_and_carries_the_same_figures() {
        let mut d = data();
        d.tarjetas[0].alumno = Some("<script>alert(1)</script>".into());
        let r = render(&d, None).unwrap();
        assert!(r.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{}", r.html);
        assert!(!r.html.contains("<script>"));
        for needle in [
            "Resumen de notificaciones del lunes 23/11/2026",
            "Gs. -1.500",
            "Gs. 10.000",
            "24/11/2026 08:10",
            "#101, #107",
            "saldo de Tigo agotado",
            "1252",
            "situación al 24/11/2026 21:00",
        ] {
            assert!(r.html.contains(needle), "missing {needle}");
        }
        assert!(r.html.starts_with("<!DOCTYPE html>"));
        assert!(r.html.contains("lang=\"es-PY\""));
    }

    #[test]
    fn an_empty_day_says_so_and_unknown_pauses_are_not_called_none() {
        let d = SummaryData {
            conteos: vec![],
            motivos: vec![],
            motivos_total: 0,
            pausas: None,
            alertas: vec![],
            alertas_total: 0,
            tarjetas: vec![],
            tarjetas_total: 0,
            ..data()
        };
        let t = render(&d, Some("Informe {fecha} de la cantina")).unwrap();
        assert_eq!(t.subject, "Informe 23/11/2026 de la cantina");
        assert!(t.text.contains("SOLICITUDES DEL DÍA: 0\nNo se creó ninguna solicitud ese día.\n"), "{}", t.text);
        assert!(t.text.contains("FALLOS: ninguno\n"), "{}", t.text);
        assert!(t.text.contains("CANALES PAUSADOS: no se pudo consultar (falta la migración 0008)\n"), "{}", t.text);
        assert!(t.text.contains("ALERTAS ABIERTAS: ninguna\n"), "{}", t.text);
        assert!(t.text.contains("TARJETAS BAJO EL UMBRAL: ninguna\n"), "{}", t.text);
        let mut d2 = d.clone();
        d2.pausas = Some(vec![]);
        assert!(render(&d2, None).unwrap().text.contains("CANALES PAUSADOS: ninguno\n"));
    }

    #[test]
    fn a_subject_without_placeholder_gets_the_date() {
        assert_eq!(subject(Some("Resumen Cantina"), Date::constant(2026, 1, 5)), "Resumen Cantina (05/01/2026)");
        assert_eq!(
            subject(Some("  "), Date::constant(2026, 1, 5)),
            "Cantina Tita: resumen de notificaciones del 05/01/2026"
        );
    }

    #[test]
    fn the_reported_day_is_the_local_day_before_the_firing() {
        // 21:00 local on Tuesday 24/11 is 00:00 UTC on the 25th.
        assert_eq!(report_day(at("2026-11-25T00:00:00Z")), Date::constant(2026, 11, 23));
        // A retry at 01:30 local on the 25th of the firing of the 24th is given the firing's instant, not now.
        assert_eq!(report_day(at("2026-11-24T03:30:00Z")), Date::constant(2026, 11, 23));
        let (start, end) = day_bounds(Date::constant(2026, 11, 23));
        assert_eq!(start, at("2026-11-23T03:00:00Z"));
        assert_eq!(end, at("2026-11-24T03:00:00Z"));
    }

    #[test]
    fn recipients_are_validated_with_the_key_and_masked() {
        let s = SummarySettings {
            destinatarios: vec!["admin@cantina.com.py".into(), "roto@".into(), "ADMIN@Cantina.com.py".into()],
            asunto: Some("dos\nlíneas".into()),
        };
        let errors = validate(&s);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("CANTINA__RESUMEN_DIARIO__DESTINATARIOS: address 2 is invalid"), "{errors:?}");
        assert!(!errors[0].contains("roto@"), "{errors:?}");
        assert!(errors[1].starts_with("CANTINA__RESUMEN_DIARIO__ASUNTO:"), "{errors:?}");
        let ok = SummarySettings { destinatarios: vec!["a@x.py".into(), "a@X.PY".into()], asunto: None };
        assert_eq!(ok.recipients().unwrap().len(), 1, "the domain is case-insensitive");
        assert!(validate(&SummarySettings::default()).is_empty());
    }

    #[test]
    fn recipient_programas_are_stable_and_do_not_show_the_address() {
        let a = EmailAddress::parse(Some("admin@cantina.com.py")).unwrap();
        let p = recipient_programa(&a);
        assert!(p.starts_with("resumen_diario/") && p.len() == "resumen_diario/".len() + 12, "{p}");
        assert!(!p.contains("admin"));
        assert_eq!(p, recipient_programa(&EmailAddress::parse(Some("Admin@cantina.com.py")).unwrap()));
        assert_ne!(p, recipient_programa(&EmailAddress::parse(Some("otro@cantina.com.py")).unwrap()));
    }

    #[test]
    fn reasons_are_masked_before_they_are_grouped() {
        let m = |motivo: &str, n: i64, destino: &str, ejemplos: &[i64]| Motivo {
            motivo: motivo.into(),
            n,
            destinos: vec![destino.into()],
            ejemplos: ejemplos.to_vec(),
        };
        let (motivos, total) = group_reasons(vec![
            m("SMTP 550: <ana.perez@example.com> no existe", 2, "Email", &[40, 12]),
            m("SMTP 550: <alberto@example.com> no existe", 1, "Email", &[7]),
            m("Twilio 21614: +595981123456 no es un móvil", 1, "SMS", &[3]),
            m("Twilio 21614: +595981123456 no es un móvil", 2, "WhatsApp", &[9, 1]),
        ]);
        assert_eq!(total, 2);
        assert_eq!(motivos[0].motivo, "SMTP 550: <a***@example.com> no existe");
        assert_eq!((motivos[0].n, motivos[0].ejemplos.as_slice()), (3, &[7, 12, 40][..]));
        assert!(!motivos[1].motivo.contains("981123456"), "{:?}", motivos[1]);
        assert_eq!(motivos[1].destinos, ["SMS", "WhatsApp"]);
        assert_eq!(motivos[1].ejemplos, [1, 3, 9]);
        let many: Vec<Motivo> = (0..15).map(|i| m(&format!("motivo {i}"), 1, "Email", &[i])).collect();
        let (motivos, total) = group_reasons(many);
        assert_eq!((motivos.len(), total), (MAX_MOTIVOS, 15));
    }

    #[test]
    fn failed_receipts_count_among_the_failures() {
        let mut d = data();
        d.recibos_fallidos = 1;
        d.motivos_total = 3;
        let t = render(&d, None).unwrap().text;
        assert!(
            t.contains(
                "FALLOS: 4 solicitudes (3 en Error, 1 enviada no entregada según el recibo del proveedor), 3 motivos\n"
            ),
            "{t}"
        );
        // The failures listed (3) are one fewer than the total: the rest is counted.
        assert!(t.contains("- 1 más, con otros motivos\n"), "{t}");
    }

    #[test]
    fn unconfirmed_and_paused_recipients_are_not_reported_as_sent() {
        let r = SendReport {
            dia: Some(Date::constant(2026, 11, 23)),
            en_curso: vec!["a***@x.py".into()],
            pausados: vec!["b***@x.py".into()],
            pausa: Some("canal Email pausado por rocio: SMTP en mantenimiento".into()),
            ..Default::default()
        };
        assert_eq!(
            r.to_string(),
            "resumen del 23/11/2026: en curso sin confirmar (una ejecución anterior no registró el resultado; se \
             reintenta) para a***@x.py; no enviado a b***@x.py (canal Email pausado por rocio: SMTP en mantenimiento; \
             se reintenta)"
        );
        assert!(!r.ok());
    }

    #[test]
    fn the_report_reads_in_spanish() {
        let r = SendReport {
            dia: Some(Date::constant(2026, 11, 23)),
            enviados: vec!["a***@x.py".into()],
            ya_enviados: vec!["b***@x.py".into()],
            fallidos: vec![("c***@x.py".into(), "SMTP: tiempo de espera agotado".into())],
            ..Default::default()
        };
        assert_eq!(
            r.to_string(),
            "resumen del 23/11/2026: enviado a a***@x.py; ya enviado antes a b***@x.py; falló para c***@x.py: SMTP: tiempo de espera agotado"
        );
        assert!(!r.ok());
    }
}
