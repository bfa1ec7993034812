use std::collections::BTreeMap;
use std::fmt;

use super::Settings;
use crate::domain::{ChannelKind, NotificationType};

/// Connections the service needs besides the sends in flight.
const MIN_POOL_SIZE: usize = 8;

/// Every problem found at start-up, each naming the key and what is expected.
#[derive(Debug)]
pub struct ValidationErrors(pub Vec<String>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} configuration problem(s):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailBackend {
    Console,
    File,
    Smtp,
    Sendgrid,
    Ses,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsProvider {
    Console,
    File,
    Twilio,
    Tigo,
    Personal,
    Http,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhatsAppProvider {
    Console,
    File,
    BusinessApi,
    Twilio,
}

/// Which provider serves each channel; `None` means the channel is not configured.
#[derive(Debug, Clone, Copy)]
pub struct ChannelProviders {
    pub email: Option<EmailBackend>,
    pub sms: Option<SmsProvider>,
    pub whatsapp: Option<WhatsAppProvider>,
}

impl ChannelProviders {
    pub fn configured(&self, kind: ChannelKind) -> bool {
        match kind {
            ChannelKind::Email => self.email.is_some(),
            ChannelKind::Sms => self.sms.is_some(),
            ChannelKind::WhatsApp => self.whatsapp.is_some(),
            // The portal channel writes to the Cantina database itself: always available.
            ChannelKind::Portal => true,
        }
    }
}

/// The rules' configuration in typed form.
#[derive(Debug, Clone)]
pub struct RulesConfig {
    /// Per type: its channels, or (for a type in `fallback`) its ordered fallback list.
    pub channels: BTreeMap<NotificationType, Vec<ChannelKind>>,
    /// Types whose list is a fallback order (`CANTINA__RULES__<TYPE>__FALLBACK`): one channel at a time.
    pub fallback: std::collections::BTreeSet<NotificationType>,
    pub umbral_saldo_bajo: i64,
    /// Low-balance reminders while a card stays low: the first `primero` days after the crossing, then every `cada`.
    pub saldo_bajo_recordatorio: ReminderSchedule,
    /// `tarjeta_por_vencer` is due from this many local days before a card's `fecha_vencimiento`.
    pub dias_aviso_vencimiento: i64,
    /// Whether each channel is on for a parent who has not said otherwise in the portal.
    pub preference_defaults: super::settings::PreferenceDefaults,
    /// Channels with a provider configured (a manual request may name any of them).
    pub available: Vec<ChannelKind>,
    /// Signs the requests the service writes (`CANTINA__DATABASE__SIGNING_KEY`; a throwaway key where none is
    /// needed, see [`Settings::validate`]).
    pub signer: crate::signing::RowSigner,
    /// When `resumen_consumos` fires (`CANTINA__SCHEDULER__RESUMEN_CONSUMOS`): a summary lists the purchases since
    /// the previous firing, so the sweep needs the schedule, not only the instant.
    pub resumen_consumos_schedule: crate::domain::cron::CronSchedule,
}

/// When low-balance reminders fall due after a crossing (both at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReminderSchedule {
    pub primero: i64,
    pub cada: i64,
}

impl Default for ReminderSchedule {
    fn default() -> Self {
        ReminderSchedule { primero: 1, cada: 7 }
    }
}

/// Where a type's notices go: every channel at once, or the first with the rest as fallbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<'a> {
    pub channels: &'a [ChannelKind],
    pub fallback: bool,
}

impl Route<'_> {
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    pub fn first(&self) -> Option<&ChannelKind> {
        self.channels.first()
    }
}

impl RulesConfig {
    pub fn channels_for(&self, t: NotificationType) -> Route<'_> {
        Route { channels: self.channels.get(&t).map_or(&[], Vec::as_slice), fallback: self.fallback.contains(&t) }
    }
}

fn env_key(t: NotificationType, fallback: bool) -> String {
    let key = if fallback { "FALLBACK" } else { "CHANNELS" };
    format!("CANTINA__RULES__{}__{key}", t.as_str().to_uppercase())
}

