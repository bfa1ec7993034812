//! Reading the providers' callbacks: form bodies and query strings, Twilio's status fields, Meta's statuses.
//! Everything here is tolerant: what does not fit is skipped, never a panic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::receipt::{DeliveryState, meta_state, twilio_state};

/// Longest provider text kept in a failure detail.
const DETAIL_CHARS: usize = 200;

/// One status update for one message, as the providers describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The provider's message id (`SM…`/`MM…` for Twilio, `wamid.…` for Meta).
    pub provider_id: String,
    pub state: DeliveryState,
    /// For `failed`: the provider's code and message, for `ultimo_error` (staff read it, in Spanish).
    pub failure_detail: Option<String>,
}

/// `application/x-www-form-urlencoded` pairs (`+` is a space, `%XX` a byte, bad escapes kept as they are), in
/// order. Used for Twilio's body and for query strings.
pub fn parse_form(input: &[u8]) -> Vec<(String, String)> {
    input
        .split(|b| *b == b'&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (k, v) = match part.iter().position(|b| *b == b'=') {
                Some(i) => (&part[..i], &part[i + 1..]),
                None => (part, &[][..]),
            };
            (decode_component(k), decode_component(v))
        })
        .collect()
}

fn decode_component(s: &[u8]) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => match (s.get(i + 1).copied().and_then(hex), s.get(i + 2).copied().and_then(hex)) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first value of `name` in decoded pairs.
pub fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Twilio's status callback (`MessageSid`, `MessageStatus`, `ErrorCode`; the older `SmsSid`/`SmsStatus` as a
/// fallback). `None` when it carries no id or a status that is ignored.
pub fn twilio_receipt(pairs: &[(String, String)]) -> Option<Receipt> {
    let id = field(pairs, "MessageSid").or_else(|| field(pairs, "SmsSid")).map(str::trim).filter(|s| !s.is_empty())?;
    let status = field(pairs, "MessageStatus").or_else(|| field(pairs, "SmsStatus"))?;
    let state = twilio_state(status)?;
    let failure_detail = (state == DeliveryState::Failed).then(|| {
        let status = truncate(status.trim());
        match field(pairs, "ErrorCode").map(str::trim).filter(|c| !c.is_empty()) {
            Some(code) => {
                let code = truncate(code);
                match twilio_error_meaning(&code) {
                    Some(meaning) => format!("entrega fallida ({status}): Twilio {code}: {meaning}"),
                    None => format!("entrega fallida ({status}): Twilio {code}"),
                }
            }
            None => format!("entrega fallida ({status}): Twilio no informó el código"),
        }
    });
    Some(Receipt { provider_id: id.to_string(), state, failure_detail })
}

/// Spanish meanings of the delivery error codes Twilio reports most for SMS and WhatsApp.
fn twilio_error_meaning(code: &str) -> Option<&'static str> {
    Some(match code {
        "30003" => "teléfono inalcanzable (apagado o sin señal)",
        "30004" => "mensaje bloqueado por el destinatario o el operador",
        "30005" => "número desconocido o inexistente",
        "30006" => "línea fija u operador inalcanzable",
        "30007" => "filtrado por el operador",
        "30008" => "error desconocido del operador",
        "21610" => "el destinatario respondió STOP",
        "63016" => "fuera de la ventana de 24 h de WhatsApp (requiere plantilla aprobada)",
        _ => return None,
    })
}

/// The statuses in a Meta webhook body (`entry[].changes[].value.statuses[]`); `Err` only when the body is
/// not JSON at all. Changes of other fields (incoming messages, template updates) and statuses that are
/// ignored or lack an id are skipped.
pub fn meta_receipts(body: &[u8]) -> Result<Vec<Receipt>, serde_json::Error> {
    Ok(meta_receipts_in(&serde_json::from_slice(body)?))
}

/// The `value` of every change of the `messages` field in a Meta webhook body (a change without `field` counts).
pub(crate) fn meta_message_values(root: &Value) -> impl Iterator<Item = &Value> {
    array(root, "entry")
        .iter()
        .flat_map(|entry| array(entry, "changes").iter())
        .filter(|change| change.get("field").and_then(Value::as_str).is_none_or(|f| f == "messages"))
        .filter_map(|change| change.get("value"))
}

