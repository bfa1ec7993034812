//! Channel fallback: a type configured with an ordered list (`CANTINA__RULES__<TYPE>__FALLBACK=whatsapp,sms,email`)
//! gets one request at a time. Each request of the chain keeps the channels still to try (`canales_respaldo`) and
//! the first request of the chain (`id_solicitud_origen`). The next request is created, once, when the current one
//! - ended `Error` (refused for the recipient: not a WhatsApp user, a landline, a bounced address; or no usable
//!   address; or attempts exhausted) or `Omitido` (the parent turned that channel off, or opted out), or
//! - was sent but its provider reported it `failed`, or
//! - was sent through a provider that reports deliveries, and no `delivered`/`read` receipt came within
//!   `CANTINA__FALLBACK__RECEIPT_TIMEOUT_MINUTES` (`espera_recibo_hasta`).
//!
//! The next request has the dedup key of the same notice for the next channel (`<prefix>:<channel>`), so creating
//! it twice (two replicas) is harmless, and it is addressed, checked against preferences, and sent like any other.

use std::collections::HashMap;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};
use serde_json::Value as Json;

use crate::cantina::preferences::turned_off;
use crate::config::{PreferenceDefaults, Settings};
use crate::db::DbError;
use crate::domain::{ChannelKind, DedupKey, Guaranies, NotificationType};
use crate::requests;
use crate::requests::fallback::DueLink;
use crate::requests::write::insert_requests;
use crate::rules::{MessageData, NewRequest, Parent, resolve_recipient};
use crate::signing::{RowSigner, SignedFields};

pub use crate::requests::chain::{chain_column, parse_chain};

/// Whether a provider tells us about deliveries with this configuration, so a sent notice can wait for a receipt:
/// Twilio with a status callback URL, Meta with the webhook's app secret, SendGrid with the event webhook key.
/// Without receipts, "sent" is as far as we can know: the chain ends there.
pub fn reports_delivery(provider: &str, settings: &Settings) -> bool {
    match provider {
        "twilio" => settings.twilio.status_callback_url.as_deref().is_some_and(|u| !u.trim().is_empty()),
        "meta" => settings.webhooks.whatsapp_app_secret.is_some(),
        "sendgrid" => settings.webhooks.sendgrid_verification_key.as_deref().is_some_and(|k| !k.trim().is_empty()),
        _ => false,
    }
}

/// Why a chain moves on (metrics label and the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Error,
    Omitted,
    FailedReceipt,
    NoReceipt,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Why::Error => "error",
            Why::Omitted => "omitted",
            Why::FailedReceipt => "failed_receipt",
            Why::NoReceipt => "no_receipt",
        }
    }
}

/// One link of a chain that must move on.
struct Link {
    id: i64,
    origin: i64,
    clave_dedup: String,
    channel: Option<ChannelKind>,
    tipo: Option<NotificationType>,
    rest: Vec<ChannelKind>,
    id_cliente: Option<i32>,
    nro_tarjeta: Option<String>,
    saldo: Option<i64>,
    datos: Option<Json>,
    why: Why,
    parent: Option<Parent>,
    /// Whether the row carries the service's signature: the next link copies its data, so a row written or
    /// altered by anyone else must not be laundered into a signed one.
    signed: bool,
}

impl Link {
    fn from_due(d: DueLink, parents: &HashMap<i32, Parent>, signer: &RowSigner) -> Link {
        let why = match d.why.as_str() {
            "error" => Why::Error,
            "omitted" => Why::Omitted,
            "failed_receipt" => Why::FailedReceipt,
            _ => Why::NoReceipt,
        };
        let parent = d.id_cliente.and_then(|id| parents.get(&id).cloned());
        let signed = d.clave_dedup.as_deref().is_some_and(|clave_dedup| {
            signer.verify(
                &SignedFields {
                    clave_dedup,
                    id_cliente: d.id_cliente,
                    nro_tarjeta: d.nro_tarjeta.as_deref(),
                    destino: d.destino.as_deref(),
                    destinatario: d.destinatario.as_deref(),
                    tipo: d.tipo.as_deref(),
                    datos: d.datos.as_ref(),
                },
                d.firma.as_deref(),
            )
        });
        Link {
            signed,
            id: d.id,
            origin: d.origin,
            clave_dedup: d.clave_dedup.unwrap_or_default(),
            channel: d.destino.as_deref().and_then(|c| ChannelKind::parse(c).ok()),
            tipo: d.tipo.as_deref().and_then(|t| NotificationType::parse(t).ok()),
            rest: parse_chain(d.canales_respaldo.as_deref().unwrap_or_default()),
            id_cliente: d.id_cliente,
            nro_tarjeta: d.nro_tarjeta,
            saldo: d.saldo,
            datos: d.datos,
            why,
            parent,
        }
    }

