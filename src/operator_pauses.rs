//! `cantina-notify channel pause|resume|list`: an operator closes a channel without a restart. The pause is a row of
//! `cantina_notify_canales_pausados` (migration 0008) that every running process reads each second
//! ([`crate::dispatch::Dispatcher::watch_operator_pauses`]); requests for the channel wait as `Pendiente` and drain
//! after `resume`. Every change is also appended to `cantina_notify_pausas_historial`, and staff see the pause on
//! the POS dashboard as a `SISTEMA` alert (`alertas_sistema`) that the resume resolves.

use std::time::SystemTime;

use clap::Subcommand;
use jiff::Timestamp;
use tokio_postgres::Client;

use crate::alerts::{MAX_MESSAGE_CHARS, truncate_chars};
use crate::db::DbError;
use crate::domain::ChannelKind;
use crate::present::{format, mask};

pub use crate::channel_state::OperatorPause;

/// `cantina-notify channel …` (parsed by clap in [`crate::cli`], run by [`execute`]).
#[derive(Debug, Clone, Subcommand)]
pub enum ChannelCommand {
    /// Close a channel in every running replica (within seconds); its requests wait as Pendiente.
    Pause {
        /// email, sms, whatsapp or portal.
        channel: String,
        /// Why (required; staff read it in `channel list` and the history).
        #[arg(long, required = true)]
        reason: String,
        /// Who pauses it (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Reopen a paused channel; the requests that waited are sent.
    Resume {
        /// email, sms, whatsapp or portal.
        channel: String,
        /// Who resumes it (default: $USER).
        #[arg(long)]
        by: Option<String>,
        /// Optional note for the history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Show each channel's state (not configured, active, paused by an operator or by a provider error, merged
    /// over the running replicas) and the latest pauses and resumes.
    List {
        /// How many history entries to show.
        #[arg(long, default_value_t = 10)]
        history: i64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    #[error("canal desconocido '{0}': use email, sms, whatsapp o portal")]
    UnknownChannel(String),
    #[error("falta el motivo: indique --reason \"…\" (queda registrado junto con quién pausó el canal)")]
    MissingReason,
    #[error(
        "el canal {} ya está pausado desde {} por {}: {}; para cambiar el motivo, reanúdelo y vuelva a pausarlo",
        .0.channel.destino(), .0.desde(), .0.pausado_por, .0.motivo_masked()
    )]
    AlreadyPaused(OperatorPause),
    #[error(
        "el canal {} no está pausado por un operador: no hay nada que reanudar (vea `cantina-notify channel list`)",
        .0.destino()
    )]
    NotPaused(ChannelKind),
    #[error("el canal {} cambió de estado varias veces mientras se pausaba; vuelva a intentarlo", .0.destino())]
    Contended(ChannelKind),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for PauseError {
    fn from(e: tokio_postgres::Error) -> Self {
        PauseError::Db(DbError::Query(e))
    }
}

/// One line of the pause history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub channel: ChannelKind,
    /// `pausa` or `reanudacion`.
    pub accion: String,
    pub motivo: Option<String>,
    pub por: String,
    pub en: Timestamp,
}

/// Names the staff alert of an operator's pause. Distinct from the configuration pause's
/// (`cantina-notify: canal SMS pausado`, [`crate::alerts::config_pause_alert_prefix`]): neither prefix starts the
/// other, so raising or resolving one never touches the other (see [`crate::alerts`]).
pub fn alert_prefix(kind: ChannelKind) -> String {
    format!("cantina-notify: pausa manual del canal {}", kind.destino())
}

/// The alert staff read on the POS dashboard while the pause lasts.
fn alert_message(kind: ChannelKind, reason: &str, by: &str) -> String {
    let m = format!(
        "{} por {by}: {}. Los avisos de este canal esperan como Pendiente hasta que un operador lo reanude (cantina-notify channel resume {}).",
        alert_prefix(kind),
        mask::text(reason),
        kind.config_name()
    );
    truncate_chars(&m, MAX_MESSAGE_CHARS).to_string()
}

fn alert_resolution(by: &str, note: Option<&str>) -> String {
    match note {
        Some(n) => format!("cantina-notify: canal reanudado por {by}: {}", mask::text(n)),
        None => format!("cantina-notify: canal reanudado por {by}"),
    }
}

