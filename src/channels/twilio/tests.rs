use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::*;
use crate::channels::test_support;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "tok-secreto-123";
/// base64("AC0123456789abcdef0123456789abcdef:tok-secreto-123").
const BASIC: &str = "Basic QUMwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjp0b2stc2VjcmV0by0xMjM=";
const MESSAGES_PATH: &str = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json";
const ACCOUNT_PATH: &str = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef.json";
const FROM: &str = "+15005550006";
const MG: &str = "MG0123456789abcdef0123456789abcdef";
const HX: &str = "HX0123456789abcdef0123456789abcdef";
const WA_NUMBER: &str = "+14155238886";
const CALLBACK: &str = "https://notify.cantinatita.com.py/webhooks/twilio/status";
const TO: &str = "+595981123456";
const KEY: &str = "recarga_exitosa:carga:4711:sms";
const SHORT: &str = "Cantina Tita: recarga de Gs. 50.000 para Ñandé. Saldo: Gs. 65.000.";

// ── the official spec ────────────────────────────────────────────────────────────────────────────

const SPEC_MESSAGES: &str = "/2010-04-01/Accounts/{AccountSid}/Messages.json";
const SPEC_ACCOUNT: &str = "/2010-04-01/Accounts/{Sid}.json";

fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/provider-specs/twilio/twilio_api_v2010.json");
        let text = std::fs::read_to_string(path).unwrap();
        serde_json::from_str(&text).unwrap()
    })
}

/// Follows a local `$ref` (`#/components/schemas/…`).
fn resolve(v: &Value) -> &Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.strip_prefix('#').unwrap();
            resolve(spec().pointer(pointer).unwrap_or_else(|| panic!("{r}")))
        }
        None => v,
    }
}

/// The spec's patterns for SIDs have the shape `^XX[0-9a-fA-F]{32}$` or `^(XX|YY)[0-9a-fA-F]{32}$`.
fn matches_sid_pattern(pattern: &str, value: &str) -> bool {
    let inner = pattern
        .strip_prefix('^')
        .and_then(|p| p.strip_suffix('$'))
        .unwrap_or_else(|| panic!("unsupported pattern {pattern}"));
    let (prefixes, rest) = match inner.strip_prefix('(') {
        Some(p) => {
            let (alts, rest) = p.split_once(')').unwrap();
            (alts.split('|').collect::<Vec<_>>(), rest)
        }
        None => {
            let i = inner.find('[').unwrap();
            (vec![&inner[..i]], &inner[i..])
        }
    };
    let n: usize = rest
        .strip_prefix("[0-9a-fA-F]{")
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or_else(|| panic!("unsupported pattern {pattern}"))
        .parse()
        .unwrap();
    prefixes
        .iter()
        .any(|p| value.strip_prefix(p).is_some_and(|hex| hex.len() == n && hex.chars().all(|c| c.is_ascii_hexdigit())))
}

/// Checks one value against its schema: type, length, pattern, format and enum.
fn check_value(name: &str, value: &str, schema: &Value) {
    let schema = resolve(schema);
    match schema["type"].as_str() {
        Some("string") => {}
        Some("integer") => assert!(value.parse::<i64>().is_ok(), "{name}: not an integer"),
        Some("number") => assert!(value.parse::<f64>().is_ok(), "{name}: not a number"),
        Some("boolean") => {
            assert!(matches!(value, "true" | "false"), "{name}: not a boolean")
        }
        other => panic!("{name}: unexpected schema type {other:?}"),
    }
    let len = value.chars().count() as u64;
    if let Some(min) = schema["minLength"].as_u64() {
        assert!(len >= min, "{name}: shorter than {min}");
    }
    if let Some(max) = schema["maxLength"].as_u64() {
        assert!(len <= max, "{name}: longer than {max}");
    }
    if let Some(p) = schema["pattern"].as_str() {
        assert!(matches_sid_pattern(p, value), "{name}={value} does not match {p}");
    }
    if let Some(values) = schema["enum"].as_array() {
        assert!(values.iter().any(|v| v == value), "{name}={value} not in enum");
    }
    match schema["format"].as_str() {
        Some("uri") => assert!(reqwest::Url::parse(value).is_ok(), "{name}: not a URI"),
        Some("phone-number") => {
            // E.164, a channel address (`whatsapp:+E164`) or an alphanumeric sender ID.
            let number = value.strip_prefix("whatsapp:").unwrap_or(value);
            let e164 = number
                .strip_prefix('+')
                .is_some_and(|d| (7..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit()));
            let alnum = !number.is_empty()
                && number.len() <= 11
                && number.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ');
            assert!(e164 || alnum, "{name}={value}: not a phone number");
        }
        _ => {}
    }
}

