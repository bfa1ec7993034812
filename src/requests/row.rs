//! A request as the dispatcher holds it once claimed: the notice typed (type, channel, recipient, data), parsed
//! once, by column name, where the row leaves SQL (the claim and the drain's insert); the columns the signature
//! covers kept as stored, to check it before anything else.

use serde_json::Value as Json;

use crate::domain::{ChannelKind, NotificationType};
use crate::rules::{MessageData, Recipient};

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
    /// What to send, or why the row cannot be sent (the reason recorded with its `Error`).
    pub notice: Result<Notice, String>,
}

/// A claimed request's notice, typed.
#[derive(Debug, Clone)]
pub struct Notice {
    pub tipo: NotificationType,
    pub channel: ChannelKind,
    pub recipient: Recipient,
    pub data: MessageData,
}

/// Why a [`Claimed::clone_head`] carries no notice (a head only records an outcome).
const HEAD_ONLY: &str = "copia sin los datos de la solicitud";

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
            notice: Err(HEAD_ONLY.into()),
        }
    }

    /// A claimed row, by column name (the claim's `RETURNING` and the drain's insert name them alike).
    /// `already_sent`: the claim's history check (the drain's new rows have no history).
    pub fn from_row(r: &tokio_postgres::Row, already_sent: bool, claimed_at: std::time::Instant) -> Claimed {
        let tipo: Option<String> = r.get("tipo");
        let destino: Option<String> = r.get("destino");
        let destinatario: Option<String> = r.get("destinatario");
        let datos: Option<Json> = r.get("datos");
        let notice = parse_notice(destino.as_deref(), tipo.as_deref(), datos.as_ref(), destinatario.as_deref());
        Claimed {
            id: r.get("id_solicitud"),
            tipo,
            destino,
            destinatario,
            datos,
            clave_dedup: r.get("clave_dedup"),
            firma: r.get("firma"),
            id_cliente: r.get("id_cliente"),
            nro_tarjeta: r.get("nro_tarjeta"),
            already_sent,
            intentos: r.get("intentos"),
            claimed_at,
            notice,
        }
    }

    /// Whether this is a `saldo_bajo` notice (its send stamps the cards it lists).
    pub fn is_saldo_bajo(&self) -> bool {
        matches!(&self.notice, Ok(n) if n.tipo == NotificationType::SaldoBajo)
    }
}

/// The notice of a row's columns, or the reason it cannot be sent; checked in this order, each with its reason.
pub fn parse_notice(
    destino: Option<&str>,
    tipo: Option<&str>,
    datos: Option<&Json>,
    destinatario: Option<&str>,
) -> Result<Notice, String> {
    let destino = destino.unwrap_or_default();
    let channel = ChannelKind::parse(destino).map_err(|_| format!("destino desconocido '{destino}'"))?;
    let tipo = tipo.unwrap_or_default();
    let tipo = NotificationType::parse(tipo)
        .map_err(|_| format!("tipo de aviso desconocido '{tipo}' (se esperaba {})", NotificationType::names_o()))?;
    let data = <MessageData as serde::Deserialize>::deserialize(datos.unwrap_or(&serde_json::Value::Null))
        .map_err(|e| format!("datos de la solicitud ilegibles: {e}"))?;
    if data.notification_type() != tipo {
        return Err(format!("los datos de la solicitud son de {} y no de {tipo}", data.notification_type()));
    }
    let recipient = Recipient::parse(channel, destinatario)?;
    Ok(Notice { tipo, channel, recipient, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_is_checked_destino_then_type_then_data_then_recipient() {
        let sample = serde_json::to_value(MessageData::sample(NotificationType::RecargaExitosa)).unwrap();
        let ok = parse_notice(Some("Email"), Some("recarga_exitosa"), Some(&sample), Some("ana@example.com")).unwrap();
        assert_eq!((ok.tipo, ok.channel), (NotificationType::RecargaExitosa, ChannelKind::Email));
        let err = |d, t, j: Option<&Json>, a| parse_notice(d, t, j, a).unwrap_err();
        assert_eq!(err(Some("Fax"), Some("x"), None, None), "destino desconocido 'Fax'");
        assert!(
            err(Some("Email"), Some("x"), None, None)
                .starts_with("tipo de aviso desconocido 'x' (se esperaba saldo_bajo")
        );
        assert!(err(Some("Email"), Some("recarga_exitosa"), None, None).starts_with("datos de la solicitud ilegibles"));
        assert!(
            err(Some("Email"), Some("saldo_bajo"), Some(&sample), None).starts_with("los datos de la solicitud son de")
        );
        assert!(!err(Some("Email"), Some("recarga_exitosa"), Some(&sample), Some("no-es-correo")).is_empty());
    }
}
