//! Reads that report on requests: `stats`, the daily summary, the failure-rate alert, the sweeps' "already notified
//! today". The callers keep their logic and output; the SQL and the rows are here.

use std::time::SystemTime;

use serde::Serialize;
use tokio_postgres::{Client, GenericClient};

use super::state::estado_sql;

// ---------------------------------------------------------------------------------------------------------------
// `stats`.

/// Requests created in the period with one type, channel and state.
#[derive(Debug, Serialize)]
pub struct StateCount {
    pub tipo: String,
    pub destino: String,
    pub estado: String,
    pub count: i64,
}

const STATS_COUNTS: &str = "
    SELECT coalesce(tipo, '(sin tipo)'), coalesce(destino, '(sin destino)'), estado, count(*)
    FROM solicitudes_notificacion
    -- coalesce(fecha_solicitud, actualizado_en) >= $1, in the form the indexes serve (migration 0013).
    WHERE (fecha_solicitud >= $1 OR (fecha_solicitud IS NULL AND actualizado_en >= $1))
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";

/// Requests created since `from`, by type × channel × state.
pub async fn stats_counts(client: &Client, from: SystemTime) -> Result<Vec<StateCount>, tokio_postgres::Error> {
    Ok(client
        .query(STATS_COUNTS, &[&from])
        .await?
        .iter()
        .map(|r| StateCount { tipo: r.get(0), destino: r.get(1), estado: r.get(2), count: r.get(3) })
        .collect())
}

/// One channel's queue now.
#[derive(Debug, Clone)]
pub struct QueueRow {
    pub destino: String,
    pub pending: i64,
    pub due: i64,
    pub deferred: i64,
    pub retrying: i64,
}

// Deferred: waiting for a later time without having been tried (scheduled, or quiet hours give the attempt back and
// say so in ultimo_error). Retrying: tried at least once (a row being sent right now is one too).
const STATS_QUEUE: &str = concat!(
    "
    SELECT coalesce(destino, '(sin destino)') AS destino,
           count(*) AS pending,
           count(*) FILTER (WHERE proximo_intento IS NULL OR proximo_intento <= now()) AS due,
           count(*) FILTER (WHERE proximo_intento > now()
                              AND (intentos = 0 OR ultimo_error LIKE 'en espera%')) AS deferred,
           count(*) FILTER (WHERE intentos > 0 AND NOT (proximo_intento > now() AND ultimo_error LIKE 'en espera%'))
               AS retrying
    FROM solicitudes_notificacion WHERE estado = ",
    estado_sql!(Pendiente),
    "
    GROUP BY 1 ORDER BY 1"
);

/// The pending requests now, per channel.
pub async fn stats_queue(client: &Client) -> Result<Vec<QueueRow>, tokio_postgres::Error> {
    client
        .query(STATS_QUEUE, &[])
        .await?
        .iter()
        .map(|r| {
            Ok(QueueRow {
                destino: r.try_get("destino")?,
                pending: r.try_get("pending")?,
                due: r.try_get("due")?,
                deferred: r.try_get("deferred")?,
                retrying: r.try_get("retrying")?,
            })
        })
        .collect()
}

/// The oldest pending request.
#[derive(Debug, Clone)]
pub struct OldestRow {
    pub id: i64,
    pub destino: Option<String>,
    pub tipo: Option<String>,
    pub creada: SystemTime,
    pub intentos: i32,
    pub proximo_intento: Option<SystemTime>,
    pub age_seconds: Option<f64>,
}

const STATS_OLDEST: &str = concat!(
    "
    SELECT id_solicitud, destino, tipo, coalesce(fecha_solicitud, actualizado_en, now()) AS creada, intentos,
           proximo_intento, extract(epoch FROM now() - coalesce(fecha_solicitud, actualizado_en, now()))::float8 AS edad
    FROM solicitudes_notificacion WHERE estado = ",
    estado_sql!(Pendiente),
    "
    ORDER BY coalesce(fecha_solicitud, actualizado_en, now()), id_solicitud LIMIT 1"
);