/// `{AccountSid}` etc. from a concrete path, if it matches the template.
fn match_path_template(template: &str, actual: &str) -> Option<BTreeMap<String, String>> {
    let mut params = BTreeMap::new();
    let mut rest = actual;
    let mut tpl = template;
    while !tpl.is_empty() {
        match tpl.find('{') {
            Some(open) => {
                rest = rest.strip_prefix(&tpl[..open])?;
                let close = tpl.find('}')?;
                let name = &tpl[open + 1..close];
                tpl = &tpl[close + 1..];
                // The value runs to the next literal character of the template.
                let next = tpl.chars().next();
                let end = match next {
                    Some(c) => rest.find(c)?,
                    None => rest.len(),
                };
                params.insert(name.to_string(), rest[..end].to_string());
                rest = &rest[end..];
            }
            None => {
                rest = rest.strip_prefix(tpl)?;
                tpl = "";
            }
        }
    }
    rest.is_empty().then_some(params)
}

fn check_path_and_auth(op: &Value, template: &str, req: &Request) {
    let params = match_path_template(template, req.url.path())
        .unwrap_or_else(|| panic!("{} does not match {template}", req.url.path()));
    for p in op["parameters"].as_array().unwrap() {
        if p["in"] == "path" {
            let name = p["name"].as_str().unwrap();
            let value = params.get(name).unwrap_or_else(|| panic!("no {name}"));
            check_value(name, value, &p["schema"]);
        }
    }
    // Security: HTTP Basic, the only scheme the spec declares.
    for requirement in op["security"].as_array().unwrap() {
        for scheme in requirement.as_object().unwrap().keys() {
            let s = &spec()["components"]["securitySchemes"][scheme];
            assert_eq!((s["type"].as_str(), s["scheme"].as_str()), (Some("http"), Some("basic")));
        }
    }
    let auth = req.headers.get("authorization").unwrap().to_str().unwrap();
    assert!(auth.starts_with("Basic "), "{auth}");
}

fn form_pairs(req: &Request) -> Vec<(String, String)> {
    let body = std::str::from_utf8(&req.body).unwrap();
    let url = reqwest::Url::parse(&format!("http://form.invalid/?{body}")).unwrap();
    url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// Validates a `CreateMessage` request against the official spec: path and its parameter, security,
/// content type, every field a property of the request body schema with a valid value, the required
/// fields present, and the spec's `x-twilio.conditional` groups (a sender; a content) satisfied.
fn assert_create_message_conforms(req: &Request) {
    let op = &spec()["paths"][SPEC_MESSAGES]["post"];
    assert_eq!(op["operationId"], "CreateMessage");
    assert_eq!(req.method.as_str(), "POST");
    check_path_and_auth(op, SPEC_MESSAGES, req);
    let content_type = req.headers.get("content-type").unwrap().to_str().unwrap();
    let media =
        op["requestBody"]["content"].get(content_type).unwrap_or_else(|| panic!("the spec accepts no {content_type}"));
    let schema = resolve(&media["schema"]);
    let fields = form_pairs(req);
    let names: BTreeSet<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names.len(), fields.len(), "a field is repeated: {fields:?}");
    for (name, value) in &fields {
        let prop = schema["properties"].get(name).unwrap_or_else(|| panic!("{name} is not a CreateMessage property"));
        check_value(name, value, prop);
    }
    for required in schema["required"].as_array().unwrap() {
        let r = required.as_str().unwrap();
        assert!(names.contains(r), "required {r} missing");
    }
    let as_field = |snake: &str| -> String {
        snake
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
            })
            .collect()
    };
    for group in op["x-twilio"]["conditional"].as_array().unwrap() {
        let group: Vec<String> = group.as_array().unwrap().iter().map(|g| as_field(g.as_str().unwrap())).collect();
        assert!(group.iter().any(|g| names.contains(g.as_str())), "none of {group:?} sent");
    }
    if let Some((_, vars)) = fields.iter().find(|(k, _)| k == "ContentVariables") {
        assert!(names.contains("ContentSid"), "ContentVariables needs ContentSid");
        let v: Value = serde_json::from_str(vars).unwrap();
        assert!(v.as_object().unwrap().values().all(Value::is_string));
    }
}