/// A name that is none of the expected ones. The value is not shown (a secret pasted on the wrong line of a `.env`
/// must not reach a terminal or a log), but the usual cause is: a `#` comment after the value, which a `.env`
/// keeps as part of it.
pub fn unknown_name(what: &str, expected: &str, value: &str) -> String {
    let hint = if value.contains('#') {
        "; it contains '#': in a .env a comment after a value is part of the value, put it on its own line"
    } else {
        ""
    };
    format!("{what} (expected {expected}; the value is not shown{hint})")
}

impl Settings {
    pub fn email_backend(&self) -> Result<EmailBackend, String> {
        match self.email.backend.trim() {
            "console" | "django.core.mail.backends.console.EmailBackend" => Ok(EmailBackend::Console),
            "file" | "django.core.mail.backends.filebased.EmailBackend" => Ok(EmailBackend::File),
            "smtp" | "django.core.mail.backends.smtp.EmailBackend" => Ok(EmailBackend::Smtp),
            "sendgrid" | "sendgrid_backend.SendgridBackend" => Ok(EmailBackend::Sendgrid),
            "ses" | "django_ses.SESBackend" => Ok(EmailBackend::Ses),
            other => Err(unknown_name(
                "EMAIL_BACKEND: unknown backend",
                "console, file, smtp, sendgrid, ses or a Django backend class path",
                other,
            )),
        }
    }

    pub fn sms_provider(&self) -> Result<Option<SmsProvider>, String> {
        let Some(p) = self.sms.provider.as_deref().map(str::trim).filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        Ok(Some(match p.to_ascii_lowercase().as_str() {
            "console" => SmsProvider::Console,
            "file" => SmsProvider::File,
            "twilio" => SmsProvider::Twilio,
            "tigo" => SmsProvider::Tigo,
            "personal" => SmsProvider::Personal,
            "http" => SmsProvider::Http,
            _ => {
                return Err(unknown_name(
                    "SMS_PROVIDER: unknown provider",
                    "twilio, tigo, personal, http, console or file",
                    p,
                ));
            }
        }))
    }

    pub fn whatsapp_provider(&self) -> Result<Option<WhatsAppProvider>, String> {
        let Some(p) = self.whatsapp.provider.as_deref().map(str::trim).filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        Ok(Some(match p.to_ascii_lowercase().as_str() {
            "console" => WhatsAppProvider::Console,
            "file" => WhatsAppProvider::File,
            "business_api" => WhatsAppProvider::BusinessApi,
            "twilio" => WhatsAppProvider::Twilio,
            _ => {
                return Err(unknown_name(
                    "WHATSAPP_PROVIDER: unknown provider",
                    "business_api, twilio, console or file",
                    p,
                ));
            }
        }))
    }

    /// Which provider serves each channel (unknown names are errors; missing credentials are reported when the
    /// adapters are built).
    pub fn channel_providers(&self) -> Result<ChannelProviders, Vec<String>> {
        let mut errors = Vec::new();
        let email = self.email_backend().map_err(|e| errors.push(e)).ok();
        let sms = self.sms_provider().map_err(|e| errors.push(e)).ok().flatten();
        let whatsapp = self.whatsapp_provider().map_err(|e| errors.push(e)).ok().flatten();
        if errors.is_empty() { Ok(ChannelProviders { email, sms, whatsapp }) } else { Err(errors) }
    }

