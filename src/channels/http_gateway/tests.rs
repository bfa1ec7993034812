use std::collections::HashMap;

use serde_json::json;
use wiremock::matchers::{body_json, method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

use super::rules::parse_statuses;
use super::*;
use crate::channels::provider_text::SNIPPET_CHARS;
use crate::channels::test_support;
use crate::config::LoadOptions;
use crate::config::gateway::parse_fields;

const KEY: &str = "clave-secreta-9876";
const IDEMPOTENCY: &str = "recarga_exitosa:4711:sms";
const SHORT: &str = "Cantina Tita: recarga de Gs. 50.000 para Ñandé confirmada. Saldo: Gs. 65.000";
const TIGO_PATH: &str = "/api/v1/sms/send";
const PERSONAL_PATH: &str = "/sms/enviar";
const FORM: &str = "application/x-www-form-urlencoded";

fn message() -> OutgoingMessage {
    OutgoingMessage {
        idempotency_key: IDEMPOTENCY.into(),
        short_text: SHORT.into(),
        ..test_support::message(ChannelKind::Sms, test_support::phone(), test_support::recarga())
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

fn tigo_settings(base: &str) -> Settings {
    let mut s = Settings::default();
    s.sms.provider = Some("tigo".into());
    s.sms.tigo_api_url = Some(format!("{base}{TIGO_PATH}"));
    s.sms.tigo_api_key = Some(Secret::new(KEY));
    s
}

fn personal_settings(base: &str) -> Settings {
    let mut s = Settings::default();
    s.sms.provider = Some("personal".into());
    s.sms.personal_api_url = Some(format!("{base}{PERSONAL_PATH}"));
    s.sms.personal_api_key = Some(Secret::new(KEY));
    s
}

fn tigo(server: &MockServer) -> HttpGatewayChannel {
    HttpGatewayChannel::from_settings(&tigo_settings(&server.uri()), SmsProvider::Tigo, &client()).unwrap()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    v.sort();
    v
}

fn form_pairs(req: &Request) -> Vec<(String, String)> {
    let body = std::str::from_utf8(&req.body).unwrap();
    let url = reqwest::Url::parse(&format!("http://form.invalid/?{body}")).unwrap();
    let mut v: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    v.sort();
    v
}

fn query_pairs(req: &Request) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = req.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    v.sort();
    v
}

/// The exact Tigo wire format: POST, the path, a form body with exactly these fields, no auth header.
struct TigoWire;

impl Match for TigoWire {
    fn matches(&self, req: &Request) -> bool {
        req.method.as_str() == "POST"
            && req.url.path() == TIGO_PATH
            && req.url.query().is_none()
            && req.headers.get("content-type").is_some_and(|v| v == FORM)
            && req.headers.get("authorization").is_none()
            && form_pairs(req) == tigo_fields()
    }
}

fn tigo_fields() -> Vec<(String, String)> {
    pairs(&[("api_key", KEY), ("to", "0981123456"), ("message", SHORT)])
}

/// A server that expects exactly one Tigo-shaped request and answers it with `template`.
async fn tigo_answering(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(TigoWire).respond_with(template).expect(1).mount(&server).await;
    server
}

async fn tigo_error(template: ResponseTemplate) -> SendError {
    let server = tigo_answering(template).await;
    let err = tigo(&server).send(&message()).await.unwrap_err();
    server.verify().await;
    assert!(!err.to_string().contains(KEY), "key leaked: {err}");
    err
}

use crate::channels::test_support::{configuration, permanent, transient};

// ── Presets ──────────────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn tigo_preset_posts_the_cantina_form_and_200_is_success() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TIGO_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_string("OK"))
        .expect(1)
        .mount(&server)
        .await;
    let ch = tigo(&server);
    assert_eq!(ch.kind(), ChannelKind::Sms);
    assert_eq!(ch.provider(), "tigo");
    assert_eq!(ch.default_per_second(), 10.0);
    let receipt = ch.send(&message()).await.unwrap();
    assert_eq!(receipt.provider_message_id, None);

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let req = &requests[0];
    assert_eq!(req.method.as_str(), "POST");
    assert_eq!(req.url.path(), TIGO_PATH);
    assert_eq!(req.url.query(), None);
    assert_eq!(req.headers.get("content-type").unwrap(), FORM);
    assert!(req.headers.get("authorization").is_none());
    assert_eq!(form_pairs(req), tigo_fields());
    assert!(TigoWire.matches(req));
}

#[tokio::test]
async fn personal_preset_posts_apikey_phone_text() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PERSONAL_PATH))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let ch =
        HttpGatewayChannel::from_settings(&personal_settings(&server.uri()), SmsProvider::Personal, &client()).unwrap();
    assert_eq!(ch.provider(), "personal");
    // No id configured for this preset: none expected, so no warning either.
    assert_eq!(ch.send(&message()).await.unwrap(), SendReceipt::default());
    let requests = server.received_requests().await.unwrap();
    let req = &requests[0];
    assert_eq!(req.method.as_str(), "POST");
    assert_eq!(req.url.path(), PERSONAL_PATH);
    assert_eq!(req.headers.get("content-type").unwrap(), FORM);
    assert!(req.headers.get("authorization").is_none());
    assert_eq!(form_pairs(req), pairs(&[("apikey", KEY), ("phone", "0981123456"), ("text", SHORT)]));
}

