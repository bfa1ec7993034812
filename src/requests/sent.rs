//! Recording sends: the hot write of the dispatcher. Every `Enviado` that arrives while the previous write runs
//! goes into the next statement (group commit: one `UPDATE … FROM unnest` for up to [`MAX_ROWS`] requests), so a
//! busy dispatcher pays one round trip and one commit per batch instead of per notice, and an idle one still writes
//! each send at once. Each caller waits for its own answer, so shutdown (which waits for the send tasks) still
//! waits for every outcome to be written.

use std::time::Duration;

use deadpool_postgres::Pool;
use serde_json::Value as Json;
use tokio::sync::{mpsc, oneshot};

use super::state::estado_sql;
use crate::channels::provider_text::{clean_id, clean_reason};
use crate::db::DbError;

/// Rows per statement: enough to amortise the round trip, small enough to keep one statement short.
const MAX_ROWS: usize = 500;

/// Sent: `Enviado` with the time, the provider's id and, in `ultimo_error`, the warning staff should see (e.g. no
/// id). Both are cleaned by [`Sent::new`] (no NUL, bounded length): a provider's bytes must not make the write fail,
/// or the request would stay claimed and be sent again when the lease expires; and one bad row would fail the whole
/// batch. `left(…, 255)` stays as a second guard. Only while the claim is still ours (`intentos` and `Pendiente`
/// match).
///
/// Their 'enviada' history rows follow in the next statement ([`RECORD_SENT`]), in a transaction begun by
/// [`crate::db::BEGIN_HOT_OWN_HISTORY`] (the history trigger skips it; migration 0011).
const MARK_SENT: &str = concat!(
    "
    UPDATE solicitudes_notificacion s
    SET estado = ",
    estado_sql!(Enviado),
    ", fecha_envio = now(), proveedor = u.proveedor, id_proveedor = left(u.id_proveedor, 255),
        ultimo_error = u.aviso, proximo_intento = NULL, actualizado_en = now(),
        espera_recibo_hasta = CASE WHEN s.canales_respaldo IS NOT NULL AND u.espera IS NOT NULL
                                   THEN now() + make_interval(secs => u.espera) END
    FROM unnest($1::int8[], $2::int4[], $3::text[], $4::text[], $5::float8[], $6::text[])
         AS u(id, intentos, proveedor, id_proveedor, espera, aviso)
    -- `= ANY($1)` bounds the plan to the listed rows whatever the statistics said when it was cached (a join plan
    -- made while the table was nearly empty scanned it whole on every write).
    WHERE s.id_solicitud = ANY($1) AND s.id_solicitud = u.id AND s.intentos = u.intentos AND s.estado = ",
    estado_sql!(Pendiente),
    "
    RETURNING s.id_solicitud, s.tipo, s.nro_tarjeta"
);

/// The 'enviada' history rows of the requests the statement before marked sent, written by the owner's function
/// from the rows themselves (migration 0020: the runtime role cannot write history rows of its own).
const RECORD_SENT: &str = "SELECT cantina_notify_historial_enviadas($1::int8[])";

/// One send to record. The provider's text is private and cleaned in [`Sent::new`], so no row of a batch can carry
/// bytes PostgreSQL refuses.
pub struct Sent {
    pub id: i64,
    pub intentos: i32,
    pub provider: String,
    provider_id: Option<String>,
    warning: Option<String>,
    /// In a fallback chain: how long to wait for a delivery receipt before the next channel.
    pub await_receipt: Option<Duration>,
    /// The request's `datos`, for the card stamps of a `saldo_bajo` notice.
    pub datos: Option<Json>,
}

impl Sent {
    pub fn new(
        id: i64,
        intentos: i32,
        provider: &str,
        provider_id: Option<&str>,
        warning: Option<&str>,
        await_receipt: Option<Duration>,
        datos: Option<Json>,
    ) -> Self {
        Sent {
            id,
            intentos,
            provider: provider.to_string(),
            provider_id: provider_id.and_then(clean_id),
            warning: warning.map(clean_reason).filter(|w| !w.is_empty()),
            await_receipt,
            datos,
        }
    }

    pub fn provider_id(&self) -> Option<&str> {
        self.provider_id.as_deref()
    }
}

struct Job {
    sent: Sent,
    /// Whether the row was still ours (false: the lease had expired and another worker took it over).
    reply: oneshot::Sender<Result<bool, String>>,
}