/// An open `SISTEMA` alert named by `prefix` (as [`crate::alerts::raise`] and [`crate::alerts::resolve`] match it).
const OPEN_ALERT: &str =
    "tipo = 'SISTEMA' AND estado IN ('Pendiente', 'Leida') AND left(mensaje, char_length($5)) = $5";

fn parse_channel(s: &str) -> Result<ChannelKind, PauseError> {
    ChannelKind::parse(s).map_err(|_| PauseError::UnknownChannel(s.to_string()))
}

/// Who is acting: `--by`, else `$USER`, else `$LOGNAME` (a pause must never fail for want of a name).
pub fn actor(by: Option<&str>) -> String {
    by.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .or_else(|| std::env::var("USER").ok().filter(|s| !s.trim().is_empty()))
        .or_else(|| std::env::var("LOGNAME").ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| "desconocido".into())
}

fn pause_from_row(r: &tokio_postgres::Row) -> Result<OperatorPause, PauseError> {
    let destino: String = r.try_get(0)?;
    Ok(OperatorPause {
        channel: parse_channel(&destino)?,
        motivo: r.try_get(1)?,
        pausado_por: r.try_get(2)?,
        pausado_en: format::timestamp(r.try_get::<_, SystemTime>(3)?),
    })
}

/// The channels operators have paused now.
const CURRENT: &str = "SELECT destino::text, motivo, pausado_por, pausado_en
    FROM cantina_notify_canales_pausados ORDER BY destino";

fn pauses_from_rows(rows: &[tokio_postgres::Row]) -> Vec<OperatorPause> {
    // The CHECK constraint allows only the four destinos, so every row parses.
    rows.iter().filter_map(|r| pause_from_row(r).ok()).collect()
}

/// The channels operators have paused now.
pub async fn current(client: &Client) -> Result<Vec<OperatorPause>, DbError> {
    Ok(pauses_from_rows(&client.query(CURRENT, &[]).await?))
}

/// The same, on a pooled connection, prepared once per connection: each process runs it every second.
pub async fn current_pooled(conn: &deadpool_postgres::Client) -> Result<Vec<OperatorPause>, DbError> {
    let stmt = conn.prepare_cached(CURRENT).await?;
    Ok(pauses_from_rows(&conn.query(&stmt, &[]).await?))
}

/// Pauses `channel`; refuses an empty reason and a channel already paused (showing that pause).
pub async fn pause(client: &Client, channel: &str, reason: &str, by: &str) -> Result<OperatorPause, PauseError> {
    let channel = parse_channel(channel)?;
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(PauseError::MissingReason);
    }
    // One statement: the pause, its history line and its staff alert commit together, and only when the pause is
    // new. The pause table's key serialises pauses of a channel, so the alert needs no lock of its own.
    let sql = format!(
        "WITH p AS (
             INSERT INTO cantina_notify_canales_pausados (destino, motivo, pausado_por) VALUES ($1, $2, $3)
             ON CONFLICT (destino) DO NOTHING
             RETURNING destino, motivo, pausado_por, pausado_en),
         h AS (
             INSERT INTO cantina_notify_pausas_historial (destino, accion, motivo, por, en)
             SELECT destino, 'pausa', motivo, pausado_por, pausado_en FROM p),
         a AS (
             INSERT INTO alertas_sistema (tipo, mensaje, estado)
             SELECT 'SISTEMA', $4, 'Pendiente' FROM p
             WHERE NOT EXISTS (SELECT 1 FROM alertas_sistema WHERE {OPEN_ALERT}))
         SELECT destino::text, motivo, pausado_por, pausado_en FROM p"
    );
    let (mensaje, prefix) = (alert_message(channel, reason, by), alert_prefix(channel));
    // A conflict means already paused, unless someone resumed it between the two statements: then try again.
    for _ in 0..3 {
        let rows = client.query(&sql, &[&channel.destino(), &reason, &by, &mensaje, &prefix]).await?;
        if let Some(r) = rows.first() {
            return pause_from_row(r);
        }
        if let Some(p) = current(client).await?.into_iter().find(|p| p.channel == channel) {
            return Err(PauseError::AlreadyPaused(p));
        }
    }
    Err(PauseError::Contended(channel))
}