#[tokio::test]
async fn a_preset_field_can_be_overridden_or_removed() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).expect(1).mount(&server).await;
    let mut s = tigo_settings(&server.uri());
    s.sms.gateway.fields = parse_fields("to={to_digits},remitente=CantinaTita,api_key=").unwrap();
    s.sms.gateway.auth_header = Some("X-Api-Key".into());
    s.sms.gateway.auth_value = Some(Secret::new("{api_key}"));
    let ch = HttpGatewayChannel::from_settings(&s, SmsProvider::Tigo, &client()).unwrap();
    ch.send(&message()).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    let req = &requests[0];
    assert_eq!(req.url.path(), TIGO_PATH);
    assert_eq!(req.headers.get("x-api-key").unwrap(), KEY);
    assert_eq!(form_pairs(req), pairs(&[("to", "595981123456"), ("message", SHORT), ("remitente", "CantinaTita")]));
}

#[tokio::test]
async fn tigo_only_treats_200_as_success() {
    let err = tigo_error(ResponseTemplate::new(201).set_body_string("creado")).await;
    let reason = permanent(&err);
    assert!(reason.starts_with("Tigo HTTP 201: no es una respuesta de éxito configurada (200)"), "{reason}");
    assert!(reason.contains("creado"), "{reason}");
}

// ── Generic gateways ─────────────────────────────────────────────────────────────────────────────

fn json_gateway(base: &str) -> Settings {
    let mut s = Settings::default();
    s.sms.provider = Some("http".into());
    let g = &mut s.sms.gateway;
    g.url = Some(format!("{base}/v1/messages"));
    g.format = Some("json".into());
    g.fields = parse_fields("to={to}, text={message}, reference={id}, channel=sms").unwrap();
    g.api_key = Some(Secret::new(KEY));
    g.auth_header = Some("Authorization".into());
    g.auth_value = Some(Secret::new("Bearer {api_key}"));
    g.success_json_pointer = Some("/status".into());
    g.success_json_value = Some("queued".into());
    g.message_id_pointer = Some("/data/message_id".into());
    s
}

