//! SMS and WhatsApp through Twilio's Messages API.
//!
//! One adapter, two channels: `SMS_PROVIDER=twilio` and `WHATSAPP_PROVIDER=twilio` both create a Message
//! (`POST {TWILIO_API_URL}/2010-04-01/Accounts/{AccountSid}/Messages.json`, operationId `CreateMessage` in
//! Twilio's OpenAPI spec): a form body, HTTP Basic auth (AccountSid : AuthToken), `201 Created` with the
//! Message resource, whose `sid` is the provider id.
//!
//! - SMS: `To` = E.164, `Body` = the short text, `From` = `TWILIO_PHONE_NUMBER`, or `MessagingServiceSid`
//!   when that value is a Messaging Service SID (`MG…`).
//! - WhatsApp: `To` / `From` = `whatsapp:+E164` (`TWILIO_WHATSAPP_NUMBER`, with or without the prefix).
//!   Business-initiated notices must be approved templates: with
//!   `CANTINA__WHATSAPP__TEMPLATES__<TYPE>__CONTENT_SID` set, the notice goes as `ContentSid` +
//!   `ContentVariables` (`{"1": …, "2": …}` in the documented parameter order); without it, as a free-form
//!   `Body`, which Twilio only delivers inside the 24-hour customer-service window (error 63016 otherwise).
//! - Both: optional `StatusCallback`. The request's dedup key also goes as `I-Twilio-Idempotency-Token`, but
//!   the Messages API does not document honouring it: a retry after a lost response may send twice.
//!
//! Twilio's error bodies (`{"code", "message", "more_info", "status"}`) are classified by code first, then
//! by HTTP status; see [`classify_error`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};

use super::provider_text::read_body;
use super::{Channel, OutgoingMessage, SendError, SendReceipt};
use crate::config::{Secret, Settings};
use crate::domain::{ChannelKind, MobilePhone, NotificationType};
use crate::rules::Recipient;

const PROVIDER: &str = "twilio";
const API_VERSION_PATH: &str = "2010-04-01";
const IDEMPOTENCY_HEADER: &str = "I-Twilio-Idempotency-Token";
const WHATSAPP_PREFIX: &str = "whatsapp:";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of an unreadable error body goes into a reason.
const SNIPPET_CHARS: usize = 200;

/// Twilio's Messages API as an SMS or a WhatsApp channel.
pub struct TwilioChannel {
    kind: ChannelKind,
    http: reqwest::Client,
    /// `{api}/2010-04-01/Accounts/{sid}/Messages.json`.
    messages_url: String,
    /// `{api}/2010-04-01/Accounts/{sid}.json`, for [`Channel::probe`].
    account_url: String,
    account_sid: String,
    auth_token: Secret,
    sender: Sender,
    status_callback: Option<String>,
    /// WhatsApp only: the approved Content Template (`HX…`) per notification type.
    content_sids: BTreeMap<NotificationType, String>,
    timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Sender {
    /// `From`: an E.164 number, an alphanumeric sender ID, or `whatsapp:+E164`.
    From(String),
    /// `MessagingServiceSid` (`MG…`): Twilio picks the number from the service's sender pool.
    MessagingService(String),
}

impl fmt::Debug for TwilioChannel {
    /// Never prints the auth token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioChannel")
            .field("kind", &self.kind)
            .field("messages_url", &self.messages_url)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"********")
            .field("sender", &self.sender)
            .field("status_callback", &self.status_callback)
            .field("content_sids", &self.content_sids)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The settings both channels share, checked.
struct Common {
    api_url: String,
    account_sid: String,
    auth_token: Secret,
    status_callback: Option<String>,
    timeout: Duration,
}

fn non_empty(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|s| !s.is_empty())
}

