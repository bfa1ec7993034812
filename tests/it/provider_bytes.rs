//! Issue 15, item 3: whatever bytes a provider answers (NUL, invalid UTF-8, megabytes, nothing), the outcome is
//! recorded once and the provider is called once per request. Before the fix a NUL in an id or an error body made
//! the outcome write fail, the lease expired and the same SMS went out again.

use std::collections::BTreeMap;

use cantina_notify::domain::ChannelKind;
use tokio_postgres::Client;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

const TWILIO_SEND: &str = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json";
const META_SEND: &str = "/v23.0/106540352242922/messages";

/// Short leases, so that an outcome that is not written shows up as a second call within the test's deadline.
const FAST_LEASE: [(&str, &str); 5] = [
    ("CANTINA__DISPATCH__SEND_TIMEOUT_SECONDS", "3"),
    ("CANTINA__DISPATCH__LEASE_SECONDS", "5"),
    ("CANTINA__LIMITS__EMAIL__PER_SECOND", "0"),
    ("CANTINA__LIMITS__SMS__PER_SECOND", "0"),
    ("CANTINA__LIMITS__WHATSAPP__PER_SECOND", "0"),
];

/// One case: the local number it is sent to (`0981 NNNNNN`) and what the double answers.
struct Case {
    name: &'static str,
    local: &'static str,
    answer: ResponseTemplate,
}

impl Case {
    fn e164(&self) -> String {
        format!("+595{}", self.local.replace(' ', "").trim_start_matches('0'))
    }
}

/// Calls the double received, per case (matched by the `To` it carried).
async fn calls(server: &MockServer, cases: &[Case]) -> BTreeMap<&'static str, usize> {
    let received = server.received_requests().await.unwrap_or_default();
    cases
        .iter()
        .map(|case| {
            let to = case.e164();
            let encoded = to.replace('+', "%2B");
            let n = received
                .iter()
                .filter(|r| {
                    let body = String::from_utf8_lossy(&r.body);
                    body.contains(&encoded) || body.contains(&to)
                })
                .count();
            (case.name, n)
        })
        .collect()
}

