//! Bad input, end to end over the database: every case ends in a readable reason (on the request's `ultimo_error`,
//! the event's `resultado`, or a refused start naming the key), the service keeps running, and in the same test a
//! good family's notice still goes out.
//!
//! Already covered elsewhere, so not repeated here: a NULL email and "sin correo" (pipeline.rs,
//! `a_parent_without_email_gets_a_recorded_reason_and_others_still_go_out`), a landline for SMS (pipeline.rs,
//! `sms_to_a_landline_is_recorded_and_a_mobile_is_sent_in_e164`), a manual request naming a channel the service does
//! not have (pipeline.rs), an event the database refuses (pipeline.rs, `an_event_the_database_refuses_…`), and each
//! adapter's classification of error statuses (src/channels/*.rs). This file adds the other shapes of the same
//! inputs and the ones nothing else drives through the database.

use std::sync::Arc;

use cantina_notify::app::{AppError, Application};
use cantina_notify::channels::{Channel, Channels, HttpGatewayChannel};
use cantina_notify::config::SmsProvider;
use cantina_notify::domain::ChannelKind;
use cantina_notify::render::{Encoding, sms_encoding, sms_text};
use serde_json::{Value, json};
use tokio_postgres::Client;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

const DONE: &str = "SELECT count(*) FROM solicitudes_notificacion WHERE estado <> 'Pendiente'";

/// One client, one student, one card, with the names given (the helper's family is always "Ana" / "Luis Benítez").
async fn seed_named(
    c: &Client,
    nombres: &str,
    nombre: &str,
    apellido: &str,
    email: Option<&str>,
    telefono: Option<&str>,
) -> Family {
    let n = fastrand::u64(..);
    let id_cliente: i32 = c
        .query_one(
            "INSERT INTO clientes (nombres, apellidos, ruc_ci, email, telefono) VALUES ($1, 'Apellido', $2, $3, $4)
             RETURNING id_cliente",
            &[&nombres, &format!("ci-{}", n % 1_000_000_000_000), &email, &telefono],
        )
        .await
        .expect("insert cliente")
        .get(0);
    let id_hijo: i32 = c
        .query_one(
            "INSERT INTO hijos (id_cliente_responsable, nombre, apellido) VALUES ($1, $2, $3) RETURNING id_hijo",
            &[&id_cliente, &nombre, &apellido],
        )
        .await
        .expect("insert hijo")
        .get(0);
    let nro_tarjeta = format!("T{}", n % 10_000_000_000);
    c.execute(
        "INSERT INTO tarjetas (nro_tarjeta, id_hijo, saldo_actual) VALUES ($1, $2, 12000)",
        &[&nro_tarjeta, &id_hijo],
    )
    .await
    .expect("insert tarjeta");
    Family { id_cliente, nro_tarjeta }
}

/// (estado, ultimo_error) of the one request of this card on this channel.
async fn outcome(c: &Client, nro_tarjeta: &str, destino: &str) -> (String, String) {
    let r = c
        .query_one(
            "SELECT estado, coalesce(ultimo_error, '') FROM solicitudes_notificacion WHERE nro_tarjeta = $1 AND destino = $2",
            &[&nro_tarjeta, &destino],
        )
        .await
        .unwrap_or_else(|e| panic!("request of {nro_tarjeta} on {destino}: {e}"));
    (r.get(0), r.get(1))
}

fn assert_error(what: &str, got: &(String, String), needles: &[&str], hidden: &[&str]) {
    assert_eq!(got.0, "Error", "{what}: {got:?}");
    for n in needles {
        assert!(got.1.contains(n), "{what}: reason lacks {n:?}: {:?}", got.1);
    }
    for h in hidden {
        assert!(!got.1.contains(h), "{what}: reason reveals {h:?}: {:?}", got.1);
    }
}

/// The `resultado` of the (only) event about this card.
async fn event_result(c: &Client, nro_tarjeta: &str) -> String {
    c.query_one(
        "SELECT coalesce(resultado, '') FROM cantina_notify_eventos WHERE nro_tarjeta = $1 AND procesado_en IS NOT NULL",
        &[&nro_tarjeta],
    )
    .await
    .unwrap_or_else(|e| panic!("processed event of {nro_tarjeta}: {e}"))
    .get(0)
}

async fn requests_of(c: &Client, nro_tarjeta: &str) -> i64 {
    c.query_one("SELECT count(*) FROM solicitudes_notificacion WHERE nro_tarjeta = $1", &[&nro_tarjeta])
        .await
        .unwrap()
        .get(0)
}

