//! Opt-outs and opt-ins that reach us through the providers' webhooks: a parent's STOP/START (or BAJA/ALTA)
//! reply by SMS or WhatsApp, Twilio's own opt-out handling, and SendGrid's spam reports and unsubscribes.
//! Reading them is pure (here); recording them goes through [`crate::optouts`].

use std::time::SystemTime;

use deadpool_postgres::Pool;
use serde_json::Value;

use super::payload::{array, field, meta_message_values, unix_seconds};
use crate::db::DbError;
use crate::domain::{ChannelKind, EmailAddress, MobilePhone};
use crate::optouts::{self, OptChange, Recorded, Source};

/// Twilio's `ErrorCode` for a message to a recipient who replied STOP.
pub const TWILIO_UNSUBSCRIBED: &str = "21610";

/// Longest keyword quoted in a reason (a keyword is one word; this only bounds what a provider sends).
const WORD_CHARS: usize = 20;

/// One address asking to stop (or to start again) receiving notices on one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptRequest {
    pub channel: ChannelKind,
    /// As the provider gave it (`whatsapp:+595…`, Meta's `595…`, an email); [`optouts::normalise`] reads it.
    pub address: String,
    pub change: OptChange,
    /// Why, in Spanish, for `cantina_notify_bajas.motivo` (staff read it after "pidió no recibir más mensajes
    /// por SMS (…)"); used only for opt-outs.
    pub motivo: String,
    /// The provider's id of the message or event (Twilio's `MessageSid`, Meta's `wamid.…`, SendGrid's
    /// `sg_event_id`): a repeat of an id already applied changes nothing.
    pub message_id: Option<String>,
    /// When the parent sent it, by the provider's clock (Meta's and SendGrid's `timestamp`); `None` when the
    /// provider sends none (Twilio), and then arrival order decides.
    pub sent_at: Option<SystemTime>,
}

/// `respondió STOP`: the keyword as the parent wrote it, upper case (one short word, since only a whole-message
/// keyword counts), or `fallback` when there is none.
fn replied(body: Option<&str>, fallback: &str) -> String {
    let word = body.map(str::trim).filter(|w| !w.is_empty() && w.chars().count() <= WORD_CHARS);
    format!("respondió {}", word.map_or_else(|| fallback.to_string(), str::to_uppercase))
}

/// Twilio's incoming-message webhook (`From`, `Body`, and `OptOutType` when Advanced Opt-Out is on). Twilio's
/// `OptOutType` wins (`STOP`/`START`; `HELP` asks for nothing); without it, the body must be a keyword
/// ([`optouts::keyword`]). `None` for any other message, or a sender that is not a phone.
pub fn twilio_inbound(pairs: &[(String, String)]) -> Option<OptRequest> {
    let from = field(pairs, "From").map(str::trim).filter(|f| !f.is_empty())?;
    let channel = if from.starts_with("whatsapp:") {
        ChannelKind::WhatsApp
    } else if from.starts_with('+') || from.starts_with(|c: char| c.is_ascii_digit()) {
        ChannelKind::Sms
    } else {
        // messenger:…, rcs:… and the like: not an address we send to.
        return None;
    };
    let body = field(pairs, "Body");
    let change = match field(pairs, "OptOutType").map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) if t.eq_ignore_ascii_case("STOP") => OptChange::Out,
        Some(t) if t.eq_ignore_ascii_case("START") => OptChange::In,
        Some(_) => return None,
        None => optouts::keyword(body.unwrap_or_default())?,
    };
    let message_id = ["MessageSid", "SmsMessageSid", "SmsSid"]
        .iter()
        .find_map(|k| field(pairs, k).map(str::trim).filter(|id| !id.is_empty()))
        .map(str::to_string);
    Some(OptRequest {
        channel,
        address: from.to_string(),
        change,
        motivo: replied(body, "STOP"),
        message_id,
        sent_at: None,
    })
}

/// Whether a Twilio status callback says the recipient had replied STOP (`ErrorCode=21610`).
pub fn twilio_says_unsubscribed(pairs: &[(String, String)]) -> bool {
    field(pairs, "ErrorCode").map(str::trim) == Some(TWILIO_UNSUBSCRIBED)
}

