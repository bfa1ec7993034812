//! Turning outbox events into requests: claim a batch (SKIP LOCKED, so replicas share the work), load the rows it
//! refers to in bulk, run the pure rules, insert the requests with ON CONFLICT DO NOTHING and mark the events done,
//! all in one transaction. Running it twice, or on two replicas at once, yields the same single request per notice.

use std::collections::HashSet;
use std::time::SystemTime;

use deadpool_postgres::{GenericClient, Pool};
use jiff::Timestamp;

use super::{EventKind, OutboxEvent};
use crate::config::{PreferenceDefaults, RulesConfig};
use crate::db::DbError;
use crate::domain::{ChannelKind, NotificationType};
use crate::requests;
use crate::requests::row::Claimed;
pub use crate::requests::write::{ClaimOffer, insert_and_claim, insert_requests};
use crate::rules::{self, Card, Context, Decision, NewRequest, OffBy, Parent, Recharge, RuleInput, Student, TurnedOff};

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

const LOAD_CARDS: &str = "
    SELECT t.nro_tarjeta, t.saldo_actual, t.saldo_alerta, t.estado, t.notificar_saldo_bajo, t.ultima_notificacion_saldo,
           h.id_hijo, h.nombre, h.apellido,
           c.id_cliente, c.nombres, c.apellidos, c.email, c.telefono, c.activo
    FROM tarjetas t
    LEFT JOIN hijos h ON h.id_hijo = t.id_hijo
    LEFT JOIN clientes c ON c.id_cliente = h.id_cliente_responsable
    WHERE t.nro_tarjeta = ANY($1)";

const LOAD_RECHARGES: &str = "
    SELECT id_carga, nro_tarjeta, monto_cargado, estado, coalesce(fecha_confirmacion, fecha_carga, now()), referencia
    FROM cargas_saldo WHERE id_carga = ANY($1)";

const LOAD_PARENTS: &str = "
    SELECT id_cliente, nombres, apellidos, email, telefono, activo FROM clientes WHERE id_cliente = ANY($1)";

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

    let ctx = load_context(tx, &events, card_hints, &config.preference_defaults).await?;
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

async fn load_context(
    tx: &impl GenericClient,
    events: &[OutboxEvent],
    card_hints: Vec<String>,
    defaults: &PreferenceDefaults,
) -> Result<Context, DbError> {
    let mut ctx = Context::default();
    let mut card_ids: HashSet<String> = card_hints.into_iter().collect();
    let mut recharge_ids = Vec::new();
    let mut manual_ids = Vec::new();
    for e in events {
        match &e.kind {
            EventKind::RecargaConfirmada { id_carga } => recharge_ids.push(*id_carga),
            EventKind::SaldoBajo { nro_tarjeta, .. } | EventKind::TarjetaBloqueada { nro_tarjeta } => {
                card_ids.insert(nro_tarjeta.clone());
            }
            EventKind::SolicitudManual { id_solicitud } => manual_ids.push(*id_solicitud),
            EventKind::Invalid { .. } => {}
        }
    }
    // Recharges, the cards already known and the manual rows in one round trip.
    let (recharges, manual) = (tx.prepare_cached(LOAD_RECHARGES).await?, requests::manual::prepare_load(tx).await?);
    let known: Vec<String> = card_ids.iter().cloned().collect();
    let known_keys = card_ids.clone();
    let (recharge_rows, (), manual_rows, preference_rows_by_card) = tokio::try_join!(
        async {
            match recharge_ids.is_empty() {
                true => Ok(Vec::new()),
                false => tx.query(&recharges, &[&recharge_ids]).await.map_err(DbError::from),
            }
        },
        async {
            match known.is_empty() {
                true => Ok(()),
                false => load_card_rows(tx, &known, &mut ctx.cards).await,
            }
        },
        async {
            match manual_ids.is_empty() {
                true => Ok(Vec::new()),
                false => requests::manual::load(tx, &manual, &manual_ids).await,
            }
        },
        async {
            match known.is_empty() {
                true => Ok(Vec::new()),
                false => preference_rows(tx, LOAD_PREFERENCES_BY_CARD, &known, defaults).await,
            }
        },
    )?;
    for r in recharge_rows {
        let recharge = Recharge {
            id_carga: r.get(0),
            nro_tarjeta: r.get(1),
            monto: r.get(2),
            estado: r.get::<_, Option<String>>(3).unwrap_or_default(),
            fecha: ts(r.get(4)),
            referencia: r.get(5),
        };
        card_ids.insert(recharge.nro_tarjeta.clone());
        ctx.recharges.insert(recharge.id_carga, recharge);
    }
    if !manual_rows.is_empty() {
        let mut parent_ids = Vec::new();
        for row in manual_rows {
            if let Some(t) = &row.nro_tarjeta {
                card_ids.insert(t.clone());
            }
            parent_ids.extend(row.id_cliente);
            ctx.manual.insert(row.id_solicitud, row);
        }
        if !parent_ids.is_empty() {
            for r in tx.query(&tx.prepare_cached(LOAD_PARENTS).await?, &[&parent_ids]).await? {
                let p = Parent {
                    id_cliente: r.get(0),
                    nombres: r.get(1),
                    apellidos: r.get(2),
                    email: r.get(3),
                    telefono: r.get(4),
                    activo: r.get::<_, Option<bool>>(5).unwrap_or(true),
                };
                ctx.parents.insert(p.id_cliente, p);
            }
        }
    }
    // Cards not loaded yet: a manual row's, or a recharge whose card differs from the event's copy.
    let missing: Vec<String> = card_ids.into_iter().filter(|c| !ctx.cards.contains_key(c)).collect();
    if !missing.is_empty() {
        load_card_rows(tx, &missing, &mut ctx.cards).await?;
    }
    load_preferences(tx, &mut ctx, preference_rows_by_card, &known_keys, defaults).await?;
    Ok(ctx)
}