/// Cases 1–6: addresses that cannot be used. Each channel of a notice is judged on its own, so a bad phone does
/// not stop the email of the same notice, and nothing reveals the address it refuses.
#[tokio::test]
async fn unusable_addresses_are_recorded_per_channel_without_revealing_them() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let display_name =
        seed_named(&c, "Ana", "Luis", "Benítez", Some("Ana Benítez <ana.b@example.com>"), Some("0981 111001")).await;
    let injected =
        seed_named(&c, "Bea", "Juan", "Ruiz", Some("bea@example.com\r\nBcc: intruso@example.net"), Some("0981 111002"))
            .await;
    let abc = seed_named(&c, "Caro", "Pía", "Gómez", Some("caro@example.com"), Some("abc")).await;
    let too_long = seed_named(&c, "Dora", "Leo", "Paz", Some("dora@example.com"), Some("0981 1234567890123")).await;
    let no_phone = seed_named(&c, "Eva", "Mía", "Sosa", Some("eva@example.com"), None).await;
    let landline = seed_named(&c, "Flor", "Iván", "Vera", Some("flor@example.com"), Some("(021) 555 123")).await;
    let good = seed_named(&c, "Gina", "Noé", "Ortiz", Some("gina@example.com"), Some("0981 111007")).await;

    let (email, sms, whatsapp) =
        (Recorder::new(ChannelKind::Email), Recorder::new(ChannelKind::Sms), Recorder::new(ChannelKind::WhatsApp));
    let settings = test_settings(
        &db,
        &[
            ("SMS_PROVIDER", "console"),
            ("WHATSAPP_PROVIDER", "console"),
            ("CANTINA__RULES__RECARGA_EXITOSA__CHANNELS", "email,sms,whatsapp"),
        ],
    );
    let channels = Channels::new().with(email.clone()).with(sms.clone()).with(whatsapp.clone());
    let app = TestApp::start_with(settings, Some(channels)).await;
    let families = [&display_name, &injected, &abc, &too_long, &no_phone, &landline, &good];
    for f in families {
        recharge(&c, &f.nro_tarjeta, 10_000).await;
    }
    wait_count(&c, DONE, 3 * families.len() as i64, SHORT).await;

    // 1. An address with a display name is not an address: the parent's data needs fixing.
    assert_error(
        "display name",
        &outcome(&c, &display_name.nro_tarjeta, "Email").await,
        &["correo electrónico mal formado"],
        &["ana.b@example.com", "Benítez <"],
    );
    // 2. A line break in the address (a header-injection attempt) is refused; the injected address is not repeated.
    assert_error(
        "header injection",
        &outcome(&c, &injected.nro_tarjeta, "Email").await,
        &["correo electrónico mal formado"],
        &["bea@example.com", "intruso", "Bcc"],
    );
    // 3. Letters for a phone, on both phone channels.
    for destino in ["SMS", "WhatsApp"] {
        assert_error(
            "phone abc",
            &outcome(&c, &abc.nro_tarjeta, destino).await,
            &["número de teléfono mal formado", &format!("cliente {}", abc.id_cliente)],
            &["abc"],
        );
    }
    // 4. Too many digits: refused, and only the last three digits are quoted.
    for destino in ["SMS", "WhatsApp"] {
        assert_error(
            "too long",
            &outcome(&c, &too_long.nro_tarjeta, destino).await,
            &["número de teléfono mal formado", "***123"],
            &["0981", "1234567890"],
        );
    }
    // 5. No phone at all (the SMS analogue of a NULL email).
    for destino in ["SMS", "WhatsApp"] {
        assert_error(
            "no phone",
            &outcome(&c, &no_phone.nro_tarjeta, destino).await,
            &["sin número de teléfono registrado", &format!("cliente {}", no_phone.id_cliente)],
            &[],
        );
    }
    // 6. A landline for WhatsApp (the SMS one is in pipeline.rs).
    assert_error(
        "landline whatsapp",
        &outcome(&c, &landline.nro_tarjeta, "WhatsApp").await,
        &["no es un número de celular", "SMS y WhatsApp necesitan un celular"],
        &["555 123", "555123"],
    );
    // The other channels of the same notices went out: one bad address does not hold back the rest.
    for (f, destino) in [
        (&display_name, "SMS"),
        (&injected, "WhatsApp"),
        (&abc, "Email"),
        (&too_long, "Email"),
        (&no_phone, "Email"),
        (&landline, "Email"),
    ] {
        assert_eq!(outcome(&c, &f.nro_tarjeta, destino).await.0, "Enviado", "{destino} of {}", f.nro_tarjeta);
    }
    for destino in ["Email", "SMS", "WhatsApp"] {
        assert_eq!(outcome(&c, &good.nro_tarjeta, destino).await.0, "Enviado", "good family on {destino}");
    }
    assert_eq!((email.sent_count(), sms.sent_count(), whatsapp.sent_count()), (5, 3, 3));
    assert!(email.sent.lock().unwrap().iter().all(|m| !m.recipient.as_str().contains('\n')));
    app.stop().await;
}

