//! Provider webhooks over the real database: the webhook router served on a real port, called with real HTTP
//! requests signed as Twilio, Meta and SendGrid sign them: delivery receipts, and opt-outs/opt-ins.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use cantina_notify::config::Secret;
use cantina_notify::metrics::Metrics;
use cantina_notify::webhooks::signature::{meta_signature, twilio_signature};
use cantina_notify::webhooks::{DeliveryState, WebhookState, record_receipt, router};
use serde_json::{Value, json};
use tokio_postgres::Client;

use crate::helpers::*;

const TWILIO_TOKEN: &str = "tw-auth-token";
const PUBLIC_URL: &str = "https://notify.example.com";
const APP_SECRET: &str = "meta-app-secret";
const VERIFY_TOKEN: &str = "verificame-123";

struct Hooks {
    db: TestDb,
    c: Client,
    pool: deadpool_postgres::Pool,
    addr: SocketAddr,
    http: reqwest::Client,
    id_cliente: i32,
    metrics: Arc<Metrics>,
    /// SendGrid's signing key for this test; its public half is the configured verification key.
    sendgrid: EcdsaKeyPair,
}

/// A row of `cantina_notify_bajas`.
#[derive(Debug, PartialEq)]
struct Baja {
    motivo: String,
    proveedor: Option<String>,
    /// Whether the parent opted back in (`fecha_alta` set).
    alta: bool,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn new_sendgrid_key() -> EcdsaKeyPair {
    EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap()
}

/// The verification key as SendGrid's settings page shows it: base64 of the DER SubjectPublicKeyInfo.
fn sendgrid_public_key(key: &EcdsaKeyPair) -> String {
    b64(key.public_key().as_der().unwrap().as_ref())
}

/// SendGrid's signature: ECDSA P-256/SHA-256 over the timestamp header followed by the raw body, base64 DER.
fn sendgrid_sign(key: &EcdsaKeyPair, timestamp: &str, body: &[u8]) -> String {
    b64(key.sign(&SystemRandom::new(), &[timestamp.as_bytes(), body].concat()).unwrap().as_ref())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[derive(Debug, PartialEq)]
struct Row {
    estado: String,
    entrega: Option<String>,
    ultimo_error: Option<String>,
}

impl Hooks {
    async fn start() -> Hooks {
        Self::start_with(|s| s).await
    }

    async fn start_with(configure: impl FnOnce(WebhookState) -> WebhookState) -> Hooks {
        let db = TestDb::new().await;
        let c = db.client().await;
        let fam = seed_family(&c, Some("ana@example.com"), Some("0981123456"), 12_000).await;
        let pool = cantina_notify::db::pool(&db.url, 2, Duration::from_secs(5)).unwrap();
        let sendgrid = new_sendgrid_key();
        let metrics = Metrics::new();
        let state = configure(WebhookState {
            pool: pool.clone(),
            twilio_auth_token: Some(Secret::new(TWILIO_TOKEN)),
            public_base_url: Some(PUBLIC_URL.to_string()),
            meta_app_secret: Some(Secret::new(APP_SECRET)),
            meta_verify_token: Some(Secret::new(VERIFY_TOKEN)),
            sendgrid_verification_key: Some(sendgrid_public_key(&sendgrid)),
            metrics: metrics.clone(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Hooks { db, c, pool, addr, http: reqwest::Client::new(), id_cliente: fam.id_cliente, metrics, sendgrid }
    }

    /// A request the dispatcher has sent: `Enviado`, with the provider's id and no delivery state yet (email to
    /// Ana for SendGrid, WhatsApp for Meta, SMS for Twilio).
    async fn sent_request(&self, proveedor: &str, id_proveedor: &str) -> i64 {
        let (destino, destinatario) = match proveedor {
            "meta" => ("WhatsApp", "+595981123456"),
            "sendgrid" => ("Email", "ana@example.com"),
            _ => ("SMS", "+595981123456"),
        };
        self.sent_request_to(proveedor, id_proveedor, destino, destinatario).await
    }

    async fn sent_request_to(&self, proveedor: &str, id_proveedor: &str, destino: &str, destinatario: &str) -> i64 {
        self.c
            .query_one(
                "INSERT INTO solicitudes_notificacion
                     (id_cliente, destino, estado, tipo, clave_dedup, destinatario, intentos, fecha_envio,
                      proveedor, id_proveedor, actualizado_en)
                 VALUES ($1, $2, 'Enviado', 'recarga_exitosa', $3, $4, 1, now(), $5, $6,
                         now() - interval '1 hour')
                 RETURNING id_solicitud",
                &[
                    &self.id_cliente,
                    &destino,
                    &format!("test:{id_proveedor}"),
                    &destinatario,
                    &proveedor,
                    &id_proveedor,
                ],
            )
            .await
            .unwrap()
            .get(0)
    }

    /// The opt-out recorded for an address on a channel (`destino` as in the table: `SMS`, `WhatsApp`, `Email`).
    async fn baja(&self, destino: &str, destinatario: &str) -> Option<Baja> {
        self.c
            .query_opt(
                "SELECT motivo, proveedor, fecha_alta IS NOT NULL FROM cantina_notify_bajas
                 WHERE destino = $1 AND destinatario = $2",
                &[&destino, &destinatario],
            )
            .await
            .unwrap()
            .map(|r| Baja { motivo: r.get(0), proveedor: r.get(1), alta: r.get(2) })
    }

    async fn bajas(&self) -> i64 {
        self.c.query_one("SELECT count(*) FROM cantina_notify_bajas", &[]).await.unwrap().get(0)
    }

    /// POSTs a SendGrid event batch with the given headers (each `None` is left out).
    async fn sendgrid_raw(&self, body: &[u8], timestamp: Option<&str>, signature: Option<&str>) -> u16 {
        let mut req = self
            .http
            .post(self.url("/webhooks/sendgrid"))
            .header("Content-Type", "application/json")
            .body(body.to_vec());
        if let Some(ts) = timestamp {
            req = req.header("X-Twilio-Email-Event-Webhook-Timestamp", ts);
        }
        if let Some(sig) = signature {
            req = req.header("X-Twilio-Email-Event-Webhook-Signature", sig);
        }
        req.send().await.unwrap().status().as_u16()
    }

    /// A batch signed now, as SendGrid posts it (compact JSON followed by CRLF).
    async fn sendgrid_events(&self, events: Value) -> u16 {
        let body = format!("{events}\r\n").into_bytes();
        let ts = unix_now().to_string();
        self.sendgrid_raw(&body, Some(&ts), Some(&sendgrid_sign(&self.sendgrid, &ts, &body))).await
    }

    /// POSTs Twilio's incoming-message webhook, signed; returns status, content type and body.
    async fn twilio_inbound(&self, params: &[(&str, &str)]) -> (u16, String, String) {
        let path = "/webhooks/twilio/inbound";
        let sig = twilio_signature(TWILIO_TOKEN, &format!("{PUBLIC_URL}{path}"), &owned(params));
        let resp = self.http.post(self.url(path)).form(params).header("X-Twilio-Signature", sig).send().await.unwrap();
        let status = resp.status().as_u16();
        let ctype = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        (status, ctype, resp.text().await.unwrap())
    }

    fn metric(&self, line_start: &str) -> Option<String> {
        self.metrics.encode().lines().find(|l| l.starts_with(line_start)).map(str::to_string)
    }

    async fn row(&self, id: i64) -> Row {
        let r = self
            .c
            .query_one(
                "SELECT estado, estado_entrega, ultimo_error FROM solicitudes_notificacion WHERE id_solicitud = $1",
                &[&id],
            )
            .await
            .unwrap();
        Row { estado: r.get(0), entrega: r.get(1), ultimo_error: r.get(2) }
    }

    async fn entrega(&self, id: i64) -> Option<String> {
        self.row(id).await.entrega
    }

    /// Whether the row's `actualizado_en` was moved by a receipt (it starts an hour ago).
    async fn touched(&self, id: i64) -> bool {
        self.c
            .query_one(
                "SELECT actualizado_en > now() - interval '10 minutes' FROM solicitudes_notificacion WHERE id_solicitud = $1",
                &[&id],
            )
            .await
            .unwrap()
            .get(0)
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    /// POSTs Twilio's form to `path_and_query` with the given `X-Twilio-Signature` (none when `None`).
    async fn twilio_raw(&self, path_and_query: &str, params: &[(&str, &str)], signature: Option<&str>) -> u16 {
        let mut req = self.http.post(self.url(path_and_query)).form(params);
        if let Some(sig) = signature {
            req = req.header("X-Twilio-Signature", sig);
        }
        req.send().await.unwrap().status().as_u16()
    }

    /// A status callback signed as Twilio signs it: over the public URL, not the address it reaches us on.
    async fn twilio(&self, params: &[(&str, &str)]) -> u16 {
        let path = "/webhooks/twilio/status";
        let sig = twilio_signature(TWILIO_TOKEN, &format!("{PUBLIC_URL}{path}"), &owned(params));
        self.twilio_raw(path, params, Some(&sig)).await
    }

    async fn twilio_status(&self, sid: &str, status: &str) -> u16 {
        self.twilio(&twilio_params(sid, status, None)).await
    }

    async fn meta_raw(&self, body: &[u8], signature: Option<&str>) -> u16 {
        let mut req = self
            .http
            .post(self.url("/webhooks/whatsapp"))
            .header("Content-Type", "application/json")
            .body(body.to_vec());
        if let Some(sig) = signature {
            req = req.header("X-Hub-Signature-256", sig);
        }
        req.send().await.unwrap().status().as_u16()
    }

    async fn meta(&self, body: &Value) -> u16 {
        let raw = body.to_string().into_bytes();
        self.meta_raw(&raw, Some(&meta_signature(APP_SECRET, &raw))).await
    }

    async fn meta_statuses(&self, statuses: Value) -> u16 {
        self.meta(&meta_body(statuses)).await
    }

    async fn handshake(&self, query: &str) -> (u16, String) {
        let resp = self.http.get(self.url(&format!("/webhooks/whatsapp?{query}"))).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }
}

fn owned(params: &[(&str, &str)]) -> Vec<(String, String)> {
    params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The fields Twilio posts to a StatusCallback for an SMS.
fn twilio_params<'a>(sid: &'a str, status: &'a str, error_code: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut p = vec![
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("ApiVersion", "2010-04-01"),
        ("From", "+15005550006"),
        ("MessageSid", sid),
        ("MessageStatus", status),
        ("SmsSid", sid),
        ("SmsStatus", status),
        ("To", "+595981123456"),
    ];
    if let Some(code) = error_code {
        p.push(("ErrorCode", code));
    }
    p
}

/// Meta's webhook envelope around `statuses`.
fn meta_body(statuses: Value) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "102290129340398",
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                    "statuses": statuses
                }
            }]
        }]
    })
}