/// Which channels each client turned off per type: off only if every one of their active portal accounts has it off
/// for the type. No preference row, or NULL in the column, means the configured default ($3–$6). `$where` picks the
/// clients from $1.
macro_rules! preferences_sql {
    ($where:literal) => {
        concat!(
            "SELECT u.id_cliente, t.tipo,
                    bool_and(NOT coalesce(p.email_activo, $3)),
                    bool_and(NOT coalesce(p.sms_activo, $4)),
                    bool_and(NOT coalesce(p.whatsapp_activo, $5)),
                    bool_and(NOT coalesce(p.push_activo, $6)),
                    bool_or(p.email_activo IS NOT NULL), bool_or(p.sms_activo IS NOT NULL),
                    bool_or(p.whatsapp_activo IS NOT NULL), bool_or(p.push_activo IS NOT NULL)
             FROM usuario_portal u
             CROSS JOIN unnest($2::text[]) AS t(tipo)
             LEFT JOIN preferencia_notificacion p
                    ON p.id_usuario_portal = u.id_usuario_portal AND p.tipo_notificacion = t.tipo
             WHERE ",
            $where,
            " AND coalesce(u.activo, true)
             GROUP BY u.id_cliente, t.tipo"
        )
    };
}

/// By client ids.
const LOAD_PREFERENCES: &str = preferences_sql!("u.id_cliente = ANY($1)");

/// By the cards' parents, so the preferences load in the same round trip as the cards.
const LOAD_PREFERENCES_BY_CARD: &str = preferences_sql!(
    "u.id_cliente IN (SELECT h.id_cliente_responsable FROM tarjetas c JOIN hijos h ON h.id_hijo = c.id_hijo
                      WHERE c.nro_tarjeta = ANY($1))"
);

/// The preferences of every client in the context: from the rows loaded by card beside the cards, and by id for
/// any client those did not cover (a manual row's parent, a card loaded later).
async fn load_preferences(
    tx: &impl GenericClient,
    ctx: &mut Context,
    by_card: Vec<tokio_postgres::Row>,
    card_keys: &HashSet<String>,
    defaults: &PreferenceDefaults,
) -> Result<(), DbError> {
    let mut covered = Vec::new();
    let mut rest = Vec::new();
    for card in ctx.cards.values() {
        if let Some(p) = &card.parent {
            match card_keys.contains(&card.nro_tarjeta) {
                true => covered.push(p.id_cliente),
                false => rest.push(p.id_cliente),
            }
        }
    }
    rest.extend(ctx.parents.keys().filter(|id| !covered.contains(id)));
    let mut out = TurnedOff::new();
    fold_preferences(&by_card, &covered, defaults, &mut out);
    if !rest.is_empty() {
        let rows = preference_rows(tx, LOAD_PREFERENCES, &rest, defaults).await?;
        fold_preferences(&rows, &rest, defaults, &mut out);
    }
    ctx.turned_off = out;
    Ok(())
}

