use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::channels::test_support;
use crate::domain::NotificationType;
use crate::rules::MessageData;

const KEY: &str = "SG.test-key.abc123";

fn settings(url: &str) -> Settings {
    let mut s = Settings::default();
    s.email.backend = "sendgrid_backend.SendgridBackend".into();
    s.email.sendgrid_api_key = Some(Secret::new(KEY));
    s.email.sendgrid_api_url = format!("{url}/");
    s.email.from = "Cantina Tita <noreply@cantinatita.com.py>".into();
    s.email.timeout_seconds = 5;
    s.portal.base_url = "https://portal.cantinatita.com.py".into();
    s
}

fn channel(server: &MockServer) -> SendGridChannel {
    SendGridChannel::from_settings(&settings(&server.uri()), &reqwest::Client::new()).unwrap()
}

fn message() -> OutgoingMessage {
    let data = MessageData::TarjetaBloqueada {
        padre: "Begoña".into(),
        alumno: "Ñandú".into(),
        nro_tarjeta: "TAR-1".into(),
        fecha: "23/11/2026".into(),
    };
    OutgoingMessage {
        request_id: 41,
        idempotency_key: "recarga_exitosa:9001:email".into(),
        // Not the data's type: only the texts matter to SendGrid.
        notification_type: NotificationType::RecargaExitosa,
        subject: "Recarga exitosa de Gs. 50.000 - Ñandú".into(),
        html: "<p>Hola Begoña, &lt;script&gt; ₲</p>".into(),
        text: "Hola Begoña, <script> ₲".into(),
        short_text: "Recarga Gs. 50.000".into(),
        ..test_support::message(ChannelKind::Email, test_support::email("padre@example.com"), data)
    }
}

fn expected_body() -> Value {
    json!({
        "personalizations": [{ "to": [{ "email": "padre@example.com" }] }],
        "from": { "email": "noreply@cantinatita.com.py", "name": "Cantina Tita" },
        "subject": "Recarga exitosa de Gs. 50.000 - Ñandú",
        "content": [
            { "type": "text/plain", "value": "Hola Begoña, <script> ₲" },
            { "type": "text/html", "value": "<p>Hola Begoña, &lt;script&gt; ₲</p>" },
        ],
        "headers": { "List-Unsubscribe": "<https://portal.cantinatita.com.py/preferencias>" },
        "custom_args": { "clave_dedup": "recarga_exitosa:9001:email" },
    })
}

async fn refusing(status: u16, body: Value) -> (MockServer, SendError) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .expect(1)
        .mount(&server)
        .await;
    let err = channel(&server).send(&message()).await.unwrap_err();
    (server, err)
}

#[tokio::test]
async fn a_202_without_x_message_id_is_a_success_with_a_warning() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(ResponseTemplate::new(202).set_body_bytes(b"\x00\xff".to_vec()))
        .expect(1)
        .mount(&server)
        .await;
    let receipt = channel(&server).send(&message()).await.unwrap();
    assert_eq!(receipt.provider_message_id, None);
    assert!(receipt.warning.as_deref().is_some_and(|w| w.contains("X-Message-Id")), "{receipt:?}");
}

#[tokio::test]
async fn a_202_is_success_with_the_x_message_id_and_the_request_is_exact() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("content-type", "application/json"))
        .and(body_json(expected_body()))
        .respond_with(ResponseTemplate::new(202).insert_header("X-Message-Id", "14c5d75ce93.dfd.64b469.filter0001"))
        .expect(1)
        .mount(&server)
        .await;
    let ch = channel(&server);
    assert_eq!(ch.provider(), "sendgrid");
    assert_eq!(ch.kind(), ChannelKind::Email);
    assert_eq!(ch.default_per_second(), 10.0);
    let receipt = ch.send(&message()).await.unwrap();
    assert_eq!(receipt.provider_message_id.as_deref(), Some("14c5d75ce93.dfd.64b469.filter0001"));

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method.as_str(), "POST");
    assert_eq!(r.url.path(), "/v3/mail/send");
    assert_eq!(r.url.query(), None);
    assert_eq!(r.headers.get("authorization").unwrap(), &format!("Bearer {KEY}"));
    assert_eq!(r.headers.get("content-type").unwrap(), "application/json");
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body, expected_body());
}