    pub fn rules_config(&self) -> Result<RulesConfig, Vec<String>> {
        let r = &self.rules;
        let mut errors = Vec::new();
        let mut channels = BTreeMap::new();
        let mut fallback = std::collections::BTreeSet::new();
        for t in NotificationType::ALL {
            let (list, fallback_list) = r.get(t);
            // A fallback list replaces the channel list (whose default, `email`, is always present).
            let is_fallback = !fallback_list.is_empty();
            let mut parsed: Vec<ChannelKind> = Vec::new();
            for name in if is_fallback { fallback_list } else { list } {
                match ChannelKind::parse(name) {
                    Ok(c) if !parsed.contains(&c) => parsed.push(c),
                    Ok(_) => {}
                    Err(e) => errors.push(format!("{}: {e}", env_key(t, is_fallback))),
                }
            }
            if is_fallback {
                fallback.insert(t);
            }
            channels.insert(t, parsed);
        }
        if self.fallback.receipt_timeout_minutes == 0 {
            errors.push(
                "CANTINA__FALLBACK__RECEIPT_TIMEOUT_MINUTES: must be at least 1 (minutes to wait for a delivery receipt before the next channel)".into(),
            );
        }
        if r.saldo_bajo.umbral <= 0 {
            errors.push(format!(
                "CANTINA__RULES__SALDO_BAJO__UMBRAL: must be a positive amount in guaraníes (got {})",
                r.saldo_bajo.umbral
            ));
        }
        for (key, value) in [
            ("CANTINA__RULES__SALDO_BAJO__RECORDATORIO_PRIMERO_DIAS", r.saldo_bajo.recordatorio_primero_dias),
            ("CANTINA__RULES__SALDO_BAJO__RECORDATORIO_CADA_DIAS", r.saldo_bajo.recordatorio_cada_dias),
            ("CANTINA__RULES__TARJETA_POR_VENCER__DIAS_ANTES", r.tarjeta_por_vencer.dias_antes),
        ] {
            if !(1..=366).contains(&value) {
                errors.push(format!("{key}: must be a number of days from 1 to 366 (got {value})"));
            }
        }
        let signer = match &self.database.signing_key {
            Some(key) => crate::signing::RowSigner::new(key.expose()).map_err(|e| errors.push(e)).ok(),
            None => Some(crate::signing::RowSigner::ephemeral()),
        };
        // A bad expression is reported by the scheduler's own check; the default keeps this config whole meanwhile.
        let resumen_consumos_schedule =
            crate::domain::cron::CronSchedule::parse(self.scheduler.expr(crate::config::SweepKind::ResumenConsumos))
                .or_else(|_| crate::domain::cron::CronSchedule::parse("0 20 * * *"));
        if let (true, Some(signer), Ok(resumen_consumos_schedule)) =
            (errors.is_empty(), signer, resumen_consumos_schedule)
        {
            Ok(RulesConfig {
                channels,
                fallback,
                umbral_saldo_bajo: r.saldo_bajo.umbral,
                saldo_bajo_recordatorio: ReminderSchedule {
                    primero: r.saldo_bajo.recordatorio_primero_dias,
                    cada: r.saldo_bajo.recordatorio_cada_dias,
                },
                dias_aviso_vencimiento: r.tarjeta_por_vencer.dias_antes,
                preference_defaults: self.preferences,
                available: Vec::new(),
                signer,
                resumen_consumos_schedule,
            })
        } else {
            Err(errors)
        }
    }

