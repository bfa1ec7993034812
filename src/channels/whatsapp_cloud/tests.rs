use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::channels::test_support;
use crate::config::WhatsAppTemplateSettings;
use crate::domain::Guaranies;
use crate::rules::MessageData;

const TOKEN: &str = "EAAGtestTOKEN0123456789";
const PHONE_ID: &str = "106540352242922";
const SEND_PATH: &str = "/v23.0/106540352242922/messages";
const WAMID: &str = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJCOTY3NDc0NDFDRUI3NTA0Q0UA";

fn settings(api_url: &str) -> Settings {
    let mut s = Settings::default();
    s.whatsapp.provider = Some("business_api".into());
    s.whatsapp.access_token = Some(Secret::new(TOKEN));
    s.whatsapp.phone_number_id = Some(PHONE_ID.into());
    s.whatsapp.api_url = api_url.into();
    s
}

fn channel(server: &MockServer) -> WhatsAppCloudChannel {
    WhatsAppCloudChannel::from_settings(&settings(&server.uri()), &reqwest::Client::new()).unwrap()
}

fn recarga() -> OutgoingMessage {
    let data = MessageData::RecargaExitosa {
        padre: "María Benítez".into(),
        alumno: "Ñandú Benítez".into(),
        nro_tarjeta: "00123".into(),
        monto: Guaranies(50_000),
        saldo: Guaranies(75_500),
        fecha: "14/03/2025 10:32".into(),
        referencia: Some("TX-1".into()),
    };
    OutgoingMessage {
        request_id: 42,
        idempotency_key: "recarga:981:whatsapp".into(),
        subject: "Recarga exitosa".into(),
        short_text: "Recarga de Gs. 50.000 para Ñandú".into(),
        ..test_support::message(ChannelKind::WhatsApp, test_support::phone(), data)
    }
}

/// The exact body for [`recarga`] with a given template name and language.
fn expected_body(name: &str, language: &str) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+595981123456",
        "type": "template",
        "template": {
            "name": name,
            "language": { "policy": "deterministic", "code": language },
            "components": [{
                "type": "body",
                "parameters": [
                    { "type": "text", "text": "María Benítez" },
                    { "type": "text", "text": "Ñandú Benítez" },
                    { "type": "text", "text": "Gs. 50.000" },
                    { "type": "text", "text": "Gs. 75.500" },
                    { "type": "text", "text": "14/03/2025 10:32" },
                ],
            }],
        },
    })
}

/// A send mock that only matches the exact wire format of [`recarga`] with the default template.
fn send_mock(response: ResponseTemplate) -> Mock {
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("content-type", "application/json"))
        .and(body_json(expected_body("recarga_exitosa", "es")))
        .respond_with(response)
}

fn graph_error(code: i64, message: &str) -> Value {
    json!({
        "error": {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "error_data": { "messaging_product": "whatsapp", "details": format!("details of {code}") },
            "fbtrace_id": "AXsgnV2Cm3ZMGF3dF_cfYIn",
        }
    })
}

/// Sends [`recarga`] against a server answering `response` and returns the error (the mock only matches
/// the exact request, so a wrong wire format shows up as wiremock's 404 and a failed `expect(1)`).
async fn send_error(response: ResponseTemplate) -> SendError {
    let server = MockServer::start().await;
    send_mock(response).expect(1).mount(&server).await;
    let err = channel(&server).send(&recarga()).await.unwrap_err();
    server.verify().await;
    err
}

fn assert_configuration(err: &SendError, contains: &[&str]) {
    match err {
        SendError::Configuration { reason } => {
            for c in contains {
                assert!(reason.contains(c), "{reason:?} lacks {c:?}");
            }
            assert!(!reason.contains(TOKEN), "token leaked: {reason}");
        }
        other => panic!("expected Configuration, got {other:?}"),
    }
}

fn assert_permanent(err: &SendError, contains: &[&str]) {
    match err {
        SendError::Permanent { reason } => {
            for c in contains {
                assert!(reason.contains(c), "{reason:?} lacks {c:?}");
            }
        }
        other => panic!("expected Permanent, got {other:?}"),
    }
}

fn assert_transient(err: &SendError, retry: Option<Duration>, contains: &[&str]) {
    match err {
        SendError::Transient { reason, retry_after } => {
            assert_eq!(*retry_after, retry, "{reason}");
            for c in contains {
                assert!(reason.contains(c), "{reason:?} lacks {c:?}");
            }
        }
        other => panic!("expected Transient, got {other:?}"),
    }
}