/// Cases 7–9: a notice nobody can be told about. The schema makes a student without a parent row impossible
/// (`hijos.id_cliente_responsable` is NOT NULL with a foreign key, and `clientes` cannot be deleted while a student
/// points at it), so the two closest real cases are tested: an inactive parent, and an orphan loaded with the
/// foreign-key triggers off (`session_replication_role = replica`, as `pg_restore --disable-triggers` does).
#[tokio::test]
async fn cards_nobody_can_be_told_about_are_recorded_on_the_event() {
    let db = TestDb::new().await;
    let c = db.client().await;
    // 7. A card with no student.
    c.execute("INSERT INTO tarjetas (nro_tarjeta, saldo_actual) VALUES ('SIN-ALUMNO', 12000)", &[]).await.unwrap();
    // 8. A parent marked inactive in the app.
    let inactive = seed_family(&c, Some("inactivo@example.com"), None, 12_000).await;
    c.execute("UPDATE clientes SET activo = false WHERE id_cliente = $1", &[&inactive.id_cliente]).await.unwrap();
    // 9. A student whose parent row does not exist, loaded past the foreign key.
    c.batch_execute(
        "SET session_replication_role = replica;
         INSERT INTO hijos (id_hijo, id_cliente_responsable, nombre, apellido) VALUES (900001, 900001, 'Huérfano', 'Sin Padre');
         INSERT INTO tarjetas (nro_tarjeta, id_hijo, saldo_actual) VALUES ('HUERFANA', 900001, 12000);
         SET session_replication_role = origin;",
    )
    .await
    .expect("insert an orphan student (the test role must be a superuser)");
    let good = seed_family(&c, Some("ok@example.com"), None, 12_000).await;
    let rec = Recorder::new(ChannelKind::Email);
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;

    for nro in ["SIN-ALUMNO", inactive.nro_tarjeta.as_str(), "HUERFANA", good.nro_tarjeta.as_str()] {
        recharge(&c, nro, 10_000).await;
    }
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;
    wait_count(&c, "SELECT count(*) FROM cantina_notify_eventos WHERE procesado_en IS NULL", 0, SHORT).await;

    let r = event_result(&c, "SIN-ALUMNO").await;
    assert!(r.contains("la tarjeta SIN-ALUMNO no tiene alumno asignado"), "{r}");
    let r = event_result(&c, &inactive.nro_tarjeta).await;
    assert!(r.contains(&format!("el cliente {} está inactivo", inactive.id_cliente)), "{r}");
    let r = event_result(&c, "HUERFANA").await;
    assert!(r.contains("el alumno de la tarjeta HUERFANA no tiene cliente responsable"), "{r}");
    for nro in ["SIN-ALUMNO", inactive.nro_tarjeta.as_str(), "HUERFANA"] {
        assert_eq!(requests_of(&c, nro).await, 0, "{nro}: no request for nobody");
    }
    // The same cards crossing the low-balance threshold are judged the same way (the saldo_bajo rule).
    c.execute("UPDATE tarjetas SET saldo_actual = 1000 WHERE nro_tarjeta = 'SIN-ALUMNO'", &[]).await.unwrap();
    wait_count(
        &c,
        "SELECT count(*) FROM cantina_notify_eventos WHERE tipo = 'saldo_bajo' AND procesado_en IS NOT NULL",
        1,
        SHORT,
    )
    .await;
    let r: String = c
        .query_one("SELECT resultado FROM cantina_notify_eventos WHERE tipo = 'saldo_bajo'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(r.contains("la tarjeta SIN-ALUMNO no tiene alumno asignado"), "{r}");

    assert_eq!(rec.sent_count(), 1);
    assert_eq!(rec.sent.lock().unwrap()[0].recipient.as_str(), "ok@example.com");
    recharge(&c, &good.nro_tarjeta, 1_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 2, SHORT).await;
    app.stop().await;
}

/// Cases 10–14: outbox rows this build cannot interpret (written by hand, by a newer version, or damaged) are
/// marked done with the reason, never retried forever, and do not hold back the rows after them.
#[tokio::test]
async fn outbox_rows_of_an_unknown_kind_or_with_a_corrupt_payload_are_set_aside_with_the_reason() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let good = seed_family(&c, Some("ok@example.com"), None, 12_000).await;
    let bad: [(&str, Option<i64>, Option<&str>, &str); 5] = [
        // 10. A kind this build does not know.
        ("consumo_anulado", Some(7), Some("X1"), "tipo de evento desconocido: consumo_anulado"),
        // 11. A recharge event without the recharge.
        ("recarga_confirmada", None, Some("X2"), "evento recarga_confirmada sin id_ref"),
        // 12. A balance event without its balances.
        ("saldo_bajo", None, Some("X3"), "evento saldo_bajo sin tarjeta o saldos"),
        // 13. A recharge that does not exist.
        ("recarga_confirmada", Some(987_654_321), Some("X4"), "la recarga 987654321 no existe"),
        // 14. A blocked card that does not exist.
        ("tarjeta_bloqueada", None, Some("X5"), "la tarjeta X5 no existe"),
    ];
    for (tipo, id_ref, nro, _) in &bad {
        c.execute(
            "INSERT INTO cantina_notify_eventos (tipo, id_ref, nro_tarjeta) VALUES ($1, $2, $3)",
            &[tipo, id_ref, nro],
        )
        .await
        .unwrap();
    }
    let rec = Recorder::new(ChannelKind::Email);
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;
    recharge(&c, &good.nro_tarjeta, 10_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;
    wait_count(&c, "SELECT count(*) FROM cantina_notify_eventos WHERE procesado_en IS NULL", 0, SHORT).await;
    for (tipo, _, nro, reason) in &bad {
        let nro = nro.unwrap_or_default();
        let got = event_result(&c, nro).await;
        assert_eq!(&got, reason, "{tipo} for {nro}");
    }
    assert_eq!(count(&c, "SELECT count(*) FROM solicitudes_notificacion").await, 1);
    // Decoding problems are not database errors: nothing was "isolated" or counted as a failed drain.
    let metrics = app.get("/metrics").await.1;
    assert!(metrics.contains("cantina_notify_drain_errors_total 0"), "{metrics}");
    assert!(metrics.contains(r#"cantina_notify_events_received_total{kind="invalido"} 3"#), "{metrics}");
    app.stop().await;
}

/// Case 15: someone else NOTIFYing on the service's channel, with any payload, is only a wake-up: nothing is read
/// from the payload, the listener's session survives, and real events still flow.
#[tokio::test]
async fn a_notify_from_someone_else_is_only_a_wake_up() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let good = seed_family(&c, Some("ok@example.com"), None, 12_000).await;
    let rec = Recorder::new(ChannelKind::Email);
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;
    let listener_pid = || async {
        c.query_opt(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'cantina-notify-listener' AND datname = current_database()",
            &[],
        )
        .await
        .unwrap()
        .map(|r| r.get::<_, i32>(0))
    };
    let pid = poll_until("listener session", SHORT, || async { listener_pid().await }).await;

    // A payload that looks like an event (for a recharge that does exist, to tempt a decoder), junk, a NUL-free
    // binary-ish string, and the largest payload PostgreSQL accepts, many times over.
    let fake_event = json!({"tipo": "recarga_confirmada", "id_ref": 1, "nro_tarjeta": good.nro_tarjeta}).to_string();
    for payload in [fake_event.as_str(), "", "DROP TABLE clientes; --", "\u{1F4A5}\u{7f}\u{1}ñ", &"x".repeat(7_999)] {
        for _ in 0..50 {
            c.execute("SELECT pg_notify('cantina_notify', $1)", &[&payload]).await.unwrap();
        }
    }
    c.batch_execute("NOTIFY cantina_notify, 'otro sistema'").await.unwrap();

    recharge(&c, &good.nro_tarjeta, 10_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;
    assert_eq!(count(&c, "SELECT count(*) FROM solicitudes_notificacion").await, 1, "no request from a payload");
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_eventos").await, 1, "only the real recharge");
    assert_eq!(listener_pid().await, Some(pid), "the listener's session survived");
    let metrics = app.get("/metrics").await.1;
    assert!(metrics.contains("cantina_notify_listener_reconnects_total 0"), "{metrics}");
    assert_eq!(rec.sent_count(), 1);
    app.stop().await;
}

/// Case 16: names with HTML, quotes, emoji and Guaraní letters are SENT, correctly: escaped in the HTML part, intact
/// in the text part and the subject, and transliterated on the SMS wire exactly as `render::sms_text` says.
#[tokio::test]
async fn names_with_html_quotes_emoji_and_guarani_letters_are_sent_correctly() {
    let db = TestDb::new().await;
    let c = db.client().await;
    // Ẽ (U+1EBC), g̃ (g + combining tilde U+0303), ỹ (U+1EF9), ã, ñ.
    let padre = "<b>Ñandutí</b> \"Mamá\" O'Higgins \u{1F392}";
    let (nombre, apellido) = ("\u{1EBC}g\u{303}\u{1EF9} \"Tito\"", "Ñañã <script>alert('x')</script>");
    let alumno = format!("{nombre} {apellido}");
    let fam = seed_named(&c, padre, nombre, apellido, Some("padre@example.com"), Some("0981 222333")).await;
    let good = seed_named(&c, "Ana", "Luis", "Benítez", Some("ok@example.com"), Some("0981 222444")).await;

    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/sms"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "queued", "id": "gw-1"})))
        .mount(&gateway)
        .await;
    let url = format!("{}/sms", gateway.uri());
    let settings = test_settings(
        &db,
        &[
            ("SMS_PROVIDER", "http"),
            ("CANTINA__SMS__GATEWAY__URL", &url),
            ("CANTINA__SMS__GATEWAY__FORMAT", "json"),
            ("CANTINA__SMS__GATEWAY__FIELDS", "to={to},text={message}"),
            ("CANTINA__SMS__GATEWAY__SUCCESS_JSON_POINTER", "/status"),
            ("CANTINA__SMS__GATEWAY__SUCCESS_JSON_VALUE", "queued"),
            ("CANTINA__LIMITS__SMS__PER_SECOND", "0"),
            ("CANTINA__RULES__RECARGA_EXITOSA__CHANNELS", "email,sms"),
        ],
    );
    // The real gateway adapter on the SMS side (it is what transliterates), the recorder on the email side.
    let sms = HttpGatewayChannel::from_settings(&settings, SmsProvider::Http, &reqwest::Client::new()).unwrap();
    let email = Recorder::new(ChannelKind::Email);
    let channels = Channels::new().with(email.clone()).with(Arc::new(sms) as Arc<dyn Channel>);
    let app = TestApp::start_with(settings, Some(channels)).await;
    recharge(&c, &fam.nro_tarjeta, 50_000).await;
    recharge(&c, &good.nro_tarjeta, 50_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 4, SHORT).await;

    let short = format!("Cantina Tita: recarga de Gs. 50.000 confirmada para {alumno}. Saldo actual: Gs. 62.000.");
    let mail = email
        .sent
        .lock()
        .unwrap()
        .iter()
        .find(|m| m.recipient.as_str() == "padre@example.com")
        .cloned()
        .expect("the email was sent");
    assert_eq!(mail.subject, format!("Recarga exitosa de Gs. 50.000 - {alumno}"));
    // HTML: every name escaped; nothing of them is markup.
    for raw in ["<script>", "<b>Ñandutí</b>", "\"Mamá\"", "O'Higgins", "\"Tito\""] {
        assert!(!mail.html.contains(raw), "unescaped {raw:?} in the HTML part");
    }
    for escaped in ["&lt;script&gt;", "&lt;b&gt;Ñandutí&lt;/b&gt;", "&quot;Mamá&quot;", "&quot;Tito&quot;"] {
        assert!(mail.html.contains(escaped), "{escaped:?} missing from the HTML part");
    }
    // Letters and emoji are not escaped away.
    for intact in ["\u{1EBC}g\u{303}\u{1EF9}", "Ñañã", "\u{1F392}"] {
        assert!(mail.html.contains(intact), "{intact:?} missing from the HTML part");
    }
    // Text part: the names exactly as written.
    assert!(mail.text.contains(&format!("Hola {padre},")), "{}", mail.text);
    assert!(mail.text.contains(&alumno), "{}", mail.text);
    assert_eq!(mail.short_text, short);
    // What staff read in `mensaje` is the same short text, letters intact.
    let mensaje: String = c
        .query_one(
            "SELECT mensaje FROM solicitudes_notificacion WHERE nro_tarjeta = $1 AND destino = 'SMS'",
            &[&fam.nro_tarjeta],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(mensaje, short);

    // SMS on the wire: transliterated per render::sms_text, one GSM-7 segment, ñ kept (it is GSM-7).
    let wire: Vec<Value> = gateway
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| serde_json::from_slice(&r.body).ok())
        .collect();
    let text = wire
        .iter()
        .find(|b| b["to"] == "+595981222333")
        .and_then(|b| b["text"].as_str())
        .expect("the SMS reached the gateway")
        .to_string();
    assert_eq!(text, sms_text(&short));
    assert_eq!(
        text,
        "Cantina Tita: recarga de Gs. 50.000 confirmada para Egy \"Tito\" Ñaña <script>alert('x')</script>. Saldo actual: Gs. 62.000."
    );
    assert_eq!(sms_encoding(&text), (Encoding::Gsm7, 1));
    assert_eq!(wire.len(), 2, "one SMS per family");
    app.stop().await;
}

/// Case 17: a line break in a name cannot add a header to the email (the subject carries the student's name).
#[tokio::test]
async fn a_line_break_in_a_name_cannot_inject_an_email_header() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_named(&c, "Ana", "Luis", "Benítez\r\nBcc: intruso@example.net", Some("ana@example.com"), None).await;
    let good = seed_family(&c, Some("ok@example.com"), None, 12_000).await;
    let dir = std::env::temp_dir().join(format!("cn-bad-eml-{}", fastrand::u64(..)));
    let dir_s = dir.to_string_lossy().to_string();
    let settings = test_settings(&db, &[("EMAIL_BACKEND", "file"), ("EMAIL_FILE_PATH", &dir_s)]);
    let app = TestApp::start_with(settings, None).await;
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    recharge(&c, &good.nro_tarjeta, 10_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 2, SHORT).await;
    let id: i64 = c
        .query_one("SELECT id_solicitud FROM solicitudes_notificacion WHERE nro_tarjeta = $1", &[&fam.nro_tarjeta])
        .await
        .unwrap()
        .get(0);
    let eml = std::fs::read_to_string(dir.join(format!("{id:010}-recarga_exitosa.eml"))).unwrap();
    let headers = eml.split("\r\n\r\n").next().unwrap_or_default();
    let names: Vec<&str> =
        headers.lines().filter(|l| !l.starts_with([' ', '\t'])).filter_map(|l| l.split(':').next()).collect();
    assert!(!names.iter().any(|n| n.eq_ignore_ascii_case("bcc")), "injected header:\n{headers}");
    assert_eq!(names.iter().filter(|n| n.eq_ignore_ascii_case("to")).count(), 1, "{headers}");
    assert!(headers.contains("To: ana@example.com"), "{headers}");
    // The name stays inside the (encoded, folded) Subject: no line of the header section starts with it.
    assert!(
        !headers.lines().any(|l| l.starts_with("intruso") || l.starts_with("Bcc")),
        "the name became a header:\n{headers}"
    );
    assert!(headers.contains("Subject: Recarga exitosa de Gs. 10.000 - Luis "), "{headers}");
    app.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// Cases 18–23: amounts. Zero, negative and overflowing recharges cannot even be written by the app (its CHECK
/// and its bigint balance refuse them); what can reach the service is an enormous recharge and a zero or negative
/// balance, and each is formatted correctly.
#[tokio::test]
async fn zero_negative_and_enormous_amounts() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let huge = seed_family(&c, Some("huge@example.com"), None, 12_000).await;
    let zero = seed_family(&c, Some("zero@example.com"), None, 12_000).await;
    let negative = seed_family(&c, Some("neg@example.com"), None, 12_000).await;
    c.execute(
        "UPDATE tarjetas SET permite_saldo_negativo = true, limite_credito = 20000 WHERE nro_tarjeta = $1",
        &[&negative.nro_tarjeta],
    )
    .await
    .unwrap();
    let rec = Recorder::new(ChannelKind::Email);
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;

    let insert = "INSERT INTO cargas_saldo (nro_tarjeta, monto_cargado, estado) VALUES ($1, $2, 'CONFIRMADO')";
    // 18, 19. Zero and negative recharges: refused by the app's CHECK.
    for monto in [0_i64, -10_000] {
        let e = c.execute(insert, &[&huge.nro_tarjeta, &monto]).await.unwrap_err();
        let constraint = e.as_db_error().and_then(|d| d.constraint()).unwrap_or_default().to_string();
        assert_eq!(constraint, "cargas_saldo_monto_cargado_check", "{monto}: {e}");
    }
    // 20. A recharge that would overflow the card's bigint balance: refused by the app's own balance update.
    let e = c.execute(insert, &[&huge.nro_tarjeta, &i64::MAX]).await.unwrap_err();
    assert!(e.as_db_error().is_some_and(|d| d.message().contains("out of range")), "{e}");
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_eventos").await, 0, "nothing refused reached the outbox");

    // 21. The largest recharge that fits: the balance becomes i64::MAX, formatted without overflow.
    recharge(&c, &huge.nro_tarjeta, i64::MAX - 12_000).await;
    // 22. A balance of exactly zero, and 23. a negative one (a card allowed below zero).
    consume(&c, &zero.nro_tarjeta, 12_000).await;
    consume(&c, &negative.nro_tarjeta, 17_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 3, SHORT).await;

    let row = |nro: String| {
        let c = &c;
        async move {
            let r = c
                .query_one("SELECT saldo_alerta, mensaje FROM solicitudes_notificacion WHERE nro_tarjeta = $1", &[&nro])
                .await
                .unwrap();
            (r.get::<_, i64>(0), r.get::<_, String>(1))
        }
    };
    let (saldo, mensaje) = row(huge.nro_tarjeta.clone()).await;
    assert_eq!(saldo, i64::MAX);
    assert_eq!(
        mensaje,
        "Cantina Tita: recarga de Gs. 9.223.372.036.854.763.807 confirmada para Luis Benítez. Saldo actual: Gs. 9.223.372.036.854.775.807."
    );
    let (saldo, mensaje) = row(zero.nro_tarjeta.clone()).await;
    assert_eq!(saldo, 0);
    assert!(mensaje.contains("saldo bajo en la tarjeta de Luis Benítez: Gs. 0."), "{mensaje}");
    let (saldo, mensaje) = row(negative.nro_tarjeta.clone()).await;
    assert_eq!(saldo, -5_000);
    assert!(mensaje.contains("saldo bajo en la tarjeta de Luis Benítez: Gs. -5.000."), "{mensaje}");

    let sent = rec.sent.lock().unwrap().clone();
    let huge_mail = sent.iter().find(|m| m.recipient.as_str() == "huge@example.com").expect("huge sent");
    assert_eq!(huge_mail.subject, "Recarga exitosa de Gs. 9.223.372.036.854.763.807 - Luis Benítez");
    assert!(huge_mail.text.contains("Gs. 9.223.372.036.854.775.807"), "{}", huge_mail.text);
    assert!(huge_mail.html.contains("Gs. 9.223.372.036.854.775.807"));
    let neg_mail = sent.iter().find(|m| m.recipient.as_str() == "neg@example.com").expect("negative sent");
    assert!(neg_mail.text.contains("Gs. -5.000"), "{}", neg_mail.text);
    app.stop().await;
}

/// A request row written by hand: (tipo, destinatario, datos, expected estado, words the reason must contain).
type RawRow<'a> = (&'a str, &'a str, Option<Value>, &'a str, &'a [&'a str]);

