//! Cards (`tarjetas`) with their student (`hijos`) and parent (`clientes`); the low-balance stamp.

use std::time::SystemTime;

use deadpool_postgres::{GenericClient, Pool};
use serde_json::Value as Json;

use crate::db::DbError;
use crate::rules::{Card, Student};

/// A `saldo_bajo` notice that went out stamps `ultima_notificacion_saldo` on the row's card and on every card its
/// `datos` lists (the daily sweep's notice lists all of a parent's low cards), which the app, the balance rule and
/// the daily sweep read. Separate from MARK_SENT so a problem with the app's table cannot undo a recorded send.
const STAMP_CARD: &str = "
    UPDATE tarjetas SET ultima_notificacion_saldo = now()
    WHERE nro_tarjeta = $1
       OR nro_tarjeta IN (SELECT e->>'nro_tarjeta' FROM jsonb_array_elements(
              CASE WHEN jsonb_typeof($2::jsonb->'tarjetas') = 'array' THEN $2::jsonb->'tarjetas' ELSE '[]' END) e)";

const LOAD_CARDS: &str = "
    SELECT t.nro_tarjeta, t.saldo_actual, t.saldo_alerta, t.estado, t.notificar_saldo_bajo, t.ultima_notificacion_saldo,
           t.fecha_vencimiento::text AS fecha_vencimiento,
           h.id_hijo, h.nombre, h.apellido,
           c.id_cliente, c.nombres, c.apellidos, c.email, c.telefono, c.activo
    FROM tarjetas t
    LEFT JOIN hijos h ON h.id_hijo = t.id_hijo
    LEFT JOIN clientes c ON c.id_cliente = h.id_cliente_responsable
    WHERE t.nro_tarjeta = ANY($1)";

/// Adds the cards `ids` (with their student and parent) to `cards`.
pub async fn load_into(
    tx: &impl GenericClient,
    ids: &[String],
    cards: &mut std::collections::HashMap<String, Card>,
) -> Result<(), DbError> {
    {
        for r in tx.query(&tx.prepare_cached(LOAD_CARDS).await?, &[&ids]).await? {
            let student = r.get::<_, Option<i32>>("id_hijo").map(|id_hijo| Student {
                id_hijo,
                nombre: super::text(&r, "nombre"),
                apellido: super::text(&r, "apellido"),
            });
            let parent = r.get::<_, Option<i32>>("id_cliente").map(|id_cliente| super::parents::parent(&r, id_cliente));
            let card = Card {
                nro_tarjeta: r.get("nro_tarjeta"),
                saldo_actual: r.get("saldo_actual"),
                saldo_alerta: r.get::<_, Option<i64>>("saldo_alerta").unwrap_or(0),
                estado: r.get::<_, Option<String>>("estado").unwrap_or_default(),
                notificar_saldo_bajo: r.get::<_, Option<bool>>("notificar_saldo_bajo").unwrap_or(true),
                ultima_notificacion_saldo: r.get::<_, Option<SystemTime>>("ultima_notificacion_saldo").map(super::ts),
                fecha_vencimiento: super::date(&r, "fecha_vencimiento"),
                student,
                parent,
            };
            cards.insert(card.nro_tarjeta.clone(), card);
        }
    }
    Ok(())
}

/// Stamps `ultima_notificacion_saldo` after a `saldo_bajo` notice went out (see [`STAMP_CARD`]).
pub async fn stamp_low_balance(pool: &Pool, nro_tarjeta: &str, datos: Option<&Json>) -> Result<(), DbError> {
    let conn = pool.get().await?;
    conn.execute(STAMP_CARD, &[&nro_tarjeta, &datos]).await.map_err(DbError::from)?;
    Ok(())
}
