//! Scheduled sweeps with a replica-safe run ledger.
//!
//! Each schedule (the request sweeps `saldo_bajo`, `cuenta_pendiente`, `recordatorio_deuda`, `tarjeta_por_vencer`, the weekly
//! clean-up `limpieza`, [`cleanup`], and the staff's daily email `resumen_diario`, [`summary`]) is a 5-field cron expression evaluated in America/Asuncion ([`cron`]). Every minute the [`Scheduler`] lists the firings since the last one recorded in the
//! ledger ([`ledger`]) and, for each:
//! - older than the catch-up window (default 6 h): recorded `omitida`, never run;
//! - otherwise: claimed with `INSERT ... ON CONFLICT DO NOTHING RETURNING`; the one replica that gets it runs the
//!   sweep ([`sweeps`]) for the scheduled instant and records `completada` (with the count) or `fallida`.
//!
//! A run that fails raises one staff alert (`alertas_sistema`, see [`crate::alerts`]) for its schedule, resolved
//! when a run of that schedule next completes.
//!
//! A schedule's first tick ever records a baseline at now and runs nothing: the firings before it belonged to
//! whoever sent these notices before (Celery beat, at the cut-over), so catching up on them would send them twice.
//! A run left `en_curso` for 30 minutes (crashed replica) or `fallida` for 5 minutes is re-claimed while still
//! inside the window. Sweeps are idempotent through their dedup keys, so a re-run creates only what is missing.

pub mod cleanup;
pub mod family;
mod family_store;
pub mod ledger;
pub mod spending;
pub mod summary;
pub mod sweeps;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use tokio_util::sync::CancellationToken;

pub use crate::config::{SchedulerSettings, SweepKind};
pub use crate::domain::cron;
pub use cleanup::CleanupReport;
pub use cron::{CronSchedule, firings_between};
pub use sweeps::insert_requests;

use crate::config::{RetentionSettings, RulesConfig};
use crate::db::DbError;

pub(crate) fn asuncion() -> TimeZone {
    TimeZone::get("America/Asuncion").unwrap_or(TimeZone::UTC)
}

/// `cantina-notify sweep <kind>`: creates the sweep's requests for `now`, with the same dedup keys as the
/// scheduled run of the same day/week (so neither repeats the other, nor itself). Not recorded in the ledger.
/// `SweepKind::Limpieza` creates no requests (0): the clean-up is [`run_cleanup`].
pub async fn run_sweep(pool: &Pool, rules: &RulesConfig, kind: SweepKind, now: Timestamp) -> Result<usize, DbError> {
    sweeps::sweep(pool, rules, kind, now).await
}

/// `cantina-notify sweep limpieza`: the clean-up as of `now`. Not recorded in the ledger.
pub async fn run_cleanup(pool: &Pool, retention: &RetentionSettings, now: Timestamp) -> Result<CleanupReport, DbError> {
    cleanup::run(pool, retention, now).await
}

/// The start of a failed schedule's staff alert (one open alert per schedule).
pub fn failure_alert_prefix(kind: SweepKind) -> String {
    format!("cantina-notify: barrido {kind} falló")
}

fn local_time(at: Timestamp) -> String {
    at.to_zoned(asuncion()).strftime("%d/%m/%Y %H:%M").to_string()
}

pub fn failure_alert_message(kind: SweepKind, at: Timestamp, error: &str) -> String {
    format!(
        "{} (programado para el {}): {error}. Se reintenta cada {} min mientras siga dentro de la ventana de \
         recuperación; si el error persiste, revise la base de datos y los registros del servicio.",
        failure_alert_prefix(kind),
        local_time(at),
        ledger::RETRY_FAILED_AFTER.as_mins()
    )
}

pub fn failure_alert_resolution(kind: SweepKind, at: Timestamp) -> String {
    format!("cantina-notify: el barrido {kind} programado para el {} terminó bien", local_time(at))
}

