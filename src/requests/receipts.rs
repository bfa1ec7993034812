//! Delivery receipts on requests: `estado_entrega` moves forward only. The order of the delivery states is the
//! webhooks' ([`crate::webhooks::receipt::DeliveryState`]); it is passed in as `(state, rank)` pairs, so SQL and
//! Rust agree without this module naming the webhooks.

use tokio_postgres::Client;

use super::state::estado_sql;

/// `CASE <expr> WHEN 'sent' THEN 1 … ELSE 0 END`.
pub fn rank_sql(expr: &str, ranks: &[(&str, i32)]) -> String {
    let whens: String = ranks.iter().map(|(s, r)| format!(" WHEN '{s}' THEN {r}")).collect();
    format!("CASE {expr}{whens} ELSE 0 END")
}

/// The statement that applies a receipt only if it moves the request forward, for delivery states ranked
/// `ranks`. Under READ COMMITTED a second concurrent UPDATE of the same row waits for the first and re-checks the
/// WHERE on the row it left, so it cannot move it back. The failure detail is appended to `ultimo_error` only on
/// the transition to `failed` (once, since repeats do not match) and only for a request that is `Enviado`;
/// `estado` is never touched. Parameters: provider, provider id, new state, failure detail.
pub fn record_receipt_sql(ranks: &[(&str, i32)]) -> String {
    format!(
        concat!(
            "UPDATE solicitudes_notificacion
         SET estado_entrega = $3::varchar,
             actualizado_en = now(),
             ultimo_error = CASE WHEN $3::varchar = 'failed' AND $4::text IS NOT NULL AND estado = ",
            estado_sql!(Enviado),
            "
                                 THEN concat_ws(' | ', ultimo_error, $4::text)
                                 ELSE ultimo_error END
         WHERE proveedor = $1 AND id_proveedor = $2 AND {} < {}
         RETURNING id_solicitud"
        ),
        rank_sql("estado_entrega", ranks),
        rank_sql("$3::varchar", ranks),
    )
}

/// Runs [`record_receipt_sql`]'s statement; the `id_solicitud` whose delivery state changed.
pub async fn record_receipt(
    client: &Client,
    statement: &str,
    provider: &str,
    provider_id: &str,
    state: &str,
    failure_detail: Option<&str>,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let row = client.query_opt(statement, &[&provider, &provider_id, &state, &failure_detail]).await?;
    Ok(row.map(|r| r.get(0)))
}

const REQUEST_ADDRESS: &str = "SELECT destino, destinatario FROM solicitudes_notificacion
             WHERE proveedor = $1 AND id_proveedor = $2 AND destinatario IS NOT NULL
             ORDER BY id_solicitud DESC LIMIT 1";

/// `destino` and `destinatario` of the newest request the provider knows as `provider_id`, with an address.
pub async fn request_address(
    client: &Client,
    provider: &str,
    provider_id: &str,
) -> Result<Option<(String, String)>, tokio_postgres::Error> {
    let row = client.query_opt(REQUEST_ADDRESS, &[&provider, &provider_id]).await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_statement_is_the_one_it_was() {
        let ranks = [("sent", 1), ("failed", 4)];
        assert_eq!(
            super::record_receipt_sql(&ranks),
            "UPDATE solicitudes_notificacion
         SET estado_entrega = $3::varchar,
             actualizado_en = now(),
             ultimo_error = CASE WHEN $3::varchar = 'failed' AND $4::text IS NOT NULL AND estado = 'Enviado'
                                 THEN concat_ws(' | ', ultimo_error, $4::text)
                                 ELSE ultimo_error END
         WHERE proveedor = $1 AND id_proveedor = $2 AND CASE estado_entrega WHEN 'sent' THEN 1 WHEN 'failed' THEN 4 \
             ELSE 0 END < CASE $3::varchar WHEN 'sent' THEN 1 WHEN 'failed' THEN 4 ELSE 0 END
         RETURNING id_solicitud"
        );
    }
}
