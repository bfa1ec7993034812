//! Triggers → outbox → rules → requests → dispatch, end to end.

use cantina_notify::config::Settings;
use cantina_notify::domain::{ChannelKind, NotificationType};
use cantina_notify::events::drain::drain_batch;

use crate::helpers::*;

#[tokio::test]
async fn a_confirmed_recharge_sends_one_recarga_exitosa() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    let rec = Recorder::new(ChannelKind::Email);
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;

    let id_carga = recharge(&c, &fam.nro_tarjeta, 50_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;

    let r = c
        .query_one(
            "SELECT tipo, destino, destinatario, clave_dedup, id_cliente, nro_tarjeta, saldo_alerta, fecha_envio IS NOT NULL,
                    id_proveedor, proveedor, intentos, mensaje
             FROM solicitudes_notificacion",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "recarga_exitosa");
    assert_eq!(r.get::<_, String>(1), "Email");
    assert_eq!(r.get::<_, String>(2), "ana@example.com");
    assert_eq!(r.get::<_, String>(3), format!("recarga_exitosa:{id_carga}:email"));
    assert_eq!(r.get::<_, i32>(4), fam.id_cliente);
    assert_eq!(r.get::<_, String>(5), fam.nro_tarjeta);
    assert_eq!(r.get::<_, i64>(6), 62_000);
    assert!(r.get::<_, bool>(7));
    assert!(r.get::<_, String>(8).starts_with("rec-"));
    assert_eq!(r.get::<_, String>(9), "recorder");
    assert_eq!(r.get::<_, i32>(10), 1);
    assert_eq!(
        r.get::<_, String>(11),
        "Cantina Tita: recarga de Gs. 50.000 confirmada para Luis Benítez. Saldo actual: Gs. 62.000."
    );

    let sent = rec.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].subject, "Recarga exitosa de Gs. 50.000 - Luis Benítez");
    assert!(sent[0].html.contains("Gs. 62.000"));
    assert_eq!(sent[0].recipient.as_str(), "ana@example.com");
    // The card's balance rose through the app's own logic (the reference schema) and only crossed upwards:
    // the outbox holds the recharge event and nothing else.
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_eventos").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_balance_crossing_sends_one_saldo_bajo_and_stamps_the_card() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    let rec = Recorder::new(ChannelKind::Email);
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;

    consume(&c, &fam.nro_tarjeta, 5_000).await; // 7.000: above the threshold, no event
    consume(&c, &fam.nro_tarjeta, 3_000).await; // 4.000: crosses below Gs. 5.000
    wait_count(
        &c,
        "SELECT count(*) FROM solicitudes_notificacion WHERE tipo = 'saldo_bajo' AND estado = 'Enviado'",
        1,
        SHORT,
    )
    .await;
    consume(&c, &fam.nro_tarjeta, 1_000).await; // 3.000: already below, no second event
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_eventos").await, 1, "only the crossing writes an event");
    // The stamp is written right after the send is recorded (a separate statement, so a problem with the app's
    // table cannot undo a recorded send): wait for it rather than race it.
    let stamped = format!(
        "SELECT count(*) FROM tarjetas WHERE nro_tarjeta = '{}' AND ultima_notificacion_saldo IS NOT NULL",
        fam.nro_tarjeta
    );
    wait_count(&c, &stamped, 1, SHORT).await;
    let (saldo, clave): (i64, String) = {
        let r = c.query_one("SELECT saldo_alerta, clave_dedup FROM solicitudes_notificacion", &[]).await.unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(saldo, 4_000, "the balance the notice is about");
    assert!(clave.starts_with(&format!("saldo_bajo:{}:", fam.nro_tarjeta)), "{clave}");

    // Re-armed by a recharge, crossing again the same day: the per-day key keeps it to one notice.
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    consume(&c, &fam.nro_tarjeta, 10_000).await;
    wait_count(&c, "SELECT count(*) FROM cantina_notify_eventos WHERE procesado_en IS NOT NULL", 3, SHORT).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 2, SHORT).await;
    assert_eq!(count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE tipo = 'saldo_bajo'").await, 1);
    let resultado: String = c
        .query_one(
            "SELECT resultado FROM cantina_notify_eventos WHERE tipo = 'saldo_bajo' ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(resultado.contains("hoy"), "second crossing is recorded as already notified today: {resultado}");
    app.stop().await;
}

#[tokio::test]
async fn the_cards_own_threshold_overrides_the_default_and_config_reaches_the_trigger() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let own = seed_family(&c, Some("a@example.com"), None, 30_000).await;
    c.execute("UPDATE tarjetas SET saldo_alerta = 20000 WHERE nro_tarjeta = $1", &[&own.nro_tarjeta]).await.unwrap();
    let default = seed_family(&c, Some("b@example.com"), None, 30_000).await;
    let rec = Recorder::new(ChannelKind::Email);
    let app = TestApp::start(test_settings(&db, &[("CANTINA__RULES__SALDO_BAJO__UMBRAL", "8000")]), &rec).await;
    assert_eq!(count(&c, "SELECT umbral_saldo_bajo FROM cantina_notify_ajustes").await, 8_000);

    consume(&c, &own.nro_tarjeta, 15_000).await; // 15.000 < 20.000 (card's own)
    consume(&c, &default.nro_tarjeta, 15_000).await; // 15.000 ≥ 8.000: nothing
    consume(&c, &default.nro_tarjeta, 8_000).await; // 7.000 < 8.000 (configured default)
    wait_count(
        &c,
        "SELECT count(*) FROM solicitudes_notificacion WHERE tipo = 'saldo_bajo' AND estado = 'Enviado'",
        2,
        SHORT,
    )
    .await;
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_eventos").await, 2);
    app.stop().await;
}