#[tokio::test]
async fn json_gateway_sends_a_bearer_header_and_reads_the_id_by_pointer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(wiremock::matchers::header("authorization", format!("Bearer {KEY}").as_str()))
        .and(wiremock::matchers::header("content-type", "application/json"))
        .and(body_json(json!({
            "to": "+595981123456",
            "text": SHORT,
            "reference": IDEMPOTENCY,
            "channel": "sms",
        })))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"status": "queued", "data": {"message_id": "msg-77"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let ch = HttpGatewayChannel::from_settings(&json_gateway(&server.uri()), SmsProvider::Http, &client()).unwrap();
    assert_eq!(ch.provider(), "http");
    let receipt = ch.send(&message()).await.unwrap();
    assert_eq!(receipt.provider_message_id.as_deref(), Some("msg-77"));
    server.verify().await;
    let requests = server.received_requests().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body.as_object().unwrap().len(), 4);
}

#[tokio::test]
async fn json_gateway_2xx_with_the_wrong_status_value_is_permanent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(wiremock::matchers::header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "rejected",
            "error": "numero 595981123456 bloqueado",
        })))
        .expect(1)
        .mount(&server)
        .await;
    let ch = HttpGatewayChannel::from_settings(&json_gateway(&server.uri()), SmsProvider::Http, &client()).unwrap();
    let err = ch.send(&message()).await.unwrap_err();
    let reason = permanent(&err);
    assert!(
        reason
            .starts_with("Gateway SMS HTTP 200: no confirmó el envío (/status vale 'rejected', se esperaba 'queued')"),
        "{reason}"
    );
    assert!(reason.contains("bloqueado"), "{reason}");
    assert!(!reason.contains("595981123456"), "phone not masked: {reason}");
    assert!(reason.contains("+595 98* *** 456"), "{reason}");
}

fn kannel_like(base: &str) -> Settings {
    let mut s = Settings::default();
    s.sms.provider = Some("http".into());
    let g = &mut s.sms.gateway;
    g.method = Some("GET".into());
    g.url = Some(format!("{base}/cgi-bin/sendsms?smsc=tigo"));
    g.fields = parse_fields("username=cantina,password={api_key},to={to},text={message},charset=UTF-8").unwrap();
    g.api_key = Some(Secret::new(KEY));
    g.success_status = Some("202".into());
    g.success_body_contains = vec!["Accepted".into(), "Queued".into()];
    g.message_id_pattern = Some("ID: {id}".into());
    s
}

fn kannel_query() -> Vec<(String, String)> {
    pairs(&[
        ("smsc", "tigo"),
        ("username", "cantina"),
        ("password", KEY),
        ("to", "+595981123456"),
        ("text", SHORT),
        ("charset", "UTF-8"),
    ])
}

struct KannelWire;

impl Match for KannelWire {
    fn matches(&self, req: &Request) -> bool {
        req.method.as_str() == "GET"
            && req.url.path() == "/cgi-bin/sendsms"
            && req.body.is_empty()
            && req.headers.get("content-type").is_none()
            && query_pairs(req) == kannel_query()
    }
}

async fn kannel_answering(template: ResponseTemplate) -> (MockServer, HttpGatewayChannel) {
    let server = MockServer::start().await;
    Mock::given(KannelWire).respond_with(template).expect(1).mount(&server).await;
    let ch = HttpGatewayChannel::from_settings(&kannel_like(&server.uri()), SmsProvider::Http, &client()).unwrap();
    (server, ch)
}

#[tokio::test]
async fn kannel_like_get_sends_query_parameters_and_reads_the_id_from_text() {
    let (server, ch) =
        kannel_answering(ResponseTemplate::new(202).set_body_string("0: Accepted for delivery ID: 8f1c-22\n")).await;
    let receipt = ch.send(&message()).await.unwrap();
    assert_eq!(receipt.provider_message_id.as_deref(), Some("8f1c-22"));
    server.verify().await;
    let requests = server.received_requests().await.unwrap();
    let req = &requests[0];
    assert_eq!(req.method.as_str(), "GET");
    assert_eq!(req.url.path(), "/cgi-bin/sendsms");
    assert_eq!(query_pairs(req), kannel_query());
    // `+` travels encoded, or Kannel would read a space (its separator between recipients).
    assert!(req.url.query().unwrap().contains("to=%2B595981123456"), "{:?}", req.url.query());
}

