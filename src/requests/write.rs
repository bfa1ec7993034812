//! Writing new requests: one `INSERT … ON CONFLICT (clave_dedup) DO NOTHING` for the drain, the sweeps and the
//! fallback, which also claims the ones the dispatcher of this process can take now (see [`ClaimOffer`]).

use deadpool_postgres::GenericClient;
use serde_json::Value as Json;

use super::optout_sql::opted_out;
use super::row::Claimed;
use super::state::RequestState;
use super::state::estado_sql;
use crate::db::DbError;
use crate::domain::{ChannelKind, NotificationType};
use crate::rules::NewRequest;
use crate::signing::{RowSigner, SignedFields};

// A row flagged `claim` (the dispatcher of this process has a free slot for it) is inserted already claimed, with
// the dispatcher's lease, unless its address opted out: the drain hands it over in memory and the send starts right
// after this commit, without another round trip.
//
// The same statement marks the drain's events done ($16, $17; empty for the sweeps). The new rows' `creada`
// history follows in the next statement ([`RECORD_CREATED`]), in the same round trip.
const INSERT_REQUESTS: &str = concat!("
  WITH nuevas AS (
    INSERT INTO solicitudes_notificacion
        (id_cliente, nro_tarjeta, saldo_alerta, mensaje, destino, estado, tipo, clave_dedup, destinatario, datos,
         ultimo_error, canales_respaldo, id_solicitud_origen, intentos, proximo_intento, actualizado_en, firma)
    SELECT u.id_cliente, u.nro_tarjeta, u.saldo, u.mensaje, u.destino, u.estado, u.tipo, u.clave, u.destinatario, u.datos,
           u.error, u.respaldo, u.origen, CASE WHEN c.claimed THEN 1 ELSE 0 END,
           CASE WHEN c.claimed THEN now() + make_interval(secs => $15)
                WHEN u.estado = ", estado_sql!(Pendiente), " THEN now() END,
           now(), u.firma
    FROM unnest($1::int4[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                $9::text[], $10::jsonb[], $11::text[], $12::text[], $13::int8[], $14::bool[], $18::text[])
         AS u(id_cliente, nro_tarjeta, saldo, mensaje, destino, estado, tipo, clave, destinatario, datos, error,
              respaldo, origen, claim, firma)
    CROSS JOIN LATERAL (SELECT u.claim AND u.estado = ", estado_sql!(Pendiente), " AND NOT ",
    opted_out!("u", "\n        ", "\n        ", "\n          ", " "),
    "
        AS claimed) c
    ON CONFLICT (clave_dedup) DO NOTHING
    RETURNING tipo, destino, estado, id_solicitud, intentos, destinatario, datos, clave_dedup, firma, id_cliente,
              nro_tarjeta
  ), hechas AS (
    UPDATE cantina_notify_eventos e SET procesado_en = now(), resultado = u.resultado
    FROM unnest($16::int8[], $17::text[]) AS u(id, resultado)
    -- Bounded to the listed rows whatever the cached plan's statistics (see dispatch::sent's MARK_SENT).
    WHERE e.id = ANY($16) AND e.id = u.id
  )
  SELECT tipo, destino, estado, id_solicitud, intentos, destinatario, datos, clave_dedup, firma, id_cliente, nro_tarjeta
  FROM nuevas");

/// The `creada` history rows of the requests the statement before inserted, written by the owner's function from
/// the rows themselves (migration 0020), only in a transaction marked `cantina_notify.historial = 'propio'` (the
/// history trigger skips those; otherwise the trigger wrote them and this writes nothing).
const RECORD_CREATED: &str = "SELECT cantina_notify_historial_creadas($1::text[])";

pub(crate) fn recipient_columns(r: &NewRequest) -> (&'static str, Option<String>, Option<String>) {
    match (&r.omitted, &r.recipient) {
        (Some(reason), recipient) => {
            (RequestState::Omitido.as_str(), recipient.as_ref().ok().map(|a| a.as_str()), Some(reason.clone()))
        }
        (None, Ok(addr)) => (RequestState::Pendiente.as_str(), Some(addr.as_str()), None),
        (None, Err(reason)) => (RequestState::Error.as_str(), None, Some(reason.clone())),
    }
}

/// Inserts requests in one statement with `ON CONFLICT (clave_dedup) DO NOTHING` (the rules and the sweeps share
/// it); returns (type, channel, estado) of each row that was new.
pub async fn insert_requests(
    tx: &impl GenericClient,
    signer: &RowSigner,
    requests: Vec<NewRequest>,
) -> Result<Vec<(NotificationType, ChannelKind, RequestState)>, DbError> {
    Ok(insert_and_claim(tx, signer, requests, None).await?.0)
}

/// What the dispatcher of this process can take straight from the drain.
#[derive(Debug, Clone)]
pub struct ClaimOffer {
    /// Free send slots: at most this many new requests are claimed.
    pub slots: usize,
    /// Channels the dispatcher is sending on (configured, not paused).
    pub destinos: Vec<&'static str>,
    pub lease: std::time::Duration,
}

/// [`insert_requests`], also claiming up to `offer.slots` of the new `Pendiente` requests for the dispatcher.
pub async fn insert_and_claim(
    tx: &impl GenericClient,
    signer: &RowSigner,
    requests: Vec<NewRequest>,
    offer: Option<&ClaimOffer>,
) -> Result<(Vec<(NotificationType, ChannelKind, RequestState)>, Vec<Claimed>), DbError> {
    if requests.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    write(tx, signer, requests, offer, &[], &[]).await
}

/// [`insert_and_claim`], also marking the drain's events done with their results (in the same statement).
pub async fn write(
    tx: &impl GenericClient,
    signer: &RowSigner,
    requests: Vec<NewRequest>,
    offer: Option<&ClaimOffer>,
    event_ids: &[i64],
    event_results: &[Option<String>],
) -> Result<(Vec<(NotificationType, ChannelKind, RequestState)>, Vec<Claimed>), DbError> {
    let mut slots = offer.map_or(0, |o| o.slots);
    let mut cols = InsertColumns::default();
    for r in requests {
        let claim = slots > 0
            && r.omitted.is_none()
            && r.recipient.is_ok()
            && offer.is_some_and(|o| o.destinos.contains(&r.channel.destino()));
        slots -= usize::from(claim);
        cols.claim.push(claim);
        cols.push(r, signer);
    }
    let lease = offer.map_or(0.0, |o| o.lease.as_secs_f64());
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = cols.params().to_vec();
    params.push(&cols.claim);
    params.push(&lease);
    params.push(&event_ids);
    params.push(&event_results);
    params.push(&cols.firma);
    let mut out = Vec::new();
    let mut claimed = Vec::new();
    let (insert, history) = (tx.prepare_cached(INSERT_REQUESTS).await?, tx.prepare_cached(RECORD_CREATED).await?);
    // Pipelined: the history statement runs after the insert, whose rows it reads.
    let history_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&cols.clave];
    let (rows, _) = tokio::try_join!(biased; tx.query(&insert, &params), tx.query(&history, &history_params))?;
    let claimed_at = std::time::Instant::now();
    for row in rows {
        let (tipo, destino, estado): (String, String, String) =
            (row.get("tipo"), row.get("destino"), row.get("estado"));
        let intentos: i32 = row.get("intentos");
        if intentos > 0 {
            claimed.push(Claimed::from_row(&row, false, claimed_at));
        }
        if let (Ok(t), Ok(c), Some(e)) =
            (NotificationType::parse(&tipo), ChannelKind::parse(&destino), RequestState::parse(&estado))
        {
            out.push((t, c, e));
        }
    }
    Ok((out, claimed))
}

