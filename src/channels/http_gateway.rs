//! HTTP SMS gateways (Tigo, Personal, Kannel, any form/JSON API).
//!
//! Paraguayan carriers publish no public SMS API, so one small configurable adapter serves them all: one HTTP
//! request per SMS, built from a map of fields whose values are templates, and a rule that says which answers
//! mean "accepted".
//!
//! # Presets (`SMS_PROVIDER=tigo` / `SMS_PROVIDER=personal`)
//!
//! They reproduce what the Cantina Tita system sent: `POST` to the configured URL, a form body
//! (`application/x-www-form-urlencoded`), HTTP 200 (only 200) = accepted, no message id.
//!
//! | provider | URL | key | form fields |
//! |---|---|---|---|
//! | `tigo` | `TIGO_SMS_API_URL` | `TIGO_SMS_API_KEY` | `api_key={api_key}`, `to={to_local}`, `message={message}` |
//! | `personal` | `PERSONAL_SMS_API_URL` | `PERSONAL_SMS_API_KEY` | `apikey={api_key}`, `phone={to_local}`, `text={message}` |
//!
//! The number goes in the **local form** (`0981123456`): `clientes.telefono` holds exactly that form and the
//! Cantina system passed it through unchanged. If a carrier wants international digits instead, override that
//! one field: `CANTINA__SMS__GATEWAY__FIELDS='to={to_digits}'` (Tigo) or `'phone={to_digits}'` (Personal).
//! For the presets, `[sms.gateway]` fields are merged over the preset's (an empty template removes a field),
//! and every other `[sms.gateway]` key that is set (method, format, auth header, success rule, message id)
//! replaces the preset's; the URL and the key always come from the `TIGO_*` / `PERSONAL_*` names.
//!
//! # Any gateway (`SMS_PROVIDER=http`): `[sms.gateway]`, environment `CANTINA__SMS__GATEWAY__<KEY>`
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `method` | `POST` or `GET` | `POST` |
//! | `url` | the endpoint (required); a fixed query string is kept | |
//! | `format` | `form` (urlencoded body), `json` (a flat JSON object of strings) or `query` (URL parameters; the only choice for `GET`) | `form` for `POST`, `query` for `GET` |
//! | `fields` | field name → template (required) | |
//! | `api_key` | the secret the templates use as `{api_key}` (a `Secret`: never printed; `CANTINA__SMS__GATEWAY__API_KEY_FILE` works) | |
//! | `auth_header`, `auth_value` | one extra header, e.g. `Authorization` and `Bearer {api_key}` (the value is a template and a secret) | none |
//! | `success_status` | statuses that mean accepted: `200`, `200,202`, `200-299`, `2xx` | `2xx` |
//! | `success_body_contains` | the body must contain one of these texts (comma list) | no check |
//! | `success_json_pointer`, `success_json_value` | the JSON body's value at this pointer (RFC 6901, e.g. `/status`) must equal this text (`true`, `0` compare as JSON) | no check |
//! | `message_id_pointer` | the provider's message id is the JSON body's value at this pointer (`/message_id`) | no id |
//! | `message_id_pattern` | for text bodies: the id is what stands at `{id}` in this text, e.g. `ID: {id}` (up to the text after `{id}`, or to the next blank when nothing follows it). Literal text, not a regular expression: the crate has no regex dependency | no id |
//!
//! Placeholders in templates: `{to}` E.164 (`+595981123456`), `{to_local}` national digits (`0981123456`),
//! `{to_digits}` E.164 without `+` (`595981123456`), `{message}` the SMS text, `{api_key}`, `{id}` the request's
//! idempotency key (stable across retries: gateways that de-duplicate on a client reference should get it).
//! `{{` and `}}` are literal braces; any other `{name}` is refused at start-up.
//!
//! The field map is given either as a string, `name=template` pairs separated by commas or new lines (the only
//! way to write it in one environment variable), or as a TOML table:
//!
//! ```text
//! CANTINA__SMS__GATEWAY__FIELDS='to={to_digits},text={message},from=CantinaTita'
//! ```
//! ```toml
//! [sms.gateway.fields]
//! to = "{to_digits}"
//! text = "{message}"
//! ```
//!
//! Field names keep their case in both forms. (One field per variable, `CANTINA__SMS__GATEWAY__FIELDS__TO=…`,
//! also works, but the loader lower-cases environment keys, so a name with capitals such as `To` or `Body`
//! needs the string form there.) The string form cannot carry a comma inside a value; use a TOML table for
//! that. Never write a password into a field: put it in `api_key` and use `{api_key}`, so `check-config` and
//! logs never show it.
//!
//! ## Example: Kannel `sendsms`
//!
//! Kannel's smsbox takes `GET http://kannel:13013/cgi-bin/sendsms?username=..&password=..&to=..&text=..`.
//! Its user guide ("SMS Push reply codes") documents: `202` with `0: Accepted for delivery` or
//! `3: Queued for later delivery` (both accepted), `4xx` (body varies) for a request that can never be
//! delivered (a wrong username/password answers "Authorization failed"), and `503` `Temporal failure, try again
//! later.`. The reply carries no message id.
//!
//! ```text
//! SMS_PROVIDER=http
//! CANTINA__SMS__GATEWAY__METHOD=GET
//! CANTINA__SMS__GATEWAY__URL=http://kannel:13013/cgi-bin/sendsms
//! CANTINA__SMS__GATEWAY__FIELDS='username=cantina,password={api_key},to={to},text={message},charset=UTF-8'
//! CANTINA__SMS__GATEWAY__API_KEY=<the sendsms-user password>
//! CANTINA__SMS__GATEWAY__SUCCESS_STATUS=202
//! CANTINA__SMS__GATEWAY__SUCCESS_BODY_CONTAINS='Accepted,Queued'
//! ```
//!
//! (`charset=UTF-8` because Kannel reads `text` as WINDOWS-1252 by default; add `coding=2` (UCS-2) if the texts
//! carry characters outside GSM-7 such as á, í, ó, ú. Use `{to_digits}` or `{to_local}` if the SMSC wants that.)
//!
//! ## Example: a JSON API with a bearer token
//!
//! ```toml
//! [sms.gateway]
//! url = "https://sms.example.com/v1/messages"
//! format = "json"
//! auth_header = "Authorization"
//! auth_value = "Bearer {api_key}"
//! success_json_pointer = "/status"
//! success_json_value = "queued"
//! message_id_pointer = "/data/id"
//! fields = "to={to},text={message},reference={id}"
//! ```
//!
//! # Outcomes
//!
//! | answer | class |
//! |---|---|
//! | a success status whose body passes the body rules | sent, with the id if configured and found |
//! | 2xx failing the rule (other status, missing text, JSON value not equal) | Permanent, with the body |
//! | 401, 403 | Configuration: the key (`TIGO_SMS_API_KEY`, …) or the auth header |
//! | 404 | Configuration: the URL |
//! | 408, 429, 5xx | Transient, honouring `Retry-After` |
//! | other 4xx | Permanent, with the body |
//! | 1xx, 3xx | Configuration: the URL (a redirect loop or a proxy) |
//! | timeout, connection error | Transient |
//!
//! Reasons quote at most 200 characters of the body, with the recipient's number and the key masked.
//!
//! Gateways have no standard "check my credentials" call, so [`Channel::probe`] only checks that the URL is
//! usable: after a configuration error the channel pauses, and the next send after the probe is the real test.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Deserializer, Serialize};

