//! Which channels each client has on per type, from three places in this order: the explicit choices the service
//! keeps (`cantina_notify_preferencias_cliente`, set with `cantina-notify preferences`), the portal's preferences
//! (`usuario_portal`, `preferencia_notificacion`), the configured defaults. An opt-in type
//! ([`NotificationType::opt_in`]) is on only with an explicit row saying so. The drain, the sweeps, the fallback
//! and the CLI share these queries.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use deadpool_postgres::GenericClient;
use jiff::Timestamp;

use crate::config::PreferenceDefaults;
use crate::db::DbError;
use crate::domain::{ChannelKind, NotificationType};
use crate::rules::{Context, OffBy, TurnedOff};

/// Per client and type of the clients in `$clients` (a subquery on $1): the portal's columns (NULL when the client
/// has no active portal account) and the explicit choices (NULL when there are none), one row where either exists.
/// Portal: off only if every active account has it off for the type; no preference row, or NULL in the column,
/// means the configured default ($3–$6). Explicit: the rows' channels, values, authors and times, as arrays.
macro_rules! preferences_sql {
    ($clients:literal) => {
        concat!(
            "WITH k(id_cliente) AS (",
            $clients,
            "),
             portal AS (
                SELECT u.id_cliente, t.tipo,
                       bool_and(NOT coalesce(p.email_activo, $3)) AS email_off,
                       bool_and(NOT coalesce(p.sms_activo, $4)) AS sms_off,
                       bool_and(NOT coalesce(p.whatsapp_activo, $5)) AS whatsapp_off,
                       bool_and(NOT coalesce(p.push_activo, $6)) AS push_off,
                       bool_or(p.email_activo IS NOT NULL) AS email_said, bool_or(p.sms_activo IS NOT NULL) AS sms_said,
                       bool_or(p.whatsapp_activo IS NOT NULL) AS whatsapp_said,
                       bool_or(p.push_activo IS NOT NULL) AS push_said
                FROM usuario_portal u
                CROSS JOIN unnest($2::text[]) AS t(tipo)
                LEFT JOIN preferencia_notificacion p
                       ON p.id_usuario_portal = u.id_usuario_portal AND p.tipo_notificacion = t.tipo
                WHERE u.id_cliente IN (SELECT id_cliente FROM k) AND coalesce(u.activo, true)
                GROUP BY u.id_cliente, t.tipo),
             explicito AS (
                SELECT e.id_cliente, e.tipo::text AS tipo, array_agg(e.canal::text) AS canales,
                       array_agg(e.activo) AS activos, array_agg(e.cambiado_por) AS por, array_agg(e.cambiado_en) AS en
                FROM cantina_notify_preferencias_cliente e
                WHERE e.id_cliente IN (SELECT id_cliente FROM k) AND e.tipo = ANY($2::text[])
                GROUP BY e.id_cliente, e.tipo)
             SELECT coalesce(p.id_cliente, x.id_cliente), coalesce(p.tipo, x.tipo),
                    p.email_off, p.sms_off, p.whatsapp_off, p.push_off,
                    p.email_said, p.sms_said, p.whatsapp_said, p.push_said,
                    x.canales, x.activos, x.por, x.en
             FROM portal p FULL JOIN explicito x ON x.id_cliente = p.id_cliente AND x.tipo = p.tipo"
        )
    };
}

/// By client ids.
const LOAD_PREFERENCES: &str = preferences_sql!("SELECT unnest($1::int4[])");

/// By the cards' parents, so the preferences load in the same round trip as the cards.
pub const LOAD_PREFERENCES_BY_CARD: &str = preferences_sql!(
    "SELECT h.id_cliente_responsable FROM tarjetas c JOIN hijos h ON h.id_hijo = c.id_hijo
     WHERE c.nro_tarjeta = ANY($1)"
);

/// Where a client's value for a type and channel comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A row in `cantina_notify_preferencias_cliente`: who set it, and when.
    Explicit { por: String, en: Timestamp },
    /// The portal's `preferencia_notificacion`.
    Portal,
    /// Nobody said: the configured default (`CANTINA__PREFERENCES__…`).
    Default,
    /// An opt-in type without an explicit row: off whatever the portal or the defaults say.
    OptIn,
}

/// A client's value for one type and channel, and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub tipo: NotificationType,
    pub channel: ChannelKind,
    pub on: bool,
    pub source: Source,
}

/// What the rows say about one client and type.
#[derive(Default)]
struct Said {
    /// Per channel: off, and whether any portal account said so explicitly. `None`: no active portal account.
    portal: Option<[(bool, bool); 4]>,
    explicit: HashMap<ChannelKind, (bool, String, Timestamp)>,
}

const CHANNELS: [ChannelKind; 4] = [ChannelKind::Email, ChannelKind::Sms, ChannelKind::WhatsApp, ChannelKind::Portal];

fn said_by(rows: &[tokio_postgres::Row], wanted: &HashSet<i32>) -> HashMap<(i32, NotificationType), Said> {
    let mut out: HashMap<(i32, NotificationType), Said> = HashMap::new();
    for r in rows {
        let (id, tipo): (i32, String) = (r.get(0), r.get(1));
        if !wanted.contains(&id) {
            continue;
        }
        let Ok(t) = NotificationType::parse(&tipo) else { continue };
        let said = out.entry((id, t)).or_default();
        // The portal's columns are all NULL for a client without an active portal account.
        if r.get::<_, Option<bool>>(2).is_some() {
            let column = |i: usize| r.get::<_, Option<bool>>(i).unwrap_or(false);
            said.portal = Some(std::array::from_fn(|i| (column(2 + i), column(6 + i))));
        }
        let canales: Vec<String> = r.get::<_, Option<Vec<String>>>(10).unwrap_or_default();
        let activos: Vec<bool> = r.get::<_, Option<Vec<bool>>>(11).unwrap_or_default();
        let por: Vec<String> = r.get::<_, Option<Vec<String>>>(12).unwrap_or_default();
        let en: Vec<SystemTime> = r.get::<_, Option<Vec<SystemTime>>>(13).unwrap_or_default();
        for (((canal, activo), por), en) in canales.iter().zip(activos).zip(por).zip(en) {
            if let Ok(channel) = ChannelKind::parse(canal) {
                let en = Timestamp::try_from(en).unwrap_or(Timestamp::UNIX_EPOCH);
                said.explicit.insert(channel, (activo, por, en));
            }
        }
    }
    out
}

