//! Channel fallback (`CANTINA__RULES__<TYPE>__FALLBACK`) and opt-outs, over the real database with channel doubles.

use std::sync::Arc;
use std::time::Duration;

use cantina_notify::channels::{Channel, Channels, SendError};
use cantina_notify::domain::ChannelKind;
use cantina_notify::webhooks::{DeliveryState, record_receipt};

use crate::helpers::*;

const FALLBACK: (&str, &str) = ("CANTINA__RULES__RECARGA_EXITOSA__FALLBACK", "whatsapp,sms,email");
const SMS_ON: (&str, &str) = ("SMS_PROVIDER", "console");
const WHATSAPP_ON: (&str, &str) = ("WHATSAPP_PROVIDER", "console");

struct Doubles {
    whatsapp: Arc<Recorder>,
    sms: Arc<Recorder>,
    email: Arc<Recorder>,
}

impl Doubles {
    fn new(whatsapp_provider: &'static str) -> Doubles {
        Doubles {
            whatsapp: Recorder::with_provider(ChannelKind::WhatsApp, whatsapp_provider),
            sms: Recorder::new(ChannelKind::Sms),
            email: Recorder::new(ChannelKind::Email),
        }
    }

    fn channels(&self) -> Channels {
        Channels::new()
            .with(self.whatsapp.clone() as Arc<dyn Channel>)
            .with(self.sms.clone() as Arc<dyn Channel>)
            .with(self.email.clone() as Arc<dyn Channel>)
    }
}

fn undeliverable() -> SendError {
    SendError::Permanent { reason: "Meta 131026: el número no puede recibir mensajes de WhatsApp".into() }
}

/// (destino, estado, id_solicitud_origen is the first row's id) of every request, in creation order.
async fn chain(c: &tokio_postgres::Client) -> Vec<(String, String, bool)> {
    c.query(
        "SELECT destino, estado, id_solicitud_origen = (SELECT min(id_solicitud) FROM solicitudes_notificacion)
         FROM solicitudes_notificacion ORDER BY id_solicitud",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get::<_, Option<bool>>(2).unwrap_or(false)))
    .collect()
}

fn row(destino: &str, estado: &str, linked: bool) -> (String, String, bool) {
    (destino.to_string(), estado.to_string(), linked)
}

#[tokio::test]
async fn whatsapp_undeliverable_falls_back_to_sms_and_stops_there() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), Some("0981 123456"), 12_000).await;
    let d = Doubles::new("recorder");
    d.whatsapp.always_fail(undeliverable());
    let app = TestApp::start_with(test_settings(&db, &[FALLBACK, SMS_ON, WHATSAPP_ON]), Some(d.channels())).await;
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;

    assert_eq!(chain(&c).await, [row("WhatsApp", "Error", false), row("SMS", "Enviado", true)]);
    let r = c
        .query_one(
            "SELECT clave_dedup, canales_respaldo, destinatario FROM solicitudes_notificacion WHERE destino = 'SMS'",
            &[],
        )
        .await
        .unwrap();
    assert!(r.get::<_, String>(0).ends_with(":sms"), "{}", r.get::<_, String>(0));
    assert_eq!(r.get::<_, Option<String>>(1).as_deref(), Some("email"));
    assert_eq!(r.get::<_, Option<String>>(2).as_deref(), Some("+595981123456"));
    // SMS went out and its provider reports no deliveries: the chain ends, email is never tried.
    assert_eq!((d.whatsapp.sent_count(), d.sms.sent_count(), d.email.sent_count()), (0, 1, 0));
    let first = c
        .query_one(
            "SELECT respaldo_creado_en IS NOT NULL FROM solicitudes_notificacion WHERE destino = 'WhatsApp'",
            &[],
        )
        .await
        .unwrap();
    assert!(first.get::<_, bool>(0));
    let metrics = app.get("/metrics").await.1;
    assert!(
        metrics.contains(
            r#"cantina_notify_fallbacks_total{type="recarga_exitosa",from="whatsapp",to="sms",reason="error"} 1"#
        ),
        "{metrics}"
    );
    app.stop().await;
    assert_eq!(count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE destino = 'Email'").await, 0);
}