/// The signature of a request as the row will hold it (`destinatario` and `datos` as stored; a manual row's
/// completion writes the same client, card and destino the rules resolved).
pub(crate) fn sign(signer: &RowSigner, r: &NewRequest, destinatario: Option<&str>, datos: &Json) -> String {
    signer.sign(&SignedFields {
        clave_dedup: &r.clave_dedup,
        id_cliente: Some(r.id_cliente),
        nro_tarjeta: r.nro_tarjeta.as_deref(),
        destino: Some(r.channel.destino()),
        destinatario,
        tipo: Some(r.tipo.as_str()),
        datos: Some(datos),
    })
}

/// Column arrays for the bulk insert.
#[derive(Default)]
struct InsertColumns {
    id_cliente: Vec<i32>,
    nro_tarjeta: Vec<Option<String>>,
    saldo: Vec<Option<i64>>,
    mensaje: Vec<String>,
    destino: Vec<&'static str>,
    estado: Vec<&'static str>,
    tipo: Vec<&'static str>,
    clave: Vec<String>,
    destinatario: Vec<Option<String>>,
    datos: Vec<Json>,
    error: Vec<Option<String>>,
    respaldo: Vec<Option<String>>,
    origen: Vec<Option<i64>>,
    claim: Vec<bool>,
    firma: Vec<String>,
}

