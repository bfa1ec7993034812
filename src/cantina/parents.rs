//! Parents (`clientes`) by id.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use crate::db::DbError;
use crate::rules::Parent;

const LOAD_PARENTS: &str = "
    SELECT id_cliente, nombres, apellidos, email, telefono, activo FROM clientes WHERE id_cliente = ANY($1)";

/// The parents with these ids (those that exist).
pub async fn load(tx: &impl GenericClient, ids: &[i32]) -> Result<Vec<Parent>, DbError> {
    let rows = tx.query(&tx.prepare_cached(LOAD_PARENTS).await?, &[&ids]).await?;
    Ok(rows.iter().map(|r| parent(r, r.get("id_cliente"))).collect())
}

/// A parent from a row with `clientes`' columns (here and in the cards' load).
pub(super) fn parent(r: &Row, id_cliente: i32) -> Parent {
    Parent {
        id_cliente,
        nombres: super::text(r, "nombres"),
        apellidos: super::text(r, "apellidos"),
        email: r.get("email"),
        telefono: r.get("telefono"),
        // Statements that keep active clients only do not select it.
        activo: r.try_get::<_, Option<bool>>("activo").ok().flatten().unwrap_or(true),
    }
}