/// A schedule whose run creates whatever is due since a bound before its firing (the per-purchase sweep, every
/// minute): missed firings need no run of their own.
fn reads_since_a_bound(kind: SweepKind) -> bool {
    matches!(kind, SweepKind::ConsumoRealizado)
}

/// The scheduler's notion of now (a fake one in tests).
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// What happened to one firing on this replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FiringOutcome {
    /// This replica ran it: requests created, or the error.
    Ran { kind: SweepKind, at: Timestamp, result: Result<usize, String> },
    /// This replica recorded it `omitida` (too old).
    Skipped { kind: SweepKind, at: Timestamp },
}

pub struct Scheduler {
    pool: Pool,
    rules: RulesConfig,
    retention: RetentionSettings,
    schedules: Vec<(SweepKind, CronSchedule)>,
    window: SignedDuration,
    replica: String,
    clock: Arc<dyn Clock>,
    tz: TimeZone,
    /// The staff summary, when recipients are configured ([`Scheduler::with_summary`]).
    summary: Option<summary::DailySummary>,
    summary_schedule: CronSchedule,
}

/// How far back a schedule's history is searched at most (bounds the work after a very long outage).
const MAX_LOOKBACK: SignedDuration = SignedDuration::from_hours(24 * 35);

impl Scheduler {
    /// `replica` names this process in the ledger (e.g. host name and pid).
    pub fn new(
        pool: Pool,
        rules: RulesConfig,
        settings: &SchedulerSettings,
        retention: &RetentionSettings,
        replica: impl Into<String>,
        clock: Arc<dyn Clock>,
    ) -> Result<Scheduler, String> {
        let mut errors = settings.validate();
        errors.extend(cleanup::validate(retention, settings));
        if !errors.is_empty() {
            return Err(errors.join("; "));
        }
        // The summary's schedule runs only once it has recipients (`with_summary`): off means no ledger rows.
        let schedules = SweepKind::ALL
            .into_iter()
            .filter(|k| *k != SweepKind::ResumenDiario)
            .map(|k| CronSchedule::parse(settings.expr(k)).map(|s| (k, s)))
            .collect::<Result<Vec<_>, _>>()?;
        let summary_schedule = CronSchedule::parse(settings.expr(SweepKind::ResumenDiario))?;
        Ok(Scheduler {
            pool,
            rules,
            retention: retention.clone(),
            schedules,
            window: settings.window(),
            replica: replica.into(),
            clock,
            tz: asuncion(),
            summary: None,
            summary_schedule,
        })
    }

    /// Adds the staff summary's schedule (`CANTINA__SCHEDULER__RESUMEN_DIARIO`).
    pub fn with_summary(mut self, summary: summary::DailySummary) -> Scheduler {
        self.schedules.push((SweepKind::ResumenDiario, self.summary_schedule.clone()));
        self.summary = Some(summary);
        self
    }

    /// One evaluation of every schedule at the clock's now; returns what this replica did.
    pub async fn tick(&self) -> Result<Vec<FiringOutcome>, DbError> {
        let mut out = Vec::new();
        for (kind, schedule) in &self.schedules {
            self.tick_one(*kind, schedule, &mut out).await?;
        }
        Ok(out)
    }

