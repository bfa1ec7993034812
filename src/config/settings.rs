use serde::{Deserialize, Deserializer, Serialize};

use super::{DatabaseUrl, Secret};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub http: HttpSettings,
    pub log: LogSettings,
    pub rules: RulesSettings,
    pub email: EmailSettings,
    pub sms: SmsSettings,
    pub whatsapp: WhatsAppSettings,
    pub twilio: TwilioSettings,
    pub dispatch: DispatchSettings,
    pub listener: ListenerSettings,
    pub portal: PortalSettings,
    pub limits: LimitsSettings,
    pub webhooks: WebhooksSettings,
    pub quiet_hours: super::QuietHoursSettings,
    pub scheduler: super::SchedulerSettings,
    pub fallback: FallbackSettings,
    pub alerts: AlertSettings,
    pub retention: RetentionSettings,
    pub preferences: PreferenceDefaults,
    /// The staff's daily summary email (`CANTINA__RESUMEN_DIARIO__…`; schedule `CANTINA__SCHEDULER__RESUMEN_DIARIO`).
    pub resumen_diario: crate::config::SummarySettings,
}

/// Whether a channel is on for a parent who has not said (`CANTINA__PREFERENCES__<EMAIL|SMS|WHATSAPP|PORTAL>`): no
/// `preferencia_notificacion` row for the type, a NULL in its column, or no portal account at all. `false` makes a
/// channel opt-in: only parents who switched it on in the portal get it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct PreferenceDefaults {
    pub email: bool,
    pub sms: bool,
    pub whatsapp: bool,
    pub portal: bool,
}

impl Default for PreferenceDefaults {
    fn default() -> Self {
        Self { email: true, sms: true, whatsapp: true, portal: true }
    }
}

impl PreferenceDefaults {
    pub fn get(&self, kind: crate::domain::ChannelKind) -> bool {
        match kind {
            crate::domain::ChannelKind::Email => self.email,
            crate::domain::ChannelKind::Sms => self.sms,
            crate::domain::ChannelKind::WhatsApp => self.whatsapp,
            crate::domain::ChannelKind::Portal => self.portal,
        }
    }
}

/// Channel fallback (`CANTINA__FALLBACK__…`); the ordered lists are per type (`CANTINA__RULES__<TYPE>__FALLBACK`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct FallbackSettings {
    /// A notice sent through a channel whose provider reports delivery (Twilio with a status callback, Meta with the
    /// webhook secret, SendGrid with the event webhook key) moves to the next channel when no `delivered`/`read`
    /// receipt arrives within this many minutes. `0`: only failures move it on.
    pub receipt_timeout_minutes: u64,
}

impl Default for FallbackSettings {
    fn default() -> Self {
        Self { receipt_timeout_minutes: 30 }
    }
}

/// Staff alerts in `alertas_sistema` (`CANTINA__ALERTS__…`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct AlertSettings {
    /// Raise an alert when more than this share (0–1) of a channel's finished sends in the window failed.
    pub failure_rate_threshold: f64,
    /// The window the failure rate is measured over.
    pub failure_rate_window_minutes: u64,
    /// Below this many finished sends in the window the rate says nothing and no alert is raised.
    pub failure_rate_min_sends: i64,
    /// How often the failure rate is checked.
    pub check_interval_seconds: u64,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            failure_rate_threshold: 0.2,
            failure_rate_window_minutes: 60,
            failure_rate_min_sends: 20,
            check_interval_seconds: 60,
        }
    }
}

/// Weekly clean-up (`CANTINA__RETENTION__…`; its schedule is `CANTINA__SCHEDULER__LIMPIEZA`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RetentionSettings {
    /// Processed outbox events older than this are deleted.
    pub events_days: u64,
    /// Finished requests (`Enviado`, `Error`, `Omitido`) the service created, older than this, are deleted.
    pub requests_days: u64,
    /// Run-ledger rows older than this are deleted.
    pub ledger_days: u64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self { events_days: 30, requests_days: 365, ledger_days: 90 }
    }
}