/// Cases 24–28: request rows whose stored data cannot make a message (inserted by hand, by an older or newer
/// version, or damaged) end as `Error` with a readable reason, not a panic and not a retry loop.
#[tokio::test]
async fn request_rows_with_unusable_data_end_in_error_with_a_readable_reason() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    let full = json!({
        "plantilla": "recarga_exitosa", "padre": "Ana", "alumno": "Luis Benítez", "nro_tarjeta": fam.nro_tarjeta,
        "monto": 50_000, "saldo": 62_000, "fecha": "23/11/2026 19:50", "referencia": null
    });
    let mut without_monto = full.clone();
    without_monto.as_object_mut().unwrap().remove("monto");
    let saldo_bajo = json!({
        "plantilla": "saldo_bajo", "padre": "Ana", "fecha": "23/11/2026 19:50",
        "tarjetas": [{"alumno": "Luis Benítez", "nro_tarjeta": fam.nro_tarjeta, "saldo": 3000, "umbral": 5000}]
    });
    let rows: [RawRow; 6] = [
        // 24. A template parameter missing.
        (
            "recarga_exitosa",
            "ana@example.com",
            Some(without_monto),
            "Error",
            &["datos de la solicitud ilegibles", "monto"],
        ),
        // 25. No data at all.
        ("recarga_exitosa", "ana@example.com", None, "Error", &["datos de la solicitud ilegibles"]),
        // 26. Data of another kind of notice.
        (
            "recarga_exitosa",
            "ana@example.com",
            Some(saldo_bajo),
            "Error",
            &["los datos de la solicitud son de saldo_bajo y no de recarga_exitosa"],
        ),
        // 27. A type this build does not know.
        ("promocion", "ana@example.com", Some(full.clone()), "Error", &["promocion"]),
        // 28. A stored address that is no longer valid.
        ("recarga_exitosa", "ana en example.com", Some(full.clone()), "Error", &["correo electrónico mal formado"]),
        // The control: the same shape of row with good data goes out.
        ("recarga_exitosa", "ana@example.com", Some(full), "Enviado", &[]),
    ];
    let mut ids = Vec::new();
    for (i, (tipo, destinatario, datos, _, _)) in rows.iter().enumerate() {
        let id: i64 = c
            .query_one(
                "INSERT INTO solicitudes_notificacion
                     (id_cliente, nro_tarjeta, destino, estado, tipo, clave_dedup, destinatario, datos, proximo_intento)
                 VALUES ($1, $2, 'Email', 'Pendiente', $3, $4, $5, $6, now()) RETURNING id_solicitud",
                &[&fam.id_cliente, &fam.nro_tarjeta, tipo, &format!("a-mano:{i}"), destinatario, datos],
            )
            .await
            .unwrap()
            .get(0);
        ids.push(id);
    }
    // As the service would have written them: the point is what the dispatcher makes of the data.
    sign_by_hand(&c).await;
    let rec = Recorder::new(ChannelKind::Email);
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;
    wait_count(&c, DONE, rows.len() as i64, SHORT).await;
    for (id, (tipo, _, _, estado, needles)) in ids.iter().zip(&rows) {
        let r = c
            .query_one(
                "SELECT estado, coalesce(ultimo_error, ''), intentos FROM solicitudes_notificacion WHERE id_solicitud = $1",
                &[id],
            )
            .await
            .unwrap();
        let got = (r.get::<_, String>(0), r.get::<_, String>(1));
        assert_eq!(&got.0, estado, "row {id} ({tipo}): {got:?}");
        for n in *needles {
            assert!(got.1.contains(n), "row {id} ({tipo}): reason lacks {n:?}: {:?}", got.1);
        }
        assert_eq!(r.get::<_, i32>(2), 1, "row {id}: one attempt, no retry loop");
    }
    // The service still turns events into notices.
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 2, SHORT).await;
    assert_eq!(rec.sent_count(), 2);
    app.stop().await;
}