use super::provider_text::read_body;
use super::{Channel, OutgoingMessage, SendError, SendReceipt};
use crate::config::{Secret, Settings, SmsProvider, mask_url_password};
use crate::domain::{ChannelKind, MobilePhone};
use crate::rules::Recipient;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a body goes into a reason.
const SNIPPET_CHARS: usize = 200;
/// `solicitudes_notificacion.id_proveedor` is `varchar(255)`.
const MAX_ID_CHARS: usize = 255;

const KEY_METHOD: &str = "CANTINA__SMS__GATEWAY__METHOD";
const KEY_URL: &str = "CANTINA__SMS__GATEWAY__URL";
const KEY_FORMAT: &str = "CANTINA__SMS__GATEWAY__FORMAT";
const KEY_FIELDS: &str = "CANTINA__SMS__GATEWAY__FIELDS";
const KEY_API_KEY: &str = "CANTINA__SMS__GATEWAY__API_KEY";
const KEY_AUTH_HEADER: &str = "CANTINA__SMS__GATEWAY__AUTH_HEADER";
const KEY_AUTH_VALUE: &str = "CANTINA__SMS__GATEWAY__AUTH_VALUE";
const KEY_SUCCESS_STATUS: &str = "CANTINA__SMS__GATEWAY__SUCCESS_STATUS";
const KEY_SUCCESS_POINTER: &str = "CANTINA__SMS__GATEWAY__SUCCESS_JSON_POINTER";
const KEY_SUCCESS_VALUE: &str = "CANTINA__SMS__GATEWAY__SUCCESS_JSON_VALUE";
const KEY_ID_POINTER: &str = "CANTINA__SMS__GATEWAY__MESSAGE_ID_POINTER";
const KEY_ID_PATTERN: &str = "CANTINA__SMS__GATEWAY__MESSAGE_ID_PATTERN";

// ── Settings ─────────────────────────────────────────────────────────────────────────────────────────

/// `[sms.gateway]` / `CANTINA__SMS__GATEWAY__<KEY>`: the request and the success rule of an HTTP SMS gateway
/// (`SMS_PROVIDER=http`), or overrides of the Tigo / Personal presets. See the module documentation.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct GatewaySettings {
    /// `POST` (default) or `GET`.
    pub method: Option<String>,
    pub url: Option<String>,
    /// `form` (default for POST), `json`, or `query` (default and only choice for GET).
    pub format: Option<String>,
    /// Field name → template. A string `to={to},text={message}` or a table.
    #[serde(deserialize_with = "fields_map")]
    pub fields: BTreeMap<String, String>,
    /// An extra header's name (`Authorization`, `X-Api-Key`).
    pub auth_header: Option<String>,
    /// Its value, a template (`Bearer {api_key}`).
    pub auth_value: Option<Secret>,
    /// `{api_key}` in templates.
    pub api_key: Option<Secret>,
    /// `200`, `200,202`, `200-299`, `2xx`; default `2xx` (the presets: `200`).
    #[serde(deserialize_with = "status_list")]
    pub success_status: Option<String>,
    /// The body must contain one of these (comma list).
    #[serde(deserialize_with = "crate::config::string_or_list")]
    pub success_body_contains: Vec<String>,
    /// JSON pointer whose value must equal `success_json_value`.
    pub success_json_pointer: Option<String>,
    pub success_json_value: Option<String>,
    /// JSON pointer to the provider's message id.
    pub message_id_pointer: Option<String>,
    /// Text around the id in a text body, with `{id}` where the id stands (`ID: {id}`).
    pub message_id_pattern: Option<String>,
}

