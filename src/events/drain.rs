//! Turning outbox events into requests, in one transaction: claim a batch ([`super::outbox`]), load the rows it
//! refers to ([`crate::cantina`]), run the pure rules, write the requests and mark the events done
//! ([`crate::requests`]), commit. Running it twice, or on two replicas at once, yields the same single request per notice.

use deadpool_postgres::{GenericClient, Pool};
use jiff::Timestamp;

use super::outbox;
pub use super::outbox::sync_settings;
use crate::config::RulesConfig;
use crate::db::DbError;
use crate::domain::{ChannelKind, NotificationType, OutboxEvent, RequestState};
use crate::requests;
use crate::requests::row::Claimed;
pub use crate::requests::write::{ClaimOffer, insert_and_claim, insert_requests};
use crate::rules::{self, Context, Decision, NewRequest, RuleInput};

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

/// claim → load → decide → write → commit.
async fn drain(
    pool: &Pool,
    config: &RulesConfig,
    batch_size: i64,
    only: Option<i64>,
    offer: Option<&ClaimOffer>,
) -> Result<BatchOutcome, DbError> {
    let mut guard = crate::db::OpenTransaction::new(pool.get().await?);
    let tx = guard.client()?;
    let Some(outbox::Claimed { events, card_hints }) = outbox::claim(tx, batch_size, only).await? else {
        tx.batch_execute("ROLLBACK").await?;
        guard.finish();
        return Ok(BatchOutcome::default());
    };
    // The POS rows the events name are requests: loaded in the same round trip as the app's rows.
    let pos = requests::manual::PosRows::prepare(tx, &events).await?;
    let defaults = &config.preference_defaults;
    let ctx = crate::cantina::context::load_context(tx, &events, card_hints, defaults, pos.load(tx)).await?;
    let mut outcome = BatchOutcome::begun(&events);
    let (inserts, results) = decide(tx, config, &events, &ctx, &mut outcome).await?;

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
        match estado {
            RequestState::Pendiente => outcome.created.push((t, c)),
            RequestState::Omitido => outcome.omitted_at_creation.push((t, c)),
            RequestState::Error | RequestState::Enviado => outcome.failed_at_creation.push((t, c)),
        }
    }
    Ok(outcome)
}

impl BatchOutcome {
    fn begun(events: &[OutboxEvent]) -> Self {
        let now = Timestamp::now();
        let oldest_age_seconds =
            events.iter().map(|e| (now - e.created_at).get_milliseconds() as f64 / 1000.0).fold(0.0, f64::max);
        BatchOutcome { events: events.len(), oldest_age_seconds, ..Default::default() }
    }
}

/// The rules' decision on each event: the requests to insert and each event's result. A POS row's completion is
/// written here, in the transaction.
async fn decide(
    tx: &impl GenericClient,
    config: &RulesConfig,
    events: &[OutboxEvent],
    ctx: &Context,
    outcome: &mut BatchOutcome,
) -> Result<(Vec<NewRequest>, Vec<Option<String>>), DbError> {
    let mut inserts: Vec<NewRequest> = Vec::new();
    let mut results: Vec<Option<String>> = Vec::with_capacity(events.len());
    // Whether the history is back with the triggers for the rest of the transaction.
    let mut history_by_trigger = false;
    for event in events {
        outcome.by_kind.push(event.kind.label());
        results.push(match rules::decide(&RuleInput { event, ctx, config }) {
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
    Ok((inserts, results))
}