#[tokio::test]
async fn a_400_is_permanent_with_sendgrids_messages() {
    let (_s, err) = refusing(
            400,
            json!({"errors": [
                {"message": "Does not contain a valid address.", "field": "personalizations.0.to.0.email", "help": "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.personalizations.to"},
                {"message": "The subject is required.", "field": null, "help": null}
            ]}),
        )
        .await;
    assert_eq!(
        err,
        SendError::Permanent {
            reason: "SendGrid 400: Does not contain a valid address. (campo personalizations.0.to.0.email); The \
                         subject is required."
                .into()
        }
    );
}

#[tokio::test]
async fn a_401_or_403_is_a_configuration_error_without_the_key() {
    let (_s, err) = refusing(
            401,
            json!({"errors": [{"field": null, "message": "The provided authorization grant is invalid, expired, or revoked"}]}),
        )
        .await;
    let SendError::Configuration { reason } = err else { panic!("expected a configuration error: {err:?}") };
    assert!(
        reason.starts_with(
            "SendGrid 401: The provided authorization grant is invalid, expired, or revoked; revise SENDGRID_API_KEY"
        ),
        "{reason}"
    );
    assert!(!reason.contains(KEY));

    let (_s, err) = refusing(
            403,
            json!({"errors": [{"field": "from", "message": "The from address does not match a verified Sender Identity."}]}),
        )
        .await;
    let SendError::Configuration { reason } = err else { panic!("expected a configuration error: {err:?}") };
    assert!(
        reason.starts_with("SendGrid 403: The from address does not match a verified Sender Identity. (campo from)"),
        "{reason}"
    );
    assert!(reason.contains("DEFAULT_FROM_EMAIL"), "{reason}");
}

#[tokio::test]
async fn a_413_is_permanent() {
    let (_s, err) = refusing(413, json!({"errors": [{"message": "Payload Too Large", "field": null}]})).await;
    assert_eq!(
        err,
        SendError::Permanent { reason: "SendGrid 413: el mensaje es demasiado grande: Payload Too Large".into() }
    );
}

