//! The portal's notice preferences (`usuario_portal`, `preferencia_notificacion`): which channels each client
//! turned off per type. The drain, the sweeps and the fallback share these queries.

use std::collections::HashSet;

use deadpool_postgres::GenericClient;

use crate::config::PreferenceDefaults;
use crate::db::DbError;
use crate::domain::{ChannelKind, NotificationType};
use crate::rules::{Context, OffBy, TurnedOff};

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
pub const LOAD_PREFERENCES_BY_CARD: &str = preferences_sql!(
    "u.id_cliente IN (SELECT h.id_cliente_responsable FROM tarjetas c JOIN hijos h ON h.id_hijo = c.id_hijo
                      WHERE c.nro_tarjeta = ANY($1))"
);

/// The preferences of every client in the context: from the rows loaded by card beside the cards, and by id for
/// any client those did not cover (a manual row's parent, a card loaded later).
pub async fn load_into(
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
pub fn fold_preferences(
    rows: &[tokio_postgres::Row],
    clients: &[i32],
    defaults: &PreferenceDefaults,
    out: &mut TurnedOff,
) {
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

/// The preference rows of the cards' parents (see [`LOAD_PREFERENCES_BY_CARD`]), for [`load_into`].
pub async fn by_card(
    tx: &impl GenericClient,
    cards: &[String],
    defaults: &PreferenceDefaults,
) -> Result<Vec<tokio_postgres::Row>, DbError> {
    preference_rows(tx, LOAD_PREFERENCES_BY_CARD, &cards, defaults).await
}