/// `"A"`, `"A and B"`, `"A, B and C"`.
fn join_keys(keys: &[&str]) -> String {
    match keys {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

impl TwilioChannel {
    /// `SMS_PROVIDER=twilio`: needs `TWILIO_ACCOUNT_SID`, `TWILIO_AUTH_TOKEN` and `TWILIO_PHONE_NUMBER`
    /// (a number, an alphanumeric sender ID, or a Messaging Service SID `MG…`).
    pub fn sms(settings: &Settings, http: &reqwest::Client) -> Result<Self, String> {
        let t = &settings.twilio;
        let number = non_empty(t.phone_number.as_deref());
        let common = Self::common(settings, "SMS_PROVIDER=twilio", "TWILIO_PHONE_NUMBER", number)?;
        let number = number.unwrap_or_default();
        let sender = if number.starts_with("MG") {
            Sender::MessagingService(number.to_string())
        } else {
            Sender::From(number.to_string())
        };
        Ok(Self::build(ChannelKind::Sms, http, common, sender, BTreeMap::new()))
    }

    /// `WHATSAPP_PROVIDER=twilio`: needs `TWILIO_ACCOUNT_SID`, `TWILIO_AUTH_TOKEN` and `TWILIO_WHATSAPP_NUMBER`
    /// (`+14155238886` or `whatsapp:+14155238886`). Content SIDs come from
    /// `CANTINA__WHATSAPP__TEMPLATES__<TYPE>__CONTENT_SID`.
    pub fn whatsapp(settings: &Settings, http: &reqwest::Client) -> Result<Self, String> {
        let t = &settings.twilio;
        let number = non_empty(t.whatsapp_number.as_deref());
        let common = Self::common(settings, "WHATSAPP_PROVIDER=twilio", "TWILIO_WHATSAPP_NUMBER", number)?;
        let from = whatsapp_address(number.unwrap_or_default());
        if from.len() <= WHATSAPP_PREFIX.len() {
            return Err("TWILIO_WHATSAPP_NUMBER: no number after the 'whatsapp:' prefix".into());
        }
        let content_sids: BTreeMap<NotificationType, String> = NotificationType::ALL
            .into_iter()
            .filter_map(|ty| {
                let sid = settings.whatsapp.content_sid(ty)?;
                let sid = sid.trim();
                (!sid.is_empty()).then(|| (ty, sid.to_string()))
            })
            .collect();
        let without: Vec<&str> = NotificationType::ALL
            .into_iter()
            .filter(|ty| !content_sids.contains_key(ty))
            .map(NotificationType::as_str)
            .collect();
        if !without.is_empty() {
            tracing::warn!(
                provider = PROVIDER,
                types = %without.join(", "),
                "WhatsApp por Twilio sin plantilla (CANTINA__WHATSAPP__TEMPLATES__<TIPO>__CONTENT_SID) para estos tipos: \
                 se enviarán como texto libre, que Twilio solo entrega dentro de la ventana de 24 h"
            );
        }
        Ok(Self::build(ChannelKind::WhatsApp, http, common, Sender::From(from), content_sids))
    }

    fn common(settings: &Settings, selector: &str, number_key: &str, number: Option<&str>) -> Result<Common, String> {
        let t = &settings.twilio;
        let account_sid = non_empty(t.account_sid.as_deref());
        let auth_token = t.auth_token.as_ref().filter(|s| !s.expose().trim().is_empty());
        let mut missing = Vec::new();
        if account_sid.is_none() {
            missing.push("TWILIO_ACCOUNT_SID");
        }
        if auth_token.is_none() {
            missing.push("TWILIO_AUTH_TOKEN");
        }
        if number.is_none() {
            missing.push(number_key);
        }
        let (Some(account_sid), Some(auth_token), Some(_)) = (account_sid, auth_token, number) else {
            return Err(format!("{selector} needs {}", join_keys(&missing)));
        };
        if !account_sid.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err("TWILIO_ACCOUNT_SID must be the account SID (AC followed by 32 hexadecimal digits)".into());
        }
        let api_url = t.api_url.trim().trim_end_matches('/').to_string();
        match reqwest::Url::parse(&api_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return Err(format!(
                    "TWILIO_API_URL: '{api_url}' is not an http(s) URL (default https://api.twilio.com)"
                ));
            }
        }
        let status_callback = non_empty(t.status_callback_url.as_deref()).map(str::to_string);
        if let Some(cb) = &status_callback
            && reqwest::Url::parse(cb).is_err()
        {
            return Err(format!("twilio.status_callback_url: '{cb}' is not a URL"));
        }
        // Inside the dispatcher's send timeout (see `channels::http_timeout`).
        let timeout = match settings.dispatch.send_timeout_seconds {
            0 => DEFAULT_TIMEOUT,
            s => super::http_timeout(s),
        };
        Ok(Common {
            api_url,
            account_sid: account_sid.to_string(),
            auth_token: auth_token.clone(),
            status_callback,
            timeout,
        })
    }

    fn build(
        kind: ChannelKind,
        http: &reqwest::Client,
        common: Common,
        sender: Sender,
        content_sids: BTreeMap<NotificationType, String>,
    ) -> Self {
        let account_url = format!("{}/{API_VERSION_PATH}/Accounts/{}", common.api_url, common.account_sid);
        Self {
            kind,
            http: http.clone(),
            messages_url: format!("{account_url}/Messages.json"),
            account_url: format!("{account_url}.json"),
            account_sid: common.account_sid,
            auth_token: common.auth_token,
            sender,
            status_callback: common.status_callback,
            content_sids,
            timeout: common.timeout,
        }
    }

    /// The configuration key of the sender, for reasons staff read.
    fn sender_key(&self) -> &'static str {
        match self.kind {
            ChannelKind::WhatsApp => "TWILIO_WHATSAPP_NUMBER",
            _ => "TWILIO_PHONE_NUMBER",
        }
    }

    /// The `CreateMessage` form fields for one notice.
    fn form(&self, msg: &OutgoingMessage, phone: &MobilePhone) -> Vec<(&'static str, String)> {
        let mut form = Vec::with_capacity(5);
        let to = match self.kind {
            ChannelKind::WhatsApp => format!("{WHATSAPP_PREFIX}{}", phone.as_str()),
            _ => phone.as_str().to_string(),
        };
        form.push(("To", to));
        match &self.sender {
            Sender::From(from) => form.push(("From", from.clone())),
            Sender::MessagingService(sid) => form.push(("MessagingServiceSid", sid.clone())),
        }
        match self.content_sids.get(&msg.notification_type) {
            Some(content_sid) if self.kind == ChannelKind::WhatsApp => {
                form.push(("ContentSid", content_sid.clone()));
                form.push(("ContentVariables", content_variables(&msg.data.template_parameters())));
            }
            // SMS in GSM-7 (one segment, not UCS-2 because of an accent); WhatsApp shows Spanish as written.
            _ if self.kind == ChannelKind::Sms => form.push(("Body", crate::render::sms_text(&msg.short_text))),
            _ => form.push(("Body", msg.short_text.clone())),
        }
        if let Some(cb) = &self.status_callback {
            form.push(("StatusCallback", cb.clone()));
        }
        form
    }
}