#[tokio::test]
async fn a_blocked_card_sends_tarjeta_bloqueada() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    let rec = Recorder::new(ChannelKind::Email);
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;
    c.execute("UPDATE tarjetas SET estado = 'Bloqueada' WHERE nro_tarjeta = $1", &[&fam.nro_tarjeta]).await.unwrap();
    wait_count(
        &c,
        "SELECT count(*) FROM solicitudes_notificacion WHERE tipo = 'tarjeta_bloqueada' AND estado = 'Enviado'",
        1,
        SHORT,
    )
    .await;
    // Updating other columns of a blocked card fires nothing more.
    c.execute("UPDATE tarjetas SET fecha_vencimiento = '2030-01-01' WHERE nro_tarjeta = $1", &[&fam.nro_tarjeta])
        .await
        .unwrap();
    c.execute("UPDATE tarjetas SET estado = 'Bloqueada' WHERE nro_tarjeta = $1", &[&fam.nro_tarjeta]).await.unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_eventos").await, 1);
    assert!(rec.sent.lock().unwrap()[0].subject.contains("Tarjeta bloqueada"));
    app.stop().await;
}

#[tokio::test]
async fn the_same_event_twice_gives_one_request() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    let id_carga = recharge(&c, &fam.nro_tarjeta, 50_000).await;
    // The gateway flips it back and forth: a second confirmation event for the same recharge.
    c.execute("UPDATE cargas_saldo SET estado = 'PENDIENTE' WHERE id_carga = $1", &[&id_carga]).await.unwrap();
    c.execute("UPDATE cargas_saldo SET estado = 'CONFIRMADO' WHERE id_carga = $1", &[&id_carga]).await.unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_eventos").await, 2);

    let settings = test_settings(&db, &[]);
    let (rules, _) = settings.validate(true).unwrap();
    let pool = cantina_notify::db::pool(&db.url, 2, std::time::Duration::from_secs(5)).unwrap();
    let first = drain_batch(&pool, &rules, 100, None).await.unwrap();
    assert_eq!(first.events, 2);
    assert_eq!(first.created.len(), 1);
    // Redelivery: the events are handed out again (as after a crash before the commit was acknowledged).
    c.execute("UPDATE cantina_notify_eventos SET procesado_en = NULL", &[]).await.unwrap();
    let again = drain_batch(&pool, &rules, 100, None).await.unwrap();
    assert_eq!(again.events, 2);
    assert!(again.created.is_empty());
    assert_eq!(count(&c, "SELECT count(*) FROM solicitudes_notificacion").await, 1);
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_eventos WHERE procesado_en IS NULL").await, 0);
}

#[tokio::test]
async fn a_parent_without_email_gets_a_recorded_reason_and_others_still_go_out() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let none = seed_family(&c, None, None, 12_000).await;
    let bad = seed_family(&c, Some("sin correo"), None, 12_000).await;
    let good = seed_family(&c, Some("ok@example.com"), None, 12_000).await;
    let rec = Recorder::new(ChannelKind::Email);
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;
    for f in [&none, &bad, &good] {
        recharge(&c, &f.nro_tarjeta, 10_000).await;
    }
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Error'", 2, SHORT).await;
    let reason = |nro: String| {
        let c = &c;
        async move {
            c.query_one("SELECT ultimo_error FROM solicitudes_notificacion WHERE nro_tarjeta = $1", &[&nro])
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    };
    let r = reason(none.nro_tarjeta.clone()).await;
    assert!(r.contains("sin correo electrónico registrado") && r.contains(&none.id_cliente.to_string()), "{r}");
    let r = reason(bad.nro_tarjeta.clone()).await;
    assert!(r.contains("correo electrónico mal formado"), "{r}");
    assert_eq!(rec.sent_count(), 1);
    app.stop().await;
}

