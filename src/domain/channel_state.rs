//! A channel's state as metrics and reports name it (the state itself is computed in `crate::channel_state`).

/// The states as the `state` label of `cantina_notify_channel_state` and the `state` key of `stats --json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    NotConfigured,
    Active,
    PausedByOperator,
    PausedByProvider,
    Unknown,
}

impl StateKind {
    /// The states a running process can be in (its own view is never `Unknown`): one gauge series each.
    pub const METRIC: [StateKind; 4] =
        [StateKind::NotConfigured, StateKind::Active, StateKind::PausedByOperator, StateKind::PausedByProvider];

    pub fn label(self) -> &'static str {
        match self {
            StateKind::NotConfigured => "not_configured",
            StateKind::Active => "active",
            StateKind::PausedByOperator => "paused_by_operator",
            StateKind::PausedByProvider => "paused_by_provider",
            StateKind::Unknown => "unknown",
        }
    }

    /// As staff read it.
    pub fn spanish(self) -> &'static str {
        match self {
            StateKind::NotConfigured => "no configurado",
            StateKind::Active => "activo",
            StateKind::PausedByOperator => "pausado por un operador",
            StateKind::PausedByProvider => "pausado por un error del proveedor",
            StateKind::Unknown => "desconocido: ningún servicio en marcha",
        }
    }
}
