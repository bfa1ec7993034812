//! Turning outbox events into requests: claim a batch (SKIP LOCKED, so replicas share the work), load the rows it
//! refers to in bulk, run the pure rules, insert the requests with ON CONFLICT DO NOTHING and mark the events done,
//! all in one transaction. Running it twice, or on two replicas at once, yields the same single request per notice.

use std::time::SystemTime;

use deadpool_postgres::{GenericClient, Pool};
use jiff::Timestamp;

use super::{EventKind, OutboxEvent};
use crate::config::RulesConfig;
use crate::db::DbError;
use crate::domain::{ChannelKind, NotificationType};
use crate::requests;
use crate::requests::row::Claimed;
pub use crate::requests::write::{ClaimOffer, insert_and_claim, insert_requests};
use crate::rules::{self, Decision, NewRequest, RuleInput};

/// What one batch did, for metrics and for waking the dispatcher.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    pub events: usize,
    pub by_kind: Vec<&'static str>,
    /// (type, channel) of each request that became `Pendiente` (new or a completed manual row).
    pub created: Vec<(NotificationType, ChannelKind)>,
    /// (type, channel) of each request recorded `Error` at creation (no usable address, ...).
    pub failed_at_creation: Vec<(NotificationType, ChannelKind)>,
    /// (type, channel) of each request recorded `Omitido` (the parent turned the channel off).
    pub omitted_at_creation: Vec<(NotificationType, ChannelKind)>,
    /// Age of the oldest event in the batch.
    pub oldest_age_seconds: f64,
    /// New requests claimed for this process's dispatcher in the same transaction (see [`ClaimOffer`]).
    pub claimed: Vec<Claimed>,
}

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

/// Processes one batch of pending events. Returns an empty outcome when there is nothing to do.
pub async fn drain_batch(
    pool: &Pool,
    config: &RulesConfig,
    batch_size: i64,
    offer: Option<&ClaimOffer>,
) -> Result<BatchOutcome, DbError> {
    crate::db::guarded(drain(pool, config, batch_size, None, offer)).await
}

/// One event only (isolating a batch that failed).
pub async fn drain_event(pool: &Pool, config: &RulesConfig, id: i64) -> Result<BatchOutcome, DbError> {
    crate::db::guarded(drain(pool, config, 1, Some(id), None)).await
}

async fn drain(
    pool: &Pool,
    config: &RulesConfig,
    batch_size: i64,
    only: Option<i64>,
    offer: Option<&ClaimOffer>,
) -> Result<BatchOutcome, DbError> {
    let mut guard = crate::db::OpenTransaction::new(pool.get().await?);
    let tx = guard.client()?;
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
        tx.batch_execute("ROLLBACK").await?;
        guard.finish();
        return Ok(BatchOutcome::default());
    }
    let events: Vec<OutboxEvent> = rows
        .iter()
        .map(|r| OutboxEvent {
            id: r.get(0),
            kind: EventKind::decode(r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)),
            created_at: ts(r.get(6)),
        })
        .collect();
    // The trigger copies the recharge's card into the event, so the cards load beside the recharges.
    let card_hints: Vec<String> = rows.iter().filter_map(|r| r.get::<_, Option<String>>(3)).collect();

    let ctx = crate::cantina::context::load_context(tx, &events, card_hints, &config.preference_defaults).await?;
    let mut outcome = BatchOutcome { events: events.len(), ..Default::default() };
    let now = Timestamp::now();
    outcome.oldest_age_seconds =
        events.iter().map(|e| (now - e.created_at).get_milliseconds() as f64 / 1000.0).fold(0.0, f64::max);

    let mut inserts: Vec<NewRequest> = Vec::new();
    let mut results: Vec<Option<String>> = Vec::with_capacity(events.len());
    // Whether the history is back with the triggers for the rest of the transaction (see complete_manual).
    let mut history_by_trigger = false;
    for event in &events {
        outcome.by_kind.push(event.kind.label());
        let decision = rules::decide(&RuleInput { event, ctx: &ctx, config });
        results.push(match decision {
            Decision::Create(requests) => {
                let n = requests.len();
                inserts.extend(requests);
                Some(format!("{n} solicitud(es)"))
            }
            Decision::CompleteManual { id_solicitud, completion } => {
                // A POS row's completion is recorded by the history trigger ('completada'), and so, from here on,
                // is the rest of this transaction (the insert statement then leaves the `creada` rows to the
                // trigger too). Once per transaction.
                if !history_by_trigger {
                    tx.batch_execute(crate::db::HISTORY_BY_TRIGGER).await?;
                    history_by_trigger = true;
                }
                match requests::manual::complete(tx, &config.signer, id_solicitud, *completion).await? {
                    Some((t, c, true)) => outcome.created.push((t, c)),
                    Some((t, c, false)) => outcome.failed_at_creation.push((t, c)),
                    None => {}
                }
                Some("solicitud manual completada".to_string())
            }
            Decision::Ignore(reason) => Some(reason),
        });
    }

    let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
    // Prepared before the pipeline below: a prepare inside it would let COMMIT overtake the insert.
    requests::write::prepare(tx).await?;
    // The requests, their history, the events marked done and COMMIT in one round trip. If the statement fails,
    // the server turns the COMMIT into a rollback and the error comes back here.
    let ((inserted, claimed), _) = tokio::try_join!(
        biased;
        requests::write::write(tx, &config.signer, inserts, offer, &ids, &results),
        async { Ok::<_, DbError>(tx.batch_execute("COMMIT").await?) }
    )?;
    guard.finish();
    outcome.claimed = claimed;
    for (t, c, estado) in inserted {
        match estado.as_str() {
            "Pendiente" => outcome.created.push((t, c)),
            "Omitido" => outcome.omitted_at_creation.push((t, c)),
            _ => outcome.failed_at_creation.push((t, c)),
        }
    }
    Ok(outcome)
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
