//! SendGrid's Signed Event Webhook (`POST /webhooks/sendgrid`).
//!
//! - Signature: SendGrid signs the bytes of the `X-Twilio-Email-Event-Webhook-Timestamp` header followed by the
//!   raw body with ECDSA P-256 / SHA-256, and sends the ASN.1 DER signature, base64, in
//!   `X-Twilio-Email-Event-Webhook-Signature`. The verification key is the base64 DER `SubjectPublicKeyInfo`
//!   SendGrid shows under Mail Settings → Event Webhook; aws-lc-rs parses that form as it is (and checks the curve).
//! - Freshness: SendGrid documents no tolerance and its own libraries check none; it retries a POST that got no
//!   2xx "at increasing intervals for up to 24 hours after the event occurs", and whether a retry is signed anew
//!   is not documented. So a signed timestamp is accepted from [`MAX_AGE_SECONDS`] (a day and an hour) in the
//!   past to [`MAX_SKEW_SECONDS`] in the future (clock skew): a captured request cannot be replayed for ever,
//!   and no genuine retry is lost. A replay inside the window changes nothing (receipts only move forward, and
//!   an opt-out event whose `sg_event_id` was applied is not applied again; its `timestamp` orders it against
//!   other opt-outs and opt-ins of the address, see [`crate::optouts::record`]).
//! - Matching: the request is found by `proveedor = 'sendgrid'` and `id_proveedor` = the `X-Message-Id` the mail
//!   send answered. An event's `sg_message_id` is that id followed by a dot and a per-recipient part
//!   (`….filter0905p1mdw1-4434-59E0C6FF-3.0`, `….recvd-…`); see [`x_message_id`].
//! - Events: `delivered` → delivered; `bounce` and `dropped` → failed, with SendGrid's status and reason in
//!   `ultimo_error`; `open` → read, unless SendGrid flags it `sg_machine_open` (Apple Mail Privacy Protection
//!   and similar proxies load the pixel without anyone reading); `spamreport`, `unsubscribe` and
//!   `group_unsubscribe` → an email opt-out, and delivered (the parent had the email). `processed`, `deferred`
//!   (SendGrid keeps trying), `click` (link scanners click too) and anything else are ignored.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ParsedPublicKey, UnparsedPublicKey};
use base64::Engine;
use serde_json::Value;

use super::inbound::OptRequest;
use super::payload::{Receipt, truncate, unix_seconds};
use super::receipt::DeliveryState;
use crate::domain::ChannelKind;
use crate::optouts::OptChange;

pub const SIGNATURE_HEADER: &str = "X-Twilio-Email-Event-Webhook-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Twilio-Email-Event-Webhook-Timestamp";

/// Oldest signed timestamp accepted: SendGrid's 24 hours of retries, plus an hour.
pub const MAX_AGE_SECONDS: i64 = 25 * 3600;
/// Furthest in the future a signed timestamp may be (our clock or SendGrid's may be off).
pub const MAX_SKEW_SECONDS: i64 = 15 * 60;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the SendGrid verification key is not base64")]
    NotBase64,
    #[error("the SendGrid verification key is not a P-256 public key (SubjectPublicKeyInfo DER)")]
    NotP256,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StaleTimestamp {
    #[error("timestamp is not a number of seconds")]
    NotANumber,
    #[error("signed {0} s ago: older than SendGrid's retry period")]
    TooOld(i64),
    #[error("signed {0} s in the future: beyond the allowed clock skew")]
    InTheFuture(i64),
}

/// The event webhook's public key, parsed once per request.
pub struct VerificationKey(ParsedPublicKey);

impl VerificationKey {
    /// The key as SendGrid shows it: base64 of the DER `SubjectPublicKeyInfo`. Whitespace and PEM armour
    /// (`-----BEGIN PUBLIC KEY-----`) are tolerated, since a key pasted into a setting often carries them.
    pub fn parse(configured: &str) -> Result<Self, KeyError> {
        let b64: String = configured
            .lines()
            .filter(|l| !l.trim_start().starts_with("-----"))
            .flat_map(str::chars)
            .filter(|c| !c.is_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| KeyError::NotBase64)?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, der).parse().map(Self).map_err(|_| KeyError::NotP256)
    }

    /// Whether `signature` (the header's base64 DER) is SendGrid's signature of `timestamp` + `body`.
    pub fn verify(&self, timestamp: &str, body: &[u8], signature: &str) -> bool {
        let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
            return false;
        };
        let mut signed = Vec::with_capacity(timestamp.len() + body.len());
        signed.extend_from_slice(timestamp.as_bytes());
        signed.extend_from_slice(body);
        self.0.verify_sig(&signed, &signature).is_ok()
    }
}