/// Handle to the writer task; cheap to share. The task ends when the last handle is dropped.
pub struct SentWriter {
    jobs: mpsc::UnboundedSender<Job>,
}

impl SentWriter {
    pub fn start(pool: Pool) -> Self {
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, rx));
        Self { jobs }
    }

    /// Records one send; returns how many rows changed (0: the claim was no longer ours).
    pub async fn record(&self, sent: Sent) -> Result<u64, DbError> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job { sent, reply }).map_err(|_| DbError::Shared("the outcome writer has stopped".into()))?;
        match answer.await {
            Ok(Ok(ours)) => Ok(u64::from(ours)),
            Ok(Err(e)) => Err(DbError::Shared(e)),
            Err(_) => Err(DbError::Shared("the outcome writer stopped before answering".into())),
        }
    }
}

async fn run(pool: Pool, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_ROWS);
    while rx.recv_many(&mut batch, MAX_ROWS).await > 0 {
        let rows: Vec<&Sent> = batch.iter().map(|j| &j.sent).collect();
        let result = write(&pool, &rows).await;
        for job in batch.drain(..) {
            let answer = match &result {
                Ok(ours) => Ok(ours.contains(&job.sent.id)),
                Err(e) => Err(e.to_string()),
            };
            // The caller may have given up (shutdown); nothing to tell it then.
            let _ = job.reply.send(answer);
        }
    }
}

/// One statement for the whole batch; returns the ids it changed.
pub async fn write(pool: &Pool, batch: &[&Sent]) -> Result<Vec<i64>, DbError> {
    let ids: Vec<i64> = batch.iter().map(|s| s.id).collect();
    let intentos: Vec<i32> = batch.iter().map(|s| s.intentos).collect();
    let providers: Vec<&str> = batch.iter().map(|s| s.provider.as_str()).collect();
    let provider_ids: Vec<Option<&str>> = batch.iter().map(|s| s.provider_id.as_deref()).collect();
    let waits: Vec<Option<f64>> = batch.iter().map(|s| s.await_receipt.map(|d| d.as_secs_f64())).collect();
    let warnings: Vec<Option<&str>> = batch.iter().map(|s| s.warning.as_deref()).collect();
    let rows = crate::db::query_hot_then(
        pool,
        crate::db::BEGIN_HOT_OWN_HISTORY,
        MARK_SENT,
        &[&ids, &intentos, &providers, &provider_ids, &waits, &warnings],
        RECORD_SENT,
        &[&ids],
    )
    .await?;
    let mut changed = Vec::with_capacity(rows.len());
    for r in &rows {
        let (id, tipo, nro): (i64, Option<String>, Option<String>) = (r.get(0), r.get(1), r.get(2));
        changed.push(id);
        if let (Some("saldo_bajo"), Some(nro)) = (tipo.as_deref(), nro) {
            let datos = batch.iter().find(|s| s.id == id).and_then(|s| s.datos.as_ref());
            // Best effort, after the commit: the notice is recorded either way.
            if let Err(e) = crate::cantina::cards::stamp_low_balance(pool, &nro, datos).await {
                tracing::warn!(id, error = %e, "could not stamp ultima_notificacion_saldo");
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each statement built with the state and opt-out macros is the text it was, literals and all (the hot path's
    /// prepared statements are cached by their text; the partial indexes need the literals).
    #[test]
    fn the_statements_are_the_ones_they_were() {
        assert_eq!(
            MARK_SENT,
            "
    UPDATE solicitudes_notificacion s
    SET estado = 'Enviado', fecha_envio = now(), proveedor = u.proveedor, id_proveedor = left(u.id_proveedor, 255),
        ultimo_error = u.aviso, proximo_intento = NULL, actualizado_en = now(),
        espera_recibo_hasta = CASE WHEN s.canales_respaldo IS NOT NULL AND u.espera IS NOT NULL
                                   THEN now() + make_interval(secs => u.espera) END
    FROM unnest($1::int8[], $2::int4[], $3::text[], $4::text[], $5::float8[], $6::text[])
         AS u(id, intentos, proveedor, id_proveedor, espera, aviso)
    -- `= ANY($1)` bounds the plan to the listed rows whatever the statistics said when it was cached (a join plan
    -- made while the table was nearly empty scanned it whole on every write).
    WHERE s.id_solicitud = ANY($1) AND s.id_solicitud = u.id AND s.intentos = u.intentos AND s.estado = 'Pendiente'
    RETURNING s.id_solicitud, s.tipo, s.nro_tarjeta"
        );
    }
}