/// Delivery-receipt webhooks (`/webhooks/twilio/status`, `/webhooks/whatsapp`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct WebhooksSettings {
    /// `CANTINA__WEBHOOKS__PUBLIC_URL`: the base URL providers call (Twilio signs the full URL it called).
    pub public_url: Option<String>,
    /// `WHATSAPP_APP_SECRET`: Meta app secret for `X-Hub-Signature-256`.
    pub whatsapp_app_secret: Option<Secret>,
    /// `WHATSAPP_VERIFY_TOKEN`: the token Meta's subscription handshake must present.
    pub whatsapp_verify_token: Option<Secret>,
    /// `CANTINA__WEBHOOKS__SENDGRID_VERIFICATION_KEY`: the public key (base64 DER, as SendGrid shows it) that
    /// verifies the signed event webhook. Not a secret, but configured per account.
    pub sendgrid_verification_key: Option<String>,
}

/// `CANTINA__LIMITS__<EMAIL|SMS|WHATSAPP>__PER_SECOND`: sends per second per process; `0` means no limit;
/// unset means the provider's default (Twilio long code 1/s, Meta 80/s per number, SMTP 10/s, gateways 10/s).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct LimitsSettings {
    pub email: LimitSettings,
    pub sms: LimitSettings,
    pub whatsapp: LimitSettings,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct LimitSettings {
    pub per_second: Option<f64>,
}