#[tokio::test]
async fn sends_the_approved_template_with_ordered_parameters() {
    let server = MockServer::start().await;
    send_mock(ResponseTemplate::new(200).set_body_json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{ "input": "+595981123456", "wa_id": "595981123456" }],
        "messages": [{ "id": WAMID, "message_status": "accepted" }],
    })))
    .expect(1)
    .mount(&server)
    .await;

    let receipt = channel(&server).send(&recarga()).await.unwrap();
    assert_eq!(receipt.provider_message_id.as_deref(), Some(WAMID));

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let req = &requests[0];
    assert_eq!(req.method.as_str(), "POST");
    assert_eq!(req.url.path(), SEND_PATH);
    assert_eq!(req.url.query(), None);
    assert_eq!(req.headers.get("authorization").unwrap().to_str().unwrap(), format!("Bearer {TOKEN}"));
    assert_eq!(req.headers.get("content-type").unwrap().to_str().unwrap(), "application/json");
    let body: Value = req.body_json().unwrap();
    assert_eq!(body, expected_body("recarga_exitosa", "es"));
    let errors = spec::validate_send_message(&body);
    assert!(errors.is_empty(), "request does not match the spec: {errors:#?}");
    assert!(spec::allowed_messaging_products().contains("whatsapp"));
}

#[tokio::test]
async fn configured_template_name_and_language_override_the_defaults() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("content-type", "application/json"))
        .and(body_json(expected_body("cantina_recarga_v2", "es_PY")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"messages": [{"id": "wamid.X"}]})))
        .expect(1)
        .mount(&server)
        .await;
    let mut s = settings(&server.uri());
    s.whatsapp.templates.insert(
        "recarga_exitosa".into(),
        WhatsAppTemplateSettings {
            name: Some("cantina_recarga_v2".into()),
            language: Some("es_PY".into()),
            content_sid: None,
        },
    );
    // Another type's override must not leak into this one.
    s.whatsapp.templates.insert(
        "saldo_bajo".into(),
        WhatsAppTemplateSettings { name: Some("otro".into()), language: Some("en".into()), content_sid: None },
    );
    let ch = WhatsAppCloudChannel::from_settings(&s, &reqwest::Client::new()).unwrap();
    let receipt = ch.send(&recarga()).await.unwrap();
    assert_eq!(receipt.provider_message_id.as_deref(), Some("wamid.X"));
    server.verify().await;
}

#[tokio::test]
async fn other_types_send_their_own_parameters_in_the_documented_order() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .and(body_json(json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "+595981123456",
            "type": "template",
            "template": {
                "name": "cuenta_pendiente",
                "language": { "policy": "deterministic", "code": "es" },
                "components": [{ "type": "body", "parameters": [
                    { "type": "text", "text": "Ana López" },
                    { "type": "text", "text": "Gs. 120.000" },
                    { "type": "text", "text": "01/02/2025" },
                ]}],
            },
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"messages": [{"id": "wamid.Y"}]})))
        .expect(1)
        .mount(&server)
        .await;
    let mut msg = recarga();
    msg.notification_type = NotificationType::CuentaPendiente;
    msg.data = MessageData::CuentaPendiente {
        // New lines and runs of spaces are not allowed in template parameters.
        padre: "Ana\n  López".into(),
        cliente: "Ana López".into(),
        ruc_ci: "1234567".into(),
        monto: Guaranies(120_000),
        ventas: 3,
        desde: "01/02/2025".into(),
    };
    let receipt = channel(&server).send(&msg).await.unwrap();
    assert_eq!(receipt.provider_message_id.as_deref(), Some("wamid.Y"));
    server.verify().await;
}

#[tokio::test]
async fn accepted_without_an_id_is_still_a_success() {
    let server = MockServer::start().await;
    send_mock(ResponseTemplate::new(200).set_body_string("<html>ok</html>")).expect(1).mount(&server).await;
    let receipt = channel(&server).send(&recarga()).await.unwrap();
    assert_eq!(receipt.provider_message_id, None);
    let warning = receipt.warning.expect("a warning for staff");
    assert!(warning.contains("Meta") && warning.contains("messages[0].id"), "{warning}");
}