/// The value for one channel: explicit row, then opt-in (off), then the portal, then the default.
fn decide(said: Option<&Said>, tipo: NotificationType, channel: ChannelKind, defaults: &PreferenceDefaults) -> Choice {
    let i = CHANNELS.iter().position(|c| *c == channel).unwrap_or(0);
    let (on, source) = match said.and_then(|s| s.explicit.get(&channel)) {
        Some((activo, por, en)) => (*activo, Source::Explicit { por: por.clone(), en: *en }),
        None if tipo.opt_in() => (false, Source::OptIn),
        None => match said.and_then(|s| s.portal) {
            Some(portal) => {
                let (off, portal_said) = portal[i];
                (!off, if portal_said { Source::Portal } else { Source::Default })
            }
            None => (defaults.get(channel), Source::Default),
        },
    };
    Choice { tipo, channel, on, source }
}

/// Every type × channel for each client of `clients`, from the preference rows (rows of other clients are ignored).
pub fn fold_choices(
    rows: &[tokio_postgres::Row],
    clients: &[i32],
    defaults: &PreferenceDefaults,
) -> Vec<(i32, Choice)> {
    let wanted: HashSet<i32> = clients.iter().copied().collect();
    let said = said_by(rows, &wanted);
    let mut out = Vec::new();
    for id in clients {
        for t in NotificationType::ALL {
            for c in CHANNELS {
                out.push((*id, decide(said.get(&(*id, t)), t, c, defaults)));
            }
        }
    }
    out
}

/// Adds to `out` the channels that are off for `clients`, and why (rows of other clients are ignored).
pub fn fold_preferences(
    rows: &[tokio_postgres::Row],
    clients: &[i32],
    defaults: &PreferenceDefaults,
    out: &mut TurnedOff,
) {
    let mut unique = clients.to_vec();
    unique.sort_unstable();
    unique.dedup();
    for (id, choice) in fold_choices(rows, &unique, defaults) {
        if choice.on {
            continue;
        }
        let by = match choice.source {
            Source::Explicit { por, en } => OffBy::Explicit { por, en },
            Source::Portal => OffBy::Portal,
            Source::Default => OffBy::Default,
            Source::OptIn => OffBy::OptIn,
        };
        out.insert(id, choice.tipo, choice.channel, by);
    }
}

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

/// The channels these clients have off per type (the drain, the sweeps and the fallback share it).
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

/// Every type × channel of one client, with its value and where it comes from (`preferences list`).
pub async fn choices(
    tx: &impl GenericClient,
    id_cliente: i32,
    defaults: &PreferenceDefaults,
) -> Result<Vec<Choice>, DbError> {
    let rows = preference_rows(tx, LOAD_PREFERENCES, &[id_cliente].as_slice(), defaults).await?;
    Ok(fold_choices(&rows, &[id_cliente], defaults).into_iter().map(|(_, c)| c).collect())
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

/// The preference rows of the cards' parents (see [`LOAD_PREFERENCES_BY_CARD`]), for [`load_into`].
pub async fn by_card(
    tx: &impl GenericClient,
    cards: &[String],
    defaults: &PreferenceDefaults,
) -> Result<Vec<tokio_postgres::Row>, DbError> {
    preference_rows(tx, LOAD_PREFERENCES_BY_CARD, &cards, defaults).await
}

/// Records a client's explicit choice for a type and channel (`preferences set`); replaces an earlier one.
const SET_EXPLICIT: &str = "
    INSERT INTO cantina_notify_preferencias_cliente (id_cliente, tipo, canal, activo, cambiado_en, cambiado_por)
    VALUES ($1, $2, $3, $4, now(), $5)
    ON CONFLICT (id_cliente, tipo, canal)
    DO UPDATE SET activo = EXCLUDED.activo, cambiado_en = EXCLUDED.cambiado_en, cambiado_por = EXCLUDED.cambiado_por";

/// Forgets a client's explicit choice (`preferences unset`): the portal and the defaults decide again.
const UNSET_EXPLICIT: &str =
    "DELETE FROM cantina_notify_preferencias_cliente WHERE id_cliente = $1 AND tipo = $2 AND canal = $3";

/// Sets the explicit choice of `id_cliente` for `tipo` by `channel` to `activo`, recorded as changed by `por`.
pub async fn set_explicit(
    tx: &impl GenericClient,
    id_cliente: i32,
    tipo: NotificationType,
    channel: ChannelKind,
    activo: bool,
    por: &str,
) -> Result<(), DbError> {
    tx.execute(SET_EXPLICIT, &[&id_cliente, &tipo.as_str(), &channel.destino(), &activo, &por]).await?;
    Ok(())
}

/// Deletes the explicit choice; `false` if there was none.
pub async fn unset_explicit(
    tx: &impl GenericClient,
    id_cliente: i32,
    tipo: NotificationType,
    channel: ChannelKind,
) -> Result<bool, DbError> {
    Ok(tx.execute(UNSET_EXPLICIT, &[&id_cliente, &tipo.as_str(), &channel.destino()]).await? > 0)
}
