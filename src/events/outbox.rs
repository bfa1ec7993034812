//! The outbox, `cantina_notify_eventos`: claiming a batch of events (SKIP LOCKED, so replicas share the work) and
//! decoding them, setting aside one the database refuses (quarantine), and its lag.

use std::time::SystemTime;

use deadpool_postgres::{GenericClient, Pool};
use jiff::Timestamp;

use crate::db::DbError;
use crate::domain::{EventKind, OutboxEvent};

const CLAIM_EVENTS: &str = "
    SELECT id, tipo, id_ref, nro_tarjeta, saldo_anterior, saldo_nuevo, creado_en
    FROM cantina_notify_eventos
    WHERE procesado_en IS NULL AND ($2::int8 IS NULL OR id = $2)
    ORDER BY id
    LIMIT $1
    FOR UPDATE SKIP LOCKED";

/// One event, to isolate a batch that failed: it waits for a lock on the row instead of skipping it. Skipping looked
/// like success (nothing pending) and left the event unexamined, and a lock is to be expected right then: the failed
/// batch's connection is closed, not rolled back, and the server releases its locks when it notices; or a replica's
/// batch holds it. Bounded by the transaction's `lock_timeout`.
const CLAIM_ONE: &str = "
    SELECT id, tipo, id_ref, nro_tarjeta, saldo_anterior, saldo_nuevo, creado_en
    FROM cantina_notify_eventos
    WHERE procesado_en IS NULL AND id = $2
    LIMIT $1
    FOR UPDATE";

/// A claimed batch: the events, and the cards their rows name (the trigger copies a recharge's card into the event,
/// so the cards load beside the recharges).
pub struct Claimed {
    pub events: Vec<OutboxEvent>,
    pub card_hints: Vec<String>,
}

/// Begins the drain's transaction and claims a batch (or the one event `only`), in one round trip. `None`: nothing
/// to do (the transaction is still open; the caller rolls it back).
pub async fn claim(tx: &impl GenericClient, batch_size: i64, only: Option<i64>) -> Result<Option<Claimed>, DbError> {
    let (claim, begin) = match only {
        Some(_) => (tx.prepare_cached(CLAIM_ONE).await?, crate::db::BEGIN_HOT_ASYNC_OWN_HISTORY_WAITING),
        None => (tx.prepare_cached(CLAIM_EVENTS).await?, crate::db::BEGIN_HOT_ASYNC_OWN_HISTORY),
    };
    let claim_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&batch_size, &only];
    // One round trip for BEGIN and the claim: requests are pipelined in the order their futures are first polled
    // (`biased`: top to bottom; each sends on its first poll).
    // Safe without a synchronous commit: a crash that loses this commit loses the events' `procesado_en` with the
    // requests, so the events are drained again into the same dedup keys; nothing is lost. (A request handed to the
    // dispatcher may then be sent once more: the one duplicate a database crash can cause.)
    let (_, rows) = tokio::try_join!(biased; tx.batch_execute(begin), tx.query(&claim, &claim_params))?;
    if rows.is_empty() {
        return Ok(None);
    }
    let events = rows
        .iter()
        .map(|r| OutboxEvent {
            id: r.get("id"),
            kind: EventKind::decode(
                r.get("tipo"),
                r.get("id_ref"),
                r.get("nro_tarjeta"),
                r.get("saldo_anterior"),
                r.get("saldo_nuevo"),
            ),
            created_at: ts(r.get("creado_en")),
        })
        .collect();
    let card_hints = rows.iter().filter_map(|r| r.get::<_, Option<String>>("nro_tarjeta")).collect();
    Ok(Some(Claimed { events, card_hints }))
}

fn ts(t: SystemTime) -> Timestamp {
    Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Seconds since the oldest unprocessed event was written (0 when the outbox is empty).
pub async fn outbox_lag_seconds(pool: &Pool) -> Result<f64, DbError> {
    let conn = pool.get().await?;
    let row = conn
        .query_one(
            "SELECT coalesce(extract(epoch FROM now() - min(creado_en)), 0)::float8
             FROM cantina_notify_eventos WHERE procesado_en IS NULL",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Keeps the default threshold the balance trigger reads in step with the configuration.
pub async fn sync_settings(pool: &Pool, umbral: i64) -> Result<(), DbError> {
    pool.get()
        .await?
        .execute(
            "UPDATE cantina_notify_ajustes SET umbral_saldo_bajo = $1, actualizado_en = now() WHERE umbral_saldo_bajo <> $1",
            &[&umbral],
        )
        .await?;
    Ok(())
}

/// The ids a batch would take, without locking them (to retry them one by one after a batch failed).
pub async fn pending_ids(pool: &Pool, limit: i64) -> Result<Vec<i64>, DbError> {
    let rows = pool
        .get()
        .await?
        .query("SELECT id FROM cantina_notify_eventos WHERE procesado_en IS NULL ORDER BY id LIMIT $1", &[&limit])
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Sets aside an event the database refuses to process (a data error), with the reason, so one bad row cannot
/// stall the outbox. The event stays in the table for inspection.
pub async fn quarantine(pool: &Pool, id: i64, reason: &str) -> Result<(), DbError> {
    pool.get()
        .await?
        .execute(
            "UPDATE cantina_notify_eventos SET procesado_en = now(), resultado = $2 WHERE id = $1 AND procesado_en IS NULL",
            &[&id, &reason],
        )
        .await?;
    Ok(())
}
