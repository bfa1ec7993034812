//! The staff tools' statements on requests (`requests list|show|resend|cancel`, `channel pause|resume`, the demo):
//! the SQL and the rows; the commands' logic and output stay in [`crate::ops`] and [`crate::operator_pauses`].

use std::time::SystemTime;

use jiff::Timestamp;
use serde_json::Value as Json;
use tokio_postgres::{Client, GenericClient, Row};

use super::key::next_key_sql;
use super::optout_sql::opted_out;
use super::state::estado_sql;

fn timestamp(t: SystemTime) -> Timestamp {
    Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The validated filters of `requests list`.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub estado: Option<String>,
    pub tipo: Option<String>,
    pub destino: Option<String>,
    pub tarjeta: Option<String>,
    pub cliente: Option<i32>,
    pub since: Option<Timestamp>,
    pub limit: i64,
}

/// One line of `requests list`.
#[derive(Debug, Clone)]
pub struct RequestRow {
    pub id: i64,
    pub creada: Option<Timestamp>,
    pub tipo: Option<String>,
    pub destino: Option<String>,
    pub destinatario: Option<String>,
    pub estado: String,
    pub intentos: i32,
    pub estado_entrega: Option<String>,
    pub ultimo_error: Option<String>,
    pub nro_tarjeta: Option<String>,
    pub id_cliente: Option<i32>,
    pub actualizada: Option<Timestamp>,
}

impl RequestRow {
    fn from_row(r: &Row) -> Result<RequestRow, tokio_postgres::Error> {
        Ok(RequestRow {
            id: r.try_get("id_solicitud")?,
            creada: r.try_get::<_, Option<SystemTime>>("creada")?.map(timestamp),
            tipo: r.try_get("tipo")?,
            destino: r.try_get("destino")?,
            destinatario: r.try_get("destinatario")?,
            estado: r.try_get("estado")?,
            intentos: r.try_get("intentos")?,
            estado_entrega: r.try_get("estado_entrega")?,
            ultimo_error: r.try_get("ultimo_error")?,
            nro_tarjeta: r.try_get("nro_tarjeta")?,
            id_cliente: r.try_get("id_cliente")?,
            actualizada: r.try_get::<_, Option<SystemTime>>("actualizado_en")?.map(timestamp),
        })
    }
}

// Newest first by id (an identity: creation order), so the primary key serves the LIMIT.
const LIST: &str = "
    SELECT id_solicitud, coalesce(fecha_solicitud, actualizado_en) AS creada, tipo, destino, destinatario, estado,
           intentos, estado_entrega, ultimo_error, nro_tarjeta, id_cliente, actualizado_en
    FROM solicitudes_notificacion
    WHERE ($1::text IS NULL OR estado = $1) AND ($2::text IS NULL OR tipo = $2) AND ($3::text IS NULL OR destino = $3)
      AND ($4::text IS NULL OR nro_tarjeta = $4) AND ($5::int4 IS NULL OR id_cliente = $5)
      AND ($6::timestamptz IS NULL OR fecha_solicitud >= $6 OR (fecha_solicitud IS NULL AND actualizado_en >= $6))
    ORDER BY id_solicitud DESC
    LIMIT $7";

/// `requests list`: the newest requests matching `f`.
pub async fn list(client: &Client, f: &Filter) -> Result<Vec<RequestRow>, tokio_postgres::Error> {
    let since = f.since.map(SystemTime::from);
    let rows = client.query(LIST, &[&f.estado, &f.tipo, &f.destino, &f.tarjeta, &f.cliente, &since, &f.limit]).await?;
    rows.iter().map(RequestRow::from_row).collect()
}

const COLUMNS: &str = "
    SELECT attname::text FROM pg_attribute
    WHERE attrelid = 'solicitudes_notificacion'::regclass AND attnum > 0 AND NOT attisdropped
    ORDER BY attnum";

const ROW_AS_JSON: &str = "SELECT to_jsonb(s) FROM solicitudes_notificacion s WHERE id_solicitud = $1";

/// Every column of request `id` in table order, as PostgreSQL renders it to JSON; `None` when there is no such
/// request.
pub async fn columns(client: &Client, id: i64) -> Result<Option<Vec<(String, Json)>>, tokio_postgres::Error> {
    let Some(row) = client.query_opt(ROW_AS_JSON, &[&id]).await? else {
        return Ok(None);
    };
    let Json::Object(mut values) = row.get::<_, Json>(0) else {
        return Ok(None);
    };
    let mut columns = Vec::with_capacity(values.len());
    for r in client.query(COLUMNS, &[]).await? {
        let name: String = r.get(0);
        if let Some(v) = values.remove(&name) {
            columns.push((name, v));
        }
    }
    Ok(Some(columns))
}