fn meta_status(id: &str, status: &str) -> Value {
    json!({"id": id, "status": status, "timestamp": "1750263773", "recipient_id": "595981123456"})
}

const SID: &str = "SM0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn twilio_delivered_is_recorded_from_a_signed_callback() {
    let h = Hooks::start().await;
    let id = h.sent_request("twilio", SID).await;
    // Twilio signs the URL it was given, query included; computed independently (Python hmac/hashlib).
    let path = "/webhooks/twilio/status?canal=sms";
    let params = twilio_params(SID, "delivered", None);
    let sig = twilio_signature(TWILIO_TOKEN, &format!("{PUBLIC_URL}{path}"), &owned(&params));
    assert_eq!(sig, "4WyFBilJH/WSOQv7bO6NLpiJIcQ=");

    assert_eq!(h.twilio_raw(path, &params, Some(&sig)).await, 200);
    assert_eq!(
        h.row(id).await,
        Row { estado: "Enviado".into(), entrega: Some("delivered".into()), ultimo_error: None }
    );
    assert!(h.touched(id).await, "actualizado_en moves with the receipt");
}

#[tokio::test]
async fn twilio_read_and_ignored_statuses() {
    let h = Hooks::start().await;
    let id = h.sent_request("twilio", SID).await;
    for status in ["accepted", "queued", "sending"] {
        assert_eq!(h.twilio_status(SID, status).await, 200, "{status}");
    }
    assert_eq!(h.entrega(id).await, None, "statuses inside Twilio add nothing to 'Enviado'");
    assert!(!h.touched(id).await);

    assert_eq!(h.twilio_status(SID, "sent").await, 200);
    assert_eq!(h.entrega(id).await.as_deref(), Some("sent"));
    assert_eq!(h.twilio_status(SID, "read").await, 200, "WhatsApp via Twilio: delivered may be skipped");
    assert_eq!(h.row(id).await, Row { estado: "Enviado".into(), entrega: Some("read".into()), ultimo_error: None });
}

#[tokio::test]
async fn twilio_failure_keeps_the_error_code() {
    let h = Hooks::start().await;
    let id = h.sent_request("twilio", SID).await;
    assert_eq!(h.twilio_status(SID, "sent").await, 200);
    assert_eq!(h.twilio(&twilio_params(SID, "undelivered", Some("30003"))).await, 200);
    let row = h.row(id).await;
    assert_eq!(row.estado, "Enviado", "a receipt never changes estado");
    assert_eq!(row.entrega.as_deref(), Some("failed"));
    assert_eq!(
        row.ultimo_error.as_deref(),
        Some("entrega fallida (undelivered): Twilio 30003: teléfono inalcanzable (apagado o sin señal)")
    );
    // The same failure again (and a `failed` after `undelivered`) adds nothing.
    assert_eq!(h.twilio(&twilio_params(SID, "undelivered", Some("30003"))).await, 200);
    assert_eq!(h.twilio(&twilio_params(SID, "failed", Some("30008"))).await, 200);
    assert_eq!(h.row(id).await, row);
}

