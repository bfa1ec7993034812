//! Staff alerts: one `alertas_sistema` row (tipo `SISTEMA`) per incident, in Spanish, for the people who run the
//! cantina. Raised by a paused channel ([`crate::dispatch::pause`]), a failed scheduled run ([`crate::scheduler`])
//! and a high failure rate on a channel ([`check_failure_rates`]).
//!
//! An incident is named by the start of its message (`cantina-notify: canal SMS pausado`, …). [`raise`] inserts a
//! row only while no row of that incident is open (`Pendiente` or `Leida`), under an advisory lock, so any number of
//! replicas and repeated checks give one row; [`resolve`] closes it (`Resuelta`, `fecha_resolucion`,
//! `observaciones`). A resolved incident gets a new row only when it happens again.

use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;

use crate::config::AlertSettings;
use crate::db::DbError;
use crate::domain::ChannelKind;

/// `alertas_sistema.mensaje` is varchar(500) (characters, not bytes).
pub const MAX_MESSAGE_CHARS: usize = 500;

/// The longest prefix of `s` with at most `max` characters (never splits a character).
pub fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The text stored for an incident: it always starts with the incident's prefix (prepended when `mensaje` does
/// not), so [`raise`] and [`resolve`] find it, and fits the column.
fn stored_message(prefix: &str, mensaje: &str) -> String {
    let full = if mensaje.starts_with(prefix) { mensaje.to_string() } else { format!("{prefix}: {mensaje}") };
    truncate_chars(&full, MAX_MESSAGE_CHARS).to_string()
}

/// The prefix as compared with the stored text (a prefix longer than the column is compared truncated too).
fn key(prefix: &str) -> &str {
    truncate_chars(prefix, MAX_MESSAGE_CHARS)
}

// `left(...) = $` rather than LIKE: a prefix such as `barrido saldo_bajo` would make `_` a wildcard.
const RAISE: &str = "
    INSERT INTO alertas_sistema (tipo, mensaje, estado)
    SELECT 'SISTEMA', $1, 'Pendiente'
    WHERE NOT EXISTS (
        SELECT 1 FROM alertas_sistema
        WHERE tipo = 'SISTEMA' AND estado IN ('Pendiente', 'Leida') AND left(mensaje, char_length($2)) = $2)";

const RESOLVE: &str = "
    UPDATE alertas_sistema
    SET estado = 'Resuelta', fecha_resolucion = now(), observaciones = $2
    WHERE tipo = 'SISTEMA' AND estado IN ('Pendiente', 'Leida') AND left(mensaje, char_length($1)) = $1";

/// [`RAISE`], and not again within an hour of the last one (open, read or resolved).
const RAISE_AT_MOST_HOURLY: &str = "
    INSERT INTO alertas_sistema (tipo, mensaje, estado)
    SELECT 'SISTEMA', $1, 'Pendiente'
    WHERE NOT EXISTS (
        SELECT 1 FROM alertas_sistema
        WHERE tipo = 'SISTEMA' AND left(mensaje, char_length($2)) = $2
          AND (estado IN ('Pendiente', 'Leida') OR fecha_creacion > now() - interval '1 hour'))";

/// Opens the incident named by `prefix` unless it is already open; true when this call inserted the row.
pub async fn raise(pool: &Pool, prefix: &str, mensaje: &str) -> Result<bool, DbError> {
    insert_once(pool, RAISE, prefix, mensaje).await
}

/// [`raise`], and not again within an hour of the last one: for incidents that may repeat many times, where one
/// alert an hour says all there is to say.
pub async fn raise_at_most_hourly(pool: &Pool, prefix: &str, mensaje: &str) -> Result<bool, DbError> {
    insert_once(pool, RAISE_AT_MOST_HOURLY, prefix, mensaje).await
}

async fn insert_once(pool: &Pool, sql: &str, prefix: &str, mensaje: &str) -> Result<bool, DbError> {
    let mensaje = stored_message(prefix, mensaje);
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    // Serialises the check-then-insert across replicas (alerts are rare: one lock for all of them is enough).
    // Any role may take an advisory lock: one held by someone else must not hold this task for good.
    tx.batch_execute("SET LOCAL lock_timeout = '5s'").await?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext('cantina-notify-alertas'))", &[]).await?;
    let inserted = tx.execute(sql, &[&mensaje, &key(prefix)]).await?;
    tx.commit().await?;
    Ok(inserted == 1)
}

/// Closes the open incident named by `prefix`, saying how it ended; returns how many rows it closed (0: none open).
pub async fn resolve(pool: &Pool, prefix: &str, observaciones: &str) -> Result<u64, DbError> {
    Ok(pool.get().await?.execute(RESOLVE, &[&key(prefix), &observaciones]).await?)
}

// ---------------------------------------------------------------------------------------------------------------
// Failure rate per channel.

/// One channel's figures over the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelFailures {
    /// As in `solicitudes_notificacion.destino`: `Email`, `SMS`, `WhatsApp`, `Portal`.
    pub destino: String,
    pub total: i64,
    pub fallidos: i64,
    /// The newest failure's `ultimo_error`.
    pub ultimo_error: Option<String>,
}