/// [`meta_receipts`] of a body already parsed.
pub fn meta_receipts_in(root: &Value) -> Vec<Receipt> {
    let mut out = Vec::new();
    for value in meta_message_values(root) {
        for status in array(value, "statuses") {
            let Some(id) = status.get("id").and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()) else {
                continue;
            };
            let Some(state) = status.get("status").and_then(Value::as_str).and_then(meta_state) else {
                continue;
            };
            let failure_detail = (state == DeliveryState::Failed).then(|| meta_failure_detail(status));
            out.push(Receipt { provider_id: id.to_string(), state, failure_detail });
        }
    }
    out
}

fn meta_failure_detail(status: &Value) -> String {
    let Some(err) = array(status, "errors").first() else {
        return "entrega fallida: Meta no informó el código".to_string();
    };
    let code = match err.get("code") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => truncate(s),
        _ => "?".to_string(),
    };
    let text = ["message", "title"]
        .iter()
        .find_map(|k| err.get(*k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()));
    let details = err
        .get("error_data")
        .and_then(|d| d.get("details"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|d| !d.is_empty() && Some(*d) != text);
    match (text, details) {
        (Some(t), Some(d)) => format!("entrega fallida: Meta {code}: {} ({})", truncate(t), truncate(d)),
        (Some(t), None) => format!("entrega fallida: Meta {code}: {}", truncate(t)),
        (None, Some(d)) => format!("entrega fallida: Meta {code}: {}", truncate(d)),
        (None, None) => format!("entrega fallida: Meta {code}"),
    }
}

/// A provider's Unix timestamp in seconds, as a number (SendGrid) or a string of digits (Meta). `None` for anything
/// else, or a time before 1970 or after 3000 (not a real message's; the arrival time then stands in for it).
pub(crate) fn unix_seconds(v: &Value) -> Option<SystemTime> {
    const YEAR_3000: u64 = 32_503_680_000;
    let secs = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    }?;
    (secs < YEAR_3000).then(|| UNIX_EPOCH + Duration::from_secs(secs))
}

