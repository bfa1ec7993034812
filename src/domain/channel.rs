use std::fmt;

/// A delivery channel. `config_name` is what the configuration uses (`email`), `destino` is the value of
/// `solicitudes_notificacion.destino` (`Email`), as the Cantina dashboard already reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelKind {
    Email,
    Sms,
    WhatsApp,
    Portal,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown channel '{0}' (expected one of: email, sms, whatsapp, portal)")]
pub struct ParseChannelError(pub String);

impl ChannelKind {
    pub const ALL: [ChannelKind; 4] = [Self::Email, Self::Sms, Self::WhatsApp, Self::Portal];

    pub fn config_name(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::WhatsApp => "whatsapp",
            Self::Portal => "portal",
        }
    }

    pub fn destino(self) -> &'static str {
        match self {
            Self::Email => "Email",
            Self::Sms => "SMS",
            Self::WhatsApp => "WhatsApp",
            Self::Portal => "Portal",
        }
    }

    /// Accepts the config name or the `destino` value, case-insensitively.
    pub fn parse(s: &str) -> Result<Self, ParseChannelError> {
        let t = s.trim();
        Self::ALL
            .into_iter()
            .find(|c| c.config_name().eq_ignore_ascii_case(t) || c.destino().eq_ignore_ascii_case(t))
            .ok_or_else(|| ParseChannelError(s.to_string()))
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.config_name())
    }
}

#[cfg(test)]
mod tests {
    use super::ChannelKind;

    #[test]
    fn parses_config_names_and_destino_values() {
        assert_eq!(ChannelKind::parse("email").ok(), Some(ChannelKind::Email));
        assert_eq!(ChannelKind::parse("Email").ok(), Some(ChannelKind::Email));
        assert_eq!(ChannelKind::parse(" SMS ").ok(), Some(ChannelKind::Sms));
        assert_eq!(ChannelKind::parse("WhatsApp").ok(), Some(ChannelKind::WhatsApp));
        assert_eq!(ChannelKind::parse("portal").ok(), Some(ChannelKind::Portal));
        assert!(ChannelKind::parse("fax").is_err());
        assert!(ChannelKind::parse("").is_err());
    }

    #[test]
    fn destino_values_match_the_cantina_table() {
        let v: Vec<_> = ChannelKind::ALL.iter().map(|c| c.destino()).collect();
        assert_eq!(v, ["Email", "SMS", "WhatsApp", "Portal"]);
    }
}
