//! Recording a claim's outcome, only while the claim is ours; closing claims that never got one.

use std::time::Duration;

use deadpool_postgres::Pool;

use super::row::Claimed;
use super::sent::Sent;
use super::state::RequestState;
use super::state::estado_sql;
use crate::channels::provider_text::clean_reason;
use crate::db::DbError;
use crate::domain::AttemptLimit;

/// Claims that ran out of attempts without any outcome recorded (a worker crashed mid-send each time, or could not
/// write the outcome): never claimed again, so they are closed as `Error` saying the send may have happened.
const CLOSE_ABANDONED: &str = concat!(
    "
    UPDATE solicitudes_notificacion
    SET estado = ",
    estado_sql!(Error),
    ", proximo_intento = NULL, actualizado_en = now(),
        ultimo_error = 'sin resultado registrado tras ' || intentos || ' intentos; el envío pudo haberse realizado'
             || coalesce(' (último error: ' || ultimo_error || ')', '')
    WHERE estado = ",
    estado_sql!(Pendiente),
    " AND clave_dedup IS NOT NULL AND intentos >= $1 AND proximo_intento <= now()"
);

const MARK_RETRY: &str = concat!(
    "
    UPDATE solicitudes_notificacion
    SET proximo_intento = now() + make_interval(secs => $3), ultimo_error = $4, proveedor = $5, actualizado_en = now()
    WHERE id_solicitud = $1 AND intentos = $2 AND estado = ",
    estado_sql!(Pendiente)
);

const MARK_FINAL: &str = concat!(
    "
    UPDATE solicitudes_notificacion
    SET estado = $5::varchar, ultimo_error = $3, proveedor = $4, proximo_intento = NULL, actualizado_en = now()
    WHERE id_solicitud = $1 AND intentos = $2 AND estado = ",
    estado_sql!(Pendiente)
);

const OLDEST_DUE: &str = concat!(
    "SELECT destino, extract(epoch FROM now() - min(creada))::float8
             FROM (SELECT destino, coalesce(fecha_solicitud, actualizado_en) AS creada
                   FROM solicitudes_notificacion
                   WHERE estado = ",
    estado_sql!(Pendiente),
    " AND clave_dedup IS NOT NULL AND proximo_intento <= now()
                     AND destino IS NOT NULL
                   UNION ALL
                   SELECT destino, coalesce(fecha_solicitud, actualizado_en)
                   FROM solicitudes_notificacion
                   WHERE id_solicitud = ANY($1) AND estado = ",
    estado_sql!(Pendiente),
    " AND destino IS NOT NULL) w
             GROUP BY destino"
);

/// Per destino: age in seconds, since creation, of the oldest `Pendiente` request that is due now (rows waiting for a
/// retry time, the end of quiet hours, or held under a lease are not due), counting the claims `queued` in memory
/// (handed over by the drain, waiting for a send slot) as due.
pub async fn oldest_due(pool: &Pool, queued: &[i64]) -> Result<Vec<(String, f64)>, DbError> {
    let rows = pool.get().await?.query(OLDEST_DUE, &[&queued]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get::<_, Option<f64>>(1).unwrap_or(0.0).max(0.0))).collect())
}

pub async fn close_abandoned(pool: &Pool, max_attempts: impl Into<AttemptLimit>) -> Result<u64, DbError> {
    let conn = pool.get().await?;
    Ok(conn.execute(&conn.prepare_cached(CLOSE_ABANDONED).await?, &[max_attempts.into().sql()]).await?)
}

pub enum Outcome<'a> {
    /// `await_receipt`: in a fallback chain, how long to wait for a delivery receipt before the next channel
    /// (`None` when this provider reports no deliveries).
    Sent {
        provider: &'a str,
        provider_id: Option<&'a str>,
        /// For staff, in `ultimo_error` (e.g. the provider gave no message id).
        warning: Option<&'a str>,
        await_receipt: Option<Duration>,
    },
    Retry {
        provider: &'a str,
        delay: Duration,
        reason: &'a str,
    },
    Error {
        provider: &'a str,
        reason: &'a str,
    },
    /// Not sent on purpose (the recipient opted out): `Omitido` with the reason.
    Omitted {
        provider: &'a str,
        reason: &'a str,
    },
}