#[tokio::test]
async fn a_429_is_transient_with_retry_after_or_the_rate_limit_reset() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "30")
                .set_body_json(json!({"errors": [{"field": null, "message": "too many requests"}]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let err = channel(&server).send(&message()).await.unwrap_err();
    assert_eq!(
        err,
        SendError::Transient {
            reason: "SendGrid 429: límite de envíos alcanzado: too many requests".into(),
            retry_after: Some(Duration::from_secs(30))
        }
    );

    let server = MockServer::start().await;
    let reset = jiff::Timestamp::now().as_second() + 45;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("X-RateLimit-Limit", "600")
                .insert_header("X-RateLimit-Remaining", "0")
                .insert_header("X-RateLimit-Reset", reset.to_string().as_str())
                .set_body_json(json!({"errors": [{"field": null, "message": "too many requests"}]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let err = channel(&server).send(&message()).await.unwrap_err();
    let SendError::Transient { retry_after: Some(after), .. } = err else { panic!("{err:?}") };
    assert!((Duration::from_secs(43)..=Duration::from_secs(45)).contains(&after), "{after:?}");
}

#[test]
fn retry_after_accepts_an_http_date() {
    let mut h = HeaderMap::new();
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120);
    let date = jiff::fmt::rfc2822::DateTimePrinter::new().timestamp_to_rfc9110_string(&at).unwrap();
    h.insert("retry-after", date.parse().unwrap());
    let after = retry_after(&h).unwrap();
    assert!((Duration::from_secs(118)..=Duration::from_secs(120)).contains(&after), "{after:?}");
    assert_eq!(retry_after(&HeaderMap::new()), None);
}

#[tokio::test]
async fn a_5xx_is_transient() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(ResponseTemplate::new(503).set_body_string("upstream unavailable"))
        .expect(1)
        .mount(&server)
        .await;
    let err = channel(&server).send(&message()).await.unwrap_err();
    assert_eq!(err, SendError::Transient { reason: "SendGrid 503: upstream unavailable".into(), retry_after: None });
}

#[tokio::test]
async fn a_timeout_is_transient() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(ResponseTemplate::new(202).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let mut s = settings(&server.uri());
    s.email.timeout_seconds = 1;
    let ch = SendGridChannel::from_settings(&s, &reqwest::Client::new()).unwrap();
    let err = ch.send(&message()).await.unwrap_err();
    assert_eq!(
        err,
        SendError::Transient { reason: "SendGrid: tiempo de espera agotado (1 s)".into(), retry_after: None }
    );
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let ch = SendGridChannel::from_settings(&settings(&format!("http://127.0.0.1:{port}")), &reqwest::Client::new())
        .unwrap();
    let err = ch.send(&message()).await.unwrap_err();
    assert!(
        matches!(&err, SendError::Transient { reason, retry_after: None } if reason.starts_with("SendGrid: no se pudo conectar")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_non_email_recipient_is_permanent_and_nothing_is_sent() {
    let server = MockServer::start().await;
    let mut msg = message();
    msg.recipient = Recipient::Portal { id_cliente: 3 };
    let err = channel(&server).send(&msg).await.unwrap_err();
    assert!(matches!(err, SendError::Permanent { .. }), "{err:?}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn probe_reads_scopes_with_the_key() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v3/scopes"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"scopes": ["mail.send"]})))
        .expect(1)
        .mount(&server)
        .await;
    channel(&server).probe().await.unwrap();

    for (status, configuration) in [(401, true), (403, true), (500, false)] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v3/scopes"))
            .respond_with(
                ResponseTemplate::new(status).set_body_json(json!({"errors": [{"field": null, "message": "nope"}]})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let err = channel(&server).probe().await.unwrap_err();
        match err {
            SendError::Configuration { reason } if configuration => {
                assert_eq!(reason, format!("SendGrid {status}: nope; revise SENDGRID_API_KEY"))
            }
            SendError::Transient { reason, .. } if !configuration => assert_eq!(reason, "SendGrid 500: nope"),
            other => panic!("{status}: {other:?}"),
        }
    }
}

#[test]
fn missing_or_bad_settings_are_named_and_debug_hides_the_key() {
    let http = reqwest::Client::new();
    let mut s = settings("https://api.sendgrid.com");
    s.email.sendgrid_api_key = None;
    s.email.from = "nadie".into();
    let err = SendGridChannel::from_settings(&s, &http).unwrap_err();
    assert!(err.contains("SENDGRID_API_KEY") && err.contains("DEFAULT_FROM_EMAIL"), "{err}");

    let mut s = settings("https://api.sendgrid.com");
    s.email.sendgrid_api_url = "api.sendgrid.com".into();
    assert!(SendGridChannel::from_settings(&s, &http).unwrap_err().contains("SENDGRID_API_URL"));

    let ch = SendGridChannel::from_settings(&settings("https://api.sendgrid.com"), &http).unwrap();
    assert_eq!(ch.api_url, "https://api.sendgrid.com");
    let debug = format!("{ch:?}");
    assert!(!debug.contains(KEY), "{debug}");

    // A From without a display name sends no "name".
    let mut s = settings("https://api.sendgrid.com");
    s.email.from = "noreply@cantinatita.com.py".into();
    let ch = SendGridChannel::from_settings(&s, &http).unwrap();
    assert_eq!(ch.body("a@example.com", &message())["from"], json!({"email": "noreply@cantinatita.com.py"}));
}

#[test]
fn non_json_error_bodies_are_shortened() {
    assert_eq!(describe_errors(""), "sin detalle");
    assert_eq!(describe_errors(&"x".repeat(500)).len(), 200);
}