/// Resumes `channel`; returns the pause it lifted. Refuses a channel no operator paused.
pub async fn resume(client: &Client, channel: &str, by: &str, note: Option<&str>) -> Result<OperatorPause, PauseError> {
    let channel = parse_channel(channel)?;
    let note = note.map(str::trim).filter(|s| !s.is_empty());
    // The staff alert is resolved in the same statement, only when this call lifted the pause.
    let sql = format!(
        "WITH r AS (
             DELETE FROM cantina_notify_canales_pausados WHERE destino = $1
             RETURNING destino, motivo, pausado_por, pausado_en),
         h AS (
             INSERT INTO cantina_notify_pausas_historial (destino, accion, motivo, por)
             SELECT destino, 'reanudacion', $3, $2 FROM r),
         a AS (
             UPDATE alertas_sistema SET estado = 'Resuelta', fecha_resolucion = now(), observaciones = $4
             WHERE EXISTS (SELECT 1 FROM r) AND {OPEN_ALERT})
         SELECT destino::text, motivo, pausado_por, pausado_en FROM r"
    );
    let (resolution, prefix) = (alert_resolution(by, note), alert_prefix(channel));
    let rows = client.query(&sql, &[&channel.destino(), &by, &note, &resolution, &prefix]).await?;
    match rows.first() {
        Some(r) => pause_from_row(r),
        None => Err(PauseError::NotPaused(channel)),
    }
}

/// The latest `limit` pauses and resumes, newest first.
pub async fn history(client: &Client, limit: i64) -> Result<Vec<HistoryEntry>, DbError> {
    let sql = "SELECT destino::text, accion::text, motivo, por, en FROM cantina_notify_pausas_historial
         ORDER BY en DESC, id DESC LIMIT $1";
    let rows = client.query(sql, &[&limit.max(0)]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let destino: String = r.try_get("destino")?;
        let Ok(channel) = ChannelKind::parse(&destino) else { continue };
        out.push(HistoryEntry {
            channel,
            accion: r.try_get("accion")?,
            motivo: r.try_get("motivo")?,
            por: r.try_get("por")?,
            en: format::timestamp(r.try_get::<_, SystemTime>("en")?),
        });
    }
    Ok(out)
}

/// `cantina-notify channel …`: connects with `DATABASE_URL`, runs the command, prints its report.
pub async fn run_cli(
    settings: &crate::config::Settings,
    cmd: &ChannelCommand,
) -> anyhow::Result<std::process::ExitCode> {
    let url = settings.database.url.as_ref().ok_or_else(|| anyhow::anyhow!("DATABASE_URL: requerido"))?;
    let client = crate::db::connect(url.expose(), "cantina-notify-channel").await?;
    println!("{}", execute(&client, cmd).await?);
    Ok(std::process::ExitCode::SUCCESS)
}

/// `Pendiente` requests of a channel (what a pause holds back, what a resume releases).
async fn pending(client: &Client, channel: ChannelKind) -> Result<i64, DbError> {
    Ok(crate::requests::staff::pending_on_channel(client, channel.destino()).await?)
}