/// Writes the outcome if the claim is still ours; returns how many rows changed (0: the lease expired and another
/// worker took the request over). Every outcome write goes through here or [`sent_row`]; both clean the provider's
/// text, so a reason carrying NUL or megabytes cannot make the write fail.
pub async fn record(pool: &Pool, c: &Claimed, outcome: &Outcome<'_>) -> Result<u64, DbError> {
    if let Outcome::Sent { provider, provider_id, warning, await_receipt } = outcome {
        let row = sent_row(c, provider, *provider_id, *warning, *await_receipt);
        return Ok(super::sent::write(pool, &[&row]).await?.len() as u64);
    }
    let conn = pool.get().await?;
    let n = match outcome {
        Outcome::Sent { .. } => 0,
        Outcome::Retry { provider, delay, reason } => {
            conn.execute(
                &conn.prepare_cached(MARK_RETRY).await?,
                &[&c.id, &c.intentos, &delay.as_secs_f64(), &clean_reason(reason), provider],
            )
            .await?
        }
        Outcome::Error { provider, reason } => {
            let reason = clean_reason(reason);
            conn.execute(
                &conn.prepare_cached(MARK_FINAL).await?,
                &[&c.id, &c.intentos, &reason, provider, &RequestState::Error.as_str()],
            )
            .await?
        }
        Outcome::Omitted { provider, reason } => {
            let reason = clean_reason(reason);
            conn.execute(
                &conn.prepare_cached(MARK_FINAL).await?,
                &[&c.id, &c.intentos, &reason, provider, &RequestState::Omitido.as_str()],
            )
            .await?
        }
    };
    Ok(n)
}

/// The row [`super::sent`] writes for a send of this claim.
pub fn sent_row(
    c: &Claimed,
    provider: &str,
    provider_id: Option<&str>,
    warning: Option<&str>,
    await_receipt: Option<Duration>,
) -> Sent {
    // Only a saldo_bajo notice reads `datos` (to stamp the cards it lists).
    let datos = if c.is_saldo_bajo() { c.datos.clone() } else { None };
    Sent::new(c.id, c.intentos, provider, provider_id, warning, await_receipt, datos)
}

const RESTORE_SENT: &str = concat!(
    "UPDATE solicitudes_notificacion
             SET estado = ",
    estado_sql!(Enviado),
    ", ultimo_error = $3, proximo_intento = NULL, actualizado_en = now()
             WHERE id_solicitud = $1 AND intentos = $2 AND estado = ",
    estado_sql!(Pendiente)
);

/// A request sent before that came back to `Pendiente` by another hand: `Enviado` again, saying why it was not
/// sent a second time; its provider and id stay those of the real send.
pub async fn restore_sent(pool: &Pool, c: &Claimed, reason: &str) -> Result<u64, DbError> {
    Ok(pool.get().await?.execute(RESTORE_SENT, &[&c.id, &c.intentos, &reason]).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each statement built with the state and opt-out macros is the text it was, literals and all (the hot path's
    /// prepared statements are cached by their text; the partial indexes need the literals).
    #[test]
    fn the_statements_are_the_ones_they_were() {
        assert_eq!(
            CLOSE_ABANDONED,
            "
    UPDATE solicitudes_notificacion
    SET estado = 'Error', proximo_intento = NULL, actualizado_en = now(),
        ultimo_error = 'sin resultado registrado tras ' || intentos || ' intentos; el envío pudo haberse realizado'
             || coalesce(' (último error: ' || ultimo_error || ')', '')
    WHERE estado = 'Pendiente' AND clave_dedup IS NOT NULL AND intentos >= $1 AND proximo_intento <= now()"
        );
        assert_eq!(
            MARK_RETRY,
            "
    UPDATE solicitudes_notificacion
    SET proximo_intento = now() + make_interval(secs => $3), ultimo_error = $4, proveedor = $5, actualizado_en = now()
    WHERE id_solicitud = $1 AND intentos = $2 AND estado = 'Pendiente'"
        );
        assert_eq!(
            MARK_FINAL,
            "
    UPDATE solicitudes_notificacion
    SET estado = $5::varchar, ultimo_error = $3, proveedor = $4, proximo_intento = NULL, actualizado_en = now()
    WHERE id_solicitud = $1 AND intentos = $2 AND estado = 'Pendiente'"
        );
        assert_eq!(
            OLDEST_DUE,
            "SELECT destino, extract(epoch FROM now() - min(creada))::float8
             FROM (SELECT destino, coalesce(fecha_solicitud, actualizado_en) AS creada
                   FROM solicitudes_notificacion
                   WHERE estado = 'Pendiente' AND clave_dedup IS NOT NULL AND proximo_intento <= now()
                     AND destino IS NOT NULL
                   UNION ALL
                   SELECT destino, coalesce(fecha_solicitud, actualizado_en)
                   FROM solicitudes_notificacion
                   WHERE id_solicitud = ANY($1) AND estado = 'Pendiente' AND destino IS NOT NULL) w
             GROUP BY destino"
        );
        assert_eq!(
            RESTORE_SENT,
            "UPDATE solicitudes_notificacion
             SET estado = 'Enviado', ultimo_error = $3, proximo_intento = NULL, actualizado_en = now()
             WHERE id_solicitud = $1 AND intentos = $2 AND estado = 'Pendiente'"
        );
    }
}