#[tokio::test]
async fn kannel_queued_is_success_without_an_id() {
    let (server, ch) =
        kannel_answering(ResponseTemplate::new(202).set_body_string("3: Queued for later delivery")).await;
    assert_eq!(ch.send(&message()).await.unwrap().provider_message_id, None);
    server.verify().await;
}

#[tokio::test]
async fn kannel_202_without_the_expected_text_is_permanent() {
    let (server, ch) = kannel_answering(ResponseTemplate::new(202).set_body_string("Something odd")).await;
    let err = ch.send(&message()).await.unwrap_err();
    let reason = permanent(&err);
    assert!(
        reason.starts_with(
            "Gateway SMS HTTP 202: no confirmó el envío (la respuesta no contiene 'Accepted' ni 'Queued')"
        ),
        "{reason}"
    );
    assert!(reason.ends_with("Respuesta: Something odd"), "{reason}");
    server.verify().await;
}

#[tokio::test]
async fn kannel_200_is_not_the_configured_success() {
    let (server, ch) = kannel_answering(ResponseTemplate::new(200).set_body_string("0: Accepted for delivery")).await;
    let reason = permanent(&ch.send(&message()).await.unwrap_err()).to_string();
    assert!(reason.contains("HTTP 200: no es una respuesta de éxito configurada (202)"), "{reason}");
    server.verify().await;
}

#[tokio::test]
async fn kannel_authorization_failed_is_configuration_and_hides_the_password() {
    // Kannel echoes nothing secret, but a gateway might: the key is masked in any case.
    let (server, ch) =
        kannel_answering(ResponseTemplate::new(403).set_body_string(format!("Authorization failed for {KEY}"))).await;
    let err = ch.send(&message()).await.unwrap_err();
    let reason = configuration(&err);
    assert!(
        reason.starts_with("Gateway SMS HTTP 403: rechazó la autenticación; revise CANTINA__SMS__GATEWAY__API_KEY"),
        "{reason}"
    );
    assert!(reason.contains("Authorization failed for ********"), "{reason}");
    assert!(!reason.contains(KEY));
    server.verify().await;
}

#[tokio::test]
async fn kannel_temporal_failure_is_transient() {
    let (server, ch) = kannel_answering(
        ResponseTemplate::new(503)
            .set_body_string("Temporal failure, try again later.")
            .insert_header("Retry-After", "30"),
    )
    .await;
    let err = ch.send(&message()).await.unwrap_err();
    let (reason, retry_after) = transient(&err);
    assert!(reason.starts_with("Gateway SMS HTTP 503: error temporal del proveedor; se reintentará"), "{reason}");
    assert!(reason.contains("Temporal failure"), "{reason}");
    assert_eq!(retry_after, Some(Duration::from_secs(30)));
    server.verify().await;
}

// ── Error classes (against the exact Tigo wire format) ───────────────────────────────────────────

#[tokio::test]
async fn unauthorized_is_configuration_naming_the_key() {
    let err = tigo_error(ResponseTemplate::new(401).set_body_string("invalid api_key")).await;
    let reason = configuration(&err);
    assert_eq!(reason, "Tigo HTTP 401: rechazó la autenticación; revise TIGO_SMS_API_KEY. Respuesta: invalid api_key");
}

#[tokio::test]
async fn forbidden_is_configuration() {
    let err = tigo_error(ResponseTemplate::new(403)).await;
    let reason = configuration(&err);
    assert_eq!(reason, "Tigo HTTP 403: rechazó la autenticación; revise TIGO_SMS_API_KEY. Respuesta: (sin cuerpo)");
}

#[tokio::test]
async fn not_found_is_configuration_naming_the_url() {
    let err = tigo_error(ResponseTemplate::new(404).set_body_string("<html>Not Found</html>")).await;
    let reason = configuration(&err);
    assert!(reason.starts_with("Tigo HTTP 404: la dirección no existe; revise TIGO_SMS_API_URL"), "{reason}");
}