#[tokio::test]
async fn twilio_out_of_order_and_repeated_callbacks_never_go_back() {
    let h = Hooks::start().await;
    let id = h.sent_request("twilio", SID).await;
    assert_eq!(h.twilio_status(SID, "delivered").await, 200);
    assert_eq!(h.twilio_status(SID, "sent").await, 200, "late 'sent'");
    assert_eq!(h.entrega(id).await.as_deref(), Some("delivered"));
    assert_eq!(h.twilio_status(SID, "delivered").await, 200, "repeat");
    assert_eq!(h.twilio_status(SID, "delivered").await, 200, "repeat");
    assert_eq!(h.twilio(&twilio_params(SID, "undelivered", Some("30005"))).await, 200, "failure after delivery");
    assert_eq!(
        h.row(id).await,
        Row { estado: "Enviado".into(), entrega: Some("delivered".into()), ultimo_error: None },
        "a failure report cannot undo the handset's delivery report"
    );

    // The other way round: a delivery report after a failure wins (positive proof), a late 'sent' does not.
    let other = "SM99999999999999999999999999999999";
    let id2 = h.sent_request("twilio", other).await;
    assert_eq!(h.twilio(&twilio_params(other, "failed", Some("30006"))).await, 200);
    assert_eq!(h.twilio_status(other, "sent").await, 200);
    assert_eq!(h.entrega(id2).await.as_deref(), Some("failed"));
    assert_eq!(h.twilio_status(other, "delivered").await, 200);
    assert_eq!(h.entrega(id2).await.as_deref(), Some("delivered"));
}

#[tokio::test]
async fn twilio_bad_or_missing_signature_is_401_and_changes_nothing() {
    let h = Hooks::start().await;
    let id = h.sent_request("twilio", SID).await;
    let path = "/webhooks/twilio/status";
    let params = twilio_params(SID, "delivered", None);
    let good = twilio_signature(TWILIO_TOKEN, &format!("{PUBLIC_URL}{path}"), &owned(&params));

    assert_eq!(h.twilio_raw(path, &params, None).await, 401, "missing");
    assert_eq!(h.twilio_raw(path, &params, Some("")).await, 401, "empty");
    assert_eq!(h.twilio_raw(path, &params, Some("bm90IGl0")).await, 401, "wrong");
    let other_token = twilio_signature("another-token", &format!("{PUBLIC_URL}{path}"), &owned(&params));
    assert_eq!(h.twilio_raw(path, &params, Some(&other_token)).await, 401, "other account's token");
    // Signed for the address it reaches us on instead of the public URL Twilio was given.
    let local = twilio_signature(TWILIO_TOKEN, &h.url(path), &owned(&params));
    assert_eq!(h.twilio_raw(path, &params, Some(&local)).await, 401, "other URL");
    // A valid signature replayed with a changed status.
    assert_eq!(h.twilio_raw(path, &twilio_params(SID, "read", None), Some(&good)).await, 401, "tampered body");
    // A valid signature replayed on another query string.
    assert_eq!(h.twilio_raw(&format!("{path}?x=1"), &params, Some(&good)).await, 401, "tampered URL");

    assert_eq!(h.row(id).await, Row { estado: "Enviado".into(), entrega: None, ultimo_error: None });
    assert!(!h.touched(id).await);
    assert_eq!(h.twilio_raw(path, &params, Some(&good)).await, 200, "the genuine one still works");
    assert_eq!(h.entrega(id).await.as_deref(), Some("delivered"));
}

#[tokio::test]
async fn twilio_unknown_message_is_acknowledged() {
    let h = Hooks::start().await;
    // A Meta request whose id happens to equal the Twilio sid: receipts are matched per provider.
    let id = h.sent_request("meta", SID).await;
    assert_eq!(h.twilio_status("SMffffffffffffffffffffffffffffffff", "delivered").await, 200);
    assert_eq!(h.twilio_status(SID, "delivered").await, 200);
    assert_eq!(h.entrega(id).await, None);
}

#[tokio::test]
async fn meta_handshake() {
    let h = Hooks::start().await;
    let ok = h.handshake(&format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444")).await;
    assert_eq!(ok, (200, "1158201444".to_string()));
    for query in [
        "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1158201444".to_string(),
        format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}x&hub.challenge=1"),
        format!("hub.mode=unsubscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1"),
        format!("hub.verify_token={VERIFY_TOKEN}&hub.challenge=1"),
        "hub.mode=subscribe&hub.challenge=1".to_string(),
        format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}"),
    ] {
        assert_eq!(h.handshake(&query).await.0, 403, "{query}");
    }
}

#[tokio::test]
async fn meta_statuses_are_recorded() {
    let h = Hooks::start().await;
    let sent = h.sent_request("meta", "wamid.SENT").await;
    let delivered = h.sent_request("meta", "wamid.DELIVERED").await;
    let read = h.sent_request("meta", "wamid.READ").await;
    let failed = h.sent_request("meta", "wamid.FAILED").await;
    let status = h
        .meta_statuses(json!([
            meta_status("wamid.SENT", "sent"),
            meta_status("wamid.DELIVERED", "delivered"),
            meta_status("wamid.READ", "read"),
            {
                "id": "wamid.FAILED", "status": "failed", "timestamp": "1750263773", "recipient_id": "595981123456",
                "errors": [{
                    "code": 131026, "title": "Message undeliverable", "message": "Message undeliverable",
                    "error_data": {"details": "Message Undeliverable."}
                }]
            },
            meta_status("wamid.UNKNOWN", "read")
        ]))
        .await;
    assert_eq!(status, 200);
    for (id, expected) in [(sent, "sent"), (delivered, "delivered"), (read, "read")] {
        assert_eq!(
            h.row(id).await,
            Row { estado: "Enviado".into(), entrega: Some(expected.into()), ultimo_error: None }
        );
    }
    assert_eq!(
        h.row(failed).await,
        Row {
            estado: "Enviado".into(),
            entrega: Some("failed".into()),
            ultimo_error: Some("entrega fallida: Meta 131026: Message undeliverable (Message Undeliverable.)".into()),
        }
    );
}