#[tokio::test]
async fn a_recipient_that_is_not_a_phone_is_permanent_and_sends_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&server).await;
    let mut msg = recarga();
    msg.recipient = Recipient::Portal { id_cliente: 7 };
    let err = channel(&server).send(&msg).await.unwrap_err();
    assert_permanent(&err, &["WhatsApp necesita un número de celular"]);
    server.verify().await;
}

#[tokio::test]
async fn re_engagement_131047_is_a_template_configuration_problem() {
    let err = send_error(ResponseTemplate::new(400).set_body_json(graph_error(131047, "Re-engagement message"))).await;
    assert_configuration(
        &err,
        &[
            "Meta 131047: 'Re-engagement message'",
            "[fbtrace_id AXsgnV2Cm3ZMGF3dF_cfYIn]",
            "'recarga_exitosa' en idioma 'es'",
            "CANTINA__WHATSAPP__TEMPLATES__RECARGA_EXITOSA__NAME",
        ],
    );
}

#[tokio::test]
async fn undeliverable_131026_is_permanent() {
    let err = send_error(ResponseTemplate::new(400).set_body_json(graph_error(131026, "Message Undeliverable."))).await;
    assert_permanent(&err, &["Meta 131026: 'Message Undeliverable.' (details of 131026)", "no usa WhatsApp"]);
}

#[tokio::test]
async fn throughput_limit_130429_is_transient_and_honours_retry_after() {
    let err = send_error(
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "7")
            .set_body_json(graph_error(130429, "Rate limit hit")),
    )
    .await;
    assert_transient(&err, Some(Duration::from_secs(7)), &["Meta 130429"]);

    let err = send_error(ResponseTemplate::new(429).set_body_json(graph_error(130429, "Rate limit hit"))).await;
    assert_transient(&err, None, &["Meta 130429: 'Rate limit hit'"]);
}

#[tokio::test]
async fn pair_rate_limit_131056_waits_a_minute_unless_told() {
    let err = send_error(
        ResponseTemplate::new(400)
            .set_body_json(graph_error(131056, "(Business Account, Consumer Account) pair rate limit hit")),
    )
    .await;
    assert_transient(&err, Some(Duration::from_secs(60)), &["Meta 131056"]);

    let err = send_error(
        ResponseTemplate::new(400)
            .insert_header("Retry-After", "120")
            .set_body_json(graph_error(131056, "pair rate limit hit")),
    )
    .await;
    assert_transient(&err, Some(Duration::from_secs(120)), &["Meta 131056"]);
}

#[tokio::test]
async fn expired_token_190_is_configuration_and_never_echoes_the_token() {
    let body = json!({
        "error": {
            "message": format!("Error validating access token: Session has expired (token {TOKEN})"),
            "type": "OAuthException",
            "code": 190,
            "error_subcode": 463,
            "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam",
        }
    });
    let err = send_error(ResponseTemplate::new(401).set_body_json(body)).await;
    assert_configuration(&err, &["Meta 190 (subcódigo 463)", "WHATSAPP_ACCESS_TOKEN", "********"]);
}

#[tokio::test]
async fn a_bare_401_is_configuration() {
    let err = send_error(ResponseTemplate::new(401).set_body_string("Unauthorized")).await;
    assert_configuration(&err, &["Meta HTTP 401: 'Unauthorized'", "WHATSAPP_ACCESS_TOKEN"]);
}

#[tokio::test]
async fn invalid_parameter_100_is_permanent() {
    let err = send_error(ResponseTemplate::new(400).set_body_json(graph_error(100, "Invalid parameter"))).await;
    assert_permanent(&err, &["Meta 100: 'Invalid parameter'"]);
}

#[tokio::test]
async fn unknown_phone_number_id_is_configuration() {
    let body = json!({"error": {
            "message": "Unsupported post request. Object with ID '106540352242922' does not exist",
            "type": "GraphMethodException", "code": 100, "error_subcode": 33,
            "fbtrace_id": "A1"}});
    let err = send_error(ResponseTemplate::new(400).set_body_json(body)).await;
    assert_configuration(&err, &["Meta 100 (subcódigo 33)", "WHATSAPP_PHONE_NUMBER_ID"]);
}