    async fn tick_one(
        &self,
        kind: SweepKind,
        schedule: &CronSchedule,
        out: &mut Vec<FiringOutcome>,
    ) -> Result<(), DbError> {
        let programa = kind.as_str();
        let now = self.clock.now();
        let window_start = now.checked_sub(self.window).unwrap_or(now);
        let floor = now.checked_sub(MAX_LOOKBACK).unwrap_or(now);
        let after = match ledger::last_recorded(&self.pool, programa).await? {
            Some(last) => last.max(floor),
            None => {
                if ledger::baseline(&self.pool, programa, &self.replica, now).await? {
                    tracing::info!(sweep = programa, "first start of this schedule: earlier firings are not run");
                }
                return Ok(());
            }
        };
        let mut firings = schedule.firings_between(&self.tz, after, now);
        if reads_since_a_bound(kind) && firings.len() > 1 {
            // Each run reads everything since its own bound, so the latest firing covers the earlier ones: after a
            // stop, one run instead of one per missed minute (and no `omitida` row per minute).
            firings.drain(..firings.len() - 1);
        }
        for at in firings {
            if at < window_start {
                let why = format!(
                    "fuera de la ventana de recuperación ({} h): el servicio no estaba activo a la hora programada",
                    self.window.as_hours()
                );
                if ledger::skip(&self.pool, programa, at, &self.replica, now, &why).await? {
                    tracing::warn!(sweep = programa, scheduled = %at, "missed firing recorded as omitida");
                    out.push(FiringOutcome::Skipped { kind, at });
                }
            } else if ledger::claim(&self.pool, programa, at, &self.replica, now).await? {
                out.push(self.execute(kind, at).await?);
            }
        }
        for at in ledger::reclaim(&self.pool, programa, window_start, &self.replica, now).await? {
            tracing::warn!(sweep = programa, scheduled = %at, "re-running a firing that crashed or failed");
            out.push(self.execute(kind, at).await?);
        }
        Ok(())
    }

    async fn execute(&self, kind: SweepKind, at: Timestamp) -> Result<FiringOutcome, DbError> {
        // The clean-up's count is rows deleted (the summary's: emails sent); the breakdown goes to `detalle`.
        // DbError's Display carries the server's message and SQLSTATE, never a connection string.
        // Exhaustive: a new schedule must say here what it runs.
        let run = match kind {
            SweepKind::Limpieza => cleanup::run(&self.pool, &self.retention, at)
                .await
                .map(|r| (usize::try_from(r.total()).unwrap_or(usize::MAX), Some(r.to_string())))
                .map_err(|e| e.to_string()),
            SweepKind::ResumenDiario => match &self.summary {
                Some(s) => s.run_scheduled(at, &self.replica, self.clock.as_ref()).await,
                None => Ok((0, None)),
            },
            SweepKind::SaldoBajo
            | SweepKind::CuentaPendiente
            | SweepKind::RecordatorioDeuda
            | SweepKind::TarjetaPorVencer
            | SweepKind::ConsumoRealizado
            | SweepKind::ResumenConsumos => {
                sweeps::sweep(&self.pool, &self.rules, kind, at).await.map(|n| (n, None)).map_err(|e| e.to_string())
            }
        };
        let (result, detail) = match run {
            Ok((n, detail)) => (Ok(n), detail),
            Err(e) => (Err(e), None),
        };
        match &result {
            Ok(n) => tracing::info!(sweep = kind.as_str(), scheduled = %at, count = n, "sweep completed"),
            Err(e) => tracing::error!(sweep = kind.as_str(), scheduled = %at, error = %e, "sweep failed"),
        }
        ledger::finish(
            &self.pool,
            kind.as_str(),
            at,
            &self.replica,
            self.clock.now(),
            result.clone(),
            detail.as_deref(),
        )
        .await?;
        self.alert(kind, at, &result).await;
        Ok(FiringOutcome::Ran { kind, at, result })
    }

    /// Raises the schedule's staff alert on a failure, resolves it on a success. Best effort: the run is already
    /// recorded, and a database that just failed the sweep may well fail this too (the next retry raises it).
    async fn alert(&self, kind: SweepKind, at: Timestamp, result: &Result<usize, String>) {
        let prefix = failure_alert_prefix(kind);
        let outcome = match result {
            Err(e) => crate::alerts::raise(&self.pool, &prefix, &failure_alert_message(kind, at, e)).await.map(|_| ()),
            Ok(_) => crate::alerts::resolve(&self.pool, &prefix, &failure_alert_resolution(kind, at)).await.map(|n| {
                if n > 0 {
                    tracing::info!(sweep = kind.as_str(), "staff alert for the failed sweep resolved");
                }
            }),
        };
        if let Err(e) = outcome {
            tracing::warn!(sweep = kind.as_str(), error = %e, "could not update the staff alert for the sweep");
        }
    }

