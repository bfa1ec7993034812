//! The POS's manual requests (`clave_dedup IS NULL`, written by the app): loaded for the drain, and completed by
//! the service (type, key, recipient, data, signature) in the drain's transaction.

use deadpool_postgres::GenericClient;
use serde_json::Value as Json;
use tokio_postgres::Statement;

use super::state::RequestState;
use super::state::estado_sql;
use crate::db::DbError;
use crate::domain::{ChannelKind, EventKind, NotificationType, OutboxEvent};
use crate::rules::{ManualCompletion, ManualRow};
use crate::signing::RowSigner;

const LOAD_MANUAL: &str = "
    SELECT id_solicitud, id_cliente, nro_tarjeta, destino, estado, clave_dedup, mensaje, tipo
    FROM solicitudes_notificacion WHERE id_solicitud = ANY($1)";

const COMPLETE_MANUAL: &str = concat!("
    UPDATE solicitudes_notificacion
    SET tipo = $2, clave_dedup = $3, destino = coalesce($4, destino), destinatario = $5, datos = $6,
        id_cliente = coalesce(id_cliente, $7), saldo_alerta = coalesce(saldo_alerta, $8), mensaje = coalesce(mensaje, $9),
        estado = $10::varchar, ultimo_error = $11, proximo_intento = CASE WHEN $10::varchar = ", estado_sql!(Pendiente), " THEN now() END,
        actualizado_en = now(), firma = $12
    WHERE id_solicitud = $1 AND clave_dedup IS NULL AND estado = ", estado_sql!(Pendiente));

/// The POS rows a batch of events names, prepared before the drain's pipelined loads (a prepare inside the pipeline
/// would be a round trip of its own); [`PosRows::load`] then runs inside that pipeline.
pub struct PosRows {
    stmt: Statement,
    ids: Vec<i64>,
}

impl PosRows {
    pub async fn prepare(tx: &impl GenericClient, events: &[OutboxEvent]) -> Result<PosRows, DbError> {
        let ids = events
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::SolicitudManual { id_solicitud } => Some(id_solicitud),
                _ => None,
            })
            .collect();
        Ok(PosRows { stmt: tx.prepare_cached(LOAD_MANUAL).await?, ids })
    }

    /// The rows (none without a query when no event names one).
    pub async fn load(&self, tx: &impl GenericClient) -> Result<Vec<ManualRow>, DbError> {
        if self.ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = tx.query(&self.stmt, &[&self.ids]).await?;
        Ok(rows
            .iter()
            .map(|r| ManualRow {
                id_solicitud: r.get("id_solicitud"),
                id_cliente: r.get("id_cliente"),
                nro_tarjeta: r.get("nro_tarjeta"),
                destino: r.get("destino"),
                estado: r.get::<_, Option<String>>("estado").unwrap_or_default(),
                clave_dedup: r.get("clave_dedup"),
                mensaje: r.get("mensaje"),
                tipo: r.get("tipo"),
            })
            .collect())
    }
}

/// Completes a POS row; the caller has handed the history back to the triggers (`HISTORY_BY_TRIGGER`) first.
/// Returns the (type, channel) the row became and whether it is `Pendiente` (false: recorded `Error`/`Omitido`),
/// when there is one to count.
pub async fn complete(
    tx: &impl GenericClient,
    signer: &RowSigner,
    id_solicitud: i64,
    completion: ManualCompletion,
) -> Result<Option<(NotificationType, ChannelKind, bool)>, DbError> {
    let mut counted = None;
    match completion {
        ManualCompletion::Send(r) => {
            let (estado, destinatario, error) = super::write::recipient_columns(&r);
            let mensaje = crate::render::summary(&r.data);
            let datos = serde_json::to_value(&r.data).unwrap_or(Json::Null);
            let firma = super::write::sign(signer, &r, destinatario.as_deref(), &datos);
            let n = tx
                .execute(
                    COMPLETE_MANUAL,
                    &[
                        &id_solicitud,
                        &r.tipo.as_str(),
                        &r.clave_dedup,
                        &r.channel.destino(),
                        &destinatario,
                        &datos,
                        &r.id_cliente,
                        &r.saldo.map(|s| s.0),
                        &mensaje,
                        &estado,
                        &error,
                        &firma,
                    ],
                )
                .await?;
            if n == 1 {
                counted = Some((r.tipo, r.channel, estado == RequestState::Pendiente.as_str()));
            }
        }
        ManualCompletion::Fail { tipo, clave_dedup, channel, reason } => {
            if let Some(c) = channel {
                counted = Some((tipo, c, false));
            }
            let none: Option<String> = None;
            tx.execute(
                COMPLETE_MANUAL,
                &[
                    &id_solicitud,
                    &tipo.as_str(),
                    &clave_dedup,
                    &channel.map(|c| c.destino()),
                    &none,
                    &Json::Null,
                    &None::<i32>,
                    &None::<i64>,
                    &none,
                    &RequestState::Error.as_str(),
                    &reason,
                    &None::<String>,
                ],
            )
            .await?;
        }
    }
    Ok(counted)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each statement built with the state and opt-out macros is the text it was, literals and all (the hot path's
    /// prepared statements are cached by their text; the partial indexes need the literals).
    #[test]
    fn the_statements_are_the_ones_they_were() {
        // Changed on purpose (issue 18): the row's own `mensaje` and `tipo` decide what it becomes.
        assert_eq!(
            LOAD_MANUAL,
            "
    SELECT id_solicitud, id_cliente, nro_tarjeta, destino, estado, clave_dedup, mensaje, tipo
    FROM solicitudes_notificacion WHERE id_solicitud = ANY($1)"
        );
        assert_eq!(
            COMPLETE_MANUAL,
            "
    UPDATE solicitudes_notificacion
    SET tipo = $2, clave_dedup = $3, destino = coalesce($4, destino), destinatario = $5, datos = $6,
        id_cliente = coalesce(id_cliente, $7), saldo_alerta = coalesce(saldo_alerta, $8), mensaje = coalesce(mensaje, $9),
        estado = $10::varchar, ultimo_error = $11, proximo_intento = CASE WHEN $10::varchar = 'Pendiente' THEN now() END,
        actualizado_en = now(), firma = $12
    WHERE id_solicitud = $1 AND clave_dedup IS NULL AND estado = 'Pendiente'"
        );
    }
}
