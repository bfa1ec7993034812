//! Parents (`clientes`) by id.

use deadpool_postgres::GenericClient;

use crate::db::DbError;
use crate::rules::Parent;

const LOAD_PARENTS: &str = "
    SELECT id_cliente, nombres, apellidos, email, telefono, activo FROM clientes WHERE id_cliente = ANY($1)";

/// The parents with these ids (those that exist).
pub async fn load(tx: &impl GenericClient, ids: &[i32]) -> Result<Vec<Parent>, DbError> {
    let rows = tx.query(&tx.prepare_cached(LOAD_PARENTS).await?, &[&ids]).await?;
    Ok(rows
        .iter()
        .map(|r| Parent {
            id_cliente: r.get(0),
            nombres: r.get(1),
            apellidos: r.get(2),
            email: r.get(3),
            telefono: r.get(4),
            activo: r.get::<_, Option<bool>>(5).unwrap_or(true),
        })
        .collect())
}
