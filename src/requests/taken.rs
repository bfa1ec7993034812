//! Which notices already have a request: for a sweep that reads a window wider than its firing (the per-purchase
//! sweep reads a day of purchases every minute) and builds only what is missing. Exactly-once still rests on the
//! UNIQUE `clave_dedup` (`ON CONFLICT DO NOTHING`); this only spares building requests that would be dropped.

use std::collections::HashSet;

use super::key::DedupKey;
use crate::domain::ChannelKind;

/// The keys among $1 that a request already has (the UNIQUE index on `clave_dedup`).
const TAKEN: &str = "SELECT clave_dedup FROM solicitudes_notificacion WHERE clave_dedup = ANY($1)";

/// The prefixes (`consumo_realizado:<id_consumo>`) that have a request under any channel's key.
pub async fn prefixes_taken(
    client: &impl deadpool_postgres::GenericClient,
    prefixes: &[String],
) -> Result<HashSet<String>, tokio_postgres::Error> {
    if prefixes.is_empty() {
        return Ok(HashSet::new());
    }
    let keys: Vec<String> =
        prefixes.iter().flat_map(|p| ChannelKind::ALL.map(|c| DedupKey::for_channel(p, c).into_string())).collect();
    let rows = client.query(&client.prepare_cached(TAKEN).await?, &[&keys]).await?;
    let taken: HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
    Ok(prefixes
        .iter()
        .filter(|p| ChannelKind::ALL.iter().any(|c| taken.contains(DedupKey::for_channel(p, *c).as_str())))
        .cloned()
        .collect())
}