/// `whatsapp:+E164`, from a configured value with or without the prefix (and with or without the `+`).
fn whatsapp_address(configured: &str) -> String {
    let s = configured.trim();
    let number = if s.get(..WHATSAPP_PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(WHATSAPP_PREFIX)) {
        s.get(WHATSAPP_PREFIX.len()..).unwrap_or_default().trim()
    } else {
        s
    };
    if !number.is_empty() && number.chars().all(|c| c.is_ascii_digit()) {
        format!("{WHATSAPP_PREFIX}+{number}")
    } else {
        format!("{WHATSAPP_PREFIX}{number}")
    }
}

/// `{"1": p1, "2": p2, …}`: Twilio's Content Template variables.
fn content_variables(params: &[String]) -> String {
    let map: serde_json::Map<String, serde_json::Value> =
        params.iter().enumerate().map(|(i, p)| ((i + 1).to_string(), serde_json::Value::String(p.clone()))).collect();
    serde_json::Value::Object(map).to_string()
}

/// `Retry-After` as seconds or as an HTTP date.
fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    super::retry_after_at(headers, jiff::Timestamp::now())
}

/// What a reason may say about the message that failed.
struct ErrorContext<'a> {
    kind: ChannelKind,
    notification_type: NotificationType,
    sender_key: &'static str,
    /// Twilio's messages quote the `To` number; it is masked in reasons.
    phone: Option<&'a MobilePhone>,
}

