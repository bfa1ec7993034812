use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use mailin_embedded::response::{INTERNAL_ERROR, NO_MAILBOX, OK};
use mailin_embedded::{AuthMechanism, Handler, Server, SslConfig};

use super::*;
use crate::channels::test_support;

#[test]
fn enhanced_status_codes_are_found_in_reply_texts() {
    assert_eq!(enhanced_code("5.7.1 Relay access denied").as_deref(), Some("5.7.1"));
    assert_eq!(
        enhanced_code("Daily user sending limit exceeded. 5.4.5 https://support.google.com").as_deref(),
        Some("5.4.5")
    );
    assert_eq!(enhanced_code("<ana@x.py>: Recipient address rejected (5.1.1)").as_deref(), Some("5.1.1"));
    assert_eq!(enhanced_code("Mailbox unavailable").as_deref(), None);
    assert_eq!(enhanced_code("version 1.2.3.4 here").as_deref(), None);
}

#[test]
fn recipient_addresses_are_masked_in_reasons() {
    let to = crate::rules::Recipient::Email(EmailAddress::parse(Some("Ana.B@example.com")).unwrap());
    let e = mask_address(
        SendError::Permanent { reason: "550 5.1.1 <Ana.B@example.com>: unknown; ana.b@example.com".into() },
        &to,
    );
    assert_eq!(e, SendError::Permanent { reason: "550 5.1.1 <A***@example.com>: unknown; A***@example.com".into() });
}
use crate::domain::{EmailAddress, Guaranies, NotificationType};
use crate::rules::MessageData;

// ---- a real SMTP server (mailin-embedded), in process ----

#[derive(Debug, Clone, PartialEq)]
struct Received {
    from: String,
    to: Vec<String>,
    data: String,
}

#[derive(Default)]
struct Seen {
    auth: Vec<(&'static str, String, String)>,
    mails: Vec<Received>,
}

#[derive(Clone, Copy)]
enum AuthReply {
    Accept,
    Reject535,
    Gmail534,
}

#[derive(Clone)]
struct Recorder {
    seen: Arc<Mutex<Seen>>,
    auth_reply: AuthReply,
    /// Recipients answered 550 / 451.
    reject: Option<String>,
    defer: Option<String>,
    /// Answer MAIL FROM as SES does for an unverified sender.
    reject_sender: bool,
    // Per connection (each session gets a fresh clone).
    from: String,
    to: Vec<String>,
    buf: Vec<u8>,
}

impl Recorder {
    fn new(auth_reply: AuthReply) -> Self {
        Self {
            seen: Arc::default(),
            auth_reply,
            reject: None,
            defer: None,
            reject_sender: false,
            from: String::new(),
            to: Vec::new(),
            buf: Vec::new(),
        }
    }

    fn auth(&mut self, mechanism: &'static str, user: &str, password: &str) -> mailin_embedded::Response {
        self.seen.lock().unwrap().auth.push((mechanism, user.to_string(), password.to_string()));
        match self.auth_reply {
            AuthReply::Accept => mailin_embedded::response::AUTH_OK,
            AuthReply::Reject535 => {
                mailin_embedded::Response::custom(535, "5.7.8 Username and Password not accepted".into())
            }
            AuthReply::Gmail534 => mailin_embedded::Response::custom(
                534,
                "5.7.9 Application-specific password required. For more information, go to \
                     https://support.google.com/mail/?p=InvalidSecondFactor"
                    .into(),
            ),
        }
    }
}

impl Handler for Recorder {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> mailin_embedded::Response {
        if self.reject_sender {
            return mailin_embedded::Response::custom(
                554,
                format!(
                    "Message rejected: Email address is not verified. The following identities failed the check \
                         in region US-EAST-1: {from}"
                ),
            );
        }
        self.from = from.to_string();
        self.to.clear();
        self.buf.clear();
        OK
    }

    fn rcpt(&mut self, to: &str) -> mailin_embedded::Response {
        if self.reject.as_deref() == Some(to) {
            return NO_MAILBOX;
        }
        if self.defer.as_deref() == Some(to) {
            return INTERNAL_ERROR;
        }
        self.to.push(to.to_string());
        OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        let data = String::from_utf8_lossy(&self.buf).into_owned();
        self.seen.lock().unwrap().mails.push(Received { from: self.from.clone(), to: self.to.clone(), data });
        OK
    }

    fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> mailin_embedded::Response {
        self.auth("PLAIN", user, password)
    }

