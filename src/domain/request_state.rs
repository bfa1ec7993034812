//! The life cycle of a request (`solicitudes_notificacion.estado`): the four states of migration 0001's CHECK, as a
//! type the rules, the drain and the staff tools share. The SQL spelling (`estado_sql!`) is built on [`estado_name!`]
//! in `requests::state`, next to the statements.

/// The name of a state as the table holds it; the one spelling every other form is built from.
macro_rules! estado_name {
    (Pendiente) => {
        "Pendiente"
    };
    (Enviado) => {
        "Enviado"
    };
    (Error) => {
        "Error"
    };
    (Omitido) => {
        "Omitido"
    };
}
pub(crate) use estado_name;

/// `solicitudes_notificacion.estado`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestState {
    /// Waiting to be sent (or being sent: claimed under a lease).
    Pendiente,
    Enviado,
    /// Failed for good.
    Error,
    /// Not sent on purpose (opted out, turned off, cancelled by an operator).
    Omitido,
}

impl RequestState {
    /// In the order of the CHECK constraint.
    pub const ALL: [RequestState; 4] =
        [RequestState::Pendiente, RequestState::Enviado, RequestState::Error, RequestState::Omitido];

    pub const fn as_str(self) -> &'static str {
        match self {
            RequestState::Pendiente => estado_name!(Pendiente),
            RequestState::Enviado => estado_name!(Enviado),
            RequestState::Error => estado_name!(Error),
            RequestState::Omitido => estado_name!(Omitido),
        }
    }

    /// The SQL literal, quoted (what `requests::state::estado_sql!` gives).
    pub const fn sql(self) -> &'static str {
        match self {
            RequestState::Pendiente => concat!("'", estado_name!(Pendiente), "'"),
            RequestState::Enviado => concat!("'", estado_name!(Enviado), "'"),
            RequestState::Error => concat!("'", estado_name!(Error), "'"),
            RequestState::Omitido => concat!("'", estado_name!(Omitido), "'"),
        }
    }

    /// The state named exactly as the table holds it.
    pub fn parse(s: &str) -> Option<RequestState> {
        RequestState::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// The state named in any case, surrounding spaces ignored (what staff type).
    pub fn parse_any_case(s: &str) -> Option<RequestState> {
        RequestState::ALL.into_iter().find(|e| e.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl std::fmt::Display for RequestState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
