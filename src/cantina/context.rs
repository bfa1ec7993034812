//! The rows a batch of outbox events refers to, loaded for the rules.

use std::collections::HashSet;

use deadpool_postgres::GenericClient;

use crate::config::PreferenceDefaults;
use crate::db::DbError;
use crate::domain::{EventKind, OutboxEvent};
use crate::rules::{Context, ManualRow, Recharge};

const LOAD_RECHARGES: &str = "
    SELECT id_carga, nro_tarjeta, monto_cargado, estado, coalesce(fecha_confirmacion, fecha_carga, now()), referencia
    FROM cargas_saldo WHERE id_carga = ANY($1)";

/// Everything the rules need about a batch of events, in as few round trips as the loads allow: recharges, the
/// cards already known, the POS's manual rows (`manual`, a load of the requests table the drain hands in) and the
/// cards' preferences pipelined together; then what those named.
pub async fn load_context(
    tx: &impl GenericClient,
    events: &[OutboxEvent],
    card_hints: Vec<String>,
    defaults: &PreferenceDefaults,
    manual: impl Future<Output = Result<Vec<ManualRow>, DbError>>,
) -> Result<Context, DbError> {
    let mut ctx = Context::default();
    let mut card_ids: HashSet<String> = card_hints.into_iter().collect();
    let mut recharge_ids = Vec::new();
    for e in events {
        match &e.kind {
            EventKind::RecargaConfirmada { id_carga } => recharge_ids.push(*id_carga),
            EventKind::SaldoBajo { nro_tarjeta, .. }
            | EventKind::TarjetaBloqueada { nro_tarjeta }
            | EventKind::TarjetaVencida { nro_tarjeta } => {
                card_ids.insert(nro_tarjeta.clone());
            }
            EventKind::SolicitudManual { .. } | EventKind::Invalid { .. } => {}
        }
    }
    // Recharges, the cards already known and the manual rows in one round trip.
    let recharges = tx.prepare_cached(LOAD_RECHARGES).await?;
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
                false => super::cards::load_into(tx, &known, &mut ctx.cards).await,
            }
        },
        manual,
        async {
            match known.is_empty() {
                true => Ok(Vec::new()),
                false => super::preferences::by_card(tx, &known, defaults).await,
            }
        },
    )?;
    for r in recharge_rows {
        let recharge = Recharge {
            id_carga: r.get("id_carga"),
            nro_tarjeta: r.get("nro_tarjeta"),
            monto: r.get("monto_cargado"),
            estado: r.get::<_, Option<String>>("estado").unwrap_or_default(),
            // The unnamed `coalesce(…)`, by the name PostgreSQL gives it (the hot path's text stays as it was).
            fecha: super::ts(r.get("coalesce")),
            referencia: r.get("referencia"),
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
            for p in super::parents::load(tx, &parent_ids).await? {
                ctx.parents.insert(p.id_cliente, p);
            }
        }
    }
    // Cards not loaded yet: a manual row's, or a recharge whose card differs from the event's copy.
    let missing: Vec<String> = card_ids.into_iter().filter(|c| !ctx.cards.contains_key(c)).collect();
    if !missing.is_empty() {
        super::cards::load_into(tx, &missing, &mut ctx.cards).await?;
    }
    super::preferences::load_into(tx, &mut ctx, preference_rows_by_card, &known_keys, defaults).await?;
    Ok(ctx)
}
