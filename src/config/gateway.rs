//! `[sms.gateway]` / `CANTINA__SMS__GATEWAY__<KEY>`: the settings of an HTTP SMS gateway, as read from TOML
//! and the environment. The adapter that uses them is `channels::http_gateway`; every key is described in
//! `docs/channels.md` (HTTP SMS gateway).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::Secret;

/// `[sms.gateway]` / `CANTINA__SMS__GATEWAY__<KEY>`: the request and the success rule of an HTTP SMS gateway
/// (`SMS_PROVIDER=http`), or overrides of the Tigo / Personal presets. See `docs/channels.md`.
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
pub(crate) fn parse_fields(s: &str) -> Result<BTreeMap<String, String>, String> {
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

/// `202`, `"200,202"`, `[200, 202]`, `"2xx"`: kept as text, parsed by the adapter (`channels::http_gateway`).
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
