//! The fallback pass's SQL: ending the wait for a receipt, finding the links whose chain must move on, and marking
//! them followed. What the next link is stays with [`crate::dispatch::fallback`].

use deadpool_postgres::GenericClient;
use serde_json::Value as Json;

use super::state::estado_sql;
use crate::db::DbError;

/// A delivered or read receipt ends the wait: the chain is done (and the row leaves the pass's index).
const END_WAIT: &str = concat!(
    "
    UPDATE solicitudes_notificacion SET espera_recibo_hasta = NULL
    WHERE canales_respaldo IS NOT NULL AND respaldo_creado_en IS NULL AND estado = ",
    estado_sql!(Enviado),
    "
      AND espera_recibo_hasta IS NOT NULL AND estado_entrega IN ('delivered', 'read')"
);

/// The links whose chain must move on, locked (replicas skip each other's). Their parents are read apart, in the
/// same transaction ([`crate::cantina::parents::load`]): `clientes` is the app's table, and this lock was only
/// ever on the requests (`FOR UPDATE OF s`).
const DUE: &str = concat!(
    "
    SELECT s.id_solicitud, coalesce(s.id_solicitud_origen, s.id_solicitud), s.clave_dedup, s.destino, s.tipo,
           s.canales_respaldo, s.id_cliente, s.nro_tarjeta, s.saldo_alerta, s.datos,
           CASE WHEN s.estado = ",
    estado_sql!(Error),
    " THEN 'error'
                WHEN s.estado = ",
    estado_sql!(Omitido),
    " THEN 'omitted'
                WHEN s.estado_entrega = 'failed' THEN 'failed_receipt'
                ELSE 'no_receipt' END,
           s.destinatario, s.firma
    FROM solicitudes_notificacion s
    WHERE s.canales_respaldo IS NOT NULL AND s.respaldo_creado_en IS NULL
      AND (s.estado <> ",
    estado_sql!(Enviado),
    " OR s.espera_recibo_hasta IS NOT NULL)
      AND (s.estado IN (",
    estado_sql!(Error),
    ", ",
    estado_sql!(Omitido),
    ")
           OR (s.estado = ",
    estado_sql!(Enviado),
    " AND s.estado_entrega = 'failed')
           OR (s.estado = ",
    estado_sql!(Enviado),
    " AND s.espera_recibo_hasta <= now()
               AND coalesce(s.estado_entrega, 'sent') NOT IN ('delivered', 'read')))
    ORDER BY s.id_solicitud
    LIMIT $1
    FOR UPDATE OF s SKIP LOCKED"
);

const MARK_FOLLOWED: &str = "UPDATE solicitudes_notificacion SET respaldo_creado_en = now(), espera_recibo_hasta = NULL WHERE id_solicitud = ANY($1)";

/// One link of a chain that must move on, as the row holds it.
pub struct DueLink {
    pub id: i64,
    /// The first request of the chain.
    pub origin: i64,
    pub clave_dedup: Option<String>,
    pub destino: Option<String>,
    pub tipo: Option<String>,
    pub canales_respaldo: Option<String>,
    pub id_cliente: Option<i32>,
    pub nro_tarjeta: Option<String>,
    pub saldo: Option<i64>,
    pub datos: Option<Json>,
    /// `error`, `omitted`, `failed_receipt` or `no_receipt`.
    pub why: String,
    pub destinatario: Option<String>,
    pub firma: Option<String>,
}

/// A delivered or read receipt ends the wait (see [`END_WAIT`]).
pub async fn end_wait(tx: &impl GenericClient) -> Result<u64, DbError> {
    Ok(tx.execute(END_WAIT, &[]).await?)
}

/// Up to `limit` links that must move on, locked for this transaction.
pub async fn due(tx: &impl GenericClient, limit: i64) -> Result<Vec<DueLink>, DbError> {
    let rows = tx.query(DUE, &[&limit]).await?;
    // By name; the two unnamed columns by the names PostgreSQL gives them (the text stays as it was).
    Ok(rows
        .iter()
        .map(|r| DueLink {
            id: r.get("id_solicitud"),
            origin: r.get("coalesce"),
            clave_dedup: r.get("clave_dedup"),
            destino: r.get("destino"),
            tipo: r.get("tipo"),
            canales_respaldo: r.get("canales_respaldo"),
            id_cliente: r.get("id_cliente"),
            nro_tarjeta: r.get("nro_tarjeta"),
            saldo: r.get("saldo_alerta"),
            datos: r.get("datos"),
            why: r.get("case"),
            destinatario: r.get("destinatario"),
            firma: r.get("firma"),
        })
        .collect())
}

/// The links whose next request now exists (or whose chain ended).
pub async fn mark_followed(tx: &impl GenericClient, ids: &[i64]) -> Result<u64, DbError> {
    Ok(tx.execute(MARK_FOLLOWED, &[&ids]).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each statement built with the state and opt-out macros is the text it was, literals and all (the hot path's
    /// prepared statements are cached by their text; the partial indexes need the literals).
    #[test]
    fn the_statements_are_the_ones_they_were() {
        assert_eq!(
            END_WAIT,
            "
    UPDATE solicitudes_notificacion SET espera_recibo_hasta = NULL
    WHERE canales_respaldo IS NOT NULL AND respaldo_creado_en IS NULL AND estado = 'Enviado'
      AND espera_recibo_hasta IS NOT NULL AND estado_entrega IN ('delivered', 'read')"
        );
        assert_eq!(
            DUE,
            "
    SELECT s.id_solicitud, coalesce(s.id_solicitud_origen, s.id_solicitud), s.clave_dedup, s.destino, s.tipo,
           s.canales_respaldo, s.id_cliente, s.nro_tarjeta, s.saldo_alerta, s.datos,
           CASE WHEN s.estado = 'Error' THEN 'error'
                WHEN s.estado = 'Omitido' THEN 'omitted'
                WHEN s.estado_entrega = 'failed' THEN 'failed_receipt'
                ELSE 'no_receipt' END,
           s.destinatario, s.firma
    FROM solicitudes_notificacion s
    WHERE s.canales_respaldo IS NOT NULL AND s.respaldo_creado_en IS NULL
      AND (s.estado <> 'Enviado' OR s.espera_recibo_hasta IS NOT NULL)
      AND (s.estado IN ('Error', 'Omitido')
           OR (s.estado = 'Enviado' AND s.estado_entrega = 'failed')
           OR (s.estado = 'Enviado' AND s.espera_recibo_hasta <= now()
               AND coalesce(s.estado_entrega, 'sent') NOT IN ('delivered', 'read')))
    ORDER BY s.id_solicitud
    LIMIT $1
    FOR UPDATE OF s SKIP LOCKED"
        );
    }
}