/// The open staff alert of a configuration pause of `channel`, if any: the service keeps the channel closed for
/// that too (until the provider accepts the configuration again), whatever an operator does.
async fn config_pause_alert(client: &Client, channel: ChannelKind) -> Result<Option<i64>, DbError> {
    let row = client
        .query_opt(
            "SELECT id_alerta FROM alertas_sistema
             WHERE tipo = 'SISTEMA' AND estado IN ('Pendiente', 'Leida') AND left(mensaje, char_length($1)) = $1
             ORDER BY id_alerta LIMIT 1",
            &[&crate::alerts::config_pause_alert_prefix(channel)],
        )
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// After an operator's resume, whether the channel stays closed for a provider error.
enum StillPaused {
    No,
    /// A running replica has it paused: the provider's error (masked) and its next probe.
    Provider {
        error: String,
        next_probe: Option<jiff::Timestamp>,
    },
    /// No replica is running to say; an open alert of a configuration pause (its id) says it was.
    Alert(i64),
}

/// The second line of `channel resume`: what happens to the requests that waited.
fn resume_report(waiting: i64, still: &StillPaused) -> String {
    let what = || match waiting {
        0 => "las solicitudes nuevas esperan".to_string(),
        1 => "la solicitud pendiente espera".to_string(),
        n => format!("las {n} solicitudes pendientes esperan"),
    };
    let config_alert = match still {
        StillPaused::No => None,
        StillPaused::Alert(id) => Some(*id),
        StillPaused::Provider { error, next_probe } => {
            let probe = next_probe.map(|t| format!(" (próxima prueba {})", format::local(t))).unwrap_or_default();
            return format!(
                "Atención: el canal sigue pausado en el servicio en marcha por un error del proveedor: {error}. Mientras ese error siga, {} hasta que la prueba de conexión funcione{probe}.",
                what()
            );
        }
    };
    match config_alert {
        None => match waiting {
            0 => "No hay solicitudes pendientes en este canal.".to_string(),
            1 => "La solicitud pendiente se envía en unos segundos.".to_string(),
            n => format!("Las {n} solicitudes pendientes se envían en unos segundos."),
        },
        Some(id) => {
            format!(
                "Atención: el canal tiene además una alerta abierta por un error de configuración del proveedor (alerta #{id}); mientras ese error siga, el servicio lo mantiene pausado y {} hasta que la prueba de conexión funcione.",
                what()
            )
        }
    }
}

/// Runs one `channel` subcommand and returns what to print. Refusals are errors with a message for staff.
pub async fn execute(client: &Client, cmd: &ChannelCommand) -> Result<String, PauseError> {
    match cmd {
        ChannelCommand::Pause { channel, reason, by } => {
            let p = pause(client, channel, reason, &actor(by.as_deref())).await?;
            let waiting = pending(client, p.channel).await?;
            Ok(format!(
                "Canal {} pausado por {} el {} (motivo: {}).\nCada réplica en marcha deja de enviar por este canal en unos segundos; las solicitudes esperan como Pendiente ({waiting} ahora) hasta `cantina-notify channel resume {}`. El tablero del POS muestra una alerta de sistema mientras dure la pausa.",
                p.channel.destino(),
                p.pausado_por,
                p.desde(),
                p.motivo_masked(),
                p.channel.config_name()
            ))
        }
        ChannelCommand::Resume { channel, by, reason } => {
            let who = actor(by.as_deref());
            let p = resume(client, channel, &who, reason.as_deref()).await?;
            let waiting = pending(client, p.channel).await?;
            // What still holds the channel closed: a running replica's provider pause (the same merge as `channel
            // list`), or, when no replica is running to say, an open alert of a configuration pause.
            let report = crate::channel_state::view::gather(client, &[]).await?;
            let still = match report.channels.iter().find(|(k, _)| *k == p.channel).map(|(_, s)| s) {
                Some(crate::channel_state::ChannelState::PausedByProvider { error, next_probe, .. }) => {
                    StillPaused::Provider { error: mask::text(error), next_probe: *next_probe }
                }
                Some(crate::channel_state::ChannelState::Unknown) | None => {
                    config_pause_alert(client, p.channel).await?.map_or(StillPaused::No, StillPaused::Alert)
                }
                Some(_) => StillPaused::No,
            };
            Ok(format!(
                "Canal {} reanudado por {who} (estaba pausado desde el {} por {}: {}).\n{}",
                p.channel.destino(),
                p.desde(),
                p.pausado_por,
                p.motivo_masked(),
                resume_report(waiting, &still)
            ))
        }
        ChannelCommand::List { history: n } => {
            // One state per channel: the operators' pauses merged with what each running replica recorded.
            let paused = current(client).await?;
            let report = crate::channel_state::view::gather(client, &paused).await?;
            let mut out = crate::channel_state::view::render(&report);
            let h = history(client, *n).await?;
            if !h.is_empty() {
                out.push_str("\nÚltimos cambios:\n");
                for e in h {
                    let line = format!(
                        "{}  {:<8} {:<11} {:<14} {}",
                        format::local(e.en),
                        e.channel.config_name(),
                        if e.accion == "reanudacion" { "reanudación" } else { e.accion.as_str() },
                        e.por,
                        mask::text(e.motivo.as_deref().unwrap_or_default())
                    );
                    out.push_str(line.trim_end());
                    out.push('\n');
                }
            }
            // Names, reasons and provider errors were written by others: no escape sequence reaches the terminal.
            Ok(format::terminal_safe(out.trim_end()))
        }
    }
}
