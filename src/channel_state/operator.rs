//! An operator's pause as the state merge reads it (written and read by [`crate::operator_pauses`]).

use jiff::Timestamp;

use crate::domain::ChannelKind;
use crate::present::{format, mask};

/// One channel an operator paused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorPause {
    pub channel: ChannelKind,
    pub motivo: String,
    pub pausado_por: String,
    pub pausado_en: Timestamp,
}

impl OperatorPause {
    /// When, as staff read it: `DD/MM/YYYY HH:MM` in America/Asuncion (jiff's bundled tz data, not PostgreSQL's).
    pub fn desde(&self) -> String {
        format::local(self.pausado_en)
    }

    /// The reason with any address in it masked, for what is printed.
    pub fn motivo_masked(&self) -> String {
        mask::text(&self.motivo)
    }
}
