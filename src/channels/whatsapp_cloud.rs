//! WhatsApp through Meta's Cloud API (approved template messages).
//!
//! `WHATSAPP_PROVIDER=business_api`: `POST {WHATSAPP_API_URL}/{WHATSAPP_API_VERSION}/{WHATSAPP_PHONE_NUMBER_ID}/messages`
//! with `Authorization: Bearer {WHATSAPP_ACCESS_TOKEN}` and a JSON template message (operation `sendMessage` of
//! Meta's Business Messaging API v23.0). Notices are business-initiated, so they are always approved templates:
//! each notification type maps to a template name and language (`CANTINA__WHATSAPP__TEMPLATES__<TYPE>__NAME` /
//! `__LANGUAGE`, defaults: the type's name and `es`) and the body parameters come from
//! [`MessageData::template_parameters`](crate::rules::MessageData::template_parameters), in their documented order.
//!
//! Errors are Graph API errors (`{"error":{"message","type","code","error_subcode","fbtrace_id","error_data"}}`),
//! classified by `error.code` (the table is on `classify`). The Cloud API has no idempotency key, so a retry after a
//! timeout may deliver a notice twice; nothing here can prevent that.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::provider_text::read_body;
use super::{Channel, OutgoingMessage, SendError, SendReceipt};
use crate::config::{Secret, Settings, WhatsAppSettings};
use crate::domain::{ChannelKind, NotificationType};
use crate::rules::Recipient;

/// Metric label and `solicitudes_notificacion.proveedor`.
const PROVIDER: &str = "meta";
/// Meta's default throughput per business phone number.
const DEFAULT_PER_SECOND: f64 = 80.0;
/// Used when `dispatch.send_timeout_seconds` is 0.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// 131056 (too many messages to the same user) without a `Retry-After`: wait a minute.
const PAIR_RATE_LIMIT_DELAY: Duration = Duration::from_secs(60);
/// How much of an unparseable error body goes into a reason.
const BODY_SNIPPET_CHARS: usize = 200;

/// Sends approved WhatsApp template messages through Meta's Cloud API.
#[derive(Debug, Clone)]
pub struct WhatsAppCloudChannel {
    http: reqwest::Client,
    /// `{api}/{version}/{phone_number_id}`: the probe target; sends go to `{…}/messages`.
    phone_number_url: String,
    messages_url: String,
    access_token: Secret,
    /// Template names and languages per notification type.
    whatsapp: WhatsAppSettings,
    timeout: Duration,
}