    /// The next request of the chain, or why there cannot be one (logged; the chain ends).
    fn next(&self, turned_off: &crate::rules::TurnedOff) -> Result<NewRequest, String> {
        let (Some(channel), Some(tipo)) = (self.channel, self.tipo) else {
            return Err("canal o tipo ilegible".into());
        };
        let Some((&next, rest)) = self.rest.split_first() else {
            return Err("no quedan canales".into());
        };
        if !self.signed {
            return Err(crate::signing::REFUSED.into());
        }
        let key = DedupKey::from_stored(self.clave_dedup.as_str());
        if key.prefix_for(channel).is_none() {
            return Err(format!("la clave {} no termina en el canal {channel}", self.clave_dedup));
        }
        let data: MessageData = serde_json::from_value(self.datos.clone().unwrap_or_default())
            .map_err(|e| format!("datos ilegibles: {e}"))?;
        let id_cliente = self.id_cliente.ok_or("la solicitud no tiene cliente")?;
        let recipient = match &self.parent {
            Some(p) if !p.activo => Err(format!("el cliente {id_cliente} está inactivo")),
            Some(p) => resolve_recipient(next, p),
            None => Err(format!("el cliente {id_cliente} no existe")),
        };
        Ok(NewRequest {
            tipo,
            channel: next,
            clave_dedup: key.next_link(next).into_string(),
            id_cliente,
            nro_tarjeta: self.nro_tarjeta.clone(),
            saldo: self.saldo.map(Guaranies),
            recipient,
            data,
            omitted: turned_off.reason(id_cliente, tipo, next),
            fallback: rest.to_vec(),
            origin: Some(self.origin),
        })
    }
}

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Advanced {
    /// (type, from, to, why) of each next request created.
    pub created: Vec<(NotificationType, ChannelKind, ChannelKind, Why)>,
    /// Links whose chain had to end (unreadable row); logged.
    pub ended: usize,
}

/// Moves every chain whose current link failed, was skipped, or got no receipt in time, in one transaction;
/// replicas running it together skip each other's rows.
pub async fn advance(
    pool: &Pool,
    signer: &RowSigner,
    limit: i64,
    defaults: &PreferenceDefaults,
) -> Result<Advanced, DbError> {
    crate::db::guarded(async {
        let mut conn = pool.get().await?;
        let tx = conn.transaction().await?;
        requests::fallback::end_wait(&tx).await?;
        let due = requests::fallback::due(&tx, limit).await?;
        let mut out = Advanced::default();
        if due.is_empty() {
            tx.commit().await?;
            return Ok(out);
        }
        let mut clients: Vec<i32> = due.iter().filter_map(|d| d.id_cliente).collect();
        clients.sort_unstable();
        clients.dedup();
        let parents: HashMap<i32, Parent> = match clients.is_empty() {
            true => HashMap::new(),
            false => {
                crate::cantina::parents::load(&tx, &clients).await?.into_iter().map(|p| (p.id_cliente, p)).collect()
            }
        };
        let links: Vec<Link> = due.into_iter().map(|d| Link::from_due(d, &parents, signer)).collect();
        let off = turned_off(&tx, &clients, defaults).await?;
        let mut requests = Vec::new();
        for link in &links {
            match link.next(&off) {
                Ok(r) => {
                    tracing::info!(
                        id = link.id,
                        origin = link.origin,
                        from = ?link.channel,
                        to = %r.channel,
                        why = link.why.as_str(),
                        "fallback: next channel"
                    );
                    if let Some(from) = link.channel {
                        out.created.push((r.tipo, from, r.channel, link.why));
                    }
                    requests.push(r);
                }
                Err(reason) => {
                    out.ended += 1;
                    tracing::warn!(id = link.id, %reason, "fallback chain cannot continue");
                }
            }
        }
        insert_requests(&tx, signer, requests).await?;
        let ids: Vec<i64> = links.iter().map(|l| l.id).collect();
        requests::fallback::mark_followed(&tx, &ids).await?;
        tx.commit().await?;
        Ok(out)
    })
    .await
}

