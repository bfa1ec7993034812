//! Claiming due requests with a lease, and giving claims back unsent (shutdown, quiet hours).

use std::time::Duration;

use deadpool_postgres::Pool;

use super::optout_sql::opted_out;
use super::row::Claimed;
use super::state::estado_sql;
use crate::db::DbError;
use crate::domain::AttemptLimit;

// Claims rows whose time has come; the lease is simply a later proximo_intento, so a worker that dies
// leaves its rows due again when the lease runs out. This commit is synchronous (it precedes the send).
const CLAIM: &str = concat!(
    "
    UPDATE solicitudes_notificacion s
    SET proximo_intento = now() + make_interval(secs => $2), intentos = s.intentos + 1, actualizado_en = now()
    -- ARRAY(...) rather than a CTE joined back: the generic plan of a prepared statement cannot know $1 and
    -- estimated thousands of rows, so it hash-joined the whole table (32 ms per claim at a 100k backlog against
    -- 1 ms by primary key).
    WHERE s.id_solicitud = ANY(ARRAY(
        SELECT id_solicitud FROM solicitudes_notificacion
        WHERE estado = ",
    estado_sql!(Pendiente),
    " AND clave_dedup IS NOT NULL AND proximo_intento <= now()
          AND destino = ANY($3) AND intentos < $4
          -- An opted-out address is never claimed; the dispatcher's housekeeping records it Omitido.
          AND NOT ",
    opted_out!(
        "solicitudes_notificacion",
        "\n              ",
        "\n              ",
        "\n                ",
        "\n                                          "
    ),
    "
        ORDER BY proximo_intento
        LIMIT $1
        FOR UPDATE SKIP LOCKED))
    RETURNING s.id_solicitud, s.tipo, s.destino, s.destinatario, s.datos, s.clave_dedup, s.intentos, s.firma,
              s.id_cliente, s.nro_tarjeta,
              -- Sent before: its history says so, and only the owner's functions write the history.
              EXISTS (SELECT 1 FROM cantina_notify_historial h
                      WHERE h.id_solicitud = s.id_solicitud AND h.evento = 'enviada')"
);

pub async fn claim(
    pool: &Pool,
    limit: i64,
    lease: Duration,
    destinos: &[&str],
    max_attempts: impl Into<AttemptLimit>,
) -> Result<Vec<Claimed>, DbError> {
    let max_attempts = max_attempts.into();
    let rows =
        crate::db::query_hot(pool, CLAIM, &[&limit, &lease.as_secs_f64(), &destinos, max_attempts.sql()]).await?;
    let claimed_at = std::time::Instant::now();
    // `exists`: the unnamed history check that ends the RETURNING list.
    Ok(rows.iter().map(|r| Claimed::from_row(r, r.get("exists"), claimed_at)).collect())
}

/// Gives back claims never started (shutdown): due now, and the attempt does not count.
const RELEASE: &str = concat!(
    "
    UPDATE solicitudes_notificacion
    SET proximo_intento = now(), intentos = intentos - 1, actualizado_en = now()
    WHERE id_solicitud = $1 AND intentos = $2 AND estado = ",
    estado_sql!(Pendiente)
);

pub async fn release(pool: &Pool, c: &Claimed) -> Result<(), DbError> {
    pool.get().await?.execute(RELEASE, &[&c.id, &c.intentos]).await?;
    Ok(())
}

const DEFER: &str = concat!(
    "UPDATE solicitudes_notificacion
             SET proximo_intento = $3, intentos = intentos - 1, actualizado_en = now(),
                 ultimo_error = 'en espera: horario de silencio'
             WHERE id_solicitud = $1 AND intentos = $2 AND estado = ",
    estado_sql!(Pendiente)
);

/// Quiet hours: the request waits, `Pendiente`, until `until`; the attempt does not count.
pub async fn defer(pool: &Pool, c: &Claimed, until: jiff::Timestamp) -> Result<(), DbError> {
    let until = std::time::SystemTime::from(until);
    pool.get().await?.execute(DEFER, &[&c.id, &c.intentos, &until]).await?;
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
            CLAIM,
            "
    UPDATE solicitudes_notificacion s
    SET proximo_intento = now() + make_interval(secs => $2), intentos = s.intentos + 1, actualizado_en = now()
    -- ARRAY(...) rather than a CTE joined back: the generic plan of a prepared statement cannot know $1 and
    -- estimated thousands of rows, so it hash-joined the whole table (32 ms per claim at a 100k backlog against
    -- 1 ms by primary key).
    WHERE s.id_solicitud = ANY(ARRAY(
        SELECT id_solicitud FROM solicitudes_notificacion
        WHERE estado = 'Pendiente' AND clave_dedup IS NOT NULL AND proximo_intento <= now()
          AND destino = ANY($3) AND intentos < $4
          -- An opted-out address is never claimed; the dispatcher's housekeeping records it Omitido.
          AND NOT EXISTS (
              SELECT 1 FROM cantina_notify_bajas b
              WHERE b.fecha_alta IS NULL AND b.destino = solicitudes_notificacion.destino
                AND b.destinatario = CASE WHEN solicitudes_notificacion.destino = 'Email'
                                          THEN lower(solicitudes_notificacion.destinatario)
                                          ELSE solicitudes_notificacion.destinatario END)
        ORDER BY proximo_intento
        LIMIT $1
        FOR UPDATE SKIP LOCKED))
    RETURNING s.id_solicitud, s.tipo, s.destino, s.destinatario, s.datos, s.clave_dedup, s.intentos, s.firma,
              s.id_cliente, s.nro_tarjeta,
              -- Sent before: its history says so, and only the owner's functions write the history.
              EXISTS (SELECT 1 FROM cantina_notify_historial h
                      WHERE h.id_solicitud = s.id_solicitud AND h.evento = 'enviada')"
        );
        assert_eq!(
            RELEASE,
            "
    UPDATE solicitudes_notificacion
    SET proximo_intento = now(), intentos = intentos - 1, actualizado_en = now()
    WHERE id_solicitud = $1 AND intentos = $2 AND estado = 'Pendiente'"
        );
        assert_eq!(
            DEFER,
            "UPDATE solicitudes_notificacion
             SET proximo_intento = $3, intentos = intentos - 1, actualizado_en = now(),
                 ultimo_error = 'en espera: horario de silencio'
             WHERE id_solicitud = $1 AND intentos = $2 AND estado = 'Pendiente'"
        );
    }
}
