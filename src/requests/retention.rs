//! Finished requests past their retention period, deleted by the clean-up ([`crate::scheduler::cleanup`]).

use super::state::estado_sql;

/// One batch of finished requests (the service's own: `clave_dedup`) last changed before `$1`, at most `$2`, with
/// their history (migration 0007) in the same statement; the SELECT's row count is the requests deleted.
pub const DELETE_REQUESTS: &str = concat!(
    "
    WITH borradas AS (
        DELETE FROM solicitudes_notificacion WHERE id_solicitud IN (
            SELECT id_solicitud FROM solicitudes_notificacion
            WHERE clave_dedup IS NOT NULL AND estado IN (",
    estado_sql!(Enviado),
    ", ",
    estado_sql!(Error),
    ", ",
    estado_sql!(Omitido),
    ")
              AND coalesce(actualizado_en, fecha_solicitud) < $1
            ORDER BY id_solicitud LIMIT $2
            FOR UPDATE SKIP LOCKED)
        RETURNING id_solicitud),
    historial AS (
        DELETE FROM cantina_notify_historial h USING borradas b WHERE h.id_solicitud = b.id_solicitud)
    SELECT 1 FROM borradas"
);

#[cfg(test)]
mod tests {
    #[test]
    fn the_statement_is_the_one_it_was() {
        assert_eq!(
            super::DELETE_REQUESTS,
            "
    WITH borradas AS (
        DELETE FROM solicitudes_notificacion WHERE id_solicitud IN (
            SELECT id_solicitud FROM solicitudes_notificacion
            WHERE clave_dedup IS NOT NULL AND estado IN ('Enviado', 'Error', 'Omitido')
              AND coalesce(actualizado_en, fecha_solicitud) < $1
            ORDER BY id_solicitud LIMIT $2
            FOR UPDATE SKIP LOCKED)
        RETURNING id_solicitud),
    historial AS (
        DELETE FROM cantina_notify_historial h USING borradas b WHERE h.id_solicitud = b.id_solicitud)
    SELECT 1 FROM borradas"
        );
    }
}
