//! `settings.scheduler`: which schedules exist and their cron expressions (the scheduler itself is
//! `crate::scheduler`).

use std::fmt;

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

use crate::domain::cron::CronSchedule;

/// `settings.scheduler` (env `CANTINA__SCHEDULER__SALDO_BAJO`, ...).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct SchedulerSettings {
    /// Daily low-balance sweep.
    pub saldo_bajo: String,
    /// Weekly pending-account reminder.
    pub cuenta_pendiente: String,
    /// Daily negative-balance reminders (3, 7 and 15 days).
    pub recordatorio_deuda: String,
    /// Weekly clean-up of old events, finished requests and ledger rows (`settings.retention`).
    pub limpieza: String,
    /// The staff's daily summary email (`settings.resumen_diario`; off without recipients).
    pub resumen_diario: String,
    /// A missed firing still runs when the service comes back within this many hours; older ones are `omitida`.
    pub catch_up_window_hours: u64,
    pub enabled: bool,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        SchedulerSettings {
            saldo_bajo: "0 18 * * *".into(),
            cuenta_pendiente: "0 9 * * 1".into(),
            recordatorio_deuda: "0 8 * * *".into(),
            limpieza: "0 2 * * 0".into(),
            resumen_diario: "0 21 * * *".into(),
            catch_up_window_hours: 6,
            enabled: true,
        }
    }
}

impl SchedulerSettings {
    pub fn expr(&self, kind: SweepKind) -> &str {
        match kind {
            SweepKind::SaldoBajo => &self.saldo_bajo,
            SweepKind::CuentaPendiente => &self.cuenta_pendiente,
            SweepKind::RecordatorioDeuda => &self.recordatorio_deuda,
            SweepKind::Limpieza => &self.limpieza,
            SweepKind::ResumenDiario => &self.resumen_diario,
        }
    }

    /// Every problem, naming the environment key (for start-up validation).
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        for kind in SweepKind::ALL {
            if let Err(e) = CronSchedule::parse(self.expr(kind)) {
                errors.push(format!("CANTINA__SCHEDULER__{}: {e}", kind.as_str().to_uppercase()));
            }
        }
        if self.catch_up_window_hours == 0 {
            errors.push("CANTINA__SCHEDULER__CATCH_UP_WINDOW_HOURS: must be at least 1".into());
        }
        errors
    }

    pub fn window(&self) -> SignedDuration {
        SignedDuration::from_hours(i64::try_from(self.catch_up_window_hours).unwrap_or(i64::MAX / 3600).min(24 * 366))
    }
}

/// A schedule: the three sweeps that create requests, the clean-up ([`cleanup`]), which deletes instead, and the
/// staff summary ([`summary`]), which sends one email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SweepKind {
    SaldoBajo,
    CuentaPendiente,
    RecordatorioDeuda,
    Limpieza,
    ResumenDiario,
}

impl SweepKind {
    pub const ALL: [SweepKind; 5] = [
        SweepKind::SaldoBajo,
        SweepKind::CuentaPendiente,
        SweepKind::RecordatorioDeuda,
        SweepKind::Limpieza,
        SweepKind::ResumenDiario,
    ];

    /// Also the ledger's `programa`.
    pub fn as_str(self) -> &'static str {
        match self {
            SweepKind::SaldoBajo => "saldo_bajo",
            SweepKind::CuentaPendiente => "cuenta_pendiente",
            SweepKind::RecordatorioDeuda => "recordatorio_deuda",
            SweepKind::Limpieza => "limpieza",
            SweepKind::ResumenDiario => "resumen_diario",
        }
    }

    pub fn parse(s: &str) -> Result<SweepKind, String> {
        SweepKind::ALL.into_iter().find(|k| k.as_str() == s.trim()).ok_or_else(|| {
            let names = SweepKind::ALL.map(SweepKind::as_str);
            let (last, rest) = names.split_last().unwrap_or((&"", &[]));
            format!("unknown sweep '{s}' (expected {} or {last})", rest.join(", "))
        })
    }
}

impl fmt::Display for SweepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::SweepKind;

    /// The list is built from `ALL`; the wording is the one written by hand before.
    #[test]
    fn an_unknown_sweep_lists_the_known_ones() {
        assert_eq!(
            SweepKind::parse("consumo").unwrap_err(),
            "unknown sweep 'consumo' (expected saldo_bajo, cuenta_pendiente, recordatorio_deuda, limpieza or resumen_diario)"
        );
        for k in SweepKind::ALL {
            assert_eq!(SweepKind::parse(k.as_str()), Ok(k));
        }
    }
}