impl WhatsAppCloudChannel {
    /// Builds the adapter from `WHATSAPP_ACCESS_TOKEN`, `WHATSAPP_PHONE_NUMBER_ID`, `WHATSAPP_API_URL` and
    /// `WHATSAPP_API_VERSION`; the per-call timeout is `dispatch.send_timeout_seconds` (30 s when 0).
    /// The error names the missing or malformed keys.
    pub fn from_settings(settings: &Settings, http: &reqwest::Client) -> Result<Self, String> {
        let wa = &settings.whatsapp;
        let token = wa.access_token.as_ref().filter(|t| !t.expose().trim().is_empty());
        let phone_number_id = wa.phone_number_id.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let mut missing = Vec::new();
        if token.is_none() {
            missing.push("WHATSAPP_ACCESS_TOKEN");
        }
        if phone_number_id.is_none() {
            missing.push("WHATSAPP_PHONE_NUMBER_ID");
        }
        let (Some(token), Some(phone_number_id)) = (token, phone_number_id) else {
            return Err(format!("WHATSAPP_PROVIDER=business_api needs {}", missing.join(" and ")));
        };
        if !is_path_segment(phone_number_id) {
            return Err(format!(
                "WHATSAPP_PHONE_NUMBER_ID must be Meta's phone-number ID (digits, as shown in WhatsApp Manager), got '{}'",
                phone_number_id.chars().take(40).collect::<String>()
            ));
        }
        let version = wa.api_version.trim().trim_matches('/');
        let version = if version.is_empty() { "v23.0" } else { version };
        if !is_path_segment(version) {
            return Err(format!("WHATSAPP_API_VERSION must look like v23.0, got '{version}'"));
        }
        let api_url = wa.api_url.trim().trim_end_matches('/');
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            return Err(format!(
                "WHATSAPP_API_URL must be an http(s) URL such as https://graph.facebook.com, got '{api_url}'"
            ));
        }
        let phone_number_url = format!("{api_url}/{version}/{phone_number_id}");
        // Inside the dispatcher's send timeout (see `channels::http_timeout`).
        let timeout = match settings.dispatch.send_timeout_seconds {
            0 => DEFAULT_TIMEOUT,
            s => super::http_timeout(s),
        };
        Ok(Self {
            http: http.clone(),
            messages_url: format!("{phone_number_url}/messages"),
            phone_number_url,
            // A token read from a `_FILE` often ends in a new line, which is not allowed in a header.
            access_token: Secret::new(token.expose().trim()),
            whatsapp: wa.clone(),
            timeout,
        })
    }

    fn transport_error(&self, e: &reqwest::Error) -> SendError {
        let what = if e.is_timeout() {
            format!("tiempo de espera agotado ({} s) esperando a Meta", self.timeout.as_secs_f64())
        } else if e.is_connect() {
            format!("no se pudo conectar con la API de WhatsApp de Meta: {}", error_chain(e))
        } else {
            format!("error de red con la API de WhatsApp de Meta: {}", error_chain(e))
        };
        SendError::Transient {
            reason: scrub(&format!("WhatsApp (Meta): {what}"), self.access_token.expose()),
            retry_after: None,
        }
    }
}

#[async_trait]
impl Channel for WhatsAppCloudChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::WhatsApp
    }

    fn provider(&self) -> &'static str {
        PROVIDER
    }

    async fn send(&self, msg: &OutgoingMessage) -> Result<SendReceipt, SendError> {
        let Recipient::Phone(phone) = &msg.recipient else {
            return Err(SendError::Permanent {
                reason: format!("WhatsApp necesita un número de celular, no '{}'", msg.recipient.masked()),
            });
        };
        let (name, language) = self.whatsapp.template(msg.notification_type);
        let parameters = msg.data.template_parameters();
        let body = template_body(phone.as_str(), &name, &language, &parameters);
        let ctx = TemplateContext {
            notification_type: msg.notification_type,
            name: &name,
            language: &language,
            parameter_count: parameters.len(),
        };

        let response = self
            .http
            .post(&self.messages_url)
            .bearer_auth(self.access_token.expose())
            .timeout(self.timeout)
            .json(&body)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = read_body(response).await.map(|b| b.bytes);

        if status.is_success() {
            // Meta accepted the message: never retry it (that would send it twice), even if the body is odd; the
            // dispatcher warns staff when there is no id.
            let id = bytes.ok().as_deref().and_then(message_id);
            tracing::debug!(request_id = msg.request_id, template = %name, "WhatsApp template accepted by Meta");
            return Ok(SendReceipt::accepted("Meta", id.as_deref(), "messages[0].id"));
        }

        let bytes = match bytes {
            Ok(b) => b,
            Err(e) if e.is_timeout() => return Err(self.transport_error(&e)),
            Err(_) => Vec::new(),
        };
        let err = classify(status, &headers, &bytes, Some(&ctx), self.access_token.expose());
        tracing::debug!(
            request_id = msg.request_id,
            to = %phone.masked(),
            status = status.as_u16(),
            error = %err,
            "WhatsApp send refused by Meta"
        );
        Err(err)
    }

    fn default_per_second(&self) -> f64 {
        DEFAULT_PER_SECOND
    }

    /// `GET {api}/{version}/{phone_number_id}`: proves the token works and the number ID exists.
    async fn probe(&self) -> Result<(), SendError> {
        let response = self
            .http
            .get(&self.phone_number_url)
            .bearer_auth(self.access_token.expose())
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let headers = response.headers().clone();
        let bytes = read_body(response).await.map(|b| b.bytes).unwrap_or_default();
        // Reading the phone number needs whatsapp_business_management; a token with only messaging rights gets a
        // permission error (code 10 or 200–299) here yet can send. Only a rejected token (401 / code 190) fails.
        let code = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.pointer("/error/code").and_then(serde_json::Value::as_i64));
        if status != reqwest::StatusCode::UNAUTHORIZED && matches!(code, Some(10 | 200..=299)) {
            return Ok(());
        }
        match classify(status, &headers, &bytes, None, self.access_token.expose()) {
            e @ SendError::Configuration { .. } => Err(e),
            SendError::Transient { reason, retry_after } => Err(SendError::Transient { reason, retry_after }),
            SendError::Permanent { reason } | SendError::OptedOut { reason } => {
                Err(SendError::Transient { reason, retry_after: None })
            }
        }
    }
}

