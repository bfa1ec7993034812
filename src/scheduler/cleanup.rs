//! The weekly clean-up (`limpieza`, `CANTINA__SCHEDULER__LIMPIEZA`): deletes what the service no longer needs, per
//! `settings.retention`:
//! - processed outbox events (`cantina_notify_eventos.procesado_en`) older than `events_days`;
//! - finished requests the service created (`clave_dedup` set; `Enviado`, `Error` or `Omitido`) last touched
//!   (`actualizado_en`, else `fecha_solicitud`) more than `requests_days` ago. Never a `Pendiente` one, never a POS
//!   row the service has not taken over (no key); with their history (`cantina_notify_historial`);
//! - run-ledger rows older than `ledger_days`, except each schedule's latest (the catch-up logic starts from it);
//! - inbound message ids already applied (`cantina_notify_mensajes_entrantes`, migration 0017) received more than
//!   `requests_days` ago. Meta's and SendGrid's messages carry a timestamp, so a replay older than that is still
//!   refused by the order of changes; a Twilio message (no timestamp) replayed after it would apply again.
//!
//! - the family's daily message (migration 0023): its day rows (`cantina_notify_mensaje_diario`, which only matter
//!   on their day) older than `ledger_days`, and the items it sent (`cantina_notify_avisos_enviados`) older than
//!   `requests_days`, like the requests that carried them.
//!
//! Deletes go in batches of [`BATCH`] rows, one short statement each (`FOR UPDATE SKIP LOCKED`: a row someone is
//! updating right now is left for next week), so the app's busy `solicitudes_notificacion` is never locked for long.

use std::fmt;

use deadpool_postgres::Pool;
use jiff::{SignedDuration, Timestamp};

use crate::config::RetentionSettings;
use crate::db::DbError;

/// Rows per DELETE statement.
pub const BATCH: i64 = 5_000;

pub use crate::config::checks::MAX_RETENTION_DAYS as MAX_DAYS;

const DELETE_EVENTS: &str = "
    DELETE FROM cantina_notify_eventos WHERE id IN (
        SELECT id FROM cantina_notify_eventos
        WHERE procesado_en < $1
        ORDER BY id LIMIT $2
        FOR UPDATE SKIP LOCKED)";

const DELETE_LEDGER: &str = "
    DELETE FROM cantina_notify_ejecuciones WHERE (programa, programada_en) IN (
        SELECT e.programa, e.programada_en FROM cantina_notify_ejecuciones e
        WHERE e.programada_en < $1
          AND e.programada_en < (SELECT max(m.programada_en) FROM cantina_notify_ejecuciones m
                                 WHERE m.programa = e.programa)
        LIMIT $2
        FOR UPDATE SKIP LOCKED)";

// No FOR UPDATE here: these rows are only ever inserted, never updated, and locking them would need UPDATE.
const DELETE_SEEN_MESSAGES: &str = "
    DELETE FROM cantina_notify_mensajes_entrantes WHERE (proveedor, id_mensaje) IN (
        SELECT proveedor, id_mensaje FROM cantina_notify_mensajes_entrantes
        WHERE recibido_en < $1
        LIMIT $2)";

// No FOR UPDATE: a day row is only locked by the sweep of its own day, long past; items are only ever inserted.
const DELETE_FAMILY_DAYS: &str = "
    DELETE FROM cantina_notify_mensaje_diario WHERE (id_cliente, fecha) IN (
        SELECT id_cliente, fecha FROM cantina_notify_mensaje_diario
        WHERE actualizado_en < $1
        LIMIT $2)";

const DELETE_FAMILY_ITEMS: &str = "
    DELETE FROM cantina_notify_avisos_enviados WHERE clave IN (
        SELECT clave FROM cantina_notify_avisos_enviados
        WHERE creado_en < $1
        LIMIT $2)";

/// What one clean-up deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupReport {
    pub eventos: u64,
    pub solicitudes: u64,
    pub ejecuciones: u64,
    pub mensajes: u64,
    /// The family's daily message: day rows and items sent.
    pub avisos: u64,
}

impl CleanupReport {
    pub fn total(&self) -> u64 {
        self.eventos + self.solicitudes + self.ejecuciones + self.mensajes + self.avisos
    }
}

/// Stored in the ledger's `detalle` and printed by `cantina-notify sweep limpieza`.
impl fmt::Display for CleanupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "borradas: {} eventos procesados, {} solicitudes terminadas, {} ejecuciones del registro, \
             {} mensajes entrantes ya aplicados, {} registros del aviso diario de las familias",
            self.eventos, self.solicitudes, self.ejecuciones, self.mensajes, self.avisos
        )
    }
}

