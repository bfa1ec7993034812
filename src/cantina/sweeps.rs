//! What the sweeps read of the app's tables: low cards, unpaid sales, debts awaiting a reminder.

/// Active cards under their threshold ($1: the default threshold), with their student and active parent, by parent.
pub const SALDO_BAJO: &str = "
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
pub const CUENTA_PENDIENTE: &str = "
    SELECT c.id_cliente, c.nombres, c.apellidos, c.email, c.telefono, c.razon_social, c.ruc_ci,
           sum(v.saldo_pendiente)::int8 AS deuda, count(*) AS ventas, min(v.fecha) AS desde
    FROM ventas v
    JOIN clientes c ON c.id_cliente = v.id_cliente
    WHERE v.estado = 'PROCESADO' AND v.estado_pago IN ('PENDIENTE', 'PARCIAL') AND coalesce(c.activo, true)
    GROUP BY c.id_cliente
    HAVING sum(v.saldo_pendiente) > 0 AND bool_or(v.saldo_pendiente > 0 AND v.fecha <= $1)
    ORDER BY c.id_cliente";

/// Open negative-balance authorisations made between $1 and $2, with the card, student and active parent.
pub const RECORDATORIO_DEUDA: &str = "
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