#[tokio::test]
async fn template_mismatches_132000_and_132001_are_configuration() {
    let err = send_error(
        ResponseTemplate::new(400)
            .set_body_json(graph_error(132000, "Number of parameters does not match the expected number of params")),
    )
    .await;
    assert_configuration(
        &err,
        &[
            "Meta 132000",
            "La cantidad de parámetros no coincide",
            "'recarga_exitosa' en idioma 'es'",
            "con 5 parámetro(s)",
            "CANTINA__WHATSAPP__TEMPLATES__RECARGA_EXITOSA__NAME / CANTINA__WHATSAPP__TEMPLATES__RECARGA_EXITOSA__LANGUAGE",
        ],
    );

    let err = send_error(
        ResponseTemplate::new(404)
            .set_body_json(graph_error(132001, "Template name does not exist in the translation")),
    )
    .await;
    assert_configuration(
        &err,
        &[
            "Meta 132001: 'Template name does not exist in the translation'",
            "no existe en ese idioma",
            "'recarga_exitosa' en idioma 'es'",
            "CANTINA__WHATSAPP__TEMPLATES__RECARGA_EXITOSA__LANGUAGE",
        ],
    );
}

#[tokio::test]
async fn policy_block_368_is_configuration() {
    let err = send_error(
        ResponseTemplate::new(400).set_body_json(graph_error(368, "Temporarily blocked for policies violations")),
    )
    .await;
    assert_configuration(&err, &["Meta 368", "políticas"]);
}

#[tokio::test]
async fn server_errors_are_transient() {
    let err = send_error(
        ResponseTemplate::new(503)
            .insert_header("Retry-After", "30")
            .set_body_string("<html><body>Service Unavailable</body></html>"),
    )
    .await;
    assert_transient(
        &err,
        Some(Duration::from_secs(30)),
        &["Meta HTTP 503: '<html><body>Service Unavailable</body></html>'"],
    );

    let err = send_error(ResponseTemplate::new(500).set_body_json(graph_error(131000, "Something went wrong"))).await;
    assert_transient(&err, None, &["Meta 131000: 'Something went wrong'"]);
}

#[tokio::test]
async fn other_4xx_are_permanent_with_code_and_message() {
    let err = send_error(ResponseTemplate::new(400).set_body_json(graph_error(
        131050,
        "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages",
    )))
    .await;
    assert_permanent(
        &err,
        &[
            "Meta 131050: 'Unable to deliver the message. This recipient has chosen to stop receiving marketing messages'",
        ],
    );

    // Unexpected bodies never panic.
    for body in ["", "not json", "{\"error\": \"text\"}", "{\"error\": {\"code\": \"oops\"}}", "[1,2]"] {
        let err = send_error(ResponseTemplate::new(400).set_body_string(body)).await;
        assert_permanent(&err, &["Meta HTTP 400"]);
    }
}

#[tokio::test]
async fn timeouts_are_transient() {
    let server = MockServer::start().await;
    send_mock(ResponseTemplate::new(200).set_delay(Duration::from_secs(10))).mount(&server).await;
    let mut ch = channel(&server);
    ch.timeout = Duration::from_millis(200);
    let err = ch.send(&recarga()).await.unwrap_err();
    assert_transient(&err, None, &["tiempo de espera agotado"]);
}

#[tokio::test]
async fn connection_errors_are_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let ch =
        WhatsAppCloudChannel::from_settings(&settings(&format!("http://127.0.0.1:{port}")), &reqwest::Client::new())
            .unwrap();
    let err = ch.send(&recarga()).await.unwrap_err();
    assert_transient(&err, None, &["no se pudo conectar"]);
    let err = ch.probe().await.unwrap_err();
    assert_transient(&err, None, &["no se pudo conectar"]);
}

#[tokio::test]
async fn probe_reads_the_phone_number_with_the_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v23.0/106540352242922"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "verified_name": "Cantina Tita",
            "display_phone_number": "+595 21 555 0000",
            "id": PHONE_ID,
            "quality_rating": "GREEN",
        })))
        .expect(1)
        .mount(&server)
        .await;
    channel(&server).probe().await.unwrap();
    server.verify().await;
}

#[tokio::test]
async fn probe_401_is_configuration_and_other_failures_transient() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v23.0/106540352242922"))
        .respond_with(ResponseTemplate::new(401).set_body_json(graph_error(190, "Error validating access token")))
        .expect(1)
        .mount(&server)
        .await;
    let err = channel(&server).probe().await.unwrap_err();
    assert_configuration(&err, &["Meta 190", "WHATSAPP_ACCESS_TOKEN"]);

    server.reset().await;
    Mock::given(method("GET"))
        .and(path("/v23.0/106540352242922"))
        .respond_with(ResponseTemplate::new(400).set_body_json(graph_error(100, "Invalid parameter")))
        .mount(&server)
        .await;
    let err = channel(&server).probe().await.unwrap_err();
    assert_transient(&err, None, &["Meta 100"]);

    server.reset().await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(502)).mount(&server).await;
    let err = channel(&server).probe().await.unwrap_err();
    assert_transient(&err, None, &["Meta HTTP 502"]);
}

