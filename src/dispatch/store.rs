//! The dispatcher's SQL: claiming due requests with a lease, and recording outcomes only while the claim is ours.

use std::time::Duration;

use deadpool_postgres::Pool;
use serde_json::Value as Json;

use crate::channels::provider_text::clean_reason;
use crate::db::DbError;
use crate::requests::sent::Sent;

/// A request the dispatcher holds a lease on.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub tipo: Option<String>,
    pub destino: Option<String>,
    pub destinatario: Option<String>,
    pub datos: Option<Json>,
    pub clave_dedup: String,
    /// `v1:…`, written by the service with the row (crate::signing); checked before the send.
    pub firma: Option<String>,
    /// Signed with the row: the client and the card it is about.
    pub id_cliente: Option<i32>,
    pub nro_tarjeta: Option<String>,
    /// The history records a send of it already: it came back to `Pendiente` by someone's hand (`requests resend`
    /// refuses a sent request), and is not sent again.
    pub already_sent: bool,
    /// The attempt this claim is; outcome writes match on it so a claim taken over after its lease expired
    /// cannot be overwritten by the slow first holder.
    pub intentos: i32,
    /// When the claim came back from the database (its lease began a little earlier, at the transaction's start).
    pub claimed_at: std::time::Instant,
}

// Claims rows whose time has come; the lease is simply a later proximo_intento, so a worker that dies
// leaves its rows due again when the lease runs out. This commit is synchronous (it precedes the send).
const CLAIM: &str = "
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
                      WHERE h.id_solicitud = s.id_solicitud AND h.evento = 'enviada')";

impl Claimed {
    /// What the signature covers, as the row holds it now.
    pub fn signed_fields(&self) -> crate::signing::SignedFields<'_> {
        crate::signing::SignedFields {
            clave_dedup: &self.clave_dedup,
            id_cliente: self.id_cliente,
            nro_tarjeta: self.nro_tarjeta.as_deref(),
            destino: self.destino.as_deref(),
            destinatario: self.destinatario.as_deref(),
            tipo: self.tipo.as_deref(),
            datos: self.datos.as_ref(),
        }
    }

    /// A copy without the payload (`datos`), which is the costly part to clone.
    pub fn clone_head(&self) -> Claimed {
        Claimed {
            id: self.id,
            tipo: self.tipo.clone(),
            destino: self.destino.clone(),
            destinatario: self.destinatario.clone(),
            datos: None,
            clave_dedup: self.clave_dedup.clone(),
            firma: self.firma.clone(),
            id_cliente: self.id_cliente,
            nro_tarjeta: self.nro_tarjeta.clone(),
            already_sent: self.already_sent,
            intentos: self.intentos,
            claimed_at: self.claimed_at,
        }
    }
}

pub async fn claim(
    pool: &Pool,
    limit: i64,
    lease: Duration,
    destinos: &[&str],
    max_attempts: i32,
) -> Result<Vec<Claimed>, DbError> {
    let rows = crate::db::query_hot(pool, CLAIM, &[&limit, &lease.as_secs_f64(), &destinos, &max_attempts]).await?;
    let claimed_at = std::time::Instant::now();
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
            firma: r.get(7),
            id_cliente: r.get(8),
            nro_tarjeta: r.get(9),
            already_sent: r.get(10),
            claimed_at,
        })
        .collect())
}

