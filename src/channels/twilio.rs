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

use super::provider_text::{read_body, snippet};
use super::{Channel, OutgoingMessage, SendError, SendReceipt};
use crate::config::{Secret, Settings};
use crate::domain::{ChannelKind, MobilePhone, NotificationType};
use crate::rules::Recipient;

const PROVIDER: &str = "twilio";
const API_VERSION_PATH: &str = "2010-04-01";
const IDEMPOTENCY_HEADER: &str = "I-Twilio-Idempotency-Token";
const WHATSAPP_PREFIX: &str = "whatsapp:";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

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
mod tests;