/// What was sent, for reasons that tell staff which template to check.
struct TemplateContext<'a> {
    notification_type: NotificationType,
    name: &'a str,
    language: &'a str,
    parameter_count: usize,
}

impl TemplateContext<'_> {
    fn keys(&self) -> String {
        let t = self.notification_type.as_str().to_uppercase();
        format!("CANTINA__WHATSAPP__TEMPLATES__{t}__NAME / CANTINA__WHATSAPP__TEMPLATES__{t}__LANGUAGE")
    }

    fn describe(&self) -> String {
        format!(
            "la plantilla '{}' en idioma '{}' (aviso {})",
            self.name,
            self.language,
            self.notification_type.as_str()
        )
    }
}

/// The `sendMessage` body of a template message. `to` is the E.164 number with its `+`: Meta accepts it (the
/// spec's own examples send `+16505551234`) and, without it, would prepend the business number's country code.
/// `language.policy` is required by the spec's `LanguageObject`; `deterministic` is its only value.
fn template_body(to: &str, name: &str, language: &str, parameters: &[String]) -> Value {
    let mut template = json!({
        "name": name,
        "language": { "policy": "deterministic", "code": language },
    });
    if !parameters.is_empty() {
        let parameters: Vec<Value> =
            parameters.iter().map(|p| json!({ "type": "text", "text": clean_parameter(p) })).collect();
        template["components"] = json!([{ "type": "body", "parameters": parameters }]);
    }
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "template": template,
    })
}

/// The body parameters of the notice's approved template, as they travel (see [`clean_parameter`]).
pub fn body_parameters(data: &crate::rules::MessageData) -> Vec<String> {
    data.template_parameters().iter().map(|p| clean_parameter(p)).collect()
}

/// Meta rejects body parameters with new lines, tabs or more than four consecutive spaces, and empty ones.
fn clean_parameter(p: &str) -> String {
    let cleaned = p.split_whitespace().collect::<Vec<_>>().join(" ");
    if cleaned.is_empty() { "-".to_string() } else { cleaned }
}