/// Whether the signed timestamp (Unix seconds) is within the window described in the module docs.
pub fn check_fresh(timestamp: &str, now_unix: i64) -> Result<(), StaleTimestamp> {
    let signed_at: i64 = timestamp.trim().parse().map_err(|_| StaleTimestamp::NotANumber)?;
    let age = now_unix.saturating_sub(signed_at);
    if age > MAX_AGE_SECONDS {
        Err(StaleTimestamp::TooOld(age))
    } else if -age > MAX_SKEW_SECONDS {
        Err(StaleTimestamp::InTheFuture(-age))
    } else {
        Ok(())
    }
}

/// The `X-Message-Id` an event's `sg_message_id` belongs to: everything before the first dot. SendGrid's
/// `X-Message-Id` is a 22-character base64url id (no dots) and each recipient's message id appends
/// `.<server part>` to it (SendGrid support: "the X-Message-ID will always include just the first 22
/// characters of that Message ID"; the Activity API filters with `msg_id LIKE '<X-Message-ID>%'`). `None` for
/// an empty id.
pub fn x_message_id(sg_message_id: &str) -> Option<&str> {
    let id = sg_message_id.trim();
    let base = id.split_once('.').map_or(id, |(base, _)| base);
    (!base.is_empty()).then_some(base)
}

/// What a verified batch asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Effects {
    pub receipts: Vec<Receipt>,
    pub opt_outs: Vec<OptRequest>,
}

/// Reads a batch (a JSON array of events; a single event object is read as a batch of one). `Err` only when the
/// body is not JSON; events that are ignored or lack what they need are skipped.
pub fn effects(body: &[u8]) -> Result<Effects, serde_json::Error> {
    let root: Value = serde_json::from_slice(body)?;
    let events = match &root {
        Value::Array(events) => events.as_slice(),
        Value::Object(_) => std::slice::from_ref(&root),
        _ => &[],
    };
    let mut out = Effects::default();
    for event in events {
        read_event(event, &mut out);
    }
    Ok(out)
}

fn str_field<'a>(event: &'a Value, key: &str) -> Option<&'a str> {
    event.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

fn read_event(event: &Value, out: &mut Effects) {
    let Some(kind) = str_field(event, "event") else { return };
    let provider_id = str_field(event, "sg_message_id").and_then(x_message_id);
    let mut receipt = |state: DeliveryState, failure_detail: Option<String>| {
        if let Some(id) = provider_id {
            out.receipts.push(Receipt { provider_id: id.to_string(), state, failure_detail });
        }
    };
    let motivo = match kind {
        "delivered" => {
            receipt(DeliveryState::Delivered, None);
            return;
        }
        "bounce" | "dropped" => {
            receipt(DeliveryState::Failed, Some(failure_detail(kind, event)));
            return;
        }
        "open" => {
            if event.get("sg_machine_open").and_then(Value::as_bool) != Some(true) {
                receipt(DeliveryState::Read, None);
            }
            return;
        }
        "spamreport" => "reportó el correo como spam",
        "unsubscribe" => "se dio de baja desde el correo",
        "group_unsubscribe" => "se dio de baja del grupo de correos",
        _ => return,
    };
    // Only a parent who had the email can report it or unsubscribe from it.
    receipt(DeliveryState::Delivered, None);
    if let Some(email) = str_field(event, "email") {
        out.opt_outs.push(OptRequest {
            channel: ChannelKind::Email,
            address: email.to_string(),
            change: OptChange::Out,
            motivo: motivo.to_string(),
            message_id: str_field(event, "sg_event_id").map(str::to_string),
            sent_at: event.get("timestamp").and_then(unix_seconds),
        });
    }
}