/// The opt-outs and opt-ins in a Meta webhook body: inbound messages (`value.messages[]`) whose text is a
/// keyword. `from` is the sender's WhatsApp id (the number without `+`); text messages carry `text.body`, a tap
/// on a template's quick-reply button `button.text`. Other messages (images, locations, free text) are skipped.
pub fn meta_inbound(root: &Value) -> Vec<OptRequest> {
    let mut out = Vec::new();
    for value in meta_message_values(root) {
        for message in array(value, "messages") {
            let Some(from) = message.get("from").and_then(Value::as_str).map(str::trim).filter(|f| !f.is_empty())
            else {
                continue;
            };
            let text = match message.get("type").and_then(Value::as_str) {
                Some("text") => message.get("text").and_then(|t| t.get("body")),
                Some("button") => message.get("button").and_then(|b| b.get("text")),
                _ => None,
            };
            let Some(text) = text.and_then(Value::as_str) else { continue };
            let Some(change) = optouts::keyword(text) else { continue };
            out.push(OptRequest {
                channel: ChannelKind::WhatsApp,
                address: from.to_string(),
                change,
                motivo: replied(Some(text), "BAJA"),
                message_id: message
                    .get("id")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|id| !id.is_empty())
                    .map(str::to_string),
                sent_at: message.get("timestamp").and_then(unix_seconds),
            });
        }
    }
    out
}

/// The address as it may appear in a log line: `j***@gmail.com`, `+595 98* *** 456`.
pub fn masked(channel: ChannelKind, address: &str) -> String {
    let normalised = optouts::normalise(channel, address);
    let masked = match (channel, normalised.as_deref()) {
        (ChannelKind::Email, Some(a)) => EmailAddress::parse(Some(a)).ok().map(|e| e.masked()),
        (ChannelKind::Sms | ChannelKind::WhatsApp, Some(a)) => MobilePhone::parse(Some(a)).ok().map(|p| p.masked()),
        _ => None,
    };
    masked.unwrap_or_else(|| "***".to_string())
}