/// Signs the requests that were waiting when migration 0018 ran (listed by the migration, which only the owner can
/// add to, with a fingerprint of what each held): the service wrote them before it signed anything. A row changed
/// since is left unsigned (refused when claimed). Takes them off the list in the same transaction; deleting locks
/// them, so a replica starting at the same time waits, then finds them gone.
pub async fn sign_pending_at_upgrade(pool: &Pool, signer: &crate::signing::RowSigner) -> Result<u64, DbError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let listed = tx.query("DELETE FROM cantina_notify_sin_firma RETURNING id_solicitud, huella", &[]).await?;
    if listed.is_empty() {
        return Ok(0);
    }
    let (ids, huellas): (Vec<i64>, Vec<String>) =
        listed.iter().map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1))).unzip();
    let rows = tx
        .query(
            "SELECT s.id_solicitud, s.clave_dedup, s.id_cliente, s.nro_tarjeta, s.destino, s.destinatario, s.tipo, s.datos
             FROM solicitudes_notificacion s JOIN unnest($1::int8[], $2::text[]) AS l(id, huella) ON l.id = s.id_solicitud
             WHERE s.clave_dedup IS NOT NULL AND s.firma IS NULL
               AND md5(ROW(s.clave_dedup, s.id_cliente, s.nro_tarjeta, s.destino, s.destinatario, s.tipo, s.datos)::text)
                   = l.huella",
            &[&ids, &huellas],
        )
        .await?;
    let mut signed_ids = Vec::with_capacity(rows.len());
    let mut firmas = Vec::with_capacity(rows.len());
    for r in &rows {
        let datos: Option<Json> = r.get(7);
        signed_ids.push(r.get::<_, i64>(0));
        firmas.push(signer.sign(&crate::signing::SignedFields {
            clave_dedup: r.get(1),
            id_cliente: r.get(2),
            nro_tarjeta: r.get(3),
            destino: r.get(4),
            destinatario: r.get(5),
            tipo: r.get(6),
            datos: datos.as_ref(),
        }));
    }
    if listed.len() > rows.len() {
        tracing::warn!(
            listed = listed.len(),
            signed = rows.len(),
            "requests changed since migration 0018 listed them are not signed; they are refused when claimed"
        );
    }
    let n = tx
        .execute(
            "UPDATE solicitudes_notificacion s SET firma = u.firma
             FROM unnest($1::int8[], $2::text[]) AS u(id, firma) WHERE s.id_solicitud = u.id",
            &[&signed_ids, &firmas],
        )
        .await?;
    tx.commit().await?;
    Ok(n)
}

/// Claims that ran out of attempts without any outcome recorded (a worker crashed mid-send each time, or could not
/// write the outcome): never claimed again, so they are closed as `Error` saying the send may have happened.
const CLOSE_ABANDONED: &str = "
    UPDATE solicitudes_notificacion
    SET estado = 'Error', proximo_intento = NULL, actualizado_en = now(),
        ultimo_error = 'sin resultado registrado tras ' || intentos || ' intentos; el envío pudo haberse realizado'
             || coalesce(' (último error: ' || ultimo_error || ')', '')
    WHERE estado = 'Pendiente' AND clave_dedup IS NOT NULL AND intentos >= $1 AND proximo_intento <= now()";

const MARK_RETRY: &str = "
    UPDATE solicitudes_notificacion
    SET proximo_intento = now() + make_interval(secs => $3), ultimo_error = $4, proveedor = $5, actualizado_en = now()
    WHERE id_solicitud = $1 AND intentos = $2 AND estado = 'Pendiente'";

const MARK_FINAL: &str = "
    UPDATE solicitudes_notificacion
    SET estado = $5::varchar, ultimo_error = $3, proveedor = $4, proximo_intento = NULL, actualizado_en = now()
    WHERE id_solicitud = $1 AND intentos = $2 AND estado = 'Pendiente'";

/// Gives back claims never started (shutdown): due now, and the attempt does not count.
const RELEASE: &str = "
    UPDATE solicitudes_notificacion
    SET proximo_intento = now(), intentos = intentos - 1, actualizado_en = now()
    WHERE id_solicitud = $1 AND intentos = $2 AND estado = 'Pendiente'";