/// `entrega fallida (bounce): SendGrid 5.1.1: rebotado por el servidor del destinatario: 550 5.1.1 …`.
fn failure_detail(kind: &str, event: &Value) -> String {
    let blocked = str_field(event, "type") == Some("blocked");
    let meaning = match kind {
        "bounce" if blocked => "bloqueado por el servidor del destinatario",
        "bounce" => "rebotado por el servidor del destinatario",
        _ => "SendGrid no lo envió",
    };
    let label = if blocked { "bounce, blocked" } else { kind };
    let status = str_field(event, "status").map(|s| format!(" {}", truncate(s))).unwrap_or_default();
    match str_field(event, "reason") {
        Some(reason) => format!("entrega fallida ({label}): SendGrid{status}: {meaning}: {}", truncate(reason)),
        None => format!("entrega fallida ({label}): SendGrid{status}: {meaning}"),
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
    use serde_json::json;

    use super::*;
    use DeliveryState::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// A key pair as SendGrid has one: the public half as the base64 DER it shows, and a signer.
    struct Signer(EcdsaKeyPair);

    impl Signer {
        fn new() -> Signer {
            Signer(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap())
        }
        fn public_key(&self) -> String {
            b64(self.0.public_key().as_der().unwrap().as_ref())
        }
        fn sign(&self, timestamp: &str, body: &[u8]) -> String {
            let signed = [timestamp.as_bytes(), body].concat();
            b64(self.0.sign(&SystemRandom::new(), &signed).unwrap().as_ref())
        }
    }

    /// The vector in SendGrid's own libraries (sendgrid-python and sendgrid-ruby `test_eventwebhook`, the Swift
    /// SendGridKit "production fixture"): a `dropped` event signed by SendGrid's test key.
    const SG_PUBLIC_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==";
    const SG_SIGNATURE: &str =
        "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM=";
    const SG_TIMESTAMP: &str = "1600112502";
    const SG_PAYLOAD: &str = "[{\"email\":\"hello@world.com\",\"event\":\"dropped\",\"reason\":\"Bounced Address\",\"sg_event_id\":\"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA\",\"sg_message_id\":\"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0\",\"smtp-id\":\"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>\",\"timestamp\":1600112492}]\r\n";
    /// The older vector (sendgrid-java, -csharp, -go, -ruby): another key, signature and payload.
    const SG_PUBLIC_KEY_2: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";
    const SG_SIGNATURE_2: &str =
        "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=";
    const SG_TIMESTAMP_2: &str = "1588788367";
    const SG_PAYLOAD_2: &str = r#"{"category":"example_payload","event":"test_event","message_id":"message_id"}"#;
    /// The "bad key" and "bad signature" of the same libraries' tests.
    const SG_OTHER_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA==";
    const SG_BAD_SIGNATURE: &str =
        "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH3j/0=";

    #[test]
    fn sendgrid_published_vectors_verify() {
        let key = VerificationKey::parse(SG_PUBLIC_KEY).unwrap();
        assert!(key.verify(SG_TIMESTAMP, SG_PAYLOAD.as_bytes(), SG_SIGNATURE));
        assert!(!key.verify(SG_TIMESTAMP, b"payload", SG_SIGNATURE), "bad payload");
        assert!(!key.verify("timestamp", SG_PAYLOAD.as_bytes(), SG_SIGNATURE), "bad timestamp");
        assert!(!key.verify(SG_TIMESTAMP, SG_PAYLOAD.as_bytes(), SG_BAD_SIGNATURE), "bad signature");
        // Without the trailing CRLF SendGrid sends, the bytes differ: the signature covers the raw body.
        assert!(!key.verify(SG_TIMESTAMP, SG_PAYLOAD.trim_end().as_bytes(), SG_SIGNATURE));
        let other = VerificationKey::parse(SG_OTHER_KEY).unwrap();
        assert!(!other.verify(SG_TIMESTAMP, SG_PAYLOAD.as_bytes(), SG_SIGNATURE), "bad key");

        let key2 = VerificationKey::parse(SG_PUBLIC_KEY_2).unwrap();
        assert!(key2.verify(SG_TIMESTAMP_2, SG_PAYLOAD_2.as_bytes(), SG_SIGNATURE_2));
        assert!(!key2.verify(SG_TIMESTAMP_2, SG_PAYLOAD_2.as_bytes(), SG_BAD_SIGNATURE), "one character off");
        assert!(!key2.verify("1388788367", SG_PAYLOAD_2.as_bytes(), SG_SIGNATURE_2), "other timestamp");
    }

    #[test]
    fn a_generated_key_pair_signs_and_verifies() {
        let signer = Signer::new();
        let key = VerificationKey::parse(&signer.public_key()).unwrap();
        let body = br#"[{"event":"delivered","sg_message_id":"abc.filter1"}]"#;
        let sig = signer.sign("1700000000", body);
        assert!(key.verify("1700000000", body, &sig));
        assert!(key.verify("1700000000", body, &format!(" {sig}\n")), "header whitespace");

        let tampered = br#"[{"event":"delivered","sg_message_id":"abd.filter1"}]"#;
        assert!(!key.verify("1700000000", tampered, &sig), "tampered body");
        assert!(!key.verify("1700000001", body, &sig), "tampered timestamp");
        // The timestamp is signed in front of the body, not merely alongside it.
        assert!(!key.verify("", &[b"1700000000".as_slice(), body].concat()[1..], &sig));
        let wrong = VerificationKey::parse(&Signer::new().public_key()).unwrap();
        assert!(!wrong.verify("1700000000", body, &sig), "wrong key");
        assert!(!key.verify("1700000000", body, ""), "missing");
        assert!(!key.verify("1700000000", body, "not base64!"), "garbage");
        assert!(!key.verify("1700000000", body, &b64(b"\x30\x06\x02\x01\x01\x02\x01\x01")), "not this signature");
    }

    #[test]
    fn keys_are_read_as_sendgrid_shows_them() {
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n{}\n-----END PUBLIC KEY-----\n",
            &SG_PUBLIC_KEY[..64],
            &SG_PUBLIC_KEY[64..]
        );
        let key = VerificationKey::parse(&pem).unwrap();
        assert!(key.verify(SG_TIMESTAMP, SG_PAYLOAD.as_bytes(), SG_SIGNATURE), "PEM armour tolerated");
        assert!(VerificationKey::parse(&format!("  {SG_PUBLIC_KEY}\n")).is_ok());
        assert!(matches!(VerificationKey::parse("not base64!"), Err(KeyError::NotBase64)));
        assert!(matches!(VerificationKey::parse(&b64(b"short")), Err(KeyError::NotP256)));
        assert!(matches!(VerificationKey::parse(""), Err(KeyError::NotP256)));
        // A P-384 key is a real key, of the wrong curve.
        let p384 = EcdsaKeyPair::generate(&aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1_SIGNING).unwrap();
        let p384 = b64(p384.public_key().as_der().unwrap().as_ref());
        assert!(matches!(VerificationKey::parse(&p384), Err(KeyError::NotP256)));
    }

    #[test]
    fn freshness_window() {
        let now = 1_750_000_000;
        assert_eq!(check_fresh("1750000000", now), Ok(()));
        assert_eq!(check_fresh(&(now - MAX_AGE_SECONDS).to_string(), now), Ok(()), "a retry a day later");
        assert_eq!(check_fresh(&(now - MAX_AGE_SECONDS - 1).to_string(), now), Err(StaleTimestamp::TooOld(90_001)));
        assert_eq!(check_fresh(&(now + 600).to_string(), now), Ok(()), "clock skew");
        assert_eq!(check_fresh(&(now + 901).to_string(), now), Err(StaleTimestamp::InTheFuture(901)));
        assert_eq!(check_fresh(" 1750000000 ", now), Ok(()));
        assert_eq!(check_fresh("timestamp", now), Err(StaleTimestamp::NotANumber));
        assert_eq!(check_fresh("", now), Err(StaleTimestamp::NotANumber));
        assert!(check_fresh(SG_TIMESTAMP, now).is_err(), "the published vector is years old");
        assert!(check_fresh("-9223372036854775808", now).is_err(), "no overflow");
    }

    #[test]
    fn message_ids() {
        for (sg, expected) in [
            (
                "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",
                Some("LRzXl_NHStOGhQ4kofSm_A"),
            ),
            ("XBg2anf2TqCy6WXKQFhieQ.filter0905p1mdw1-4434-59E0C6FF-3.0", Some("XBg2anf2TqCy6WXKQFhieQ")),
            ("9eZBI4XvQtiBGdAS9XJRGg.recvd-7d8c5f8b9f-abcde-1-64B0B1A2-3.0", Some("9eZBI4XvQtiBGdAS9XJRGg")),
            ("R14554qsAGSkiKYYviJN34DGA", Some("R14554qsAGSkiKYYviJN34DGA")),
            (" Ua9z9lSTSaqYBWJe_Xfc-Q.filter0001 ", Some("Ua9z9lSTSaqYBWJe_Xfc-Q")),
            ("", None),
            (".filter0001", None),
        ] {
            assert_eq!(x_message_id(sg), expected, "{sg}");
        }
    }

    #[test]
    fn events_become_receipts_and_opt_outs() {
        let body = json!([
            {"email": "ana@example.com", "event": "processed", "sg_message_id": "P1.filter1"},
            {"email": "ana@example.com", "event": "deferred", "sg_message_id": "P1.filter1", "attempt": "1"},
            {"email": "ana@example.com", "event": "delivered", "sg_message_id": "D1.filter1", "response": "250 OK"},
            {"email": "ana@example.com", "event": "bounce", "sg_message_id": "B1.filter1", "type": "bounce",
             "status": "5.1.1", "reason": "550 5.1.1 The email account that you tried to reach does not exist"},
            {"email": "ana@example.com", "event": "bounce", "sg_message_id": "B2.filter1", "type": "blocked",
             "status": "5.7.1", "reason": "550 5.7.1 blocked"},
            {"email": "ana@example.com", "event": "dropped", "sg_message_id": "X1.filter1", "reason": "Bounced Address"},
            {"email": "ana@example.com", "event": "dropped", "sg_message_id": "X2.filter1"},
            {"email": "ana@example.com", "event": "open", "sg_message_id": "O1.filter1", "sg_machine_open": false},
            {"email": "ana@example.com", "event": "open", "sg_message_id": "O2.filter1", "sg_machine_open": true},
            {"email": "ana@example.com", "event": "click", "sg_message_id": "C1.filter1", "url": "https://x"},
            {"email": "Ana@Example.com", "event": "spamreport", "sg_message_id": "S1.filter1"},
            {"email": "luis@example.com", "event": "unsubscribe", "sg_event_id": "ev-u1", "timestamp": 1_750_263_773},
            {"email": "eva@example.com", "event": "group_unsubscribe", "sg_message_id": "G1.filter1", "asm_group_id": 1},
            {"email": "ana@example.com", "event": "delivered"},
            {"event": "spamreport", "sg_message_id": "S2.filter1"},
            {"email": "ana@example.com", "sg_message_id": "N1.filter1"},
            "garbage"
        ]);
        let got = effects(body.to_string().as_bytes()).unwrap();
        let summary: Vec<(&str, DeliveryState)> =
            got.receipts.iter().map(|r| (r.provider_id.as_str(), r.state)).collect();
        assert_eq!(
            summary,
            [
                ("D1", Delivered),
                ("B1", Failed),
                ("B2", Failed),
                ("X1", Failed),
                ("X2", Failed),
                ("O1", Read),
                ("S1", Delivered),
                ("G1", Delivered),
                ("S2", Delivered),
            ]
        );
        let details: Vec<Option<&str>> = got.receipts.iter().map(|r| r.failure_detail.as_deref()).collect();
        assert_eq!(
            details[1..5],
            [
                Some(
                    "entrega fallida (bounce): SendGrid 5.1.1: rebotado por el servidor del destinatario: \
                     550 5.1.1 The email account that you tried to reach does not exist"
                ),
                Some(
                    "entrega fallida (bounce, blocked): SendGrid 5.7.1: bloqueado por el servidor del destinatario: 550 5.7.1 blocked"
                ),
                Some("entrega fallida (dropped): SendGrid: SendGrid no lo envió: Bounced Address"),
                Some("entrega fallida (dropped): SendGrid: SendGrid no lo envió"),
            ]
        );
        assert!(details.iter().enumerate().all(|(i, d)| (1..5).contains(&i) || d.is_none()));
        let opt_outs: Vec<(&str, &str)> =
            got.opt_outs.iter().map(|o| (o.address.as_str(), o.motivo.as_str())).collect();
        assert_eq!(
            opt_outs,
            [
                ("Ana@Example.com", "reportó el correo como spam"),
                ("luis@example.com", "se dio de baja desde el correo"),
                ("eva@example.com", "se dio de baja del grupo de correos"),
            ]
        );
        assert!(got.opt_outs.iter().all(|o| o.channel == ChannelKind::Email && o.change == OptChange::Out));
        // The event's id and timestamp: a repeat changes nothing, and an older event does not undo a newer change.
        let luis = &got.opt_outs[1];
        assert_eq!(luis.message_id.as_deref(), Some("ev-u1"));
        assert_eq!(luis.sent_at, Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_750_263_773)));
        assert_eq!((got.opt_outs[0].message_id.as_deref(), got.opt_outs[0].sent_at), (None, None));

        let one = effects(br#"{"event":"delivered","sg_message_id":"Z.filter"}"#).unwrap();
        assert_eq!(one.receipts.len(), 1, "a single event object");
        assert_eq!(effects(b"[]").unwrap(), Effects::default());
        assert_eq!(effects(b"42").unwrap(), Effects::default());
        assert!(effects(b"not json").is_err());
    }

    #[test]
    fn long_reasons_are_cut() {
        let event = json!({"event": "bounce", "reason": "x".repeat(1000), "status": "5.0.0"});
        let detail = failure_detail("bounce", &event);
        assert!(detail.chars().count() < 320, "{}", detail.len());
        assert!(detail.ends_with('…'));
    }
}