/// Cases 29–31: an SMS gateway answering 200 with a body that does not confirm the send: an error body, a body that
/// is not JSON, and a huge one. Each is `Error` with a short, masked reason; a good answer next to them is `Enviado`.
#[tokio::test]
async fn a_gateway_answering_200_without_confirming_is_an_error_with_a_short_masked_reason() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let error_body = seed_family(&c, None, Some("0981 000001"), 12_000).await;
    let not_json = seed_family(&c, None, Some("0981 000002"), 12_000).await;
    let huge = seed_family(&c, None, Some("0981 000003"), 12_000).await;
    let good = seed_family(&c, None, Some("0981 000004"), 12_000).await;
    let gateway = MockServer::start().await;
    let answer = |to: &str, response: ResponseTemplate| {
        Mock::given(method("POST")).and(path("/sms")).and(body_string_contains(to)).respond_with(response)
    };
    answer(
        "+595981000001",
        ResponseTemplate::new(200)
            .set_body_json(json!({"status": "failed", "error": "destination +595981000001 blocked (0981000001)"})),
    )
    .mount(&gateway)
    .await;
    answer("+595981000002", ResponseTemplate::new(200).set_body_string("<html><body>OK</body></html>"))
        .mount(&gateway)
        .await;
    let padding = "relleno ".repeat(512 * 1024); // 4 MiB
    answer("+595981000003", ResponseTemplate::new(200).set_body_json(json!({"status": "failed", "detail": padding})))
        .mount(&gateway)
        .await;
    answer("+595981000004", ResponseTemplate::new(200).set_body_json(json!({"status": "queued", "id": "gw-4"})))
        .mount(&gateway)
        .await;
    let url = format!("{}/sms", gateway.uri());
    let settings = test_settings(
        &db,
        &[
            ("SMS_PROVIDER", "http"),
            ("CANTINA__SMS__GATEWAY__URL", &url),
            ("CANTINA__SMS__GATEWAY__FORMAT", "json"),
            ("CANTINA__SMS__GATEWAY__FIELDS", "to={to},text={message}"),
            ("CANTINA__SMS__GATEWAY__SUCCESS_JSON_POINTER", "/status"),
            ("CANTINA__SMS__GATEWAY__SUCCESS_JSON_VALUE", "queued"),
            ("CANTINA__SMS__GATEWAY__MESSAGE_ID_POINTER", "/id"),
            ("CANTINA__LIMITS__SMS__PER_SECOND", "0"),
            ("CANTINA__RULES__RECARGA_EXITOSA__CHANNELS", "sms"),
        ],
    );
    let app = TestApp::start_with(settings, None).await;
    for f in [&error_body, &not_json, &huge, &good] {
        recharge(&c, &f.nro_tarjeta, 10_000).await;
    }
    wait_count(&c, DONE, 4, SHORT).await;

    // 29. 200 with an error body: the reason quotes it, with the number masked.
    let got = outcome(&c, &error_body.nro_tarjeta, "SMS").await;
    assert_error(
        "error body",
        &got,
        &["HTTP 200", "no confirmó el envío", "/status vale 'failed'", "blocked"],
        &["981000001", "0981000001"],
    );
    // 30. 200 with something that is not JSON.
    assert_error(
        "not json",
        &outcome(&c, &not_json.nro_tarjeta, "SMS").await,
        &["HTTP 200", "la respuesta no es JSON", "<html>"],
        &[],
    );
    // 31. 200 with a 4 MiB body: only its first 64 KiB are read, which cannot confirm the send (cut JSON);
    // recorded once, and the reason stays short.
    let got = outcome(&c, &huge.nro_tarjeta, "SMS").await;
    assert_error("huge body", &got, &["HTTP 200", "la respuesta no es JSON", "relleno", "…"], &[]);
    assert!(got.1.chars().count() < 500, "reason of {} chars", got.1.chars().count());

    let r = c
        .query_one(
            "SELECT estado, id_proveedor FROM solicitudes_notificacion WHERE nro_tarjeta = $1",
            &[&good.nro_tarjeta],
        )
        .await
        .unwrap();
    assert_eq!((r.get::<_, String>(0), r.get::<_, String>(1)), ("Enviado".to_string(), "gw-4".to_string()));
    // None of the three was retried: each number was posted once.
    assert_eq!(gateway.received_requests().await.unwrap_or_default().len(), 4);
    app.stop().await;
}

