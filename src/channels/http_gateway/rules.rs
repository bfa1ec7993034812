//! What the settings resolve to: the method, the body format, the success and message-id rules, the Tigo and
//! Personal presets, and the checks that name each missing or invalid key.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use reqwest::header::HeaderName;

use super::template::Template;
use super::{
    KEY_API_KEY, KEY_AUTH_HEADER, KEY_AUTH_VALUE, KEY_FORMAT, KEY_ID_PATTERN, KEY_ID_POINTER, KEY_METHOD,
    KEY_SUCCESS_POINTER, KEY_SUCCESS_STATUS, KEY_SUCCESS_VALUE, KEY_URL,
};
use crate::config::{GatewaySettings, Secret};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    Post,
    Get,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyFormat {
    Form,
    Json,
    Query,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SuccessRule {
    pub(super) statuses: Vec<RangeInclusive<u16>>,
    /// Empty: no check.
    pub(super) body_contains: Vec<String>,
    pub(super) json: Option<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum MessageIdRule {
    None,
    Pointer(String),
    Pattern { before: String, after: String },
}

/// `200`, `200,202`, `200-299`, `2xx`.
pub(super) fn parse_statuses(s: &str) -> Result<Vec<RangeInclusive<u16>>, String> {
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

pub(super) fn statuses_text(statuses: &[RangeInclusive<u16>]) -> String {
    statuses
        .iter()
        .map(|r| if r.start() == r.end() { r.start().to_string() } else { format!("{}-{}", r.start(), r.end()) })
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) fn check_pointer(key: &str, p: &str) -> Result<String, String> {
    let p = p.trim();
    if !p.is_empty() && !p.starts_with('/') {
        return Err(format!("{key}: '{p}' is not a JSON pointer (it starts with '/', e.g. /message_id)"));
    }
    Ok(p.to_string())
}

/// The configuration key names reasons and errors point staff to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Keys {
    pub(super) url: &'static str,
    pub(super) api_key: &'static str,
}

/// What differs between the presets and the generic gateway before the common settings apply.
pub(super) struct Base<'a> {
    pub(super) provider: &'static str,
    pub(super) name: &'static str,
    pub(super) keys: Keys,
    pub(super) url: Option<&'a str>,
    pub(super) api_key: Option<Secret>,
    pub(super) fields: BTreeMap<String, String>,
    pub(super) default_statuses: &'static str,
}

pub(super) fn non_empty(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|s| !s.is_empty())
}

pub(super) fn non_empty_secret(v: Option<&Secret>) -> Option<Secret> {
    v.filter(|s| !s.expose().trim().is_empty()).cloned()
}

/// `"A"`, `"A and B"`, `"A, B and C"`.
pub(super) fn join_keys(keys: &[&str]) -> String {
    match keys {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// What the Cantina Tita system sent to a carrier.
pub(super) struct Preset {
    pub(super) provider: &'static str,
    pub(super) name: &'static str,
    pub(super) keys: Keys,
    pub(super) fields: [(&'static str, &'static str); 3],
}

pub(super) const TIGO: Preset = Preset {
    provider: "tigo",
    name: "Tigo",
    keys: Keys { url: "TIGO_SMS_API_URL", api_key: "TIGO_SMS_API_KEY" },
    fields: [("api_key", "{api_key}"), ("to", "{to_local}"), ("message", "{message}")],
};

pub(super) const PERSONAL: Preset = Preset {
    provider: "personal",
    name: "Personal",
    keys: Keys { url: "PERSONAL_SMS_API_URL", api_key: "PERSONAL_SMS_API_KEY" },
    fields: [("apikey", "{api_key}"), ("phone", "{to_local}"), ("text", "{message}")],
};

impl<'a> Base<'a> {
    /// The preset's fields with `[sms.gateway]` fields merged over them (an empty template removes a field).
    pub(super) fn preset(
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
    pub(super) fn generic(g: &'a GatewaySettings) -> Self {
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
pub(super) struct Problems {
    pub(super) missing: Vec<&'static str>,
    pub(super) errors: Vec<String>,
}

pub(super) fn method_and_format(g: &GatewaySettings, p: &mut Problems) -> (Method, BodyFormat) {
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

pub(super) fn auth_header(g: &GatewaySettings, p: &mut Problems) -> Option<(HeaderName, Template)> {
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

pub(super) fn success_rule(g: &GatewaySettings, default_statuses: &str, p: &mut Problems) -> SuccessRule {
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

pub(super) fn message_id_rule(g: &GatewaySettings, p: &mut Problems) -> MessageIdRule {
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