#[tokio::test]
async fn meta_out_of_order_and_repeats() {
    let h = Hooks::start().await;
    let id = h.sent_request("meta", "wamid.X").await;
    // Within one batch, the later 'sent' does not undo 'delivered'.
    assert_eq!(
        h.meta_statuses(json!([meta_status("wamid.X", "delivered"), meta_status("wamid.X", "sent")])).await,
        200
    );
    assert_eq!(h.entrega(id).await.as_deref(), Some("delivered"));
    assert_eq!(h.meta_statuses(json!([meta_status("wamid.X", "read")])).await, 200);
    // Across batches: a late 'delivered', a late 'sent' and a repeated 'read' change nothing.
    for s in ["delivered", "sent", "read"] {
        assert_eq!(h.meta_statuses(json!([meta_status("wamid.X", s)])).await, 200);
        assert_eq!(h.entrega(id).await.as_deref(), Some("read"), "after a late {s}");
    }
    // 'delivered' skipped: sent → read.
    let id2 = h.sent_request("meta", "wamid.Y").await;
    assert_eq!(h.meta_statuses(json!([meta_status("wamid.Y", "read")])).await, 200);
    assert_eq!(h.meta_statuses(json!([meta_status("wamid.Y", "sent")])).await, 200);
    assert_eq!(h.entrega(id2).await.as_deref(), Some("read"));
}

#[tokio::test]
async fn meta_bad_signature_is_401_and_changes_nothing() {
    let h = Hooks::start().await;
    let id = h.sent_request("meta", "wamid.Z").await;
    let raw = meta_body(json!([meta_status("wamid.Z", "delivered")])).to_string().into_bytes();
    let good = meta_signature(APP_SECRET, &raw);
    assert_eq!(h.meta_raw(&raw, None).await, 401, "missing");
    assert_eq!(h.meta_raw(&raw, Some("sha256=")).await, 401, "empty");
    assert_eq!(h.meta_raw(&raw, Some(&meta_signature("other-secret", &raw))).await, 401, "other secret");
    assert_eq!(h.meta_raw(&raw, Some(good.trim_start_matches("sha256="))).await, 401, "no prefix");
    // Re-serialised (whitespace differs): the signature is over the raw bytes, not the JSON value.
    let pretty = serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(&raw).unwrap()).unwrap();
    assert_eq!(h.meta_raw(&pretty, Some(&good)).await, 401, "same JSON, other bytes");
    let tampered = String::from_utf8(raw.clone()).unwrap().replace("delivered", "read").into_bytes();
    assert_eq!(h.meta_raw(&tampered, Some(&good)).await, 401, "tampered");
    assert_eq!(h.row(id).await, Row { estado: "Enviado".into(), entrega: None, ultimo_error: None });
    assert!(!h.touched(id).await);
    assert_eq!(h.meta_raw(&raw, Some(&good)).await, 200, "the genuine one still works");
    assert_eq!(h.entrega(id).await.as_deref(), Some("delivered"));
}

#[tokio::test]
async fn meta_signed_bodies_that_are_not_statuses() {
    let h = Hooks::start().await;
    // An incoming message (not a status) and an unrelated field: acknowledged, nothing to record.
    let incoming = json!({"object": "whatsapp_business_account", "entry": [{"changes": [
        {"field": "messages", "value": {"messages": [{"from": "595981123456", "id": "wamid.IN", "type": "text"}]}},
        {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}}
    ]}]});
    assert_eq!(h.meta(&incoming).await, 200);
    let raw = b"not json".to_vec();
    assert_eq!(h.meta_raw(&raw, Some(&meta_signature(APP_SECRET, &raw))).await, 400);
}

#[tokio::test]
async fn unconfigured_webhooks_accept_nothing() {
    let h = Hooks::start_with(|s| WebhookState {
        twilio_auth_token: None,
        meta_app_secret: None,
        meta_verify_token: None,
        sendgrid_verification_key: None,
        ..s
    })
    .await;
    let id = h.sent_request("twilio", SID).await;
    assert_eq!(h.twilio_status(SID, "delivered").await, 503);
    assert_eq!(h.twilio_raw("/webhooks/twilio/status", &twilio_params(SID, "delivered", None), None).await, 503);
    let raw = meta_body(json!([meta_status("wamid.Z", "delivered")])).to_string().into_bytes();
    assert_eq!(h.meta_raw(&raw, Some(&meta_signature("", &raw))).await, 503);
    assert_eq!(h.meta_raw(&raw, None).await, 503);
    assert_eq!(h.handshake("hub.mode=subscribe&hub.verify_token=&hub.challenge=1").await.0, 503);
    assert_eq!(h.entrega(id).await, None);
    let inbound = [("From", "+595981123456"), ("Body", "STOP")];
    assert_eq!(h.twilio_inbound(&inbound).await.0, 503);
    let sg = h.sent_request("sendgrid", "SGunconfigured").await;
    assert_eq!(h.sendgrid_events(json!([sg_event("delivered", "SGunconfigured")])).await, 503);
    assert_eq!(h.sendgrid_raw(b"[]", None, None).await, 503);
    assert_eq!(h.entrega(sg).await, None);
    assert_eq!(h.bajas().await, 0);
    assert_eq!(h.metric("cantina_notify_webhook_rejected_total"), None, "503 is not a rejected signature");

    // A key that is not a P-256 public key is a configuration error too: 503, not 401.
    let h = Hooks::start_with(|s| WebhookState { sendgrid_verification_key: Some("bm90IGEga2V5".into()), ..s }).await;
    let sg = h.sent_request("sendgrid", "SGbadkey").await;
    assert_eq!(h.sendgrid_events(json!([sg_event("delivered", "SGbadkey")])).await, 503);
    assert_eq!(h.entrega(sg).await, None);

    // A Twilio token without the public URL cannot rebuild what Twilio signed.
    let h = Hooks::start_with(|s| WebhookState { public_base_url: None, ..s }).await;
    let id = h.sent_request("twilio", SID).await;
    assert_eq!(h.twilio_status(SID, "delivered").await, 503);
    assert_eq!(h.entrega(id).await, None);
}

/// Concurrent receipts for one request, in every order at once: the row ends at the highest state.
#[tokio::test]
async fn concurrent_receipts_cannot_regress() {
    let h = Hooks::start().await;
    // Enough connections for the updates to really race.
    let pool = cantina_notify::db::pool(&h.db.url, 8, Duration::from_secs(5)).unwrap();
    for round in 0..10 {
        let sid = format!("SMconcurrent{round}");
        let id = h.sent_request("twilio", &sid).await;
        let states = [DeliveryState::Read, DeliveryState::Delivered, DeliveryState::Sent, DeliveryState::Failed];
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (pool, sid, state) = (pool.clone(), sid.clone(), states[(i + round) % states.len()]);
                tokio::spawn(async move { record_receipt(&pool, "twilio", &sid, state).await.unwrap() })
            })
            .collect();
        let mut changed = 0;
        for t in tasks {
            changed += usize::from(t.await.unwrap());
        }
        assert!((1..=4).contains(&changed), "each state can apply at most once: {changed}");
        assert_eq!(h.entrega(id).await.as_deref(), Some("read"), "round {round}");
    }
    // Direct calls report whether anything changed.
    let id = h.sent_request("twilio", "SMdirect").await;
    assert!(record_receipt(&h.pool, "twilio", "SMdirect", DeliveryState::Delivered).await.unwrap());
    assert!(!record_receipt(&h.pool, "twilio", "SMdirect", DeliveryState::Delivered).await.unwrap());
    assert!(!record_receipt(&h.pool, "twilio", "SMdirect", DeliveryState::Sent).await.unwrap());
    assert!(!record_receipt(&h.pool, "meta", "SMdirect", DeliveryState::Read).await.unwrap());
    assert!(!record_receipt(&h.pool, "twilio", "SMnone", DeliveryState::Read).await.unwrap());
    assert_eq!(h.entrega(id).await.as_deref(), Some("delivered"));
}