/// `a=1,b=2` (or one pair per line) from the environment, or a table from TOML.
fn fields_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        Map(BTreeMap<String, Scalar>),
    }
    match Either::deserialize(d)? {
        // Worded as what is expected, which the configuration error shows (never the value: it may hold a key).
        Either::Text(s) => parse_fields(&s).map_err(|e| {
            serde::de::Error::custom(format!("expected name=template pairs such as to={{to}},text={{message}}; {e}"))
        }),
        Either::Map(m) => Ok(m
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    Scalar::Text(s) => s,
                    Scalar::Int(i) => i.to_string(),
                    Scalar::Float(f) => f.to_string(),
                    Scalar::Bool(b) => b.to_string(),
                };
                (k, v)
            })
            .collect()),
    }
}

/// `to={to}, text={message}` → {to: "{to}", text: "{message}"}. Names and values are trimmed; a value may
/// contain `=` (only the first one separates).
fn parse_fields(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (n, item) in s.split([',', '\n']).map(str::trim).filter(|i| !i.is_empty()).enumerate() {
        let Some((name, value)) = item.split_once('=') else {
            return Err(format!("entry {} has no '='", n + 1));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("entry {} has no field name", n + 1));
        }
        out.insert(name.to_string(), value.trim().to_string());
    }
    Ok(out)
}

/// `202`, `"200,202"`, `[200, 202]`, `"2xx"`: kept as text, parsed by [`parse_statuses`].
fn status_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Item {
        Text(String),
        Number(u64),
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        One(Item),
        Many(Vec<Item>),
    }
    let text = |i: Item| match i {
        Item::Text(s) => s,
        Item::Number(n) => n.to_string(),
    };
    let joined = match Option::<Either>::deserialize(d)? {
        None => return Ok(None),
        Some(Either::One(i)) => text(i),
        Some(Either::Many(v)) => v.into_iter().map(text).collect::<Vec<_>>().join(","),
    };
    Ok(Some(joined).filter(|s| !s.trim().is_empty()))
}

// ── Templates ────────────────────────────────────────────────────────────────────────────────────────

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    To,
    ToLocal,
    ToDigits,
    Message,
    ApiKey,
    Id,
}

impl Var {
    const ALL: [(&'static str, Var); 6] = [
        ("to", Var::To),
        ("to_local", Var::ToLocal),
        ("to_digits", Var::ToDigits),
        ("message", Var::Message),
        ("api_key", Var::ApiKey),
        ("id", Var::Id),
    ];
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(Var),
}

/// A parsed template: literal text and placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Template(Vec<Piece>);

impl Template {
    fn parse(s: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(ch) => name.push(ch),
                            None => {
                                return Err(format!("'{{{name}' is not closed with '}}' (write '{{{{' for a brace)"));
                            }
                        }
                    }
                    let Some((_, var)) = Var::ALL.iter().find(|(n, _)| *n == name.trim()) else {
                        let known: Vec<String> = Var::ALL.iter().map(|(n, _)| format!("{{{n}}}")).collect();
                        return Err(format!("unknown placeholder {{{name}}} (expected one of {})", known.join(", ")));
                    };
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Var(*var));
                }
                other => text.push(other),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Self(pieces))
    }

    fn uses(&self, var: Var) -> bool {
        self.0.contains(&Piece::Var(var))
    }

    fn render(&self, v: &Values<'_>) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(Var::To) => out.push_str(v.to),
                Piece::Var(Var::ToLocal) => out.push_str(&v.to_local),
                Piece::Var(Var::ToDigits) => out.push_str(&v.to_digits),
                Piece::Var(Var::Message) => out.push_str(v.message),
                Piece::Var(Var::ApiKey) => out.push_str(v.api_key),
                Piece::Var(Var::Id) => out.push_str(v.id),
            }
        }
        out
    }
}

/// What the placeholders stand for in one request.
struct Values<'a> {
    to: &'a str,
    to_local: String,
    to_digits: String,
    message: &'a str,
    api_key: &'a str,
    id: &'a str,
}

impl<'a> Values<'a> {
    fn new(phone: &'a MobilePhone, message: &'a str, api_key: &'a str, id: &'a str) -> Self {
        let to = phone.as_str();
        Self { to, to_local: local_digits(to), to_digits: e164_digits(to), message, api_key, id }
    }
}

fn e164_digits(e164: &str) -> String {
    e164.chars().filter(char::is_ascii_digit).collect()
}

/// The national form's digits: `+595981123456` → `0981123456` (the country's trunk prefix included).
fn local_digits(e164: &str) -> String {
    match phonenumber::parse(None, e164) {
        Ok(n) => {
            n.format().mode(phonenumber::Mode::National).to_string().chars().filter(char::is_ascii_digit).collect()
        }
        Err(_) => match e164.strip_prefix("+595") {
            Some(rest) => format!("0{rest}"),
            None => e164_digits(e164),
        },
    }
}

