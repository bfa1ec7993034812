//! Signing the requests written before the service signed its rows (migration 0018).

use deadpool_postgres::Pool;
use serde_json::Value as Json;

use crate::db::DbError;

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
        let datos: Option<Json> = r.get("datos");
        signed_ids.push(r.get::<_, i64>("id_solicitud"));
        firmas.push(signer.sign(&crate::signing::SignedFields {
            clave_dedup: r.get("clave_dedup"),
            id_cliente: r.get("id_cliente"),
            nro_tarjeta: r.get("nro_tarjeta"),
            destino: r.get("destino"),
            destinatario: r.get("destinatario"),
            tipo: r.get("tipo"),
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