impl ErrorContext<'_> {
    fn mask(&self, text: &str) -> String {
        match self.phone {
            Some(p) => text.replace(p.as_str(), &p.masked()),
            None => text.to_string(),
        }
    }
}

/// One line, at most [`SNIPPET_CHARS`] characters.
fn snippet(body: &str) -> String {
    let one_line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.is_empty() {
        return "(sin cuerpo)".to_string();
    }
    let mut out: String = one_line.chars().take(SNIPPET_CHARS).collect();
    if one_line.chars().count() > SNIPPET_CHARS {
        out.push('…');
    }
    out
}

/// Twilio's error code and message, if the body is Twilio's error JSON.
fn parse_error_body(body: &str) -> (Option<i64>, Option<String>) {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return (None, None);
    };
    let code = v.get("code").and_then(|c| c.as_i64().or_else(|| c.as_str().and_then(|s| s.trim().parse().ok())));
    let message =
        v.get("message").and_then(|m| m.as_str()).map(str::trim).filter(|m| !m.is_empty()).map(str::to_string);
    (code, message)
}

/// Classifies a non-2xx answer of the Messages API.
///
/// | condition | class |
/// |---|---|
/// | 21211 invalid `To`, 21614 not a mobile, 21608 unverified `To` (trial account) | Permanent |
/// | 21610 replied STOP | OptedOut |
/// | 21408 region not enabled (Geo Permissions), 21606 / 21212 / 21660 `From` cannot send or is not the account's, 63007 no WhatsApp sender for `From`, 63016 WhatsApp outside the 24 h window without a template | Configuration |
/// | 20003 or HTTP 401 (authentication), HTTP 403, 20005 account not active, HTTP 404 (wrong account or URL) | Configuration |
/// | 20429 or HTTP 429 | Transient, honouring `Retry-After` |
/// | 5xx | Transient, honouring `Retry-After` |
/// | any other 4xx | Permanent |
/// | anything else (1xx/3xx) | Configuration (a proxy or a wrong `TWILIO_API_URL`) |
fn classify_error(status: StatusCode, retry_after: Option<Duration>, body: &str, ctx: &ErrorContext<'_>) -> SendError {
    let (code, message) = parse_error_body(body);
    let detail = ctx.mask(&match (code, message) {
        (Some(c), Some(m)) => format!("Twilio {c}: {m}"),
        (Some(c), None) => format!("Twilio {c} (HTTP {})", status.as_u16()),
        (None, _) => format!("Twilio HTTP {}: {}", status.as_u16(), snippet(body)),
    });
    let permanent = |what: &str| SendError::Permanent { reason: format!("{what} ({detail})") };
    let configuration = |what: String| SendError::Configuration { reason: format!("{what} ({detail})") };
    let transient = |what: &str| SendError::Transient { reason: format!("{what} ({detail})"), retry_after };
    let credentials =
        || configuration("Twilio rechazó las credenciales: revise TWILIO_ACCOUNT_SID y TWILIO_AUTH_TOKEN".into());
    match code {
        Some(21211) => return permanent("Número de destino inválido"),
        Some(21614) => return permanent("El número de destino no es un celular"),
        Some(21610) => {
            return SendError::OptedOut {
                reason: format!(
                    "El destinatario se dio de baja respondiendo STOP; Twilio no le enviará mensajes hasta que responda START ({detail})"
                ),
            };
        }
        Some(21608) => {
            return permanent(
                "La cuenta de Twilio es de prueba y solo envía a números verificados; este número no lo está",
            );
        }
        // Only Paraguay must be enabled; a foreign number is this recipient's problem, not the channel's.
        Some(21408) if ctx.phone.is_some_and(|p| !p.as_str().starts_with("+595")) => {
            return permanent("La cuenta de Twilio no tiene habilitado el envío al país de este número");
        }
        Some(21408) => {
            return configuration(
                "La cuenta de Twilio no tiene habilitado el envío a esa región: habilítela en Geo Permissions de la consola de Twilio".into(),
            );
        }
        Some(21606 | 21212 | 21660) => {
            return configuration(format!(
                "Twilio no acepta el remitente configurado en {}: debe ser un número o servicio de esta cuenta habilitado para este canal",
                ctx.sender_key
            ));
        }
        Some(63007) => {
            return configuration(format!(
                "Twilio no encuentra un remitente de WhatsApp para {}: registre el número como remitente de WhatsApp en la consola de Twilio",
                ctx.sender_key
            ));
        }
        Some(63016) => {
            return configuration(format!(
                "WhatsApp exige una plantilla aprobada fuera de la ventana de 24 h: configure \
                 CANTINA__WHATSAPP__TEMPLATES__{}__CONTENT_SID con el Content SID (HX…) de la plantilla aprobada en Twilio",
                ctx.notification_type.as_str().to_uppercase()
            ));
        }
        Some(20003) => return credentials(),
        Some(20005) => {
            return configuration("La cuenta de Twilio no está activa (suspendida o cerrada)".into());
        }
        Some(20429) => return transient("Twilio limitó la tasa de envíos; se reintentará"),
        _ => {}
    }
    match status.as_u16() {
        401 => credentials(),
        403 => configuration(
            "Twilio negó el permiso a esta cuenta: revise TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN y el estado de la cuenta".into(),
        ),
        404 => configuration(
            "Twilio no encontró la cuenta: revise TWILIO_ACCOUNT_SID y TWILIO_API_URL".into(),
        ),
        429 => transient("Twilio limitó la tasa de envíos; se reintentará"),
        500..=599 => transient("Error temporal de Twilio; se reintentará"),
        400..=499 => {
            let channel = ctx.kind.destino();
            permanent(&format!("Twilio rechazó el {channel}"))
        }
        _ => configuration(
            "Respuesta inesperada de Twilio: revise TWILIO_API_URL (¿un proxy o una redirección?)"
                .into(),
        ),
    }
}

