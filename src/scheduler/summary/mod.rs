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

mod data;
mod render;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use deadpool_postgres::Pool;
use jiff::Timestamp;
use jiff::civil::Date;
use sha2::{Digest, Sha256};

use super::Clock;
use crate::channels::{Channel, Channels, SendError, StaffEmail};
use crate::config::Settings;
use crate::db::DbError;
use crate::domain::{ChannelKind, EmailAddress};

/// Moved to the configuration; re-exported where it was.
pub use crate::config::SummarySettings;
pub use data::*;
pub use render::*;

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

pub use crate::config::checks::summary as validate;

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
                crate::present::mask::text(motivo.as_deref().unwrap_or(""))
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
