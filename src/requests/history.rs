//! A request's history (`cantina_notify_historial`, written by the triggers of migration 0019 and the owner's
//! functions of 0020): the row as Rust reads it, defined once.

use std::time::SystemTime;

use jiff::Timestamp;
use serde::{Serialize, Serializer};
use tokio_postgres::{GenericClient, Row};

/// One row of `cantina_notify_historial`. Serialised (`requests show --json`) with these keys, the time in RFC 3339
/// UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryRow {
    #[serde(serialize_with = "rfc3339")]
    pub registrado_en: Timestamp,
    pub evento: String,
    pub estado_anterior: Option<String>,
    pub estado: Option<String>,
    pub intentos: Option<i32>,
    pub proveedor: Option<String>,
    pub id_proveedor: Option<String>,
    pub estado_entrega: Option<String>,
    pub detalle: Option<String>,
    pub origen: String,
}

fn rfc3339<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(t)
}

impl HistoryRow {
    /// The row's columns by name.
    pub fn from_row(r: &Row) -> Result<HistoryRow, tokio_postgres::Error> {
        Ok(HistoryRow {
            registrado_en: Timestamp::try_from(r.try_get::<_, SystemTime>("registrado_en")?)
                .unwrap_or(Timestamp::UNIX_EPOCH),
            evento: r.try_get("evento")?,
            estado_anterior: r.try_get("estado_anterior")?,
            estado: r.try_get("estado")?,
            intentos: r.try_get("intentos")?,
            proveedor: r.try_get("proveedor")?,
            id_proveedor: r.try_get("id_proveedor")?,
            estado_entrega: r.try_get("estado_entrega")?,
            detalle: r.try_get("detalle")?,
            origen: r.try_get("origen")?,
        })
    }
}

const HISTORY: &str = "
    SELECT registrado_en, evento, estado_anterior, estado, intentos, proveedor, id_proveedor, estado_entrega, detalle,
           origen
    FROM cantina_notify_historial WHERE id_solicitud = $1 ORDER BY registrado_en, id";

/// The history of request `id`, oldest first.
pub async fn of(client: &impl GenericClient, id: i64) -> Result<Vec<HistoryRow>, tokio_postgres::Error> {
    client.query(HISTORY, &[&id]).await?.iter().map(HistoryRow::from_row).collect()
}

const SET_CONTEXT: &str = "
    SELECT set_config('cantina_notify.origen', 'operador: ' || coalesce($1::text, session_user::text), true),
           set_config('cantina_notify.evento', $2::text, true),
           set_config('cantina_notify.detalle', $3::text, true)";

/// Tells the history triggers who changes requests in this transaction (`operador: <who>`, else the database
/// role), as which event and why (migration 0007); for this transaction only.
pub async fn set_context(
    client: &impl GenericClient,
    who: Option<&str>,
    evento: &str,
    detalle: &str,
) -> Result<(), tokio_postgres::Error> {
    client.query(SET_CONTEXT, &[&who, &evento, &detalle]).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keys_are_the_columns_and_the_time_is_rfc3339() {
        let t: Timestamp = "2026-11-24T03:53:21.123456Z".parse().unwrap();
        let h = HistoryRow {
            registrado_en: t,
            evento: "recibo".into(),
            estado_anterior: Some("Pendiente".into()),
            estado: Some("Enviado".into()),
            intentos: Some(1),
            proveedor: Some("twilio".into()),
            id_proveedor: Some("SM1".into()),
            estado_entrega: Some("delivered".into()),
            detalle: None,
            origen: "servicio".into(),
        };
        assert_eq!(
            serde_json::to_value(&h).unwrap(),
            serde_json::json!({
                "registrado_en": t.to_string(),
                "evento": "recibo",
                "estado_anterior": "Pendiente",
                "estado": "Enviado",
                "intentos": 1,
                "proveedor": "twilio",
                "id_proveedor": "SM1",
                "estado_entrega": "delivered",
                "detalle": null,
                "origen": "servicio",
            })
        );
    }
}