fn assert_fetch_account_conforms(req: &Request) {
    let op = &spec()["paths"][SPEC_ACCOUNT]["get"];
    assert_eq!(op["operationId"], "FetchAccount");
    assert_eq!(req.method.as_str(), "GET");
    check_path_and_auth(op, SPEC_ACCOUNT, req);
}

/// The spec's own example of a created Message.
fn created_example() -> Value {
    let op = &spec()["paths"][SPEC_MESSAGES]["post"];
    let example = op["responses"]["201"]["content"]["application/json"]["examples"]["create"]["value"].clone();
    // The field we read is the one the schema defines.
    let schema = resolve(&op["responses"]["201"]["content"]["application/json"]["schema"]);
    check_value("sid", example["sid"].as_str().unwrap(), &schema["properties"]["sid"]);
    example
}

fn fetch_account_example() -> Value {
    spec()["paths"][SPEC_ACCOUNT]["get"]["responses"]["200"]["content"]["application/json"]
            ["examples"]["fetch"]["value"]
            .clone()
}

// ── fixtures ─────────────────────────────────────────────────────────────────────────────────────

fn settings(api_url: &str) -> Settings {
    let mut s = Settings::default();
    s.twilio.account_sid = Some(SID.into());
    s.twilio.auth_token = Some(Secret::new(TOKEN));
    s.twilio.phone_number = Some(FROM.into());
    s.twilio.whatsapp_number = Some(format!("whatsapp:{WA_NUMBER}"));
    s.twilio.api_url = api_url.into();
    s
}

fn with_content_sid(mut s: Settings) -> Settings {
    s.whatsapp.templates.insert(
        "recarga_exitosa".into(),
        crate::config::WhatsAppTemplateSettings { content_sid: Some(HX.into()), ..Default::default() },
    );
    s
}

fn message(channel: ChannelKind) -> OutgoingMessage {
    OutgoingMessage {
        idempotency_key: KEY.into(),
        short_text: SHORT.into(),
        ..test_support::message(channel, test_support::phone(), test_support::recarga())
    }
}

async fn server_answering(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path(MESSAGES_PATH)).respond_with(template).expect(1).mount(&server).await;
    server
}

fn created() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(created_example())
}

fn sorted(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    v.sort();
    v
}

/// The one request the server received: method, path, auth, content type, idempotency key, exactly these
/// form fields, and conformance to the spec.
async fn assert_wire(server: &MockServer, expected: &[(&str, &str)]) {
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let req = &requests[0];
    assert_eq!(req.method.as_str(), "POST");
    assert_eq!(req.url.path(), MESSAGES_PATH);
    assert_eq!(req.url.query(), None);
    assert_eq!(req.headers.get("authorization").unwrap(), BASIC);
    assert_eq!(req.headers.get("content-type").unwrap(), "application/x-www-form-urlencoded");
    assert_eq!(req.headers.get(IDEMPOTENCY_HEADER).unwrap(), KEY);
    let mut got = form_pairs(req);
    got.sort();
    assert_eq!(got, sorted(expected));
    assert_create_message_conforms(req);
}