#[test]
fn from_settings_names_the_missing_keys() {
    let http = reqwest::Client::new();
    let mut s = Settings::default();
    s.whatsapp.provider = Some("business_api".into());
    assert_eq!(
        WhatsAppCloudChannel::from_settings(&s, &http).unwrap_err(),
        "WHATSAPP_PROVIDER=business_api needs WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID"
    );
    s.whatsapp.access_token = Some(Secret::new(TOKEN));
    s.whatsapp.phone_number_id = Some("  ".into());
    assert_eq!(
        WhatsAppCloudChannel::from_settings(&s, &http).unwrap_err(),
        "WHATSAPP_PROVIDER=business_api needs WHATSAPP_PHONE_NUMBER_ID"
    );
    s.whatsapp.access_token = Some(Secret::new(""));
    s.whatsapp.phone_number_id = Some(PHONE_ID.into());
    assert_eq!(
        WhatsAppCloudChannel::from_settings(&s, &http).unwrap_err(),
        "WHATSAPP_PROVIDER=business_api needs WHATSAPP_ACCESS_TOKEN"
    );
    s.whatsapp.access_token = Some(Secret::new(TOKEN));
    s.whatsapp.phone_number_id = Some("+595 981 123456".into());
    assert!(
        WhatsAppCloudChannel::from_settings(&s, &http)
            .unwrap_err()
            .starts_with("WHATSAPP_PHONE_NUMBER_ID must be Meta's phone-number ID")
    );
}

#[test]
fn builds_urls_and_never_prints_the_token() {
    let mut s = settings("https://graph.facebook.com/");
    s.whatsapp.api_version = "v24.0".into();
    let ch = WhatsAppCloudChannel::from_settings(&s, &reqwest::Client::new()).unwrap();
    assert_eq!(ch.messages_url, "https://graph.facebook.com/v24.0/106540352242922/messages");
    assert_eq!(ch.phone_number_url, "https://graph.facebook.com/v24.0/106540352242922");
    assert_eq!(ch.timeout, crate::channels::http_timeout(30), "inside the dispatcher's 30 s send timeout");
    assert_eq!(ch.kind(), ChannelKind::WhatsApp);
    assert_eq!(ch.provider(), "meta");
    assert_eq!(ch.default_per_second(), 80.0);
    assert!(!format!("{ch:?}").contains(TOKEN));

    s.whatsapp.access_token = Some(Secret::new(format!("{TOKEN}\n")));
    let ch = WhatsAppCloudChannel::from_settings(&s, &reqwest::Client::new()).unwrap();
    assert_eq!(ch.access_token.expose(), TOKEN);
}

#[test]
fn the_spec_validator_rejects_what_meta_would_reject() {
    let good = expected_body("recarga_exitosa", "es");
    assert!(spec::validate_send_message(&good).is_empty());

    let broken = |edit: &dyn Fn(&mut Value)| {
        let mut b = good.clone();
        edit(&mut b);
        spec::validate_send_message(&b)
    };
    let remove = |path: &'static [&'static str], key: &'static str| {
        move |b: &mut Value| {
            let target = path.iter().fold(b, |v, k| match k.parse::<usize>() {
                Ok(i) => &mut v[i],
                Err(_) => &mut v[*k],
            });
            target.as_object_mut().unwrap().remove(key);
        }
    };
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("$.messaging_product: required property is missing", broken(&remove(&[], "messaging_product"))),
        ("$.to: required property is missing", broken(&remove(&[], "to"))),
        ("$.type: 'carrier_pigeon' is not one of", broken(&|b| b["type"] = json!("carrier_pigeon"))),
        ("$.recipient_type: \"everyone\" is not one of", broken(&|b| b["recipient_type"] = json!("everyone"))),
        ("$.template: required property is missing", broken(&remove(&[], "template"))),
        ("$.template.name: required property is missing", broken(&remove(&["template"], "name"))),
        ("$.template.language.code: required property is missing", broken(&remove(&["template", "language"], "code"))),
        (
            "$.template.language.policy: required property is missing",
            broken(&remove(&["template", "language"], "policy")),
        ),
        (
            "$.template.components[0].type: 'footer' is not one of",
            broken(&|b| b["template"]["components"][0]["type"] = json!("footer")),
        ),
        (
            "$.template.components[0].parameters[0].text: required property is missing",
            broken(&remove(&["template", "components", "0", "parameters", "0"], "text")),
        ),
        ("$.to: expected type", broken(&|b| b["to"] = json!(595981123456_i64))),
        // The discriminator picks the branch: a text message needs `text`.
        ("$.text: required property is missing", broken(&|b| b["type"] = json!("text"))),
    ];
    for (expected, errors) in cases {
        assert!(errors.iter().any(|e| e.contains(expected)), "expected {expected:?} in {errors:?}");
    }

    // messaging_product: the schema gives no enum, so the allowed values are what the spec's own sendMessage
    // examples use.
    let allowed = spec::allowed_messaging_products();
    assert_eq!(allowed.iter().collect::<Vec<_>>(), ["whatsapp"]);
    assert!(!allowed.contains("messenger"));
}