/// Records one opt-out or opt-in reported by `provider`, unless a newer change is recorded or its message was
/// applied before (see [`optouts::record`]).
pub async fn record(pool: &Pool, provider: &str, req: &OptRequest) -> Result<Recorded, DbError> {
    let to = masked(req.channel, &req.address);
    let channel = req.channel.config_name();
    let source = Source { message_id: req.message_id.as_deref(), sent_at: req.sent_at };
    let recorded = optouts::record(pool, req.channel, &req.address, req.change, provider, &req.motivo, source).await?;
    let change = match req.change {
        OptChange::Out => "opt-out",
        OptChange::In => "opt-in",
    };
    match (recorded, req.change) {
        (Recorded::Applied, OptChange::Out) => {
            tracing::info!(provider, channel, to = %to, motivo = %req.motivo, "opt-out recorded");
        }
        (Recorded::Applied, OptChange::In) => tracing::info!(provider, channel, to = %to, "opt-in recorded"),
        // Not an error: a late delivery or a replay, refused on purpose.
        (Recorded::Older, _) => {
            tracing::info!(provider, channel, to = %to, change, "opt-out/opt-in ignored: a newer change is recorded");
        }
        (Recorded::Repeat, _) => {
            tracing::debug!(provider, channel, to = %to, change, "opt-out/opt-in ignored: message already applied");
        }
        (Recorded::NotAnAddress, _) => {
            tracing::warn!(provider, channel, to = %to, change, "opt-out/opt-in ignored: not an address of the channel");
        }
    }
    Ok(recorded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn out(channel: ChannelKind, address: &str, motivo: &str) -> Option<OptRequest> {
        Some(OptRequest {
            channel,
            address: address.into(),
            change: OptChange::Out,
            motivo: motivo.into(),
            message_id: None,
            sent_at: None,
        })
    }

    #[test]
    fn twilio_keywords_and_opt_out_type() {
        let sms = |body: &str| twilio_inbound(&pairs(&[("From", "+595981123456"), ("Body", body)]));
        assert_eq!(sms("Stop"), out(ChannelKind::Sms, "+595981123456", "respondió STOP"));
        assert_eq!(sms(" baja "), out(ChannelKind::Sms, "+595981123456", "respondió BAJA"));
        assert_eq!(sms("START").map(|r| r.change), Some(OptChange::In));
        assert_eq!(sms("Hola, STOP por favor"), None, "only a whole-message keyword counts");
        assert_eq!(sms(""), None);

        // Twilio's Advanced Opt-Out classified it: that wins over our keyword list, both ways.
        let typed = |body: &str, t: &str| {
            twilio_inbound(&pairs(&[("From", "whatsapp:+595981123456"), ("Body", body), ("OptOutType", t)]))
        };
        assert_eq!(typed("ARRET", "STOP"), out(ChannelKind::WhatsApp, "whatsapp:+595981123456", "respondió ARRET"));
        assert_eq!(typed("unstop", "start").map(|r| r.change), Some(OptChange::In));
        assert_eq!(typed("STOP", "HELP"), None, "HELP asks for nothing");
        assert_eq!(typed("", "STOP").map(|r| r.motivo), Some("respondió STOP".into()));

        // The message id, for a repeat to change nothing; Twilio sends no timestamp.
        let with_sid = twilio_inbound(&pairs(&[("From", "+595981123456"), ("Body", "STOP"), ("MessageSid", "SM1")]));
        assert_eq!(with_sid.map(|r| (r.message_id, r.sent_at)), Some((Some("SM1".into()), None)));
        let old_name = twilio_inbound(&pairs(&[("From", "+595981123456"), ("Body", "STOP"), ("SmsSid", "SM2")]));
        assert_eq!(old_name.and_then(|r| r.message_id).as_deref(), Some("SM2"));

        assert_eq!(twilio_inbound(&pairs(&[("Body", "STOP")])), None, "no sender");
        assert_eq!(twilio_inbound(&pairs(&[("From", "messenger:123"), ("Body", "STOP")])), None);
    }

    #[test]
    fn twilio_21610_is_recognised() {
        assert!(twilio_says_unsubscribed(&pairs(&[("ErrorCode", "21610")])));
        assert!(twilio_says_unsubscribed(&pairs(&[("ErrorCode", " 21610 ")])));
        assert!(!twilio_says_unsubscribed(&pairs(&[("ErrorCode", "30003")])));
        assert!(!twilio_says_unsubscribed(&pairs(&[])));
    }

    #[test]
    fn meta_inbound_messages() {
        let body = serde_json::json!({"entry": [{"changes": [
            {"field": "messages", "value": {
                "contacts": [{"wa_id": "595981123456"}],
                "messages": [
                    {"from": "595981123456", "id": "wamid.1", "timestamp": "1750263800", "type": "text",
                     "text": {"body": "BAJA"}},
                    {"from": "595981654321", "id": "wamid.2", "type": "button",
                     "button": {"text": "Alta", "payload": "alta"}},
                    {"from": "595981123456", "id": "wamid.3", "type": "text", "text": {"body": "gracias"}},
                    {"from": "595981123456", "id": "wamid.4", "type": "image", "image": {"id": "1"}},
                    {"id": "wamid.5", "type": "text", "text": {"body": "STOP"}},
                    "garbage"
                ],
                "statuses": [{"id": "wamid.X", "status": "read"}]
            }},
            {"field": "account_update", "value": {"messages": [
                {"from": "595981000000", "type": "text", "text": {"body": "STOP"}}]}}
        ]}]});
        let got = meta_inbound(&body);
        assert_eq!(
            got,
            vec![
                OptRequest {
                    channel: ChannelKind::WhatsApp,
                    address: "595981123456".into(),
                    change: OptChange::Out,
                    motivo: "respondió BAJA".into(),
                    message_id: Some("wamid.1".into()),
                    sent_at: Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_750_263_800)),
                },
                OptRequest {
                    channel: ChannelKind::WhatsApp,
                    address: "595981654321".into(),
                    change: OptChange::In,
                    motivo: "respondió ALTA".into(),
                    message_id: Some("wamid.2".into()),
                    sent_at: None,
                },
            ]
        );
        assert!(meta_inbound(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn addresses_are_masked_for_logs() {
        assert_eq!(masked(ChannelKind::WhatsApp, "595981123456"), "+595 98* *** 456");
        assert_eq!(masked(ChannelKind::Sms, "whatsapp:+595981123456"), "+595 98* *** 456");
        assert_eq!(masked(ChannelKind::Email, "Ana.Perez@Example.com"), "a***@example.com");
        assert_eq!(masked(ChannelKind::Sms, "no es un número"), "***");
    }
}
