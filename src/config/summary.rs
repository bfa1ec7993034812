//! `settings.resumen_diario`: the staff's daily summary ([`crate::scheduler::summary`]).

use serde::{Deserialize, Serialize};

use crate::domain::EmailAddress;

/// `settings.resumen_diario` (`CANTINA__RESUMEN_DIARIO__…`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct SummarySettings {
    /// Comma-separated staff addresses; empty: no summary.
    #[serde(deserialize_with = "crate::config::string_or_list")]
    pub destinatarios: Vec<String>,
    /// Subject; `{fecha}` is replaced by the reported day (dd/mm/aaaa), which is appended when absent.
    pub asunto: Option<String>,
}

impl SummarySettings {
    /// The parsed recipients, deduplicated, or every problem naming the key.
    pub fn recipients(&self) -> Result<Vec<EmailAddress>, Vec<String>> {
        let mut out: Vec<EmailAddress> = Vec::new();
        let mut errors = Vec::new();
        for (i, raw) in self.destinatarios.iter().enumerate() {
            match EmailAddress::parse(Some(raw)) {
                Ok(a) if !out.contains(&a) => out.push(a),
                Ok(_) => {}
                Err(e) => {
                    errors.push(format!("CANTINA__RESUMEN_DIARIO__DESTINATARIOS: address {} is invalid: {e}", i + 1))
                }
            }
        }
        if errors.is_empty() { Ok(out) } else { Err(errors) }
    }
}
