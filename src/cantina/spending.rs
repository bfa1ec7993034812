//! What the spending sweeps read of the app's tables: the purchases (`consumos_tarjeta`) of the children of the
//! families that switched a spending notice on (`cantina_notify_preferencias_cliente`), never anyone else's.
//!
//! Both queries start from the explicit choices (a handful of clients, by the partial index on (tipo, id_cliente)),
//! go to their children's cards and read those cards' purchases through `consumos_tarjeta(nro_tarjeta)`: the
//! cost grows with the opted-in families' purchases, not with the cafeteria's sales, and nothing runs on a sale.

use std::time::SystemTime;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::parents::parent;
use crate::db::DbError;
use crate::rules::Parent;

/// Purchases since $2 of the children of the active clients that switched `consumo_realizado` on for a channel of
/// $1 (destino names), each not before the client switched it on. Oldest first. (Which of them already have a
/// request is `requests::taken`'s to say: SQL on the requests lives in `src/requests/`.)
const NUEVOS_CONSUMOS: &str = "
    SELECT k.id_consumo, k.fecha_consumo, k.monto_consumido, k.detalle,
           t.nro_tarjeta, t.saldo_actual, h.nombre, h.apellido,
           c.id_cliente, c.nombres, c.apellidos, c.email, c.telefono
    FROM (SELECT id_cliente, min(cambiado_en) AS desde
          FROM cantina_notify_preferencias_cliente
          WHERE tipo = 'consumo_realizado' AND activo AND canal = ANY($1)
          GROUP BY id_cliente) p
    JOIN clientes c ON c.id_cliente = p.id_cliente
    JOIN hijos h ON h.id_cliente_responsable = c.id_cliente
    JOIN tarjetas t ON t.id_hijo = h.id_hijo
    JOIN consumos_tarjeta k ON k.nro_tarjeta = t.nro_tarjeta
    WHERE coalesce(c.activo, true) AND k.fecha_consumo >= greatest($2, p.desde)
    ORDER BY k.id_consumo";

/// Purchases between $2 and $3 of the children of the active clients that switched `resumen_consumos` on for a
/// channel of $1, by client, child, card and time.
const CONSUMOS_DEL_DIA: &str = "
    SELECT k.id_consumo, k.fecha_consumo, k.monto_consumido, k.detalle,
           t.nro_tarjeta, t.saldo_actual, h.nombre, h.apellido,
           c.id_cliente, c.nombres, c.apellidos, c.email, c.telefono
    FROM clientes c
    JOIN hijos h ON h.id_cliente_responsable = c.id_cliente
    JOIN tarjetas t ON t.id_hijo = h.id_hijo
    JOIN consumos_tarjeta k ON k.nro_tarjeta = t.nro_tarjeta
    WHERE c.id_cliente IN (SELECT id_cliente FROM cantina_notify_preferencias_cliente
                           WHERE tipo = 'resumen_consumos' AND activo AND canal = ANY($1))
      AND coalesce(c.activo, true) AND k.fecha_consumo >= $2 AND k.fecha_consumo < $3
    ORDER BY c.id_cliente, h.nombre, h.apellido, t.nro_tarjeta, k.fecha_consumo, k.id_consumo";

/// One purchase of an opted-in family's child, with the card's balance now.
pub struct Purchase {
    pub id_consumo: i64,
    pub fecha_consumo: SystemTime,
    pub monto: i64,
    pub detalle: String,
    pub nro_tarjeta: String,
    pub saldo_actual: i64,
    pub nombre: String,
    pub apellido: String,
    pub parent: Parent,
}

fn purchase(r: &Row) -> Purchase {
    Purchase {
        id_consumo: r.get("id_consumo"),
        fecha_consumo: r.get("fecha_consumo"),
        monto: r.get("monto_consumido"),
        detalle: r.get::<_, Option<String>>("detalle").map(|d| d.trim().to_string()).unwrap_or_default(),
        nro_tarjeta: r.get("nro_tarjeta"),
        saldo_actual: r.get::<_, Option<i64>>("saldo_actual").unwrap_or(0),
        nombre: super::text(r, "nombre"),
        apellido: super::text(r, "apellido"),
        parent: Parent { activo: true, ..parent(r, r.get("id_cliente")) },
    }
}

/// Purchases since `desde` of the families with `consumo_realizado` on for one of `canales` (each not before the
/// family switched it on).
pub async fn new_purchases(
    tx: &impl GenericClient,
    canales: &[&str],
    desde: &SystemTime,
) -> Result<Vec<Purchase>, DbError> {
    let rows = tx.query(&tx.prepare_cached(NUEVOS_CONSUMOS).await?, &[&canales, desde]).await?;
    Ok(rows.iter().map(purchase).collect())
}

/// Purchases in [`desde`, `hasta`) of the families with `resumen_consumos` on for one of `canales`, ordered by
/// client, child, card and time.
pub async fn purchases_between(
    tx: &impl GenericClient,
    canales: &[&str],
    desde: &SystemTime,
    hasta: &SystemTime,
) -> Result<Vec<Purchase>, DbError> {
    let rows = tx.query(&tx.prepare_cached(CONSUMOS_DEL_DIA).await?, &[&canales, desde, hasta]).await?;
    Ok(rows.iter().map(purchase).collect())
}