#[tokio::test]
async fn sms_to_a_landline_is_recorded_and_a_mobile_is_sent_in_e164() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let landline = seed_family(&c, None, Some("021 555 123"), 12_000).await;
    let mobile = seed_family(&c, None, Some("0981 123-456"), 12_000).await;
    let rec = Recorder::new(ChannelKind::Sms);
    let settings =
        test_settings(&db, &[("SMS_PROVIDER", "console"), ("CANTINA__RULES__RECARGA_EXITOSA__CHANNELS", "sms")]);
    let app = TestApp::start(settings, &rec).await;
    recharge(&c, &landline.nro_tarjeta, 10_000).await;
    recharge(&c, &mobile.nro_tarjeta, 10_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado IN ('Enviado', 'Error')", 2, SHORT)
        .await;
    let r: String = c
        .query_one(
            "SELECT ultimo_error FROM solicitudes_notificacion WHERE nro_tarjeta = $1 AND estado = 'Error'",
            &[&landline.nro_tarjeta],
        )
        .await
        .unwrap()
        .get(0);
    assert!(r.contains("no es un número de celular") && !r.contains("555 123"), "{r}");
    let sent = rec.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].recipient.as_str(), "+595981123456");
    assert_eq!(sent[0].channel, ChannelKind::Sms);
    app.stop().await;
}

#[tokio::test]
async fn one_request_per_configured_channel() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), Some("0981123456"), 12_000).await;
    let email = Recorder::new(ChannelKind::Email);
    let sms = Recorder::new(ChannelKind::Sms);
    let settings =
        test_settings(&db, &[("SMS_PROVIDER", "console"), ("CANTINA__RULES__RECARGA_EXITOSA__CHANNELS", "email,sms")]);
    let channels = cantina_notify::channels::Channels::new().with(email.clone()).with(sms.clone());
    let app = TestApp::start_with(settings, Some(channels)).await;
    let id = recharge(&c, &fam.nro_tarjeta, 20_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 2, SHORT).await;
    let keys: Vec<String> = c
        .query("SELECT clave_dedup FROM solicitudes_notificacion ORDER BY clave_dedup", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(keys, [format!("recarga_exitosa:{id}:email"), format!("recarga_exitosa:{id}:sms")]);
    assert_eq!((email.sent_count(), sms.sent_count()), (1, 1));
    app.stop().await;
}

/// `clientes.apellidos` and `hijos.nombre` are NOT NULL in the Cantina's schema; a database where they are not (an
/// older app version, a hand-made row) must not stop the notices: the names are left empty, the recharge and the
/// POS row go out.
#[tokio::test]
async fn a_parent_row_without_a_surname_still_gets_its_notices() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 3_000).await;
    c.batch_execute("ALTER TABLE clientes ALTER COLUMN apellidos DROP NOT NULL; ALTER TABLE hijos ALTER COLUMN nombre DROP NOT NULL")
        .await
        .unwrap();
    c.execute("UPDATE clientes SET apellidos = NULL WHERE id_cliente = $1", &[&fam.id_cliente]).await.unwrap();
    c.execute("UPDATE hijos SET nombre = NULL WHERE id_cliente_responsable = $1", &[&fam.id_cliente]).await.unwrap();
    let rec = Recorder::new(ChannelKind::Email);
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;
    recharge(&c, &fam.nro_tarjeta, 50_000).await;
    pos_manual_request(&c, &fam).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 2, SHORT).await;
    assert_eq!(rec.sent_count(), 2);
    app.stop().await;
}

