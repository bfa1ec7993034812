//! Delivery-receipt webhooks over the real database: the webhook router served on a real port, called with real
//! HTTP requests signed as Twilio and Meta sign them.

use std::net::SocketAddr;
use std::time::Duration;

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
        let state = configure(WebhookState {
            pool: pool.clone(),
            twilio_auth_token: Some(Secret::new(TWILIO_TOKEN)),
            public_base_url: Some(PUBLIC_URL.to_string()),
            meta_app_secret: Some(Secret::new(APP_SECRET)),
            meta_verify_token: Some(Secret::new(VERIFY_TOKEN)),
            metrics: Metrics::new(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Hooks { db, c, pool, addr, http: reqwest::Client::new(), id_cliente: fam.id_cliente }
    }

    /// A request the dispatcher has sent: `Enviado`, with the provider's id and no delivery state yet.
    async fn sent_request(&self, proveedor: &str, id_proveedor: &str) -> i64 {
        let destino = if proveedor == "meta" { "WhatsApp" } else { "SMS" };
        self.c
            .query_one(
                "INSERT INTO solicitudes_notificacion
                     (id_cliente, destino, estado, tipo, clave_dedup, destinatario, intentos, fecha_envio,
                      proveedor, id_proveedor, actualizado_en)
                 VALUES ($1, $2, 'Enviado', 'recarga_exitosa', $3, '+595981123456', 1, now(), $4, $5,
                         now() - interval '1 hour')
                 RETURNING id_solicitud",
                &[&self.id_cliente, &destino, &format!("test:{id_proveedor}"), &proveedor, &id_proveedor],
            )
            .await
            .unwrap()
            .get(0)
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
