//! HTTP SMS gateways (Tigo, Personal, Kannel, any form/JSON API).
//!
//! Paraguayan carriers publish no public SMS API, so one small configurable adapter serves them all: one HTTP
//! request per SMS, built from a map of fields whose values are templates (`template`), and a rule that says
//! which answers mean "accepted" (`rules`). The settings are [`GatewaySettings`] (`[sms.gateway]`,
//! `CANTINA__SMS__GATEWAY__<KEY>`); the presets (`SMS_PROVIDER=tigo` / `personal`) reproduce what the Cantina Tita
//! system sent. Every key, the placeholders, examples (Kannel, a JSON API) and the outcome of each answer are in
//! `docs/channels.md`, section "HTTP SMS gateway".
//!
//! Outcomes in short: a success status whose body passes the body rules is sent; 401/403 and 404 are
//! Configuration (the key, the URL); 408, 429 and 5xx are Transient (honouring `Retry-After`); other 4xx and a
//! 2xx failing the rule are Permanent; 1xx/3xx are Configuration. Reasons quote at most 200 characters of the
//! body, with the recipient's number and the key masked. Gateways have no standard "check my credentials" call,
//! so [`Channel::probe`] only checks that the URL is usable.

mod rules;
mod template;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use self::rules::{
    Base, BodyFormat, Keys, MessageIdRule, Method, PERSONAL, Problems, SuccessRule, TIGO, auth_header, join_keys,
    message_id_rule, method_and_format, statuses_text, success_rule,
};
use self::template::{Template, Values, Var, e164_digits, local_digits};
use super::provider_text::{self, read_body};
use super::{Channel, OutgoingMessage, SendError, SendReceipt};
/// The settings live in `config::gateway` (so config does not import channels); kept at this path too.
pub use crate::config::GatewaySettings;
use crate::config::{Secret, Settings, SmsProvider, mask_url_password};
use crate::domain::{ChannelKind, MobilePhone};
use crate::rules::Recipient;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
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

    /// The answer quoted in a reason ([`provider_text::snippet`]), with the recipient's number masked.
    fn snippet(&self, body: &str, phone: &MobilePhone) -> String {
        provider_text::snippet(&self.mask(&body.split_whitespace().collect::<Vec<_>>().join(" "), phone))
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
mod tests;
