use std::fmt;

/// Generates [`NotificationType`] from the one list below: the enum, `ALL` (its length included), the stored
/// string and the staff's label. Everything else that must handle a type matches on the enum exhaustively, so the
/// compiler lists it (see docs/development.md, "Adding a notice type").
macro_rules! notification_types {
    (@opt_in opt_in) => { true };
    (@opt_in) => { false };
    ($($(#[$doc:meta])* $variant:ident = $name:literal, label $label:literal $(, $opt_in:ident)?;)+) => {
        /// The kinds of notice the service sends; the string is stored in `solicitudes_notificacion.tipo`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum NotificationType {
            $($(#[$doc])* $variant,)+
        }

        impl NotificationType {
            /// Every type, in declaration order (also the enum's `Ord`).
            pub const ALL: [NotificationType; [$($name),+].len()] = [$(Self::$variant),+];

            /// The name stored in `solicitudes_notificacion.tipo` and used in `CANTINA__RULES__<TYPE>__…`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }

            /// What staff read (the daily summary's rows).
            pub fn label(self) -> &'static str {
                match self {
                    $(Self::$variant => $label,)+
                }
            }

            /// Sent only to parents who switched it on (a row `activo = true` in
            /// `cantina_notify_preferencias_cliente`): the portal's rows and the configured defaults do not.
            pub fn opt_in(self) -> bool {
                match self {
                    $(Self::$variant => notification_types!(@opt_in $($opt_in)?),)+
                }
            }
        }
    };
}

// One line per type: the variant, its stored name, its label, and `opt_in` for a type sent only to parents who switched
// it on. The order is `ALL`'s (and the settings').
notification_types! {
    SaldoBajo = "saldo_bajo", label "Saldo bajo";
    RecargaExitosa = "recarga_exitosa", label "Recarga exitosa";
    CuentaPendiente = "cuenta_pendiente", label "Cuenta pendiente";
    RecordatorioDeuda = "recordatorio_deuda", label "Recordatorio de deuda";
    TarjetaBloqueada = "tarjeta_bloqueada", label "Tarjeta bloqueada";
    MensajeCantina = "mensaje_cantina", label "Mensaje de la cantina";
    TarjetaPorVencer = "tarjeta_por_vencer", label "Tarjeta por vencer";
    TarjetaVencida = "tarjeta_vencida", label "Tarjeta vencida";
    /// One notice per purchase (`consumos_tarjeta`), read by the `consumo_realizado` sweep.
    ConsumoRealizado = "consumo_realizado", label "Consumo realizado", opt_in;
    /// The day's purchases of a family's children, at a configured local time.
    ResumenConsumos = "resumen_consumos", label "Resumen de consumos", opt_in;
}

#[derive(Debug, thiserror::Error)]
#[error("unknown notification type '{0}' (expected one of: {list})", list = NotificationType::names())]
pub struct UnknownNotificationType(pub String);

impl NotificationType {
    pub fn parse(s: &str) -> Result<Self, UnknownNotificationType> {
        Self::ALL.into_iter().find(|t| t.as_str() == s.trim()).ok_or_else(|| UnknownNotificationType(s.to_string()))
    }

    /// Every name, comma-separated: `saldo_bajo, recarga_exitosa, …`.
    pub fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }

    /// Every name as a Spanish enumeration: `saldo_bajo, …, recordatorio_deuda o tarjeta_bloqueada`.
    pub fn names_o() -> String {
        let names = Self::ALL.map(Self::as_str);
        match names.split_last() {
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => format!("{} o {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

impl fmt::Display for NotificationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::NotificationType;

    #[test]
    fn round_trips_every_type() {
        for t in NotificationType::ALL {
            assert_eq!(NotificationType::parse(t.as_str()).ok(), Some(t));
        }
        assert!(NotificationType::parse("restriccion_aplicada").is_err());
    }

    /// Only the spending notices are opt-in; the declaration says so, not a match elsewhere.
    #[test]
    fn only_the_spending_notices_are_opt_in() {
        let opt_in: Vec<&str> = NotificationType::ALL.into_iter().filter(|t| t.opt_in()).map(|t| t.as_str()).collect();
        assert_eq!(opt_in, ["consumo_realizado", "resumen_consumos"]);
    }

    /// The texts built from the declaration are the ones written by hand before it (operators and tests read them).
    #[test]
    fn listed_types_and_labels_keep_their_wording() {
        let e = NotificationType::parse("restriccion_aplicada").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown notification type 'restriccion_aplicada' (expected one of: saldo_bajo, recarga_exitosa, cuenta_pendiente, recordatorio_deuda, tarjeta_bloqueada, mensaje_cantina, tarjeta_por_vencer, tarjeta_vencida, consumo_realizado, resumen_consumos)"
        );
        assert_eq!(
            NotificationType::names_o(),
            "saldo_bajo, recarga_exitosa, cuenta_pendiente, recordatorio_deuda, tarjeta_bloqueada, mensaje_cantina, tarjeta_por_vencer, tarjeta_vencida, consumo_realizado o resumen_consumos"
        );
        let labels = NotificationType::ALL.map(NotificationType::label);
        assert_eq!(
            labels,
            [
                "Saldo bajo",
                "Recarga exitosa",
                "Cuenta pendiente",
                "Recordatorio de deuda",
                "Tarjeta bloqueada",
                "Mensaje de la cantina",
                "Tarjeta por vencer",
                "Tarjeta vencida",
                "Consumo realizado",
                "Resumen de consumos"
            ]
        );
        assert!(NotificationType::ALL.is_sorted(), "ALL follows the enum's order");
    }
}
