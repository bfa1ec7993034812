//! The run ledger `cantina_notify_ejecuciones` (migration 0004): one row per (schedule, scheduled instant).
//!
//! - Claim: `INSERT ... ON CONFLICT DO NOTHING RETURNING`; of any number of replicas exactly one gets the row.
//! - A firing older than the catch-up window when it is first seen is inserted `omitida` and never run.
//! - A schedule's first tick ever inserts a baseline row `omitida` at that instant ([`baseline`]): firings before
//!   the service existed (or before the cut-over from Celery beat) were someone else's to run.
//! - Crash recovery: a row still `en_curso` [`STALE_AFTER`] after it started (the replica died mid-sweep) can be
//!   re-claimed by one replica with a conditional `UPDATE ... RETURNING`, as long as the firing is still inside
//!   the catch-up window. A `fallida` row is retried the same way [`RETRY_FAILED_AFTER`] after it failed. Re-running
//!   is safe: the sweep's dedup keys make a second run create only what the first did not.
//! - All times written are the scheduler's clock (injectable in tests).

use std::time::SystemTime;

use deadpool_postgres::Pool;
use jiff::{SignedDuration, Timestamp};

use crate::db::DbError;

/// An `en_curso` run older than this is presumed dead and may be re-claimed.
pub const STALE_AFTER: SignedDuration = SignedDuration::from_mins(30);
/// A `fallida` run may be retried this long after it failed (while within the catch-up window).
pub const RETRY_FAILED_AFTER: SignedDuration = SignedDuration::from_mins(5);

fn st(t: Timestamp) -> SystemTime {
    SystemTime::from(t)
}

fn ts(t: SystemTime) -> Timestamp {
    Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The latest scheduled instant recorded for a schedule, in any state.
pub async fn last_recorded(pool: &Pool, programa: &str) -> Result<Option<Timestamp>, DbError> {
    let row = pool
        .get()
        .await?
        .query_one("SELECT max(programada_en) FROM cantina_notify_ejecuciones WHERE programa = $1", &[&programa])
        .await?;
    Ok(row.get::<_, Option<SystemTime>>(0).map(ts))
}

/// Tries to take a firing; true when this replica must run it.
pub async fn claim(pool: &Pool, programa: &str, at: Timestamp, replica: &str, now: Timestamp) -> Result<bool, DbError> {
    let rows = pool
        .get()
        .await?
        .query(
            "INSERT INTO cantina_notify_ejecuciones (programa, programada_en, estado, replica, iniciada_en)
             VALUES ($1, $2, 'en_curso', $3, $4)
             ON CONFLICT (programa, programada_en) DO NOTHING
             RETURNING programada_en",
            &[&programa, &st(at), &replica, &st(now)],
        )
        .await?;
    Ok(!rows.is_empty())
}

/// Records where a schedule with no history starts: an `omitida` row at `now`, unless some replica recorded the
/// schedule first. Two replicas starting in the same instant may both write one; either row is a valid start.
pub async fn baseline(pool: &Pool, programa: &str, replica: &str, now: Timestamp) -> Result<bool, DbError> {
    let n = pool
        .get()
        .await?
        .execute(
            "INSERT INTO cantina_notify_ejecuciones
                 (programa, programada_en, estado, replica, iniciada_en, terminada_en, solicitudes, detalle)
             SELECT $1, $2, 'omitida', $3, $2, $2, 0, $4
             WHERE NOT EXISTS (SELECT 1 FROM cantina_notify_ejecuciones WHERE programa = $1)
             ON CONFLICT (programa, programada_en) DO NOTHING",
            &[&programa, &st(now), &replica, &BASELINE_DETAIL],
        )
        .await?;
    Ok(n == 1)
}

/// The `detalle` of a baseline row.
pub const BASELINE_DETAIL: &str =
    "inicio del programa: las ejecuciones anteriores a este primer arranque no se recuperan";

/// Records a firing that is too old to run (no-op when some replica already recorded it).
pub async fn skip(
    pool: &Pool,
    programa: &str,
    at: Timestamp,
    replica: &str,
    now: Timestamp,
    why: &str,
) -> Result<bool, DbError> {
    let n = pool
        .get()
        .await?
        .execute(
            "INSERT INTO cantina_notify_ejecuciones
                 (programa, programada_en, estado, replica, iniciada_en, terminada_en, solicitudes, detalle)
             VALUES ($1, $2, 'omitida', $3, $4, $4, 0, $5)
             ON CONFLICT (programa, programada_en) DO NOTHING",
            &[&programa, &st(at), &replica, &st(now), &why],
        )
        .await?;
    Ok(n == 1)
}

/// Re-claims, for this replica, the firings of a schedule that died `en_curso` or failed, still inside the window
/// (`not_before`). Each row goes to exactly one replica (the UPDATE re-checks the condition under the row lock).
pub async fn reclaim(
    pool: &Pool,
    programa: &str,
    not_before: Timestamp,
    replica: &str,
    now: Timestamp,
) -> Result<Vec<Timestamp>, DbError> {
    let stale = st(now.checked_sub(STALE_AFTER).unwrap_or(now));
    let retry = st(now.checked_sub(RETRY_FAILED_AFTER).unwrap_or(now));
    let rows = pool
        .get()
        .await?
        .query(
            "UPDATE cantina_notify_ejecuciones
             SET estado = 'en_curso', replica = $3, iniciada_en = $4, terminada_en = NULL,
                 detalle = CASE WHEN estado = 'fallida' THEN 'reintento tras fallo: ' || coalesce(detalle, '')
                                ELSE 'reclamada: la réplica ' || coalesce(replica, '?') || ' no terminó' END
             WHERE programa = $1 AND programada_en >= $2
               AND ((estado = 'en_curso' AND iniciada_en < $5) OR (estado = 'fallida' AND terminada_en < $6))
             RETURNING programada_en",
            &[&programa, &st(not_before), &replica, &st(now), &stale, &retry],
        )
        .await?;
    let mut out: Vec<Timestamp> = rows.iter().map(|r| ts(r.get(0))).collect();
    out.sort();
    Ok(out)
}

/// Marks this replica's run finished: `completada` with the count (requests created; rows deleted for the
/// clean-up) and, when given, `detalle` (the clean-up's breakdown), or `fallida` with the reason.
pub async fn finish(
    pool: &Pool,
    programa: &str,
    at: Timestamp,
    replica: &str,
    now: Timestamp,
    result: Result<usize, String>,
    detail: Option<&str>,
) -> Result<(), DbError> {
    let (estado, solicitudes, detalle) = match result {
        Ok(n) => ("completada", Some(i32::try_from(n).unwrap_or(i32::MAX)), detail.map(str::to_string)),
        Err(e) => ("fallida", None, Some(e)),
    };
    pool.get()
        .await?
        .execute(
            "UPDATE cantina_notify_ejecuciones
             SET estado = $5, terminada_en = $4, solicitudes = $6, detalle = coalesce($7, detalle)
             WHERE programa = $1 AND programada_en = $2 AND replica = $3 AND estado = 'en_curso'",
            &[&programa, &st(at), &replica, &st(now), &estado, &solicitudes, &detalle],
        )
        .await?;
    Ok(())
}
