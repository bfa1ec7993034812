//! What the sweeps read of the app's tables: low cards, unpaid sales, debts awaiting a reminder, as typed rows.

use std::time::SystemTime;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::parents::parent;
use crate::db::DbError;
use crate::rules::Parent;

/// Active cards under their threshold ($1: the default threshold), with their student and active parent, by parent.
const SALDO_BAJO: &str = "
    SELECT t.nro_tarjeta, t.saldo_actual, CASE WHEN t.saldo_alerta > 0 THEN t.saldo_alerta ELSE $1 END AS umbral,
           t.ultima_notificacion_saldo, h.nombre, h.apellido,
           c.id_cliente, c.nombres, c.apellidos, c.email, c.telefono
    FROM tarjetas t
    JOIN hijos h ON h.id_hijo = t.id_hijo
    JOIN clientes c ON c.id_cliente = h.id_cliente_responsable
    WHERE t.estado = 'Activa' AND coalesce(t.notificar_saldo_bajo, true) AND coalesce(c.activo, true)
      AND t.saldo_actual < CASE WHEN t.saldo_alerta > 0 THEN t.saldo_alerta ELSE $1 END
    ORDER BY c.id_cliente, t.nro_tarjeta";

/// Active clients with an unpaid processed sale at least as old as $1, with their whole debt.
const CUENTA_PENDIENTE: &str = "
    SELECT c.id_cliente, c.nombres, c.apellidos, c.email, c.telefono, c.razon_social, c.ruc_ci,
           sum(v.saldo_pendiente)::int8 AS deuda, count(*) AS ventas, min(v.fecha) AS desde
    FROM ventas v
    JOIN clientes c ON c.id_cliente = v.id_cliente
    WHERE v.estado = 'PROCESADO' AND v.estado_pago IN ('PENDIENTE', 'PARCIAL') AND coalesce(c.activo, true)
    GROUP BY c.id_cliente
    HAVING sum(v.saldo_pendiente) > 0 AND bool_or(v.saldo_pendiente > 0 AND v.fecha <= $1)
    ORDER BY c.id_cliente";

/// Open negative-balance authorisations made between $1 and $2, with the card, student and active parent.
const RECORDATORIO_DEUDA: &str = "
    SELECT a.id_autorizacion, a.nro_tarjeta, a.fecha_autorizacion, t.saldo_actual, a.saldo_resultante,
           h.nombre, h.apellido,
           c.id_cliente, c.nombres, c.apellidos, c.email, c.telefono
    FROM autorizacion_saldo_negativo a
    JOIN tarjetas t ON t.nro_tarjeta = a.nro_tarjeta
    JOIN hijos h ON h.id_hijo = t.id_hijo
    JOIN clientes c ON c.id_cliente = h.id_cliente_responsable
    WHERE NOT coalesce(a.regularizado, false) AND a.fecha_autorizacion IS NOT NULL AND coalesce(c.activo, true)
      AND a.fecha_autorizacion BETWEEN $1 AND $2
    ORDER BY a.id_autorizacion";

/// An active card under its threshold.
pub struct LowCard {
    pub nro_tarjeta: String,
    pub saldo_actual: i64,
    /// The card's own threshold, or the default one.
    pub umbral: i64,
    pub ultima_notificacion_saldo: Option<SystemTime>,
    pub nombre: String,
    pub apellido: String,
    pub parent: Parent,
}

/// Active cards under their threshold (`umbral`: the default threshold), ordered by parent, then card.
pub async fn low_cards(tx: &impl GenericClient, umbral: &i64) -> Result<Vec<LowCard>, DbError> {
    let rows = tx.query(SALDO_BAJO, &[umbral]).await?;
    Ok(rows
        .iter()
        .map(|r| LowCard {
            nro_tarjeta: r.get("nro_tarjeta"),
            saldo_actual: r.get("saldo_actual"),
            umbral: r.get("umbral"),
            ultima_notificacion_saldo: r.get("ultima_notificacion_saldo"),
            nombre: super::text(r, "nombre"),
            apellido: super::text(r, "apellido"),
            parent: active_parent(r),
        })
        .collect())
}

/// An active client's unpaid processed sales.
pub struct PendingAccount {
    pub parent: Parent,
    pub razon_social: Option<String>,
    pub ruc_ci: String,
    /// The whole debt.
    pub deuda: i64,
    pub ventas: i64,
    /// The oldest unpaid sale.
    pub desde: SystemTime,
}

/// Active clients with an unpaid processed sale at least as old as `cutoff`, with their whole debt.
pub async fn pending_accounts(tx: &impl GenericClient, cutoff: &SystemTime) -> Result<Vec<PendingAccount>, DbError> {
    let rows = tx.query(CUENTA_PENDIENTE, &[cutoff]).await?;
    Ok(rows
        .iter()
        .map(|r| PendingAccount {
            parent: active_parent(r),
            razon_social: r.get("razon_social"),
            ruc_ci: super::text(r, "ruc_ci"),
            deuda: r.get("deuda"),
            ventas: r.get("ventas"),
            desde: r.get("desde"),
        })
        .collect())
}

/// An open negative-balance authorisation, with its card, student and active parent.
pub struct OpenAuthorisation {
    pub id_autorizacion: i64,
    pub nro_tarjeta: String,
    pub fecha_autorizacion: SystemTime,
    pub saldo_actual: i64,
    pub saldo_resultante: Option<i64>,
    pub nombre: String,
    pub apellido: String,
    pub parent: Parent,
}

/// Open negative-balance authorisations made between `from` and `to`.
pub async fn open_authorisations(
    tx: &impl GenericClient,
    from: &SystemTime,
    to: &SystemTime,
) -> Result<Vec<OpenAuthorisation>, DbError> {
    let rows = tx.query(RECORDATORIO_DEUDA, &[from, to]).await?;
    Ok(rows
        .iter()
        .map(|r| OpenAuthorisation {
            id_autorizacion: r.get("id_autorizacion"),
            nro_tarjeta: r.get("nro_tarjeta"),
            fecha_autorizacion: r.get("fecha_autorizacion"),
            saldo_actual: r.get("saldo_actual"),
            saldo_resultante: r.get("saldo_resultante"),
            nombre: super::text(r, "nombre"),
            apellido: super::text(r, "apellido"),
            parent: active_parent(r),
        })
        .collect())
}

/// The parent of a sweep's row: the queries keep active clients only.
fn active_parent(r: &Row) -> Parent {
    Parent { activo: true, ..parent(r, r.get("id_cliente")) }
}