// ── Resolved configuration ───────────────────────────────────────────────────────────────────────────

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Post,
    Get,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFormat {
    Form,
    Json,
    Query,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SuccessRule {
    statuses: Vec<RangeInclusive<u16>>,
    /// Empty: no check.
    body_contains: Vec<String>,
    json: Option<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum MessageIdRule {
    None,
    Pointer(String),
    Pattern { before: String, after: String },
}

/// `200`, `200,202`, `200-299`, `2xx`.
fn parse_statuses(s: &str) -> Result<Vec<RangeInclusive<u16>>, String> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let num = |t: &str| -> Result<u16, String> {
            t.trim()
                .parse::<u16>()
                .ok()
                .filter(|n| (100..=599).contains(n))
                .ok_or_else(|| format!("'{item}' is not an HTTP status, a range (200-299) or a class (2xx)"))
        };
        let range = if let Some(class) = item.strip_suffix("xx").or_else(|| item.strip_suffix("XX")) {
            let c = num(&format!("{class}00"))?;
            c..=c + 99
        } else if let Some((a, b)) = item.split_once('-') {
            let (a, b) = (num(a)?, num(b)?);
            if a > b {
                return Err(format!("'{item}': the range is backwards"));
            }
            a..=b
        } else {
            let n = num(item)?;
            n..=n
        };
        out.push(range);
    }
    if out.is_empty() {
        return Err("no status given".into());
    }
    Ok(out)
}

fn statuses_text(statuses: &[RangeInclusive<u16>]) -> String {
    statuses
        .iter()
        .map(|r| if r.start() == r.end() { r.start().to_string() } else { format!("{}-{}", r.start(), r.end()) })
        .collect::<Vec<_>>()
        .join(",")
}

fn check_pointer(key: &str, p: &str) -> Result<String, String> {
    let p = p.trim();
    if !p.is_empty() && !p.starts_with('/') {
        return Err(format!("{key}: '{p}' is not a JSON pointer (it starts with '/', e.g. /message_id)"));
    }
    Ok(p.to_string())
}

/// The configuration key names reasons and errors point staff to.
#[derive(Debug, Clone, Copy)]
struct Keys {
    url: &'static str,
    api_key: &'static str,
}

/// What differs between the presets and the generic gateway before the common settings apply.
struct Base<'a> {
    provider: &'static str,
    name: &'static str,
    keys: Keys,
    url: Option<&'a str>,
    api_key: Option<Secret>,
    fields: BTreeMap<String, String>,
    default_statuses: &'static str,
}

fn non_empty(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|s| !s.is_empty())
}

fn non_empty_secret(v: Option<&Secret>) -> Option<Secret> {
    v.filter(|s| !s.expose().trim().is_empty()).cloned()
}