/// The running service serves the receipts webhook, configured with the team's names, and counts what it sees.
#[tokio::test]
async fn the_running_service_records_a_twilio_receipt_and_counts_rejections() {
    use cantina_notify::webhooks::signature::twilio_signature;
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, None, Some("0981 123456"), 12_000).await;
    c.execute(
        "INSERT INTO solicitudes_notificacion (id_cliente, destino, estado, tipo, clave_dedup, proveedor, id_proveedor)
         VALUES ($1, 'SMS', 'Enviado', 'recarga_exitosa', 'app-receipt', 'twilio', 'SM11111111111111111111111111111111')",
        &[&fam.id_cliente],
    )
    .await
    .unwrap();
    let rec = Recorder::new(cantina_notify::domain::ChannelKind::Email);
    let public = "https://notify.example.com";
    let settings = test_settings(&db, &[("TWILIO_AUTH_TOKEN", "tok-123"), ("CANTINA__WEBHOOKS__PUBLIC_URL", public)]);
    let app = TestApp::start(settings, &rec).await;
    let params = vec![
        ("MessageSid".to_string(), "SM11111111111111111111111111111111".to_string()),
        ("MessageStatus".to_string(), "delivered".to_string()),
    ];
    let signature = twilio_signature("tok-123", &format!("{public}/webhooks/twilio/status"), &params);
    let url = format!("http://{}/webhooks/twilio/status", app.addr);
    let http = reqwest::Client::new();
    let ok = http.post(&url).header("X-Twilio-Signature", &signature).form(&params).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let bad = http.post(&url).header("X-Twilio-Signature", "AAAA").form(&params).send().await.unwrap();
    assert_eq!(bad.status(), 401);
    let state: Option<String> = c
        .query_one("SELECT estado_entrega FROM solicitudes_notificacion WHERE clave_dedup = 'app-receipt'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(state.as_deref(), Some("delivered"));
    let metrics = app.get("/metrics").await.1;
    assert!(metrics.contains(r#"cantina_notify_receipts_total{provider="twilio",state="delivered"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"cantina_notify_webhook_rejected_total{provider="twilio"} 1"#), "{metrics}");
    app.stop().await;
}

/// One SendGrid event for the message whose `X-Message-Id` was `x_message_id`, as the event webhook posts it.
fn sg_event(event: &str, x_message_id: &str) -> Value {
    json!({
        "email": "ana@example.com",
        "timestamp": 1_750_263_773,
        "smtp-id": format!("<{x_message_id}@geopod-ismtpd-1>"),
        "event": event,
        "category": ["recarga_exitosa"],
        "sg_event_id": format!("{event}-{x_message_id}"),
        "sg_message_id": format!("{x_message_id}.filterdrecv-5bd4d7b9d5-8xkz2-1-6853A7A2-1.0"),
        "clave_dedup": format!("test:{x_message_id}"),
    })
}

fn with(mut event: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        event[k] = v.clone();
    }
    event
}

const SG_DELIVERED: &str = "Ua9z9lSTSaqYBWJe_Xfc-Q";
const SG_BOUNCED: &str = "R14554qsAGSkiKYYviJN34";

#[tokio::test]
async fn sendgrid_signed_batch_records_delivery_and_bounce() {
    let h = Hooks::start().await;
    let delivered = h.sent_request("sendgrid", SG_DELIVERED).await;
    let bounced = h.sent_request("sendgrid", SG_BOUNCED).await;
    let status = h
        .sendgrid_events(json!([
            sg_event("processed", SG_DELIVERED),
            sg_event("processed", SG_BOUNCED),
            with(sg_event("deferred", SG_BOUNCED), json!({"attempt": "1", "response": "421 try later"})),
            with(sg_event("delivered", SG_DELIVERED), json!({"response": "250 2.0.0 OK", "tls": 1})),
            with(
                sg_event("bounce", SG_BOUNCED),
                json!({"type": "bounce", "status": "5.1.1",
                       "reason": "550 5.1.1 The email account that you tried to reach does not exist",
                       "bounce_classification": "Invalid Address"})
            ),
            sg_event("delivered", "SGunknownmessage000000")
        ]))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        h.row(delivered).await,
        Row { estado: "Enviado".into(), entrega: Some("delivered".into()), ultimo_error: None }
    );
    assert_eq!(
        h.row(bounced).await,
        Row {
            estado: "Enviado".into(),
            entrega: Some("failed".into()),
            ultimo_error: Some(
                "entrega fallida (bounce): SendGrid 5.1.1: rebotado por el servidor del destinatario: \
                 550 5.1.1 The email account that you tried to reach does not exist"
                    .into()
            ),
        }
    );
    assert!(h.metric(r#"cantina_notify_receipts_total{provider="sendgrid",state="delivered"} 2"#).is_some());
    assert!(h.metric(r#"cantina_notify_receipts_total{provider="sendgrid",state="failed"} 1"#).is_some());
    assert_eq!(h.bajas().await, 0, "a bounce is not an opt-out");

    // Opens: a machine open (Apple Mail Privacy Protection) proves nothing; a real one moves to read.
    assert_eq!(
        h.sendgrid_events(json!([with(sg_event("open", SG_DELIVERED), json!({"sg_machine_open": true}))])).await,
        200
    );
    assert_eq!(h.entrega(delivered).await.as_deref(), Some("delivered"));
    assert_eq!(
        h.sendgrid_events(json!([with(sg_event("open", SG_DELIVERED), json!({"sg_machine_open": false}))])).await,
        200
    );
    assert_eq!(h.entrega(delivered).await.as_deref(), Some("read"));
    // A dropped event after the bounce adds nothing (the failure is recorded once).
    assert_eq!(
        h.sendgrid_events(json!([with(sg_event("dropped", SG_BOUNCED), json!({"reason": "Bounced Address"}))])).await,
        200
    );
    assert_eq!(h.row(bounced).await.ultimo_error.unwrap().matches("entrega fallida").count(), 1);
}

#[tokio::test]
async fn sendgrid_bad_signature_is_401_and_counted() {
    let h = Hooks::start().await;
    let id = h.sent_request("sendgrid", SG_DELIVERED).await;
    let body = format!("{}\r\n", json!([sg_event("delivered", SG_DELIVERED)])).into_bytes();
    let now = unix_now().to_string();
    let good = sendgrid_sign(&h.sendgrid, &now, &body);

    assert_eq!(h.sendgrid_raw(&body, Some(&now), None).await, 401, "no signature");
    assert_eq!(h.sendgrid_raw(&body, None, Some(&good)).await, 401, "no timestamp");
    assert_eq!(h.sendgrid_raw(&body, Some(&now), Some("bm90IGl0")).await, 401, "garbage");
    let other_key = sendgrid_sign(&new_sendgrid_key(), &now, &body);
    assert_eq!(h.sendgrid_raw(&body, Some(&now), Some(&other_key)).await, 401, "another account's key");
    let tampered = String::from_utf8(body.clone()).unwrap().replace("delivered", "open").into_bytes();
    assert_eq!(h.sendgrid_raw(&tampered, Some(&now), Some(&good)).await, 401, "tampered body");
    let later = (unix_now() + 1).to_string();
    assert_eq!(h.sendgrid_raw(&body, Some(&later), Some(&good)).await, 401, "timestamp changed");
    // Genuinely signed, but two days ago: older than SendGrid's 24 hours of retries, so a replay.
    let old = (unix_now() - 2 * 86_400).to_string();
    let stale = sendgrid_sign(&h.sendgrid, &old, &body);
    assert_eq!(h.sendgrid_raw(&body, Some(&old), Some(&stale)).await, 401, "stale");

    assert_eq!(h.row(id).await, Row { estado: "Enviado".into(), entrega: None, ultimo_error: None });
    assert!(!h.touched(id).await);
    assert_eq!(
        h.metric("cantina_notify_webhook_rejected_total").as_deref(),
        Some(r#"cantina_notify_webhook_rejected_total{provider="sendgrid"} 7"#)
    );

    // A retry signed an hour ago is still SendGrid's; and the genuine request goes through.
    let hour_ago = (unix_now() - 3600).to_string();
    let retry = sendgrid_sign(&h.sendgrid, &hour_ago, &body);
    assert_eq!(h.sendgrid_raw(&body, Some(&hour_ago), Some(&retry)).await, 200, "a retry");
    assert_eq!(h.entrega(id).await.as_deref(), Some("delivered"));
    assert_eq!(h.sendgrid_raw(&body, Some(&now), Some(&good)).await, 200, "the genuine one");
    // Signed correctly but not JSON: nothing to apply.
    let junk = b"not json".to_vec();
    assert_eq!(h.sendgrid_raw(&junk, Some(&now), Some(&sendgrid_sign(&h.sendgrid, &now, &junk))).await, 400);
}

#[tokio::test]
async fn sendgrid_spamreport_and_unsubscribe_record_email_opt_outs() {
    let h = Hooks::start().await;
    let id = h.sent_request_to("sendgrid", SG_DELIVERED, "Email", "Ana@Example.com").await;
    let status = h
        .sendgrid_events(json!([
            with(sg_event("spamreport", SG_DELIVERED), json!({"email": "Ana@Example.com"})),
            {"email": "luis@example.com", "timestamp": 1_750_263_773, "event": "unsubscribe",
             "sg_event_id": "u1", "sg_message_id": "Zz9z9lSTSaqYBWJe_Xfc-Q.filterdrecv-1"},
        ]))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        h.baja("Email", "ana@example.com").await,
        Some(Baja { motivo: "reportó el correo como spam".into(), proveedor: Some("sendgrid".into()), alta: false })
    );
    assert_eq!(
        h.baja("Email", "luis@example.com").await,
        Some(Baja { motivo: "se dio de baja desde el correo".into(), proveedor: Some("sendgrid".into()), alta: false })
    );
    assert_eq!(h.bajas().await, 2);
    assert_eq!(h.entrega(id).await.as_deref(), Some("delivered"), "a spam report means the email arrived");
}

#[tokio::test]
async fn twilio_21610_status_records_an_opt_out() {
    let h = Hooks::start().await;
    let id = h.sent_request("twilio", SID).await;
    // Another message failing for another reason records nothing.
    let other = "SM22222222222222222222222222222222";
    h.sent_request_to("twilio", other, "SMS", "+595982654321").await;
    assert_eq!(h.twilio(&twilio_params(other, "undelivered", Some("30003"))).await, 200);
    assert_eq!(h.bajas().await, 0);

    assert_eq!(h.twilio(&twilio_params(SID, "failed", Some("21610"))).await, 200);
    let row = h.row(id).await;
    assert_eq!(row.entrega.as_deref(), Some("failed"));
    assert_eq!(
        row.ultimo_error.as_deref(),
        Some("entrega fallida (failed): Twilio 21610: el destinatario respondió STOP")
    );
    assert_eq!(
        h.baja("SMS", "+595981123456").await,
        Some(Baja { motivo: "respondió STOP".into(), proveedor: Some("twilio".into()), alta: false })
    );
    assert_eq!(h.baja("WhatsApp", "+595981123456").await, None, "the opt-out is for the channel that was used");
    // A 21610 for a message we do not know is acknowledged and records nothing.
    assert_eq!(h.twilio(&twilio_params("SMffffffffffffffffffffffffffffffff", "failed", Some("21610"))).await, 200);
    assert_eq!(h.bajas().await, 1);
}

#[tokio::test]
async fn twilio_inbound_stop_then_start() {
    let h = Hooks::start().await;
    // Each message its own MessageSid, as Twilio sends them (a repeated id changes nothing).
    let msg = |body: &'static str, sid: &'static str| {
        vec![
            ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
            ("ApiVersion", "2010-04-01"),
            ("Body", body),
            ("From", "+595981123456"),
            ("MessageSid", sid),
            ("NumMedia", "0"),
            ("To", "+15005550006"),
        ]
    };
    let (status, ctype, body) = h.twilio_inbound(&msg("STOP", "SM33333333333333333333333333333331")).await;
    assert_eq!((status, body.as_str()), (200, r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#));
    assert!(ctype.starts_with("text/xml"), "{ctype}");
    assert_eq!(
        h.baja("SMS", "+595981123456").await,
        Some(Baja { motivo: "respondió STOP".into(), proveedor: Some("twilio".into()), alta: false })
    );

    // An ordinary message changes nothing, and is still answered with empty TwiML.
    assert_eq!(h.twilio_inbound(&msg("Gracias!", "SM33333333333333333333333333333332")).await.0, 200);
    assert_eq!(h.baja("SMS", "+595981123456").await.map(|b| b.alta), Some(false));

    assert_eq!(h.twilio_inbound(&msg("START", "SM33333333333333333333333333333333")).await.0, 200);
    assert_eq!(h.baja("SMS", "+595981123456").await.map(|b| b.alta), Some(true), "fecha_alta set");

    // WhatsApp through Twilio, classified by Advanced Opt-Out: OptOutType wins over the body.
    let wa = [("From", "whatsapp:+595982654321"), ("Body", "ya no"), ("OptOutType", "STOP")];
    assert_eq!(h.twilio_inbound(&wa).await.0, 200);
    assert_eq!(h.baja("WhatsApp", "+595982654321").await.map(|b| b.alta), Some(false));
    assert_eq!(h.baja("SMS", "+595982654321").await, None);

    // Unsigned: refused, nothing recorded.
    let path = "/webhooks/twilio/inbound";
    let forged = [("From", "+595983000111"), ("Body", "STOP")];
    assert_eq!(h.twilio_raw(path, &forged, Some("bm90IGl0")).await, 401);
    assert_eq!(h.twilio_raw(path, &forged, None).await, 401);
    assert_eq!(h.baja("SMS", "+595983000111").await, None);
    assert!(h.metric(r#"cantina_notify_webhook_rejected_total{provider="twilio"} 2"#).is_some());
}

#[tokio::test]
async fn meta_inbound_baja_records_an_opt_out() {
    let h = Hooks::start().await;
    let id = h.sent_request("meta", "wamid.OUT").await;
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": "595981123456"}],
            "messages": [{"from": "595981123456", "id": "wamid.IN1", "timestamp": "1750263800",
                          "type": "text", "text": {"body": "BAJA"}}],
            "statuses": [meta_status("wamid.OUT", "read")]
        }}]}]
    });
    assert_eq!(h.meta(&body).await, 200);
    assert_eq!(
        h.baja("WhatsApp", "+595981123456").await,
        Some(Baja { motivo: "respondió BAJA".into(), proveedor: Some("meta".into()), alta: false })
    );
    assert_eq!(h.entrega(id).await.as_deref(), Some("read"), "statuses in the same batch still apply");

    // The template's quick-reply button "Alta" opts back in.
    let alta = json!({"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": {
        "messages": [{"from": "595981123456", "id": "wamid.IN2", "type": "button",
                      "button": {"text": "Alta", "payload": "ALTA"}}]
    }}]}]});
    assert_eq!(h.meta(&alta).await, 200);
    assert_eq!(h.baja("WhatsApp", "+595981123456").await.map(|b| b.alta), Some(true));
}