/// A reqwest error and its causes, without the URL.
fn describe_transport(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn transport_error(e: reqwest::Error) -> SendError {
    if e.is_builder() {
        return SendError::Configuration {
            reason: format!(
                "No se pudo armar la solicitud a Twilio; revise TWILIO_API_URL ({})",
                describe_transport(e)
            ),
        };
    }
    let what = if e.is_timeout() {
        "Twilio no respondió a tiempo"
    } else if e.is_connect() {
        "No se pudo conectar con Twilio"
    } else {
        "Falló la comunicación con Twilio"
    };
    SendError::Transient { reason: format!("{what}; se reintentará ({})", describe_transport(e)), retry_after: None }
}

#[async_trait]
impl Channel for TwilioChannel {
    fn kind(&self) -> ChannelKind {
        self.kind
    }

    fn provider(&self) -> &'static str {
        PROVIDER
    }

    async fn send(&self, msg: &OutgoingMessage) -> Result<SendReceipt, SendError> {
        let Recipient::Phone(phone) = &msg.recipient else {
            return Err(SendError::Permanent {
                reason: format!(
                    "El destinatario de un {} por Twilio debe ser un celular, no {}",
                    self.kind.destino(),
                    msg.recipient.masked()
                ),
            });
        };
        let form = self.form(msg, phone);
        let mut request = self
            .http
            .post(&self.messages_url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            .timeout(self.timeout)
            .form(&form);
        match HeaderValue::from_str(msg.idempotency_key.trim()) {
            Ok(v) if !v.is_empty() => request = request.header(IDEMPOTENCY_HEADER, v),
            _ => tracing::warn!(
                provider = PROVIDER,
                request_id = msg.request_id,
                "clave de idempotencia vacía o no válida como cabecera HTTP; se envía sin {IDEMPOTENCY_HEADER}"
            ),
        }
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        if status.is_success() {
            // Accepted: whatever the body holds, this is a send (the dispatcher warns staff when there is no sid).
            let body = read_body(response).await.map(|b| b.bytes).unwrap_or_default();
            let sid = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("sid").and_then(|s| s.as_str()).map(str::to_string));
            let receipt = SendReceipt::accepted("Twilio", sid.as_deref(), "campo 'sid'");
            tracing::debug!(
                provider = PROVIDER,
                channel = self.kind.config_name(),
                request_id = msg.request_id,
                to = %phone.masked(),
                sid = receipt.provider_message_id.as_deref().unwrap_or("-"),
                "Twilio aceptó el mensaje"
            );
            return Ok(receipt);
        }
        let retry_after = parse_retry_after(response.headers());
        // An unreadable body is classified from the status alone.
        let body = read_body(response).await.map(|b| b.text()).unwrap_or_default();
        let ctx = ErrorContext {
            kind: self.kind,
            notification_type: msg.notification_type,
            sender_key: self.sender_key(),
            phone: Some(phone),
        };
        Err(classify_error(status, retry_after, &body, &ctx))
    }

    /// A long code sends about one message per second.
    fn default_per_second(&self) -> f64 {
        1.0
    }

    /// Fetches the account (`GET /2010-04-01/Accounts/{sid}.json`): 200 with an active account proves the
    /// credentials work. The body carries the auth token: only `status` is read from it, and it is never logged.
    async fn probe(&self) -> Result<(), SendError> {
        let response = self
            .http
            .get(&self.account_url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        match status.as_u16() {
            200 => {
                let body = read_body(response).await.map(|b| b.bytes).unwrap_or_default();
                let account_status = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("status")?.as_str().map(str::to_string));
                match account_status.as_deref() {
                    Some(s @ ("suspended" | "closed")) => Err(SendError::Configuration {
                        reason: format!("La cuenta de Twilio no está activa (estado '{s}')"),
                    }),
                    _ => Ok(()),
                }
            }
            401 => {
                let body = read_body(response).await.map(|b| b.text()).unwrap_or_default();
                let (code, message) = parse_error_body(&body);
                let detail = match (code, message) {
                    (Some(c), Some(m)) => format!("Twilio {c}: {m}"),
                    _ => "Twilio HTTP 401".to_string(),
                };
                Err(SendError::Configuration {
                    reason: format!(
                        "Twilio rechazó las credenciales: revise TWILIO_ACCOUNT_SID y TWILIO_AUTH_TOKEN ({detail})"
                    ),
                })
            }
            _ => Err(SendError::Transient {
                reason: format!("Twilio no confirmó las credenciales (HTTP {})", status.as_u16()),
                retry_after: parse_retry_after(response.headers()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::OnceLock;

    use serde_json::{Value, json};
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    use super::*;
    use crate::domain::Guaranies;
    use crate::rules::MessageData;

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
            let path =
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/provider-specs/twilio/twilio_api_v2010.json");
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
        prefixes.iter().any(|p| {
            value.strip_prefix(p).is_some_and(|hex| hex.len() == n && hex.chars().all(|c| c.is_ascii_hexdigit()))
        })
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
        let media = op["requestBody"]["content"]
            .get(content_type)
            .unwrap_or_else(|| panic!("the spec accepts no {content_type}"));
        let schema = resolve(&media["schema"]);
        let fields = form_pairs(req);
        let names: BTreeSet<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names.len(), fields.len(), "a field is repeated: {fields:?}");
        for (name, value) in &fields {
            let prop =
                schema["properties"].get(name).unwrap_or_else(|| panic!("{name} is not a CreateMessage property"));
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
            request_id: 4711,
            idempotency_key: KEY.into(),
            notification_type: NotificationType::RecargaExitosa,
            channel,
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
        assert_wire(&server, &[("To", "whatsapp:+595981123456"), ("From", "whatsapp:+14155238886"), ("Body", SHORT)])
            .await;
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
        assert_wire(&server, &[("To", "whatsapp:+595981123456"), ("From", "whatsapp:+14155238886"), ("Body", SHORT)])
            .await;
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
        let err =
            sms_error(twilio_error(400, 21211, "The 'To' number +595981123456 is not a valid phone number.")).await;
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
            sms_error(twilio_error(400, 21617, "The concatenated message body exceeds the 1600 character limit."))
                .await;
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
        for configured in [
            "+14155238886",
            "whatsapp:+14155238886",
            "WhatsApp:+14155238886",
            " whatsapp: +14155238886 ",
            "14155238886",
        ] {
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
}