/// Waits until every request is no longer `Pendiente`, failing at once if any case was called twice.
async fn wait_final_once(c: &Client, server: &MockServer, cases: &[Case]) {
    let expected = cases.len() as i64;
    poll_until("every request recorded, each provider call made once", LONG, || async move {
        let seen = calls(server, cases).await;
        assert!(seen.values().all(|n| *n <= 1), "a request was sent more than once: {seen:?}");
        let done = count(c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado <> 'Pendiente'").await;
        (done == expected).then_some(())
    })
    .await;
    let seen = calls(server, cases).await;
    assert!(seen.values().all(|n| *n == 1), "provider calls per request: {seen:?}");
}

/// (estado, id_proveedor, ultimo_error, intentos) of the request sent to `phone`.
async fn row(c: &Client, phone: &str) -> (String, Option<String>, Option<String>, i32, i64) {
    let r = c
        .query_one(
            "SELECT estado, id_proveedor, ultimo_error, intentos, id_solicitud FROM solicitudes_notificacion
             WHERE destinatario = $1",
            &[&phone],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
}

/// Starts the service with `env` (and short leases), confirms a recharge on every card, and waits until each case
/// reached its final state with exactly one provider call.
async fn recharge_each_case(
    db: &TestDb,
    c: &Client,
    server: &MockServer,
    mut env: Vec<(&str, &str)>,
    cases: &[Case],
) -> TestApp {
    env.extend(FAST_LEASE);
    let app = TestApp::start_with(test_settings(db, &env), None).await;
    let cards: Vec<String> =
        c.query("SELECT nro_tarjeta FROM tarjetas", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    for card in &cards {
        recharge(c, card, 10_000).await;
    }
    wait_final_once(c, server, cases).await;
    app
}

async fn mount(server: &MockServer, send_path: &str, cases: &[Case]) {
    for case in cases {
        let to = case.e164();
        let needle = if send_path == TWILIO_SEND { to.replace('+', "%2B") } else { to.trim_start_matches('+').into() };
        Mock::given(method("POST"))
            .and(path(send_path))
            .and(body_string_contains(needle))
            .respond_with(case.answer.clone())
            .mount(server)
            .await;
    }
}

/// A body of `mib` MiB: valid JSON with the sid first and then padding.
fn huge_json(mib: usize) -> Vec<u8> {
    let mut body = br#"{"sid":"SMhuge","pad":""#.to_vec();
    body.resize(body.len() + mib * 1024 * 1024, b'x');
    body.extend_from_slice(br#""}"#);
    body
}

#[tokio::test]
async fn twilio_answers_with_nul_bad_utf8_huge_or_empty_bodies_are_recorded_once() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let cases = vec![
        Case {
            name: "201 sid with a JSON \\u0000",
            local: "0981 000101",
            answer: ResponseTemplate::new(201).set_body_raw(br#"{"sid":"SM\u0000abc"}"#.to_vec(), "application/json"),
        },
        Case {
            name: "201 with a raw NUL byte",
            local: "0981 000102",
            answer: ResponseTemplate::new(201).set_body_raw(b"{\"sid\":\"SM\x00abc\"}".to_vec(), "application/json"),
        },
        Case {
            name: "201 with invalid UTF-8",
            local: "0981 000103",
            answer: ResponseTemplate::new(201).set_body_raw(b"{\"sid\":\"SM\xff\xfe\"}".to_vec(), "application/json"),
        },
        Case { name: "201 empty", local: "0981 000104", answer: ResponseTemplate::new(201) },
        Case {
            name: "201 with 20 MiB",
            local: "0981 000105",
            answer: ResponseTemplate::new(201).set_body_raw(huge_json(20), "application/json"),
        },
        Case {
            name: "400 with a JSON \\u0000 in the message",
            local: "0981 000106",
            answer: ResponseTemplate::new(400).set_body_raw(
                br#"{"code":21211,"message":"Invalid 'To' \u0000 Phone Number","status":400}"#.to_vec(),
                "application/json",
            ),
        },
        Case {
            name: "400 with raw NUL and invalid UTF-8",
            local: "0981 000107",
            answer: ResponseTemplate::new(400).set_body_raw(b"bad\x00request\xff".to_vec(), "text/plain"),
        },
        Case {
            name: "201 good",
            local: "0981 000108",
            answer: ResponseTemplate::new(201).set_body_json(serde_json::json!({"sid": "SMgood"})),
        },
    ];
    for case in &cases {
        seed_family(&c, None, Some(case.local), 12_000).await;
    }
    let twilio = MockServer::start().await;
    mount(&twilio, TWILIO_SEND, &cases).await;
    let twilio_url = twilio.uri();
    let env = vec![
        ("SMS_PROVIDER", "twilio"),
        ("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef"),
        ("TWILIO_AUTH_TOKEN", "secret-token"),
        ("TWILIO_PHONE_NUMBER", "+15005550006"),
        ("TWILIO_API_URL", twilio_url.as_str()),
        ("CANTINA__RULES__RECARGA_EXITOSA__CHANNELS", "sms"),
    ];
    let app = recharge_each_case(&db, &c, &twilio, env, &cases).await;

    let warned = |e: &Option<String>| e.as_deref().is_some_and(|e| e.contains("aviso: Twilio aceptó el envío"));
    // The id had a NUL: stored without it, no warning.
    let r = row(&c, &cases[0].e164()).await;
    assert_eq!((r.0.as_str(), r.1.as_deref(), r.2.as_deref(), r.3), ("Enviado", Some("SMabc"), None, 1), "{r:?}");
    // No readable sid (raw NUL, invalid UTF-8, empty, cut at 64 KiB): sent once, with the warning staff see.
    for case in &cases[1..5] {
        let r = row(&c, &case.e164()).await;
        assert_eq!((r.0.as_str(), r.1.as_deref(), r.3), ("Enviado", None, 1), "{}: {r:?}", case.name);
        assert!(warned(&r.2), "{}: {r:?}", case.name);
    }
    // Refused with NUL in the error: Error once, the reason stored without it.
    let r = row(&c, &cases[5].e164()).await;
    assert_eq!((r.0.as_str(), r.3), ("Error", 1), "{r:?}");
    let reason = r.2.unwrap_or_default();
    assert!(reason.contains("21211") && reason.contains("Invalid 'To'  Phone Number"), "{reason}");
    let r = row(&c, &cases[6].e164()).await;
    assert_eq!((r.0.as_str(), r.3), ("Error", 1), "{r:?}");
    assert!(r.2.as_deref().is_some_and(|e| e.contains("badrequest\u{FFFD}")), "{r:?}");
    let r = row(&c, &cases[7].e164()).await;
    assert_eq!((r.0.as_str(), r.1.as_deref(), r.2.as_deref()), ("Enviado", Some("SMgood"), None), "{r:?}");

    // Staff see the warning in `requests show`, on the request and in its history.
    let id = row(&c, &cases[3].e164()).await.4;
    let detail = cantina_notify::ops::requests::show(&c, id).await.unwrap().expect("the request");
    let shown = cantina_notify::ops::requests::render_show(&detail, false);
    assert_eq!(shown.matches("no trae el identificador del mensaje (campo 'sid')").count(), 2, "{shown}");
    let metrics = app.metrics.encode();
    assert!(
        metrics.contains(r#"cantina_notify_sent_without_provider_id_total{channel="sms",provider="twilio"} 4"#),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn meta_answers_with_nul_or_nothing_are_recorded_once() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let cases = vec![
        Case {
            name: "200 id with a JSON \\u0000",
            local: "0981 000201",
            answer: ResponseTemplate::new(200)
                .set_body_raw(br#"{"messages":[{"id":"wamid.\u0000A"}]}"#.to_vec(), "application/json"),
        },
        Case { name: "200 empty", local: "0981 000202", answer: ResponseTemplate::new(200) },
        Case {
            name: "400 undeliverable with a JSON \\u0000",
            local: "0981 000203",
            answer: ResponseTemplate::new(400).set_body_raw(
                br#"{"error":{"message":"Message undeliverable\u0000","type":"OAuthException","code":131026,"fbtrace_id":"A\u0000"}}"#
                    .to_vec(),
                "application/json",
            ),
        },
    ];
    for case in &cases {
        seed_family(&c, None, Some(case.local), 12_000).await;
    }
    let meta = MockServer::start().await;
    mount(&meta, META_SEND, &cases).await;
    let meta_url = meta.uri();
    let env = vec![
        ("WHATSAPP_PROVIDER", "business_api"),
        ("WHATSAPP_ACCESS_TOKEN", "meta-token"),
        ("WHATSAPP_PHONE_NUMBER_ID", "106540352242922"),
        ("WHATSAPP_API_URL", meta_url.as_str()),
        ("CANTINA__RULES__RECARGA_EXITOSA__CHANNELS", "whatsapp"),
    ];
    let app = recharge_each_case(&db, &c, &meta, env, &cases).await;

    let r = row(&c, &cases[0].e164()).await;
    assert_eq!((r.0.as_str(), r.1.as_deref(), r.2.as_deref()), ("Enviado", Some("wamid.A"), None), "{r:?}");
    let r = row(&c, &cases[1].e164()).await;
    assert_eq!((r.0.as_str(), r.1.as_deref()), ("Enviado", None), "{r:?}");
    assert!(r.2.as_deref().is_some_and(|e| e.contains("messages[0].id")), "{r:?}");
    let r = row(&c, &cases[2].e164()).await;
    assert_eq!((r.0.as_str(), r.3), ("Error", 1), "{r:?}");
    assert!(r.2.as_deref().is_some_and(|e| e.contains("131026") && !e.contains('\u{0}')), "{r:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_gateway_error_with_nul_and_an_id_with_nul_are_recorded_once() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let cases = vec![
        Case {
            name: "200 id with a JSON \\u0000",
            local: "0981 000301",
            answer: ResponseTemplate::new(200)
                .set_body_raw(br#"{"status":"queued","id":"gw\u0000-1"}"#.to_vec(), "application/json"),
        },
        Case {
            name: "200 queued without id",
            local: "0981 000302",
            answer: ResponseTemplate::new(200).set_body_json(serde_json::json!({"status": "queued"})),
        },
        Case {
            name: "400 with raw NUL",
            local: "0981 000303",
            answer: ResponseTemplate::new(400).set_body_raw(b"rechazado\x00\x00 \xff".to_vec(), "text/plain"),
        },
    ];
    for case in &cases {
        seed_family(&c, None, Some(case.local), 12_000).await;
    }
    let gateway = MockServer::start().await;
    mount(&gateway, "/sms", &cases).await;
    let url = format!("{}/sms", gateway.uri());
    let env = vec![
        ("SMS_PROVIDER", "http"),
        ("CANTINA__SMS__GATEWAY__URL", url.as_str()),
        ("CANTINA__SMS__GATEWAY__FORMAT", "json"),
        ("CANTINA__SMS__GATEWAY__FIELDS", "to={to},text={message}"),
        ("CANTINA__SMS__GATEWAY__SUCCESS_JSON_POINTER", "/status"),
        ("CANTINA__SMS__GATEWAY__SUCCESS_JSON_VALUE", "queued"),
        ("CANTINA__SMS__GATEWAY__MESSAGE_ID_POINTER", "/id"),
        ("CANTINA__RULES__RECARGA_EXITOSA__CHANNELS", "sms"),
    ];
    let app = recharge_each_case(&db, &c, &gateway, env, &cases).await;

    let r = row(&c, &cases[0].e164()).await;
    assert_eq!((r.0.as_str(), r.1.as_deref(), r.2.as_deref()), ("Enviado", Some("gw-1"), None), "{r:?}");
    let r = row(&c, &cases[1].e164()).await;
    assert_eq!((r.0.as_str(), r.1.as_deref()), ("Enviado", None), "{r:?}");
    assert!(r.2.as_deref().is_some_and(|e| e.contains("MESSAGE_ID_POINTER")), "{r:?}");
    let r = row(&c, &cases[2].e164()).await;
    assert_eq!((r.0.as_str(), r.3), ("Error", 1), "{r:?}");
    assert!(r.2.as_deref().is_some_and(|e| e.contains("rechazado") && !e.contains('\u{0}')), "{r:?}");
    app.stop().await;
}

/// A 201 with a 100 MiB body: the adapter reads its first 64 KiB and hangs up, so the server cannot write more
/// than that plus what the sockets' buffers hold (a few MiB), and the send is accepted once. The server streams
/// the body from one small buffer and counts what the client let it write.
#[tokio::test]
async fn a_100_mib_answer_is_read_up_to_the_cap_and_the_rest_discarded() {
    use cantina_notify::channels::{Channel, OutgoingMessage, TwilioChannel};
    use cantina_notify::domain::{Guaranies, MobilePhone, NotificationType};
    use cantina_notify::rules::{MessageData, Recipient};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const MIB: usize = 1024 * 1024;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut written = 0usize;
        let Ok((mut sock, _)) = listener.accept().await else { return written };
        let mut req = vec![0u8; 64 * 1024];
        let _ = sock.read(&mut req).await;
        let head = br#"{"sid":"SMhuge","pad":""#;
        let tail = br#""}"#;
        let len = head.len() + 100 * MIB + tail.len();
        let header = format!("HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n");
        let _ = sock.write_all(header.as_bytes()).await;
        let _ = sock.write_all(head).await;
        let block = vec![b'x'; 64 * 1024];
        for _ in 0..(100 * MIB / block.len()) {
            if sock.write_all(&block).await.is_err() {
                return written;
            }
            written += block.len();
        }
        let _ = sock.write_all(tail).await;
        written
    });
    let mut s = cantina_notify::config::Settings::default();
    s.twilio.account_sid = Some("AC0123456789abcdef0123456789abcdef".into());
    s.twilio.auth_token = Some(cantina_notify::config::Secret::new("secret-token"));
    s.twilio.phone_number = Some("+15005550006".into());
    s.twilio.api_url = format!("http://{addr}");
    let ch = TwilioChannel::sms(&s, &reqwest::Client::new()).unwrap();
    let msg = OutgoingMessage {
        request_id: 1,
        idempotency_key: "k".into(),
        notification_type: NotificationType::RecargaExitosa,
        channel: ChannelKind::Sms,
        recipient: Recipient::Phone(MobilePhone::parse(Some("0981 123456")).unwrap()),
        subject: "s".into(),
        html: "h".into(),
        text: "t".into(),
        short_text: "t".into(),
        data: MessageData::RecargaExitosa {
            padre: "P".into(),
            alumno: "A".into(),
            nro_tarjeta: "0001".into(),
            monto: Guaranies(1),
            saldo: Guaranies(1),
            fecha: "01/01/2026 00:00".into(),
            referencia: None,
        },
        test: false,
    };
    let result = ch.send(&msg).await;
    assert!(result.is_ok(), "a 201 is an accepted send: {result:?}");
    let written = server.await.unwrap();
    assert!(written < 16 * MIB, "the server wrote {} MiB: the body was read past the cap", written / MIB);
}

/// Sends are recorded in shared statements (group commit): one row with a NUL id used to fail the whole batch, so
/// every send in it went out again. Now each row is cleaned and the batch is written.
#[tokio::test]
async fn one_bad_id_cannot_fail_a_batch_of_sends() {
    use cantina_notify::dispatch::sent::{Sent, write};
    use cantina_notify::dispatch::store;
    use std::time::Duration;
    let db = TestDb::new().await;
    let c = db.client().await;
    for local in ["0981 000401", "0981 000402", "0981 000403"] {
        let fam = seed_family(&c, Some("ana@example.com"), Some(local), 12_000).await;
        recharge(&c, &fam.nro_tarjeta, 10_000).await;
    }
    let settings =
        test_settings(&db, &[("SMS_PROVIDER", "console"), ("CANTINA__RULES__RECARGA_EXITOSA__CHANNELS", "sms")]);
    let (rules, _) = settings.validate(true).unwrap();
    let pool = cantina_notify::db::pool(&db.url, 2, Duration::from_secs(5)).unwrap();
    cantina_notify::events::drain::drain_batch(&pool, &rules, 10, None).await.unwrap();
    let claimed = store::claim(&pool, 10, Duration::from_secs(60), &["SMS"], 8).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let ids = ["SM\u{0}bad", "SM\u{0}\u{1b}[2Jworse\u{7f}", "SMgood"];
    let warning = "aviso:\u{0} sin id \u{FFFD}";
    let rows: Vec<Sent> = claimed
        .iter()
        .zip(ids)
        .map(|(cl, id)| Sent::new(cl.id, cl.intentos, "twilio", Some(id), Some(warning), None, None))
        .collect();
    let written = write(&pool, &rows.iter().collect::<Vec<_>>()).await.expect("the batch is written");
    assert_eq!(written.len(), 3);
    let stored: Vec<(String, String, String)> = c
        .query("SELECT estado, id_proveedor, ultimo_error FROM solicitudes_notificacion ORDER BY id_proveedor", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let expected_warning = "aviso: sin id \u{FFFD}".to_string();
    assert_eq!(
        stored,
        [
            ("Enviado".into(), "SM[2Jworse".into(), expected_warning.clone()),
            ("Enviado".into(), "SMbad".into(), expected_warning.clone()),
            ("Enviado".into(), "SMgood".into(), expected_warning),
        ]
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM cantina_notify_historial WHERE evento = 'enviada' AND detalle LIKE 'aviso:%'")
            .await,
        3
    );
}

/// A receipt whose id or failure detail carries NUL (Meta's JSON may escape one) used to fail its query, so the
/// webhook answered 500 and the provider retried it for ever. The id is cleaned as the stored one was, so it matches.
#[tokio::test]
async fn a_receipt_with_nul_in_its_id_and_detail_is_applied() {
    use cantina_notify::webhooks::receipt::{DeliveryState, record_receipt_detail, request_address};
    use std::time::Duration;
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, None, Some("0981 000501"), 12_000).await;
    c.execute(
        "INSERT INTO solicitudes_notificacion (id_cliente, nro_tarjeta, destino, destinatario, estado, proveedor,
                                               id_proveedor, intentos)
         VALUES ($1, $2, 'WhatsApp', '+595981000501', 'Enviado', 'meta', 'wamid.A', 1)",
        &[&fam.id_cliente, &fam.nro_tarjeta],
    )
    .await
    .unwrap();
    let pool = cantina_notify::db::pool(&db.url, 2, Duration::from_secs(5)).unwrap();
    let changed =
        record_receipt_detail(&pool, "meta", "wamid.\u{0}A", DeliveryState::Failed, Some("Meta 131026: \u{0}nope"))
            .await
            .expect("the receipt is applied");
    assert!(changed.is_some());
    let r = c.query_one("SELECT estado_entrega, ultimo_error FROM solicitudes_notificacion", &[]).await.unwrap();
    assert_eq!(r.get::<_, Option<String>>(0).as_deref(), Some("failed"));
    assert_eq!(r.get::<_, Option<String>>(1).as_deref(), Some("Meta 131026: nope"));
    let found = request_address(&pool, "meta", "wamid.A\u{0}").await.expect("no error");
    assert!(found.is_some());
    // An id with nothing usable left matches nothing, without an error.
    assert_eq!(record_receipt_detail(&pool, "meta", "\u{0}", DeliveryState::Read, None).await.unwrap(), None);
}

/// A provider that answers 201 and then dribbles its body (a byte a second): the notice was accepted, so it is
/// recorded sent once, with the warning that no id came, and never sent again. The adapter's HTTP deadline comes
/// before the dispatcher's, so the accepted answer is not taken for a timeout.
#[tokio::test]
async fn a_201_whose_body_dribbles_is_sent_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, None, Some("0981 000901"), 12_000).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let double = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut req = vec![0u8; 64 * 1024];
                let _ = sock.read(&mut req).await;
                let head = "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{";
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for b in "\"sid\":\"SMslow\"".bytes().cycle().take(199) {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    if sock.write_all(&[b]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let url = format!("http://{addr}");
    let mut env = vec![
        ("SMS_PROVIDER", "twilio"),
        ("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef"),
        ("TWILIO_AUTH_TOKEN", "secret-token"),
        ("TWILIO_PHONE_NUMBER", "+15005550006"),
        ("TWILIO_API_URL", url.as_str()),
        ("CANTINA__RULES__RECARGA_EXITOSA__CHANNELS", "sms"),
    ];
    env.extend(FAST_LEASE);
    let app = TestApp::start_with(test_settings(&db, &env), None).await;
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado <> 'Pendiente'", 1, LONG).await;
    let r = row(&c, "+595981000901").await;
    let history: Vec<(String, Option<i32>, Option<String>)> = c
        .query(
            "SELECT evento, intentos, detalle FROM cantina_notify_historial WHERE id_solicitud = $1 ORDER BY id",
            &[&r.4],
        )
        .await
        .unwrap()
        .iter()
        .map(|h| (h.get(0), h.get(1), h.get(2)))
        .collect();
    assert_eq!((r.0.as_str(), r.3), ("Enviado", 1), "{r:?} {history:?} calls {}", calls.load(Ordering::SeqCst));
    assert!(r.2.as_deref().is_some_and(|e| e.contains("aviso: Twilio aceptó el envío")), "{r:?}");
    app.stop().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one call to the provider");
    double.abort();
}
