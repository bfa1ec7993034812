//! End to end through the real adapters, configured with the Cantina team's own `.env` names: a real SMTP server
//! (STARTTLS with a self-signed certificate, AUTH), Twilio- and Meta-shaped HTTP doubles, and the portal table.

use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use mailin_embedded::response::OK;
use mailin_embedded::{AuthMechanism, Handler, Server, SslConfig};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

/// (MAIL FROM, RCPT TO, DATA) of each message received.
type Mail = (String, Vec<String>, String);

#[derive(Clone, Default)]
struct Smtp {
    mails: Arc<Mutex<Vec<Mail>>>,
    auth: Arc<Mutex<Vec<(String, String)>>>,
    from: String,
    to: Vec<String>,
    buf: Vec<u8>,
}

impl Handler for Smtp {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> mailin_embedded::Response {
        self.from = from.to_string();
        self.to.clear();
        self.buf.clear();
        OK
    }
    fn rcpt(&mut self, to: &str) -> mailin_embedded::Response {
        self.to.push(to.to_string());
        OK
    }
    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(buf);
        Ok(())
    }
    fn data_end(&mut self) -> mailin_embedded::Response {
        let data = String::from_utf8_lossy(&self.buf).into_owned();
        self.mails.lock().unwrap().push((self.from.clone(), self.to.clone(), data));
        OK
    }
    fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> mailin_embedded::Response {
        self.auth.lock().unwrap().push((user.to_string(), password.to_string()));
        mailin_embedded::response::AUTH_OK
    }
}

/// A real SMTP server on loopback with STARTTLS (self-signed certificate for localhost) and AUTH PLAIN.
fn smtp_server(dir: &std::path::Path) -> (u16, Smtp, String) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handler = Smtp::default();
    let mut server = Server::new(handler.clone());
    server.with_name("localhost").with_tcp_listener(listener).with_auth(AuthMechanism::Plain);
    server
        .with_ssl(SslConfig::SelfSigned { cert_path: cert.display().to_string(), key_path: key.display().to_string() })
        .unwrap();
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    (port, handler, cert.display().to_string())
}

/// Ana Benítez with an email, a phone and a portal account.
async fn family_on_every_channel(c: &tokio_postgres::Client) -> Family {
    let fam = seed_family(c, Some("ana.benitez@example.com"), Some("0981 123456"), 12_000).await;
    c.execute(
        "INSERT INTO usuario_portal (id_cliente, email, activo) VALUES ($1, 'ana.portal@example.com', true)",
        &[&fam.id_cliente],
    )
    .await
    .unwrap();
    fam
}

/// Twilio's `201` to a created message (Messages API).
fn twilio_created() -> serde_json::Value {
    serde_json::json!({"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued"})
}

/// Meta's `200` to an accepted template message (Cloud API).
fn meta_accepted() -> serde_json::Value {
    serde_json::json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": "+595981123456", "wa_id": "595981123456"}],
        "messages": [{"id": "wamid.HBgLNTk1OTgxMTIzNDU2FQIAERgSQ0"}]
    })
}