/// `messages[0].id` of a `sendMessage` answer.
fn message_id(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("messages")?.get(0)?.get("id")?.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// The fields of a Graph API error that matter here.
#[derive(Debug, Default)]
struct GraphError {
    code: Option<i64>,
    subcode: Option<i64>,
    message: String,
    details: Option<String>,
    fbtrace_id: Option<String>,
    is_transient: bool,
}

fn as_int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn parse_graph_error(body: &[u8]) -> Option<GraphError> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let e = v.get("error")?;
    if !e.is_object() {
        return None;
    }
    let text = |k: &str| e.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    Some(GraphError {
        code: as_int(e.get("code")),
        subcode: as_int(e.get("error_subcode")),
        message: text("message").or_else(|| text("error_user_msg")).unwrap_or_default(),
        details: e
            .get("error_data")
            .and_then(|d| d.get("details"))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        fbtrace_id: text("fbtrace_id"),
        is_transient: e.get("is_transient").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// `Meta 131026: 'Message undeliverable' (details) [fbtrace_id …]`, or the HTTP status and a piece of the body.
fn describe(status: StatusCode, err: Option<&GraphError>, body: &[u8]) -> String {
    match err {
        Some(e) => {
            let mut s = match e.code {
                Some(code) => format!("Meta {code}"),
                None => format!("Meta HTTP {}", status.as_u16()),
            };
            if let Some(sub) = e.subcode {
                s.push_str(&format!(" (subcódigo {sub})"));
            }
            if !e.message.is_empty() {
                s.push_str(&format!(": '{}'", e.message));
            }
            if let Some(d) = &e.details
                && d != &e.message
            {
                s.push_str(&format!(" ({d})"));
            }
            if let Some(id) = &e.fbtrace_id {
                s.push_str(&format!(" [fbtrace_id {id}]"));
            }
            s
        }
        None => {
            let text = String::from_utf8_lossy(body);
            let snippet: String =
                text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(BODY_SNIPPET_CHARS).collect();
            if snippet.is_empty() {
                format!("Meta HTTP {}", status.as_u16())
            } else {
                format!("Meta HTTP {}: '{snippet}'", status.as_u16())
            }
        }
    }
}

/// Classifies a non-2xx answer of the Graph API.
///
/// | `error.code` / status | class |
/// |---|---|
/// | 131047 re-engagement (we always send a template, so the template is the problem) | Configuration |
/// | 132000 parameter count, 132001 template/language missing, 132012 parameter format, 132015/132016 template paused/disabled | Configuration |
/// | 190 token expired/invalid, any HTTP 401 | Configuration |
/// | 368 policy block; 10, 200–299 permissions; 131005 access denied; 131031 account locked; 131042 payment; 133010 number not registered | Configuration |
/// | 100 with subcode 33 (the phone-number ID does not exist or the token cannot see it) | Configuration |
/// | 131026 undeliverable; 100 invalid parameter | Permanent |
/// | 130429 throughput, 4 / 80007 API rate limits, any HTTP 429 | Transient, `Retry-After` if given |
/// | 131056 pair rate limit | Transient, `Retry-After` or 60 s |
/// | 1, 2, 131000, 131016, `is_transient: true`, 408, 5xx | Transient, `Retry-After` if given |
/// | any other 4xx | Permanent, with Meta's code and message |
fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    ctx: Option<&TemplateContext<'_>>,
    token: &str,
) -> SendError {
    let retry_after = parse_retry_after(headers, jiff::Timestamp::now());
    let err = parse_graph_error(body);
    let code = err.as_ref().and_then(|e| e.code);
    let subcode = err.as_ref().and_then(|e| e.subcode);
    let provider = describe(status, err.as_ref(), body);
    let template = |why: &str| match ctx {
        Some(c) => format!(
            "{provider}. {why}: revise {} en WhatsApp Manager (debe estar aprobada, con {} parámetro(s) de cuerpo) o configure {}",
            c.describe(),
            c.parameter_count,
            c.keys()
        ),
        None => format!("{provider}. {why}"),
    };
    let configuration = |reason: String| SendError::Configuration { reason: scrub(&reason, token) };
    let permanent = |reason: String| SendError::Permanent { reason: scrub(&reason, token) };
    let transient = |reason: String, retry_after: Option<Duration>| SendError::Transient {
        reason: scrub(&reason, token),
        retry_after,
    };

    match code {
        Some(131047) => configuration(template(
            "Meta exige una plantilla aprobada fuera de la ventana de 24 h y no aceptó la enviada",
        )),
        Some(132000) => configuration(template("La cantidad de parámetros no coincide con la plantilla aprobada")),
        Some(132001) => {
            configuration(template("La plantilla no existe en ese idioma en la cuenta de WhatsApp Business"))
        }
        Some(132012) => configuration(template("El formato de los parámetros no coincide con la plantilla aprobada")),
        Some(132015 | 132016) => {
            configuration(template("La plantilla está pausada o deshabilitada por Meta (baja calidad)"))
        }
        Some(190) => configuration(format!(
            "{provider}. El token de acceso de WhatsApp expiró o no es válido: configure un token vigente (de usuario de sistema) en WHATSAPP_ACCESS_TOKEN"
        )),
        Some(368) => configuration(format!(
            "{provider}. Meta bloqueó temporalmente el número de WhatsApp Business por infringir sus políticas: revise el estado de la cuenta en WhatsApp Manager"
        )),
        Some(100) if subcode == Some(33) => configuration(format!(
            "{provider}. El número de WhatsApp Business no existe o el token no tiene permiso sobre él: revise WHATSAPP_PHONE_NUMBER_ID y los permisos de WHATSAPP_ACCESS_TOKEN"
        )),
        Some(10 | 200..=299 | 131005) => configuration(format!(
            "{provider}. El token de WhatsApp no tiene permiso para enviar mensajes (whatsapp_business_messaging): revise WHATSAPP_ACCESS_TOKEN"
        )),
        Some(131031 | 131042 | 133010) => configuration(format!(
            "{provider}. La cuenta o el número de WhatsApp Business no puede enviar (bloqueada, sin método de pago o número no registrado): revise WhatsApp Manager"
        )),
        Some(131026) => permanent(format!(
            "{provider}. El número no puede recibir este mensaje de WhatsApp (no usa WhatsApp, no aceptó los términos actuales o su aplicación es antigua)"
        )),
        Some(130429 | 4 | 80007) => transient(
            format!("{provider}. Se alcanzó el límite de envíos de Meta; se reintentará más tarde"),
            retry_after,
        ),
        Some(131056) => transient(
            format!("{provider}. Demasiados mensajes seguidos al mismo número; se reintentará más tarde"),
            retry_after.or(Some(PAIR_RATE_LIMIT_DELAY)),
        ),
        Some(100) => permanent(format!("{provider}. Meta rechazó un parámetro de este mensaje")),
        _ if status == StatusCode::UNAUTHORIZED => {
            configuration(format!("{provider}. Meta rechazó las credenciales: revise WHATSAPP_ACCESS_TOKEN"))
        }
        _ if status == StatusCode::TOO_MANY_REQUESTS => transient(
            format!("{provider}. Se alcanzó el límite de envíos de Meta; se reintentará más tarde"),
            retry_after,
        ),
        Some(1 | 2 | 131000 | 131016) => {
            transient(format!("{provider}. Error temporal de Meta; se reintentará"), retry_after)
        }
        _ if status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT
            || err.as_ref().is_some_and(|e| e.is_transient) =>
        {
            transient(format!("{provider}. Error temporal de Meta; se reintentará"), retry_after)
        }
        _ => permanent(format!("{provider}. Meta rechazó el mensaje")),
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(headers: &HeaderMap, now: jiff::Timestamp) -> Option<Duration> {
    super::retry_after_at(headers, now)
}

/// Never let the token reach a reason, even if a provider or library echoes it.
fn scrub(reason: &str, token: &str) -> String {
    if token.len() >= 8 && reason.contains(token) { reason.replace(token, "********") } else { reason.to_string() }
}

/// The causes of a transport error (reqwest's own text only repeats the URL).
fn error_chain(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        parts.push(inner.to_string());
        source = inner.source();
    }
    if parts.is_empty() { e.to_string() } else { parts.join(": ") }
}

/// A value that can sit in a URL path as one segment without escaping.
fn is_path_segment(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

#[cfg(test)]
mod tests;