impl LimitsSettings {
    pub fn per_second(&self, kind: crate::domain::ChannelKind) -> Option<f64> {
        match kind {
            crate::domain::ChannelKind::Email => self.email.per_second,
            crate::domain::ChannelKind::Sms => self.sms.per_second,
            crate::domain::ChannelKind::WhatsApp => self.whatsapp.per_second,
            crate::domain::ChannelKind::Portal => Some(0.0),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct DatabaseSettings {
    /// `DATABASE_URL`.
    pub url: Option<DatabaseUrl>,
    /// `LISTEN_DATABASE_URL`: a direct session for LISTEN when `url` goes through a transaction-pooling PgBouncer.
    pub listen_url: Option<DatabaseUrl>,
    /// `CANTINA__DATABASE__RUNTIME_ROLE`: the role `run` connects as; `migrate` sets its privileges
    /// (`sql/grants/runtime.sql`) at the end of every run. Unset: `migrate` grants nothing.
    pub runtime_role: Option<String>,
    /// `CANTINA__DATABASE__SIGNING_KEY`: the secret the service signs its requests with (`crate::signing`); the
    /// same in every replica and every command that writes requests. Never stored in the database.
    pub signing_key: Option<Secret>,
    pub pool_size: usize,
    pub connect_timeout_seconds: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            listen_url: None,
            runtime_role: None,
            signing_key: None,
            pool_size: 24,
            connect_timeout_seconds: 10,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct HttpSettings {
    pub addr: String,
    /// A connection that has not sent a request's complete headers within this many seconds is closed (also an
    /// idle keep-alive connection waiting for its next request).
    pub header_timeout_seconds: u64,
    /// A request whose whole body has not arrived within this many seconds after its headers gets 408 and its
    /// connection is closed.
    pub body_timeout_seconds: u64,
    /// Connections open at once; more are refused (closed at once), so slow clients cannot take every file
    /// descriptor the database and the providers need.
    pub max_connections: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self { addr: "0.0.0.0:8080".into(), header_timeout_seconds: 5, body_timeout_seconds: 10, max_connections: 512 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct LogSettings {
    /// `text` (default) or `json`.
    pub format: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { format: "text".into() }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RulesSettings {
    pub saldo_bajo: SaldoBajoRule,
    pub recarga_exitosa: RuleSettings,
    pub cuenta_pendiente: RuleSettings,
    pub recordatorio_deuda: RuleSettings,
    pub tarjeta_bloqueada: RuleSettings,
    /// The POS's own text (a POS row with `mensaje`); its channels are used when the row names no `destino`.
    pub mensaje_cantina: RuleSettings,
    pub tarjeta_por_vencer: TarjetaPorVencerRule,
    pub tarjeta_vencida: RuleSettings,
    /// One notice per purchase; opt-in: sent only on the channels a parent switched on (`preferences set`).
    pub consumo_realizado: RuleSettings,
    /// The day's purchases per family; opt-in like `consumo_realizado`.
    pub resumen_consumos: RuleSettings,
}

impl RulesSettings {
    /// A type's channel list and fallback list (`CANTINA__RULES__<TYPE>__CHANNELS` / `__FALLBACK`). Exhaustive, so
    /// a new [`NotificationType`](crate::domain::NotificationType) does not compile without its settings field.
    pub fn get(&self, t: crate::domain::NotificationType) -> (&[String], &[String]) {
        use crate::domain::NotificationType as T;
        match t {
            T::SaldoBajo => (&self.saldo_bajo.channels, &self.saldo_bajo.fallback),
            T::RecargaExitosa => (&self.recarga_exitosa.channels, &self.recarga_exitosa.fallback),
            T::CuentaPendiente => (&self.cuenta_pendiente.channels, &self.cuenta_pendiente.fallback),
            T::RecordatorioDeuda => (&self.recordatorio_deuda.channels, &self.recordatorio_deuda.fallback),
            T::TarjetaBloqueada => (&self.tarjeta_bloqueada.channels, &self.tarjeta_bloqueada.fallback),
            T::MensajeCantina => (&self.mensaje_cantina.channels, &self.mensaje_cantina.fallback),
            T::TarjetaPorVencer => (&self.tarjeta_por_vencer.channels, &self.tarjeta_por_vencer.fallback),
            T::TarjetaVencida => (&self.tarjeta_vencida.channels, &self.tarjeta_vencida.fallback),
            T::ConsumoRealizado => (&self.consumo_realizado.channels, &self.consumo_realizado.fallback),
            T::ResumenConsumos => (&self.resumen_consumos.channels, &self.resumen_consumos.fallback),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RuleSettings {
    #[serde(deserialize_with = "string_or_list")]
    pub channels: Vec<String>,
    /// An ordered fallback list (`whatsapp,sms,email`) instead of `channels`: one channel at a time.
    #[serde(deserialize_with = "string_or_list")]
    pub fallback: Vec<String>,
}

impl Default for RuleSettings {
    fn default() -> Self {
        Self { channels: vec!["email".into()], fallback: Vec::new() }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct SaldoBajoRule {
    #[serde(deserialize_with = "string_or_list")]
    pub channels: Vec<String>,
    #[serde(deserialize_with = "string_or_list")]
    pub fallback: Vec<String>,
    /// Default low-balance threshold in guaraníes (a card's own `saldo_alerta` > 0 overrides it).
    pub umbral: i64,
    /// While a card stays low: the first reminder this many local days after the crossing notice
    /// (`CANTINA__RULES__SALDO_BAJO__RECORDATORIO_PRIMERO_DIAS`, at least 1)…
    pub recordatorio_primero_dias: i64,
    /// …then one every this many days (`CANTINA__RULES__SALDO_BAJO__RECORDATORIO_CADA_DIAS`, at least 1; 1 is
    /// the old "every day").
    pub recordatorio_cada_dias: i64,
}

impl Default for SaldoBajoRule {
    fn default() -> Self {
        Self {
            channels: vec!["email".into()],
            fallback: Vec::new(),
            umbral: 5_000,
            recordatorio_primero_dias: 1,
            recordatorio_cada_dias: 7,
        }
    }
}

/// `settings.rules.tarjeta_por_vencer`: its channels and how many days before `fecha_vencimiento` it is due.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct TarjetaPorVencerRule {
    #[serde(deserialize_with = "string_or_list")]
    pub channels: Vec<String>,
    #[serde(deserialize_with = "string_or_list")]
    pub fallback: Vec<String>,
    /// `CANTINA__RULES__TARJETA_POR_VENCER__DIAS_ANTES`: due from this many local days before the expiry date.
    pub dias_antes: i64,
}

impl Default for TarjetaPorVencerRule {
    fn default() -> Self {
        Self { channels: vec!["email".into()], fallback: Vec::new(), dias_antes: 15 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct EmailSettings {
    /// `EMAIL_BACKEND`: console (default), file, smtp, sendgrid, ses, or the Django class paths.
    pub backend: String,
    /// Not printed when empty: `check-config` clears it for the backends that use no SMTP host.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host: String,
    pub port: Option<u16>,
    pub use_tls: Option<bool>,
    pub use_ssl: Option<bool>,
    pub host_user: Option<String>,
    pub host_password: Option<Secret>,
    /// `DEFAULT_FROM_EMAIL`.
    pub from: String,
    /// `EMAIL_FILE_PATH` for the file backend.
    pub file_path: String,
    pub sendgrid_api_key: Option<Secret>,
    pub sendgrid_api_url: String,
    /// Shown by `check-config` as AWS shows key ids: all but the last 4 characters masked.
    #[serde(serialize_with = "super::secret::serialize_key_id")]
    pub aws_access_key_id: Option<String>,
    pub aws_secret_access_key: Option<Secret>,
    pub aws_ses_region_name: Option<String>,
    /// `AWS_SES_REGION_ENDPOINT` (django-ses): `email.<region>.amazonaws.com`; gives the region when
    /// `AWS_SES_REGION_NAME` is unset ([`EmailSettings::ses_region`]).
    pub aws_ses_region_endpoint: Option<String>,
    /// Extra trusted root certificate (PEM file) for an SMTP relay with a private CA.
    pub ca_file: Option<String>,
    /// Upper bound of one whole SMTP conversation (connect, TLS, AUTH, the message; each step within it) or one
    /// SendGrid API call.
    pub timeout_seconds: u64,
}

impl Default for EmailSettings {
    fn default() -> Self {
        Self {
            backend: "console".into(),
            host: "localhost".into(),
            port: None,
            use_tls: None,
            use_ssl: None,
            host_user: None,
            host_password: None,
            from: "Cantina Tita <noreply@cantinatita.com.py>".into(),
            file_path: "notificaciones/email".into(),
            sendgrid_api_key: None,
            sendgrid_api_url: "https://api.sendgrid.com".into(),
            aws_access_key_id: None,
            aws_secret_access_key: None,
            aws_ses_region_name: None,
            aws_ses_region_endpoint: None,
            ca_file: None,
            timeout_seconds: 30,
        }
    }
}

impl EmailSettings {
    /// The SES region: `AWS_SES_REGION_NAME`, or the one in django-ses's `AWS_SES_REGION_ENDPOINT`
    /// (`email.<region>.amazonaws.com`, or the SMTP endpoint `email-smtp.<region>.amazonaws.com`). `Ok(None)`: neither
    /// is set. An endpoint that is not an SES host, or one naming another region than `AWS_SES_REGION_NAME`, is an
    /// error naming the keys.
    pub fn ses_region(&self) -> Result<Option<String>, String> {
        let set = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
        let name = set(&self.aws_ses_region_name);
        if let Some(name) = &name
            && !is_region(name)
        {
            return Err(super::validate::unknown_name(
                "AWS_SES_REGION_NAME: not an AWS region name",
                "a region such as us-east-1",
                name,
            ));
        }
        let Some(endpoint) = set(&self.aws_ses_region_endpoint) else {
            return Ok(name);
        };
        let host = endpoint.strip_prefix("https://").unwrap_or(&endpoint).trim_end_matches('/');
        let from_endpoint = ["email.", "email-smtp."]
            .iter()
            .find_map(|prefix| host.strip_prefix(prefix)?.strip_suffix(".amazonaws.com"))
            .filter(|r| is_region(r));
        let Some(from_endpoint) = from_endpoint else {
            // Not quoted: a value on the wrong line may be a secret.
            return Err(
                "AWS_SES_REGION_ENDPOINT: not an SES endpoint (expected email.<region>.amazonaws.com such as email.us-east-1.amazonaws.com; the value is not shown)"
                    .into(),
            );
        };
        match name {
            Some(name) if name != from_endpoint => Err(format!(
                "AWS_SES_REGION_NAME ({name}) and AWS_SES_REGION_ENDPOINT (region {from_endpoint}) disagree: set one, or make them name the same region"
            )),
            _ => Ok(Some(from_endpoint.to_string())),
        }
    }
}

/// `us-east-1`, `eu-central-1`, `us-gov-west-1`: lowercase letters, digits and hyphens, ending in a digit.
fn is_region(r: &str) -> bool {
    r.contains('-')
        && r.ends_with(|c: char| c.is_ascii_digit())
        && r.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct SmsSettings {
    /// `SMS_PROVIDER`: twilio, tigo, personal, http, or console / file for development. Unset: no SMS channel.
    pub provider: Option<String>,
    pub file_path: String,
    pub tigo_api_key: Option<Secret>,
    pub tigo_api_url: Option<String>,
    pub personal_api_key: Option<Secret>,
    pub personal_api_url: Option<String>,
    pub gateway: super::GatewaySettings,
}

impl Default for SmsSettings {
    fn default() -> Self {
        Self {
            provider: None,
            file_path: "notificaciones/sms".into(),
            tigo_api_key: None,
            tigo_api_url: None,
            personal_api_key: None,
            personal_api_url: None,
            gateway: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct WhatsAppSettings {
    /// `WHATSAPP_PROVIDER`: business_api, twilio, or console / file for development. Unset: no WhatsApp channel.
    pub provider: Option<String>,
    pub file_path: String,
    pub access_token: Option<Secret>,
    pub phone_number_id: Option<String>,
    pub api_url: String,
    pub api_version: String,
    /// Per notification type: the approved template (`CANTINA__WHATSAPP__TEMPLATES__<TYPE>__NAME`, `__LANGUAGE`,
    /// and for Twilio `__CONTENT_SID`). Defaults: the type's name and `es`.
    pub templates: std::collections::BTreeMap<String, WhatsAppTemplateSettings>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct WhatsAppTemplateSettings {
    pub name: Option<String>,
    pub language: Option<String>,
    pub content_sid: Option<String>,
}

impl WhatsAppSettings {
    /// (template name, language) for a type.
    pub fn template(&self, t: crate::domain::NotificationType) -> (String, String) {
        let cfg = self.templates.get(t.as_str());
        let name = cfg.and_then(|c| c.name.clone()).unwrap_or_else(|| t.as_str().to_string());
        let language = cfg.and_then(|c| c.language.clone()).unwrap_or_else(|| "es".to_string());
        (name, language)
    }

    /// Twilio Content SID (`HX…`) for a type, if configured.
    pub fn content_sid(&self, t: crate::domain::NotificationType) -> Option<String> {
        self.templates.get(t.as_str()).and_then(|c| c.content_sid.clone())
    }
}

impl Default for WhatsAppSettings {
    fn default() -> Self {
        Self {
            provider: None,
            file_path: "notificaciones/whatsapp".into(),
            access_token: None,
            phone_number_id: None,
            api_url: "https://graph.facebook.com".into(),
            api_version: "v23.0".into(),
            templates: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct TwilioSettings {
    pub account_sid: Option<String>,
    pub auth_token: Option<Secret>,
    pub phone_number: Option<String>,
    pub whatsapp_number: Option<String>,
    pub api_url: String,
    /// `StatusCallback` for delivery receipts (the webhook of the receipts issue).
    pub status_callback_url: Option<String>,
}

impl Default for TwilioSettings {
    fn default() -> Self {
        Self {
            account_sid: None,
            auth_token: None,
            phone_number: None,
            whatsapp_number: None,
            api_url: "https://api.twilio.com".into(),
            status_callback_url: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct DispatchSettings {
    /// Requests claimed per round trip.
    pub batch_size: i64,
    /// Sends in flight at once per process.
    pub concurrency: usize,
    /// Attempts before a transient failure becomes `Error`.
    pub max_attempts: i32,
    /// First retry delay; doubles per attempt, with jitter, up to `retry_max_ms`.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// How long a claim is held; a worker that dies leaves its claims to others after this.
    pub lease_seconds: u64,
    /// How often to look for due retries and expired leases when nothing woke the dispatcher.
    pub poll_interval_ms: u64,
    /// Upper bound of one provider call.
    pub send_timeout_seconds: u64,
    /// On SIGTERM, how long in-flight sends may take before the process exits anyway. Longer than the send timeout
    /// by default, so that a send cut by the exit (and sent again after its lease) takes a provider that hangs.
    pub shutdown_grace_seconds: u64,
    /// While a channel is paused for a configuration error, how often its credentials are probed.
    pub probe_interval_seconds: u64,
    /// `CANTINA__DISPATCH__DRY_RUN`: render and record everything, send nothing (every adapter is replaced by the
    /// `simulacro` channel). For trying the service on a copy of production data.
    pub dry_run: bool,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            batch_size: 200,
            concurrency: 16,
            max_attempts: 8,
            retry_base_ms: 5_000,
            retry_max_ms: 3_600_000,
            lease_seconds: 120,
            poll_interval_ms: 1_000,
            send_timeout_seconds: 30,
            shutdown_grace_seconds: 35,
            probe_interval_seconds: 30,
            dry_run: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct ListenerSettings {
    /// Outbox events turned into requests per transaction.
    pub batch_size: i64,
    /// The slow safety tick: drain even when no wake-up arrived.
    pub safety_tick_seconds: u64,
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
}

impl Default for ListenerSettings {
    fn default() -> Self {
        Self { batch_size: 500, safety_tick_seconds: 5, reconnect_min_ms: 100, reconnect_max_ms: 30_000 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct PortalSettings {
    /// Base URL of the parents' portal, for the buttons in emails.
    pub base_url: String,
}

impl Default for PortalSettings {
    fn default() -> Self {
        Self { base_url: "https://portal.cantinatita.com.py".into() }
    }
}

/// `email,sms` from the environment or `["email", "sms"]` from TOML; entries trimmed, empty ones dropped.
pub(crate) fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Either::deserialize(d)? {
        Either::One(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
        Either::Many(v) => v.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::RulesSettings;
    use crate::domain::NotificationType;

    /// `CANTINA__RULES__<TYPE>__…` reads the field of `RulesSettings` named like the type: exactly one field per
    /// type, named `as_str()`, and it is the one `get` returns (set through its key, the others left alone).
    #[test]
    fn each_type_has_the_rules_field_of_its_name() {
        let serde_json::Value::Object(fields) = serde_json::to_value(RulesSettings::default()).unwrap() else {
            panic!("rules settings serialise as a map")
        };
        let mut keys: Vec<&str> = fields.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut names = NotificationType::ALL.map(NotificationType::as_str);
        names.sort_unstable();
        assert_eq!(keys, names);
        let defaults = RulesSettings::default();
        for t in NotificationType::ALL {
            let read: RulesSettings =
                serde_json::from_value(serde_json::json!({ t.as_str(): { "channels": "portal", "fallback": "sms" } }))
                    .unwrap();
            assert_eq!(read.get(t), (&["portal".to_string()][..], &["sms".to_string()][..]), "{t}");
            for other in NotificationType::ALL.into_iter().filter(|o| *o != t) {
                assert_eq!(read.get(other), defaults.get(other), "{t} set {other}");
            }
        }
    }
}