#[tokio::test]
async fn a_recharge_goes_out_on_every_real_channel() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = family_on_every_channel(&c).await;

    let dir = std::env::temp_dir().join(format!("cn-e2e-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let (smtp_port, smtp, ca) = smtp_server(&dir);
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json"))
        .and(header("authorization", "Basic QUMwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjpzZWNyZXQtdG9rZW4="))
        .and(body_string_contains("To=%2B595981123456"))
        .and(body_string_contains("From=%2B15005550006"))
        .respond_with(ResponseTemplate::new(201).set_body_json(twilio_created()))
        .expect(1)
        .mount(&twilio)
        .await;
    let meta = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v23.0/106540352242922/messages"))
        .and(header("authorization", "Bearer meta-token"))
        .and(body_string_contains("\"name\":\"recarga_exitosa\""))
        .respond_with(ResponseTemplate::new(200).set_body_json(meta_accepted()))
        .expect(1)
        .mount(&meta)
        .await;

    let port = smtp_port.to_string();
    let twilio_url = twilio.uri();
    let meta_url = meta.uri();
    let settings = test_settings(
        &db,
        &[
            ("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend"),
            ("EMAIL_HOST", "localhost"),
            ("EMAIL_PORT", &port),
            ("EMAIL_USE_TLS", "True"),
            ("EMAIL_HOST_USER", "cantina@example.com"),
            ("EMAIL_HOST_PASSWORD", "app-password"),
            ("DEFAULT_FROM_EMAIL", "Cantina Tita <noreply@cantinatita.com.py>"),
            ("CANTINA__EMAIL__CA_FILE", &ca),
            ("SMS_PROVIDER", "twilio"),
            ("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef"),
            ("TWILIO_AUTH_TOKEN", "secret-token"),
            ("TWILIO_PHONE_NUMBER", "+15005550006"),
            ("TWILIO_API_URL", &twilio_url),
            ("WHATSAPP_PROVIDER", "business_api"),
            ("WHATSAPP_ACCESS_TOKEN", "meta-token"),
            ("WHATSAPP_PHONE_NUMBER_ID", "106540352242922"),
            ("WHATSAPP_API_URL", &meta_url),
            ("CANTINA__RULES__RECARGA_EXITOSA__CHANNELS", "email,sms,whatsapp,portal"),
        ],
    );
    let app = TestApp::start_with(settings, None).await;
    recharge(&c, &fam.nro_tarjeta, 50_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 4, SHORT).await;

    let rows = c
        .query("SELECT destino, proveedor, id_proveedor FROM solicitudes_notificacion ORDER BY destino", &[])
        .await
        .unwrap();
    let got: Vec<(String, String, String)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(got[0].0, "Email");
    assert_eq!(got[0].1, "smtp");
    assert!(!got[0].2.is_empty());
    assert!(got[1].0 == "Portal" && got[1].1 == "portal" && got[1].2.starts_with("notificacion:"), "{got:?}");
    assert_eq!(
        (got[2].0.as_str(), got[2].1.as_str(), got[2].2.as_str()),
        ("SMS", "twilio", "SM0123456789abcdef0123456789abcdef")
    );
    assert_eq!(
        (got[3].0.as_str(), got[3].1.as_str(), got[3].2.as_str()),
        ("WhatsApp", "meta", "wamid.HBgLNTk1OTgxMTIzNDU2FQIAERgSQ0")
    );

    let mails = smtp.mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].1, ["ana.benitez@example.com"]);
    assert!(mails[0].2.contains("multipart/alternative"));
    assert_eq!(smtp.auth.lock().unwrap().clone(), [("cantina@example.com".to_string(), "app-password".to_string())]);
    let portal: (String, String) = {
        let r = c.query_one("SELECT tipo, titulo FROM notificacion", &[]).await.unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(portal.0, "recarga_exitosa");
    assert!(portal.1.contains("Gs. 50.000"), "{portal:?}");
    app.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_401_pauses_the_channel_with_one_staff_alert_and_a_probe_resumes_it() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, None, Some("0981 123456"), 12_000).await;
    let twilio = MockServer::start().await;
    let send_path = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json";
    Mock::given(method("POST"))
        .and(path(send_path))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401
        })))
        .mount(&twilio)
        .await;
    let probe_path = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef.json";
    Mock::given(method("GET"))
        .and(path(probe_path))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(serde_json::json!({"code": 20003, "message": "Authenticate", "status": 401})),
        )
        .up_to_n_times(1)
        .mount(&twilio)
        .await;
    let twilio_url = twilio.uri();
    let settings = test_settings(
        &db,
        &[
            ("SMS_PROVIDER", "twilio"),
            ("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef"),
            ("TWILIO_AUTH_TOKEN", "expired-token"),
            ("TWILIO_PHONE_NUMBER", "+15005550006"),
            ("TWILIO_API_URL", &twilio_url),
            ("CANTINA__RULES__RECARGA_EXITOSA__CHANNELS", "sms"),
            ("CANTINA__LIMITS__SMS__PER_SECOND", "0"),
            ("CANTINA__DISPATCH__PROBE_INTERVAL_SECONDS", "1"),
        ],
    );
    let app = TestApp::start_with(settings, None).await;
    for _ in 0..5 {
        recharge(&c, &fam.nro_tarjeta, 1_000).await;
    }
    wait_count(&c, "SELECT count(*) FROM alertas_sistema WHERE tipo = 'SISTEMA' AND estado = 'Pendiente'", 1, SHORT)
        .await;
    let metrics = app.metrics.clone();
    poll_until("channel paused", SHORT, || {
        let m = metrics.clone();
        async move {
            m.encode().contains(r#"cantina_notify_channel_paused{channel="sms",provider="twilio"} 1"#).then_some(())
        }
    })
    .await;
    // Nothing is burnt: the requests wait as Pendiente, none is Error, and only one alert was raised.
    assert_eq!(count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Error'").await, 0);
    // (All five recharges have become requests once they are drained; wait for that, not for a fixed time.)
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Pendiente'", 5, SHORT).await;
    assert_eq!(count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Error'").await, 0);
    let alert: String = c.query_one("SELECT mensaje FROM alertas_sistema", &[]).await.unwrap().get(0);
    assert!(
        alert.contains("canal SMS pausado") && alert.contains("20003") && !alert.contains("expired-token"),
        "{alert}"
    );

    // The credentials are fixed at Twilio: the probe passes, the channel resumes and the queue drains.
    twilio.reset().await;
    Mock::given(method("GET"))
        .and(path(probe_path))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"sid": "AC0123456789abcdef0123456789abcdef", "status": "active"})),
        )
        .mount(&twilio)
        .await;
    Mock::given(method("POST"))
        .and(path(send_path))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(serde_json::json!({"sid": "SM0123456789abcdef0123456789abcdef"})),
        )
        .mount(&twilio)
        .await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 5, SHORT).await;
    wait_count(&c, "SELECT count(*) FROM alertas_sistema WHERE estado = 'Resuelta'", 1, SHORT).await;
    assert_eq!(count(&c, "SELECT count(*) FROM alertas_sistema").await, 1);
    app.stop().await;
}

