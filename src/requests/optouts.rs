//! Requests to an opted-out address (the opt-outs themselves live in `cantina_notify_bajas`, see
//! [`crate::optouts`]).

use tokio_postgres::Client;

use super::optout_sql::bajas_match;
use super::state::estado_sql;

pub(crate) const OMIT_OPTED_OUT: &str = concat!(
    "UPDATE solicitudes_notificacion s
             SET estado = ",
    estado_sql!(Omitido),
    ", proximo_intento = NULL, actualizado_en = now(),
                 ultimo_error = 'el destinatario pidió no recibir más mensajes por ' || s.destino
                     || ' (' || b.motivo || ', ' || to_char(b.fecha_baja AT TIME ZONE 'America/Asuncion', 'DD/MM/YYYY') || ')'
             FROM cantina_notify_bajas b
             WHERE s.estado = ",
    estado_sql!(Pendiente),
    " AND s.clave_dedup IS NOT NULL AND s.proximo_intento <= now()
               AND ",
    bajas_match!("s", "\n               ", " ")
);

/// Due requests to an opted-out address become `Omitido`, with the opt-out's reason and date; how many.
pub async fn omit_opted_out(client: &Client) -> Result<u64, tokio_postgres::Error> {
    client.execute(OMIT_OPTED_OUT, &[]).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_statement_is_the_one_it_was() {
        assert_eq!(
            super::OMIT_OPTED_OUT,
            "UPDATE solicitudes_notificacion s
             SET estado = 'Omitido', proximo_intento = NULL, actualizado_en = now(),
                 ultimo_error = 'el destinatario pidió no recibir más mensajes por ' || s.destino
                     || ' (' || b.motivo || ', ' || to_char(b.fecha_baja AT TIME ZONE 'America/Asuncion', 'DD/MM/YYYY') || ')'
             FROM cantina_notify_bajas b
             WHERE s.estado = 'Pendiente' AND s.clave_dedup IS NOT NULL AND s.proximo_intento <= now()
               AND b.fecha_alta IS NULL AND b.destino = s.destino
               AND b.destinatario = CASE WHEN s.destino = 'Email' THEN lower(s.destinatario) ELSE s.destinatario END"
        );
    }
}