#[tokio::test]
async fn too_many_requests_is_transient_with_retry_after() {
    let err =
        tigo_error(ResponseTemplate::new(429).insert_header("Retry-After", "7").set_body_string("slow down")).await;
    let (reason, retry_after) = transient(&err);
    assert!(reason.starts_with("Tigo HTTP 429"), "{reason}");
    assert_eq!(retry_after, Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn server_errors_are_transient() {
    let err = tigo_error(ResponseTemplate::new(500).set_body_string("boom")).await;
    let (reason, retry_after) = transient(&err);
    assert_eq!(reason, "Tigo HTTP 500: error temporal del proveedor; se reintentará. Respuesta: boom");
    assert_eq!(retry_after, None);
}

#[tokio::test]
async fn other_4xx_is_permanent_with_a_masked_truncated_body() {
    let long = format!("numero 0981123456 invalido; {}", "x".repeat(400));
    let err = tigo_error(ResponseTemplate::new(400).set_body_string(long)).await;
    let reason = permanent(&err);
    assert!(
        reason.starts_with("Tigo HTTP 400: rechazó el SMS. Respuesta: numero +595 98* *** 456 invalido; xxx"),
        "{reason}"
    );
    assert!(!reason.contains("0981123456"), "{reason}");
    let quoted = reason.split("Respuesta: ").nth(1).unwrap();
    assert_eq!(quoted.chars().count(), SNIPPET_CHARS + 1, "{quoted}");
    assert!(quoted.ends_with('…'));
}

#[tokio::test]
async fn a_redirect_that_is_not_followed_is_configuration() {
    let server = MockServer::start().await;
    Mock::given(TigoWire).respond_with(ResponseTemplate::new(302)).expect(1).mount(&server).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let ch = HttpGatewayChannel::from_settings(&tigo_settings(&server.uri()), SmsProvider::Tigo, &http).unwrap();
    let err = ch.send(&message()).await.unwrap_err();
    assert!(configuration(&err).contains("revise TIGO_SMS_API_URL"), "{err:?}");
}

#[tokio::test]
async fn a_timeout_is_transient() {
    let server = MockServer::start().await;
    Mock::given(TigoWire)
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;
    let mut ch = tigo(&server);
    ch.timeout = Duration::from_millis(50);
    let err = ch.send(&message()).await.unwrap_err();
    let (reason, _) = transient(&err);
    assert!(reason.starts_with("Tigo: no respondió a tiempo; se reintentará"), "{reason}");
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let ch = HttpGatewayChannel::from_settings(&tigo_settings(&format!("http://{addr}")), SmsProvider::Tigo, &client())
        .unwrap();
    let err = ch.send(&message()).await.unwrap_err();
    let (reason, retry_after) = transient(&err);
    assert!(reason.starts_with("Tigo: no se pudo conectar; se reintentará"), "{reason}");
    assert!(!reason.contains(KEY));
    assert_eq!(retry_after, None);
}

#[tokio::test]
async fn a_recipient_that_is_not_a_phone_is_permanent_and_nothing_is_sent() {
    let server = MockServer::start().await;
    let ch = tigo(&server);
    let mut msg = message();
    msg.recipient = Recipient::Portal { id_cliente: 3 };
    let reason = permanent(&ch.send(&msg).await.unwrap_err()).to_string();
    assert!(reason.contains("debe ser un celular"), "{reason}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn probe_is_ok_for_a_valid_url() {
    let server = MockServer::start().await;
    assert_eq!(tigo(&server).probe().await, Ok(()));
    assert!(server.received_requests().await.unwrap().is_empty());
}

// ── Configuration ────────────────────────────────────────────────────────────────────────────────

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test]
async fn the_environment_string_form_configures_a_gateway_end_to_end() {
    let server = MockServer::start().await;
    Mock::given(KannelWire)
        .respond_with(ResponseTemplate::new(202).set_body_string("0: Accepted for delivery"))
        .expect(1)
        .mount(&server)
        .await;
    let settings = Settings::load(&LoadOptions {
        env: env(&[
            ("SMS_PROVIDER", "http"),
            ("CANTINA__SMS__GATEWAY__METHOD", "get"),
            ("CANTINA__SMS__GATEWAY__URL", &format!("{}/cgi-bin/sendsms?smsc=tigo", server.uri())),
            (
                "CANTINA__SMS__GATEWAY__FIELDS",
                "username=cantina, password={api_key}, to={to}, text={message}, charset=UTF-8",
            ),
            ("CANTINA__SMS__GATEWAY__API_KEY", KEY),
            ("CANTINA__SMS__GATEWAY__SUCCESS_STATUS", "202"),
            ("CANTINA__SMS__GATEWAY__SUCCESS_BODY_CONTAINS", "Accepted,Queued"),
        ]),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(settings.sms_provider(), Ok(Some(SmsProvider::Http)));
    let g = &settings.sms.gateway;
    assert_eq!(g.fields.get("password").map(String::as_str), Some("{api_key}"));
    assert_eq!(g.fields.len(), 5);
    assert_eq!(g.success_body_contains, vec!["Accepted", "Queued"]);
    assert!(!format!("{settings:?}").contains(KEY));
    assert!(!serde_json::to_string(&settings).unwrap().contains(KEY));
    let ch = HttpGatewayChannel::from_settings(&settings, SmsProvider::Http, &client()).unwrap();
    assert_eq!(ch.method, Method::Get);
    assert_eq!(ch.format, BodyFormat::Query);
    ch.send(&message()).await.unwrap();
    server.verify().await;
}

#[test]
fn a_toml_table_and_a_toml_string_both_give_the_fields() {
    let dir = std::env::temp_dir().join(format!("cn-gw-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let load = |toml: &str| {
        let file = dir.join("c.toml");
        std::fs::write(&file, toml).unwrap();
        Settings::load(&LoadOptions { file: Some(file), ..Default::default() }).unwrap()
    };
    let s = load(
        "[sms.gateway]\nurl = \"https://gw.example/send\"\nsuccess_status = [200, 202]\n\
             [sms.gateway.fields]\nto = \"{to_digits}\"\ntext = \"{message}\"\npriority = 1\n",
    );
    assert_eq!(s.sms.gateway.fields, parse_fields("to={to_digits},text={message},priority=1").unwrap());
    assert_eq!(s.sms.gateway.success_status.as_deref(), Some("200,202"));
    let s = load(
        "[sms.gateway]\nurl = \"https://gw.example/send\"\nfields = \"To={to},Body={message}\"\nsuccess_status = 202\n",
    );
    assert_eq!(s.sms.gateway.fields, parse_fields("To={to},Body={message}").unwrap());
    assert_eq!(s.sms.gateway.success_status.as_deref(), Some("202"));
    // TOML table keys keep their case; environment keys do not (see the module documentation).
    let s = load("[sms.gateway.fields]\nTo = \"{to}\"\n");
    assert_eq!(s.sms.gateway.fields, parse_fields("To={to}").unwrap());
    let s = Settings::load(&LoadOptions {
        env: env(&[("CANTINA__SMS__GATEWAY__FIELDS__To", "{to}")]),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(s.sms.gateway.fields, parse_fields("to={to}").unwrap());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_malformed_fields_string_names_the_key() {
    let err = Settings::load(&LoadOptions {
        env: env(&[("CANTINA__SMS__GATEWAY__FIELDS", "to={to},oops")]),
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("CANTINA__SMS__GATEWAY__FIELDS"), "{err}");
    assert!(err.contains("expected name=template pairs such as to={to},text={message}; entry 2 has no '='"), "{err}");
    assert!(!err.contains("oops"), "{err}");
}

#[test]
fn constructors_name_the_missing_keys() {
    let http = client();
    let err = HttpGatewayChannel::from_settings(&Settings::default(), SmsProvider::Tigo, &http).unwrap_err();
    assert_eq!(err, "SMS_PROVIDER=tigo needs TIGO_SMS_API_URL and TIGO_SMS_API_KEY");
    let err = HttpGatewayChannel::from_settings(&Settings::default(), SmsProvider::Personal, &http).unwrap_err();
    assert_eq!(err, "SMS_PROVIDER=personal needs PERSONAL_SMS_API_URL and PERSONAL_SMS_API_KEY");
    let err = HttpGatewayChannel::from_settings(&Settings::default(), SmsProvider::Http, &http).unwrap_err();
    assert_eq!(err, "SMS_PROVIDER=http needs CANTINA__SMS__GATEWAY__URL and CANTINA__SMS__GATEWAY__FIELDS");

    let mut s = Settings::default();
    s.sms.gateway.url = Some("https://gw.example/send".into());
    s.sms.gateway.fields = parse_fields("to={to},key={api_key}").unwrap();
    let err = HttpGatewayChannel::from_settings(&s, SmsProvider::Http, &http).unwrap_err();
    assert_eq!(err, "SMS_PROVIDER=http needs CANTINA__SMS__GATEWAY__API_KEY");

    let err = HttpGatewayChannel::from_settings(&s, SmsProvider::Twilio, &http).unwrap_err();
    assert!(err.contains("not an HTTP gateway"), "{err}");
}

#[test]
fn invalid_settings_are_refused_with_their_keys() {
    let http = client();
    let mut s = Settings::default();
    let g = &mut s.sms.gateway;
    g.url = Some("ftp://user:pw@gw.example/send".into());
    g.method = Some("PUT".into());
    g.fields = parse_fields("to={phone}").unwrap();
    g.success_status = Some("2xx,abc".into());
    g.message_id_pointer = Some("message_id".into());
    g.auth_header = Some("Bad Header".into());
    g.auth_value = Some(Secret::new("x"));
    g.success_json_pointer = Some("/ok".into());
    let err = HttpGatewayChannel::from_settings(&s, SmsProvider::Http, &http).unwrap_err();
    for needle in [
        "CANTINA__SMS__GATEWAY__SUCCESS_JSON_VALUE",
        "CANTINA__SMS__GATEWAY__METHOD: 'PUT'",
        "CANTINA__SMS__GATEWAY__URL: 'ftp://user:********@gw.example/send' is not an http(s) URL",
        "CANTINA__SMS__GATEWAY__FIELDS: field 'to': unknown placeholder {phone}",
        "CANTINA__SMS__GATEWAY__AUTH_HEADER: 'Bad Header'",
        "CANTINA__SMS__GATEWAY__SUCCESS_STATUS: 'abc'",
        "CANTINA__SMS__GATEWAY__MESSAGE_ID_POINTER: 'message_id' is not a JSON pointer",
    ] {
        assert!(err.contains(needle), "missing {needle} in {err}");
    }
    assert!(!err.contains(":pw@"), "{err}");

    let mut s = Settings::default();
    s.sms.gateway.url = Some("https://gw.example/send".into());
    s.sms.gateway.method = Some("GET".into());
    s.sms.gateway.format = Some("json".into());
    s.sms.gateway.fields = parse_fields("to={to}").unwrap();
    s.sms.gateway.message_id_pattern = Some("no placeholder".into());
    let err = HttpGatewayChannel::from_settings(&s, SmsProvider::Http, &http).unwrap_err();
    assert!(err.contains("a GET request has no body"), "{err}");
    assert!(err.contains("CANTINA__SMS__GATEWAY__MESSAGE_ID_PATTERN"), "{err}");
}

#[test]
fn debug_never_shows_the_key() {
    let s = json_gateway("http://127.0.0.1:9");
    let ch = HttpGatewayChannel::from_settings(&s, SmsProvider::Http, &client()).unwrap();
    let dbg = format!("{ch:?} {s:?}");
    assert!(!dbg.contains(KEY), "{dbg}");
    assert!(!dbg.contains("Bearer"), "{dbg}");
}

// ── Pieces ───────────────────────────────────────────────────────────────────────────────────────

#[test]
fn templates_render_every_placeholder_and_escape_braces() {
    let phone = MobilePhone::parse(Some("0981 123456")).unwrap();
    let v = Values::new(&phone, "hola", "k", "id-1");
    let t = Template::parse("{to}|{to_local}|{to_digits}|{message}|{api_key}|{id}|{{x}}").unwrap();
    assert_eq!(t.render(&v), "+595981123456|0981123456|595981123456|hola|k|id-1|{x}");
    assert!(Template::parse("{to").unwrap_err().contains("not closed"));
    assert!(Template::parse("{nope}").unwrap_err().contains("unknown placeholder {nope}"));
    assert_eq!(local_digits("+14155238886"), "4155238886");
}

#[test]
fn status_sets_parse() {
    assert_eq!(parse_statuses("2xx").unwrap(), vec![200..=299]);
    assert_eq!(parse_statuses("200, 202").unwrap(), vec![200..=200, 202..=202]);
    assert_eq!(parse_statuses("200-204").unwrap(), vec![200..=204]);
    assert!(parse_statuses("299-200").is_err());
    assert!(parse_statuses("700").is_err());
    assert!(parse_statuses("").is_err());
}

#[test]
fn message_id_patterns_find_the_id() {
    let mut s = Settings::default();
    s.sms.gateway.url = Some("https://gw.example/send".into());
    s.sms.gateway.fields = parse_fields("to={to}").unwrap();
    s.sms.gateway.message_id_pattern = Some("<id>{id}</id>".into());
    let ch = HttpGatewayChannel::from_settings(&s, SmsProvider::Http, &client()).unwrap();
    assert_eq!(ch.message_id("<r><id> 42 </id></r>").as_deref(), Some("42"));
    assert_eq!(ch.message_id("<r></r>"), None);
    assert_eq!(ch.message_id("<id></id>"), None);
    s.sms.gateway.message_id_pattern = Some("OK {id}".into());
    let ch = HttpGatewayChannel::from_settings(&s, SmsProvider::Http, &client()).unwrap();
    assert_eq!(ch.message_id("OK   abc def").as_deref(), Some("abc"));
    assert_eq!(ch.message_id("OK abc").as_deref(), Some("abc"));
    s.sms.gateway.message_id_pattern = None;
    s.sms.gateway.message_id_pointer = Some("/id".into());
    let ch = HttpGatewayChannel::from_settings(&s, SmsProvider::Http, &client()).unwrap();
    assert_eq!(ch.message_id(r#"{"id": 123}"#).as_deref(), Some("123"));
    assert_eq!(ch.message_id("not json"), None);
}

#[test]
fn json_success_values_compare_as_json_for_non_strings() {
    let mut s = Settings::default();
    s.sms.gateway.url = Some("https://gw.example/send".into());
    s.sms.gateway.fields = parse_fields("to={to}").unwrap();
    s.sms.gateway.success_json_pointer = Some("/ok".into());
    s.sms.gateway.success_json_value = Some("true".into());
    let ch = HttpGatewayChannel::from_settings(&s, SmsProvider::Http, &client()).unwrap();
    assert_eq!(ch.body_rule_failure(r#"{"ok": true}"#), None);
    assert_eq!(ch.body_rule_failure(r#"{"ok": "true"}"#), None);
    assert_eq!(ch.body_rule_failure(r#"{"ok": false}"#).as_deref(), Some("/ok vale false, se esperaba 'true'"));
    assert_eq!(ch.body_rule_failure("{}").as_deref(), Some("/ok vale nada, se esperaba 'true'"));
    assert!(ch.body_rule_failure("OK").unwrap().contains("no es JSON"));
}