fn sms_fields() -> Vec<(&'static str, &'static str)> {
    vec![("To", TO), ("From", FROM), ("Body", SHORT)]
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

// ── SMS ──────────────────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn sms_success_sends_the_documented_form_and_returns_the_sid() {
    let server = server_answering(created()).await;
    let ch = TwilioChannel::sms(&settings(&server.uri()), &client()).unwrap();
    assert_eq!(ch.kind(), ChannelKind::Sms);
    assert_eq!(ch.provider(), "twilio");
    assert_eq!(ch.default_per_second(), 1.0);

    let receipt = ch.send(&message(ChannelKind::Sms)).await.unwrap();
    assert_eq!(receipt.provider_message_id.as_deref(), Some("SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    assert_wire(&server, &sms_fields()).await;
    // The raw body is UTF-8 form encoding (Ñ → %C3%91), spaces as '+'.
    let body = String::from_utf8(server.received_requests().await.unwrap()[0].body.clone()).unwrap();
    assert!(body.contains("To=%2B595981123456"), "{body}");
    assert!(body.contains("%C3%91and%C3%A9"), "{body}");
}

#[tokio::test]
async fn sms_bodies_are_kept_in_gsm7_so_an_accent_does_not_cost_extra_segments() {
    let server = server_answering(created()).await;
    let ch = TwilioChannel::sms(&settings(&server.uri()), &client()).unwrap();
    let mut msg = message(ChannelKind::Sms);
    msg.short_text = "Cantina Tita: recarga para Luis Benítez Ñúñez.".into();
    ch.send(&msg).await.unwrap();
    let body = String::from_utf8(server.received_requests().await.unwrap()[0].body.clone()).unwrap();
    // í and ú are not GSM-7 (they would force UCS-2); Ñ and ñ are.
    assert!(body.contains("Benitez+%C3%91u%C3%B1ez"), "{body}");
}

#[tokio::test]
async fn sms_with_a_messaging_service_sid_sends_it_instead_of_from() {
    let server = server_answering(created()).await;
    let mut s = settings(&server.uri());
    s.twilio.phone_number = Some(MG.into());
    let ch = TwilioChannel::sms(&s, &client()).unwrap();
    ch.send(&message(ChannelKind::Sms)).await.unwrap();
    assert_wire(&server, &[("To", TO), ("MessagingServiceSid", MG), ("Body", SHORT)]).await;
}

#[tokio::test]
async fn sms_status_callback_is_sent_when_configured() {
    let server = server_answering(created()).await;
    let mut s = settings(&format!("{}/", server.uri()));
    s.twilio.status_callback_url = Some(CALLBACK.into());
    let ch = TwilioChannel::sms(&s, &client()).unwrap();
    ch.send(&message(ChannelKind::Sms)).await.unwrap();
    let mut expected = sms_fields();
    expected.push(("StatusCallback", CALLBACK));
    assert_wire(&server, &expected).await;
}

#[tokio::test]
async fn a_success_without_sid_is_still_a_success() {
    let server = server_answering(ResponseTemplate::new(201).set_body_string("ok")).await;
    let ch = TwilioChannel::sms(&settings(&server.uri()), &client()).unwrap();
    let receipt = ch.send(&message(ChannelKind::Sms)).await.unwrap();
    assert_eq!(receipt.provider_message_id, None);
    assert!(receipt.warning.as_deref().is_some_and(|w| w.contains("'sid'")), "{receipt:?}");
    assert_wire(&server, &sms_fields()).await;
}

#[tokio::test]
async fn a_recipient_that_is_not_a_phone_is_permanent_and_nothing_is_sent() {
    let server = MockServer::start().await;
    let ch = TwilioChannel::sms(&settings(&server.uri()), &client()).unwrap();
    let mut msg = message(ChannelKind::Sms);
    msg.recipient = Recipient::Portal { id_cliente: 7 };
    let err = ch.send(&msg).await.unwrap_err();
    assert!(matches!(err, SendError::Permanent { .. }), "{err:?}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

// ── WhatsApp ─────────────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn whatsapp_template_sends_content_sid_and_variables() {
    let server = server_answering(created()).await;
    let mut s = with_content_sid(settings(&server.uri()));
    s.twilio.status_callback_url = Some(CALLBACK.into());
    let ch = TwilioChannel::whatsapp(&s, &client()).unwrap();
    assert_eq!(ch.kind(), ChannelKind::WhatsApp);
    assert_eq!(ch.provider(), "twilio");

    let receipt = ch.send(&message(ChannelKind::WhatsApp)).await.unwrap();
    assert_eq!(receipt.provider_message_id.as_deref(), Some("SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    let variables =
        r#"{"1":"María Benítez","2":"Ñandú Benítez","3":"Gs. 50.000","4":"Gs. 65.000","5":"23/11/2026 10:15"}"#;
    assert_wire(
        &server,
        &[
            ("To", "whatsapp:+595981123456"),
            ("From", "whatsapp:+14155238886"),
            ("ContentSid", HX),
            ("ContentVariables", variables),
            ("StatusCallback", CALLBACK),
        ],
    )
    .await;
    // And as JSON, independent of key order.
    let req = &server.received_requests().await.unwrap()[0];
    let sent = form_pairs(req).into_iter().find(|(k, _)| k == "ContentVariables").unwrap().1;
    assert_eq!(
        serde_json::from_str::<Value>(&sent).unwrap(),
        json!({"1": "María Benítez", "2": "Ñandú Benítez", "3": "Gs. 50.000", "4": "Gs. 65.000", "5": "23/11/2026 10:15"})
    );
}

#[tokio::test]
async fn whatsapp_without_a_content_sid_sends_free_form_text() {
    let server = server_answering(created()).await;
    let mut s = settings(&server.uri());
    // Configured without the prefix this time.
    s.twilio.whatsapp_number = Some(WA_NUMBER.into());
    // A template for another type does not apply.
    s.whatsapp.templates.insert(
        "saldo_bajo".into(),
        crate::config::WhatsAppTemplateSettings { content_sid: Some(HX.into()), ..Default::default() },
    );
    let ch = TwilioChannel::whatsapp(&s, &client()).unwrap();
    ch.send(&message(ChannelKind::WhatsApp)).await.unwrap();
    assert_wire(&server, &[("To", "whatsapp:+595981123456"), ("From", "whatsapp:+14155238886"), ("Body", SHORT)]).await;
}

#[tokio::test]
async fn whatsapp_63016_asks_staff_for_a_template() {
    let server = server_answering(ResponseTemplate::new(400).set_body_json(json!({
        "code": 63016,
        "message": "Failed to send freeform message because you are outside the allowed window. Please use a Template.",
        "more_info": "https://www.twilio.com/docs/errors/63016",
        "status": 400
    })))
    .await;
    let ch = TwilioChannel::whatsapp(&settings(&server.uri()), &client()).unwrap();
    let err = ch.send(&message(ChannelKind::WhatsApp)).await.unwrap_err();
    let SendError::Configuration { reason } = &err else { panic!("{err:?}") };
    assert!(reason.contains("CANTINA__WHATSAPP__TEMPLATES__RECARGA_EXITOSA__CONTENT_SID"), "{reason}");
    assert!(reason.contains("Twilio 63016: Failed to send freeform"), "{reason}");
    assert_wire(&server, &[("To", "whatsapp:+595981123456"), ("From", "whatsapp:+14155238886"), ("Body", SHORT)]).await;
}

// ── errors ───────────────────────────────────────────────────────────────────────────────────────

fn twilio_error(status: u16, code: i64, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status
    }))
}

/// Sends one SMS against `template`, asserts the request's wire format, returns the error.
async fn sms_error(template: ResponseTemplate) -> SendError {
    let server = server_answering(template).await;
    let ch = TwilioChannel::sms(&settings(&server.uri()), &client()).unwrap();
    let err = ch.send(&message(ChannelKind::Sms)).await.unwrap_err();
    assert_wire(&server, &sms_fields()).await;
    err
}

use crate::channels::test_support::{configuration, opted_out, permanent, transient};

#[tokio::test]
async fn invalid_to_21211_is_permanent_and_the_number_is_masked() {
    let err = sms_error(twilio_error(400, 21211, "The 'To' number +595981123456 is not a valid phone number.")).await;
    let reason = permanent(&err);
    assert_eq!(
        reason,
        "Número de destino inválido (Twilio 21211: The 'To' number +595 98* *** 456 is not a valid phone number.)"
    );
}

#[tokio::test]
async fn not_a_mobile_21614_is_permanent() {
    let err = sms_error(twilio_error(400, 21614, "'To' number is not a valid mobile number")).await;
    assert_eq!(
        permanent(&err),
        "El número de destino no es un celular (Twilio 21614: 'To' number is not a valid mobile number)"
    );
}

#[tokio::test]
async fn opted_out_21610_is_an_opt_out() {
    let err = sms_error(twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")).await;
    let reason = opted_out(&err);
    assert!(reason.contains("STOP"), "{reason}");
    assert!(reason.contains("Twilio 21610: Attempt to send to unsubscribed recipient"));
}

#[tokio::test]
async fn unverified_trial_number_21608_is_permanent() {
    let err = sms_error(twilio_error(
        400,
        21608,
        "The number is unverified. Trial accounts cannot send messages to unverified numbers",
    ))
    .await;
    assert!(permanent(&err).contains("Twilio 21608: The number is unverified"));
}

#[tokio::test]
async fn region_not_enabled_21408_is_configuration() {
    let err = sms_error(twilio_error(
        400,
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the 'To' number",
    ))
    .await;
    let reason = configuration(&err);
    assert!(reason.contains("Geo Permissions"), "{reason}");
    assert!(reason.contains("Twilio 21408: Permission to send an SMS"));
}

#[tokio::test]
async fn from_cannot_send_21606_is_configuration() {
    let err = sms_error(twilio_error(
        400,
        21606,
        "The 'From' phone number provided is not a valid message-capable Twilio phone number for this destination.",
    ))
    .await;
    let reason = configuration(&err);
    assert!(reason.contains("TWILIO_PHONE_NUMBER"), "{reason}");
    assert!(reason.contains("Twilio 21606: The 'From' phone number"));
}

#[tokio::test]
async fn authentication_20003_is_configuration_and_never_shows_the_token() {
    let err = sms_error(twilio_error(401, 20003, "Authenticate")).await;
    let reason = configuration(&err);
    assert_eq!(
        reason,
        "Twilio rechazó las credenciales: revise TWILIO_ACCOUNT_SID y TWILIO_AUTH_TOKEN (Twilio 20003: Authenticate)"
    );
    assert!(!reason.contains(TOKEN));
}

#[tokio::test]
async fn http_401_without_a_body_is_configuration() {
    let err = sms_error(ResponseTemplate::new(401)).await;
    let reason = configuration(&err);
    assert!(reason.contains("TWILIO_AUTH_TOKEN"), "{reason}");
    assert!(reason.contains("Twilio HTTP 401: (sin cuerpo)"), "{reason}");
}

#[tokio::test]
async fn too_many_requests_20429_is_transient_with_retry_after() {
    let err = sms_error(twilio_error(429, 20429, "Too Many Requests").insert_header("Retry-After", "2")).await;
    let (reason, retry_after) = transient(&err);
    assert_eq!(retry_after, Some(Duration::from_secs(2)));
    assert!(reason.contains("Twilio 20429: Too Many Requests"), "{reason}");
}

#[tokio::test]
async fn http_429_without_a_twilio_body_is_transient_with_retry_after() {
    let err = sms_error(ResponseTemplate::new(429).insert_header("Retry-After", "2")).await;
    assert_eq!(transient(&err).1, Some(Duration::from_secs(2)));
}

#[tokio::test]
async fn server_error_is_transient() {
    let err = sms_error(twilio_error(500, 20500, "Internal Server Error")).await;
    let (reason, retry_after) = transient(&err);
    assert_eq!(retry_after, None);
    assert!(reason.contains("Twilio 20500: Internal Server Error"), "{reason}");
}

#[tokio::test]
async fn garbage_error_bodies_do_not_panic() {
    let html = "<html>\n<body>Bad   gateway</body></html>";
    let err = sms_error(ResponseTemplate::new(502).set_body_string(html)).await;
    let (reason, _) = transient(&err);
    assert!(reason.contains("Twilio HTTP 502: <html> <body>Bad gateway</body></html>"), "{reason}");

    let err = sms_error(ResponseTemplate::new(400).set_body_string("{\"code\": \"x")).await;
    assert!(permanent(&err).contains("Twilio HTTP 400: {\"code\": \"x"));

    let long = "é".repeat(1_000);
    let err = sms_error(ResponseTemplate::new(400).set_body_string(long)).await;
    assert!(permanent(&err).ends_with("…)"));

    let err = sms_error(ResponseTemplate::new(400).set_body_raw(vec![0xff, 0xfe, 0x00], "application/json")).await;
    permanent(&err);
}

#[tokio::test]
async fn other_4xx_is_permanent_with_code_and_message() {
    let err =
        sms_error(twilio_error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")).await;
    assert!(permanent(&err).contains("Twilio 21617: The concatenated message body"));
}

#[tokio::test]
async fn not_found_is_configuration() {
    let err = sms_error(twilio_error(404, 20404, "The requested resource was not found")).await;
    assert!(configuration(&err).contains("TWILIO_API_URL"));
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let ch = TwilioChannel::sms(&settings(&format!("http://{addr}")), &client()).unwrap();
    let err = ch.send(&message(ChannelKind::Sms)).await.unwrap_err();
    let (reason, _) = transient(&err);
    assert!(reason.starts_with("No se pudo conectar con Twilio"), "{reason}");
    assert!(!reason.contains(TOKEN));
}

#[tokio::test]
async fn a_timeout_is_transient() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(created().set_delay(Duration::from_secs(30))).mount(&server).await;
    let mut ch = TwilioChannel::sms(&settings(&server.uri()), &client()).unwrap();
    ch.timeout = Duration::from_millis(50);
    let err = ch.send(&message(ChannelKind::Sms)).await.unwrap_err();
    let (reason, _) = transient(&err);
    assert!(reason.starts_with("Twilio no respondió a tiempo"), "{reason}");
}

// ── probe ────────────────────────────────────────────────────────────────────────────────────────

async fn probe_against(template: ResponseTemplate) -> Result<(), SendError> {
    let server = MockServer::start().await;
    Mock::given(method("GET")).and(path(ACCOUNT_PATH)).respond_with(template).expect(1).mount(&server).await;
    let ch = TwilioChannel::sms(&settings(&server.uri()), &client()).unwrap();
    let result = ch.probe().await;
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let req = &requests[0];
    assert_eq!(req.method.as_str(), "GET");
    assert_eq!(req.url.path(), ACCOUNT_PATH);
    assert_eq!(req.headers.get("authorization").unwrap(), BASIC);
    assert!(req.body.is_empty());
    assert_fetch_account_conforms(req);
    result
}

#[tokio::test]
async fn probe_ok_on_an_active_account() {
    probe_against(ResponseTemplate::new(200).set_body_json(fetch_account_example())).await.unwrap();
}

#[tokio::test]
async fn probe_401_is_configuration() {
    let err = probe_against(twilio_error(401, 20003, "Authenticate")).await.unwrap_err();
    assert!(configuration(&err).contains("Twilio 20003: Authenticate"));
}

#[tokio::test]
async fn probe_on_a_suspended_account_is_configuration() {
    let mut body = fetch_account_example();
    body["status"] = json!("suspended");
    let err = probe_against(ResponseTemplate::new(200).set_body_json(body)).await.unwrap_err();
    assert!(configuration(&err).contains("suspended"));
}

#[tokio::test]
async fn probe_5xx_is_transient() {
    let err = probe_against(ResponseTemplate::new(503)).await.unwrap_err();
    transient(&err);
}

// ── construction ─────────────────────────────────────────────────────────────────────────────────

#[test]
fn constructors_name_the_missing_keys() {
    let http = client();
    let mut s = Settings::default();
    assert_eq!(
        TwilioChannel::sms(&s, &http).unwrap_err(),
        "SMS_PROVIDER=twilio needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_PHONE_NUMBER"
    );
    assert_eq!(
        TwilioChannel::whatsapp(&s, &http).unwrap_err(),
        "WHATSAPP_PROVIDER=twilio needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_WHATSAPP_NUMBER"
    );
    s.twilio.account_sid = Some(SID.into());
    s.twilio.auth_token = Some(Secret::new("  "));
    s.twilio.whatsapp_number = Some(WA_NUMBER.into());
    assert_eq!(
        TwilioChannel::sms(&s, &http).unwrap_err(),
        "SMS_PROVIDER=twilio needs TWILIO_AUTH_TOKEN and TWILIO_PHONE_NUMBER"
    );
    assert_eq!(TwilioChannel::whatsapp(&s, &http).unwrap_err(), "WHATSAPP_PROVIDER=twilio needs TWILIO_AUTH_TOKEN");
    let mut bad = settings("ftp://example.com");
    assert!(TwilioChannel::sms(&bad, &http).unwrap_err().starts_with("TWILIO_API_URL"));
    bad = settings("https://api.twilio.com");
    bad.twilio.account_sid = Some("AC../../x".into());
    assert!(TwilioChannel::sms(&bad, &http).unwrap_err().starts_with("TWILIO_ACCOUNT_SID"));
    bad = settings("https://api.twilio.com");
    bad.twilio.whatsapp_number = Some("whatsapp:".into());
    assert!(TwilioChannel::whatsapp(&bad, &http).is_err());
}

#[test]
fn whatsapp_numbers_are_accepted_with_or_without_the_prefix() {
    for configured in
        ["+14155238886", "whatsapp:+14155238886", "WhatsApp:+14155238886", " whatsapp: +14155238886 ", "14155238886"]
    {
        assert_eq!(whatsapp_address(configured), "whatsapp:+14155238886", "{configured}");
    }
}

#[test]
fn debug_never_shows_the_token() {
    let ch = TwilioChannel::sms(&settings("https://api.twilio.com"), &client()).unwrap();
    let debug = format!("{ch:?}");
    assert!(!debug.contains(TOKEN), "{debug}");
    assert!(debug.contains(SID));
}

#[test]
fn the_spec_check_rejects_what_twilio_would() {
    let request = |body: &str| {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static(BASIC));
        headers.insert("content-type", HeaderValue::from_static("application/x-www-form-urlencoded"));
        Request {
            url: reqwest::Url::parse(&format!("http://127.0.0.1{MESSAGES_PATH}")).unwrap(),
            method: reqwest::Method::POST,
            headers,
            body: body.as_bytes().to_vec(),
        }
    };
    let conforms = |body: &str| {
        let req = request(body);
        std::panic::catch_unwind(|| assert_create_message_conforms(&req)).is_ok()
    };
    assert!(conforms("To=%2B595981123456&From=%2B15005550006&Body=hola"));
    assert!(conforms(&format!(
        "To=whatsapp%3A%2B595981123456&MessagingServiceSid={MG}&ContentSid={HX}&ContentVariables=%7B%221%22%3A%22a%22%7D"
    )));
    // Unknown field, missing required To, no sender, no content, malformed SIDs, variables without a template.
    assert!(!conforms("To=%2B595981123456&From=%2B15005550006&Text=hola"));
    assert!(!conforms("From=%2B15005550006&Body=hola"));
    assert!(!conforms("To=%2B595981123456&Body=hola"));
    assert!(!conforms("To=%2B595981123456&From=%2B15005550006"));
    assert!(!conforms("To=%2B595981123456&MessagingServiceSid=MG1&Body=hola"));
    assert!(!conforms("To=%2B595981123456&From=%2B15005550006&ContentSid=HX1&ContentVariables=%7B%7D"));
    assert!(!conforms("To=%2B595981123456&From=%2B15005550006&Body=a&ContentVariables=%7B%7D"));
    assert!(!conforms("To=%2B595981123456&From=%2B15005550006&Body=a&Body=b"));
    assert!(!conforms("To=%2B595981123456&From=%2B15005550006&Body=a&StatusCallback=not%20a%20url"));
}

#[test]
fn the_sid_pattern_checker_checks() {
    assert!(matches_sid_pattern("^MG[0-9a-fA-F]{32}$", MG));
    assert!(!matches_sid_pattern("^MG[0-9a-fA-F]{32}$", "MG123"));
    assert!(!matches_sid_pattern("^HX[0-9a-fA-F]{32}$", MG));
    assert!(matches_sid_pattern("^(SM|MM)[0-9a-fA-F]{32}$", "MM0123456789abcdef0123456789abcdef"));
    assert_eq!(match_path_template(SPEC_MESSAGES, MESSAGES_PATH).unwrap()["AccountSid"], SID);
    assert!(match_path_template(SPEC_MESSAGES, "/2010-04-01/Accounts/x/Calls.json").is_none());
}