/// Cases 32–33: Meta answering 200 with a body that cannot be read, or with a huge one. Meta has accepted the
/// message, so it is `Enviado` and never re-sent (a retry would reach the parent twice); the provider id is what
/// can be read of it, and never too long for `id_proveedor`.
#[tokio::test]
async fn meta_accepting_with_an_unreadable_or_huge_body_counts_as_sent_once() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let unreadable = seed_family(&c, None, Some("0981 000005"), 12_000).await;
    let huge = seed_family(&c, None, Some("0981 000006"), 12_000).await;
    let good = seed_family(&c, None, Some("0981 000007"), 12_000).await;
    let meta = MockServer::start().await;
    let answer = |to: &str, response: ResponseTemplate| {
        Mock::given(method("POST"))
            .and(path("/v23.0/106540352242922/messages"))
            .and(body_string_contains(to))
            .respond_with(response)
            .expect(1)
    };
    answer("+595981000005", ResponseTemplate::new(200).set_body_string("{\"messages\": [{\"id\": ")).mount(&meta).await;
    // Long, yet within the 64 KiB of a body the adapters read.
    let long_id = format!("wamid.{}", "A".repeat(60_000));
    answer("+595981000006", ResponseTemplate::new(200).set_body_json(json!({"messages": [{"id": long_id}]})))
        .mount(&meta)
        .await;
    answer("+595981000007", ResponseTemplate::new(200).set_body_json(json!({"messages": [{"id": "wamid.OK7"}]})))
        .mount(&meta)
        .await;
    let meta_url = meta.uri();
    let settings = test_settings(
        &db,
        &[
            ("WHATSAPP_PROVIDER", "business_api"),
            ("WHATSAPP_ACCESS_TOKEN", "meta-token"),
            ("WHATSAPP_PHONE_NUMBER_ID", "106540352242922"),
            ("WHATSAPP_API_URL", &meta_url),
            ("CANTINA__LIMITS__WHATSAPP__PER_SECOND", "0"),
            ("CANTINA__RULES__RECARGA_EXITOSA__CHANNELS", "whatsapp"),
        ],
    );
    let app = TestApp::start_with(settings, None).await;
    for f in [&unreadable, &huge, &good] {
        recharge(&c, &f.nro_tarjeta, 10_000).await;
    }
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 3, SHORT).await;
    let id_of = |nro: String| {
        let c = &c;
        async move {
            c.query_one("SELECT id_proveedor FROM solicitudes_notificacion WHERE nro_tarjeta = $1", &[&nro])
                .await
                .unwrap()
                .get::<_, Option<String>>(0)
        }
    };
    // 32. Unreadable: sent, no id.
    assert_eq!(id_of(unreadable.nro_tarjeta.clone()).await, None);
    // 33. Huge: sent, the id cut to what the column holds.
    let stored = id_of(huge.nro_tarjeta.clone()).await.expect("an id");
    assert!(stored.starts_with("wamid.AAAA") && stored.chars().count() <= 255, "{} chars", stored.chars().count());
    assert_eq!(id_of(good.nro_tarjeta.clone()).await.as_deref(), Some("wamid.OK7"));
    app.stop().await;
    meta.verify().await;
}

