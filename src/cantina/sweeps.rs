//! What the sweeps read of the app's tables: low cards, unpaid sales, cards in debt, expiring cards, as typed rows.

use std::time::SystemTime;

use deadpool_postgres::GenericClient;
use jiff::civil::Date;
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

/// Cards in debt: a negative balance and at least one open authorisation, by client, oldest debt first; per card the
/// start of its current negative streak (its date, and the authorisation's id). The streak starts at the latest open
/// authorisation whose `saldo_anterior >= 0` (the sale that took the card from zero or above to below zero): open rows
/// before it belong to a debt already paid that the app has not marked `regularizado` yet (it may do so late). With no
/// such row (all negative or unknown), the earliest open one. A card back at zero or above is not in debt, even while
/// its rows are still open. "Latest"/"earliest" are by date, then id.
const DEUDAS: &str = "
    SELECT c.id_cliente, c.nombres, c.apellidos, c.email, c.telefono,
           t.nro_tarjeta, t.saldo_actual, h.nombre, h.apellido,
           coalesce(
               (array_agg(a.fecha_autorizacion ORDER BY a.fecha_autorizacion DESC, a.id_autorizacion DESC)
                    FILTER (WHERE a.saldo_anterior >= 0))[1],
               min(a.fecha_autorizacion)) AS desde,
           coalesce(
               (array_agg(a.id_autorizacion ORDER BY a.fecha_autorizacion DESC, a.id_autorizacion DESC)
                    FILTER (WHERE a.saldo_anterior >= 0))[1],
               (array_agg(a.id_autorizacion ORDER BY a.fecha_autorizacion, a.id_autorizacion))[1]) AS primera
    FROM autorizacion_saldo_negativo a
    JOIN tarjetas t ON t.nro_tarjeta = a.nro_tarjeta
    JOIN hijos h ON h.id_hijo = t.id_hijo
    JOIN clientes c ON c.id_cliente = h.id_cliente_responsable
    WHERE NOT coalesce(a.regularizado, false) AND a.fecha_autorizacion IS NOT NULL AND coalesce(c.activo, true)
      AND t.saldo_actual < 0
    GROUP BY c.id_cliente, t.nro_tarjeta, h.id_hijo
    ORDER BY c.id_cliente, desde, t.nro_tarjeta";

/// `Activa` or `Vencida` cards whose expiry date is between $1 and $2 (ISO dates), with student and active parent.
const VENCIMIENTOS: &str = "
    SELECT t.nro_tarjeta, t.estado, t.fecha_vencimiento::text AS fecha_vencimiento, h.nombre, h.apellido,
           c.id_cliente, c.nombres, c.apellidos, c.email, c.telefono
    FROM tarjetas t
    JOIN hijos h ON h.id_hijo = t.id_hijo
    JOIN clientes c ON c.id_cliente = h.id_cliente_responsable
    WHERE t.estado IN ('Activa', 'Vencida') AND coalesce(c.activo, true)
      AND t.fecha_vencimiento BETWEEN $1::text::date AND $2::text::date
    ORDER BY c.id_cliente, t.fecha_vencimiento, t.nro_tarjeta";

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

/// A card in debt (negative balance, open authorisation), with its student and active parent.
pub struct DebtCard {
    pub nro_tarjeta: String,
    pub saldo_actual: i64,
    /// The start of the card's current negative streak (see `DEUDAS`): when it went negative, and the authorisation's id.
    pub desde: SystemTime,
    pub primera: i64,
    pub nombre: String,
    pub apellido: String,
    pub parent: Parent,
}

/// Cards in debt, by client, oldest debt first.
pub async fn debt_cards(tx: &impl GenericClient) -> Result<Vec<DebtCard>, DbError> {
    let rows = tx.query(DEUDAS, &[]).await?;
    Ok(rows
        .iter()
        .map(|r| DebtCard {
            nro_tarjeta: r.get("nro_tarjeta"),
            saldo_actual: r.get("saldo_actual"),
            desde: r.get("desde"),
            primera: r.get("primera"),
            nombre: super::text(r, "nombre"),
            apellido: super::text(r, "apellido"),
            parent: active_parent(r),
        })
        .collect())
}

/// A card with an expiry date in the sweep's range.
pub struct ExpiringCard {
    pub nro_tarjeta: String,
    pub estado: String,
    pub fecha_vencimiento: Date,
    pub nombre: String,
    pub apellido: String,
    pub parent: Parent,
}

/// `Activa` or `Vencida` cards expiring between `from` and `to` (inclusive), by client.
pub async fn expiring_cards(tx: &impl GenericClient, from: Date, to: Date) -> Result<Vec<ExpiringCard>, DbError> {
    let rows = tx.query(VENCIMIENTOS, &[&from.to_string(), &to.to_string()]).await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(ExpiringCard {
                nro_tarjeta: r.get("nro_tarjeta"),
                estado: super::text(r, "estado"),
                fecha_vencimiento: super::date(r, "fecha_vencimiento")?,
                nombre: super::text(r, "nombre"),
                apellido: super::text(r, "apellido"),
                parent: active_parent(r),
            })
        })
        .collect())
}

/// The parent of a sweep's row: the queries keep active clients only.
fn active_parent(r: &Row) -> Parent {
    Parent { activo: true, ..parent(r, r.get("id_cliente")) }
}