pub(crate) fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// `s` cut to [`DETAIL_CHARS`] characters (with `…` when cut): provider text kept in `ultimo_error`.
pub(crate) fn truncate(s: &str) -> String {
    match s.char_indices().nth(DETAIL_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeliveryState::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn form_decoding() {
        assert_eq!(
            parse_form(b"To=%2B595981123456&Body=Hola+mundo&Empty=&Flag&&x=%E2%9C%93"),
            pairs(&[("To", "+595981123456"), ("Body", "Hola mundo"), ("Empty", ""), ("Flag", ""), ("x", "✓")])
        );
        assert_eq!(parse_form(b"a=100%&b=%zz&c=%4"), pairs(&[("a", "100%"), ("b", "%zz"), ("c", "%4")]));
        assert_eq!(parse_form(b"hub.challenge=1158201444&hub.mode=subscribe")[0].1, "1158201444");
        assert_eq!(parse_form(b"k=a=b"), pairs(&[("k", "a=b")]));
        assert_eq!(parse_form(b""), pairs(&[]));
        assert_eq!(parse_form(b"bad=%FF"), pairs(&[("bad", "\u{FFFD}")]));
    }

    #[test]
    fn twilio_fields() {
        let r =
            twilio_receipt(&pairs(&[("MessageSid", "SM123"), ("MessageStatus", "delivered"), ("AccountSid", "AC1")]));
        assert_eq!(r, Some(Receipt { provider_id: "SM123".into(), state: Delivered, failure_detail: None }));
        let r = twilio_receipt(&pairs(&[("SmsSid", "SM9"), ("SmsStatus", "sent")])).unwrap();
        assert_eq!((r.provider_id.as_str(), r.state), ("SM9", Sent));
        assert_eq!(twilio_receipt(&pairs(&[("MessageSid", "SM1"), ("MessageStatus", "queued")])), None);
        assert_eq!(twilio_receipt(&pairs(&[("MessageStatus", "delivered")])), None, "no id");
        assert_eq!(twilio_receipt(&pairs(&[("MessageSid", " "), ("MessageStatus", "delivered")])), None);
        assert_eq!(twilio_receipt(&pairs(&[("MessageSid", "SM1")])), None, "no status");
    }

    #[test]
    fn twilio_failures_carry_the_code() {
        let r =
            twilio_receipt(&pairs(&[("MessageSid", "SM1"), ("MessageStatus", "undelivered"), ("ErrorCode", "30003")]))
                .unwrap();
        assert_eq!(r.state, Failed);
        assert_eq!(
            r.failure_detail.as_deref(),
            Some("entrega fallida (undelivered): Twilio 30003: teléfono inalcanzable (apagado o sin señal)")
        );
        let r = twilio_receipt(&pairs(&[("MessageSid", "SM1"), ("MessageStatus", "failed"), ("ErrorCode", "12345")]))
            .unwrap();
        assert_eq!(r.failure_detail.as_deref(), Some("entrega fallida (failed): Twilio 12345"));
        let r =
            twilio_receipt(&pairs(&[("MessageSid", "SM1"), ("MessageStatus", "failed"), ("ErrorCode", "")])).unwrap();
        assert_eq!(r.failure_detail.as_deref(), Some("entrega fallida (failed): Twilio no informó el código"));
        let r = twilio_receipt(&pairs(&[("MessageSid", "SM1"), ("MessageStatus", "read"), ("ErrorCode", "30003")]))
            .unwrap();
        assert_eq!(r.failure_detail, None, "only failures carry a detail");
    }

    #[test]
    fn meta_statuses_are_read_tolerantly() {
        let body = serde_json::json!({
            "object": "whatsapp_business_account",
            "entry": [
                {"id": "WABA", "changes": [
                    {"field": "messages", "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {"phone_number_id": "123"},
                        "statuses": [
                            {"id": "wamid.A", "status": "sent", "timestamp": "1", "recipient_id": "595981123456"},
                            {"id": "wamid.B", "status": "delivered"},
                            {"id": "wamid.C", "status": "read"},
                            {"id": "wamid.D", "status": "failed", "errors": [
                                {"code": 131026, "title": "Message undeliverable", "message": "Message undeliverable",
                                 "error_data": {"details": "Message Undeliverable."}}]},
                            {"id": "wamid.E", "status": "deleted"},
                            {"status": "read"},
                            {"id": 7, "status": "read"},
                            "garbage"
                        ]}},
                    {"field": "message_template_status_update", "value": {"statuses": [{"id": "x", "status": "read"}]}},
                    {"value": {"messages": [{"from": "595981123456", "id": "wamid.IN"}]}}
                ]},
                {"id": "WABA2"},
                {"changes": "not a list"},
                {"changes": [{"value": {"statuses": [{"id": "wamid.F", "status": "failed"}]}}]}
            ]
        });
        let got = meta_receipts(body.to_string().as_bytes()).unwrap();
        let summary: Vec<(&str, DeliveryState)> = got.iter().map(|r| (r.provider_id.as_str(), r.state)).collect();
        assert_eq!(
            summary,
            [("wamid.A", Sent), ("wamid.B", Delivered), ("wamid.C", Read), ("wamid.D", Failed), ("wamid.F", Failed)]
        );
        assert_eq!(
            got[3].failure_detail.as_deref(),
            Some("entrega fallida: Meta 131026: Message undeliverable (Message Undeliverable.)")
        );
        assert_eq!(got[4].failure_detail.as_deref(), Some("entrega fallida: Meta no informó el código"));
        assert!(got[..3].iter().all(|r| r.failure_detail.is_none()));
        assert!(meta_receipts(b"{}").unwrap().is_empty());
        assert!(meta_receipts(b"[1,2]").unwrap().is_empty());
        assert!(meta_receipts(b"not json").is_err());
    }

    #[test]
    fn provider_timestamps() {
        let at = |secs: u64| Some(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(unix_seconds(&serde_json::json!("1750263800")), at(1_750_263_800));
        assert_eq!(unix_seconds(&serde_json::json!(1_750_263_773)), at(1_750_263_773));
        for bad in [serde_json::json!("ayer"), serde_json::json!(-5), serde_json::json!(1.5), serde_json::json!(null)] {
            assert_eq!(unix_seconds(&bad), None, "{bad}");
        }
        assert_eq!(unix_seconds(&serde_json::json!(99_999_999_999_u64)), None, "after the year 3000");
    }

    #[test]
    fn meta_failure_details() {
        let detail = |errors: Value| meta_failure_detail(&serde_json::json!({"errors": errors}));
        assert_eq!(
            detail(serde_json::json!([{"code": 131047, "title": "Re-engagement message"}])),
            "entrega fallida: Meta 131047: Re-engagement message"
        );
        assert_eq!(
            detail(serde_json::json!([{"code": "368", "error_data": {"details": "policy"}}])),
            "entrega fallida: Meta 368: policy"
        );
        assert_eq!(detail(serde_json::json!([{}])), "entrega fallida: Meta ?");
        let long = "x".repeat(500);
        let d = detail(serde_json::json!([{"code": 1, "message": long}]));
        assert_eq!(d.chars().count(), "entrega fallida: Meta 1: ".len() + DETAIL_CHARS + 1);
    }
}