/// A request locked for `resend`.
#[derive(Debug, Clone)]
pub struct ResendLock {
    pub estado: String,
    /// The service's own request (`clave_dedup`), not a POS row it never took.
    pub has_key: bool,
    /// The address opted out of the channel.
    pub opted_out: bool,
}

pub(crate) const LOCK_FOR_RESEND: &str = concat!(
    "
    SELECT s.estado, s.clave_dedup IS NOT NULL,
           ",
    opted_out!("s", "", "\n                   ", "\n                     ", " "),
    "
    FROM solicitudes_notificacion s WHERE s.id_solicitud = $1 FOR UPDATE"
);

pub async fn lock_for_resend(
    client: &impl GenericClient,
    id: i64,
) -> Result<Option<ResendLock>, tokio_postgres::Error> {
    Ok(client.query_opt(LOCK_FOR_RESEND, &[&id]).await?.map(|r| ResendLock {
        estado: r.get(0),
        has_key: r.get(1),
        opted_out: r.get(2),
    }))
}

// Whether the fallback pass already created the next link of this request's chain: the key the pass gives it
// (fallback::Link::next, requests::key::DedupKey::next_link), or any later link of the chain. Run after
// LOCK_FOR_RESEND, as its own statement, so its snapshot sees a next link committed by a fallback pass the lock
// waited for (the pass then skips the locked row).
pub(crate) const NEXT_LINK: &str = concat!(
    "
    SELECT s.canales_respaldo IS NOT NULL AND EXISTS (
        SELECT 1 FROM solicitudes_notificacion n
        WHERE n.clave_dedup = ",
    next_key_sql!("s"),
    "
           OR (n.id_solicitud_origen = coalesce(s.id_solicitud_origen, s.id_solicitud) AND n.id_solicitud > s.id_solicitud))
    FROM solicitudes_notificacion s WHERE s.id_solicitud = $1"
);

pub async fn next_link_exists(client: &impl GenericClient, id: i64) -> Result<bool, tokio_postgres::Error> {
    Ok(client.query_one(NEXT_LINK, &[&id]).await?.get(0))
}