/// Cases 34–36: a bad schedule, an unknown channel, or a fallback naming a channel with no provider are refused at
/// start-up with messages naming the keys; a running service next to the refused one is not affected.
#[tokio::test]
async fn bad_schedules_and_channels_are_refused_at_start_up_naming_the_key() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let good = seed_family(&c, Some("ok@example.com"), None, 12_000).await;
    let rec = Recorder::new(ChannelKind::Email);
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;

    // 34, 35. The binary, as a second replica with a broken configuration: exits non-zero before touching anything.
    let out = tokio::task::spawn_blocking({
        let url = db.url.clone();
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_cantina-notify"))
                .arg("run")
                .env("CANTINA__DATABASE__SIGNING_KEY", TEST_SIGNING_KEY)
                .env("DATABASE_URL", url)
                .env("CANTINA__HTTP__ADDR", "127.0.0.1:0")
                .env("CANTINA__SCHEDULER__SALDO_BAJO", "0 25 * * *")
                .env("CANTINA__RULES__RECARGA_EXITOSA__CHANNELS", "email,fax")
                .current_dir(std::env::temp_dir())
                .output()
        }
    })
    .await
    .unwrap()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a broken configuration must not start: {stderr}");
    assert!(stderr.contains("CANTINA__SCHEDULER__SALDO_BAJO:"), "{stderr}");
    assert!(stderr.contains("CANTINA__RULES__RECARGA_EXITOSA__CHANNELS: unknown channel 'fax'"), "{stderr}");

    // 36. In process: a fallback list naming WhatsApp with no WhatsApp provider.
    let bad = test_settings(&db, &[("CANTINA__RULES__TARJETA_BLOQUEADA__FALLBACK", "whatsapp,email")]);
    let err = match Application::build(bad, Some(Channels::new().with(Recorder::new(ChannelKind::Email)))).await {
        Err(e @ AppError::Config(_)) => e.to_string(),
        Err(other) => panic!("expected a configuration error, got {other}"),
        Ok(_) => panic!("a fallback naming an unconfigured channel must be refused"),
    };
    assert!(err.contains("CANTINA__RULES__TARJETA_BLOQUEADA__FALLBACK") && err.contains("WHATSAPP_PROVIDER"), "{err}");

    // The running service never noticed.
    recharge(&c, &good.nro_tarjeta, 10_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;
    assert_eq!(rec.sent_count(), 1);
    app.stop().await;
}