    /// Ticks every minute (at the start of the next wall-clock minute) until `shutdown`. Database errors are
    /// logged and retried on the next tick.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "scheduler tick failed; retrying next minute");
            }
            let now = self.clock.now();
            let into_minute = now.as_millisecond().rem_euclid(60_000);
            let wait = Duration::from_millis(u64::try_from(60_000 - into_minute).unwrap_or(60_000).max(1_000));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_settings_are_valid_and_match_the_issue() {
        let s = SchedulerSettings::default();
        assert!(s.validate().is_empty());
        assert_eq!(s.saldo_bajo, "0 18 * * *");
        assert_eq!(s.cuenta_pendiente, "0 9 * * 1");
        assert_eq!(s.recordatorio_deuda, "0 8 * * *");
        assert_eq!(s.limpieza, "0 2 * * 0");
        assert_eq!(s.resumen_diario, "0 21 * * *");
        assert_eq!(s.consumo_realizado, "* * * * *");
        assert_eq!(s.resumen_consumos, "0 20 * * *");
        assert_eq!(s.window(), SignedDuration::from_hours(6));
        assert!(s.enabled);
    }

    #[test]
    fn settings_deserialize_with_defaults_and_report_bad_cron() {
        let s: SchedulerSettings = serde_json::from_str(r#"{"saldo_bajo": "0 20 * * *"}"#).unwrap();
        assert_eq!(s.saldo_bajo, "0 20 * * *");
        assert_eq!(s.catch_up_window_hours, 6);
        let bad = SchedulerSettings { cuenta_pendiente: "0 9 * *".into(), ..Default::default() };
        let errors = bad.validate();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("CANTINA__SCHEDULER__CUENTA_PENDIENTE:"), "{errors:?}");
    }

    #[test]
    fn sweep_kinds_parse() {
        for k in SweepKind::ALL {
            assert_eq!(SweepKind::parse(k.as_str()).unwrap(), k);
        }
        assert_eq!(SweepKind::parse(" limpieza ").unwrap(), SweepKind::Limpieza);
        let err = SweepKind::parse("limpiar").unwrap_err();
        assert!(
            err.contains(
                "saldo_bajo, cuenta_pendiente, recordatorio_deuda, tarjeta_por_vencer, limpieza, resumen_diario, \
                 consumo_realizado or resumen_consumos"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_bad_limpieza_schedule_names_its_key() {
        let bad = SchedulerSettings { limpieza: "0 2 * * domingo".into(), ..Default::default() };
        let errors = bad.validate();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("CANTINA__SCHEDULER__LIMPIEZA:"), "{errors:?}");
    }

    #[test]
    fn the_failed_sweep_alert_names_the_schedule_and_local_time() {
        let at: Timestamp = "2026-11-23T21:00:00Z".parse().unwrap();
        let m = failure_alert_message(SweepKind::SaldoBajo, at, "database error: ERROR: boom (XX000)");
        assert!(m.starts_with(&failure_alert_prefix(SweepKind::SaldoBajo)), "{m}");
        assert!(
            m.starts_with(
                "cantina-notify: barrido saldo_bajo falló (programado para el 23/11/2026 18:00): database error: ERROR: boom (XX000). Se reintenta cada 5 min"
            ),
            "{m}"
        );
        assert!(m.chars().count() <= crate::alerts::MAX_MESSAGE_CHARS);
        assert_eq!(
            failure_alert_resolution(SweepKind::Limpieza, at),
            "cantina-notify: el barrido limpieza programado para el 23/11/2026 18:00 terminó bien"
        );
        // No schedule's prefix is the start of another's (each has its own open alert).
        for a in SweepKind::ALL {
            for b in SweepKind::ALL {
                assert!(a == b || !failure_alert_prefix(b).starts_with(&failure_alert_prefix(a)));
            }
        }
    }
}