    /// Checks everything the service needs before it starts; `needs_database` is false for `check-config` and `demo`.
    pub fn validate(&self, needs_database: bool) -> Result<(RulesConfig, ChannelProviders), ValidationErrors> {
        let mut errors = Vec::new();
        if needs_database && self.database.url.is_none() {
            errors.push(
                "DATABASE_URL: required (a libpq URL such as postgres://user@host:5432/cantina?sslmode=verify-full&sslrootcert=system)".into(),
            );
        }
        if needs_database && self.database.signing_key.is_none() {
            errors.push(format!(
                "CANTINA__DATABASE__SIGNING_KEY: required, the same in every replica: a random secret of at least {} bytes (for example `openssl rand -base64 48`); the service signs the requests it writes with it and sends no keyed request whose signature fails",
                crate::signing::MIN_KEY_BYTES
            ));
        }
        for (key, url) in [("DATABASE_URL", &self.database.url), ("LISTEN_DATABASE_URL", &self.database.listen_url)] {
            if let Some(u) = url {
                match crate::db::Target::parse(u.expose(), "cantina-notify", std::time::Duration::from_secs(10)) {
                    Err(e) => errors.push(format!("{key}: {e} (in {})", u.masked())),
                    Ok(target) => target.warn_if_unverified(key),
                }
            }
        }
        if self.http.addr.parse::<std::net::SocketAddr>().is_err() {
            errors.push(format!(
                "CANTINA__HTTP__ADDR: expected host:port such as 0.0.0.0:8080 (got '{}')",
                self.http.addr
            ));
        }
        if self.email.port == Some(0) {
            errors.push("EMAIL_PORT: expected an integer from 1 to 65535".into());
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            errors.push(format!("CANTINA__LOG__FORMAT: expected text or json (got '{}')", self.log.format));
        }
        let d = &self.dispatch;
        for (key, ok) in [
            ("CANTINA__DISPATCH__BATCH_SIZE", d.batch_size > 0),
            ("CANTINA__DISPATCH__CONCURRENCY", d.concurrency > 0),
            ("CANTINA__DISPATCH__MAX_ATTEMPTS", d.max_attempts > 0),
            ("CANTINA__DISPATCH__RETRY_BASE_MS", d.retry_base_ms > 0 && d.retry_base_ms <= d.retry_max_ms),
            ("CANTINA__DISPATCH__SEND_TIMEOUT_SECONDS", d.send_timeout_seconds > 0),
            ("CANTINA__DISPATCH__POLL_INTERVAL_MS", d.poll_interval_ms > 0),
            ("CANTINA__LISTENER__BATCH_SIZE", self.listener.batch_size > 0),
            ("CANTINA__LISTENER__SAFETY_TICK_SECONDS", self.listener.safety_tick_seconds > 0),
            ("CANTINA__DATABASE__POOL_SIZE", self.database.pool_size >= 2),
            ("CANTINA__HTTP__HEADER_TIMEOUT_SECONDS", self.http.header_timeout_seconds > 0),
            ("CANTINA__HTTP__BODY_TIMEOUT_SECONDS", self.http.body_timeout_seconds > 0),
            ("CANTINA__HTTP__MAX_CONNECTIONS", self.http.max_connections > 0),
        ] {
            if !ok {
                errors.push(format!("{key}: must be positive (retry base ≤ retry max; pool size ≥ 2)"));
            }
        }
        // Sends are recorded through one shared writer (group commit), so the sends in flight do not each need a
        // connection; retries and failures borrow one briefly and wait for it if the pool is busy.
        if self.database.pool_size < MIN_POOL_SIZE {
            errors.push(format!(
                "CANTINA__DATABASE__POOL_SIZE: must be at least {MIN_POOL_SIZE} ({}): the claims, the outcome writer, the rules, the housekeeping, the scheduler and /readyz share it",
                self.database.pool_size
            ));
        }
        // A claimed send may wait for its rate-limit slot: at the slowest configured rate, every send in flight
        // ahead of it must fit in the lease, or another replica could take it over and send it twice.
        // An unset limit may be an adapter's default, the slowest of which is 1/s (Twilio); 0 means no limit.
        let slowest = [self.limits.email.per_second, self.limits.sms.per_second, self.limits.whatsapp.per_second]
            .into_iter()
            .map(|r| r.unwrap_or(1.0))
            .filter(|r| *r > 0.0)
            .fold(f64::INFINITY, f64::min);
        let worst_wait =
            if slowest.is_finite() { d.concurrency as f64 / slowest } else { 0.0 } + d.send_timeout_seconds as f64;
        if (d.lease_seconds as f64) <= worst_wait {
            errors.push(format!(
                "CANTINA__DISPATCH__LEASE_SECONDS: {} s is too short: at {slowest} sends/s (CANTINA__LIMITS__…__PER_SECOND) with CANTINA__DISPATCH__CONCURRENCY {} a send can wait {worst_wait:.0} s before its timeout; raise the lease or the rate, or lower the concurrency",
                d.lease_seconds, d.concurrency
            ));
        }
        if let Some(warning) = shutdown_grace_warning(d) {
            tracing::warn!("{warning}");
        }
        if d.lease_seconds <= d.send_timeout_seconds {
            errors.push(format!(
                "CANTINA__DISPATCH__LEASE_SECONDS: must be longer than CANTINA__DISPATCH__SEND_TIMEOUT_SECONDS ({} ≤ {}), or a slow send could be taken over and sent twice",
                d.lease_seconds, d.send_timeout_seconds
            ));
        }
        if let Err(e) = self.quiet_hours.parse() {
            errors.extend(e);
        }
        errors.extend(self.scheduler.validate());
        errors.extend(super::checks::alerts(&self.alerts));
        errors.extend(super::checks::retention(&self.retention, &self.scheduler));
        errors.extend(super::checks::summary(&self.resumen_diario));
        let rules = self.rules_config().map_err(|e| errors.extend(e)).ok();
        let providers = self.channel_providers().map_err(|e| errors.extend(e)).ok();
        if let (Some(rules), Some(providers)) = (&rules, &providers) {
            for (t, list) in &rules.channels {
                for c in list {
                    if !providers.configured(*c) {
                        let provider_key = match c {
                            ChannelKind::Email => "EMAIL_BACKEND",
                            ChannelKind::Sms => "SMS_PROVIDER",
                            ChannelKind::WhatsApp => "WHATSAPP_PROVIDER",
                            ChannelKind::Portal => "the portal",
                        };
                        errors.push(format!(
                            "{}: names channel '{c}' but {provider_key} is not configured",
                            env_key(*t, rules.fallback.contains(t))
                        ));
                    }
                }
            }
        }
        match (rules, providers) {
            (Some(mut r), Some(p)) if errors.is_empty() => {
                r.available = ChannelKind::ALL.into_iter().filter(|c| p.configured(*c)).collect();
                Ok((r, p))
            }
            _ => Err(ValidationErrors(errors)),
        }
    }
}

