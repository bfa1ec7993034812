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
            id_cliente: r.get("id_cliente"),
            nombres: r.get("nombres"),
            apellidos: r.get("apellidos"),
            email: r.get("email"),
            telefono: r.get("telefono"),
            activo: r.get::<_, Option<bool>>("activo").unwrap_or(true),
        })
        .collect())
}
