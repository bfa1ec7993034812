//! A request as the dispatcher holds it once claimed.

use serde_json::Value as Json;

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