#[tokio::test]
async fn every_channel_failing_walks_the_whole_chain_once() {
    let db = TestDb::new().await;
    let c = db.client().await;
    // A landline: neither WhatsApp nor SMS can be addressed; email is the last resort.
    let fam = seed_family(&c, Some("ana@example.com"), Some("(021) 555 123"), 12_000).await;
    let d = Doubles::new("recorder");
    let app = TestApp::start_with(test_settings(&db, &[FALLBACK, SMS_ON, WHATSAPP_ON]), Some(d.channels())).await;
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;
    assert_eq!(
        chain(&c).await,
        [row("WhatsApp", "Error", false), row("SMS", "Error", true), row("Email", "Enviado", true)]
    );
    let reasons: Vec<String> = c
        .query("SELECT ultimo_error FROM solicitudes_notificacion WHERE estado = 'Error'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(reasons.iter().all(|r| r.contains("celular")), "{reasons:?}");
    assert_eq!(d.email.sent_count(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_channel_the_parent_turned_off_is_omitted_and_the_next_one_used() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), Some("0981 123456"), 12_000).await;
    c.execute(
        "WITH u AS (INSERT INTO usuario_portal (id_cliente, email) VALUES ($1, 'ana.portal@example.com') RETURNING id_usuario_portal)
         INSERT INTO preferencia_notificacion (id_usuario_portal, tipo_notificacion, whatsapp_activo)
         SELECT id_usuario_portal, 'recarga_exitosa', false FROM u",
        &[&fam.id_cliente],
    )
    .await
    .unwrap();
    let d = Doubles::new("recorder");
    let app = TestApp::start_with(test_settings(&db, &[FALLBACK, SMS_ON, WHATSAPP_ON]), Some(d.channels())).await;
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;
    assert_eq!(chain(&c).await, [row("WhatsApp", "Omitido", false), row("SMS", "Enviado", true)]);
    assert_eq!((d.whatsapp.sent_count(), d.sms.sent_count()), (0, 1));
    app.stop().await;
}

#[tokio::test]
async fn a_failed_receipt_moves_the_chain_on_and_a_delivered_one_ends_it() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), Some("0981 123456"), 12_000).await;
    let otra = seed_family(&c, Some("otra@example.com"), Some("0982 654321"), 12_000).await;
    // The WhatsApp double stands for Meta with the receipt webhook configured: sent links wait for a receipt.
    let d = Doubles::new("meta");
    let settings = test_settings(&db, &[FALLBACK, SMS_ON, WHATSAPP_ON, ("WHATSAPP_APP_SECRET", "app-secret")]);
    let app = TestApp::start_with(settings, Some(d.channels())).await;
    let pool = cantina_notify::db::pool(&db.url, 2, Duration::from_secs(5)).unwrap();
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    recharge(&c, &otra.nro_tarjeta, 10_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 2, SHORT).await;
    // Both wait about 30 minutes (the default) for their receipt.
    let waits: Vec<f64> = c
        .query("SELECT extract(epoch FROM espera_recibo_hasta - now())::float8 FROM solicitudes_notificacion", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(waits.iter().all(|w| (1700.0..=1801.0).contains(w)), "{waits:?}");
    assert_eq!(count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE destino = 'SMS'").await, 0);

    let id_of = |id_cliente: i32| {
        let c = &c;
        async move {
            c.query_one(
                "SELECT id_proveedor FROM solicitudes_notificacion WHERE id_cliente = $1 AND destino = 'WhatsApp'",
                &[&id_cliente],
            )
            .await
            .unwrap()
            .get::<_, String>(0)
        }
    };
    assert!(record_receipt(&pool, "meta", &id_of(fam.id_cliente).await, DeliveryState::Failed).await.unwrap());
    assert!(record_receipt(&pool, "meta", &id_of(otra.id_cliente).await, DeliveryState::Delivered).await.unwrap());
    wait_count(
        &c,
        "SELECT count(*) FROM solicitudes_notificacion WHERE destino = 'SMS' AND estado = 'Enviado'",
        1,
        SHORT,
    )
    .await;
    let sms_for: i32 =
        c.query_one("SELECT id_cliente FROM solicitudes_notificacion WHERE destino = 'SMS'", &[]).await.unwrap().get(0);
    assert_eq!(sms_for, fam.id_cliente);
    // The delivered one leaves the wait; once it has, no later pass can move it on.
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE espera_recibo_hasta IS NOT NULL", 0, SHORT)
        .await;
    assert_eq!(count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE destino = 'SMS'").await, 1);
    let metrics = app.get("/metrics").await.1;
    assert!(metrics.contains(r#"from="whatsapp",to="sms",reason="failed_receipt"} 1"#), "{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn no_receipt_within_the_timeout_moves_the_chain_on() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), Some("0981 123456"), 12_000).await;
    let d = Doubles::new("meta");
    let settings = test_settings(
        &db,
        &[
            FALLBACK,
            SMS_ON,
            WHATSAPP_ON,
            ("WHATSAPP_APP_SECRET", "app-secret"),
            ("CANTINA__FALLBACK__RECEIPT_TIMEOUT_MINUTES", "5"),
        ],
    );
    let app = TestApp::start_with(settings, Some(d.channels())).await;
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;
    let wait: f64 = c
        .query_one("SELECT extract(epoch FROM espera_recibo_hasta - now())::float8 FROM solicitudes_notificacion", &[])
        .await
        .unwrap()
        .get(0);
    assert!((280.0..=301.0).contains(&wait), "{wait}");
    // Only `sent` came back (handed to WhatsApp, never reached the phone), and the five minutes pass.
    let pool = cantina_notify::db::pool(&db.url, 2, Duration::from_secs(5)).unwrap();
    let wamid: String = c.query_one("SELECT id_proveedor FROM solicitudes_notificacion", &[]).await.unwrap().get(0);
    assert!(record_receipt(&pool, "meta", &wamid, DeliveryState::Sent).await.unwrap());
    c.execute("UPDATE solicitudes_notificacion SET espera_recibo_hasta = now() - interval '1 second'", &[])
        .await
        .unwrap();
    wait_count(
        &c,
        "SELECT count(*) FROM solicitudes_notificacion WHERE destino = 'SMS' AND estado = 'Enviado'",
        1,
        SHORT,
    )
    .await;
    assert_eq!(chain(&c).await, [row("WhatsApp", "Enviado", false), row("SMS", "Enviado", true)]);
    app.stop().await;
}

#[tokio::test]
async fn a_stop_reply_omits_the_request_records_the_opt_out_and_later_notices_are_not_attempted() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), Some("0981 123456"), 12_000).await;
    let d = Doubles::new("recorder");
    d.sms.always_fail(SendError::OptedOut { reason: "Twilio 21610: Attempt to send to unsubscribed recipient".into() });
    let settings =
        test_settings(&db, &[("CANTINA__RULES__RECARGA_EXITOSA__FALLBACK", "sms,email"), SMS_ON, WHATSAPP_ON]);
    let app = TestApp::start_with(settings, Some(d.channels())).await;
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;
    assert_eq!(chain(&c).await, [row("SMS", "Omitido", false), row("Email", "Enviado", true)]);
    let r = c
        .query_one("SELECT destino, destinatario, motivo, fecha_alta IS NULL FROM cantina_notify_bajas", &[])
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "SMS");
    assert_eq!(r.get::<_, String>(1), "+595981123456");
    assert!(r.get::<_, String>(2).contains("21610"));
    assert!(r.get::<_, bool>(3));
    assert_eq!(d.sms.attempts.lock().unwrap().len(), 1);

    // The next notice to the same number is recorded Omitido without calling the provider, and email takes over.
    recharge(&c, &fam.nro_tarjeta, 5_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 2, SHORT).await;
    assert_eq!(d.sms.attempts.lock().unwrap().len(), 1, "an opted-out number must not be attempted");
    let reason: String = c
        .query_one(
            "SELECT ultimo_error FROM solicitudes_notificacion WHERE destino = 'SMS' ORDER BY id_solicitud DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(reason.contains("pidió no recibir más mensajes por SMS"), "{reason}");
    let metrics = app.get("/metrics").await.1;
    assert!(metrics.contains(r#"channel="sms",provider="recorder",outcome="opted_out"} 1"#), "{metrics}");
    app.stop().await;
}