/// What the figures say about a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// At least the minimum number of sends and more than the threshold failed: raise.
    High,
    /// At or under the threshold over at least the minimum, or sends without a single failure: resolve.
    Healthy,
    /// Too few sends to tell, with some failures among them: leave any open alert as it is.
    Unknown,
}

impl ChannelFailures {
    pub fn rate(&self) -> f64 {
        if self.total == 0 { 0.0 } else { self.fallidos as f64 / self.total as f64 }
    }

    pub fn verdict(&self, s: &AlertSettings) -> Verdict {
        if self.total >= s.failure_rate_min_sends.max(1) {
            if self.rate() > s.failure_rate_threshold { Verdict::High } else { Verdict::Healthy }
        } else if self.total > 0 && self.fallidos == 0 {
            // An hour of sends that all went through: the incident is over even on a quiet night.
            Verdict::Healthy
        } else {
            Verdict::Unknown
        }
    }
}

/// `30 %`, `20,4 %`: Paraguayan notation, one decimal when it is not a whole number (so 20.4 % does not read as
/// the 20 % threshold).
pub fn percent(rate: f64) -> String {
    let tenths = (rate * 1000.0).round() as i64;
    if tenths % 10 == 0 { format!("{} %", tenths / 10) } else { format!("{},{} %", tenths / 10, tenths % 10) }
}

pub fn failure_rate_prefix(destino: &str) -> String {
    format!("cantina-notify: tasa de fallos alta en {destino}")
}

/// The alert's text, e.g. `cantina-notify: tasa de fallos alta en SMS: 12 de 40 envíos (30 %) fallaron en los
/// últimos 60 min; último error: …`.
pub fn failure_rate_message(c: &ChannelFailures, window_minutes: u64) -> String {
    let mut m = format!(
        "{}: {} de {} envíos ({}) fallaron en los últimos {window_minutes} min",
        failure_rate_prefix(&c.destino),
        c.fallidos,
        c.total,
        percent(c.rate())
    );
    if let Some(e) = c.ultimo_error.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        m.push_str("; último error: ");
        m.push_str(e);
    }
    m
}

pub fn failure_rate_resolution(c: &ChannelFailures, window_minutes: u64) -> String {
    format!(
        "cantina-notify: la tasa de fallos de {} volvió a {} de {} envíos ({}) en los últimos {window_minutes} min",
        c.destino,
        c.fallidos,
        c.total,
        percent(c.rate())
    )
}

/// One channel after a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateCheck {
    pub figures: ChannelFailures,
    pub verdict: Verdict,
    /// This check inserted (High) or closed (Healthy) an alert row.
    pub changed: bool,
}

/// One failure-rate check over every channel with finished sends in the window: raises or resolves each channel's
/// alert. Safe to run on every replica at once (see [`raise`]).
pub async fn check_failure_rates(pool: &Pool, settings: &AlertSettings) -> Result<Vec<RateCheck>, DbError> {
    let window = settings.failure_rate_window_minutes;
    let minutes = i32::try_from(window).unwrap_or(i32::MAX);
    let conn = pool.get().await?;
    let rows = crate::requests::reports::failure_rates(&conn, minutes).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let figures =
            ChannelFailures { destino: r.destino, total: r.total, fallidos: r.fallidos, ultimo_error: r.ultimo_error };
        let verdict = figures.verdict(settings);
        let prefix = failure_rate_prefix(&figures.destino);
        let changed = match verdict {
            Verdict::High => {
                let new = raise(pool, &prefix, &failure_rate_message(&figures, window)).await?;
                if new {
                    tracing::error!(
                        channel = %figures.destino,
                        failed = figures.fallidos,
                        sends = figures.total,
                        window_minutes = window,
                        "high failure rate: staff alert raised"
                    );
                }
                new
            }
            Verdict::Healthy => {
                let closed = resolve(pool, &prefix, &failure_rate_resolution(&figures, window)).await? > 0;
                if closed {
                    tracing::info!(channel = %figures.destino, failed = figures.fallidos, sends = figures.total, "failure rate back to normal: staff alert resolved");
                }
                closed
            }
            Verdict::Unknown => false,
        };
        out.push(RateCheck { figures, verdict, changed });
    }
    Ok(out)
}

/// Checks every `check_interval_seconds` until `shutdown` (the first check one interval after start). A failed
/// check is logged and tried again at the next interval.
pub async fn run_failure_rate_checks(pool: Pool, settings: AlertSettings, shutdown: CancellationToken) {
    let every = Duration::from_secs(settings.check_interval_seconds.max(1));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        if let Err(e) = check_failure_rates(&pool, &settings).await {
            tracing::warn!(error = %e, "failure-rate check failed; retrying at the next interval");
        }
    }
}

/// Names the staff alert of a configuration pause (an operator's pause has its own, in [`crate::operator_pauses`]).
pub fn config_pause_alert_prefix(kind: ChannelKind) -> String {
    format!("cantina-notify: canal {} pausado", kind.destino())
}