/// A grace not above the send timeout lets SIGTERM cut a send the provider may still accept; its request is sent
/// again once its lease expires. Allowed (a platform may not wait that long) but said at start-up.
pub fn shutdown_grace_warning(d: &super::settings::DispatchSettings) -> Option<String> {
    (d.shutdown_grace_seconds <= d.send_timeout_seconds).then(|| {
        format!(
            "CANTINA__DISPATCH__SHUTDOWN_GRACE_SECONDS ({} s) is not longer than CANTINA__DISPATCH__SEND_TIMEOUT_SECONDS ({} s): on SIGTERM a send still waiting for its provider is cut, and if the provider accepted it the parent gets it twice after the lease expires",
            d.shutdown_grace_seconds, d.send_timeout_seconds
        )
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_shutdown_grace_outlasts_a_send_and_a_shorter_one_is_warned() {
        let mut d = super::super::settings::DispatchSettings::default();
        assert_eq!(super::shutdown_grace_warning(&d), None);
        d.shutdown_grace_seconds = d.send_timeout_seconds;
        let w = super::shutdown_grace_warning(&d).unwrap_or_default();
        assert!(w.starts_with("CANTINA__DISPATCH__SHUTDOWN_GRACE_SECONDS (30 s) is not longer than"), "{w}");
    }

    use std::collections::HashMap;

    use super::*;
    use crate::config::LoadOptions;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let env: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::load(&LoadOptions { env, ..Default::default() }).unwrap()
    }

    #[test]
    fn default_config_is_valid_without_a_database() {
        let (rules, providers) = settings(&[]).validate(false).unwrap();
        assert_eq!(rules.channels_for(NotificationType::RecargaExitosa).channels, [ChannelKind::Email]);
        assert!(!rules.channels_for(NotificationType::RecargaExitosa).fallback);
        assert_eq!(rules.umbral_saldo_bajo, 5000);
        assert_eq!(providers.email, Some(EmailBackend::Console));
        assert!(providers.sms.is_none());
    }

    #[test]
    fn the_lease_must_cover_the_sends_in_flight_at_the_slowest_rate() {
        // Unset limits may be an adapter's default (Twilio: 1/s): 64 in flight need more than 64 + 30 s.
        let err = settings(&[("CANTINA__DISPATCH__CONCURRENCY", "64"), ("CANTINA__DISPATCH__LEASE_SECONDS", "90")])
            .validate(false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("CANTINA__DISPATCH__LEASE_SECONDS: 90 s is too short"), "{err}");
        // Explicit fast (or no) limits everywhere: the same lease is enough.
        settings(&[
            ("CANTINA__DISPATCH__CONCURRENCY", "64"),
            ("CANTINA__DISPATCH__LEASE_SECONDS", "90"),
            ("CANTINA__LIMITS__EMAIL__PER_SECOND", "0"),
            ("CANTINA__LIMITS__SMS__PER_SECOND", "50"),
            ("CANTINA__LIMITS__WHATSAPP__PER_SECOND", "80"),
        ])
        .validate(false)
        .unwrap();
    }

    #[test]
    fn the_pool_needs_room_for_the_service_but_not_one_connection_per_send() {
        let err = settings(&[("CANTINA__DATABASE__POOL_SIZE", "7")]).validate(false).unwrap_err().to_string();
        assert!(err.contains("CANTINA__DATABASE__POOL_SIZE: must be at least 8"), "{err}");
        settings(&[("CANTINA__DATABASE__POOL_SIZE", "8"), ("CANTINA__DISPATCH__CONCURRENCY", "64")])
            .validate(false)
            .unwrap();
    }

    #[test]
    fn the_http_timeouts_and_cap_must_be_positive() {
        let s = settings(&[]);
        assert_eq!((s.http.header_timeout_seconds, s.http.body_timeout_seconds, s.http.max_connections), (5, 10, 512));
        for key in [
            "CANTINA__HTTP__HEADER_TIMEOUT_SECONDS",
            "CANTINA__HTTP__BODY_TIMEOUT_SECONDS",
            "CANTINA__HTTP__MAX_CONNECTIONS",
        ] {
            let err = settings(&[(key, "0")]).validate(false).unwrap_err().to_string();
            assert!(err.contains(&format!("{key}: must be positive")), "{err}");
        }
    }

    #[test]
    fn run_requires_database_url() {
        let err = settings(&[]).validate(true).unwrap_err().to_string();
        assert!(err.contains("DATABASE_URL: required"), "{err}");
    }

    #[test]
    fn a_rule_naming_an_unconfigured_channel_names_both_keys() {
        let err = settings(&[("CANTINA__RULES__RECARGA_EXITOSA__CHANNELS", "email,sms")])
            .validate(false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("CANTINA__RULES__RECARGA_EXITOSA__CHANNELS"), "{err}");
        assert!(err.contains("SMS_PROVIDER"), "{err}");
        settings(&[("CANTINA__RULES__RECARGA_EXITOSA__CHANNELS", "email,sms"), ("SMS_PROVIDER", "console")])
            .validate(false)
            .unwrap();
    }

    #[test]
    fn unknown_values_are_reported_with_their_keys() {
        let err = settings(&[
            ("CANTINA__RULES__SALDO_BAJO__CHANNELS", "email,fax"),
            ("EMAIL_BACKEND", "carrier-pigeon"),
            ("CANTINA__LOG__FORMAT", "xml"),
            ("CANTINA__HTTP__ADDR", "nowhere"),
            ("DATABASE_URL", "postgres://x:y@h/db?sslmode=sometimes"),
        ])
        .validate(true)
        .unwrap_err();
        let all = err.to_string();
        for needle in [
            "CANTINA__RULES__SALDO_BAJO__CHANNELS: unknown channel 'fax'",
            "EMAIL_BACKEND",
            "CANTINA__LOG__FORMAT",
            "CANTINA__HTTP__ADDR",
            "DATABASE_URL: invalid TLS settings in the database URL: sslmode: expected disable, allow, prefer, require, verify-ca or verify-full (got 'sometimes')",
        ] {
            assert!(all.contains(needle), "missing {needle} in {all}");
        }
        assert!(!all.contains(":y@"), "password leaked: {all}");
    }

    #[test]
    fn django_class_paths_are_accepted() {
        let s = settings(&[("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")]);
        assert_eq!(s.email_backend(), Ok(EmailBackend::File));
        let s = settings(&[("EMAIL_BACKEND", "django_ses.SESBackend")]);
        assert_eq!(s.email_backend(), Ok(EmailBackend::Ses));
    }
}
