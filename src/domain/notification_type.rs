use std::fmt;

/// The kinds of notice the service sends; the string is stored in `solicitudes_notificacion.tipo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NotificationType {
    SaldoBajo,
    RecargaExitosa,
    CuentaPendiente,
    RecordatorioDeuda,
    TarjetaBloqueada,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "unknown notification type '{0}' (expected one of: saldo_bajo, recarga_exitosa, cuenta_pendiente, recordatorio_deuda, tarjeta_bloqueada)"
)]
pub struct UnknownNotificationType(pub String);

impl NotificationType {
    pub const ALL: [NotificationType; 5] =
        [Self::SaldoBajo, Self::RecargaExitosa, Self::CuentaPendiente, Self::RecordatorioDeuda, Self::TarjetaBloqueada];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SaldoBajo => "saldo_bajo",
            Self::RecargaExitosa => "recarga_exitosa",
            Self::CuentaPendiente => "cuenta_pendiente",
            Self::RecordatorioDeuda => "recordatorio_deuda",
            Self::TarjetaBloqueada => "tarjeta_bloqueada",
        }
    }

    pub fn parse(s: &str) -> Result<Self, UnknownNotificationType> {
        Self::ALL.into_iter().find(|t| t.as_str() == s.trim()).ok_or_else(|| UnknownNotificationType(s.to_string()))
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
        assert!(NotificationType::parse("consumo_realizado").is_err());
    }
}