/// A small validator for the `sendMessage` request body of Meta's OpenAPI spec (the copy under
/// `tests/fixtures/provider-specs/meta-whatsapp/`). It follows `$ref`, `allOf`, `oneOf` / `anyOf`,
/// `discriminator` mappings, `required`, `properties`, `type`, `enum`, `items`, `minItems` / `maxItems` and
/// string lengths. It does not check `pattern`, `format` or `additionalProperties`.
mod spec {
    use std::collections::BTreeSet;
    use std::sync::LazyLock;

    use serde_json::Value as Json;
    use serde_yaml::Value as Yaml;

    const SPEC: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/provider-specs/meta-whatsapp/business-messaging-api_v23.0.yaml"
    );

    static DOC: LazyLock<Yaml> = LazyLock::new(|| {
        let text = std::fs::read_to_string(SPEC).unwrap();
        serde_yaml::from_str(&text).unwrap()
    });

    /// The `sendMessage` operation, found by operationId.
    fn send_message() -> &'static Yaml {
        let paths = DOC["paths"].as_mapping().unwrap();
        paths
            .values()
            .filter_map(Yaml::as_mapping)
            .flat_map(|item| item.values())
            .find(|op| op["operationId"].as_str() == Some("sendMessage"))
            .expect("sendMessage operation in the spec")
    }

    fn request_body() -> &'static Yaml {
        &send_message()["requestBody"]["content"]["application/json"]
    }

    /// Errors of `body` against the sendMessage request schema; empty means valid.
    pub fn validate_send_message(body: &Json) -> Vec<String> {
        let schema = &request_body()["schema"];
        assert!(!schema.is_null(), "sendMessage has no JSON request schema");
        let mut errors = Vec::new();
        validate(schema, body, "$", false, 0, &mut errors);
        errors
    }

    /// `messaging_product` values the spec allows: its enum if the schema has one, else the values its own
    /// sendMessage request examples use.
    pub fn allowed_messaging_products() -> BTreeSet<String> {
        let base = resolve(&DOC["components"]["schemas"]["BaseMessageProperties"]);
        let declared: BTreeSet<String> = base["properties"]["messaging_product"]["enum"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        if !declared.is_empty() {
            return declared;
        }
        request_body()["examples"]
            .as_mapping()
            .unwrap()
            .values()
            .filter_map(|e| e["value"]["messaging_product"].as_str())
            .map(String::from)
            .collect()
    }

    fn resolve(mut schema: &'static Yaml) -> &'static Yaml {
        for _ in 0..16 {
            let Some(r) = schema.get("$ref").and_then(Yaml::as_str) else {
                return schema;
            };
            let pointer = r.strip_prefix("#/").expect("local $ref");
            schema = pointer.split('/').fold(&*DOC, |node, key| &node[key]);
            assert!(!schema.is_null(), "dangling $ref {r}");
        }
        panic!("$ref chain too long");
    }

    fn same(y: &Yaml, j: &Json) -> bool {
        match (y, j) {
            (Yaml::String(a), Json::String(b)) => a == b,
            (Yaml::Bool(a), Json::Bool(b)) => a == b,
            (Yaml::Number(a), Json::Number(b)) => a.as_f64() == b.as_f64(),
            (Yaml::Null, Json::Null) => true,
            _ => false,
        }
    }

    fn type_ok(t: &str, v: &Json) -> bool {
        match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => true,
        }
    }

    /// `dispatched`: a discriminator already chose this schema's branch for this value (the mapped schemas
    /// `allOf` back to the schema that holds the discriminator).
    fn validate(
        schema: &'static Yaml,
        value: &Json,
        at: &str,
        dispatched: bool,
        depth: usize,
        errors: &mut Vec<String>,
    ) {
        assert!(depth < 64, "schema recursion too deep at {at}");
        let schema = resolve(schema);

        if let Some(types) = schema.get("type") {
            let ok = match types {
                Yaml::String(t) => type_ok(t, value),
                Yaml::Sequence(ts) => ts.iter().filter_map(Yaml::as_str).any(|t| type_ok(t, value)),
                _ => true,
            };
            if !ok {
                errors.push(format!("{at}: expected type {types:?}, got {value}"));
                return;
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(Yaml::as_sequence)
            && !allowed.iter().any(|a| same(a, value))
        {
            errors.push(format!("{at}: {value} is not one of {allowed:?}"));
        }

        let discriminator = schema.get("discriminator");
        if let (Some(d), false) = (discriminator, dispatched) {
            let prop = d["propertyName"].as_str().unwrap();
            match value.get(prop).and_then(Json::as_str) {
                None => errors.push(format!("{at}.{prop}: required discriminator is missing")),
                Some(tag) => match d["mapping"].get(tag) {
                    Some(target) => {
                        let target = target.as_str().unwrap();
                        let target_schema = resolve_ref(target);
                        validate(target_schema, value, at, true, depth + 1, errors);
                    }
                    None => errors.push(format!(
                        "{at}.{prop}: '{tag}' is not one of {:?}",
                        d["mapping"].as_mapping().map(|m| m.keys().collect::<Vec<_>>())
                    )),
                },
            }
        }

        for sub in schema.get("allOf").and_then(Yaml::as_sequence).into_iter().flatten() {
            validate(sub, value, at, dispatched, depth + 1, errors);
        }
        if discriminator.is_none() {
            for keyword in ["oneOf", "anyOf"] {
                if let Some(options) = schema.get(keyword).and_then(Yaml::as_sequence) {
                    let matches = options.iter().any(|o| {
                        let mut e = Vec::new();
                        validate(o, value, at, false, depth + 1, &mut e);
                        e.is_empty()
                    });
                    if !matches {
                        errors.push(format!("{at}: matches none of {keyword}"));
                    }
                }
            }
        }

        if let Some(obj) = value.as_object() {
            for r in schema.get("required").and_then(Yaml::as_sequence).into_iter().flatten() {
                let r = r.as_str().unwrap();
                if !obj.contains_key(r) {
                    errors.push(format!("{at}.{r}: required property is missing"));
                }
            }
            if let Some(props) = schema.get("properties").and_then(Yaml::as_mapping) {
                for (k, sub) in props {
                    let k = k.as_str().unwrap();
                    if let Some(v) = obj.get(k) {
                        validate(sub, v, &format!("{at}.{k}"), false, depth + 1, errors);
                    }
                }
            }
        }
        if let Some(items) = value.as_array() {
            let len = items.len() as u64;
            if let Some(min) = schema.get("minItems").and_then(Yaml::as_u64)
                && len < min
            {
                errors.push(format!("{at}: {len} items, fewer than {min}"));
            }
            if let Some(max) = schema.get("maxItems").and_then(Yaml::as_u64)
                && len > max
            {
                errors.push(format!("{at}: {len} items, more than {max}"));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate(item_schema, item, &format!("{at}[{i}]"), false, depth + 1, errors);
                }
            }
        }
        if let Some(s) = value.as_str() {
            let len = s.chars().count() as u64;
            if let Some(max) = schema.get("maxLength").and_then(Yaml::as_u64)
                && len > max
            {
                errors.push(format!("{at}: longer than {max}"));
            }
            if let Some(min) = schema.get("minLength").and_then(Yaml::as_u64)
                && len < min
            {
                errors.push(format!("{at}: shorter than {min}"));
            }
        }
    }

    fn resolve_ref(r: &str) -> &'static Yaml {
        let pointer = r.strip_prefix("#/").expect("local $ref");
        let schema = pointer.split('/').fold(&*DOC, |node, key| &node[key]);
        assert!(!schema.is_null(), "dangling $ref {r}");
        resolve(schema)
    }
}