// Issue 15, item 4: an opt-out reversed by an old message. Opt-outs and opt-ins follow the provider's own timestamps
// (the latest wins, whatever the arrival order); a repeated message id changes nothing; without a provider timestamp
// (Twilio's incoming-message webhook) arrival order decides; an opt-out wins a tie.

const ANA: &str = "+595981123456";
const LUIS: &str = "+595982654321";

/// One Meta webhook body carrying one inbound text message from `from` (a wa_id: the number without `+`).
fn meta_text(from: &str, id: &str, timestamp: i64, body: &str) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": from}],
            "messages": [{"from": from, "id": id, "timestamp": timestamp.to_string(),
                          "type": "text", "text": {"body": body}}]
        }}]}]
    })
}

/// Twilio's incoming-message webhook for an SMS from `from` (no timestamp: Twilio sends none).
fn twilio_sms<'a>(from: &'a str, sid: &'a str, body: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("ApiVersion", "2010-04-01"),
        ("Body", body),
        ("From", from),
        ("MessageSid", sid),
        ("NumMedia", "0"),
        ("SmsMessageSid", sid),
        ("SmsSid", sid),
        ("To", "+15005550006"),
    ]
}

impl Hooks {
    /// Whether the address is opted out on the channel now (what the dispatcher checks: a row without `fecha_alta`).
    async fn opted_out(&self, destino: &str, destinatario: &str) -> bool {
        // Its own query: a row left by an opt-in alone (migration 0017) has no `motivo`.
        self.c
            .query_opt(
                "SELECT fecha_alta IS NULL FROM cantina_notify_bajas WHERE destino = $1 AND destinatario = $2",
                &[&destino, &destinatario],
            )
            .await
            .unwrap()
            .is_some_and(|r| r.get(0))
    }

