//! `settings.scheduler`: which schedules exist and their cron expressions (the scheduler itself is
//! `crate::scheduler`).

use std::fmt;

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

use crate::domain::cron::CronSchedule;

/// Generates [`SweepKind`] and [`SchedulerSettings`] from the one list below: the enum, `ALL` (its length
/// included), the name (the ledger's `programa`, `sweep <kind>` and the settings field, one identifier, so
/// `CANTINA__SCHEDULER__<NAME>` cannot drift from it), the field's default cron expression and `expr`. What a
/// schedule runs is matched exhaustively on the enum (`Scheduler::execute`, `scheduler::sweeps::sweep`, the CLI),
/// so the compiler lists it (see docs/development.md, "Adding a notice type").
macro_rules! sweep_kinds {
    ($($(#[$doc:meta])* $variant:ident = $name:ident, default $cron:literal;)+) => {
        /// A schedule: the sweeps that create requests, the clean-up (`scheduler::cleanup`), which deletes
        /// instead, and the staff summary (`scheduler::summary`), which sends one email.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum SweepKind {
            $($(#[$doc])* $variant,)+
        }

        impl SweepKind {
            /// Every schedule, in declaration order.
            pub const ALL: [SweepKind; [$(stringify!($name)),+].len()] = [$(SweepKind::$variant),+];

            /// Also the ledger's `programa` and the field of [`SchedulerSettings`].
            pub fn as_str(self) -> &'static str {
                match self {
                    $(SweepKind::$variant => stringify!($name),)+
                }
            }
        }

        /// `settings.scheduler` (env `CANTINA__SCHEDULER__SALDO_BAJO`, ...).
        #[derive(Debug, Clone, Deserialize, Serialize)]
        #[serde(default)]
        pub struct SchedulerSettings {
            $($(#[$doc])* pub $name: String,)+
            /// A missed firing still runs when the service comes back within this many hours; older ones are
            /// `omitida`.
            pub catch_up_window_hours: u64,
            pub enabled: bool,
        }

        impl Default for SchedulerSettings {
            fn default() -> Self {
                SchedulerSettings {
                    $($name: $cron.into(),)+
                    catch_up_window_hours: 6,
                    enabled: true,
                }
            }
        }

        impl SchedulerSettings {
            /// The schedule's cron expression.
            pub fn expr(&self, kind: SweepKind) -> &str {
                match kind {
                    $(SweepKind::$variant => &self.$name,)+
                }
            }
        }
    };
}

// One line per schedule: the variant, its name (ledger, CLI, settings field), its default cron expression.
sweep_kinds! {
    /// Daily low-balance sweep.
    SaldoBajo = saldo_bajo, default "0 18 * * *";
    /// Weekly pending-account reminder.
    CuentaPendiente = cuenta_pendiente, default "0 9 * * 1";
    /// Daily negative-balance reminders (3, 7 and 15 days).
    RecordatorioDeuda = recordatorio_deuda, default "0 8 * * *";
    /// Daily card-expiry notices (`tarjeta_por_vencer`, and `tarjeta_vencida` for a date that passed).
    TarjetaPorVencer = tarjeta_por_vencer, default "0 8 * * *";
    /// Weekly clean-up of old events, finished requests and ledger rows (`settings.retention`).
    Limpieza = limpieza, default "0 2 * * 0";
    /// The staff's daily summary email (`settings.resumen_diario`; off without recipients).
    ResumenDiario = resumen_diario, default "0 21 * * *";
    /// The opt-in notice per purchase: reads the new purchases of the families that switched it on (every minute).
    ConsumoRealizado = consumo_realizado, default "* * * * *";
    /// The opt-in daily summary of each family's purchases of the day.
    ResumenConsumos = resumen_consumos, default "0 20 * * *";
}

impl SchedulerSettings {
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

impl SweepKind {
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
    use super::{SchedulerSettings, SweepKind};

    /// `CANTINA__SCHEDULER__<NAME>` is the settings field: one field per schedule, named as the schedule, holding
    /// the expression `expr` returns (serialised and read back).
    #[test]
    fn each_schedule_is_the_settings_field_of_its_name() {
        let defaults = SchedulerSettings::default();
        let serde_json::Value::Object(fields) = serde_json::to_value(&defaults).unwrap() else {
            panic!("settings serialise as a map")
        };
        let mut keys: Vec<&str> = fields.keys().map(String::as_str).collect();
        keys.retain(|k| !["catch_up_window_hours", "enabled"].contains(k));
        keys.sort_unstable();
        let mut names = SweepKind::ALL.map(SweepKind::as_str);
        names.sort_unstable();
        assert_eq!(keys, names);
        for kind in SweepKind::ALL {
            assert_eq!(fields[kind.as_str()], defaults.expr(kind), "{kind}");
            let read: SchedulerSettings =
                serde_json::from_value(serde_json::json!({ kind.as_str(): "7 7 * * *" })).unwrap();
            assert_eq!(read.expr(kind), "7 7 * * *", "{kind}");
            for other in SweepKind::ALL.into_iter().filter(|o| *o != kind) {
                assert_eq!(read.expr(other), defaults.expr(other), "{kind} set {other}");
            }
        }
    }

    /// The list is built from `ALL`; the wording is the one written by hand before.
    #[test]
    fn an_unknown_sweep_lists_the_known_ones() {
        assert_eq!(
            SweepKind::parse("consumo").unwrap_err(),
            "unknown sweep 'consumo' (expected saldo_bajo, cuenta_pendiente, recordatorio_deuda, tarjeta_por_vencer, limpieza, resumen_diario, consumo_realizado or resumen_consumos)"
        );
        for k in SweepKind::ALL {
            assert_eq!(SweepKind::parse(k.as_str()), Ok(k));
        }
    }
}