pub async fn stats_oldest(client: &Client) -> Result<Option<OldestRow>, tokio_postgres::Error> {
    client
        .query_opt(STATS_OLDEST, &[])
        .await?
        .map(|r| {
            Ok(OldestRow {
                id: r.try_get("id_solicitud")?,
                destino: r.try_get("destino")?,
                tipo: r.try_get("tipo")?,
                creada: r.try_get("creada")?,
                intentos: r.try_get("intentos")?,
                proximo_intento: r.try_get("proximo_intento")?,
                age_seconds: r.try_get("edad")?,
            })
        })
        .transpose()
}

/// A channel's newest failure in the period.
#[derive(Debug, Clone)]
pub struct LastErrorRow {
    pub destino: String,
    pub id: i64,
    pub at: Option<SystemTime>,
    pub estado: String,
    pub ultimo_error: String,
}

// A failure: a request that ended Error, one waiting to retry after an error, or one whose receipt said failed.
const STATS_LAST_ERRORS: &str = concat!(
    "
    SELECT DISTINCT ON (destino) destino, id_solicitud, coalesce(actualizado_en, fecha_solicitud) AS en, estado,
           ultimo_error
    FROM solicitudes_notificacion
    WHERE destino IS NOT NULL AND ultimo_error IS NOT NULL
      AND (fecha_solicitud >= $1 OR (fecha_solicitud IS NULL AND actualizado_en >= $1))
      AND (estado = ",
    estado_sql!(Error),
    " OR estado_entrega = 'failed'
           OR (estado = ",
    estado_sql!(Pendiente),
    " AND intentos > 0 AND ultimo_error NOT LIKE 'en espera%'))
    ORDER BY destino, coalesce(actualizado_en, fecha_solicitud) DESC NULLS LAST, id_solicitud DESC"
);

pub async fn stats_last_errors(client: &Client, from: SystemTime) -> Result<Vec<LastErrorRow>, tokio_postgres::Error> {
    client
        .query(STATS_LAST_ERRORS, &[&from])
        .await?
        .iter()
        .map(|r| {
            Ok(LastErrorRow {
                destino: r.try_get("destino")?,
                id: r.try_get("id_solicitud")?,
                at: r.try_get("en")?,
                estado: r.try_get("estado")?,
                ultimo_error: r.try_get("ultimo_error")?,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------------------
// The daily summary.

/// Requests of the day with one type, channel and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayCount {
    pub tipo: Option<String>,
    pub destino: Option<String>,
    pub estado: String,
    pub n: i64,
}

const SUMMARY_COUNTS: &str = "
    SELECT tipo::text, destino::text, estado::text, count(*)::bigint
    FROM solicitudes_notificacion
    WHERE fecha_solicitud >= $1 AND fecha_solicitud < $2
    GROUP BY 1, 2, 3";

/// Requests created in `[start, end)`, by type × channel × state.
pub async fn day_counts(
    client: &impl GenericClient,
    start: SystemTime,
    end: SystemTime,
) -> Result<Vec<DayCount>, tokio_postgres::Error> {
    Ok(client
        .query(SUMMARY_COUNTS, &[&start, &end])
        .await?
        .iter()
        .map(|r| DayCount { tipo: r.get(0), destino: r.get(1), estado: r.get(2), n: r.get(3) })
        .collect())
}

/// Failed requests sharing one raw reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureGroup {
    pub motivo: String,
    pub n: i64,
    pub destinos: Vec<String>,
    /// The first ids, at most the limit asked for.
    pub ejemplos: Vec<i64>,
    /// Those that are `Enviado` with a `failed` receipt.
    pub recibos: i64,
}

// A failure, as `stats` counts it: a request that ended `Error`, or one `Enviado` whose delivery receipt said
// `failed`. Grouped here by the raw reason; the summary masks and regroups the reasons in Rust, since two raw
// reasons that differ only in the address they quote are one reason once masked.
const SUMMARY_FAILURES: &str = concat!(
    "
    SELECT motivo, count(*)::bigint AS n,
           array_agg(DISTINCT coalesce(destino::text, '(sin canal)')) AS destinos,
           (array_agg(id_solicitud ORDER BY id_solicitud))[1:$3::int] AS ejemplos,
           count(*) FILTER (WHERE estado = ",
    estado_sql!(Enviado),
    ")::bigint AS recibos
    FROM (SELECT coalesce(nullif(btrim(ultimo_error), ''), '(sin motivo registrado)') AS motivo, destino, id_solicitud,
                 estado
          FROM solicitudes_notificacion
          WHERE (estado = ",
    estado_sql!(Error),
    " OR (estado = ",
    estado_sql!(Enviado),
    " AND estado_entrega = 'failed'))
            AND fecha_solicitud >= $1 AND fecha_solicitud < $2) f
    GROUP BY motivo"
);

/// The failures of the requests created in `[start, end)`, by raw reason, with up to `examples` ids each.
pub async fn day_failures(
    client: &impl GenericClient,
    start: SystemTime,
    end: SystemTime,
    examples: i32,
) -> Result<Vec<FailureGroup>, tokio_postgres::Error> {
    client
        .query(SUMMARY_FAILURES, &[&start, &end, &examples])
        .await?
        .iter()
        .map(|r| {
            Ok(FailureGroup {
                motivo: r.try_get("motivo")?,
                n: r.try_get("n")?,
                destinos: r.try_get("destinos")?,
                ejemplos: r.try_get("ejemplos")?,
                recibos: r.try_get("recibos")?,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------------------
// The failure-rate alert.

/// One channel's finished sends in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureRate {
    pub destino: String,
    pub total: i64,
    pub fallidos: i64,
    pub ultimo_error: Option<String>,
}

/// Requests the dispatcher finished in the window, per `destino`. Counted: the service's own requests
/// (`clave_dedup`) that were tried at least once (`intentos > 0`: a request recorded `Error` when it was created,
/// for want of an address, says nothing about the channel) and ended `Enviado` or `Error` (`Omitido` was never
/// meant to be sent). A failure is `Error`, or `Enviado` whose delivery receipt said `failed`.
const FAILURE_RATES: &str = concat!(
    "
    SELECT destino,
           count(*),
           count(*) FILTER (WHERE estado = ",
    estado_sql!(Error),
    " OR estado_entrega = 'failed'),
           (array_agg(ultimo_error ORDER BY actualizado_en DESC, id_solicitud DESC)
               FILTER (WHERE (estado = ",
    estado_sql!(Error),
    " OR estado_entrega = 'failed') AND ultimo_error IS NOT NULL))[1]
    FROM solicitudes_notificacion
    WHERE clave_dedup IS NOT NULL AND destino IS NOT NULL AND intentos > 0
      AND estado IN (",
    estado_sql!(Enviado),
    ", ",
    estado_sql!(Error),
    ")
      AND actualizado_en >= now() - make_interval(mins => $1)
    GROUP BY destino
    ORDER BY destino"
);

/// The channels' failure rates over the last `minutes`.
pub async fn failure_rates(client: &Client, minutes: i32) -> Result<Vec<FailureRate>, tokio_postgres::Error> {
    Ok(client
        .query(FAILURE_RATES, &[&minutes])
        .await?
        .iter()
        .map(|r| FailureRate { destino: r.get(0), total: r.get(1), fallidos: r.get(2), ultimo_error: r.get(3) })
        .collect())
}

// ---------------------------------------------------------------------------------------------------------------
// The sweeps.

/// The keys of every `saldo_bajo` request naming one of the cards $1 (the trigger's crossings among them).
const SALDO_BAJO_KEYS_OF_CARDS: &str = "
    SELECT nro_tarjeta, clave_dedup FROM solicitudes_notificacion
    WHERE tipo = 'saldo_bajo' AND nro_tarjeta = ANY($1) AND clave_dedup IS NOT NULL";

/// `(nro_tarjeta, clave_dedup)` of the `saldo_bajo` requests about `cards`: the daily sweep finds a card's latest
/// crossing notice in them (`saldo_bajo:<nro>:<date>:<channel>`).
pub async fn saldo_bajo_keys_of_cards(
    client: &impl deadpool_postgres::GenericClient,
    cards: &[String],
) -> Result<Vec<(String, String)>, tokio_postgres::Error> {
    Ok(client.query(SALDO_BAJO_KEYS_OF_CARDS, &[&cards]).await?.iter().map(|r| (r.get(0), r.get(1))).collect())
}

const KEYS_TAKEN: &str = "SELECT clave_dedup FROM solicitudes_notificacion WHERE clave_dedup = ANY($1)";

/// Which of `keys` some request already holds (the daily sweep: a `tarjeta_vencida` the trigger's rule sent).
pub async fn keys_taken(
    client: &impl deadpool_postgres::GenericClient,
    keys: &[String],
) -> Result<std::collections::HashSet<String>, tokio_postgres::Error> {
    Ok(client.query(KEYS_TAKEN, &[&keys]).await?.iter().map(|r| r.get(0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each statement built with the state macro is the text it was, literals and all (plus the column names the
    /// rows are now read by).
    #[test]
    fn the_statements_are_the_ones_they_were() {
        assert_eq!(
            STATS_QUEUE,
            "
    SELECT coalesce(destino, '(sin destino)') AS destino,
           count(*) AS pending,
           count(*) FILTER (WHERE proximo_intento IS NULL OR proximo_intento <= now()) AS due,
           count(*) FILTER (WHERE proximo_intento > now()
                              AND (intentos = 0 OR ultimo_error LIKE 'en espera%')) AS deferred,
           count(*) FILTER (WHERE intentos > 0 AND NOT (proximo_intento > now() AND ultimo_error LIKE 'en espera%'))
               AS retrying
    FROM solicitudes_notificacion WHERE estado = 'Pendiente'
    GROUP BY 1 ORDER BY 1"
        );
        assert_eq!(
            STATS_OLDEST,
            "
    SELECT id_solicitud, destino, tipo, coalesce(fecha_solicitud, actualizado_en, now()) AS creada, intentos,
           proximo_intento, extract(epoch FROM now() - coalesce(fecha_solicitud, actualizado_en, now()))::float8 AS edad
    FROM solicitudes_notificacion WHERE estado = 'Pendiente'
    ORDER BY coalesce(fecha_solicitud, actualizado_en, now()), id_solicitud LIMIT 1"
        );
        assert_eq!(
            STATS_LAST_ERRORS,
            "
    SELECT DISTINCT ON (destino) destino, id_solicitud, coalesce(actualizado_en, fecha_solicitud) AS en, estado,
           ultimo_error
    FROM solicitudes_notificacion
    WHERE destino IS NOT NULL AND ultimo_error IS NOT NULL
      AND (fecha_solicitud >= $1 OR (fecha_solicitud IS NULL AND actualizado_en >= $1))
      AND (estado = 'Error' OR estado_entrega = 'failed'
           OR (estado = 'Pendiente' AND intentos > 0 AND ultimo_error NOT LIKE 'en espera%'))
    ORDER BY destino, coalesce(actualizado_en, fecha_solicitud) DESC NULLS LAST, id_solicitud DESC"
        );
        assert_eq!(
            SUMMARY_FAILURES,
            "
    SELECT motivo, count(*)::bigint AS n,
           array_agg(DISTINCT coalesce(destino::text, '(sin canal)')) AS destinos,
           (array_agg(id_solicitud ORDER BY id_solicitud))[1:$3::int] AS ejemplos,
           count(*) FILTER (WHERE estado = 'Enviado')::bigint AS recibos
    FROM (SELECT coalesce(nullif(btrim(ultimo_error), ''), '(sin motivo registrado)') AS motivo, destino, id_solicitud,
                 estado
          FROM solicitudes_notificacion
          WHERE (estado = 'Error' OR (estado = 'Enviado' AND estado_entrega = 'failed'))
            AND fecha_solicitud >= $1 AND fecha_solicitud < $2) f
    GROUP BY motivo"
        );
        assert_eq!(
            FAILURE_RATES,
            "
    SELECT destino,
           count(*),
           count(*) FILTER (WHERE estado = 'Error' OR estado_entrega = 'failed'),
           (array_agg(ultimo_error ORDER BY actualizado_en DESC, id_solicitud DESC)
               FILTER (WHERE (estado = 'Error' OR estado_entrega = 'failed') AND ultimo_error IS NOT NULL))[1]
    FROM solicitudes_notificacion
    WHERE clave_dedup IS NOT NULL AND destino IS NOT NULL AND intentos > 0
      AND estado IN ('Enviado', 'Error')
      AND actualizado_en >= now() - make_interval(mins => $1)
    GROUP BY destino
    ORDER BY destino"
        );
    }
}