impl InsertColumns {
    fn push(&mut self, r: NewRequest, signer: &RowSigner) {
        let (estado, destinatario, error) = recipient_columns(&r);
        let datos = serde_json::to_value(&r.data).unwrap_or(Json::Null);
        self.firma.push(sign(signer, &r, destinatario.as_deref(), &datos));
        self.id_cliente.push(r.id_cliente);
        self.nro_tarjeta.push(r.nro_tarjeta);
        self.saldo.push(r.saldo.map(|s| s.0));
        self.mensaje.push(crate::render::summary(&r.data));
        self.destino.push(r.channel.destino());
        self.estado.push(estado);
        self.tipo.push(r.tipo.as_str());
        self.clave.push(r.clave_dedup);
        self.destinatario.push(destinatario);
        self.datos.push(datos);
        self.error.push(error);
        self.respaldo.push(super::chain::chain_column(&r.fallback));
        self.origen.push(r.origin);
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 13] {
        [
            &self.id_cliente,
            &self.nro_tarjeta,
            &self.saldo,
            &self.mensaje,
            &self.destino,
            &self.estado,
            &self.tipo,
            &self.clave,
            &self.destinatario,
            &self.datos,
            &self.error,
            &self.respaldo,
            &self.origen,
        ]
    }
}

/// Prepares the drain's final statements before its pipeline (a prepare inside it would let COMMIT overtake the
/// insert).
pub async fn prepare(tx: &impl GenericClient) -> Result<(), DbError> {
    tx.prepare_cached(INSERT_REQUESTS).await?;
    tx.prepare_cached(RECORD_CREATED).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each statement built with the state and opt-out macros is the text it was, literals and all (the hot path's
    /// prepared statements are cached by their text; the partial indexes need the literals).
    #[test]
    fn the_statements_are_the_ones_they_were() {
        assert_eq!(
            INSERT_REQUESTS,
            "
  WITH nuevas AS (
    INSERT INTO solicitudes_notificacion
        (id_cliente, nro_tarjeta, saldo_alerta, mensaje, destino, estado, tipo, clave_dedup, destinatario, datos,
         ultimo_error, canales_respaldo, id_solicitud_origen, intentos, proximo_intento, actualizado_en, firma)
    SELECT u.id_cliente, u.nro_tarjeta, u.saldo, u.mensaje, u.destino, u.estado, u.tipo, u.clave, u.destinatario, u.datos,
           u.error, u.respaldo, u.origen, CASE WHEN c.claimed THEN 1 ELSE 0 END,
           CASE WHEN c.claimed THEN now() + make_interval(secs => $15)
                WHEN u.estado = 'Pendiente' THEN now() END,
           now(), u.firma
    FROM unnest($1::int4[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                $9::text[], $10::jsonb[], $11::text[], $12::text[], $13::int8[], $14::bool[], $18::text[])
         AS u(id_cliente, nro_tarjeta, saldo, mensaje, destino, estado, tipo, clave, destinatario, datos, error,
              respaldo, origen, claim, firma)
    CROSS JOIN LATERAL (SELECT u.claim AND u.estado = 'Pendiente' AND NOT EXISTS (
        SELECT 1 FROM cantina_notify_bajas b
        WHERE b.fecha_alta IS NULL AND b.destino = u.destino
          AND b.destinatario = CASE WHEN u.destino = 'Email' THEN lower(u.destinatario) ELSE u.destinatario END)
        AS claimed) c
    ON CONFLICT (clave_dedup) DO NOTHING
    RETURNING tipo, destino, estado, id_solicitud, intentos, destinatario, datos, clave_dedup, firma, id_cliente,
              nro_tarjeta
  ), hechas AS (
    UPDATE cantina_notify_eventos e SET procesado_en = now(), resultado = u.resultado
    FROM unnest($16::int8[], $17::text[]) AS u(id, resultado)
    -- Bounded to the listed rows whatever the cached plan's statistics (see dispatch::sent's MARK_SENT).
    WHERE e.id = ANY($16) AND e.id = u.id
  )
  SELECT tipo, destino, estado, id_solicitud, intentos, destinatario, datos, clave_dedup, firma, id_cliente, nro_tarjeta
  FROM nuevas"
        );
    }
}