/// Issue 18: the staff's words reached the parent as a low-balance notice ("saldo bajo … Gs. 150.000 …
/// Recargue") whatever they wrote. A POS row with text is a `mensaje_cantina`: the parent reads the text.
#[tokio::test]
async fn a_pos_row_with_the_staffs_text_reaches_the_parent_as_that_text() {
    const TEXTO: &str = "Hola, Tomás olvidó su almuerzo…";
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 150_000).await;
    let rec = Recorder::new(ChannelKind::Email);
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;
    let id = pos_request(&c, &fam, Some(TEXTO), None).await;
    // A type the POS cannot build is recorded with the reason, not sent as something else.
    let bad = pos_request(&c, &fam, None, Some("recarga_exitosa")).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Error'", 1, SHORT).await;
    let r = c
        .query_one("SELECT tipo, clave_dedup, mensaje FROM solicitudes_notificacion WHERE id_solicitud = $1", &[&id])
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "mensaje_cantina");
    assert_eq!(r.get::<_, String>(1), format!("manual:{id}"));
    assert_eq!(r.get::<_, String>(2), TEXTO, "the staff's own text is kept");
    let sent = rec.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    let m = &sent[0];
    assert_eq!(m.notification_type, NotificationType::MensajeCantina);
    assert!(m.html.contains(TEXTO) && m.text.contains(TEXTO), "{}", m.text);
    assert!(m.html.contains("Cantina Tita") && m.html.contains("Hola Ana,"), "inside the Cantina's header and footer");
    for part in [&m.subject, &m.html, &m.text, &m.short_text] {
        let lower = part.to_lowercase();
        assert!(!lower.contains("saldo bajo") && !lower.contains("recargue") && !lower.contains("150.000"), "{part}");
    }
    let r = c
        .query_one("SELECT tipo, ultimo_error FROM solicitudes_notificacion WHERE id_solicitud = $1", &[&bad])
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "recarga_exitosa");
    assert!(r.get::<_, String>(1).contains("no puede enviarse desde la caja"), "{:?}", r.get::<_, String>(1));
    app.stop().await;
}

#[tokio::test]
async fn a_manual_request_from_the_pos_is_completed_and_sent() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 3_000).await;
    let rec = Recorder::new(ChannelKind::Email);
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;
    // The plain button: neither a text nor a type (a row with text is a `mensaje_cantina`, tested below).
    let id: i64 = pos_request(&c, &fam, None, None).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;
    let r = c
        .query_one(
            "SELECT tipo, clave_dedup, destinatario, mensaje FROM solicitudes_notificacion WHERE id_solicitud = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "saldo_bajo");
    assert_eq!(r.get::<_, String>(1), format!("manual:{id}"));
    assert_eq!(r.get::<_, String>(2), "ana@example.com");
    assert!(
        r.get::<_, String>(3).starts_with("Cantina Tita: saldo bajo"),
        "the service's summary fills an empty mensaje"
    );
    assert_eq!(count(&c, "SELECT count(*) FROM solicitudes_notificacion").await, 1, "completed in place, not copied");
    assert_eq!(rec.sent_count(), 1);
    assert!(rec.sent.lock().unwrap()[0].text.contains("Gs. 3.000"));

    // A manual request naming a channel the service does not have is recorded, not left hanging.
    let id2: i64 = c
        .query_one(
            "INSERT INTO solicitudes_notificacion (id_cliente, nro_tarjeta, destino, estado) VALUES ($1, $2, 'WhatsApp', 'Pendiente') RETURNING id_solicitud",
            &[&fam.id_cliente, &fam.nro_tarjeta],
        )
        .await
        .unwrap()
        .get(0);
    let sql = format!("SELECT count(*) FROM solicitudes_notificacion WHERE id_solicitud = {id2} AND estado = 'Error'");
    wait_count(&c, &sql, 1, SHORT).await;
    let reason: String = c
        .query_one("SELECT ultimo_error FROM solicitudes_notificacion WHERE id_solicitud = $1", &[&id2])
        .await
        .unwrap()
        .get(0);
    assert!(reason.contains("WhatsApp"), "{reason}");
    app.stop().await;
}