/// Per destino: age in seconds, since creation, of the oldest `Pendiente` request that is due now (rows waiting for a
/// retry time, the end of quiet hours, or held under a lease are not due), counting the claims `queued` in memory
/// (handed over by the drain, waiting for a send slot) as due.
pub async fn oldest_due(pool: &Pool, queued: &[i64]) -> Result<Vec<(String, f64)>, DbError> {
    let rows = pool
        .get()
        .await?
        .query(
            "SELECT destino, extract(epoch FROM now() - min(creada))::float8
             FROM (SELECT destino, coalesce(fecha_solicitud, actualizado_en) AS creada
                   FROM solicitudes_notificacion
                   WHERE estado = 'Pendiente' AND clave_dedup IS NOT NULL AND proximo_intento <= now()
                     AND destino IS NOT NULL
                   UNION ALL
                   SELECT destino, coalesce(fecha_solicitud, actualizado_en)
                   FROM solicitudes_notificacion
                   WHERE id_solicitud = ANY($1) AND estado = 'Pendiente' AND destino IS NOT NULL) w
             GROUP BY destino",
            &[&queued],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get::<_, Option<f64>>(1).unwrap_or(0.0).max(0.0))).collect())
}

pub async fn close_abandoned(pool: &Pool, max_attempts: i32) -> Result<u64, DbError> {
    let conn = pool.get().await?;
    Ok(conn.execute(&conn.prepare_cached(CLOSE_ABANDONED).await?, &[&max_attempts]).await?)
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
        return Ok(crate::requests::sent::write(pool, &[&row]).await?.len() as u64);
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
            conn.execute(&conn.prepare_cached(MARK_FINAL).await?, &[&c.id, &c.intentos, &reason, provider, &"Error"])
                .await?
        }
        Outcome::Omitted { provider, reason } => {
            let reason = clean_reason(reason);
            conn.execute(&conn.prepare_cached(MARK_FINAL).await?, &[&c.id, &c.intentos, &reason, provider, &"Omitido"])
                .await?
        }
    };
    Ok(n)
}

/// The row [`crate::requests::sent`] writes for a send of this claim.
pub fn sent_row(
    c: &Claimed,
    provider: &str,
    provider_id: Option<&str>,
    warning: Option<&str>,
    await_receipt: Option<Duration>,
) -> Sent {
    // Only a saldo_bajo notice reads `datos` (to stamp the cards it lists).
    let datos = if c.tipo.as_deref() == Some("saldo_bajo") { c.datos.clone() } else { None };
    Sent::new(c.id, c.intentos, provider, provider_id, warning, await_receipt, datos)
}

/// A request sent before that came back to `Pendiente` by another hand: `Enviado` again, saying why it was not
/// sent a second time; its provider and id stay those of the real send.
pub async fn restore_sent(pool: &Pool, c: &Claimed, reason: &str) -> Result<u64, DbError> {
    Ok(pool
        .get()
        .await?
        .execute(
            "UPDATE solicitudes_notificacion
             SET estado = 'Enviado', ultimo_error = $3, proximo_intento = NULL, actualizado_en = now()
             WHERE id_solicitud = $1 AND intentos = $2 AND estado = 'Pendiente'",
            &[&c.id, &c.intentos, &reason],
        )
        .await?)
}

pub async fn release(pool: &Pool, c: &Claimed) -> Result<(), DbError> {
    pool.get().await?.execute(RELEASE, &[&c.id, &c.intentos]).await?;
    Ok(())
}

/// Quiet hours: the request waits, `Pendiente`, until `until`; the attempt does not count.
pub async fn defer(pool: &Pool, c: &Claimed, until: jiff::Timestamp) -> Result<(), DbError> {
    let until = std::time::SystemTime::from(until);
    pool.get()
        .await?
        .execute(
            "UPDATE solicitudes_notificacion
             SET proximo_intento = $3, intentos = intentos - 1, actualizado_en = now(),
                 ultimo_error = 'en espera: horario de silencio'
             WHERE id_solicitud = $1 AND intentos = $2 AND estado = 'Pendiente'",
            &[&c.id, &c.intentos, &until],
        )
        .await?;
    Ok(())
}