/// `now` minus `days` whole days (1970 if that were out of range: nothing older, nothing deleted).
pub fn cutoff(now: Timestamp, days: u64) -> Timestamp {
    let hours = i64::try_from(days.min(MAX_DAYS)).unwrap_or(0) * 24;
    now.checked_sub(SignedDuration::from_hours(hours)).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Runs the clean-up as of `now` in batches of [`BATCH`].
pub async fn run(pool: &Pool, retention: &RetentionSettings, now: Timestamp) -> Result<CleanupReport, DbError> {
    run_in_batches(pool, retention, now, BATCH).await
}

/// [`run`] with another batch size (tests use a small one to see the batches add up).
pub async fn run_in_batches(
    pool: &Pool,
    retention: &RetentionSettings,
    now: Timestamp,
    batch: i64,
) -> Result<CleanupReport, DbError> {
    let batch = batch.max(1);
    let report = CleanupReport {
        eventos: delete_all(pool, DELETE_EVENTS, cutoff(now, retention.events_days), batch).await?,
        solicitudes: delete_all(
            pool,
            crate::requests::retention::DELETE_REQUESTS,
            cutoff(now, retention.requests_days),
            batch,
        )
        .await?,
        ejecuciones: delete_all(pool, DELETE_LEDGER, cutoff(now, retention.ledger_days), batch).await?,
        mensajes: delete_all(pool, DELETE_SEEN_MESSAGES, cutoff(now, retention.requests_days), batch).await?,
        avisos: delete_all(pool, DELETE_FAMILY_DAYS, cutoff(now, retention.ledger_days), batch).await?
            + delete_all(pool, DELETE_FAMILY_ITEMS, cutoff(now, retention.requests_days), batch).await?,
    };
    tracing::info!(
        events = report.eventos,
        requests = report.solicitudes,
        ledger = report.ejecuciones,
        seen_messages = report.mensajes,
        family_message = report.avisos,
        "clean-up finished"
    );
    Ok(report)
}

/// Repeats one batched DELETE until a batch comes back short; each statement commits on its own.
async fn delete_all(pool: &Pool, sql: &str, before: Timestamp, batch: i64) -> Result<u64, DbError> {
    let before = std::time::SystemTime::from(before);
    let conn = pool.get().await?;
    let stmt = conn.prepare(sql).await?;
    let mut total = 0;
    loop {
        let n = conn.execute(&stmt, &[&before, &batch]).await?;
        total += n;
        if n < u64::try_from(batch).unwrap_or(u64::MAX) {
            return Ok(total);
        }
    }
}

pub use crate::config::checks::retention as validate;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SchedulerSettings;

    #[test]
    fn cutoffs_are_whole_days_before_now() {
        let now: Timestamp = "2026-11-29T05:00:00Z".parse().unwrap();
        assert_eq!(cutoff(now, 30), "2026-10-30T05:00:00Z".parse::<Timestamp>().unwrap());
        assert_eq!(cutoff(now, 365), "2025-11-29T05:00:00Z".parse::<Timestamp>().unwrap());
        assert!(cutoff(now, u64::MAX) < "1930-01-01T00:00:00Z".parse::<Timestamp>().unwrap());
    }

    #[test]
    fn the_report_reads_in_spanish_and_adds_up() {
        let r = CleanupReport { eventos: 120, solicitudes: 40, ejecuciones: 3, mensajes: 2, avisos: 5 };
        assert_eq!(r.total(), 170);
        assert_eq!(
            r.to_string(),
            "borradas: 120 eventos procesados, 40 solicitudes terminadas, 3 ejecuciones del registro, \
             2 mensajes entrantes ya aplicados, 5 registros del aviso diario de las familias"
        );
    }

    #[test]
    fn retention_is_validated_with_its_keys() {
        let scheduler = SchedulerSettings::default();
        assert!(validate(&RetentionSettings::default(), &scheduler).is_empty());
        let bad = RetentionSettings { events_days: 0, requests_days: MAX_DAYS + 1, ledger_days: 90 };
        let errors = validate(&bad, &scheduler);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("CANTINA__RETENTION__EVENTS_DAYS:"), "{errors:?}");
        assert!(errors[1].starts_with("CANTINA__RETENTION__REQUESTS_DAYS:"), "{errors:?}");
        let long_window = SchedulerSettings { catch_up_window_hours: 24 * 100, ..Default::default() };
        let errors = validate(&RetentionSettings::default(), &long_window);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("CANTINA__SCHEDULER__CATCH_UP_WINDOW_HOURS"), "{errors:?}");
    }
}