#[tokio::test]
async fn the_file_backend_writes_a_complete_eml() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    let dir = std::env::temp_dir().join(format!("cn-eml-{}", fastrand::u64(..)));
    let dir_s = dir.to_string_lossy().to_string();
    let settings: Settings = test_settings(
        &db,
        &[("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend"), ("EMAIL_FILE_PATH", &dir_s)],
    );
    let app = TestApp::start_with(settings, None).await;
    recharge(&c, &fam.nro_tarjeta, 50_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(Result::ok).map(|e| e.path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].extension().and_then(|e| e.to_str()), Some("eml"));
    let eml = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        eml.contains("From: \"Cantina Tita\" <noreply@cantinatita.com.py>")
            || eml.contains("From: Cantina Tita <noreply@cantinatita.com.py>"),
        "{eml}"
    );
    assert!(eml.contains("To: ana@example.com"), "{eml}");
    assert!(eml.contains("multipart/alternative"), "{eml}");
    assert!(eml.contains("text/plain") && eml.contains("text/html"), "{eml}");
    let proveedor: String = c.query_one("SELECT proveedor FROM solicitudes_notificacion", &[]).await.unwrap().get(0);
    assert_eq!(proveedor, "file");
    app.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn ordinary_sales_and_recharges_add_no_extra_event_rows() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 100_000).await;
    for _ in 0..10 {
        consume(&c, &fam.nro_tarjeta, 1_000).await;
    }
    // A pending online payment is not a notice yet.
    c.execute(
        "INSERT INTO cargas_saldo (nro_tarjeta, monto_cargado, estado) VALUES ($1, 5000, 'PENDIENTE')",
        &[&fam.nro_tarjeta],
    )
    .await
    .unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_eventos").await, 0);
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_eventos").await, 1);
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_eventos WHERE tipo = 'recarga_confirmada'").await, 1);
}

#[tokio::test]
async fn an_event_the_database_refuses_is_set_aside_and_the_rest_flows() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let poison = seed_family(&c, Some("p@example.com"), None, 12_000).await;
    let good = seed_family(&c, Some("g@example.com"), None, 12_000).await;
    reject_requests_for_card(&c, &poison.nro_tarjeta).await;
    recharge(&c, &poison.nro_tarjeta, 10_000).await;
    recharge(&c, &good.nro_tarjeta, 10_000).await;
    let rec = Recorder::new(ChannelKind::Email);
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;
    wait_count(&c, "SELECT count(*) FROM cantina_notify_eventos WHERE procesado_en IS NULL", 0, SHORT).await;
    let resultado: String =
        c.query_one("SELECT resultado FROM cantina_notify_eventos ORDER BY id LIMIT 1", &[]).await.unwrap().get(0);
    assert!(resultado.contains("tarjeta en auditoría"), "{resultado}");
    assert_eq!(rec.sent.lock().unwrap()[0].recipient.as_str(), "g@example.com");
    assert!(app.get("/metrics").await.1.contains("cantina_notify_drain_errors_total 1"));
    // The service keeps going.
    recharge(&c, &good.nro_tarjeta, 10_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 2, SHORT).await;
    app.stop().await;
}

/// Isolating a failed batch examines each event even while another transaction still holds its lock (the failed
/// batch's closed connection not rolled back yet, or a replica's batch): it waits for the lock instead of skipping
/// the event, which looked like success and left a refused event pending for good.
#[tokio::test]
async fn isolating_an_event_waits_for_its_lock_instead_of_skipping_it() {
    use cantina_notify::events::drain::drain_event;

    let db = TestDb::new().await;
    let c = db.client().await;
    let poison = seed_family(&c, Some("p@example.com"), None, 12_000).await;
    reject_requests_for_card(&c, &poison.nro_tarjeta).await;
    recharge(&c, &poison.nro_tarjeta, 10_000).await;
    let id: i64 = c.query_one("SELECT id FROM cantina_notify_eventos", &[]).await.unwrap().get(0);
    let holder = db.client().await;
    holder
        .batch_execute(&format!("BEGIN; SELECT 1 FROM cantina_notify_eventos WHERE id = {id} FOR UPDATE"))
        .await
        .unwrap();

    let settings = test_settings(&db, &[]);
    let (rules, _) = settings.validate(true).unwrap();
    let pool = cantina_notify::db::pool(&db.url, 2, std::time::Duration::from_secs(5)).unwrap();
    let isolating = tokio::spawn(async move { drain_event(&pool, &rules, id).await });
    // It waits for the lock (a skip would have returned at once, with nothing done).
    wait_count(
        &c,
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE%'",
        1,
        SHORT,
    )
    .await;
    holder.batch_execute("COMMIT").await.unwrap();
    let err = isolating.await.unwrap().expect_err("the event is examined and refused");
    assert!(err.is_data_error(), "{err}");
    assert!(err.to_string().contains("tarjeta en auditoría"), "{err}");
}