/// The binary at `RUST_LOG=trace` (every module, the libraries included) over a whole flow through the real
/// adapters: a recharge on every channel, a sale below the threshold, a POS request. Nothing it prints holds an
/// address, a phone, a name, a balance or a secret: tokio-postgres logs statement parameters at debug, lettre the
/// SMTP conversation.
#[tokio::test]
async fn nothing_personal_or_secret_is_logged_at_trace() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = family_on_every_channel(&c).await;
    let dir = std::env::temp_dir().join(format!("cn-trace-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let (smtp_port, smtp, ca) = smtp_server(&dir);
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(twilio_created()))
        .mount(&twilio)
        .await;
    let meta = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(meta_accepted()))
        .mount(&meta)
        .await;
    let addr =
        format!("127.0.0.1:{}", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
    let log = dir.join("stderr.log");
    let out = dir.join("stdout.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cantina-notify"))
        .arg("run")
        .env("CANTINA__DATABASE__SIGNING_KEY", TEST_SIGNING_KEY)
        .current_dir(&dir)
        .env("RUST_LOG", "trace")
        .env("DATABASE_URL", &db.url)
        .env("CANTINA__HTTP__ADDR", &addr)
        .env("CANTINA__SCHEDULER__ENABLED", "false")
        .env("CANTINA__DISPATCH__POLL_INTERVAL_MS", "50")
        .env("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
        .env("EMAIL_HOST", "localhost")
        .env("EMAIL_PORT", smtp_port.to_string())
        .env("EMAIL_USE_TLS", "True")
        .env("EMAIL_HOST_USER", "cantina@example.com")
        .env("EMAIL_HOST_PASSWORD", "app-password-7781")
        .env("CANTINA__EMAIL__CA_FILE", &ca)
        .env("SMS_PROVIDER", "twilio")
        .env("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef")
        .env("TWILIO_AUTH_TOKEN", "twilio-token-5521")
        .env("TWILIO_PHONE_NUMBER", "+15005550006")
        .env("TWILIO_API_URL", twilio.uri())
        .env("WHATSAPP_PROVIDER", "business_api")
        .env("WHATSAPP_ACCESS_TOKEN", "meta-token-9932")
        .env("WHATSAPP_PHONE_NUMBER_ID", "106540352242922")
        .env("WHATSAPP_API_URL", meta.uri())
        .env("CANTINA__RULES__RECARGA_EXITOSA__CHANNELS", "email,sms,whatsapp,portal")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    poll_until("healthy", SHORT, || async {
        cantina_notify::http::get_url(&addr, "/readyz", std::time::Duration::from_secs(1))
            .await
            .ok()
            .filter(|(status, _)| *status == 200)
    })
    .await;
    recharge(&c, &fam.nro_tarjeta, 50_000).await;
    consume(&c, &fam.nro_tarjeta, 60_000).await;
    pos_manual_request(&c, &fam).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 6, SHORT).await;
    assert_eq!(smtp.mails.lock().unwrap().len(), 3, "recharge, low balance and the POS request by email");
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}");

    let printed = std::fs::read_to_string(&log).unwrap() + &std::fs::read_to_string(&out).unwrap();
    // The level took effect: the service's own debug lines are there (the libraries' are held at INFO).
    assert!(printed.lines().any(|l| l.contains("DEBUG cantina_notify")), "{printed}");
    let forbidden = [
        "ana.benitez@example.com",
        "ana.portal@example.com",
        "981123456",
        "981 123456",
        "Benítez",
        "Ben\\u{ed}tez",
        "Luis",
        "62.000",
        "62000",
        "app-password-7781",
        "twilio-token-5521",
        "meta-token-9932",
        // Twilio's Basic credentials and SMTP's AUTH PLAIN, base64.
        "QUMwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjp0d2lsaW8tdG9rZW4tNTUyMQ",
        "Y2FudGluYUBleGFtcGxlLmNvbQBhcHAtcGFzc3dvcmQtNzc4MQ",
    ];
    let leaks: Vec<String> = printed
        .lines()
        .filter(|l| forbidden.iter().any(|f| l.contains(f)))
        .map(|l| l.chars().take(300).collect())
        .collect();
    assert!(leaks.is_empty(), "{} lines leak:\n{}", leaks.len(), leaks.join("\n"));
    std::fs::remove_dir_all(dir).unwrap();
}