// Fresh attempts, due now, or when the lease a cancel kept runs out (see ops::requests's module doc); the delivery
// state of the earlier attempt is history (kept in cantina_notify_historial). A link of a fallback chain is marked
// followed (respaldo_creado_en) when the fallback pass created the next link, and also when a cancel stopped the
// chain; the mark stays only when the next link exists ($2), otherwise the resent request, failing again, could
// never move on to the next channel.
pub(crate) const RESEND: &str = concat!(
    "
    UPDATE solicitudes_notificacion
    SET estado = ",
    estado_sql!(Pendiente),
    ", intentos = 0, proximo_intento = greatest(now(), proximo_intento), ultimo_error = NULL,
        estado_entrega = NULL, espera_recibo_hasta = NULL, actualizado_en = now(),
        respaldo_creado_en = CASE WHEN $2 THEN respaldo_creado_en END
    WHERE id_solicitud = $1 AND estado IN (",
    estado_sql!(Error),
    ", ",
    estado_sql!(Omitido),
    ") AND clave_dedup IS NOT NULL
    RETURNING proximo_intento > now(), proximo_intento"
);

/// A resent request: whether it waits for a lease (and until when).
#[derive(Debug, Clone, Copy)]
pub struct Resent {
    pub waits: bool,
    pub due: Option<SystemTime>,
}

pub async fn resend(client: &impl GenericClient, id: i64, followed: bool) -> Result<Resent, tokio_postgres::Error> {
    let r = client.query_one(RESEND, &[&id, &followed]).await?;
    Ok(Resent { waits: r.get(0), due: r.get(1) })
}

/// A request locked for `cancel`.
#[derive(Debug, Clone)]
pub struct CancelLock {
    pub estado: String,
    pub intentos: i32,
    /// Claimed by a dispatcher right now.
    pub in_flight: bool,
    /// A link of a fallback chain whose next link is not created yet.
    pub chain: bool,
}

// Claimed right now: Pendiente, tried, under a lease (due later), and no outcome recorded for this attempt yet (a
// retry outcome writes a 'reintento' history row with the attempt number; a claim writes none).
pub(crate) const LOCK_FOR_CANCEL: &str = concat!(
    "
    SELECT s.estado, s.intentos,
           s.estado = ",
    estado_sql!(Pendiente),
    " AND s.intentos > 0 AND s.proximo_intento > now()
             AND NOT EXISTS (SELECT 1 FROM cantina_notify_historial h
                             WHERE h.id_solicitud = s.id_solicitud AND h.intentos = s.intentos
                               AND h.evento = 'reintento'),
           s.canales_respaldo IS NOT NULL AND s.respaldo_creado_en IS NULL
    FROM solicitudes_notificacion s WHERE s.id_solicitud = $1 FOR UPDATE"
);

pub async fn lock_for_cancel(
    client: &impl GenericClient,
    id: i64,
) -> Result<Option<CancelLock>, tokio_postgres::Error> {
    Ok(client.query_opt(LOCK_FOR_CANCEL, &[&id]).await?.map(|r| CancelLock {
        estado: r.get(0),
        intentos: r.get(1),
        in_flight: r.get(2),
        chain: r.get(3),
    }))
}

// A cancelled link of a fallback chain is marked followed, so the fallback pass does not send the notice on the next
// channel: the operator cancelled the notice, not one channel of it. A request claimed right now ($3) keeps its
// lease in proximo_intento, for a later resend to wait for (see ops::requests's module doc).
pub(crate) const CANCEL: &str = concat!(
    "
    UPDATE solicitudes_notificacion
    SET estado = ",
    estado_sql!(Omitido),
    ", ultimo_error = $2, proximo_intento = CASE WHEN $3 THEN proximo_intento END,
        actualizado_en = now(),
        respaldo_creado_en = CASE WHEN canales_respaldo IS NOT NULL THEN coalesce(respaldo_creado_en, now())
                                  ELSE respaldo_creado_en END
    WHERE id_solicitud = $1 AND estado = ",
    estado_sql!(Pendiente)
);

pub async fn cancel(
    client: &impl GenericClient,
    id: i64,
    error: &str,
    in_flight: bool,
) -> Result<u64, tokio_postgres::Error> {
    client.execute(CANCEL, &[&id, &error, &in_flight]).await
}

pub(crate) const PENDING_ON_CHANNEL: &str = concat!(
    "SELECT count(*) FROM solicitudes_notificacion WHERE estado = ",
    estado_sql!(Pendiente),
    " AND destino = $1"
);

/// `Pendiente` requests of a channel (`destino`): what a pause holds back, what a resume releases.
pub async fn pending_on_channel(client: &Client, destino: &str) -> Result<i64, tokio_postgres::Error> {
    client.query_one(PENDING_ON_CHANNEL, &[&destino]).await?.try_get(0)
}

// ---------------------------------------------------------------------------------------------------------------
// The demo's reads (a development tool, `cantina-notify demo`).

/// One request of a card as the demo prints it.
#[derive(Debug, Clone)]
pub struct DemoRequest {
    pub id: i64,
    pub tipo: String,
    pub destino: String,
    pub estado: String,
    /// `fecha_envio` as `DD/MM/YYYY HH24:MI:SS` in America/Asuncion.
    pub enviada: Option<String>,
    pub mensaje: Option<String>,
}

const DEMO_CARD_REQUESTS: &str = "
            SELECT id_solicitud, tipo, destino, estado, to_char(fecha_envio AT TIME ZONE 'America/Asuncion', 'DD/MM/YYYY HH24:MI:SS') AS enviada, mensaje
             FROM solicitudes_notificacion WHERE nro_tarjeta = $1 ORDER BY id_solicitud";

/// The requests of a card, oldest first.
pub async fn demo_card_requests(client: &Client, card: &str) -> Result<Vec<DemoRequest>, tokio_postgres::Error> {
    client
        .query(DEMO_CARD_REQUESTS, &[&card])
        .await?
        .iter()
        .map(|r| {
            Ok(DemoRequest {
                id: r.try_get("id_solicitud")?,
                tipo: r.try_get("tipo")?,
                destino: r.try_get("destino")?,
                estado: r.try_get("estado")?,
                enviada: r.try_get("enviada")?,
                mensaje: r.try_get("mensaje")?,
            })
        })
        .collect()
}

const DEMO_CARD_ERROR: &str = concat!(
    "SELECT ultimo_error FROM solicitudes_notificacion WHERE nro_tarjeta = $1 AND estado = ",
    estado_sql!(Error)
);

/// `Some(reason)` once a request of the card is `Error`.
pub async fn demo_card_error(client: &Client, card: &str) -> Result<Option<Option<String>>, tokio_postgres::Error> {
    Ok(client.query_opt(DEMO_CARD_ERROR, &[&card]).await?.map(|r| r.get(0)))
}

const DEMO_CARD_OUTCOMES: &str = concat!(
    "SELECT count(*) FILTER (WHERE estado = ",
    estado_sql!(Enviado),
    "), count(*) FILTER (WHERE estado = ",
    estado_sql!(Error),
    "), max(ultimo_error)
                 FROM solicitudes_notificacion WHERE nro_tarjeta = $1 AND tipo = $2"
);

/// (sent, failed, a failure's reason) of a card's requests of one type.
pub async fn demo_card_outcomes(
    client: &Client,
    card: &str,
    tipo: &str,
) -> Result<(i64, i64, Option<String>), tokio_postgres::Error> {
    let row = client.query_one(DEMO_CARD_OUTCOMES, &[&card, &tipo]).await?;
    Ok((row.get(0), row.get(1), row.get(2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each statement built with the state, opt-out and key macros is the text it was, literals and all.
    #[test]
    fn the_statements_are_the_ones_they_were() {
        assert_eq!(
            LOCK_FOR_RESEND,
            "
    SELECT s.estado, s.clave_dedup IS NOT NULL,
           EXISTS (SELECT 1 FROM cantina_notify_bajas b
                   WHERE b.fecha_alta IS NULL AND b.destino = s.destino
                     AND b.destinatario = CASE WHEN s.destino = 'Email' THEN lower(s.destinatario) ELSE s.destinatario END)
    FROM solicitudes_notificacion s WHERE s.id_solicitud = $1 FOR UPDATE"
        );
        assert_eq!(
            NEXT_LINK,
            "
    SELECT s.canales_respaldo IS NOT NULL AND EXISTS (
        SELECT 1 FROM solicitudes_notificacion n
        WHERE n.clave_dedup = regexp_replace(s.clave_dedup, ':[^:]*$', '')
                              || ':' || btrim(split_part(s.canales_respaldo, ',', 1))
           OR (n.id_solicitud_origen = coalesce(s.id_solicitud_origen, s.id_solicitud) AND n.id_solicitud > s.id_solicitud))
    FROM solicitudes_notificacion s WHERE s.id_solicitud = $1"
        );
        assert_eq!(
            RESEND,
            "
    UPDATE solicitudes_notificacion
    SET estado = 'Pendiente', intentos = 0, proximo_intento = greatest(now(), proximo_intento), ultimo_error = NULL,
        estado_entrega = NULL, espera_recibo_hasta = NULL, actualizado_en = now(),
        respaldo_creado_en = CASE WHEN $2 THEN respaldo_creado_en END
    WHERE id_solicitud = $1 AND estado IN ('Error', 'Omitido') AND clave_dedup IS NOT NULL
    RETURNING proximo_intento > now(), proximo_intento"
        );
        assert_eq!(
            LOCK_FOR_CANCEL,
            "
    SELECT s.estado, s.intentos,
           s.estado = 'Pendiente' AND s.intentos > 0 AND s.proximo_intento > now()
             AND NOT EXISTS (SELECT 1 FROM cantina_notify_historial h
                             WHERE h.id_solicitud = s.id_solicitud AND h.intentos = s.intentos
                               AND h.evento = 'reintento'),
           s.canales_respaldo IS NOT NULL AND s.respaldo_creado_en IS NULL
    FROM solicitudes_notificacion s WHERE s.id_solicitud = $1 FOR UPDATE"
        );
        assert_eq!(
            CANCEL,
            "
    UPDATE solicitudes_notificacion
    SET estado = 'Omitido', ultimo_error = $2, proximo_intento = CASE WHEN $3 THEN proximo_intento END,
        actualizado_en = now(),
        respaldo_creado_en = CASE WHEN canales_respaldo IS NOT NULL THEN coalesce(respaldo_creado_en, now())
                                  ELSE respaldo_creado_en END
    WHERE id_solicitud = $1 AND estado = 'Pendiente'"
        );
        assert_eq!(
            PENDING_ON_CHANNEL,
            "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Pendiente' AND destino = $1"
        );
        assert_eq!(
            DEMO_CARD_ERROR,
            "SELECT ultimo_error FROM solicitudes_notificacion WHERE nro_tarjeta = $1 AND estado = 'Error'"
        );
        assert_eq!(
            DEMO_CARD_OUTCOMES,
            "SELECT count(*) FILTER (WHERE estado = 'Enviado'), count(*) FILTER (WHERE estado = 'Error'), max(ultimo_error)
                 FROM solicitudes_notificacion WHERE nro_tarjeta = $1 AND tipo = $2"
        );
    }
}