    /// The row's `motivo` and `fecha_baja`, to see whether a message re-recorded the opt-out.
    async fn baja_detail(&self, destino: &str, destinatario: &str) -> (Option<String>, Option<std::time::SystemTime>) {
        let r = self
            .c
            .query_one(
                "SELECT motivo, fecha_baja FROM cantina_notify_bajas WHERE destino = $1 AND destinatario = $2",
                &[&destino, &destinatario],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    }

    async fn meta_says(&self, from: &str, id: &str, timestamp: i64, body: &str) {
        assert_eq!(self.meta(&meta_text(from, id, timestamp, body)).await, 200, "{id} {body}");
    }

    async fn twilio_says(&self, from: &str, sid: &str, body: &str) {
        assert_eq!(self.twilio_inbound(&twilio_sms(from, sid, body)).await.0, 200, "{sid} {body}");
    }
}

#[tokio::test]
async fn meta_late_alta_does_not_undo_a_newer_baja() {
    let h = Hooks::start().await;
    let t = unix_now() - 600;
    h.meta_says("595981123456", "wamid.BAJA200", t + 200, "BAJA").await;
    assert!(h.opted_out("WhatsApp", ANA).await);
    // The ALTA was sent before the BAJA and arrives after it (delivered late, or replayed): it is older.
    h.meta_says("595981123456", "wamid.ALTA100", t + 100, "ALTA").await;
    assert!(h.opted_out("WhatsApp", ANA).await, "an older ALTA must not sign the parent back in");
    // A newer ALTA does.
    h.meta_says("595981123456", "wamid.ALTA300", t + 300, "ALTA").await;
    assert!(!h.opted_out("WhatsApp", ANA).await);
}

#[tokio::test]
async fn meta_late_baja_does_not_undo_a_newer_alta() {
    let h = Hooks::start().await;
    let t = unix_now() - 600;
    // Ana had opted out, then opted back in; her earlier BAJA arrives last.
    h.meta_says("595981123456", "wamid.A100", t + 100, "BAJA").await;
    h.meta_says("595981123456", "wamid.A300", t + 300, "ALTA").await;
    h.meta_says("595981123456", "wamid.A200", t + 200, "BAJA").await;
    assert!(!h.opted_out("WhatsApp", ANA).await, "an older BAJA must not undo a newer ALTA");
    // Luis never opted out before: his ALTA comes first, the older BAJA after it.
    h.meta_says("595982654321", "wamid.L300", t + 300, "ALTA").await;
    h.meta_says("595982654321", "wamid.L200", t + 200, "BAJA").await;
    assert!(!h.opted_out("WhatsApp", LUIS).await, "an ALTA with no opt-out before it still counts");
    // Its row only says so: no reason, no opt-out date; the time is the ALTA's, by Meta's clock.
    let r =
        h.c.query_one(
            "SELECT motivo, fecha_baja IS NULL, extract(epoch FROM cambiado_en)::bigint FROM cantina_notify_bajas
             WHERE destino = 'WhatsApp' AND destinatario = $1",
            &[&LUIS],
        )
        .await
        .unwrap();
    assert_eq!((r.get::<_, Option<String>>(0), r.get::<_, bool>(1), r.get::<_, i64>(2)), (None, true, t + 300));
}

#[tokio::test]
async fn twilio_replayed_start_changes_nothing() {
    let h = Hooks::start().await;
    // No timestamp, so only the message id can tell a replay. START (B) and STOP (C) after it; a signed copy of B
    // posted again must not sign Ana back in.
    h.twilio_says(ANA, "SM000000000000000000000000000000A1", "STOP").await;
    h.twilio_says(ANA, "SM000000000000000000000000000000B2", "START").await;
    assert!(!h.opted_out("SMS", ANA).await);
    h.twilio_says(ANA, "SM000000000000000000000000000000C3", "STOP").await;
    assert!(h.opted_out("SMS", ANA).await);
    h.twilio_says(ANA, "SM000000000000000000000000000000B2", "START").await;
    assert!(h.opted_out("SMS", ANA).await, "a replayed START must not sign the parent back in");
}

#[tokio::test]
async fn meta_replayed_message_changes_nothing() {
    let h = Hooks::start().await;
    // BAJA (A) and STOP (B) in the same second; B, an opt-out, wins the tie and is recorded. A replay of A would win
    // the tie too, but it was applied already: nothing is recorded again.
    let t = unix_now() - 60;
    h.meta_says("595982654321", "wamid.REPLAY_A", t, "BAJA").await;
    h.meta_says("595982654321", "wamid.REPLAY_B", t, "STOP").await;
    let before = h.baja_detail("WhatsApp", LUIS).await;
    assert_eq!(before.0.as_deref(), Some("respondió STOP"));
    h.meta_says("595982654321", "wamid.REPLAY_A", t, "BAJA").await;
    assert_eq!(h.baja_detail("WhatsApp", LUIS).await, before, "the replay must not re-record the opt-out");
}

#[tokio::test]
async fn sendgrid_replayed_event_changes_nothing() {
    let h = Hooks::start().await;
    // A replayed event (same sg_event_id), in a newly signed batch, records nothing again.
    let at = unix_now() - 30;
    let event = |kind: &str, id: &str| {
        json!({"email": "ana@example.com", "timestamp": at, "event": kind, "sg_event_id": id,
               "sg_message_id": "Zz9z9lSTSaqYBWJe_Xfc-Q.filterdrecv-1"})
    };
    let unsubscribe = event("unsubscribe", "ev-unsub-1");
    assert_eq!(h.sendgrid_events(json!([unsubscribe])).await, 200);
    assert_eq!(h.sendgrid_events(json!([event("spamreport", "ev-spam-2")])).await, 200);
    let before = h.baja_detail("Email", "ana@example.com").await;
    assert_eq!(before.0.as_deref(), Some("reportó el correo como spam"));
    assert_eq!(h.sendgrid_events(json!([unsubscribe])).await, 200);
    assert_eq!(h.baja_detail("Email", "ana@example.com").await, before, "the replayed event must change nothing");
    // Ordered by SendGrid's event timestamp, like Meta's messages.
    let changed: i64 =
        h.c.query_one(
            "SELECT extract(epoch FROM cambiado_en)::bigint FROM cantina_notify_bajas WHERE destino = 'Email'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(changed, at);
}

#[tokio::test]
async fn twilio_without_timestamps_follows_arrival_order() {
    let h = Hooks::start().await;
    h.twilio_says(ANA, "SM0000000000000000000000000000AA01", "STOP").await;
    h.twilio_says(ANA, "SM0000000000000000000000000000AA02", "START").await;
    assert!(!h.opted_out("SMS", ANA).await, "STOP then START: opted in");
    h.twilio_says(LUIS, "SM0000000000000000000000000000BB01", "START").await;
    h.twilio_says(LUIS, "SM0000000000000000000000000000BB02", "STOP").await;
    assert!(h.opted_out("SMS", LUIS).await, "START then STOP: opted out");
}

#[tokio::test]
async fn an_opt_out_wins_a_tie() {
    let h = Hooks::start().await;
    let t = unix_now() - 60;
    h.meta_says("595981123456", "wamid.TIE_OUT1", t, "BAJA").await;
    h.meta_says("595981123456", "wamid.TIE_IN1", t, "ALTA").await;
    assert!(h.opted_out("WhatsApp", ANA).await, "BAJA then ALTA in the same second: opted out");
    h.meta_says("595982654321", "wamid.TIE_IN2", t, "ALTA").await;
    h.meta_says("595982654321", "wamid.TIE_OUT2", t, "BAJA").await;
    assert!(h.opted_out("WhatsApp", LUIS).await, "ALTA then BAJA in the same second: opted out");
}

#[tokio::test]
async fn concurrent_opt_changes_end_with_the_latest() {
    let h = Hooks::start().await;
    let t = unix_now() - 600;
    // Twenty messages, alternately BAJA and ALTA, posted all at once; the newest (t + 19, an ALTA) must win.
    let hooks = &h;
    let posts = (0..20).map(|i| {
        let body = meta_text("595981123456", &format!("wamid.C{i}"), t + i, if i % 2 == 0 { "BAJA" } else { "ALTA" });
        async move { hooks.meta(&body).await }
    });
    let statuses = futures_util::future::join_all(posts.rev()).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(!h.opted_out("WhatsApp", ANA).await);
}

/// A provider timestamp far ahead of our clock (a provider's clock, or a message built to outrank every later one)
/// is not believed: the change counts as of its arrival, so the parent's real ALTA afterwards still wins.
#[tokio::test]
async fn a_change_stamped_in_the_future_does_not_outrank_later_ones() {
    let h = Hooks::start().await;
    let five_years = 5 * 365 * 24 * 3600;
    h.meta_says("595981123456", "wamid.FUTURE_OUT", unix_now() + five_years, "BAJA").await;
    assert!(h.opted_out("WhatsApp", ANA).await, "the BAJA itself applies");
    h.meta_says("595981123456", "wamid.REAL_IN", unix_now() + 1, "ALTA").await;
    assert!(!h.opted_out("WhatsApp", ANA).await, "the real ALTA after it wins");
}