/// `"A"`, `"A and B"`, `"A, B and C"`.
fn join_keys(keys: &[&str]) -> String {
    match keys {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// What the Cantina Tita system sent to a carrier.
struct Preset {
    provider: &'static str,
    name: &'static str,
    keys: Keys,
    fields: [(&'static str, &'static str); 3],
}

const TIGO: Preset = Preset {
    provider: "tigo",
    name: "Tigo",
    keys: Keys { url: "TIGO_SMS_API_URL", api_key: "TIGO_SMS_API_KEY" },
    fields: [("api_key", "{api_key}"), ("to", "{to_local}"), ("message", "{message}")],
};

const PERSONAL: Preset = Preset {
    provider: "personal",
    name: "Personal",
    keys: Keys { url: "PERSONAL_SMS_API_URL", api_key: "PERSONAL_SMS_API_KEY" },
    fields: [("apikey", "{api_key}"), ("phone", "{to_local}"), ("text", "{message}")],
};

impl<'a> Base<'a> {
    /// The preset's fields with `[sms.gateway]` fields merged over them (an empty template removes a field).
    fn preset(
        preset: &Preset,
        url: Option<&'a str>,
        api_key: Option<&Secret>,
        overrides: &BTreeMap<String, String>,
    ) -> Self {
        let mut fields: BTreeMap<String, String> =
            preset.fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        for (k, v) in overrides {
            if v.trim().is_empty() {
                fields.remove(k);
            } else {
                fields.insert(k.clone(), v.clone());
            }
        }
        Self {
            provider: preset.provider,
            name: preset.name,
            keys: preset.keys,
            url: non_empty(url),
            api_key: non_empty_secret(api_key),
            fields,
            default_statuses: "200",
        }
    }

    /// `SMS_PROVIDER=http`: everything from `[sms.gateway]`.
    fn generic(g: &'a GatewaySettings) -> Self {
        Self {
            provider: "http",
            name: "Gateway SMS",
            keys: Keys { url: KEY_URL, api_key: KEY_API_KEY },
            url: non_empty(g.url.as_deref()),
            api_key: non_empty_secret(g.api_key.as_ref()),
            fields: g
                .fields
                .iter()
                .filter(|(_, v)| !v.trim().is_empty())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            default_statuses: "200-299",
        }
    }
}

/// What is wrong with the settings: missing keys (reported first, together) and invalid values.
#[derive(Default)]
struct Problems {
    missing: Vec<&'static str>,
    errors: Vec<String>,
}

fn method_and_format(g: &GatewaySettings, p: &mut Problems) -> (Method, BodyFormat) {
    let method = match non_empty(g.method.as_deref()).map(str::to_ascii_uppercase).as_deref() {
        None | Some("POST") => Method::Post,
        Some("GET") => Method::Get,
        Some(other) => {
            p.errors.push(format!("{KEY_METHOD}: '{other}' is not POST or GET"));
            Method::Post
        }
    };
    let format = match non_empty(g.format.as_deref()).map(str::to_ascii_lowercase).as_deref() {
        None if method == Method::Get => BodyFormat::Query,
        None | Some("form") => BodyFormat::Form,
        Some("json") => BodyFormat::Json,
        Some("query") => BodyFormat::Query,
        Some(other) => {
            p.errors.push(format!("{KEY_FORMAT}: '{other}' is not form, json or query"));
            BodyFormat::Form
        }
    };
    if method == Method::Get && format != BodyFormat::Query {
        p.errors.push(format!("{KEY_FORMAT}: a GET request has no body; use query (or {KEY_METHOD}=POST)"));
    }
    (method, format)
}

fn auth_header(g: &GatewaySettings, p: &mut Problems) -> Option<(HeaderName, Template)> {
    match (non_empty(g.auth_header.as_deref()), g.auth_value.as_ref()) {
        (None, None) => None,
        (Some(h), Some(v)) => {
            let name = HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| p.errors.push(format!("{KEY_AUTH_HEADER}: '{h}' is not a valid header name")))
                .ok();
            let value = Template::parse(v.expose()).map_err(|e| p.errors.push(format!("{KEY_AUTH_VALUE}: {e}"))).ok();
            name.zip(value)
        }
        (Some(_), None) => {
            p.missing.push(KEY_AUTH_VALUE);
            None
        }
        (None, Some(_)) => {
            p.missing.push(KEY_AUTH_HEADER);
            None
        }
    }
}

fn success_rule(g: &GatewaySettings, default_statuses: &str, p: &mut Problems) -> SuccessRule {
    let statuses = parse_statuses(g.success_status.as_deref().unwrap_or(default_statuses)).unwrap_or_else(|e| {
        p.errors.push(format!("{KEY_SUCCESS_STATUS}: {e}"));
        Vec::new()
    });
    let json = match (non_empty(g.success_json_pointer.as_deref()), g.success_json_value.as_deref()) {
        (None, None) => None,
        (Some(ptr), Some(v)) => check_pointer(KEY_SUCCESS_POINTER, ptr)
            .map_err(|e| p.errors.push(e))
            .ok()
            .map(|ptr| (ptr, v.trim().to_string())),
        (Some(_), None) => {
            p.missing.push(KEY_SUCCESS_VALUE);
            None
        }
        (None, Some(_)) => {
            p.missing.push(KEY_SUCCESS_POINTER);
            None
        }
    };
    SuccessRule { statuses, body_contains: g.success_body_contains.clone(), json }
}

fn message_id_rule(g: &GatewaySettings, p: &mut Problems) -> MessageIdRule {
    match (non_empty(g.message_id_pointer.as_deref()), non_empty(g.message_id_pattern.as_deref())) {
        (None, None) => MessageIdRule::None,
        (Some(_), Some(_)) => {
            p.errors.push(format!("{KEY_ID_POINTER} and {KEY_ID_PATTERN}: set one, not both"));
            MessageIdRule::None
        }
        (Some(ptr), None) => check_pointer(KEY_ID_POINTER, ptr).map(MessageIdRule::Pointer).unwrap_or_else(|e| {
            p.errors.push(e);
            MessageIdRule::None
        }),
        (None, Some(pattern)) => match pattern.split_once("{id}") {
            Some((before, after)) if !after.contains("{id}") => {
                MessageIdRule::Pattern { before: before.to_string(), after: after.to_string() }
            }
            _ => {
                p.errors.push(format!(
                    "{KEY_ID_PATTERN}: '{pattern}' must contain {{id}} exactly once (e.g. 'ID: {{id}}')"
                ));
                MessageIdRule::None
            }
        },
    }
}

// ── The channel ──────────────────────────────────────────────────────────────────────────────────────

/// One configured HTTP SMS gateway.
pub struct HttpGatewayChannel {
    provider: &'static str,
    /// For reasons: `Tigo`, `Personal`, `Gateway SMS`.
    name: &'static str,
    keys: Keys,
    http: reqwest::Client,
    method: Method,
    url: reqwest::Url,
    format: BodyFormat,
    fields: Vec<(String, Template)>,
    auth: Option<(HeaderName, Template)>,
    api_key: Option<Secret>,
    success: SuccessRule,
    message_id: MessageIdRule,
    timeout: Duration,
}

impl fmt::Debug for HttpGatewayChannel {
    /// Never prints the key or the auth header's value; the URL's password, if any, is masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpGatewayChannel")
            .field("provider", &self.provider)
            .field("method", &self.method)
            .field("url", &mask_url_password(self.url.as_str()))
            .field("format", &self.format)
            .field("fields", &self.fields.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .field("auth_header", &self.auth.as_ref().map(|(h, _)| h.as_str()))
            .field("api_key", &self.api_key.as_ref().map(|_| "********"))
            .field("success", &self.success)
            .field("message_id", &self.message_id)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl HttpGatewayChannel {
    /// `SMS_PROVIDER=tigo` (needs `TIGO_SMS_API_URL`, `TIGO_SMS_API_KEY`), `personal` (`PERSONAL_SMS_API_URL`,
    /// `PERSONAL_SMS_API_KEY`) or `http` (`CANTINA__SMS__GATEWAY__URL`, `__FIELDS`, and `__API_KEY` when a
    /// template uses `{api_key}`). The error names every missing or invalid key.
    pub fn from_settings(settings: &Settings, provider: SmsProvider, http: &reqwest::Client) -> Result<Self, String> {
        let sms = &settings.sms;
        let g = &sms.gateway;
        let base = match provider {
            SmsProvider::Tigo => Base::preset(&TIGO, sms.tigo_api_url.as_deref(), sms.tigo_api_key.as_ref(), &g.fields),
            SmsProvider::Personal => {
                Base::preset(&PERSONAL, sms.personal_api_url.as_deref(), sms.personal_api_key.as_ref(), &g.fields)
            }
            SmsProvider::Http => Base::generic(g),
            other => {
                return Err(format!(
                    "SMS_PROVIDER: {other:?} is not an HTTP gateway (expected tigo, personal or http)"
                ));
            }
        };
        let mut p = Problems::default();
        let (method, format) = method_and_format(g, &mut p);
        let url = match base.url {
            None => {
                p.missing.push(base.keys.url);
                None
            }
            Some(u) => match reqwest::Url::parse(u) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Some(parsed),
                _ => {
                    p.errors.push(format!("{}: '{}' is not an http(s) URL", base.keys.url, mask_url_password(u)));
                    None
                }
            },
        };
        if base.fields.is_empty() {
            p.missing.push(KEY_FIELDS);
        }
        let mut fields = Vec::with_capacity(base.fields.len());
        for (name, tpl) in &base.fields {
            match Template::parse(tpl) {
                Ok(t) => fields.push((name.clone(), t)),
                Err(e) => p.errors.push(format!("{KEY_FIELDS}: field '{name}': {e}")),
            }
        }
        let auth = auth_header(g, &mut p);
        let uses_key =
            fields.iter().any(|(_, t)| t.uses(Var::ApiKey)) || auth.as_ref().is_some_and(|(_, t)| t.uses(Var::ApiKey));
        if uses_key && base.api_key.is_none() {
            p.missing.push(base.keys.api_key);
        }
        let success = success_rule(g, base.default_statuses, &mut p);
        let message_id = message_id_rule(g, &mut p);

        if !p.missing.is_empty() {
            p.errors.insert(0, format!("SMS_PROVIDER={} needs {}", base.provider, join_keys(&p.missing)));
        }
        let (Some(url), true) = (url, p.errors.is_empty()) else {
            return Err(p.errors.join("; "));
        };
        // Inside the dispatcher's send timeout (see `channels::http_timeout`).
        let timeout = match settings.dispatch.send_timeout_seconds {
            0 => DEFAULT_TIMEOUT,
            s => super::http_timeout(s),
        };
        Ok(Self {
            provider: base.provider,
            name: base.name,
            keys: base.keys,
            http: http.clone(),
            method,
            url,
            format,
            fields,
            auth,
            api_key: base.api_key,
            success,
            message_id,
            timeout,
        })
    }

    fn request(&self, values: &Values<'_>) -> Result<reqwest::RequestBuilder, SendError> {
        let pairs: Vec<(&str, String)> = self.fields.iter().map(|(k, t)| (k.as_str(), t.render(values))).collect();
        let mut url = self.url.clone();
        if self.format == BodyFormat::Query {
            url.query_pairs_mut().extend_pairs(&pairs);
        }
        let request = match self.method {
            Method::Post => self.http.post(url),
            Method::Get => self.http.get(url),
        }
        .timeout(self.timeout);
        let mut request = match self.format {
            BodyFormat::Form => request.form(&pairs),
            BodyFormat::Query => request,
            BodyFormat::Json => {
                let object: serde_json::Map<String, serde_json::Value> =
                    pairs.into_iter().map(|(k, v)| (k.to_string(), serde_json::Value::String(v))).collect();
                request.json(&serde_json::Value::Object(object))
            }
        };
        if let Some((name, template)) = &self.auth {
            let mut value = HeaderValue::from_str(&template.render(values)).map_err(|_| SendError::Configuration {
                reason: format!(
                    "{}: el valor de la cabecera {name} no es válido en HTTP (¿saltos de línea en la clave?): revise {KEY_AUTH_VALUE} y {}",
                    self.name, self.keys.api_key
                ),
            })?;
            value.set_sensitive(true);
            request = request.header(name.clone(), value);
        }
        Ok(request)
    }

    /// Hides the recipient's number (in every form we send) and the key in a text quoted in a reason.
    fn mask(&self, text: &str, phone: &MobilePhone) -> String {
        let mut out = text.to_string();
        if let Some(key) = self.api_key.as_ref().map(Secret::expose).filter(|k| k.len() >= 4) {
            out = out.replace(key, "********");
        }
        let e164 = phone.as_str();
        let digits = e164_digits(e164);
        let local = local_digits(e164);
        let national = local.trim_start_matches('0').to_string();
        let masked = phone.masked();
        for form in [e164, digits.as_str(), local.as_str(), national.as_str()] {
            if form.len() >= 6 {
                out = out.replace(form, &masked);
            }
        }
        out
    }

    /// One line, at most [`SNIPPET_CHARS`] characters, masked.
    fn snippet(&self, body: &str, phone: &MobilePhone) -> String {
        let one_line = self.mask(&body.split_whitespace().collect::<Vec<_>>().join(" "), phone);
        if one_line.is_empty() {
            return "(sin cuerpo)".to_string();
        }
        let mut out: String = one_line.chars().take(SNIPPET_CHARS).collect();
        if one_line.chars().count() > SNIPPET_CHARS {
            out.push('…');
        }
        out
    }

    /// Why a success status's body does not say "accepted", if it does not.
    fn body_rule_failure(&self, body: &str) -> Option<String> {
        let rule = &self.success;
        if !rule.body_contains.is_empty() && !rule.body_contains.iter().any(|t| body.contains(t.as_str())) {
            let quoted: Vec<String> = rule.body_contains.iter().map(|t| format!("'{t}'")).collect();
            return Some(format!("la respuesta no contiene {}", quoted.join(" ni ")));
        }
        if let Some((pointer, expected)) = &rule.json {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
                return Some(format!("la respuesta no es JSON (se esperaba {pointer} = '{expected}')"));
            };
            let found = v.pointer(pointer);
            let equal = match found {
                Some(serde_json::Value::String(s)) => s.trim() == expected,
                Some(other) => serde_json::from_str::<serde_json::Value>(expected).is_ok_and(|e| e == *other),
                None => false,
            };
            if !equal {
                let got = match found {
                    Some(serde_json::Value::String(s)) => format!("'{s}'"),
                    Some(other) => other.to_string(),
                    None => "nada".to_string(),
                };
                return Some(format!("{pointer} vale {got}, se esperaba '{expected}'"));
            }
        }
        None
    }

    fn message_id(&self, body: &str) -> Option<String> {
        let id = match &self.message_id {
            MessageIdRule::None => return None,
            MessageIdRule::Pointer(p) => match serde_json::from_str::<serde_json::Value>(body).ok()?.pointer(p)? {
                serde_json::Value::String(s) => s.trim().to_string(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => return None,
            },
            MessageIdRule::Pattern { before, after } => {
                let start = body.find(before.as_str())? + before.len();
                let rest = &body[start..];
                let end = if after.is_empty() {
                    rest.trim_start().find(char::is_whitespace).map(|i| i + (rest.len() - rest.trim_start().len()))
                } else {
                    Some(rest.find(after.as_str())?)
                };
                rest[..end.unwrap_or(rest.len())].trim().to_string()
            }
        };
        Some(id.chars().take(MAX_ID_CHARS).collect::<String>()).filter(|s| !s.is_empty())
    }

    /// The outcome of an answer. See the table in the module documentation.
    fn outcome(
        &self,
        status: u16,
        retry_after: Option<Duration>,
        body: &str,
        phone: &MobilePhone,
    ) -> Result<SendReceipt, SendError> {
        let name = self.name;
        let in_rule = self.success.statuses.iter().any(|r| r.contains(&status));
        let detail = || format!("Respuesta: {}", self.snippet(body, phone));
        if in_rule {
            return match self.body_rule_failure(body) {
                None => Ok(match &self.message_id {
                    // No id configured: none expected, nothing to warn about.
                    MessageIdRule::None => SendReceipt::default(),
                    MessageIdRule::Pointer(_) => {
                        SendReceipt::accepted(name, self.message_id(body).as_deref(), KEY_ID_POINTER)
                    }
                    MessageIdRule::Pattern { .. } => {
                        SendReceipt::accepted(name, self.message_id(body).as_deref(), KEY_ID_PATTERN)
                    }
                }),
                Some(why) => Err(SendError::Permanent {
                    reason: format!(
                        "{name} HTTP {status}: no confirmó el envío ({}). {}",
                        self.mask(&why, phone),
                        detail()
                    ),
                }),
            };
        }
        let url_key = self.keys.url;
        let auth_keys = if self.auth.is_some() {
            format!("{}, {KEY_AUTH_HEADER} y {KEY_AUTH_VALUE}", self.keys.api_key)
        } else {
            self.keys.api_key.to_string()
        };
        Err(match status {
            200..=299 => SendError::Permanent {
                reason: format!(
                    "{name} HTTP {status}: no es una respuesta de éxito configurada ({}). {}",
                    statuses_text(&self.success.statuses),
                    detail()
                ),
            },
            401 | 403 => SendError::Configuration {
                reason: format!("{name} HTTP {status}: rechazó la autenticación; revise {auth_keys}. {}", detail()),
            },
            404 => SendError::Configuration {
                reason: format!("{name} HTTP 404: la dirección no existe; revise {url_key}. {}", detail()),
            },
            408 | 429 => SendError::Transient {
                reason: format!("{name} HTTP {status}: demasiadas solicitudes o demora; se reintentará. {}", detail()),
                retry_after,
            },
            500..=599 => SendError::Transient {
                reason: format!("{name} HTTP {status}: error temporal del proveedor; se reintentará. {}", detail()),
                retry_after,
            },
            400..=499 => {
                SendError::Permanent { reason: format!("{name} HTTP {status}: rechazó el SMS. {}", detail()) }
            }
            _ => SendError::Configuration {
                reason: format!(
                    "{name} HTTP {status}: respuesta inesperada (¿una redirección o un proxy?); revise {url_key}. {}",
                    detail()
                ),
            },
        })
    }

    fn transport_error(&self, e: reqwest::Error) -> SendError {
        let e = e.without_url();
        let mut cause = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            cause.push_str(": ");
            cause.push_str(&s.to_string());
            source = s.source();
        }
        let cause = mask_url_password(&cause);
        let name = self.name;
        if e.is_builder() {
            return SendError::Configuration {
                reason: format!("{name}: no se pudo armar la solicitud; revise {} ({cause})", self.keys.url),
            };
        }
        let what = if e.is_timeout() {
            "no respondió a tiempo"
        } else if e.is_connect() {
            "no se pudo conectar"
        } else {
            "falló la comunicación"
        };
        SendError::Transient { reason: format!("{name}: {what}; se reintentará ({cause})"), retry_after: None }
    }
}

/// `Retry-After` as seconds or as an HTTP date.
fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    super::retry_after_at(headers, jiff::Timestamp::now())
}

