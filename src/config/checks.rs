//! Start-up checks of the sections whose features live outside `config` (alerts, retention, the daily summary), here
//! so that validation needs no feature module; the features re-export them (`alerts::validate`,
//! `cleanup::validate`, `summary::validate`).

use super::{AlertSettings, RetentionSettings, SchedulerSettings, SummarySettings};

/// Retention periods longer than this are refused (and would overflow the date arithmetic long before).
pub const MAX_RETENTION_DAYS: u64 = 36_500;

/// Start-up validation of `settings.alerts`, naming the keys.
pub fn alerts(s: &AlertSettings) -> Vec<String> {
    let mut errors = Vec::new();
    if !(0.0..1.0).contains(&s.failure_rate_threshold) {
        errors.push(format!(
            "CANTINA__ALERTS__FAILURE_RATE_THRESHOLD: must be a share from 0 up to (not including) 1, e.g. 0.2 for 20 % (got {})",
            s.failure_rate_threshold
        ));
    }
    for (key, ok) in [
        ("CANTINA__ALERTS__FAILURE_RATE_WINDOW_MINUTES", s.failure_rate_window_minutes >= 1),
        ("CANTINA__ALERTS__FAILURE_RATE_MIN_SENDS", s.failure_rate_min_sends >= 1),
        ("CANTINA__ALERTS__CHECK_INTERVAL_SECONDS", s.check_interval_seconds >= 1),
    ] {
        if !ok {
            errors.push(format!("{key}: must be at least 1"));
        }
    }
    if s.failure_rate_window_minutes > 7 * 24 * 60 {
        errors.push(format!(
            "CANTINA__ALERTS__FAILURE_RATE_WINDOW_MINUTES: at most 10080 (one week) (got {})",
            s.failure_rate_window_minutes
        ));
    }
    errors
}

/// Start-up validation of `settings.retention`, naming the keys.
pub fn retention(retention: &RetentionSettings, scheduler: &SchedulerSettings) -> Vec<String> {
    let mut errors = Vec::new();
    for (key, days) in [
        ("CANTINA__RETENTION__EVENTS_DAYS", retention.events_days),
        ("CANTINA__RETENTION__REQUESTS_DAYS", retention.requests_days),
        ("CANTINA__RETENTION__LEDGER_DAYS", retention.ledger_days),
    ] {
        if !(1..=MAX_RETENTION_DAYS).contains(&days) {
            errors.push(format!("{key}: must be a number of days from 1 to {MAX_RETENTION_DAYS} (got {days})"));
        }
    }
    // A failed run inside the catch-up window is retried from its ledger row: the row must outlive the window.
    if retention.ledger_days.saturating_mul(24) < scheduler.catch_up_window_hours {
        errors.push(format!(
            "CANTINA__RETENTION__LEDGER_DAYS: {} days is shorter than CANTINA__SCHEDULER__CATCH_UP_WINDOW_HOURS ({} h)",
            retention.ledger_days, scheduler.catch_up_window_hours
        ));
    }
    errors
}

/// Start-up validation (addresses and subject), naming the keys.
pub fn summary(settings: &SummarySettings) -> Vec<String> {
    let mut errors = settings.recipients().err().unwrap_or_default();
    if let Some(a) = &settings.asunto
        && (a.contains(['\r', '\n']) || a.trim().is_empty() || a.chars().count() > 200)
    {
        errors.push("CANTINA__RESUMEN_DIARIO__ASUNTO: must be one line of 1 to 200 characters".into());
    }
    errors
}
