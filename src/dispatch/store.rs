//! The dispatcher's SQL: claiming due requests with a lease, and recording outcomes only while the claim is ours.

use std::time::Duration;

use deadpool_postgres::Pool;
use serde_json::Value as Json;

use crate::db::DbError;

/// A request the dispatcher holds a lease on.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub tipo: Option<String>,
    pub destino: Option<String>,
    pub destinatario: Option<String>,
    pub datos: Option<Json>,
    pub clave_dedup: String,
    /// The attempt this claim is; outcome writes match on it so a claim taken over after its lease expired
    /// cannot be overwritten by the slow first holder.
    pub intentos: i32,
}

// Claims rows whose time has come; the lease is simply a later proximo_intento, so a worker that dies
// leaves its rows due again when the lease runs out. This commit is synchronous (it precedes the send).
const CLAIM: &str = "
    WITH due AS (
        SELECT id_solicitud FROM solicitudes_notificacion
        WHERE estado = 'Pendiente' AND clave_dedup IS NOT NULL AND proximo_intento <= now()
          AND destino = ANY($3)
        ORDER BY proximo_intento
        LIMIT $1
        FOR UPDATE SKIP LOCKED)
    UPDATE solicitudes_notificacion s
    SET proximo_intento = now() + make_interval(secs => $2), intentos = s.intentos + 1, actualizado_en = now()
    FROM due WHERE s.id_solicitud = due.id_solicitud
    RETURNING s.id_solicitud, s.tipo, s.destino, s.destinatario, s.datos, s.clave_dedup, s.intentos";

pub async fn claim(
    pool: &Pool,
    limit: i64,
    lease: Duration,
    destinos: &[&str],
) -> Result<Vec<Claimed>, DbError> {
    let conn = pool.get().await?;
    let rows = conn
        .query(CLAIM, &[&limit, &lease.as_secs_f64(), &destinos])
        .await?;
    Ok(rows
        .iter()
        .map(|r| Claimed {
            id: r.get(0),
            tipo: r.get(1),
            destino: r.get(2),
            destinatario: r.get(3),
            datos: r.get(4),
            clave_dedup: r.get(5),
            intentos: r.get(6),
        })
        .collect())
}

/// Sent: `Enviado` with the time and the provider's id. A `saldo_bajo` notice also stamps the card's
/// `ultima_notificacion_saldo`, which the app and the daily sweep read.
const MARK_SENT: &str = "
    WITH s AS (
        UPDATE solicitudes_notificacion
        SET estado = 'Enviado', fecha_envio = now(), proveedor = $3, id_proveedor = $4, ultimo_error = NULL,
            proximo_intento = NULL, actualizado_en = now()
        WHERE id_solicitud = $1 AND intentos = $2 AND estado = 'Pendiente'
        RETURNING tipo, nro_tarjeta)
    UPDATE tarjetas t SET ultima_notificacion_saldo = now()
    FROM s WHERE s.tipo = 'saldo_bajo' AND t.nro_tarjeta = s.nro_tarjeta";

const MARK_RETRY: &str = "
    UPDATE solicitudes_notificacion
    SET proximo_intento = now() + make_interval(secs => $3), ultimo_error = $4, proveedor = $5, actualizado_en = now()
    WHERE id_solicitud = $1 AND intentos = $2 AND estado = 'Pendiente'";

const MARK_ERROR: &str = "
    UPDATE solicitudes_notificacion
    SET estado = 'Error', ultimo_error = $3, proveedor = $4, proximo_intento = NULL, actualizado_en = now()
    WHERE id_solicitud = $1 AND intentos = $2 AND estado = 'Pendiente'";

/// Gives back claims never started (shutdown): due now, and the attempt does not count.
const RELEASE: &str = "
    UPDATE solicitudes_notificacion
    SET proximo_intento = now(), intentos = intentos - 1, actualizado_en = now()
    WHERE id_solicitud = $1 AND intentos = $2 AND estado = 'Pendiente'";

pub enum Outcome<'a> {
    Sent {
        provider: &'a str,
        provider_id: Option<&'a str>,
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
}

pub async fn record(pool: &Pool, c: &Claimed, outcome: Outcome<'_>) -> Result<(), DbError> {
    let conn = pool.get().await?;
    match outcome {
        Outcome::Sent {
            provider,
            provider_id,
        } => {
            conn.execute(MARK_SENT, &[&c.id, &c.intentos, &provider, &provider_id])
                .await?;
        }
        Outcome::Retry {
            provider,
            delay,
            reason,
        } => {
            conn.execute(
                MARK_RETRY,
                &[&c.id, &c.intentos, &delay.as_secs_f64(), &reason, &provider],
            )
            .await?;
        }
        Outcome::Error { provider, reason } => {
            conn.execute(MARK_ERROR, &[&c.id, &c.intentos, &reason, &provider])
                .await?;
        }
    }
    Ok(())
}

pub async fn release(pool: &Pool, c: &Claimed) -> Result<(), DbError> {
    pool.get()
        .await?
        .execute(RELEASE, &[&c.id, &c.intentos])
        .await?;
    Ok(())
}