#[async_trait]
impl Channel for HttpGatewayChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    fn provider(&self) -> &'static str {
        self.provider
    }

    async fn send(&self, msg: &OutgoingMessage) -> Result<SendReceipt, SendError> {
        let Recipient::Phone(phone) = &msg.recipient else {
            return Err(SendError::Permanent {
                reason: format!(
                    "{}: el destinatario de un SMS debe ser un celular, no {}",
                    self.name,
                    msg.recipient.masked()
                ),
            });
        };
        let api_key = self.api_key.as_ref().map(Secret::expose).unwrap_or_default();
        // GSM-7 text: one SMS segment instead of UCS-2 ones because of an accented name.
        let text = crate::render::sms_text(&msg.short_text);
        let values = Values::new(phone, &text, api_key, &msg.idempotency_key);
        let response = self.request(&values)?.send().await.map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        let retry_after = parse_retry_after(response.headers());
        let body = match read_body(response).await {
            Ok(b) => b.text(),
            Err(e) => {
                tracing::warn!(provider = self.provider, request_id = msg.request_id, status, error = %e.without_url(), "no se pudo leer la respuesta del gateway SMS");
                String::new()
            }
        };
        let outcome = self.outcome(status, retry_after, &body, phone);
        if let Ok(receipt) = &outcome {
            tracing::debug!(
                provider = self.provider,
                request_id = msg.request_id,
                to = %phone.masked(),
                status,
                id = receipt.provider_message_id.as_deref().unwrap_or("-"),
                "el gateway SMS aceptó el mensaje"
            );
        }
        outcome
    }

    fn default_per_second(&self) -> f64 {
        10.0
    }

    /// Gateways have no standard credentials check (and a test SMS would cost money and reach someone), so the
    /// probe only checks that the URL is usable; the next real send tells whether the configuration works.
    async fn probe(&self) -> Result<(), SendError> {
        match self.url.scheme() {
            "http" | "https" if self.url.has_host() => Ok(()),
            _ => Err(SendError::Configuration {
                reason: format!("{}: la URL no es válida; revise {}", self.name, self.keys.url),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;
    use wiremock::matchers::{body_json, method, path};
    use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

    use super::*;
    use crate::config::LoadOptions;
    use crate::domain::{Guaranies, NotificationType};
    use crate::rules::MessageData;

    const KEY: &str = "clave-secreta-9876";
    const IDEMPOTENCY: &str = "recarga_exitosa:4711:sms";
    const SHORT: &str = "Cantina Tita: recarga de Gs. 50.000 para Ñandé confirmada. Saldo: Gs. 65.000";
    const TIGO_PATH: &str = "/api/v1/sms/send";
    const PERSONAL_PATH: &str = "/sms/enviar";
    const FORM: &str = "application/x-www-form-urlencoded";

    fn message() -> OutgoingMessage {
        OutgoingMessage {
            request_id: 4711,
            idempotency_key: IDEMPOTENCY.into(),
            notification_type: NotificationType::RecargaExitosa,
            channel: ChannelKind::Sms,
            recipient: Recipient::Phone(MobilePhone::parse(Some("0981 123456")).unwrap()),
            subject: "Recarga confirmada".into(),
            html: "<p>Recarga</p>".into(),
            text: "Recarga".into(),
            short_text: SHORT.into(),
            data: MessageData::RecargaExitosa {
                padre: "María Benítez".into(),
                alumno: "Ñandú Benítez".into(),
                nro_tarjeta: "0001".into(),
                monto: Guaranies(50_000),
                saldo: Guaranies(65_000),
                fecha: "23/11/2026 10:15".into(),
                referencia: None,
            },
            test: false,
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
        let mut v: Vec<(String, String)> =
            req.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
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
        let ch = HttpGatewayChannel::from_settings(&personal_settings(&server.uri()), SmsProvider::Personal, &client())
            .unwrap();
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
            reason.starts_with(
                "Gateway SMS HTTP 200: no confirmó el envío (/status vale 'rejected', se esperaba 'queued')"
            ),
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
            kannel_answering(ResponseTemplate::new(202).set_body_string("0: Accepted for delivery ID: 8f1c-22\n"))
                .await;
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
        let (server, ch) =
            kannel_answering(ResponseTemplate::new(200).set_body_string("0: Accepted for delivery")).await;
        let reason = permanent(&ch.send(&message()).await.unwrap_err()).to_string();
        assert!(reason.contains("HTTP 200: no es una respuesta de éxito configurada (202)"), "{reason}");
        server.verify().await;
    }

    #[tokio::test]
    async fn kannel_authorization_failed_is_configuration_and_hides_the_password() {
        // Kannel echoes nothing secret, but a gateway might: the key is masked in any case.
        let (server, ch) =
            kannel_answering(ResponseTemplate::new(403).set_body_string(format!("Authorization failed for {KEY}")))
                .await;
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
        assert_eq!(
            reason,
            "Tigo HTTP 401: rechazó la autenticación; revise TIGO_SMS_API_KEY. Respuesta: invalid api_key"
        );
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
        let ch =
            HttpGatewayChannel::from_settings(&tigo_settings(&format!("http://{addr}")), SmsProvider::Tigo, &client())
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
        assert!(
            err.contains("expected name=template pairs such as to={to},text={message}; entry 2 has no '='"),
            "{err}"
        );
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
}