/// The channels these clients turned off per type in the portal (the drain, the sweeps and the fallback share it).
pub async fn turned_off(
    tx: &impl GenericClient,
    clients: &[i32],
    defaults: &PreferenceDefaults,
) -> Result<TurnedOff, DbError> {
    let mut out = TurnedOff::new();
    if clients.is_empty() {
        return Ok(out);
    }
    let rows = preference_rows(tx, LOAD_PREFERENCES, &clients, defaults).await?;
    fold_preferences(&rows, clients, defaults, &mut out);
    Ok(out)
}

async fn preference_rows(
    tx: &impl GenericClient,
    sql: &str,
    keys: &(dyn tokio_postgres::types::ToSql + Sync),
    defaults: &PreferenceDefaults,
) -> Result<Vec<tokio_postgres::Row>, DbError> {
    let tipos: Vec<&str> = NotificationType::ALL.iter().map(|t| t.as_str()).collect();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
        [keys, &tipos, &defaults.email, &defaults.sms, &defaults.whatsapp, &defaults.portal];
    Ok(tx.query(&tx.prepare_cached(sql).await?, &params).await?)
}

/// Adds to `out` what the preference rows say for `clients` (rows of other clients are ignored).
fn fold_preferences(rows: &[tokio_postgres::Row], clients: &[i32], defaults: &PreferenceDefaults, out: &mut TurnedOff) {
    let wanted: HashSet<i32> = clients.iter().copied().collect();
    let mut with_account = HashSet::new();
    for r in rows {
        let (id, tipo): (i32, String) = (r.get(0), r.get(1));
        if !wanted.contains(&id) {
            continue;
        }
        with_account.insert(id);
        let Ok(t) = NotificationType::parse(&tipo) else { continue };
        for (i, channel) in
            [(2, ChannelKind::Email), (3, ChannelKind::Sms), (4, ChannelKind::WhatsApp), (5, ChannelKind::Portal)]
        {
            if r.get::<_, Option<bool>>(i).unwrap_or(false) {
                let said = r.get::<_, Option<bool>>(i + 4).unwrap_or(false);
                out.insert(id, t, channel, if said { OffBy::Portal } else { OffBy::Default });
            }
        }
    }
    // A parent with no portal account has said nothing: a channel that is off by default stays off for them.
    let off_by_default: Vec<ChannelKind> = ChannelKind::ALL.into_iter().filter(|c| !defaults.get(*c)).collect();
    for id in wanted.iter().filter(|id| !with_account.contains(*id)) {
        for t in NotificationType::ALL {
            for c in &off_by_default {
                out.insert(*id, t, *c, OffBy::Default);
            }
        }
    }
}

async fn load_card_rows(
    tx: &impl GenericClient,
    ids: &[String],
    cards: &mut std::collections::HashMap<String, Card>,
) -> Result<(), DbError> {
    {
        for r in tx.query(&tx.prepare_cached(LOAD_CARDS).await?, &[&ids]).await? {
            let student =
                r.get::<_, Option<i32>>(6).map(|id_hijo| Student { id_hijo, nombre: r.get(7), apellido: r.get(8) });
            let parent = r.get::<_, Option<i32>>(9).map(|id_cliente| Parent {
                id_cliente,
                nombres: r.get(10),
                apellidos: r.get(11),
                email: r.get(12),
                telefono: r.get(13),
                activo: r.get::<_, Option<bool>>(14).unwrap_or(true),
            });
            let card = Card {
                nro_tarjeta: r.get(0),
                saldo_actual: r.get(1),
                saldo_alerta: r.get::<_, Option<i64>>(2).unwrap_or(0),
                estado: r.get::<_, Option<String>>(3).unwrap_or_default(),
                notificar_saldo_bajo: r.get::<_, Option<bool>>(4).unwrap_or(true),
                ultima_notificacion_saldo: r.get::<_, Option<SystemTime>>(5).map(ts),
                student,
                parent,
            };
            cards.insert(card.nro_tarjeta.clone(), card);
        }
    }
    Ok(())
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