    fn auth_login(&mut self, user: &str, password: &str) -> mailin_embedded::Response {
        self.auth("LOGIN", user, password)
    }
}

struct Pki {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A self-signed certificate for `localhost`, in a temporary directory.
fn pki() -> Pki {
    let dir = std::env::temp_dir().join(format!("cn-smtp-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    Pki { dir, cert, key }
}

/// Starts the server on a free loopback port (bound before returning, so there is no race) and returns the port.
fn start(handler: Recorder, tls: Option<&Pki>, auth: &[AuthMechanism]) -> u16 {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut server = Server::new(handler);
    server.with_name("localhost").with_tcp_listener(listener);
    if let Some(p) = tls {
        server
            .with_ssl(SslConfig::SelfSigned {
                cert_path: p.cert.display().to_string(),
                key_path: p.key.display().to_string(),
            })
            .unwrap();
    }
    for m in auth {
        server.with_auth(m.clone());
    }
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    port
}

fn settings(port: u16, ca: Option<&Pki>) -> Settings {
    let mut s = Settings::default();
    s.email.backend = "django.core.mail.backends.smtp.EmailBackend".into();
    s.email.host = "localhost".into();
    s.email.port = Some(port);
    s.email.use_tls = Some(true);
    s.email.host_user = Some("cantina@cantinatita.com.py".into());
    s.email.host_password = Some(Secret::new("app-pass-1234"));
    s.email.from = "Cantina Tita <noreply@cantinatita.com.py>".into();
    s.email.ca_file = ca.map(|p| p.cert.display().to_string());
    s.email.timeout_seconds = 10;
    s.portal.base_url = "https://portal.cantinatita.com.py/".into();
    s
}

fn data() -> MessageData {
    MessageData::RecargaExitosa {
        padre: "Begoña Álvarez".into(),
        alumno: "<script>alert(1)</script> Ñandú".into(),
        nro_tarjeta: "TAR-0042".into(),
        monto: Guaranies(50_000),
        saldo: Guaranies(75_500),
        fecha: "23/11/2026 19:45".into(),
        referencia: Some("₲ pago QR-77".into()),
    }
}

fn message(to: &str) -> OutgoingMessage {
    let data = data();
    let r = crate::render::render(&data, "https://portal.cantinatita.com.py").unwrap();
    OutgoingMessage {
        request_id: 41,
        idempotency_key: "recarga_exitosa:9001:email".into(),
        subject: "Recarga acreditada: ₲ 50.000 para Begoña Ñandú, mamá".into(),
        html: r.html,
        text: r.text,
        short_text: r.short,
        ..test_support::message(ChannelKind::Email, test_support::email(to), data)
    }
}

// ---- a small MIME reader, for asserting on decoded content ----

struct Mime {
    headers: Vec<(String, String)>,
    body: String,
}

impl Mime {
    fn parse(raw: &str) -> Mime {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = raw.split_once("\n\n").unwrap();
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                let last = headers.last_mut().unwrap();
                last.1.push_str(line); // unfolding keeps the whitespace
            } else {
                let (k, v) = line.split_once(':').unwrap();
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        Mime { headers, body: body.to_string() }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> usize {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).count()
    }

    fn decoded_header(&self, name: &str) -> String {
        decode_words(self.header(name).unwrap())
    }

    fn boundary(&self) -> String {
        let ct = self.header("Content-Type").unwrap();
        let b = ct.split("boundary=").nth(1).unwrap();
        b.split(';').next().unwrap().trim().trim_matches('"').to_string()
    }

    fn parts(&self) -> Vec<Mime> {
        let delimiter = format!("--{}", self.boundary());
        let mut parts = Vec::new();
        for chunk in self.body.split(&delimiter).skip(1) {
            if chunk.starts_with("--") {
                break;
            }
            parts.push(Mime::parse(chunk.trim_start_matches('\n')));
        }
        parts
    }

    fn decoded_body(&self) -> String {
        let bytes = match self.header("Content-Transfer-Encoding").unwrap_or("7bit").to_ascii_lowercase().as_str() {
            "quoted-printable" => decode_qp(&self.body),
            "base64" => base64::engine::general_purpose::STANDARD
                .decode(self.body.split_whitespace().collect::<String>())
                .unwrap(),
            "7bit" | "8bit" => self.body.clone().into_bytes(),
            other => panic!("unexpected transfer encoding {other}"),
        };
        String::from_utf8(bytes).unwrap().trim_end_matches('\n').to_string()
    }
}

fn hex(s: &[u8]) -> u8 {
    u8::from_str_radix(std::str::from_utf8(s).unwrap(), 16).unwrap()
}

fn decode_qp(body: &str) -> Vec<u8> {
    let joined = body.replace("=\n", "");
    let b = joined.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            out.push(hex(&b[i + 1..i + 3]));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// RFC 2047 encoded words (`=?utf-8?b?…?=` / `?q?`); whitespace between adjacent words is dropped.
fn decode_words(value: &str) -> String {
    let mut out: Vec<u8> = Vec::new();
    let mut rest = value;
    let mut after_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, word) = rest.split_at(start);
        let mut fields = word[2..].splitn(3, '?');
        let (_charset, enc, tail) = (fields.next().unwrap(), fields.next().unwrap(), fields.next().unwrap());
        let end = tail.find("?=").unwrap();
        let text = &tail[..end];
        if !(after_word && before.trim().is_empty()) {
            out.extend_from_slice(before.as_bytes());
        }
        match enc {
            "b" | "B" => out.extend(base64::engine::general_purpose::STANDARD.decode(text).unwrap()),
            _ => out.extend(decode_qp(&text.replace('_', " "))),
        }
        rest = &tail[end + 2..];
        after_word = true;
    }
    out.extend_from_slice(rest.as_bytes());
    String::from_utf8(out).unwrap()
}

// ---- tests ----

#[tokio::test]
async fn starttls_auth_plain_delivers_a_multipart_alternative_utf8_message() {
    let pki = pki();
    let server = Recorder::new(AuthReply::Accept);
    let seen = server.seen.clone();
    let port = start(server, Some(&pki), &[AuthMechanism::Plain]);
    let channel = SmtpChannel::from_settings(&settings(port, Some(&pki))).unwrap();
    assert_eq!(channel.provider(), "smtp");
    assert_eq!(channel.kind(), ChannelKind::Email);
    assert_eq!(channel.default_per_second(), 10.0);

    let msg = message("Padre.Perez@Example.COM");
    let receipt = channel.send(&msg).await.unwrap();
    let message_id = channel.config.message_id_key.message_id("recarga_exitosa:9001:email", 41, "cantinatita.com.py");
    assert_eq!(receipt.provider_message_id.as_deref(), Some(message_id.trim_matches(['<', '>'])));

    let seen = seen.lock().unwrap();
    // AUTH is only offered after STARTTLS by this server: seeing it proves the session was encrypted.
    assert_eq!(seen.auth, vec![("PLAIN", "cantina@cantinatita.com.py".to_string(), "app-pass-1234".to_string())]);
    assert_eq!(seen.mails.len(), 1);
    let mail = &seen.mails[0];
    assert_eq!(mail.from, "noreply@cantinatita.com.py");
    assert_eq!(mail.to, vec!["Padre.Perez@example.com".to_string()]);
    assert!(mail.data.is_ascii(), "the message travels 7-bit clean");

    let mime = Mime::parse(&mail.data);
    assert_eq!(mime.header("From"), Some("\"Cantina Tita\" <noreply@cantinatita.com.py>"));
    assert_eq!(mime.header("To"), Some("Padre.Perez@example.com"));
    assert_eq!(mime.decoded_header("Subject"), "Recarga acreditada: ₲ 50.000 para Begoña Ñandú, mamá");
    assert_eq!(mime.header("Message-ID"), Some(message_id.as_str()));
    assert_eq!(mime.header("X-Cantina-Clave"), Some("recarga_exitosa:9001:email"));
    assert_eq!(mime.header("List-Unsubscribe"), Some("<https://portal.cantinatita.com.py/preferencias>"));
    assert_eq!(mime.header("MIME-Version"), Some("1.0"));
    assert_eq!(mime.all("Date"), 1);
    assert!(mime.header("Content-Type").unwrap().starts_with("multipart/alternative"));

    let parts = mime.parts();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].header("Content-Type"), Some("text/plain; charset=utf-8"));
    assert_eq!(parts[1].header("Content-Type"), Some("text/html; charset=utf-8"));
    let (text, html) = (parts[0].decoded_body(), parts[1].decoded_body());
    assert_eq!(text, msg.text.replace("\r\n", "\n").trim_end_matches('\n'));
    assert_eq!(html, msg.html.replace("\r\n", "\n").trim_end_matches('\n'));
    for needle in ["Begoña Álvarez", "Ñandú", "₲ pago QR-77", "Gs. 50.000"] {
        assert!(text.contains(needle), "text part lacks {needle}: {text}");
        assert!(html.contains(needle), "html part lacks {needle}");
    }
    assert!(text.contains("<script>alert(1)</script>"), "plain text keeps the name as typed");
    assert!(html.contains("&lt;script&gt;"), "html part escapes the name");
    assert!(!html.contains("<script>"), "no live script tag in the html part");
}

#[tokio::test]
async fn auth_login_is_used_when_the_server_offers_only_login_and_connections_are_pooled() {
    let pki = pki();
    let server = Recorder::new(AuthReply::Accept);
    let seen = server.seen.clone();
    let port = start(server, Some(&pki), &[AuthMechanism::Login]);
    let channel = SmtpChannel::from_settings(&settings(port, Some(&pki))).unwrap();
    channel.send(&message("a@example.com")).await.unwrap();
    // lettre parks a used connection from a spawned task: wait for that state, then send again.
    let mut spins = 0;
    while !format!("{:?}", channel.transport()).contains("\"1 connections\"") {
        spins += 1;
        assert!(spins < 10_000, "the connection was never returned to the pool");
        tokio::task::yield_now().await;
    }
    channel.send(&message("b@example.com")).await.unwrap();
    let seen = seen.lock().unwrap();
    // One AUTH for two messages: the second reused the pooled, authenticated connection.
    assert_eq!(seen.auth, vec![("LOGIN", "cantina@cantinatita.com.py".to_string(), "app-pass-1234".to_string())]);
    let to: Vec<_> = seen.mails.iter().map(|m| m.to.clone()).collect();
    assert_eq!(to, vec![vec!["a@example.com".to_string()], vec!["b@example.com".to_string()]]);
}

#[tokio::test]
async fn a_5xx_for_the_recipient_is_permanent_and_a_4xx_is_transient() {
    let pki = pki();
    let mut server = Recorder::new(AuthReply::Accept);
    server.reject = Some("no-existe@example.com".into());
    server.defer = Some("lleno@example.com".into());
    let port = start(server, Some(&pki), &[AuthMechanism::Plain]);
    let channel = SmtpChannel::from_settings(&settings(port, Some(&pki))).unwrap();

    let err = channel.send(&message("no-existe@example.com")).await.unwrap_err();
    assert_eq!(err, SendError::Permanent { reason: format!("SMTP 550 de localhost:{port}: Mailbox unavailable") });

    let err = channel.send(&message("lleno@example.com")).await.unwrap_err();
    assert_eq!(
        err,
        SendError::Transient {
            reason: format!("SMTP 451 de localhost:{port} (temporal): Aborted: local error in processing"),
            retry_after: None
        }
    );
    // The channel still works afterwards.
    channel.send(&message("ok@example.com")).await.unwrap();
}

#[tokio::test]
async fn a_rejected_sender_is_a_configuration_error() {
    let pki = pki();
    let mut server = Recorder::new(AuthReply::Accept);
    server.reject_sender = true;
    let port = start(server, Some(&pki), &[AuthMechanism::Plain]);
    let channel = SmtpChannel::from_settings(&settings(port, Some(&pki))).unwrap();
    let SendError::Configuration { reason } = channel.send(&message("a@example.com")).await.unwrap_err() else {
        panic!("expected a configuration error")
    };
    assert!(reason.starts_with(&format!("SMTP 554 de localhost:{port}: el servidor no acepta el remitente noreply@cantinatita.com.py: Message rejected: Email address is not verified.")), "{reason}");
    assert!(reason.ends_with("revise DEFAULT_FROM_EMAIL"), "{reason}");
}

#[tokio::test]
async fn rejected_credentials_are_a_configuration_error_naming_the_keys_not_the_password() {
    let pki = pki();
    let port = start(Recorder::new(AuthReply::Reject535), Some(&pki), &[AuthMechanism::Plain]);
    let channel = SmtpChannel::from_settings(&settings(port, Some(&pki))).unwrap();
    let SendError::Configuration { reason } = channel.send(&message("a@example.com")).await.unwrap_err() else {
        panic!("expected a configuration error")
    };
    assert!(reason.starts_with(&format!("SMTP 535 de localhost:{port}: autenticación rechazada")), "{reason}");
    assert!(reason.contains("EMAIL_HOST_USER / EMAIL_HOST_PASSWORD"), "{reason}");
    assert!(!reason.contains("app-pass-1234"), "{reason}");
    let probe = channel.probe().await.unwrap_err();
    assert!(matches!(probe, SendError::Configuration { .. }), "{probe:?}");
}

#[tokio::test]
async fn gmail_application_specific_password_required_is_a_configuration_error() {
    let pki = pki();
    let port = start(Recorder::new(AuthReply::Gmail534), Some(&pki), &[AuthMechanism::Plain]);
    let channel = SmtpChannel::from_settings(&settings(port, Some(&pki))).unwrap();
    let SendError::Configuration { reason } = channel.send(&message("a@example.com")).await.unwrap_err() else {
        panic!("expected a configuration error")
    };
    assert!(reason.contains("SMTP 534"), "{reason}");
    assert!(reason.contains("Application-specific password required"), "{reason}");
    assert!(reason.contains("contraseña de aplicación"), "{reason}");
    assert!(reason.contains("EMAIL_HOST_USER / EMAIL_HOST_PASSWORD"), "{reason}");
    assert!(!reason.contains("app-pass-1234"), "{reason}");
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_configuration_error() {
    let pki = pki();
    let server = Recorder::new(AuthReply::Accept);
    let seen = server.seen.clone();
    let port = start(server, Some(&pki), &[AuthMechanism::Plain]);
    // No CA file: the self-signed certificate is not trusted.
    let channel = SmtpChannel::from_settings(&settings(port, None)).unwrap();
    let SendError::Configuration { reason } = channel.send(&message("a@example.com")).await.unwrap_err() else {
        panic!("expected a configuration error")
    };
    assert!(reason.contains("certificado TLS no válido"), "{reason}");
    assert!(reason.contains("CANTINA__EMAIL__CA_FILE"), "{reason}");
    assert!(seen.lock().unwrap().auth.is_empty(), "no credentials were sent to an untrusted server");
}

#[tokio::test]
async fn a_server_without_starttls_is_refused_unless_plain_smtp_is_explicit() {
    let server = Recorder::new(AuthReply::Accept);
    let seen = server.seen.clone();
    let port = start(server, None, &[]);
    let mut s = settings(port, None);
    s.email.host_user = None;
    s.email.host_password = None;
    let channel = SmtpChannel::from_settings(&s).unwrap();
    let SendError::Configuration { reason } = channel.send(&message("a@example.com")).await.unwrap_err() else {
        panic!("expected a configuration error")
    };
    assert!(reason.contains("no ofrece STARTTLS"), "{reason}");
    assert!(seen.lock().unwrap().mails.is_empty());

    s.email.use_tls = Some(false);
    s.email.use_ssl = Some(false);
    let plain = SmtpChannel::from_settings(&s).unwrap();
    plain.send(&message("a@example.com")).await.unwrap();
    assert_eq!(seen.lock().unwrap().mails.len(), 1);
    plain.probe().await.unwrap();
}

#[tokio::test]
async fn a_server_that_is_not_listening_is_transient() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut s = settings(port, None);
    s.email.host = "127.0.0.1".into();
    let channel = SmtpChannel::from_settings(&s).unwrap();
    let err = channel.send(&message("a@example.com")).await.unwrap_err();
    assert!(
        matches!(&err, SendError::Transient { reason, retry_after: None } if reason.starts_with(&format!("SMTP 127.0.0.1:{port}: "))),
        "{err:?}"
    );
    assert!(matches!(channel.probe().await, Err(SendError::Transient { .. })));
}

#[tokio::test]
async fn probe_succeeds_with_good_credentials() {
    let pki = pki();
    let server = Recorder::new(AuthReply::Accept);
    let seen = server.seen.clone();
    let port = start(server, Some(&pki), &[AuthMechanism::Plain]);
    let channel = SmtpChannel::from_settings(&settings(port, Some(&pki))).unwrap();
    channel.probe().await.unwrap();
    assert_eq!(seen.lock().unwrap().auth.len(), 1, "the probe authenticates");
}

#[test]
fn a_used_channel_can_be_dropped_after_its_runtime_is_gone() {
    let pki = pki();
    let port = start(Recorder::new(AuthReply::Accept), Some(&pki), &[AuthMechanism::Plain]);
    let channel = SmtpChannel::from_settings(&settings(port, Some(&pki))).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(channel.send(&message("a@example.com"))).unwrap();
    drop(rt);
    drop(channel);
}

#[test]
fn a_non_email_recipient_is_permanent() {
    let channel = SmtpChannel::from_settings(&settings(2525, None)).unwrap();
    let mut msg = message("a@example.com");
    msg.recipient = Recipient::Portal { id_cliente: 7 };
    assert!(matches!(channel.build_message(&msg), Err(SendError::Permanent { .. })));
}

// ---- configuration ----

fn resolve(f: impl FnOnce(&mut Settings)) -> Result<SmtpConfig, String> {
    let mut s = settings(0, None);
    s.email.port = None;
    s.email.use_tls = None;
    f(&mut s);
    SmtpConfig::resolve(&s)
}

#[test]
fn tls_modes_and_default_ports() {
    let c = resolve(|_| {}).unwrap();
    assert_eq!((c.security, c.port), (Security::StartTls, 587));
    let c = resolve(|s| s.email.use_tls = Some(true)).unwrap();
    assert_eq!((c.security, c.port), (Security::StartTls, 587));
    let c = resolve(|s| s.email.use_ssl = Some(true)).unwrap();
    assert_eq!((c.security, c.port), (Security::Implicit, 465));
    let c = resolve(|s| {
        s.email.use_tls = Some(false);
        s.email.use_ssl = Some(true);
    })
    .unwrap();
    assert_eq!((c.security, c.port), (Security::Implicit, 465));
    let c = resolve(|s| {
        s.email.use_tls = Some(false);
        s.email.use_ssl = Some(false);
    })
    .unwrap();
    assert_eq!((c.security, c.port), (Security::Plain, 25));
    let c = resolve(|s| s.email.port = Some(2525)).unwrap();
    assert_eq!((c.security, c.port), (Security::StartTls, 2525));
    assert_eq!(c.unsubscribe, "<https://portal.cantinatita.com.py/preferencias>");
    assert_eq!(c.timeout, Duration::from_secs(10));
    assert_eq!(c.from.to_string(), "Cantina Tita <noreply@cantinatita.com.py>");
}

#[test]
fn bad_or_missing_keys_are_named() {
    let err = resolve(|s| {
        s.email.use_tls = Some(true);
        s.email.use_ssl = Some(true);
    })
    .err()
    .unwrap();
    assert!(err.contains("EMAIL_USE_TLS and EMAIL_USE_SSL are both True"), "{err}");
    let err = resolve(|s| s.email.use_tls = Some(false)).err().unwrap();
    assert!(err.contains("EMAIL_USE_SSL=False"), "{err}");
    let err = resolve(|s| s.email.host_password = None).err().unwrap();
    assert!(err.contains("EMAIL_HOST_PASSWORD"), "{err}");
    let err = resolve(|s| s.email.host_user = None).err().unwrap();
    assert!(err.contains("EMAIL_HOST_USER"), "{err}");
    let err = resolve(|s| s.email.host = " ".into()).err().unwrap();
    assert!(err.contains("EMAIL_HOST"), "{err}");
    let err = resolve(|s| s.email.from = "Cantina Tita".into()).err().unwrap();
    assert!(err.contains("DEFAULT_FROM_EMAIL"), "{err}");
    let err = resolve(|s| s.email.ca_file = Some("/nonexistent/ca.pem".into())).err().unwrap();
    assert!(err.contains("CANTINA__EMAIL__CA_FILE"), "{err}");
    let err = resolve(|s| s.email.backend = "sendgrid".into()).err().unwrap();
    assert!(err.contains("EMAIL_BACKEND"), "{err}");
    // No AUTH at all is fine (a relay that trusts the network).
    let c = resolve(|s| {
        s.email.host_user = None;
        s.email.host_password = None;
    })
    .unwrap();
    assert!(c.credentials.is_none());
}

#[test]
fn debug_output_has_no_secrets() {
    let channel = SmtpChannel::from_settings(&settings(2525, None)).unwrap();
    let debug = format!("{channel:?}");
    assert!(!debug.contains("app-pass-1234"), "{debug}");
    assert!(debug.contains("localhost"), "{debug}");
}

#[test]
fn ses_uses_the_regional_endpoint_with_derived_credentials() {
    let mut s = Settings::default();
    s.email.backend = "django_ses.SESBackend".into();
    s.email.aws_access_key_id = Some("AKIAIOSFODNN7EXAMPLE".into());
    s.email.aws_secret_access_key = Some(Secret::new("some+secret+key"));
    s.email.aws_ses_region_name = Some("eu-central-1".into());
    // EMAIL_HOST / EMAIL_PORT / EMAIL_USE_* do not apply to SES.
    s.email.use_ssl = Some(true);
    let c = SmtpConfig::resolve(&s).unwrap();
    assert_eq!(c.provider, "ses");
    assert_eq!(c.host, "email-smtp.eu-central-1.amazonaws.com");
    assert_eq!((c.port, c.security), (587, Security::StartTls));
    let (user, password) = c.credentials.as_ref().unwrap();
    assert_eq!(user, "AKIAIOSFODNN7EXAMPLE");
    assert_eq!(password.expose(), "BMXhUYlu5Z3gSXVQORxlVa7XPaz91aGWdfHxvkOZdWZ2");
    assert!(c.credential_keys.contains("AWS_SECRET_ACCESS_KEY"));
    let channel = SmtpChannel::from_settings(&s).unwrap();
    assert_eq!(channel.provider(), "ses");

    s.email.aws_secret_access_key = None;
    s.email.aws_ses_region_name = None;
    let err = SmtpConfig::resolve(&s).err().unwrap();
    assert!(err.contains("AWS_SES_REGION_NAME") && err.contains("AWS_SECRET_ACCESS_KEY"), "{err}");
    assert!(!err.contains("AWS_ACCESS_KEY_ID"), "{err}");
}

/// django-ses's `AWS_SES_REGION_ENDPOINT` gives the region when `AWS_SES_REGION_NAME` is unset; the two must
/// agree; anything but an SES host is refused without being quoted.
#[test]
fn ses_takes_the_region_from_django_ses_endpoint() {
    let mut s = Settings::default();
    s.email.backend = "django_ses.SESBackend".into();
    s.email.aws_access_key_id = Some("AKIAIOSFODNN7EXAMPLE".into());
    s.email.aws_secret_access_key = Some(Secret::new("some+secret+key"));
    for endpoint in ["email.eu-central-1.amazonaws.com", "email-smtp.eu-central-1.amazonaws.com"] {
        s.email.aws_ses_region_endpoint = Some(endpoint.into());
        let c = SmtpConfig::resolve(&s).unwrap();
        assert_eq!(c.host, "email-smtp.eu-central-1.amazonaws.com", "{endpoint}");
        assert_eq!(c.credentials.unwrap().1.expose(), "BMXhUYlu5Z3gSXVQORxlVa7XPaz91aGWdfHxvkOZdWZ2");
    }
    s.email.aws_ses_region_name = Some("eu-central-1".into());
    assert_eq!(SmtpConfig::resolve(&s).unwrap().host, "email-smtp.eu-central-1.amazonaws.com");

    s.email.aws_ses_region_name = Some("us-east-1".into());
    let err = SmtpConfig::resolve(&s).err().unwrap();
    assert!(
        err.contains("AWS_SES_REGION_NAME (us-east-1) and AWS_SES_REGION_ENDPOINT (region eu-central-1) disagree"),
        "{err}"
    );

    s.email.aws_ses_region_name = None;
    for endpoint in ["smtp.gmail.com", "email.us-east-1.amazonaws.com.evil.example", "tu_secret_key"] {
        s.email.aws_ses_region_endpoint = Some(endpoint.into());
        let err = SmtpConfig::resolve(&s).err().unwrap();
        assert!(err.contains("AWS_SES_REGION_ENDPOINT: not an SES endpoint"), "{err}");
        assert!(!err.contains(endpoint), "{err}");
    }
}

/// Vectors from terraform-provider-aws (internal/service/iam/access_key_test.go,
/// `TestSESSMTPPasswordFromSecretKeySigV4`), an implementation known to authenticate against SES; also
/// re-checked with Python's hmac/hashlib following AWS's documented script.
#[test]
fn ses_smtp_password_matches_published_vectors() {
    for (region, secret, expected) in [
        ("eu-central-1", "some+secret+key", "BMXhUYlu5Z3gSXVQORxlVa7XPaz91aGWdfHxvkOZdWZ2"),
        ("eu-central-1", "another+secret+key", "BBbphbrQmrKMx42d1N6+C7VINYEBGI5v9VsZeTxwskfh"),
        ("us-west-1", "some+secret+key", "BH+jbMzper5WwlwUar9E1ySBqHa9whi0GPo+sJ0mVYJj"),
        ("us-west-1", "another+secret+key", "BKVmjjMDFk/qqw8EROW99bjCS65PF8WKvK5bSr4Y6EqF"),
    ] {
        assert_eq!(ses_smtp_password(secret, region).unwrap(), expected, "{region} {secret}");
    }
}

/// The Message-ID as mail clients see it: the same for a retried request (another send, another replica, a
/// restart: same key), different for another request with the same dedup key and for another installation.
#[tokio::test]
async fn message_ids_are_per_request_and_installation_and_the_same_across_retries() {
    let pki = pki();
    let server = Recorder::new(AuthReply::Accept);
    let seen = server.seen.clone();
    let port = start(server, Some(&pki), &[AuthMechanism::Plain]);
    let with_key = |key: &str| {
        let mut s = settings(port, Some(&pki));
        s.database.signing_key = Some(Secret::new(key));
        SmtpChannel::from_settings(&s).unwrap()
    };
    let production = "production-key-0123456789abcdef0123456789abcdef";
    let msg = message("a@example.com");
    let mut other_request = message("a@example.com");
    other_request.request_id = 42;
    with_key(production).send(&msg).await.unwrap();
    with_key(production).send(&msg).await.unwrap();
    with_key(production).send(&other_request).await.unwrap();
    with_key("staging-key-0123456789abcdef0123456789abcdef0123").send(&msg).await.unwrap();

    let seen = seen.lock().unwrap();
    let headers: Vec<(String, String)> = seen
        .mails
        .iter()
        .map(|m| {
            let mime = Mime::parse(&m.data);
            (mime.header("Message-ID").unwrap().to_string(), mime.header("X-Cantina-Clave").unwrap().to_string())
        })
        .collect();
    assert_eq!(headers.len(), 4);
    let ids: Vec<&str> = headers.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids[0], ids[1], "a retry keeps its Message-ID");
    assert_ne!(ids[0], ids[2], "another request, another Message-ID");
    assert_ne!(ids[0], ids[3], "another installation, another Message-ID");
    for (id, clave) in &headers {
        assert_eq!(clave, "recarga_exitosa:9001:email");
        let hash = id.strip_prefix('<').and_then(|i| i.strip_suffix("@cantinatita.com.py>")).unwrap();
        assert!(hash.len() == 32 && hash.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    }
}

/// `send-test`'s message: what a parent would get, marked as a test in the subject and at the top of both bodies.
#[tokio::test]
async fn a_test_message_is_marked_in_the_subject_and_both_bodies() {
    let pki = pki();
    let server = Recorder::new(AuthReply::Accept);
    let seen = server.seen.clone();
    let port = start(server, Some(&pki), &[AuthMechanism::Plain]);
    let channel = SmtpChannel::from_settings(&settings(port, Some(&pki))).unwrap();
    let data = MessageData::sample(NotificationType::RecargaExitosa);
    let mut msg = OutgoingMessage::render(
        0,
        "send-test:1".into(),
        ChannelKind::Email,
        Recipient::Email(EmailAddress::parse(Some("a@example.com")).unwrap()),
        data,
        "https://portal.cantinatita.com.py",
    )
    .unwrap();
    let parent_would_get = msg.clone();
    msg.mark_as_test();
    channel.send(&msg).await.unwrap();

    let seen = seen.lock().unwrap();
    let mime = Mime::parse(&seen.mails[0].data);
    assert_eq!(mime.decoded_header("Subject"), format!("[PRUEBA] {}", parent_would_get.subject));
    let parts = mime.parts();
    let (text, html) = (parts[0].decoded_body(), parts[1].decoded_body());
    let note = "Mensaje de prueba enviado con cantina-notify send-test, con datos inventados";
    assert!(text.starts_with(note), "{text}");
    assert!(text.contains(parent_would_get.text.replace("\r\n", "\n").trim_end()), "the notice follows: {text}");
    let body_at = html.find("<body").unwrap();
    let first_text = &html[body_at..body_at + 400];
    assert!(first_text.contains("[PRUEBA]") && first_text.contains(note), "first thing in the body: {first_text}");
}

/// A server that answers every step, but slowly: each step stays within the timeout, the conversation does not.
async fn slow_smtp(step: Duration) -> u16 {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                tokio::time::sleep(step).await;
                if write.write_all(b"220 slow.example ESMTP\r\n").await.is_err() {
                    return;
                }
                while let Ok(Some(_)) = lines.next_line().await {
                    tokio::time::sleep(step).await;
                    if write.write_all(b"250 ok\r\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn the_timeout_bounds_the_whole_conversation() {
    let port = slow_smtp(Duration::from_millis(1500)).await;
    let mut s = settings(port, None);
    s.email.host = "127.0.0.1".into();
    s.email.use_tls = Some(false);
    s.email.use_ssl = Some(false);
    s.email.host_user = None;
    s.email.host_password = None;
    s.email.timeout_seconds = 2;
    let channel = SmtpChannel::from_settings(&s).unwrap();
    for attempt in ["send", "probe"] {
        let started = std::time::Instant::now();
        let result = match attempt {
            "send" => channel.send(&message("a@example.com")).await.map(|_| ()),
            _ => channel.probe().await,
        };
        let elapsed = started.elapsed();
        match result {
            Err(SendError::Transient { reason, .. }) => {
                assert!(reason.contains("tiempo de espera agotado (2 s)"), "{attempt}: {reason}")
            }
            other => panic!("{attempt}: {other:?}"),
        }
        // Greeting and EHLO alone take 3 s here; a bound per step (or twice the value) would let it run on.
        assert!(elapsed < Duration::from_millis(2900), "{attempt} took {elapsed:?}");
    }
}

/// The file backend writes what SMTP sends: the same headers (Message-ID per request and installation,
/// X-Cantina-Clave, List-Unsubscribe) and the same text and HTML; only the Date and the MIME boundary differ.
#[tokio::test]
async fn the_file_backend_writes_the_message_smtp_sends() {
    let pki = pki();
    let server = Recorder::new(AuthReply::Accept);
    let seen = server.seen.clone();
    let port = start(server, Some(&pki), &[AuthMechanism::Plain]);
    let mut settings = settings(port, Some(&pki));
    settings.database.signing_key = Some(Secret::new("installation-key-0123456789abcdef0123456789"));
    let msg = message("padre@example.com");
    SmtpChannel::from_settings(&settings).unwrap().send(&msg).await.unwrap();
    let sent = Mime::parse(&seen.lock().unwrap().mails[0].data);

    let dir = std::env::temp_dir().join(format!("cn-eml-{}", fastrand::u64(..)));
    let file = crate::channels::FileChannel::new(ChannelKind::Email, dir.to_str().unwrap(), &settings);
    let name = file.send(&msg).await.unwrap().provider_message_id.unwrap();
    let written = Mime::parse(&std::fs::read_to_string(dir.join(&name)).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();

    for header in ["From", "To", "Subject", "Message-ID", "X-Cantina-Clave", "List-Unsubscribe", "MIME-Version"] {
        assert_eq!(written.header(header), sent.header(header), "{header}");
    }
    assert_eq!(written.header("X-Cantina-Clave"), Some("recarga_exitosa:9001:email"));
    let id = written.header("Message-ID").unwrap();
    assert!(id.ends_with("@cantinatita.com.py>") && id.len() == "<@cantinatita.com.py>".len() + 32, "{id}");
    let bodies = |m: &Mime| m.parts().iter().map(Mime::decoded_body).collect::<Vec<_>>();
    assert_eq!(bodies(&written), bodies(&sent));

    // Another installation (another key) writes another Message-ID for the same request.
    settings.database.signing_key = Some(Secret::new("other-installation-key-0123456789abcdef0123"));
    let other = crate::channels::FileChannel::new(ChannelKind::Email, dir.to_str().unwrap(), &settings);
    let name = other.send(&msg).await.unwrap().provider_message_id.unwrap();
    let written = Mime::parse(&std::fs::read_to_string(dir.join(&name)).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
    assert_ne!(written.header("Message-ID"), Some(id));
}

#[test]
fn the_key_header_survives_any_key() {
    let text = |k: &str| {
        let v = crate::channels::email_message::clave_header(k);
        let m = Message::builder()
            .from("a@example.com".parse().unwrap())
            .to("b@example.com".parse().unwrap())
            .raw_header(v)
            .body(String::new())
            .unwrap();
        Mime::parse(&String::from_utf8(m.formatted()).unwrap()).header("X-Cantina-Clave").unwrap().to_string()
    };
    assert_eq!(text("saldo_bajo:TAR-0042:2026-11-23:email"), "saldo_bajo:TAR-0042:2026-11-23:email");
    assert_eq!(text("a b=c\r\nBcc: x@y.z ñ"), "a=20b=3Dc=0D=0ABcc:=20x@y.z=20=C3=B1");
}

#[test]
fn queue_ids_are_read_from_ses_and_postfix_replies() {
    use lettre::transport::smtp::response::{Category, Code, Detail, Severity};
    let ok = Code::new(Severity::PositiveCompletion, Category::MailSystem, Detail::Zero);
    let r = |line: &str| Response::new(ok, vec![line.to_string()]);
    assert_eq!(
        queue_id(&r("Ok 0107019c2d1e3f4a-1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901-000000")).as_deref(),
        Some("0107019c2d1e3f4a-1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901-000000")
    );
    assert_eq!(queue_id(&r("2.0.0 Ok: queued as 4Xk2Lp1Zq9z")).as_deref(), Some("4Xk2Lp1Zq9z"));
    assert_eq!(queue_id(&r("OK")), None);
}

#[test]
fn loopback_hosts() {
    assert!(is_loopback("localhost"));
    assert!(is_loopback("127.0.0.1"));
    assert!(is_loopback("[::1]"));
    assert!(!is_loopback("smtp.gmail.com"));
    assert!(!is_loopback("10.0.0.5"));
}