pub use crate::config::checks::alerts as validate;

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(total: i64, fallidos: i64) -> ChannelFailures {
        ChannelFailures { destino: "SMS".into(), total, fallidos, ultimo_error: None }
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate_chars("ñandú", 3), "ñan");
        assert_eq!(truncate_chars("ñandú", 5), "ñandú");
        assert_eq!(truncate_chars("ñandú", 50), "ñandú");
        assert_eq!(truncate_chars("", 0), "");
        let long = "é".repeat(600);
        let m = stored_message("cantina-notify: x", &long);
        assert_eq!(m.chars().count(), MAX_MESSAGE_CHARS);
        assert!(m.starts_with("cantina-notify: x: ééé"), "{m}");
    }

    #[test]
    fn the_stored_message_starts_with_its_prefix() {
        assert_eq!(stored_message("cantina-notify: a", "cantina-notify: a (b): c"), "cantina-notify: a (b): c");
        assert_eq!(stored_message("cantina-notify: a", "otra cosa"), "cantina-notify: a: otra cosa");
        let long_prefix = "p".repeat(700);
        assert_eq!(key(&long_prefix).len(), MAX_MESSAGE_CHARS);
        assert!(stored_message(&long_prefix, "x").starts_with(key(&long_prefix)));
    }

    #[test]
    fn verdicts_follow_the_threshold_and_the_minimum() {
        let s = AlertSettings::default(); // 0.2, min 20
        assert_eq!(figures(40, 12).verdict(&s), Verdict::High);
        assert_eq!(figures(40, 8).verdict(&s), Verdict::Healthy, "exactly 20 % is not more than 20 %");
        assert_eq!(figures(40, 9).verdict(&s), Verdict::High);
        assert_eq!(figures(19, 19).verdict(&s), Verdict::Unknown, "too few sends to tell");
        assert_eq!(figures(5, 0).verdict(&s), Verdict::Healthy, "no failure at all");
        assert_eq!(figures(0, 0).verdict(&s), Verdict::Unknown);
        let zero = AlertSettings { failure_rate_threshold: 0.0, failure_rate_min_sends: 1, ..s };
        assert_eq!(figures(1, 1).verdict(&zero), Verdict::High);
        assert_eq!(figures(1, 0).verdict(&zero), Verdict::Healthy);
    }

    #[test]
    fn messages_read_as_staff_expect() {
        let c = ChannelFailures {
            destino: "SMS".into(),
            total: 40,
            fallidos: 12,
            ultimo_error: Some("Twilio 30003: Unreachable destination handset".into()),
        };
        assert_eq!(
            failure_rate_message(&c, 60),
            "cantina-notify: tasa de fallos alta en SMS: 12 de 40 envíos (30 %) fallaron en los últimos 60 min; \
             último error: Twilio 30003: Unreachable destination handset"
        );
        assert!(failure_rate_message(&c, 60).starts_with(&failure_rate_prefix("SMS")));
        let ok = ChannelFailures { ultimo_error: None, fallidos: 1, ..c };
        assert_eq!(
            failure_rate_message(&ok, 30),
            "cantina-notify: tasa de fallos alta en SMS: 1 de 40 envíos (2,5 %) fallaron en los últimos 30 min"
        );
        assert_eq!(
            failure_rate_resolution(&ok, 60),
            "cantina-notify: la tasa de fallos de SMS volvió a 1 de 40 envíos (2,5 %) en los últimos 60 min"
        );
    }

    #[test]
    fn percentages_use_a_decimal_comma_only_when_needed() {
        assert_eq!(percent(0.3), "30 %");
        assert_eq!(percent(0.204), "20,4 %");
        assert_eq!(percent(1.0), "100 %");
        assert_eq!(percent(0.0), "0 %");
        assert_eq!(percent(2.0 / 3.0), "66,7 %");
    }

    #[test]
    fn channel_prefixes_do_not_overlap() {
        let prefixes: Vec<String> = ["Email", "SMS", "WhatsApp", "Portal"].map(failure_rate_prefix).into();
        for a in &prefixes {
            for b in &prefixes {
                assert!(a == b || !b.starts_with(a.as_str()), "{a} is a prefix of {b}");
            }
        }
    }

    #[test]
    fn settings_are_validated_with_their_keys() {
        assert!(validate(&AlertSettings::default()).is_empty());
        let bad = AlertSettings {
            failure_rate_threshold: 1.5,
            failure_rate_window_minutes: 0,
            failure_rate_min_sends: 0,
            check_interval_seconds: 0,
        };
        let errors = validate(&bad);
        assert_eq!(errors.len(), 4, "{errors:?}");
        for key in [
            "CANTINA__ALERTS__FAILURE_RATE_THRESHOLD",
            "CANTINA__ALERTS__FAILURE_RATE_WINDOW_MINUTES",
            "CANTINA__ALERTS__FAILURE_RATE_MIN_SENDS",
            "CANTINA__ALERTS__CHECK_INTERVAL_SECONDS",
        ] {
            assert!(errors.iter().any(|e| e.starts_with(key)), "{key} missing in {errors:?}");
        }
        assert_eq!(validate(&AlertSettings { failure_rate_threshold: f64::NAN, ..Default::default() }).len(), 1);
    }
}