/// How long a sent link of a chain waits for its receipt.
pub fn receipt_wait(settings: &Settings) -> Duration {
    Duration::from_secs(settings.fallback.receipt_timeout_minutes.saturating_mul(60))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use ChannelKind::*;

    #[test]
    fn only_providers_with_a_configured_receipt_webhook_are_waited_for() {
        let mut s = Settings::default();
        for p in ["twilio", "meta", "sendgrid", "smtp", "console", "portal", "tigo"] {
            assert!(!reports_delivery(p, &s), "{p}");
        }
        s.twilio.status_callback_url = Some("https://notify.example.com/webhooks/twilio/status".into());
        s.webhooks.whatsapp_app_secret = Some(Secret::new("app-secret"));
        s.webhooks.sendgrid_verification_key = Some("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE".into());
        for p in ["twilio", "meta", "sendgrid"] {
            assert!(reports_delivery(p, &s), "{p}");
        }
        assert!(!reports_delivery("smtp", &s));
    }

    fn link(channel: ChannelKind, rest: &[ChannelKind]) -> Link {
        Link {
            signed: true,
            id: 10,
            origin: 7,
            clave_dedup: format!("recarga_exitosa:55:{channel}"),
            channel: Some(channel),
            tipo: Some(NotificationType::RecargaExitosa),
            rest: rest.to_vec(),
            id_cliente: Some(3),
            nro_tarjeta: Some("1001".into()),
            saldo: Some(50_000),
            datos: Some(serde_json::to_value(MessageData::sample(NotificationType::RecargaExitosa)).unwrap()),
            why: Why::Error,
            parent: Some(Parent {
                id_cliente: 3,
                nombres: "Ana".into(),
                apellidos: "Pérez".into(),
                email: Some("ana@example.com".into()),
                telefono: Some("0981 123456".into()),
                activo: true,
            }),
        }
    }

    #[test]
    fn the_next_link_is_the_same_notice_on_the_next_channel() {
        let next = link(WhatsApp, &[Sms, Email]).next(&Default::default()).unwrap();
        assert_eq!(next.channel, Sms);
        assert_eq!(next.clave_dedup, "recarga_exitosa:55:sms");
        assert_eq!(next.fallback, [Email]);
        assert_eq!(next.origin, Some(7));
        assert_eq!(next.recipient.as_ref().map(|r| r.as_str()), Ok("+595981123456".to_string()));
        assert_eq!(next.omitted, None);
        assert_eq!(next.saldo, Some(Guaranies(50_000)));
    }

    #[test]
    fn a_channel_turned_off_is_recorded_omitted_and_a_missing_address_as_an_error() {
        let off = [(3, NotificationType::RecargaExitosa, Sms)].into_iter().collect();
        let next = link(WhatsApp, &[Sms, Email]).next(&off).unwrap();
        assert!(next.omitted.as_deref().is_some_and(|r| r.contains("desactivó")), "{:?}", next.omitted);
        let mut l = link(Sms, &[Email]);
        if let Some(p) = l.parent.as_mut() {
            p.email = None;
        }
        let next = l.next(&Default::default()).unwrap();
        assert!(next.recipient.is_err());
        assert!(next.fallback.is_empty());
    }

    #[test]
    fn a_chain_ends_when_nothing_is_left_or_the_row_is_unreadable() {
        assert!(link(Email, &[]).next(&Default::default()).is_err());
        let mut l = link(Sms, &[Email]);
        l.clave_dedup = "otra:clave".into();
        assert!(l.next(&Default::default()).unwrap_err().contains("no termina"));
        let mut l = link(Sms, &[Email]);
        l.datos = Some(serde_json::json!({"x": 1}));
        assert!(l.next(&Default::default()).unwrap_err().contains("datos ilegibles"));
    }
}