#[tokio::test]
async fn a_channel_every_portal_account_turned_off_is_recorded_omitido() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), Some("0981 123456"), 12_000).await;
    // Two portal accounts: both turned email off for recharges; only one turned SMS off.
    for (email, sms) in [("a1@example.com", false), ("a2@example.com", true)] {
        let id: i32 = c
            .query_one(
                "INSERT INTO usuario_portal (id_cliente, email, activo) VALUES ($1, $2, true) RETURNING id_usuario_portal",
                &[&fam.id_cliente, &email],
            )
            .await
            .unwrap()
            .get(0);
        c.execute(
            "INSERT INTO preferencia_notificacion (id_usuario_portal, tipo_notificacion, email_activo, push_activo, sms_activo)
             VALUES ($1, 'recarga_exitosa', false, false, $2)",
            &[&id, &sms],
        )
        .await
        .unwrap();
    }
    let email = Recorder::new(ChannelKind::Email);
    let sms = Recorder::new(ChannelKind::Sms);
    let settings =
        test_settings(&db, &[("SMS_PROVIDER", "console"), ("CANTINA__RULES__RECARGA_EXITOSA__CHANNELS", "email,sms")]);
    let app = TestApp::start_with(
        settings,
        Some(cantina_notify::channels::Channels::new().with(email.clone()).with(sms.clone())),
    )
    .await;
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado IN ('Enviado', 'Omitido')", 2, SHORT)
        .await;
    let r = c
        .query_one("SELECT estado, ultimo_error FROM solicitudes_notificacion WHERE destino = 'Email'", &[])
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "Omitido");
    assert!(r.get::<_, String>(1).contains("desactivó los avisos recarga_exitosa por Email"));
    assert_eq!(
        count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE destino = 'SMS' AND estado = 'Enviado'").await,
        1,
        "one account still wants SMS"
    );
    assert_eq!((email.sent_count(), sms.sent_count()), (0, 1));
    app.stop().await;
}

#[tokio::test]
async fn a_channel_off_by_default_goes_only_to_parents_who_switched_it_on() {
    let db = TestDb::new().await;
    let c = db.client().await;
    // No portal account: has said nothing. With an account: one switched SMS on, one left the column NULL (the
    // portal's own insert, which does not know sms_activo).
    let silent = seed_family(&c, Some("ana@example.com"), Some("0981 123456"), 12_000).await;
    let opted_in = seed_family(&c, Some("bea@example.com"), Some("0982 123456"), 12_000).await;
    let null_column = seed_family(&c, Some("caro@example.com"), Some("0983 123456"), 12_000).await;
    for (fam, email, sms) in
        [(&opted_in, "bea.portal@example.com", Some(true)), (&null_column, "caro.portal@example.com", None)]
    {
        let id: i32 = c
            .query_one(
                "INSERT INTO usuario_portal (id_cliente, email) VALUES ($1, $2) RETURNING id_usuario_portal",
                &[&fam.id_cliente, &email],
            )
            .await
            .unwrap()
            .get(0);
        c.execute(
            "INSERT INTO preferencia_notificacion (id_usuario_portal, tipo_notificacion, sms_activo)
             VALUES ($1, 'recarga_exitosa', $2)",
            &[&id, &sms],
        )
        .await
        .unwrap();
    }
    let email = Recorder::new(ChannelKind::Email);
    let sms = Recorder::new(ChannelKind::Sms);
    let settings = test_settings(
        &db,
        &[
            ("SMS_PROVIDER", "console"),
            ("CANTINA__RULES__RECARGA_EXITOSA__CHANNELS", "email,sms"),
            ("CANTINA__PREFERENCES__SMS", "false"),
        ],
    );
    let app = TestApp::start_with(
        settings,
        Some(cantina_notify::channels::Channels::new().with(email.clone()).with(sms.clone())),
    )
    .await;
    for fam in [&silent, &opted_in, &null_column] {
        recharge(&c, &fam.nro_tarjeta, 10_000).await;
    }
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado IN ('Enviado', 'Omitido')", 6, SHORT)
        .await;
    let sms_rows: Vec<(i32, String, Option<String>)> = c
        .query("SELECT id_cliente, estado, ultimo_error FROM solicitudes_notificacion WHERE destino = 'SMS'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    for (id, estado, reason) in &sms_rows {
        if *id == opted_in.id_cliente {
            assert_eq!(estado, "Enviado");
        } else {
            assert_eq!(estado, "Omitido", "cliente {id}");
            let reason = reason.as_deref().unwrap_or_default();
            assert!(reason.contains("no activó los avisos recarga_exitosa por SMS"), "{reason}");
        }
    }
    assert_eq!(sms_rows.len(), 3);
    assert_eq!((email.sent_count(), sms.sent_count()), (3, 1));
    app.stop().await;
}
